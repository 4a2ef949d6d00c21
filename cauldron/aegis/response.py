"""Aegis response (Frappe glue): detections become incidents, incidents run their playbook's steps.

Incidents. A detection of rule R (a playbook's name, or `threat:<Aegis Threat>`) for group K opens an
Aegis Security Incident, or adds to the open one (open, investigating or contained) of the same
(R, K) whose last event is within R's window: `related_events` {"events": [ids], "count": n},
`related_threats` {"threats": [names], "indicators": [...]}, `event_count`, `first_event_at`,
`last_event_at`, and a `timeline` {"entries": [{"at", "kind", "text", "by", ...}]} of what happened
and what was done. The matched events get `is_incident`.

Playbooks. When an incident opens, its playbook's steps (cauldron.aegis.playbooks) are laid out in
`response_steps`, filled from the incident, and taken in order:
- `requires_approval`: each step waits for an Aether HITL Approval (an Aether Agent Task of type
  remediation that requires approval; Aether assigns it to its approvers and sets its expiry). The
  step runs as soon as the approval is approved, by someone other than who asked for it (the
  detection job's user), in the approver's transaction; rejected or expired, the step is skipped.
  Then the next step asks for its own approval.
- otherwise an automated playbook runs its steps at once; a manual one lists them as `manual`.
Every step's move is a timeline entry and a core.audit_log row (action `aegis_step`).
"""

import json
from dataclasses import replace
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import frappe
from frappe import _
from frappe.utils import get_system_timezone

from cauldron import db, events
from cauldron.aegis import detect, playbooks
from cauldron.aegis.rules import SEVERITIES, Detection, RuleError, compile_indicators, compile_rule
from cauldron.aether import tasks

INCIDENT = "Aegis Security Incident"
PLAYBOOK = "Aegis Security Playbook"
OPEN = ("open", "investigating", "contained")
MAX_RELATED = 10_000  # event ids kept in related_events (the count goes on)
MAX_TIMELINE = 1000
AUDIT_ACTION = "aegis_step"
PROTECTED_USERS = ("Administrator", "Guest")
ENDED = ("done", "failed", "skipped")


# --- times --------------------------------------------------------------------------------------


def _zone() -> ZoneInfo:
	return ZoneInfo(get_system_timezone())


def local(moment: datetime) -> datetime:
	"""An aware time as Frappe keeps it: naive, in the site's time zone."""
	return moment.astimezone(_zone()).replace(tzinfo=None)


def aware(value) -> datetime | None:
	if not value:
		return None
	moment = frappe.utils.get_datetime(value)
	return moment.replace(tzinfo=_zone()) if moment.tzinfo is None else moment


def _now_text() -> str:
	return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _json(value, default):
	if isinstance(value, str):
		try:
			value = json.loads(value) if value.strip() else None
		except ValueError:
			value = None
	return default if value is None else value


# --- rules ---------------------------------------------------------------------------------------


def compile_playbooks() -> tuple[list, dict]:
	"""(rules, playbook by name) of the active playbooks that have trigger conditions. A playbook
	saved before its rule was checked and no longer compiling is left out (and logged)."""
	rules, found = [], {}
	for row in frappe.get_all(
		PLAYBOOK,
		filters={"is_active": 1},
		fields=["name", "playbook_name", "trigger_conditions", "is_automated", "requires_approval", "steps"],
		order_by="creation asc",
	):
		conditions = _json(row.trigger_conditions, {})
		if not conditions:
			continue
		try:
			rule = compile_rule(row.name, conditions)
		except RuleError as e:
			frappe.logger("cauldron").error(f"aegis: playbook {row.name} has a bad rule: {e}")
			continue
		if not rule.title:
			rule = replace(
				rule, title=f"{row.playbook_name}: {{key}}" if rule.threshold else row.playbook_name
			)
		rules.append(rule)
		found[row.name] = row
	return rules, found


def compile_threats() -> list:
	threats = []
	for row in frappe.get_all(
		"Aegis Threat",
		filters={"status": ("in", ("active", "monitoring"))},
		fields=["name", "threat_name", "severity", "indicators"],
	):
		try:
			indicators = compile_indicators(row.name, _json(row.indicators, {}), row.severity)
		except RuleError as e:
			frappe.logger("cauldron").error(f"aegis: threat {row.name} has bad indicators: {e}")
			continue
		if indicators:
			threats.append(indicators)
	return threats


def open_incidents() -> dict[tuple[str, str], tuple[str, datetime]]:
	"""(rule, key) -> (incident, time of its last event) of the open incidents opened by detection."""
	found = {}
	for row in frappe.get_all(
		INCIDENT,
		filters={"status": ("in", OPEN), "detection_rule": ("is", "set")},
		fields=["name", "detection_rule", "detection_key", "last_event_at"],
		order_by="last_event_at asc",
	):
		if row.last_event_at:
			found[(row.detection_rule, row.detection_key or "")] = (row.name, aware(row.last_event_at))
	return found


# --- detection -------------------------------------------------------------------------------------


def run_detection(batch: int = detect.DEFAULT_BATCH, max_batches: int = 100) -> dict:
	"""Evaluate the events not evaluated yet, batch by batch (a commit each), opening or extending
	incidents and starting playbooks. Returns counts."""
	rules, found = compile_playbooks()
	threats = compile_threats()
	windows = {r.name: (r.threshold.within if r.threshold else detect.DEFAULT_WINDOW) for r in rules}
	incidents = open_incidents()
	totals = {"evaluated": 0, "detections": 0, "opened": 0, "extended": 0, "batches": 0}
	for _batch in range(max_batches):
		cur = db.cursor()
		run = detect.evaluate(
			cur, rules, threats, {group: last for group, (_name, last) in incidents.items()}, batch
		)
		if run.busy:
			frappe.db.rollback()
			totals["busy"] = True
			break
		threats_of = {}
		for detection in run.detections:
			if detection.threat:
				for event_id, _t in detection.events:
					threats_of.setdefault(event_id, set()).add(detection.threat)
		for detection in run.detections:
			opened = apply(detection, found.get(detection.rule), windows, incidents, threats_of)
			totals["opened" if opened else "extended"] += 1
			detect.mark_incident(cur, detection.events)
		frappe.db.commit()
		totals["evaluated"] += run.evaluated
		totals["detections"] += len(run.detections)
		totals["batches"] += 1
		if not run.more:
			break
	return totals


def apply(detection: Detection, playbook, windows: dict, incidents: dict, threats_of: dict) -> bool:
	"""Open an incident for `detection` or add it to the open one; returns True when opened."""
	group = (detection.rule, detection.key)
	times = [aware(t) if not isinstance(t, datetime) else t for _i, t in detection.events]
	first, last = min(times), max(times)
	window = windows.get(detection.rule, detect.DEFAULT_WINDOW)
	current = incidents.get(group)
	related_threats = sorted(
		{name for event_id, _t in detection.events for name in threats_of.get(event_id, ())}
		| ({detection.threat} if detection.threat else set())
	)
	if current is not None and first - current[1] <= window:
		doc = frappe.get_doc(INCIDENT, current[0], for_update=True)
		if doc.status in OPEN:
			added = _add_events(doc, detection, related_threats)
			doc.last_event_at = local(max(last, aware(doc.last_event_at) or last))
			if SEVERITIES.index(detection.severity) > SEVERITIES.index(doc.severity or "info"):
				doc.severity = detection.severity
			if added:
				_timeline(doc, "events_added", f"{added} more matching event(s)", events=added)
			doc.save(ignore_permissions=True)
			incidents[group] = (doc.name, aware(doc.last_event_at))
			return False
	doc = frappe.get_doc(
		{
			"doctype": INCIDENT,
			"title": detection.title[:255],
			"severity": detection.severity,
			"status": "open",
			"description": _description(detection, playbook),
			"detection_rule": detection.rule,
			"detection_key": detection.key,
			"playbook": playbook.name if playbook else None,
			"first_event_at": local(first),
			"last_event_at": local(last),
			"related_events": json.dumps({"events": [], "count": 0}),
			"related_threats": json.dumps({"threats": [], "indicators": []}),
			"timeline": json.dumps({"entries": []}),
		}
	)
	_add_events(doc, detection, related_threats)
	what = f"rule {playbook.playbook_name}" if playbook else f"threat {detection.threat}"
	_timeline(
		doc,
		"detected",
		f"Detected by {what}: {doc.event_count} event(s)"
		+ (f" for {detection.key}" if detection.key else "")
		+ (f"; indicators {', '.join(detection.indicators)}" if detection.indicators else ""),
		events=doc.event_count,
	)
	doc.insert(ignore_permissions=True)
	incidents[group] = (doc.name, last)
	if playbook:
		start_playbook(doc, playbook)
	return True


def _description(detection: Detection, playbook) -> str:
	if playbook:
		return f"Opened by playbook {playbook.playbook_name} (rule {detection.rule}), group {detection.key or '-'}."
	return f"Events carrying indicators of threat {detection.threat}: {', '.join(detection.indicators)}."


def _add_events(doc, detection: Detection, related_threats: list[str]) -> int:
	related = _json(doc.related_events, {}) or {}
	ids = list(related.get("events") or [])
	known = set(ids)
	count = int(related.get("count") or len(ids))
	added = 0
	for event_id, _t in detection.events:
		if event_id in known:
			continue
		known.add(event_id)
		added += 1
		if len(ids) < MAX_RELATED:
			ids.append(event_id)
	doc.related_events = json.dumps({"events": ids, "count": count + added})
	doc.event_count = count + added
	threats = _json(doc.related_threats, {}) or {}
	doc.related_threats = json.dumps(
		{
			"threats": sorted(set(threats.get("threats") or []) | set(related_threats)),
			"indicators": sorted(set(threats.get("indicators") or []) | set(detection.indicators)),
		}
	)
	return added


def _timeline(doc, kind: str, text: str, **extra) -> dict:
	timeline = _json(doc.timeline, {}) or {}
	entries = timeline.get("entries") if isinstance(timeline, dict) else None
	entries = list(entries or [])
	entry = {"at": _now_text(), "kind": kind, "text": text, "by": frappe.session.user, **extra}
	entries.append(entry)
	doc.timeline = json.dumps({"entries": entries[-MAX_TIMELINE:]}, default=str)
	return entry


# --- playbook runs ---------------------------------------------------------------------------------


def _context(doc, playbook) -> dict:
	return {
		"key": doc.detection_key or "",
		"title": doc.title,
		"severity": doc.severity,
		"incident": doc.name,
		"rule": playbook.playbook_name,
	}


def start_playbook(doc, playbook) -> None:
	"""Lay out the playbook's steps on the new incident and take the first ones."""
	try:
		steps = playbooks.compile_steps(_json(playbook.steps, None))
	except RuleError as e:
		_timeline(doc, "playbook_error", f"Playbook {playbook.playbook_name} cannot run: {e}")
		doc.save(ignore_permissions=True)
		return
	context = _context(doc, playbook)
	mode = "approval" if playbook.requires_approval else "automated" if playbook.is_automated else "manual"
	doc.response_steps = json.dumps(
		{
			"playbook": playbook.name,
			"mode": mode,
			"steps": [
				{
					"index": s.index,
					"action": s.action,
					"params": s.render(context),
					"text": s.describe(context),
					"status": "manual" if mode == "manual" else "pending",
				}
				for s in steps
			],
		}
	)
	_timeline(doc, "playbook_started", f"Playbook {playbook.playbook_name}: {len(steps)} step(s), {mode}")
	advance(doc)
	doc.save(ignore_permissions=True)


def _steps(doc) -> dict:
	return _json(doc.response_steps, {}) or {}


def _set_steps(doc, state: dict) -> None:
	doc.response_steps = json.dumps(state, default=str)


def _log_step(doc, step: dict, status: str, text: str, **extra) -> None:
	"""A step's move: its status, a timeline entry and an audit row."""
	step["status"] = status
	step["at"] = _now_text()
	step.update({k: v for k, v in extra.items() if v is not None})
	_timeline(doc, f"step_{status}", text, step=step["index"], action=step["action"], **extra)
	events.record(
		INCIDENT,
		doc.name,
		AUDIT_ACTION,
		None,
		{
			"step": step["index"],
			"action": step["action"],
			"params": step["params"],
			"status": status,
			"text": text,
			**{k: v for k, v in extra.items() if v is not None},
		},
	)


def advance(doc) -> None:
	"""Take the incident's next steps: with approval, ask for the next one's (and stop); otherwise run
	each pending step in turn. The caller saves the incident."""
	state = _steps(doc)
	mode = state.get("mode")
	for step in state.get("steps") or []:
		if step["status"] in ENDED or step["status"] == "manual":
			continue
		if step["status"] == "waiting_approval":
			break
		if mode == "approval":
			task, approval, expires_at = _ask_approval(doc, step)
			_log_step(
				doc,
				step,
				"waiting_approval",
				f"Step {step['index'] + 1} {step['text']} waits for approval {approval} (expires {expires_at})",
				task=task,
				approval=approval,
				expires_at=str(expires_at),
			)
			break
		_run(doc, step)
	_set_steps(doc, state)


def _ask_approval(doc, step: dict) -> tuple[str, str, object]:
	task = frappe.get_doc(
		{
			"doctype": "Aether Agent Task",
			"task_name": f"Aegis: {step['text']}"[:140],
			"task_type": "remediation",
			"requires_approval": 1,
			"priority": 1 if doc.severity == "critical" else 2 if doc.severity == "high" else 5,
			"description": _("Step {0} of the response to incident {1} ({2}): {3}").format(
				step["index"] + 1, doc.name, doc.title, step["text"]
			),
			"parameters": json.dumps(
				{
					"aegis_incident": doc.name,
					"step": step["index"],
					"action": step["action"],
					"params": step["params"],
				}
			),
		}
	).insert(ignore_permissions=True)
	approval, expires_at = frappe.db.get_value(
		"Aether HITL Approval", {"task": task.name}, ["name", "expires_at"], order_by="creation desc"
	)
	return task.name, approval, expires_at


def _run(doc, step: dict) -> bool:
	"""Run one step now; its outcome (done or failed) is logged. Returns whether it was done."""
	frappe.db.savepoint("aegis_step")
	try:
		outcome = ACTIONS[step["action"]](doc, step["params"])
	except Exception as e:
		frappe.db.rollback(save_point="aegis_step")
		message = str(e) or e.__class__.__name__
		_log_step(
			doc, step, "failed", f"Step {step['index'] + 1} {step['text']} failed: {message}", error=message
		)
		return False
	_log_step(doc, step, "done", f"Step {step['index'] + 1} {step['text']}: {outcome}", result=outcome)
	return True


# --- actions ---------------------------------------------------------------------------------------


def _user(name: str) -> str:
	if name in PROTECTED_USERS:
		raise frappe.ValidationError(_("{0} is never disabled or revoked by a playbook").format(name))
	if not name or not frappe.db.exists("User", name):
		raise frappe.DoesNotExistError(_("There is no user {0}").format(name or "''"))
	return name


def _disable_user(doc, params) -> str:
	user = frappe.get_doc("User", _user(params["user"]))
	if not user.enabled:
		return f"{user.name} was disabled already"
	user.enabled = 0
	user.save(ignore_permissions=True)
	return f"{user.name} disabled"


def _revoke_access(doc, params) -> str:
	from frappe.sessions import clear_sessions
	from frappe.utils.password import remove_encrypted_password

	name = _user(params["user"])
	had_key = frappe.db.get_value("User", name, "api_key")
	if had_key:
		frappe.db.set_value("User", name, "api_key", None)
	remove_encrypted_password("User", name, "api_secret")
	clear_sessions(user=name, force=True)
	return f"{name}: API key {'revoked' if had_key else 'absent'}, sessions ended"


def _notify_role(doc, params) -> str:
	users = frappe.get_all(
		"Has Role",
		filters={"role": params["role"], "parenttype": "User", "parent": ("not in", PROTECTED_USERS)},
		pluck="parent",
	)
	users = frappe.get_all("User", filters={"name": ("in", users or [""]), "enabled": 1}, pluck="name")
	for user in users:
		note = frappe.new_doc("Notification Log")
		note.update(
			{
				"for_user": user,
				"type": "Alert",
				"subject": params["message"][:140],
				"email_content": params["message"],
				"document_type": INCIDENT,
				"document_name": doc.name,
			}
		)
		note.insert(ignore_permissions=True)
	return f"{len(users)} user(s) with role {params['role']} notified"


def _add_note(doc, params) -> str:
	_timeline(doc, "note", params["note"])
	return "noted"


def _open_agent_task(doc, params) -> str:
	definition = params["agent_definition"]
	if not frappe.db.exists("Aether Agent Definition", definition):
		definition = frappe.db.get_value("Aether Agent Definition", {"agent_name": definition}, "name")
	if not definition:
		raise frappe.DoesNotExistError(
			_("There is no agent definition {0}").format(params["agent_definition"])
		)
	if params["task_type"] not in tasks.TASK_TYPES:
		raise frappe.ValidationError(
			_("task_type {0} is not one of {1}").format(params["task_type"], ", ".join(tasks.TASK_TYPES))
		)
	task = frappe.get_doc(
		{
			"doctype": "Aether Agent Task",
			"task_name": params["title"][:140],
			"task_type": params["task_type"],
			"definition": definition,
			"priority": params.get("priority") or 5,
			"description": doc.title,
			"parameters": json.dumps(
				{"aegis_incident": doc.name, "title": doc.title, "key": doc.detection_key}
			),
		}
	).insert(ignore_permissions=True)
	return f"agent task {task.name} opened"


ACTIONS = {
	"disable_user": _disable_user,
	"revoke_access": _revoke_access,
	"notify_role": _notify_role,
	"add_note": _add_note,
	"open_agent_task": _open_agent_task,
}


# --- approvals ---------------------------------------------------------------------------------------


def _step_of_task(task: str) -> tuple[str, int] | None:
	parameters = _json(frappe.db.get_value("Aether Agent Task", task, "parameters"), {}) or {}
	if isinstance(parameters, dict) and parameters.get("aegis_incident") and "step" in parameters:
		return parameters["aegis_incident"], parameters["step"]
	return None


def approval_changed(approval) -> None:
	"""doc_events on_update of Aether HITL Approval: an answer to a step's approval runs it
	(approved) or skips it (rejected, cancelled), then the incident's next step is taken."""
	if not approval.has_value_changed("status") or approval.status == "pending":
		return
	found = _step_of_task(approval.task)
	if found is None:
		return
	decide(found[0], approval.name, approval.task, approval.status, approval.responded_by)


def decide(incident: str, approval: str, task: str, status: str, by: str | None) -> bool:
	"""Act on the answer `status` to `approval` of a step of `incident`; returns whether a step moved."""
	if not frappe.db.exists(INCIDENT, incident):
		return False
	doc = frappe.get_doc(INCIDENT, incident, for_update=True)
	state = _steps(doc)
	step = next(
		(
			s
			for s in state.get("steps") or []
			if s.get("approval") == approval and s["status"] == "waiting_approval"
		),
		None,
	)
	if step is None:
		return False
	if status == "approved":
		_timeline(
			doc,
			"approved",
			f"Approval {approval} of step {step['index'] + 1} given by {by}",
			approval=approval,
		)
		done = _run(doc, step)
		_finish_task(task, done, step)
	else:
		_log_step(
			doc,
			step,
			"skipped",
			f"Step {step['index'] + 1} {step['text']} skipped: approval {approval} {status}",
			approval=approval,
		)
	_set_steps(doc, state)
	advance(doc)
	doc.save(ignore_permissions=True)
	return True


def _finish_task(task: str, done: bool, step: dict) -> None:
	"""The step's agent task is Aegis's own, run in the approver's transaction: it ends here (no agent
	ever holds it)."""
	cur = db.cursor()
	cur.execute(
		f"""
		UPDATE {tasks.TASKS} SET status = %s, started_at = coalesce(started_at, {tasks.NOW}),
			completed_at = {tasks.NOW}, modified = {tasks.NOW}, result = %s, error_message = %s
		WHERE name = %s AND status IN ('pending', 'ready', 'awaiting_approval')
		""",
		(
			"completed" if done else "failed",
			json.dumps({"aegis_step": step["index"], "result": step.get("result")}) if done else None,
			None if done else str(step.get("error"))[: tasks.MAX_ERROR_CHARS],
			task,
		),
	)


def sweep_unanswered() -> int:
	"""Steps whose approval expired or was cancelled without a document event (Aether's job expires
	approvals in SQL): skipped, and their incidents move on. Returns how many."""
	moved = 0
	for row in frappe.get_all(
		INCIDENT,
		filters={"status": ("in", OPEN), "playbook": ("is", "set")},
		fields=["name", "response_steps"],
	):
		incident = row.name
		for step in _json(row.response_steps, {}).get("steps") or []:
			if step["status"] != "waiting_approval" or not step.get("approval"):
				continue
			status = frappe.db.get_value("Aether HITL Approval", step["approval"], "status")
			if status in ("expired", "rejected", "cancelled") or status is None:
				moved += decide(incident, step["approval"], step.get("task"), status or "deleted", None)
	return moved
