"""Bench tier: Aether's MCP endpoint (cauldron.api.mcp) served by Frappe's own WSGI application on a
loopback HTTP server, reached by the official MCP SDK's client (cauldron/aether/mcp_probe.py, run by
a Python that has the SDK: CAULDRON_MCP_CLIENT_PYTHON, default /work/mcp-client-venv/bin/python)
with the API key of the agent's user, and by raw HTTP for the protocol's refusals."""

import json
import os
import subprocess
import threading
from pathlib import Path

import frappe
import requests
from frappe.app import application
from frappe.tests.utils import FrappeTestCase
from frappe.utils import now_datetime
from werkzeug.serving import make_server

from cauldron import db
from cauldron.aether import mcp
from cauldron.tests.factories import delete_created_since, drop_user, make, user_with_roles

OPERATOR = "cauldron-mcp-operator@example.com"
ANALYST = "cauldron-mcp-analyst@example.com"
PROBE = Path(mcp.__file__).with_name("mcp_probe.py")
CLIENT_PYTHON = os.environ.get("CAULDRON_MCP_CLIENT_PYTHON", "/work/mcp-client-venv/bin/python")
ENDPOINT = "/api/method/cauldron.api.mcp.handle"


class TestAetherMcp(FrappeTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.started = now_datetime()
		cls.operator = user_with_roles(OPERATOR, "Agent Operator", "Knowledge Editor")
		cls.analyst = user_with_roles(ANALYST, "Synapse Analyst")
		frappe.db.commit()
		# Frappe's WSGI application on loopback, as gunicorn serves it (one thread a request).
		cls.server = make_server("127.0.0.1", 0, application, threaded=True)
		cls.port = cls.server.server_port
		cls.thread = threading.Thread(target=cls.server.serve_forever, daemon=True)
		cls.thread.start()

	@classmethod
	def tearDownClass(cls):
		cls.server.shutdown()
		cls.server.server_close()
		frappe.set_user("Administrator")
		delete_created_since(cls.started)
		drop_user(OPERATOR)
		drop_user(ANALYST)
		frappe.db.commit()
		super().tearDownClass()

	def setUp(self):
		frappe.set_user("Administrator")
		tools = {"documents.read": ["Lore Document"], "lore.search": False}
		self.definition = make(
			"Aether Agent Definition", tools=json.dumps(tools), task_types="remediation"
		).name
		self.instance = make("Aether Agent Instance", definition=self.definition).name
		self.document = make("Lore Document").name
		frappe.db.commit()

	def url(self, instance=None) -> str:
		return f"http://127.0.0.1:{self.port}{ENDPOINT}?instance={instance or self.instance}"

	def task(self, **fields) -> str:
		task = make("Aether Agent Task", definition=self.definition, task_type="remediation", **fields)
		frappe.db.commit()
		return task.name

	def probe(self, *calls, mode="legacy") -> dict:
		if not Path(CLIENT_PYTHON).exists():
			self.skipTest(f"no MCP SDK client at {CLIENT_PYTHON} (set CAULDRON_MCP_CLIENT_PYTHON)")
		command = [CLIENT_PYTHON, str(PROBE), self.url(), "--token", self.operator, "--mode", mode]
		command += ["--header", f"X-Frappe-Site-Name: {frappe.local.site}"]
		for name, arguments in calls:
			command += ["--call", name, json.dumps(arguments)]
		done = subprocess.run(command, capture_output=True, text=True, timeout=180)
		self.assertEqual(done.returncode, 0, done.stderr[-4000:])
		return json.loads(done.stdout)

	def post(self, message, token=None, session=None, instance=None, **headers):
		sent = {
			"Accept": "application/json, text/event-stream",
			"Content-Type": "application/json",
			"X-Frappe-Site-Name": frappe.local.site,
			**headers,
		}
		if token is not False:
			sent["Authorization"] = f"token {token or self.operator}"
		if session:
			sent[mcp.SESSION_HEADER] = session
		return requests.post(self.url(instance), data=json.dumps(message), headers=sent, timeout=60)

	def initialize(self, **kwargs):
		params = {
			"protocolVersion": "2025-06-18",
			"capabilities": {},
			"clientInfo": {"name": "t", "version": "0"},
		}
		return self.post({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}, **kwargs)

	def refresh(self, task: str) -> tuple:
		frappe.db.commit()  # a new snapshot: the server committed in its own connection
		return frappe.db.get_value("Aether Agent Task", task, ["status", "assigned_to", "attempts"])

	def recorded(self) -> list[tuple]:
		frappe.db.commit()
		cur = db.cursor()
		cur.execute(
			"""SELECT interaction_type, content->>'tool', coalesce(metadata->>'refused', '')
			FROM aether.agent_interactions WHERE agent_instance_id = %s::uuid
				AND interaction_type IN ('tool_call', 'tool_result', 'error')
			ORDER BY created_at, interaction_type <> 'tool_call'""",
			(self.instance,),
		)
		return cur.fetchall()

	def test_an_agent_works_through_the_official_sdk_client(self):
		first = self.task(priority=1)
		second = self.task(priority=2)
		report = self.probe(
			("tasks_claim", {"limit": 1, "lease": 120}),
			("tasks_heartbeat", {"task": "$task", "lease": 900}),
			("documents_read", {"doctype": "Lore Document", "name": self.document}),
			("documents_read", {"doctype": "Aether Agent Definition", "name": self.definition}),
			("documents_create", {"doctype": "Lore Document", "fields": {"title": "x"}}),
			("tasks_complete", {"task": "$task", "result": {"fixed": True}}),
			("tasks_complete", {"task": "$task", "result": {"again": 1}}),
			("tasks_claim", {}),
			("tasks_fail", {"task": "$task", "error": "the runbook failed", "retry": False}),
			("tasks_claim", {"task_types": ["research"]}),
			("tasks_complete", {"task": "$task", "result": "x", "extra": 1}),
		)
		self.assertIn(report["protocol_version"], mcp.PROTOCOL_VERSIONS)
		self.assertEqual(report["server"]["name"], "cauldron")
		self.assertEqual(
			list(report["tools"]),
			["tasks_claim", "tasks_heartbeat", "tasks_complete", "tasks_fail", "documents_read"],
		)
		self.assertEqual(
			report["tools"]["documents_read"]["inputSchema"]["properties"]["doctype"]["enum"],
			["Lore Document"],
		)
		claim, beat, read, read_other, create, done, again, claim2, failed, wrong_type, extra = report[
			"calls"
		]
		self.assertEqual(claim["structured"]["result"][0]["name"], first, claim)
		self.assertFalse(beat["is_error"], beat)
		self.assertEqual(read["structured"]["name"], self.document, read)
		self.assertTrue(read_other["is_error"], read_other)
		self.assertIn("not allowed", read_other["text"])
		self.assertEqual(create["error"]["code"], mcp.INVALID_PARAMS, create)  # not one of its tools
		self.assertEqual(done["structured"], {"task": first, "status": "completed"}, done)
		self.assertTrue(again["is_error"] and "is completed, not running" in again["text"], again)
		self.assertEqual(claim2["structured"]["result"][0]["name"], second, claim2)
		self.assertEqual(failed["structured"], {"task": second, "status": "failed"}, failed)
		self.assertTrue(wrong_type["is_error"] and "not research" in wrong_type["text"], wrong_type)
		self.assertTrue(extra["is_error"] and "takes no extra" in extra["text"], extra)

		self.assertEqual(self.refresh(first), ("completed", self.instance, 1))
		self.assertEqual(self.refresh(second)[0], "failed")
		result = frappe.db.get_value("Aether Agent Task", first, "result")
		self.assertEqual(json.loads(result) if isinstance(result, str) else result, {"fixed": True})
		self.assertEqual(
			self.recorded(),
			[
				("tool_call", "documents.read", ""),
				("tool_result", "documents.read", ""),
				("tool_call", "documents.read", "true"),
				("error", "documents.read", ""),
				("tool_call", "documents.create", "true"),
				("error", "documents.create", ""),
			],
		)

	def test_the_sdk_client_negotiating_discovery_falls_back_to_initialize(self):
		report = self.probe(("tasks_heartbeat", {}), mode="auto")
		self.assertIn(report["protocol_version"], mcp.PROTOCOL_VERSIONS)
		self.assertFalse(report["calls"][0]["is_error"], report)
		frappe.db.commit()
		self.assertIsNotNone(frappe.db.get_value("Aether Agent Instance", self.instance, "last_heartbeat"))

	def test_sessions_and_refusals_over_http(self):
		response = self.initialize()
		self.assertEqual(response.status_code, 200, response.text)
		self.assertEqual(response.json()["result"]["protocolVersion"], "2025-06-18")
		session = response.headers[mcp.SESSION_HEADER]
		listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
		listed = self.post(listing, session=session, **{mcp.VERSION_HEADER: "2025-06-18"})
		self.assertEqual(listed.status_code, 200, listed.text)
		self.assertEqual(len(listed.json()["result"]["tools"]), 5)
		notified = self.post({"jsonrpc": "2.0", "method": "notifications/initialized"}, session=session)
		self.assertEqual((notified.status_code, notified.text), (202, ""))

		other = make("Aether Agent Instance", definition=self.definition).name
		frappe.db.commit()
		cases = [
			# the session is the caller's and the instance's
			(self.post(listing, session=session, instance=other), 404, mcp.SESSION_NOT_FOUND),
			(self.post(listing), 400, mcp.INVALID_REQUEST),
			(self.post(listing, session="forged"), 404, mcp.SESSION_NOT_FOUND),
			(self.initialize(instance="00000000-0000-4000-8000-000000000000"), 400, mcp.INVALID_REQUEST),
			(self.post(listing, session=session, **{mcp.VERSION_HEADER: "2020-01-01"}), 400, None),
			# write on agent instances is needed: a Synapse Analyst has none
			(self.initialize(token=self.analyst), 403, mcp.INVALID_REQUEST),
		]
		for response, status, code in cases:
			with self.subTest(status=status, body=response.text[:200]):
				self.assertEqual(response.status_code, status, response.text[:2000])
				if code is not None:
					self.assertEqual(response.json()["error"]["code"], code)
		missing = requests.post(
			f"http://127.0.0.1:{self.port}{ENDPOINT}",
			data=json.dumps(
				{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "x"}}
			),
			headers={
				"Content-Type": "application/json",
				"Authorization": f"token {self.operator}",
				"X-Frappe-Site-Name": frappe.local.site,
			},
			timeout=60,
		)
		self.assertEqual(missing.status_code, 400, missing.text)
		self.assertIn("?instance=", missing.json()["error"]["message"])
		anonymous = self.initialize(token=False)
		self.assertEqual(anonymous.status_code, 403, anonymous.text[:2000])
		self.assertNotIn(mcp.SESSION_HEADER, anonymous.headers)

		get = requests.get(
			self.url(),
			headers={"Authorization": f"token {self.operator}", "X-Frappe-Site-Name": frappe.local.site},
		)
		self.assertEqual(get.status_code, 405, get.text)
		ended = requests.delete(
			self.url(),
			headers={
				"Authorization": f"token {self.operator}",
				"X-Frappe-Site-Name": frappe.local.site,
				mcp.SESSION_HEADER: session,
			},
		)
		self.assertEqual(ended.status_code, 204, ended.text)
		self.assertEqual(self.post(listing, session=session).status_code, 404)
