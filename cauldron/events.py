"""doc_events["*"]: every document change becomes one core.audit_log row (and, when the sealing job
chains it shortly after commit, one synapse.metrics point).

Events are kept per transaction and written with one statement just before it commits, on the
request's own connection: a commit always carries its rows, a rollback drops them. A savepoint
rolled back *after* a document's hooks ran (rare in Frappe; Frappe's own rollback watchers share
the limit) keeps that document's row.

Not seen by any hook, so not audited: frappe.db.set_value, raw SQL and bulk paths.
"""

import json
import re
from datetime import datetime, timezone

import frappe

from cauldron import db
from cauldron.pg import audit

# Frappe's own logs and queues: high-volume records about records, not business changes.
DEFAULT_EXCLUDED = (
	"Access Log",
	"Activity Log",
	"Comment",
	"Console Log",
	"Data Import Log",
	"Deleted Document",
	"Email Queue",
	"Email Queue Recipient",
	"Energy Point Log",
	"Error Log",
	"Integration Request",
	"Notification Log",
	"Prepared Report",
	"Route History",
	"Scheduled Job Log",
	"Submission Queue",
	"Transaction Log",
	"Unhandled Email",
	"Version",
	"View Log",
	"Webhook Request Log",
)
# Bookkeeping fields that change on every save and say nothing about the change.
SECRET_FIELD = re.compile(r"(^|_)(password|passwd|secret|token|api_key|private_key|credentials?)(_|$)")
IGNORED_FIELDS = {
	"modified",
	"modified_by",
	"creation",
	"owner",
	"parent",
	"parenttype",
	"parentfield",
	"doctype",
}


def excluded_doctypes() -> set[str]:
	listed = frappe.get_cached_doc("Cauldron Settings").audit_excluded_doctypes or ""
	return {line.strip() for line in listed.splitlines() if line.strip()}


def _secret_fields(doctype: str) -> set[str]:
	meta = frappe.get_meta(doctype)
	return {
		df.fieldname for df in meta.fields if df.fieldtype == "Password" or SECRET_FIELD.search(df.fieldname)
	}


def snapshot(doc) -> dict:
	"""The document as JSON-ready data, child rows included; bookkeeping fields and secrets (Password
	fields, keys and tokens such as User's api_key or reset_password_key) left out."""
	data = json.loads(frappe.as_json(doc.as_dict(no_private_properties=True), indent=None))

	def clean(row: dict, doctype: str) -> dict:
		hidden = IGNORED_FIELDS | _secret_fields(doctype)
		result = {}
		for key, value in row.items():
			if key in hidden or key.startswith("_"):
				continue
			if isinstance(value, list):
				child = frappe.get_meta(doctype).get_field(key)
				value = [clean(r, child.options) if child else r for r in value]
			result[key] = value
		return result

	return clean(data, doc.doctype)


def changed_values(old: dict, new: dict) -> tuple[dict, dict]:
	"""Only the fields whose value changed (a child table counts as one field), on each side."""
	keys = [k for k in {**old, **new} if old.get(k) != new.get(k)]
	return {k: old.get(k) for k in keys}, {k: new.get(k) for k in keys}


def _action(doc) -> str:
	if doc.flags.in_insert:
		return "insert"
	return {
		"submit": "submit",
		"cancel": "cancel",
		"update_after_submit": "update_after_submit",
	}.get(getattr(doc, "_action", None), "update")


def _should_audit(doc) -> bool:
	# install and migrate sync metadata in bulk; uninstall has already dropped core.audit_log
	if frappe.flags.in_install or frappe.flags.in_migrate or frappe.flags.in_uninstall:
		return False
	if frappe.conf.db_type != "postgres":
		return False
	return not doc.meta.is_virtual and doc.doctype not in excluded_doctypes()


def on_change(doc, method=None):
	if not _should_audit(doc):
		return
	action = _action(doc)
	new = snapshot(doc)
	if action == "insert":
		old_values, new_values = None, new
	else:
		before = doc.get_doc_before_save()
		old_values, new_values = changed_values(snapshot(before) if before else {}, new)
		if not new_values:
			return  # a save that changed nothing
	record(doc.doctype, doc.name, action, old_values, new_values)
	if doc.doctype == "Personal Data Deletion Request" and doc.status == "Deleted":
		# After this transaction commits, in a short transaction of its own: erasure rewrites rows
		# the sealing job may be sealing meanwhile. This transaction's events name the user too, so
		# they are written now (tests run the job at once).
		_flush()
		frappe.enqueue(
			"cauldron.tasks.erase_audit_user",
			user=doc.email,
			replacement=doc.name,
			full_name=getattr(doc, "full_name", None),
			enqueue_after_commit=True,
			now=frappe.flags.in_test,
		)


def after_delete(doc, method=None):
	if _should_audit(doc):
		record(doc.doctype, doc.name, "delete", snapshot(doc), None)


def after_rename(doc, method=None, old=None, new=None, merge=False):
	if _should_audit(doc):
		record(doc.doctype, new, "rename", {"name": old}, {"name": new, "merged": bool(merge)})


def record(doctype: str, name: str, action: str, old_values: dict | None, new_values: dict | None):
	request = getattr(frappe.local, "request", None)
	_pending().append(
		audit.AuditEvent(
			action=action,
			resource_type=doctype,
			resource_id=name,
			user_id=frappe.session.user if getattr(frappe.local, "session", None) else None,
			old_values=old_values,
			new_values=new_values,
			ip_address=getattr(frappe.local, "request_ip", None) if request else None,
			user_agent=request.headers.get("User-Agent") if request else None,
			created_at=datetime.now(timezone.utc),
		)
	)


def _pending() -> list:
	"""This transaction's events, written just before it commits and forgotten if it rolls back."""
	if getattr(frappe.local, "cauldron_audit_events", None) is None:
		frappe.local.cauldron_audit_events = []
		frappe.db.before_commit.add(_flush)
		frappe.db.after_rollback.add(_forget)
	return frappe.local.cauldron_audit_events


def _flush():
	pending, frappe.local.cauldron_audit_events = frappe.local.cauldron_audit_events, None
	if pending:
		audit.write_events(db.cursor(), pending)


def _forget():
	frappe.local.cauldron_audit_events = None
