"""Aether's MCP server (cauldron.aether.mcp) behind a real HTTP server on loopback: the protocol's
rules over raw HTTP, and the official MCP SDK's client (in its own venv, see mcp_probe.py) claiming
and completing a task of the real queue (cauldron.aether.tasks over Postgres) through it."""

import http.client
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from test_aether_tasks import definition, instance, row, site, task  # noqa: F401 (site: a fixture)

from cauldron.aether import mcp, mcp_tools, tasks

TOKENS = {"key1:secret1": "agent@example.com", "key2:secret2": "other@example.com"}
PROBE = Path(__file__).resolve().parent.parent / "cauldron" / "aether" / "mcp_probe.py"
CLIENT_PYTHON = os.environ.get("CAULDRON_MCP_CLIENT_PYTHON", "/work/mcp-client-venv/bin/python")
ACCEPT = "application/json, text/event-stream"


class Loopback:
	"""An MCP endpoint at http://127.0.0.1:<port>/mcp: API tokens as Frappe's (token key:secret)."""

	def __init__(self, tools):
		self.server = mcp.Server(
			"cauldron-test", "1.0", mcp.MemorySessions(), instructions="Claim, work, complete."
		)
		self.tools = tools
		engine = self

		class Handler(BaseHTTPRequestHandler):
			def log_message(self, *args):
				pass

			def answer(self):
				auth = self.headers.get("Authorization") or ""
				principal = (
					TOKENS.get(auth.removeprefix("token ").strip()) if auth.startswith("token ") else None
				)
				body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
				if principal is None:
					reply = mcp.Reply(401, {"Content-Type": "text/plain"}, b"API key needed")
				else:
					reply = engine.server.handle(
						self.command, self.headers.items(), body, principal, lambda: engine.tools
					)
				self.send_response(reply.status)
				for name, value in reply.headers.items():
					self.send_header(name, value)
				self.send_header("Content-Length", str(len(reply.body)))
				self.end_headers()
				self.wfile.write(reply.body)

			do_GET = do_POST = do_DELETE = do_PUT = answer

		self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
		self.port = self.http.server_address[1]
		self.url = f"http://127.0.0.1:{self.port}/mcp"
		self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
		self.thread.start()

	def close(self):
		self.http.shutdown()
		self.http.server_close()

	def request(self, method="POST", body=None, headers=None, token="key1:secret1"):
		conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
		sent = {"Accept": ACCEPT, "Content-Type": "application/json"}
		if token:
			sent["Authorization"] = f"token {token}"
		sent.update(headers or {})
		data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
		conn.request(method, "/mcp", body=data, headers={k: v for k, v in sent.items() if v is not None})
		response = conn.getresponse()
		raw = response.read()
		conn.close()
		return response, raw

	def rpc(self, method, params=None, session=None, id_=1, **kwargs):
		message = {"jsonrpc": "2.0", "id": id_, "method": method}
		if params is not None:
			message["params"] = params
		headers = {mcp.SESSION_HEADER: session} if session else {}
		headers.update(kwargs.pop("headers", {}))
		response, raw = self.request(body=message, headers=headers, **kwargs)
		return response, (json.loads(raw) if raw and raw[:1] == b"{" else raw)

	def initialize(self, version="2025-06-18", token="key1:secret1"):
		response, answer = self.rpc(
			"initialize",
			{"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
			token=token,
		)
		assert response.status == 200, answer
		return response.getheader(mcp.SESSION_HEADER), answer["result"]


def echo_tools():
	def fails(arguments):
		raise mcp.ToolFailed(f"no {arguments.get('what', 'luck')} today")

	def crashes(_arguments):
		raise RuntimeError("a bug")

	return [
		mcp.Tool("echo", "Echo.", {"type": "object"}, lambda arguments: {"echo": arguments}, read_only=True),
		mcp.Tool("numbers", "A list.", {"type": "object"}, lambda _a: [1, 2, 3]),
		mcp.Tool("fails", "Fails.", {"type": "object"}, fails),
		mcp.Tool("crashes", "Crashes.", {"type": "object"}, crashes),
	]


@pytest.fixture
def loopback():
	server = Loopback(echo_tools())
	yield server
	server.close()


def test_initialize_negotiates_the_version_and_opens_a_session(loopback):
	session, result = loopback.initialize("2025-06-18")
	assert result["protocolVersion"] == "2025-06-18"
	assert result["capabilities"] == {"tools": {"listChanged": False}}
	assert result["serverInfo"] == {"name": "cauldron-test", "version": "1.0"}
	assert result["instructions"] == "Claim, work, complete."
	assert session and len(session) >= 32 and all(0x21 <= ord(c) <= 0x7E for c in session)
	other, newest = loopback.initialize("1999-01-01")
	assert newest["protocolVersion"] == mcp.PROTOCOL_VERSIONS[0]
	assert other != session
	for version in ("2025-03-26", "2025-11-25"):
		assert loopback.initialize(version)[1]["protocolVersion"] == version

	response, raw = loopback.request(
		body={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers={mcp.SESSION_HEADER: session}
	)
	assert (response.status, raw) == (202, b"")
	response, answer = loopback.rpc("ping", session=session, id_="p-1")
	assert (response.status, answer) == (200, {"jsonrpc": "2.0", "id": "p-1", "result": {}})


def test_tools_are_listed_and_called_with_errors_where_the_specification_puts_them(loopback):
	session, _ = loopback.initialize("2025-06-18")
	_, listed = loopback.rpc("tools/list", session=session)
	assert [t["name"] for t in listed["result"]["tools"]] == ["echo", "numbers", "fails", "crashes"]
	assert listed["result"]["tools"][0] == {
		"name": "echo",
		"description": "Echo.",
		"inputSchema": {"type": "object"},
		"annotations": {"readOnlyHint": True, "destructiveHint": False},
	}

	_, called = loopback.rpc("tools/call", {"name": "echo", "arguments": {"x": [1, "é"]}}, session=session)
	assert called["result"]["isError"] is False
	assert json.loads(called["result"]["content"][0]["text"]) == {"echo": {"x": [1, "é"]}}
	assert called["result"]["structuredContent"] == {"echo": {"x": [1, "é"]}}
	_, listed_value = loopback.rpc("tools/call", {"name": "numbers"}, session=session)
	assert listed_value["result"]["structuredContent"] == {"result": [1, 2, 3]}

	# A tool that runs and fails: a result the model reads, not a protocol error.
	_, failed = loopback.rpc("tools/call", {"name": "fails", "arguments": {"what": "rain"}}, session=session)
	assert failed["result"] == {"content": [{"type": "text", "text": "no rain today"}], "isError": True}
	cases = [
		({"name": "shell.exec", "arguments": {}}, mcp.INVALID_PARAMS, "Unknown tool: shell.exec"),
		({"arguments": {}}, mcp.INVALID_PARAMS, "params.name"),
		({"name": "echo", "arguments": [1]}, mcp.INVALID_PARAMS, "arguments must be an object"),
		({"name": "crashes"}, mcp.INTERNAL_ERROR, "Internal error"),
	]
	for params, code, message in cases:
		response, answer = loopback.rpc("tools/call", params, session=session, id_=7)
		assert response.status == 200
		assert answer["id"] == 7 and answer["error"]["code"] == code, answer
		assert message in answer["error"]["message"]
	_, unknown = loopback.rpc("server/discover", {}, session=session)
	assert unknown["error"]["code"] == mcp.METHOD_NOT_FOUND
	_, bad_params = loopback.rpc("tools/list", [1], session=session)
	assert bad_params["error"]["code"] == mcp.INVALID_PARAMS

	# Before 2025-06-18 a result has no structuredContent.
	old, _ = loopback.initialize("2025-03-26")
	_, called = loopback.rpc("tools/call", {"name": "echo", "arguments": {}}, session=old)
	assert "structuredContent" not in called["result"] and called["result"]["isError"] is False


def test_sessions_belong_to_their_principal_and_end_when_deleted(loopback):
	session, _ = loopback.initialize()
	response, answer = loopback.rpc("tools/list")
	assert response.status == 400 and mcp.SESSION_HEADER in answer["error"]["message"]
	response, answer = loopback.rpc("tools/list", session="not-a-session")
	assert (response.status, answer["error"]["code"]) == (404, mcp.SESSION_NOT_FOUND)
	response, answer = loopback.rpc("tools/list", session=session, token="key2:secret2")
	assert response.status == 404  # another caller's session is no session of theirs
	assert loopback.rpc("tools/list", session=session)[0].status == 200

	response, raw = loopback.request("DELETE", headers={mcp.SESSION_HEADER: session})
	assert (response.status, raw) == (204, b"")
	assert loopback.rpc("tools/list", session=session)[0].status == 404
	assert loopback.request("DELETE", headers={mcp.SESSION_HEADER: session})[0].status == 404
	assert loopback.request(token=None, body={"jsonrpc": "2.0", "id": 1, "method": "ping"})[0].status == 401


def test_malformed_requests_are_refused_with_json_rpc_errors(loopback):
	session, _ = loopback.initialize()
	with_session = {mcp.SESSION_HEADER: session}
	cases = [
		(b"{not json", {}, 400, mcp.PARSE_ERROR),
		(b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "x": NaN}', {}, 400, mcp.PARSE_ERROR),
		(b"\xff\xfe", {}, 400, mcp.PARSE_ERROR),
		(b'[{"jsonrpc": "2.0", "id": 1, "method": "ping"}]', {}, 400, mcp.INVALID_REQUEST),
		(b'{"id": 1, "method": "ping"}', {}, 400, mcp.INVALID_REQUEST),
		(b'{"jsonrpc": "2.0", "id": true, "method": "ping"}', {}, 400, mcp.INVALID_REQUEST),
		(b'{"jsonrpc": "2.0", "id": 1, "method": 5}', {}, 400, mcp.INVALID_REQUEST),
		(b'{"jsonrpc": "2.0", "id": 1}', {}, 400, mcp.INVALID_REQUEST),
		(b"42", {}, 400, mcp.INVALID_REQUEST),
		(b'{"jsonrpc": "2.0", "id": 1, "method": "ping"}', {"Content-Type": "text/plain"}, 415, None),
		(b'{"jsonrpc": "2.0", "id": 1, "method": "ping"}', {"Accept": "text/html"}, 406, None),
		(b'{"jsonrpc": "2.0", "id": 1, "method": "ping"}', {mcp.VERSION_HEADER: "2024-01-01"}, 400, None),
		(b'{"jsonrpc": "2.0", "id": 1, "method": "ping"}', {"Origin": "http://evil.example"}, 403, None),
	]
	for body, headers, status, code in cases:
		response, raw = loopback.request(body=body, headers={**with_session, **headers})
		assert response.status == status, (body, headers, raw)
		answer = json.loads(raw)
		assert answer["jsonrpc"] == "2.0" and "error" in answer and "result" not in answer
		if code is not None:
			assert answer["error"]["code"] == code, (body, answer)
	same_origin = {"Origin": f"http://127.0.0.1:{loopback.port}", mcp.VERSION_HEADER: "2025-06-18"}
	response, answer = loopback.rpc("ping", session=session, headers=same_origin)
	assert response.status == 200 and answer["result"] == {}
	response, raw = loopback.request("GET", headers=with_session)
	assert response.status == 405 and response.getheader("Allow") == "POST, DELETE"
	assert loopback.request("PUT", body=b"{}", headers=with_session)[0].status == 405


def test_a_client_accepting_only_event_streams_gets_one_event(loopback):
	session, _ = loopback.initialize()
	response, raw = loopback.rpc(
		"tools/call",
		{"name": "echo", "arguments": {"a": 1}},
		session=session,
		headers={"Accept": "text/event-stream"},
	)
	assert response.status == 200 and response.getheader("Content-Type") == "text/event-stream"
	event, data, end = raw.decode().split("\n", 2)
	assert event == "event: message" and end == "\n"
	assert json.loads(data.removeprefix("data: "))["result"]["structuredContent"] == {"echo": {"a": 1}}


def test_the_tool_specs_follow_the_allow_list():
	runtime = ["tasks.claim", "tasks.heartbeat", "tasks.complete", "tasks.fail"]
	assert [s.name for s in mcp_tools.specs({})] == runtime
	allowed = {"documents.read": ["Lore Document"], "lore.search": True, "synapse.metrics": False}
	found = {s.name: s for s in mcp_tools.specs(allowed)}
	assert list(found) == [*runtime, "lore.search", "documents.read"]
	assert found["documents.read"].input_schema["properties"]["doctype"] == {
		"type": "string",
		"enum": ["Lore Document"],
	}
	assert mcp_tools.CAPABILITIES["documents.read"].input_schema["properties"]["doctype"] == {
		"type": "string"
	}
	claim_schema = found["tasks.claim"].input_schema
	assert [s.mcp_name for s in found.values()][-2:] == ["lore_search", "documents_read"]
	assert mcp_tools.cauldron_name("documents_create") == "documents.create"
	assert mcp_tools.cauldron_name("tasks_fail") == "tasks.fail"
	assert mcp_tools.cauldron_name("shell.exec") == "shell.exec"
	assert claim_schema["properties"]["task_types"]["items"]["enum"] == list(tasks.TASK_TYPES)


# --- the official SDK's client against the real queue ---------------------------------------------


def queue_tools(conn, worker: str) -> list[mcp.Tool]:
	"""The runtime's tools bound to the tasks engine, one transaction a call (as a request is)."""
	lock = threading.Lock()

	def run(fn):
		def call(arguments):
			with lock, conn.cursor() as cur:
				try:
					value = fn(cur, arguments)
				except tasks.TaskError as e:
					conn.rollback()
					raise mcp.ToolFailed(str(e)) from None
				conn.commit()
				return value

		return call

	def claim(cur, a):
		found = tasks.claim(cur, worker, a.get("task_types"), a.get("limit", 1), a.get("lease", 300))
		return [{"name": t.name, "task_name": t.task_name, "attempts": t.attempts} for t in found]

	bound = {
		"tasks.claim": claim,
		"tasks.heartbeat": lambda cur, a: {
			"lease_expires_at": tasks.heartbeat(cur, a.get("task"), worker, a.get("lease", 300))
		},
		"tasks.complete": lambda cur, a: (
			tasks.complete(cur, a["task"], worker, a.get("result"))
			or {"task": a["task"], "status": "completed"}
		),
		"tasks.fail": lambda cur, a: {
			"status": tasks.fail(cur, a["task"], worker, a["error"], a.get("retry", True))
		},
	}
	return [
		mcp.Tool(s.mcp_name, s.description, s.input_schema, run(bound[s.name]), s.read_only, s.destructive)
		for s in mcp_tools.specs({})
	]


def probe(url: str, *calls, mode="legacy", token="key1:secret1") -> dict:
	if not Path(CLIENT_PYTHON).exists():
		pytest.skip(f"no MCP SDK client at {CLIENT_PYTHON} (set CAULDRON_MCP_CLIENT_PYTHON)")
	command = [CLIENT_PYTHON, str(PROBE), url, "--token", token, "--mode", mode]
	for name, arguments in calls:
		command += ["--call", name, json.dumps(arguments)]
	done = subprocess.run(command, capture_output=True, text=True, timeout=120)
	assert done.returncode == 0, done.stderr[-3000:]
	return json.loads(done.stdout)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_the_official_sdk_client_claims_and_completes_a_task(site, mode):  # noqa: F811
	_db, conn = site
	with conn.cursor() as cur:
		worker = instance(cur, definition(cur))
		first = task(cur, priority=1)
		second = task(cur, priority=2, order=1)
	conn.commit()
	server = Loopback(queue_tools(conn, worker))
	try:
		report = probe(
			server.url,
			("tasks_claim", {"limit": 1, "lease": 120}),
			("tasks_heartbeat", {"task": "$task", "lease": 600}),
			("tasks_complete", {"task": "$task", "result": {"answer": 42}}),
			("tasks_complete", {"task": "$task", "result": {}}),
			("tasks_claim", {"task_types": ["research"]}),
			("tasks_fail", {"task": "$task", "error": "the model timed out", "retry": True}),
			("lore_search", {"query": "x"}),
			mode=mode,
		)
	finally:
		server.close()
	assert sys.version_info >= (3, 10)
	assert report["protocol_version"] in mcp.PROTOCOL_VERSIONS
	assert report["server"] == {"name": "cauldron-test", "version": "1.0"}
	assert list(report["tools"]) == ["tasks_claim", "tasks_heartbeat", "tasks_complete", "tasks_fail"]
	assert report["tools"]["tasks_fail"]["inputSchema"]["required"] == ["task", "error"]
	claim, beat, done, again, claim2, failed, unknown = report["calls"]
	assert claim["is_error"] is False and claim["structured"]["result"][0]["name"] == first
	assert beat["is_error"] is False and beat["structured"]["lease_expires_at"]
	assert done["structured"] == {"task": first, "status": "completed"}
	assert again["is_error"] is True and "is completed, not running" in again["text"]
	assert claim2["structured"]["result"][0]["name"] == second
	assert failed["structured"] == {"status": "pending"}
	assert unknown["error"]["code"] == mcp.INVALID_PARAMS and "Unknown tool" in unknown["error"]["message"]
	with conn.cursor() as cur:
		assert row(cur, first, "status", "result::text", "assigned_to") == (
			"completed",
			'{"answer": 42}',
			worker,
		)
		assert row(cur, second, "status", "attempts", "error_message") == (
			"pending",
			1,
			"the model timed out",
		)
	conn.rollback()
