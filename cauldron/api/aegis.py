"""Aegis endpoints (/api/method/cauldron.api.aegis.<name>).

`ingest` takes security events from outside the site (an IDS, a proxy, a SIEM forwarder) as a JSON
batch, normalised and checked whole by cauldron.aegis.ingest: a bad batch writes nothing and answers
417 naming each bad event and why. The detection job evaluates them within a minute.

`import_vulnerabilities` takes a scanner's report (OSV JSON, osv-scanner or pip-audit output, a
CycloneDX BOM with vulnerabilities; cauldron.aegis.vulns) and makes or updates one Aegis
Vulnerability per vulnerability_id.

Who may: ingest, the roles in WRITER_ROLES (through Frappe's API keys or a session; everyone else,
Guest included, is refused with 403 before the body is read); imports, whoever may create and write
Aegis Vulnerability (Security Analyst, System Manager).
"""

import json

import frappe
from frappe import _

from cauldron import db, params
from cauldron.aegis import ingest as engine
from cauldron.aegis import response, vulns
from cauldron.api.aether import Conflict

WRITER_ROLES = ("Security Analyst", "System Manager")
VULNERABILITY = "Aegis Vulnerability"
INCIDENT = "Aegis Security Incident"
APPROVAL = "Aether HITL Approval"
DECISIONS = {"approve": "approved", "reject": "rejected"}


@frappe.whitelist(methods=["POST"])
@params.checked(json=("events", "data"))
def ingest(events=None, data=None) -> dict:
	"""Write a batch of security events (`events`: a JSON list of objects, or the JSON list posted as
	the request body); returns how many were written."""
	if set(WRITER_ROLES).isdisjoint(frappe.get_roles()):
		raise frappe.PermissionError(
			_("Writing security events needs one of the roles {0}").format(", ".join(WRITER_ROLES))
		)
	batch = events if events is not None else data
	if batch is None:
		body = frappe.request.get_data() if frappe.request else b""
		batch = params.parse_json(body or None, "events") if body else None
	with params.refused(_("Invalid security events")):
		return {"written": engine.ingest(db.cursor(), batch)}


@frappe.whitelist(methods=["POST"])
@params.checked(json=("report",))
def import_vulnerabilities(report=None) -> dict:
	"""Make or update Aegis Vulnerabilities from a scanner's JSON report; returns what changed."""
	frappe.has_permission(VULNERABILITY, "create", throw=True)
	frappe.has_permission(VULNERABILITY, "write", throw=True)
	if report is None:
		body = frappe.request.get_data() if frappe.request else b""
		report = params.parse_json(body or None, "report") if body else None
	with params.refused(_("Invalid vulnerability report")):
		found = vulns.parse(report)
	created, updated, unchanged, names = 0, 0, 0, []
	for item in found:
		name = frappe.db.get_value(VULNERABILITY, {"vulnerability_id": item.vulnerability_id}, "name")
		values = _values(item)
		if name:
			doc = frappe.get_doc(VULNERABILITY, name)
			doc.check_permission("write")
			affected = _json(doc.affected_systems)
			packages = {
				**(affected.get("packages") or {}),
				**(values["affected_systems"].get("packages") or {}),
			}
			aliases = list(
				dict.fromkeys((affected.get("aliases") or []) + values["affected_systems"]["aliases"])
			)
			values["affected_systems"] = {
				**affected,
				**values["affected_systems"],
				"packages": packages,
				"aliases": aliases,
			}
			values.pop("discovered_at")
			before = {k: _comparable(doc.get(k)) for k in values}
			doc.update({k: json.dumps(v) if k == "affected_systems" else v for k, v in values.items()})
			if before == {k: _comparable(doc.get(k)) for k in values}:
				unchanged += 1
			else:
				doc.save()
				updated += 1
		else:
			values["affected_systems"] = json.dumps(values["affected_systems"])
			doc = frappe.get_doc({"doctype": VULNERABILITY, **values}).insert()
			created += 1
		names.append(doc.name)
	return {"created": created, "updated": updated, "unchanged": unchanged, "vulnerabilities": names}


def _json(value) -> dict:
	if isinstance(value, str):
		try:
			value = json.loads(value or "{}")
		except ValueError:
			value = {}
	return value if isinstance(value, dict) else {}


def _comparable(value):
	if isinstance(value, str) and value[:1] in "{[":
		try:
			return json.loads(value)
		except ValueError:
			return value
	if isinstance(value, float | int) and not isinstance(value, bool):
		return float(value)
	return value or None


def _values(item: vulns.Vulnerability) -> dict:
	affected = dict(item.affected_systems or {})
	affected["aliases"] = list(item.aliases)
	if item.cvss_vector:
		affected["cvss_vector"] = item.cvss_vector
	discovered = item.discovered_at
	if discovered is not None:
		from cauldron.aegis.response import local

		discovered = local(discovered)
	return {
		"vulnerability_id": item.vulnerability_id[:50],
		"title": (item.title or item.vulnerability_id)[:255],
		"severity": item.severity,
		"cvss_score": item.cvss_score,
		"description": item.description or None,
		"remediation_steps": item.remediation_steps or None,
		"affected_systems": affected,
		"discovered_at": discovered or frappe.utils.now_datetime(),
	}


OPEN_STATUSES = ("open", "investigating", "contained")


@frappe.whitelist()
@params.checked()
def overview(days=7) -> dict:
	"""The Aegis Overview page's figures: open incidents by severity, events per hour (up to 2 days)
	or per day over the last `days` (1-90), the top sources and users of those events, the latest
	open incidents."""
	frappe.has_permission("Aegis Security Event", "read", throw=True)
	frappe.has_permission("Aegis Security Incident", "read", throw=True)
	days = params.whole_number(days if days not in (None, "") else 7, "days", 1, 90)
	unit = "hour" if days <= 2 else "day"
	by_severity = {
		row.severity: row.count
		for row in frappe.get_list(
			"Aegis Security Incident",
			filters={"status": ("in", OPEN_STATUSES)},
			fields=["severity", "count(name) as count"],
			group_by="severity",
			order_by=None,
		)
	}
	zone = frappe.utils.get_system_timezone()
	cur = db.cursor()
	since = "now() - %(days)s * interval '1 day'"
	cur.execute(
		f"""
		SELECT date_trunc(%(unit)s, event_time AT TIME ZONE %(zone)s) AS bucket, count(*),
			count(*) FILTER (WHERE is_incident),
			count(*) FILTER (WHERE severity IN ('high', 'critical'))
		FROM aegis.security_events WHERE event_time > {since}
		GROUP BY 1 ORDER BY 1
		""",
		{"unit": unit, "zone": zone, "days": days},
	)
	series = [
		{"bucket": str(bucket), "events": n, "incident_events": inc, "high": high}
		for bucket, n, inc, high in cur.fetchall()
	]
	cur.execute(
		f"""
		SELECT source, count(*) FROM aegis.security_events WHERE event_time > {since}
		GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10
		""",
		{"days": days},
	)
	sources = [{"source": s, "events": n} for s, n in cur.fetchall()]
	cur.execute(
		f"""
		SELECT raw_data->>'user', count(*), count(*) FILTER (WHERE event_type = 'login_failed')
		FROM aegis.security_events WHERE event_time > {since} AND raw_data->>'user' IS NOT NULL
		GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10
		""",
		{"days": days},
	)
	users = [{"user": u, "events": n, "failed_logins": f} for u, n, f in cur.fetchall()]
	incidents = frappe.get_list(
		"Aegis Security Incident",
		filters={"status": ("in", OPEN_STATUSES)},
		fields=["name", "title", "severity", "status", "event_count", "last_event_at", "creation"],
		order_by="creation desc",
		limit_page_length=10,
	)
	return {
		"days": days,
		"unit": unit,
		"open_incidents": {s: by_severity.get(s, 0) for s in ("critical", "high", "medium", "low", "info")},
		"events": series,
		"top_sources": sources,
		"top_users": users,
		"latest_incidents": incidents,
	}


@frappe.whitelist(methods=["POST"])
@params.checked(names=("incident", "approval"))
def respond_step(incident=None, approval=None, decision=None, notes=None) -> dict:
	"""Approve or reject the Aether HITL Approval a step of `incident` waits for: what a Security
	Analyst does from the incident's form (Aether's own approvals are Agent Operators'). The step runs
	(approved) or is skipped (rejected) at once; whoever asked for the approval still cannot approve."""
	if set(WRITER_ROLES).isdisjoint(frappe.get_roles()):
		raise frappe.PermissionError(
			_("Answering a playbook step needs one of the roles {0}").format(", ".join(WRITER_ROLES))
		)
	if (
		not isinstance(incident, str)
		or not frappe.db.exists(INCIDENT, incident)
		or not frappe.has_permission(INCIDENT, "read", incident)
	):
		frappe.throw(_("There is no security incident {0}").format(incident), frappe.DoesNotExistError)
	if decision not in DECISIONS:
		frappe.throw(_("decision must be approve or reject"), params.InvalidParameter)
	if notes is not None and not isinstance(notes, str):
		frappe.throw(_("notes must be text"), params.InvalidParameter)
	steps = response._steps(frappe.get_doc(INCIDENT, incident)).get("steps") or []
	if not any(s.get("approval") == approval and s.get("status") == "waiting_approval" for s in steps):
		frappe.throw(_("No step of incident {0} waits for approval {1}").format(incident, approval), Conflict)
	doc = frappe.get_doc(APPROVAL, approval)
	if doc.status != "pending":
		frappe.throw(_("This approval is {0} already.").format(_(doc.status)), Conflict)
	doc.status = DECISIONS[decision]
	if notes is not None:
		doc.notes = notes
	doc.flags.ignore_permissions = True
	doc.save()  # its on_update runs or skips the step (cauldron.aegis.response.approval_changed)
	state = response._steps(frappe.get_doc(INCIDENT, incident))
	return {
		"incident": incident,
		"approval": approval,
		"status": doc.status,
		"steps": state.get("steps") or [],
	}
