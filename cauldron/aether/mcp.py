"""Aether's MCP server: the Model Context Protocol's tool subset over its streamable HTTP transport.

Framework-free: `Server.handle` takes an HTTP request as plain values (method, headers, body, the
authenticated principal) and the tools the principal may call, and returns the HTTP reply; the
Frappe glue (cauldron.api.mcp) authenticates the API key, names the tools and sends the reply.

Why not the official SDK (`mcp` on PyPI): only its releases 1.8 to 1.10 accept Frappe 15's pydantic
(~2.7), and its server transport is an ASGI (Starlette) application that keeps each session's
state in the memory of one long-lived process, while Frappe answers requests in WSGI workers
(several gunicorn processes, any of which may get a session's next request). So the server side
implements the protocol's subset below (JSON-RPC 2.0 over POST, as the 2025-03-26, 2025-06-18 and
2025-11-25 revisions define it) and the official SDK's client is what the tests connect with.

- POST one JSON-RPC message (batches are refused: the 2025-06-18 revision removed them):
  `initialize` (the version is negotiated: the client's if supported, else the newest here; the
  reply carries a new `Mcp-Session-Id`), `notifications/initialized` and other notifications
  (202, no body), `ping`, `tools/list`, `tools/call`. Any other method is -32601 (so a client's
  `server/discover` probe falls back to `initialize`).
- Every request after `initialize` names its session in `Mcp-Session-Id`: without one it is a 400,
  with one unknown, expired, ended or another principal's a 404 (the client initializes again).
  Sessions live in a `Sessions` store (Frappe's Redis cache in the site), so any worker answers.
- `MCP-Protocol-Version`, when sent, must be a supported revision (else 400).
- The reply is JSON, or one Server-Sent Event when the client accepts only `text/event-stream`.
- GET (a server-to-client stream) is 405: this server sends nothing unasked. DELETE ends a session.
- An `Origin` header naming another host than the request's is refused (403): DNS rebinding.
- Errors: -32700 unparsable JSON (400), -32600 not a JSON-RPC request (400), -32601 unknown
  method, -32602 invalid params or unknown tool, -32603 an internal error. A tool that runs and
  fails (refused, bad arguments, a conflict) is a result with `isError: true` and the reason as
  text, as the specification asks, so the model sees it.
"""

import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

from cauldron.pg import CauldronDBError, values

PROTOCOL_VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26")  # newest first
# A request without MCP-Protocol-Version is taken as this revision (the specification's rule).
ASSUMED_VERSION = "2025-03-26"
# structuredContent in tool results: from this revision on.
STRUCTURED_FROM = "2025-06-18"
SESSION_HEADER = "Mcp-Session-Id"
VERSION_HEADER = "MCP-Protocol-Version"
MAX_BODY_BYTES = values.MAX_CALL_BYTES
SESSION_SECONDS = 24 * 3600  # a session unused this long ends

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
SESSION_NOT_FOUND = -32001

logger = logging.getLogger(__name__)


class ToolFailed(Exception):
	"""The tool ran and failed: the caller gets a result with isError and this message."""


class UnknownTool(Exception):
	"""No tool of that name: a -32602 error."""


class Refused(Exception):
	"""The request may not be served (the principal may not use the server this way): an HTTP
	error with this status and a JSON-RPC error of this code."""

	def __init__(self, status: int, message: str, code: int = INVALID_REQUEST):
		super().__init__(message)
		self.status = status
		self.code = code


@dataclass(frozen=True)
class Tool:
	"""One tool: `run(arguments)` returns a JSON value or raises ToolFailed."""

	name: str
	description: str
	input_schema: dict
	run: Callable[[dict], object]
	read_only: bool = False
	destructive: bool = False

	def listed(self) -> dict:
		return {
			"name": self.name,
			"description": self.description,
			"inputSchema": self.input_schema,
			"annotations": {"readOnlyHint": self.read_only, "destructiveHint": self.destructive},
		}


class Sessions(Protocol):
	def get(self, session_id: str) -> dict | None: ...
	def put(self, session_id: str, data: dict, seconds: int) -> None: ...
	def delete(self, session_id: str) -> None: ...


class MemorySessions:
	"""Sessions in this process's memory (tests; a single-process server)."""

	def __init__(self):
		self.data: dict[str, tuple[float, dict]] = {}

	def get(self, session_id):
		found = self.data.get(session_id)
		if not found or found[0] < time.monotonic():
			self.data.pop(session_id, None)
			return None
		return found[1]

	def put(self, session_id, data, seconds):
		self.data[session_id] = (time.monotonic() + seconds, data)

	def delete(self, session_id):
		self.data.pop(session_id, None)


@dataclass
class Reply:
	status: int
	headers: dict[str, str] = field(default_factory=dict)
	body: bytes = b""


class _Headers:
	"""Case-insensitive lookups in the request's headers."""

	def __init__(self, headers: Mapping[str, str] | Iterable[tuple[str, str]]):
		items = headers.items() if isinstance(headers, Mapping) else headers
		self.values = {str(k).lower(): str(v) for k, v in items}

	def get(self, name: str) -> str | None:
		return self.values.get(name.lower())


def _error(id_, code: int, message: str, data=None) -> dict:
	error = {"code": code, "message": message}
	if data is not None:
		error["data"] = data
	return {"jsonrpc": "2.0", "id": id_, "error": error}


def _json(status: int, message: dict, headers: dict | None = None) -> Reply:
	body = json.dumps(message, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
	return Reply(status, {"Content-Type": "application/json", **(headers or {})}, body)


class _Fault(Exception):
	def __init__(self, status: int, code: int, message: str, id_=None):
		super().__init__(message)
		self.status, self.code, self.id = status, code, id_


def _accepts(accept: str | None) -> tuple[bool, bool]:
	"""(JSON acceptable, SSE acceptable) from an Accept header (absent: both)."""
	if not accept:
		return True, True
	kinds = {part.split(";")[0].strip().lower() for part in accept.split(",")}
	anything = bool(kinds & {"*/*"})
	return (
		anything or bool(kinds & {"application/json", "application/*"}),
		anything or bool(kinds & {"text/event-stream", "text/*"}),
	)


def _same_origin(origin: str, host: str | None) -> bool:
	if origin == "null":
		return False
	try:
		parts = urlsplit(origin)
	except ValueError:
		return False
	if not host or not parts.hostname:
		return False
	default = {"http": 80, "https": 443}.get(parts.scheme)
	mine = urlsplit(f"//{host}")
	return parts.hostname == mine.hostname and (parts.port or default) == (mine.port or default)


class Server:
	"""An MCP server of tools over streamable HTTP (see the module's doc)."""

	def __init__(
		self,
		name: str,
		version: str,
		sessions: Sessions,
		instructions: str | None = None,
		session_seconds: int = SESSION_SECONDS,
	):
		self.name = name
		self.version = version
		self.sessions = sessions
		self.instructions = instructions
		self.session_seconds = session_seconds

	def handle(
		self,
		method: str,
		headers,
		body: bytes,
		principal: str,
		tools: Callable[[], list[Tool]],
		authorize: Callable[[], None] | None = None,
		unknown_tool: Callable[[str, dict], None] | None = None,
	) -> Reply:
		"""Answer one HTTP request to the MCP endpoint from `principal` (an authenticated caller).
		`tools()` lists the tools it may call, `authorize()` (when given) raises Refused if it may
		not use the server at all; both are called only once the request is well-formed.
		`unknown_tool(name, arguments)` hears of each call of a tool not listed (to record it)."""
		_headers = _Headers(headers)
		try:
			origin = _headers.get("Origin")
			if origin and not _same_origin(origin, _headers.get("Host")):
				raise _Fault(403, INVALID_REQUEST, f"Origin {origin} is not this server's")
			method = method.upper()
			if method == "GET":
				return _json(
					405,
					_error(None, INVALID_REQUEST, "This server opens no stream: POST requests to it"),
					{"Allow": "POST, DELETE"},
				)
			if method == "DELETE":
				session_id = self._session(_headers, principal)[0]
				self.sessions.delete(session_id)
				return Reply(204)
			if method != "POST":
				return _json(
					405, _error(None, INVALID_REQUEST, f"{method} is not allowed"), {"Allow": "POST, DELETE"}
				)
			return self._post(_headers, body, principal, tools, authorize, unknown_tool)
		except _Fault as e:
			return _json(e.status, _error(e.id, e.code, str(e)))
		except Refused as e:
			return _json(e.status, _error(None, e.code, str(e)))

	def _session(self, headers: _Headers, principal: str) -> tuple[str, dict]:
		session_id = headers.get(SESSION_HEADER)
		if not session_id:
			raise _Fault(400, INVALID_REQUEST, f"Bad Request: no {SESSION_HEADER} header (initialize first)")
		found = self.sessions.get(session_id) if session_id.isascii() and len(session_id) <= 200 else None
		if not found or found.get("principal") != principal:
			raise _Fault(404, SESSION_NOT_FOUND, "Session not found: initialize again")
		return session_id, found

	def _post(self, headers: _Headers, body: bytes, principal: str, tools, authorize, unknown_tool) -> Reply:
		json_ok, sse_ok = _accepts(headers.get("Accept"))
		if not (json_ok or sse_ok):
			raise _Fault(406, INVALID_REQUEST, "Not Acceptable: accept application/json or text/event-stream")
		content_type = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
		if content_type != "application/json":
			raise _Fault(415, INVALID_REQUEST, "Unsupported Media Type: send application/json")
		if len(body) > MAX_BODY_BYTES:
			raise _Fault(413, INVALID_REQUEST, f"A message of at most {MAX_BODY_BYTES // 2**20} MiB")
		try:
			message = values.parse_json(body.decode("utf-8"), "the message")
		except (UnicodeDecodeError, CauldronDBError) as e:
			raise _Fault(400, PARSE_ERROR, f"Parse error: {e}") from None
		if isinstance(message, list):
			raise _Fault(400, INVALID_REQUEST, "Batches are not supported: send one message per request")
		kind, id_ = _kind(message)
		version = headers.get(VERSION_HEADER)
		if version is not None and version not in PROTOCOL_VERSIONS:
			raise _Fault(
				400,
				INVALID_REQUEST,
				f"Unsupported protocol version {version}; supported: {', '.join(PROTOCOL_VERSIONS)}",
				id_,
			)
		if authorize:
			try:
				authorize()
			except Refused as e:
				raise _Fault(e.status, e.code, str(e), id_) from None
		if kind == "request" and message["method"] == "initialize":
			return self._initialize(message, principal, json_ok)
		session_id, session = self._session(headers, principal)
		session = self._refreshed(session_id, session)
		if kind != "request":  # a notification or a response to us: nothing to answer
			return Reply(202)
		negotiated = session.get("version") or version or ASSUMED_VERSION
		answer = self._dispatch(message, negotiated, tools, unknown_tool)
		return self._reply(answer, json_ok)

	def _refreshed(self, session_id: str, session: dict) -> dict:
		if time.time() - session.get("touched", 0) > 60:  # sliding expiry, written once a minute at most
			session = {**session, "touched": time.time()}
			self.sessions.put(session_id, session, self.session_seconds)
		return session

	def _reply(self, answer: dict, json_ok: bool) -> Reply:
		if json_ok:
			return _json(200, answer)
		data = json.dumps(answer, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
		return Reply(
			200,
			{"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
			f"event: message\ndata: {data}\n\n".encode(),
		)

	def _initialize(self, message: dict, principal: str, json_ok: bool) -> Reply:
		params = message.get("params") or {}
		asked = params.get("protocolVersion")
		if not isinstance(asked, str):
			return _json(
				400, _error(message["id"], INVALID_PARAMS, "initialize needs params.protocolVersion")
			)
		version = asked if asked in PROTOCOL_VERSIONS else PROTOCOL_VERSIONS[0]
		session_id = secrets.token_urlsafe(32)
		client = params.get("clientInfo") if isinstance(params.get("clientInfo"), dict) else {}
		self.sessions.put(
			session_id,
			{
				"principal": principal,
				"version": version,
				"client": {k: client.get(k) for k in ("name", "version") if isinstance(client.get(k), str)},
				"touched": time.time(),
			},
			self.session_seconds,
		)
		result = {
			"protocolVersion": version,
			"capabilities": {"tools": {"listChanged": False}},
			"serverInfo": {"name": self.name, "version": self.version},
		}
		if self.instructions:
			result["instructions"] = self.instructions
		reply = self._reply({"jsonrpc": "2.0", "id": message["id"], "result": result}, json_ok)
		reply.headers[SESSION_HEADER] = session_id
		return reply

	def _dispatch(self, message: dict, version: str, tools, unknown_tool=None) -> dict:
		id_, method = message["id"], message["method"]
		params = message.get("params")
		if params is None:
			params = {}
		if not isinstance(params, dict):
			return _error(id_, INVALID_PARAMS, "params must be an object")
		try:
			if method == "ping":
				result = {}
			elif method == "tools/list":
				result = {"tools": [tool.listed() for tool in tools()]}
			elif method == "tools/call":
				result = self._call(params, version, tools, unknown_tool)
			else:
				return _error(id_, METHOD_NOT_FOUND, f"Method not found: {method}")
		except _InvalidParams as e:
			return _error(id_, INVALID_PARAMS, str(e))
		except Refused as e:
			return _error(id_, e.code, str(e))
		except Exception:
			logger.exception("MCP %s failed", method)
			return _error(id_, INTERNAL_ERROR, "Internal error")
		return {"jsonrpc": "2.0", "id": id_, "result": result}

	def _call(self, params: dict, version: str, tools, unknown_tool=None) -> dict:
		name, arguments = params.get("name"), params.get("arguments")
		if not isinstance(name, str):
			raise _InvalidParams("tools/call needs params.name, a tool's name")
		if arguments is None:
			arguments = {}
		if not isinstance(arguments, dict):
			raise _InvalidParams("params.arguments must be an object")
		tool = next((t for t in tools() if t.name == name), None)
		try:
			if tool is None:
				if unknown_tool:
					unknown_tool(name, arguments)
				raise UnknownTool(f"Unknown tool: {name}")
			value = tool.run(arguments)
		except UnknownTool as e:
			raise _InvalidParams(str(e)) from None
		except ToolFailed as e:
			return {"content": [{"type": "text", "text": str(e)}], "isError": True}
		text = json.dumps(value, ensure_ascii=False, default=str, allow_nan=False)
		result = {"content": [{"type": "text", "text": text}], "isError": False}
		if version >= STRUCTURED_FROM:
			structured = json.loads(text)
			result["structuredContent"] = (
				structured if isinstance(structured, dict) else {"result": structured}
			)
		return result


class _InvalidParams(Exception):
	pass


def _kind(message) -> tuple[str, object]:
	"""("request" | "notification" | "response", id) of a JSON-RPC 2.0 message, or a -32600."""
	if not isinstance(message, dict):
		raise _Fault(400, INVALID_REQUEST, "Invalid Request: a JSON-RPC message is an object")
	id_ = message.get("id")
	valid_id = isinstance(id_, str) or (isinstance(id_, int) and not isinstance(id_, bool))
	if message.get("jsonrpc") != "2.0":
		raise _Fault(
			400, INVALID_REQUEST, 'Invalid Request: "jsonrpc" must be "2.0"', id_ if valid_id else None
		)
	if "method" in message:
		if not isinstance(message["method"], str):
			raise _Fault(
				400, INVALID_REQUEST, "Invalid Request: method must be a string", id_ if valid_id else None
			)
		if "id" not in message:
			return "notification", None
		if not valid_id:
			raise _Fault(400, INVALID_REQUEST, "Invalid Request: id must be a string or an integer")
		return "request", id_
	if ("result" in message or "error" in message) and valid_id:
		return "response", id_
	raise _Fault(400, INVALID_REQUEST, "Invalid Request: neither a request, a notification nor a response")
