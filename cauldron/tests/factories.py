"""Bench-tier helpers: a valid document of every Cauldron DocType (with what it links to), users
holding given roles with API keys, and real REST calls through Frappe's WSGI app."""

import json
import uuid
from contextlib import contextmanager

import frappe
from frappe.tests.test_api import make_request
from frappe.utils import get_test_client

from cauldron.pg import tables, timeseries

AREA_ROLE = {
	"Cauldron": "Cauldron Manager",
	"Lore": "Knowledge Editor",
	"Synapse": "Synapse Analyst",
	"Aegis": "Security Analyst",
	"Aether": "Agent Operator",
}


def uid() -> str:
	return uuid.uuid4().hex[:10]


@contextmanager
def refused_by_postgres():
	"""For a statement Postgres refuses (a unique violation): without a savepoint the refusal
	aborts the whole test transaction."""
	frappe.db.savepoint("cauldron_refused")
	try:
		yield
	except Exception:
		frappe.db.rollback(save_point="cauldron_refused")
		raise
	frappe.db.release_savepoint("cauldron_refused")


def values(doctype: str) -> dict:
	"""Field values of a new valid document; the documents it links to are inserted first."""
	return VALUES[doctype]()


def make(doctype: str, **fields):
	return frappe.get_doc({"doctype": doctype, **values(doctype), **fields}).insert()


def _bucket():
	return make("Cauldron Storage Bucket").name


VALUES = {
	"Cauldron Organization": lambda: {"organization_name": f"Acme {uid()}", "domain": f"{uid()}.example.com"},
	"Cauldron Team": lambda: {
		"organization": make("Cauldron Organization").name,
		"team_name": f"Ops {uid()}",
	},
	"Cauldron Team Member": lambda: {"team": make("Cauldron Team").name, "user": "Administrator"},
	"Cauldron Auth User Mapping": lambda: {"auth_user_id": str(uuid.uuid4()), "user": "Administrator"},
	"Cauldron Storage Bucket": lambda: {"bucket_name": f"bucket-{uid()}", "public": 0},
	"Cauldron Storage Object": lambda: {
		"bucket": _bucket(),
		"object_name": f"reports/{uid()}.pdf",
		"metadata": json.dumps({"size": 1024}),
	},
	"Lore Document": lambda: {
		"title": f"Runbook {uid()}",
		"content": "Restart the worker, then check the queue.",
		"source_type": "manual",
	},
	"Lore Entity": lambda: {"entity_name": f"Postgres {uid()}", "entity_type": "technology"},
	"Lore Relationship": lambda: {
		"source_entity": make("Lore Entity").name,
		"target_entity": make("Lore Entity").name,
		"relationship_type": "depends_on",
		"confidence": 0.9,
	},
	"Lore Knowledge Source": lambda: {
		"source_name": f"Wiki {uid()}",
		"source_type": "confluence",
		"connection_config": json.dumps({"base_url": "https://wiki.example.com", "space": "OPS"}),
		"connection_secret": "s3cr3t-token",
	},
	"Lore Skill Profile": lambda: {"user": "Administrator", "skills": json.dumps({"sql": 5})},
	"Aegis Threat": lambda: {
		"threat_name": f"Phish {uid()}",
		"threat_type": "phishing",
		"severity": "high",
		"confidence": 0.7,
	},
	"Aegis Vulnerability": lambda: {
		"title": f"Heap overflow {uid()}",
		"vulnerability_id": "CVE-2024-12345",
		"severity": "critical",
		"cvss_score": 9.8,
		"discovered_at": "2026-01-15 10:00:00",
	},
	"Aegis Security Playbook": lambda: {
		"playbook_name": f"Contain {uid()}",
		"steps": json.dumps([{"action": "add_note", "note": "Contain {key}"}]),
	},
	"Aegis Security Incident": lambda: {"title": f"Breach {uid()}", "severity": "high"},
	"Synapse Analytics Metric": lambda: {"metric_name": f"Revenue {uid()}", "unit_of_measure": "USD"},
	"Synapse Forecast": lambda: {
		"forecast_name": f"Q3 {uid()}",
		"metric": make("Synapse Analytics Metric").name,
		"forecast_model": "exponential_smoothing",
		"forecast_date": "2026-07-01 00:00:00",
		"forecast_horizon": 90,
		"forecast_data": json.dumps({"points": [1, 2, 3]}),
	},
	"Synapse Dashboard": lambda: {
		"dashboard_name": f"Board {uid()}",
		"components": [{"component_type": "kpi", "title": "Revenue"}],
	},
	"Synapse Business Simulation": lambda: {
		"simulation_name": f"Price rise {uid()}",
		"model_definition": json.dumps({"variables": {"revenue": "price * units"}, "iterations": 1000}),
		"parameters": json.dumps({"price": 10, "units": {"distribution": "poisson", "mean": 100}}),
	},
	"Aether Agent Definition": lambda: {
		"agent_name": f"Researcher {uid()}",
		"agent_type": "researcher",
		"model_config": json.dumps({"provider": "openai", "model": "gpt-4o"}),
		"model_api_key": "sk-test-123",
	},
	"Aether Agent Instance": lambda: {
		"definition": make("Aether Agent Definition").name,
		"instance_name": f"researcher-{uid()}",
	},
	"Aether Agent Task": lambda: {"task_name": f"Summarise {uid()}", "task_type": "research"},
	"Aether HITL Approval": lambda: {"task": make("Aether Agent Task").name, "approval_type": "tool_use"},
}

# A field each DocType's REST update changes, and the value it sets.
UPDATES = {
	"Cauldron Organization": ("primary_contact_name", "Grace"),
	"Cauldron Team": ("description", "On call"),
	"Cauldron Team Member": ("is_team_admin", 1),
	"Cauldron Auth User Mapping": ("auth_user_id", "6e4bb0d1-9c1f-4d5e-8a2b-4c6f1a7d9e01"),
	"Cauldron Storage Bucket": ("public", 1),
	"Cauldron Storage Object": ("last_accessed_at", "2026-02-01 08:00:00"),
	"Lore Document": ("is_archived", 1),
	"Lore Entity": ("description", "A database"),
	"Lore Relationship": ("confidence", 0.5),
	"Lore Knowledge Source": ("sync_frequency", "weekly"),
	"Lore Skill Profile": ("expertise_areas", json.dumps({"databases": "expert"})),
	"Aegis Threat": ("status", "mitigated"),
	"Aegis Vulnerability": ("status", "in_progress"),
	"Aegis Security Playbook": ("is_automated", 1),
	"Aegis Security Incident": ("status", "investigating"),
	"Synapse Analytics Metric": ("target_value", 100.0),
	"Synapse Forecast": ("status", "completed"),
	"Synapse Dashboard": ("is_public", 1),
	"Synapse Business Simulation": ("status", "running"),
	"Aether Agent Definition": ("is_active", 0),
	"Aether Agent Instance": ("status", "running"),
	"Aether Agent Task": ("priority", 2),
	"Aether HITL Approval": ("notes", "Looks fine"),
}


# Cauldron's DocTypes that carry no seed table: settings, and records the app keeps itself.
NOT_SEED = ("Cauldron Settings", "Synapse Metric Alert")


def seed_doctypes() -> list[str]:
	"""Every Cauldron DocType that carries a seed table and is not a child or virtual."""
	return [
		name
		for name, istable, is_virtual in frappe.get_all(
			"DocType",
			filters={"module": ("in", list(AREA_ROLE)), "custom": 0, "name": ("not in", NOT_SEED)},
			fields=["name", "istable", "is_virtual"],
			as_list=True,
		)
		if not istable and not is_virtual
	]


def virtual_doctypes() -> list[str]:
	return frappe.get_all(
		"DocType", filters={"module": ("in", list(AREA_ROLE)), "is_virtual": 1}, pluck="name"
	)


def area_role(doctype: str) -> str:
	return AREA_ROLE[frappe.get_meta(doctype).module]


def user_with_roles(email: str, *roles: str) -> str:
	"""A System User holding exactly `roles` (none: a plain desk user); returns an API token."""
	if frappe.db.exists("User", email):
		user = frappe.get_doc("User", email)
	else:
		user = frappe.new_doc("User")
		user.update({"email": email, "first_name": email.split("@")[0], "send_welcome_email": 0})
	user.user_type = "System User"
	user.roles = []
	for role in roles:
		user.append("roles", {"role": role})
	user.api_key = user.api_key or frappe.generate_hash(length=15)
	secret = frappe.generate_hash(length=15)
	user.api_secret = secret
	user.save(ignore_permissions=True)
	return f"{user.api_key}:{secret}"


def drop_user(email: str) -> None:
	if frappe.db.exists("User", email):
		frappe.delete_doc("User", email, ignore_permissions=True, force=True)


# No cookie jar: another test's login must not make these requests someone else's.
CLIENT = get_test_client(use_cookies=False)


def rest(method: str, path: str, token: str | None = None, data: dict | None = None):
	"""A real HTTP request through Frappe's WSGI app, in its own thread and DB connection (so what
	it should see must be committed). No token: the request is Guest's."""
	headers = {"Authorization": f"token {token}"} if token else {}
	client = CLIENT
	kwargs = {"headers": headers}
	if data is not None:
		kwargs["json"] = data
	return make_request(target=getattr(client, method), args=(path,), kwargs=kwargs)


def resource(doctype: str, name: str | None = None) -> str:
	from urllib.parse import quote

	return f"/api/resource/{quote(doctype)}" + (f"/{quote(name)}" if name else "")


def write_real_rows(cur, document: str, instance: str) -> None:
	"""One row in each real table the virtual DocTypes show, keyed to the given documents. (On
	TimescaleDB the hourly rollup shows the point only once its continuous aggregate refreshes.)"""
	from datetime import datetime, timezone

	from cauldron.pg import audit, vectors

	audit.write_events(cur, [audit.AuditEvent("insert", "Lore Document", document, "Administrator")])
	timeseries.write_metrics(
		cur, [(datetime(2026, 3, 1, 12, 30, tzinfo=timezone.utc), "latency_ms", 41.5, {"host": "a"})]
	)
	timeseries.refresh_rollups(cur)  # its hour in synapse.metrics_hourly
	cur.execute(
		"INSERT INTO aegis.security_events (event_time, event_type, source, severity, is_incident)"
		" VALUES ('2026-03-01 12:00+00', 'login_failed', 'sshd', 'high', true)"
	)
	vectors.replace_document_chunks(cur, document, [vectors.Chunk(0, "Restart the worker.", None)])
	tables.write_agent_interactions(
		cur, [tables.AgentInteraction(str(uuid.uuid4()), instance, "user_message", {"text": "hi"})]
	)


# Dependents before what they link to, so that deleting in this order never meets a link.
DELETION_ORDER = (
	"Cauldron Team Member",
	"Cauldron Team",
	"Cauldron Organization",
	"Cauldron Auth User Mapping",
	"Cauldron Storage Object",
	"Cauldron Storage Bucket",
	"Lore Relationship",
	"Lore Entity",
	"Lore Document",
	"Lore Knowledge Source",
	"Lore Skill Profile",
	"Aegis Threat",
	"Aegis Vulnerability",
	"Aegis Security Playbook",
	"Aegis Security Incident",
	"Synapse Forecast",
	"Synapse Dashboard",
	"Synapse Analytics Metric",
	"Synapse Business Simulation",
	"Aether HITL Approval",
	"Aether Agent Task",
	"Aether Agent Instance",
	"Aether Agent Definition",
)


def delete_created_since(moment) -> None:
	"""Remove what a test committed (REST tests must commit for the request to see it)."""
	for doctype in DELETION_ORDER:
		for name in frappe.get_all(doctype, filters={"creation": (">=", moment)}, pluck="name"):
			frappe.delete_doc(doctype, name, force=True, ignore_permissions=True, ignore_missing=True)
	frappe.db.commit()
