"""Aether endpoints: /api/method/cauldron.api.aether.<name>"""

import json
import uuid
from contextlib import contextmanager

import frappe
from frappe import _

from cauldron import db, params
from cauldron.aether import tasks, tools
from cauldron.pg import CauldronDBError, tables, values

MAX_BATCH = 5000


@frappe.whitelist(methods=["POST"])
@params.checked(json=("interactions",))
def record_interactions(interactions) -> list[str]:
	"""Record agent interactions in aether.agent_interactions with one statement; returns their ids.

	`interactions` is a list of {agent_instance_id, session_id, interaction_type, content, metadata}.
	The caller needs write permission on each agent instance named (an Agent Operator has it); one it
	may not write and one that does not exist get the same refusal. The batch is checked whole before
	anything is written: one bad interaction records none of them.
	"""
	frappe.has_permission("Aether Agent Instance", "write", throw=True)
	if not isinstance(interactions, list) or not interactions:
		frappe.throw(_("interactions must be a non-empty list"), params.InvalidParameter)
	if len(interactions) > MAX_BATCH:
		frappe.throw(
			_("At most {0} interactions per call, not {1}").format(MAX_BATCH, len(interactions)),
			params.InvalidParameter,
		)
	rows = []
	for position, item in enumerate(interactions, 1):
		if not isinstance(item, dict):
			frappe.throw(_("Interaction {0} is not an object").format(position), params.InvalidParameter)
		rows.append(
			tables.AgentInteraction(
				session_id=item.get("session_id"),
				agent_instance_id=instance_id(item.get("agent_instance_id"), position),
				interaction_type=item.get("interaction_type"),
				content=item.get("content"),
				metadata=item.get("metadata"),
			)
		)
	instances = sorted({row.agent_instance_id for row in rows})
	found = set(frappe.get_all("Aether Agent Instance", filters={"name": ("in", instances)}, pluck="name"))
	for instance in instances:
		if instance not in found or not frappe.has_permission("Aether Agent Instance", "write", doc=instance):
			frappe.throw(
				_("You may not record interactions of agent instance {0}").format(instance),
				frappe.PermissionError,
				title=_("Not permitted"),
			)
	with params.refused(_("Invalid agent interaction")):
		return tables.write_agent_interactions(db.cursor(), rows)


def instance_id(value, position: int) -> str:
	"""The instance's name: its UUID in the canonical form (lower case) that names it."""
	try:
		return str(uuid.UUID(str(value)))
	except ValueError:
		frappe.throw(
			_("Interaction {0}: agent_instance_id {1} is not a UUID").format(
				position, frappe.bold(values.shown(value))
			),
			params.InvalidParameter,
			title=_("Invalid agent interaction"),
		)


# --- the task runtime (cauldron.aether.tasks) -------------------------------------------------------
# An agent's runtime calls these as the Frappe user of its API key, who needs write permission on
# its agent instance and on agent tasks (an Agent Operator has both). Permission is checked before
# anything is looked up; a refused call changes nothing (the request's transaction is rolled back).


class Conflict(frappe.ValidationError):
	"""The call is valid but the task or instance is not in a state that allows it."""

	http_status_code = 409


# The engine's errors as Frappe's, with their HTTP statuses.
ENGINE_ERRORS = (
	(tasks.UnknownTask, frappe.DoesNotExistError),
	(tasks.UnknownInstance, frappe.DoesNotExistError),
	(tasks.NotHeld, frappe.PermissionError),
	(tasks.UnknownTaskType, params.InvalidParameter),
	(tasks.TaskTypeNotAllowed, params.InvalidParameter),
	(tasks.TaskError, Conflict),
	(values.InvalidValue, params.InvalidParameter),
)
CLAIM_TRIES = 5


def throw_engine_error(e: CauldronDBError):
	for engine_error, frappe_error in ENGINE_ERRORS:
		if isinstance(e, engine_error):
			frappe.throw(str(e), frappe_error, title=_("Agent task"))
	raise e


@contextmanager
def engine_errors():
	try:
		yield
	except CauldronDBError as e:
		throw_engine_error(e)


def _may_work(instance) -> str:
	"""The instance named, once the caller may run agents: write on instances and tasks first, then
	the instance exists, then the caller may write that one."""
	frappe.has_permission("Aether Agent Instance", "write", throw=True)
	frappe.has_permission("Aether Agent Task", "write", throw=True)
	with params.refused():
		values.name(instance, "instance")
	if not frappe.db.exists("Aether Agent Instance", instance):
		frappe.throw(
			_("There is no agent instance {0}").format(frappe.bold(values.shown(instance))),
			frappe.DoesNotExistError,
		)
	frappe.has_permission("Aether Agent Instance", "write", doc=instance, throw=True)
	return instance


def _lease(lease) -> float:
	if lease in (None, ""):
		return tasks.DEFAULT_LEASE_SECONDS
	return float(params.whole_number(lease, "lease", 1, int(tasks.MAX_LEASE_SECONDS)))


@frappe.whitelist(methods=["POST"])
@params.checked(json=("task_types",), names=("instance",))
def claim(instance, task_types=None, limit=1, lease=None) -> list[dict]:
	"""Claim up to `limit` (1-100) ready tasks for `instance`, highest priority then oldest, of the
	`task_types` (a JSON list; none: those its definition allows). Each is leased for `lease` seconds
	(default 300): heartbeat to keep it, complete or fail to let it go. Returns the tasks."""
	_may_work(instance)
	limit = params.whole_number(limit if limit not in (None, "") else 1, "limit", 1, tasks.MAX_CLAIM)
	lease = _lease(lease)
	if task_types is not None and not isinstance(task_types, list):
		frappe.throw(_("task_types must be a JSON list of task types"), params.InvalidParameter)
	cur = db.cursor()
	for attempt in range(CLAIM_TRIES):
		try:
			claimed = tasks.claim(cur, instance, task_types, limit, lease)
			break
		except tasks.Contention as e:
			if attempt == CLAIM_TRIES - 1:
				frappe.throw(str(e), Conflict, title=_("Agent task"))
			# REPEATABLE READ: another claimer committed after this request's snapshot. Nothing was
			# written; a new transaction sees the queue as it is now.
			frappe.db.rollback()
			cur = db.cursor()
		except CauldronDBError as e:
			throw_engine_error(e)
	return [
		{
			"name": t.name,
			"task_name": t.task_name,
			"task_type": t.task_type,
			"priority": t.priority,
			"description": t.description,
			"parameters": t.parameters,
			"attempts": t.attempts,
			"max_attempts": t.max_attempts,
			"lease_expires_at": t.lease_expires_at,
			"definition": t.definition,
		}
		for t in claimed
	]


@frappe.whitelist(methods=["POST"])
@params.checked(names=("instance",))
def heartbeat(instance, task=None, lease=None) -> dict:
	"""The instance is alive (an offline one comes back); with `task`, its lease is extended by
	`lease` seconds (default 300). Returns the lease's new end."""
	_may_work(instance)
	with params.refused():
		if task not in (None, ""):
			values.name(task, "task")
		else:
			task = None
	with engine_errors():
		expires = tasks.heartbeat(db.cursor(), task, instance, _lease(lease))
	return {"task": task, "lease_expires_at": expires}


@frappe.whitelist(methods=["POST"])
@params.checked(json=("result",), names=("task", "instance"))
def complete(task, instance, result=None) -> dict:
	"""The instance finished `task`, which it holds: completed with `result` (JSON, up to 256 KiB)."""
	_may_work(instance)
	with engine_errors():
		tasks.complete(db.cursor(), task, instance, result)
	return {"task": task, "status": "completed"}


@frappe.whitelist(methods=["POST"])
@params.checked(names=("task", "instance"))
def fail(task, instance, error, retry=True) -> dict:
	"""The instance's attempt at `task` failed with `error` (text). With `retry` (default) the task
	is tried again after a backoff while attempts remain; otherwise it fails for good."""
	_may_work(instance)
	if not isinstance(error, str) or not error.strip():
		frappe.throw(_("error must be a text saying what went wrong"), params.InvalidParameter)
	retry = _flag(retry, "retry")
	with engine_errors():
		status = tasks.fail(db.cursor(), task, instance, error, retry)
	return {"task": task, "status": status}


def _flag(value, what: str) -> bool:
	if isinstance(value, bool):
		return value
	if value in (0, 1) and not isinstance(value, float):
		return bool(value)
	if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
		return value.strip().lower() in ("true", "1")
	frappe.throw(
		_("{0} must be true or false, not {1}").format(what, values.shown(value)), params.InvalidParameter
	)


@frappe.whitelist(methods=["POST"])
@params.checked(json=("memory", "state"), names=("instance",))
def update_instance(instance, version, memory=None, state=None) -> dict:
	"""Replace the instance's memory and/or state if it is still at `version` (what the caller read);
	a caller that read an older version gets a 409 and nothing changes. Returns the new version."""
	_may_work(instance)
	version = params.whole_number(version, "version", 0, 2**62)
	changes = {k: v for k, v in (("memory", memory), ("state", state)) if v is not None}
	with engine_errors():
		return {
			"instance": instance,
			"version": tasks.update_instance(db.cursor(), instance, version, **changes),
		}


@frappe.whitelist(methods=["POST"])
@params.checked(json=("response",), names=("approval",))
def respond(approval, decision, response=None, notes=None) -> dict:
	"""Approve or reject a pending HITL Approval (`decision`: approve or reject), with an optional
	JSON `response` and `notes`. Approved, its task moves on; rejected, its task is cancelled.
	The requester cannot approve; a definition that names approvers lets only them answer."""
	frappe.has_permission("Aether HITL Approval", "write", throw=True)
	statuses = {"approve": "approved", "approved": "approved", "reject": "rejected", "rejected": "rejected"}
	if not isinstance(decision, str) or decision not in statuses:
		frappe.throw(
			_("decision must be approve or reject, not {0}").format(values.shown(decision)),
			params.InvalidParameter,
		)
	if notes is not None and not isinstance(notes, str):
		frappe.throw(_("notes must be text"), params.InvalidParameter)
	if not frappe.db.exists("Aether HITL Approval", approval):
		frappe.throw(
			_("There is no HITL Approval {0}").format(frappe.bold(approval)), frappe.DoesNotExistError
		)
	doc = frappe.get_doc("Aether HITL Approval", approval)
	doc.check_permission("write")
	if doc.status != "pending":
		frappe.throw(_("This approval is {0} already.").format(_(doc.status)), Conflict)
	doc.status = statuses[decision]
	if response is not None:
		doc.response = frappe.as_json(response)
	if notes is not None:
		doc.notes = notes
	doc.save()
	return {
		"approval": doc.name,
		"status": doc.status,
		"task": doc.task,
		"task_status": frappe.db.get_value("Aether Agent Task", doc.task, "status"),
	}


@frappe.whitelist(methods=["POST"])
@params.checked(names=("task",))
def cancel_task(task, reason=None) -> dict:
	"""Cancel a task that has not ended (from its form, for instance); a running task's instance
	lets go of it, and its late complete or fail is refused."""
	frappe.has_permission("Aether Agent Task", "write", throw=True)
	if reason is not None and not isinstance(reason, str):
		frappe.throw(_("reason must be text"), params.InvalidParameter)
	if not frappe.db.exists("Aether Agent Task", task):
		frappe.throw(_("There is no agent task {0}").format(frappe.bold(task)), frappe.DoesNotExistError)
	frappe.has_permission("Aether Agent Task", "write", doc=task, throw=True)
	with engine_errors():
		before = tasks.cancel(db.cursor(), task, reason or _("cancelled by {0}").format(frappe.session.user))
	return {"task": task, "status": "cancelled", "was": before}


# --- tools (cauldron.aether.tools) ----------------------------------------------------------------

MAX_TOOL_ROWS = 1000


@frappe.whitelist(methods=["POST"])
@params.checked(json=("arguments",), names=("instance",))
def call_tool(instance, tool, arguments=None, task=None):
	"""Call one of Cauldron's capabilities for `instance`, if its definition's `tools` allow it (see
	cauldron.aether.tools): `lore.search`, `documents.read` ({doctype, name}), `documents.create`
	({doctype, fields}), `synapse.metrics` ({filters, fields, limit}), `interactions.record`
	({interactions}), `approvals.request` ({task, approval_type, description, details}). Frappe's
	permissions of the caller apply as well. Every call is recorded as a tool_call interaction of the
	instance (session: `task` when given), with a tool_result or error after it; a call outside the
	allow-list is refused (403) and recorded all the same."""
	_may_work(instance)
	if arguments is None:
		arguments = {}
	if not isinstance(arguments, dict):
		frappe.throw(_("arguments must be a JSON object"), params.InvalidParameter)
	with params.refused():
		if task not in (None, ""):
			values.name(task, "task")
		else:
			task = None
	definition = frappe.db.get_value(
		"Aether Agent Definition", _definition_of(instance), ["name", "tools"], as_dict=True
	)
	doctype = arguments.get("doctype") if tool in tools.DOCTYPE_TOOLS else None
	session = _session(task, instance)
	call = {"tool": tool if isinstance(tool, str) else values.shown(tool), "arguments": arguments}
	try:
		tools.check(_allowed(definition), tool, doctype)
	except tools.ToolRefused as e:
		_record_and_commit(
			instance,
			session,
			[("tool_call", call, {"refused": True}), ("error", {"tool": call["tool"], "error": str(e)}, {})],
		)
		frappe.throw(str(e), frappe.PermissionError, title=_("Tool not allowed"))
	frappe.db.savepoint("cauldron_tool_call")
	try:
		result = TOOL_CALLS[tool](instance, arguments)
	except Exception as e:
		frappe.db.rollback(save_point="cauldron_tool_call")
		_record_and_commit(
			instance,
			session,
			[("tool_call", call, {}), ("error", {"tool": tool, "error": str(e)[:4000]}, {})],
		)
		raise
	summary = {"tool": tool, "ok": True}
	if isinstance(result, list):
		summary["rows"] = len(result)
	elif isinstance(result, dict) and result.get("name"):
		summary["name"] = result["name"]
	tables.write_agent_interactions(
		db.cursor(),
		[
			tables.AgentInteraction(session, instance, "tool_call", call, {}),
			tables.AgentInteraction(session, instance, "tool_result", summary, {}),
		],
	)
	return result


def _definition_of(instance: str) -> str:
	return frappe.db.get_value("Aether Agent Instance", instance, "definition")


def _allowed(definition) -> dict:
	raw = definition.tools if definition else None
	try:
		parsed = json.loads(raw) if isinstance(raw, str) and raw else raw
		return tools.allow_list(parsed)
	except (ValueError, tools.ToolError):
		return {}  # an allow-list that cannot be read allows nothing


def _session(task: str | None, instance: str) -> str:
	"""The interaction session of a tool call: the task's id, else the instance's own."""
	for name in (task, instance):
		try:
			return str(uuid.UUID(str(name)))
		except ValueError:
			continue
	return str(uuid.uuid5(uuid.NAMESPACE_URL, instance))


def _record_and_commit(instance: str, session: str, rows) -> None:
	"""Record interactions that must outlive the refusal about to be raised (which rolls back)."""
	frappe.db.rollback()
	tables.write_agent_interactions(
		db.cursor(),
		[tables.AgentInteraction(session, instance, kind, content, meta) for kind, content, meta in rows],
	)
	frappe.db.commit()


def _lore_search(_instance, arguments):
	return frappe.get_attr("cauldron.api.lore.search")(**arguments)


def _read_document(_instance, arguments):
	doctype, name = arguments.get("doctype"), arguments.get("name")
	with params.refused():
		values.name(name, "name")
	doc = frappe.get_doc(doctype, name)
	doc.check_permission("read")
	data = doc.as_dict(no_default_fields=False)
	for df in doc.meta.fields:
		if df.fieldtype == "Password":
			data.pop(df.fieldname, None)
	return data


def _create_document(_instance, arguments):
	fields = arguments.get("fields") or {}
	if not isinstance(fields, dict):
		frappe.throw(_("fields must be a JSON object"), params.InvalidParameter)
	doc = frappe.get_doc({**fields, "doctype": arguments["doctype"]})
	doc.insert()
	return {"doctype": doc.doctype, "name": doc.name}


def _synapse_metrics(_instance, arguments):
	limit = params.whole_number(arguments.get("limit", 100), "limit", 1, MAX_TOOL_ROWS)
	return frappe.get_list(
		"Synapse Metric",
		filters=params.filters(arguments.get("filters")) and arguments.get("filters"),
		fields=arguments.get("fields") or ["*"],
		limit_page_length=limit,
		order_by=None,
	)


def _record(_instance, arguments):
	return record_interactions(interactions=arguments.get("interactions"))


def _request_approval(instance, arguments):
	from cauldron.aether.doctype.aether_agent_task.aether_agent_task import request_approval

	task = arguments.get("task")
	with params.refused():
		values.name(task, "task")
	held = frappe.db.get_value("Aether Agent Task", task, ["status", "assigned_to"])
	if not held or held != ("running", instance):
		frappe.throw(_("Instance {0} does not hold task {1}").format(instance, task), frappe.PermissionError)
	approval_type = arguments.get("approval_type") or "tool_use"
	if approval_type not in tasks.APPROVAL_TYPES:
		frappe.throw(
			_("approval_type must be one of {0}").format(", ".join(tasks.APPROVAL_TYPES)),
			params.InvalidParameter,
		)
	doc = frappe.get_doc("Aether Agent Task", task)
	approval = request_approval(doc, approval_type, arguments.get("description"))
	if arguments.get("details") is not None:
		approval.db_set("details", frappe.as_json(arguments["details"]))
	return {"doctype": approval.doctype, "name": approval.name, "expires_at": approval.expires_at}


TOOL_CALLS = {
	"lore.search": _lore_search,
	"documents.read": _read_document,
	"documents.create": _create_document,
	"synapse.metrics": _synapse_metrics,
	"interactions.record": _record,
	"approvals.request": _request_approval,
}


@frappe.whitelist()
@params.checked()
def inbox(everyone=0, limit=100) -> list[dict]:
	"""Pending HITL Approvals assigned to the caller (with `everyone`, every pending one the caller may
	read), soonest to expire first, with their tasks: the Approval Inbox page."""
	frappe.has_permission("Aether HITL Approval", "read", throw=True)
	everyone = _flag(everyone if everyone not in (None, "") else 0, "everyone")
	limit = params.whole_number(limit if limit not in (None, "") else 100, "limit", 1, 1000)
	filters = {"status": "pending"}
	if not everyone:
		assigned = frappe.get_all(
			"ToDo",
			filters={
				"reference_type": "Aether HITL Approval",
				"allocated_to": frappe.session.user,
				"status": "Open",
			},
			pluck="reference_name",
		)
		filters["name"] = ("in", assigned or [""])
	approvals = frappe.get_list(
		"Aether HITL Approval",
		filters=filters,
		fields=["name", "task", "approval_type", "description", "owner", "creation", "expires_at"],
		order_by="expires_at asc",
		limit_page_length=limit,
	)
	names = [a.task for a in approvals]
	found = {
		t.name: t
		for t in frappe.get_all(
			"Aether Agent Task",
			filters={"name": ("in", names or [""])},
			fields=["name", "task_name", "task_type", "priority", "status"],
		)
	}
	for approval in approvals:
		task = found.get(approval.task) or {}
		approval.update(
			{
				"task_name": task.get("task_name"),
				"task_type": task.get("task_type"),
				"priority": task.get("priority"),
				"task_status": task.get("status"),
			}
		)
	return approvals


# --- Desk: the task board and the instance form -------------------------------------------------

BOARD_FIELDS = [
	"name",
	"task_name",
	"task_type",
	"priority",
	"assigned_to",
	"attempts",
	"max_attempts",
	"not_before",
	"lease_expires_at",
	"started_at",
	"completed_at",
	"modified",
	"error_message",
]
# Each column in the order its tasks are taken or were last moved.
BOARD_ORDER = {
	"pending": "not_before asc, priority asc, creation asc",
	"awaiting_approval": "creation asc",
	"ready": "priority asc, creation asc",
	"running": "lease_expires_at asc",
}


@frappe.whitelist()
@params.checked(names=("definition",))
def board(definition=None, task_type=None, limit=20) -> dict:
	"""Agent Tasks by status, for the Task Board page: every status of the state machine in its
	order, each with how many tasks the caller may read and the first `limit` (1-100) of them (the
	queue's order for waiting ones, the latest moved for the others), with their instances' names."""
	frappe.has_permission("Aether Agent Task", "read", throw=True)
	limit = params.whole_number(limit if limit not in (None, "") else 20, "limit", 1, 100)
	filters = {}
	if definition not in (None, ""):
		filters["definition"] = definition
	if task_type not in (None, ""):
		if task_type not in tasks.TASK_TYPES:
			frappe.throw(
				_("unknown task type {0}; known: {1}").format(
					values.shown(task_type), ", ".join(tasks.TASK_TYPES)
				),
				params.InvalidParameter,
			)
		filters["task_type"] = task_type
	counts = {
		row.status: row.count
		for row in frappe.get_list(
			"Aether Agent Task",
			filters=filters,
			fields=["status", "count(name) as count"],
			group_by="status",
			order_by="status asc",
		)
	}
	columns = []
	for status in tasks.STATUSES:
		rows = (
			frappe.get_list(
				"Aether Agent Task",
				filters={**filters, "status": status},
				fields=BOARD_FIELDS,
				order_by=BOARD_ORDER.get(status, "modified desc"),
				limit_page_length=limit,
			)
			if counts.get(status)
			else []
		)
		columns.append({"status": status, "count": counts.get(status, 0), "tasks": rows})
	held = sorted({t.assigned_to for c in columns for t in c["tasks"] if t.assigned_to})
	names = dict(
		frappe.get_all(
			"Aether Agent Instance",
			filters={"name": ("in", held or [""])},
			fields=["name", "instance_name"],
			as_list=True,
		)
	)
	for column in columns:
		for t in column["tasks"]:
			t["instance_name"] = names.get(t.assigned_to)
	return {"columns": columns, "now": frappe.utils.now_datetime()}


@frappe.whitelist()
@params.checked(names=("instance",))
def instance_summary(instance, interactions=10) -> dict:
	"""The Agent Instance form's runtime panel: its status, its current task with the lease's end and
	seconds left, the seconds since its last heartbeat (and whether the rescue job will mark it
	offline), the tasks it holds, and its latest `interactions` (0-100) interactions."""
	frappe.has_permission("Aether Agent Instance", "read", throw=True)
	count = params.whole_number(
		interactions if interactions not in (None, "") else 10, "interactions", 0, 100
	)
	if not frappe.db.exists("Aether Agent Instance", instance):
		frappe.throw(
			_("There is no agent instance {0}").format(frappe.bold(values.shown(instance))),
			frappe.DoesNotExistError,
		)
	frappe.has_permission("Aether Agent Instance", "read", doc=instance, throw=True)
	doc = frappe.db.get_value(
		"Aether Agent Instance",
		instance,
		[
			"name",
			"instance_name",
			"status",
			"definition",
			"current_task",
			"last_heartbeat",
			"last_active_at",
			"version",
		],
		as_dict=True,
	)
	now = frappe.utils.now_datetime()

	def seconds(since, until):
		return round((until - since).total_seconds(), 1) if since and until else None

	heartbeat_age = seconds(doc.last_heartbeat, now)
	summary = {
		**doc,
		"now": now,
		"heartbeat_age_seconds": heartbeat_age,
		"offline_after_seconds": tasks.DEFAULT_OFFLINE_AFTER_SECONDS,
		"heartbeat_stale": heartbeat_age is not None and heartbeat_age > tasks.DEFAULT_OFFLINE_AFTER_SECONDS,
		"current": None,
		"held": [],
		"interactions": [],
	}
	if frappe.has_permission("Aether Agent Task", "read"):
		held = frappe.get_list(
			"Aether Agent Task",
			filters={"assigned_to": instance, "status": "running"},
			fields=[
				"name",
				"task_name",
				"task_type",
				"status",
				"started_at",
				"lease_expires_at",
				"attempts",
				"max_attempts",
			],
			order_by="lease_expires_at asc",
			limit_page_length=100,
		)
		for t in held:
			t["lease_seconds_left"] = seconds(now, t.lease_expires_at)
		summary["held"] = held
		if doc.current_task and frappe.has_permission("Aether Agent Task", "read", doc=doc.current_task):
			current = next((t for t in held if t.name == doc.current_task), None)
			summary["current"] = current or frappe.db.get_value(
				"Aether Agent Task",
				doc.current_task,
				[
					"name",
					"task_name",
					"task_type",
					"status",
					"started_at",
					"lease_expires_at",
					"attempts",
					"max_attempts",
				],
				as_dict=True,
			)
	if count and frappe.has_permission("Aether Agent Interaction", "read"):
		summary["interactions"] = frappe.get_list(
			"Aether Agent Interaction",
			filters={"agent_instance_id": instance},
			fields=["name", "created_at", "session_id", "interaction_type", "content"],
			order_by="created_at desc",
			limit_page_length=count,
		)
	return summary
