"""Aether's MCP endpoint (streamable HTTP): /api/method/cauldron.api.mcp.handle?instance=<agent instance>

An agent's MCP client connects with the Frappe API key of its user (`Authorization: token
key:secret`) and names its agent instance in the URL. Its tools: tasks_claim, tasks_heartbeat,
tasks_complete and tasks_fail for that instance, plus the Cauldron capabilities its definition's
`tools` allow (cauldron.aether.mcp_tools). Each runs the whitelisted method of cauldron.api.aether
that REST callers use, with the same permission checks, limits and interaction records; a call
that fails is rolled back and answered as a tool error the model reads. The protocol itself is
cauldron.aether.mcp (why not the official SDK: see there); sessions live in Frappe's Redis cache.
"""

import json

import frappe
from frappe import _
from frappe.utils import strip_html
from werkzeug.wrappers import Response

import cauldron
from cauldron.aether import mcp, mcp_tools
from cauldron.api import aether

SESSION_KEY = "cauldron:mcp:session:"
INSTRUCTIONS = (
	"Cauldron's agent runtime. Call tasks_claim for work, tasks_heartbeat while working on a task,"
	" then tasks_complete (with its result) or tasks_fail (with the error). The other tools are"
	" those this agent's definition allows; every call is recorded."
)


class CacheSessions:
	"""MCP sessions in the site's Redis cache, so that any web worker answers a session's requests."""

	def get(self, session_id):
		return frappe.cache.get_value(SESSION_KEY + session_id, shared=True)

	def put(self, session_id, data, seconds):
		frappe.cache.set_value(SESSION_KEY + session_id, data, expires_in_sec=seconds, shared=True)

	def delete(self, session_id):
		frappe.cache.delete_value(SESSION_KEY + session_id, shared=True)


SERVER = mcp.Server("cauldron", cauldron.__version__, CacheSessions(), instructions=INSTRUCTIONS)


@frappe.whitelist(methods=["GET", "POST", "DELETE"])
def handle():
	"""One HTTP request of the MCP streamable HTTP transport (POST a JSON-RPC message, DELETE the
	session; GET is 405). See cauldron.aether.mcp for what is answered how."""
	request = frappe.request
	instance = request.args.get("instance")
	reply = SERVER.handle(
		request.method,
		request.headers.items(),
		request.get_data(cache=True),
		f"{frappe.session.user}\n{instance}",
		tools=lambda: _tools(instance),
		authorize=lambda: _authorize(instance),
		unknown_tool=lambda name, arguments: _record_refusal(instance, name, arguments),
	)
	frappe.local.message_log = []
	return Response(reply.body, status=reply.status, headers=reply.headers)


def _message(e: Exception) -> str:
	return strip_html(str(e)) or e.__class__.__name__


def _authorize(instance):
	"""The caller may run this instance (cauldron.api.aether's check), or a Refused."""
	if instance in (None, ""):
		raise mcp.Refused(400, _("Name the agent instance: ?instance=<its id> in the endpoint's URL"))
	try:
		aether._may_work(instance)
	except frappe.PermissionError as e:
		raise mcp.Refused(403, _message(e)) from None
	except frappe.DoesNotExistError as e:
		raise mcp.Refused(400, _message(e)) from None
	except frappe.ValidationError as e:
		raise mcp.Refused(400, _message(e)) from None


def _tools(instance) -> list[mcp.Tool]:
	definition = frappe.db.get_value(
		"Aether Agent Definition", aether._definition_of(instance), ["name", "tools"], as_dict=True
	)
	return [
		mcp.Tool(spec.mcp_name, spec.description, spec.input_schema, _runner(spec, instance), spec.read_only)
		for spec in mcp_tools.specs(aether._allowed(definition))
	]


def _complete(instance, a):
	result = a.get("result")
	# the REST method takes JSON text or a parsed value: a JSON string result is sent as JSON text
	return aether.complete(
		task=a["task"], instance=instance, result=json.dumps(result) if isinstance(result, str) else result
	)


RUNTIME = {
	"tasks.claim": lambda instance, a: aether.claim(
		instance=instance, task_types=a.get("task_types"), limit=a.get("limit", 1), lease=a.get("lease")
	),
	"tasks.heartbeat": lambda instance, a: aether.heartbeat(
		instance=instance, task=a.get("task"), lease=a.get("lease")
	),
	"tasks.complete": _complete,
	"tasks.fail": lambda instance, a: aether.fail(
		task=a["task"], instance=instance, error=a["error"], retry=a.get("retry", True)
	),
}


def _runner(spec: mcp_tools.Spec, instance: str):
	def run(arguments: dict):
		_check_arguments(spec, arguments)
		try:
			if spec.name in RUNTIME:
				value = RUNTIME[spec.name](instance, arguments)
			else:
				task = frappe.db.get_value("Aether Agent Instance", instance, "current_task")
				value = aether.call_tool(instance=instance, tool=spec.name, arguments=arguments, task=task)
		except Exception as e:
			# Nothing of a failed call stands (a refused tool call's record is committed already).
			frappe.db.rollback()
			frappe.local.message_log = []
			if getattr(e, "http_status_code", 500) < 500:
				raise mcp.ToolFailed(_message(e)) from None
			raise
		return json.loads(frappe.as_json(value))

	return run


def _check_arguments(spec: mcp_tools.Spec, arguments: dict) -> None:
	schema = spec.input_schema
	missing = [key for key in schema.get("required", ()) if key not in arguments]
	if missing:
		raise mcp.ToolFailed(_("{0} needs {1}").format(spec.name, ", ".join(missing)))
	if schema.get("additionalProperties") is False:
		unknown = sorted(set(arguments) - set(schema["properties"]))
		if unknown:
			raise mcp.ToolFailed(
				_("{0} takes no {1} (it takes {2})").format(
					spec.name, ", ".join(unknown), ", ".join(schema["properties"])
				)
			)


def _record_refusal(instance, name, arguments) -> None:
	"""A call of a tool this agent does not have is refused and recorded, as call_tool does."""
	try:
		aether.call_tool(instance=instance, tool=mcp_tools.cauldron_name(name), arguments=arguments)
	except Exception:
		frappe.db.rollback()
		frappe.local.message_log = []
