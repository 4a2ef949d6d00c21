"""doc_events["*"]: every document action (insert, update, submit, cancel, update after submit,
delete, rename) becomes one core.audit_log row holding the net change of that action (and, when the
sealing job chains it shortly after commit, one synapse.metrics point).

Frappe runs `on_change` at the end of every action and again on every `db_set`. A `db_set` inside an
action (a controller setting a status in validate, on_submit or on_cancel, or on one of the
document's child rows) is part of that action's row: the row compares the document before the action
with the document at its end. A `db_set` outside any action (a later status change by a job) is its
own update row, read from the database before and after the write; on a child row it is an update of
the parent that names the row. `delete_doc`'s own `on_change` is left to `after_delete`.

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


def _clean(row: dict, doctype: str) -> dict:
	"""`row` (JSON-ready) without bookkeeping fields and secrets (Password fields, keys and tokens such
	as User's api_key or reset_password_key), child rows cleaned by their own DocType."""
	hidden = IGNORED_FIELDS | _secret_fields(doctype)
	result = {}
	for key, value in row.items():
		if key in hidden or key.startswith("_"):
			continue
		if isinstance(value, list):
			child = frappe.get_meta(doctype).get_field(key)
			value = [_clean(r, child.options) if child else r for r in value]
		result[key] = value
	return result


def snapshot(doc) -> dict:
	"""The document as JSON-ready data, child rows included, without bookkeeping fields or secrets."""
	return _clean(_json_ready(doc.as_dict(no_private_properties=True)), doc.doctype)


def _stored(doc) -> dict:
	"""The document's own row (child rows apart) as the database holds it now, cleaned."""
	if doc.meta.issingle:
		row = frappe.db.get_singles_dict(doc.doctype)
	else:
		row = frappe.db.get_value(doc.doctype, doc.name, "*", as_dict=True) or {}
	return _clean(_json_ready(row), doc.doctype)


def _json_ready(value):
	return json.loads(frappe.as_json(value, indent=None))


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
	excluded = excluded_doctypes()
	if doc.get("parenttype") in excluded:  # a child row is audited with its parent
		return False
	return not doc.meta.is_virtual and doc.doctype not in excluded


def _in_action(doc) -> bool:
	"""Whether `doc` is inside one of its own actions: from `before_insert` to the insert's closing
	`on_change`, or from the start of a save (submit, cancel...) to its closing `on_change`, as
	Frappe's `currently_saving` marks it. A child row is inside its parent's action."""
	if doc.get("parenttype"):
		parent = getattr(doc, "parent_doc", None)
		if parent is not None:
			return _in_action(parent)
		return (doc.parenttype, doc.parent) in (frappe.flags.currently_saving or [])
	return bool(doc.flags.cauldron_inserting) or (doc.doctype, doc.name) in (
		frappe.flags.currently_saving or []
	)


def before_insert(doc, method=None):
	doc.flags.cauldron_inserting = True


# Frappe runs `before_change` only from db_set, just before the write. What it leaves in the
# document's flags tells that db_set's `on_change` apart from the one that closes an action: SKIP for
# a db_set inside an action (or not audited), otherwise the stored row before the write.
SKIP = object()


def before_change(doc, method=None):
	if doc.name is None:  # db_set returns here without writing or running on_change
		return
	if _in_action(doc) or not _should_audit(doc):
		doc.flags.cauldron_db_set = SKIP
	else:
		doc.flags.cauldron_db_set = _stored(doc)


def on_change(doc, method=None):
	db_set = doc.flags.pop("cauldron_db_set", None)
	if db_set is SKIP or doc.flags.in_delete or not _should_audit(doc):
		return  # the action's own row holds the change; a delete is recorded by after_delete
	if db_set is None:
		doc.flags.cauldron_inserting = False
		_record_action(doc)
	else:
		_record_db_set(doc, db_set)
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


def _record_action(doc):
	"""The closing on_change of an action: one row with the action's net change."""
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


def _record_db_set(doc, before: dict):
	"""A db_set outside any action: one update row with what the write changed in the database."""
	old_values, new_values = changed_values(before, _stored(doc))
	if not new_values:
		return
	if doc.get("parenttype"):
		row = {"name": doc.name}
		old_values = {doc.parentfield: [{**row, **old_values}]}
		new_values = {doc.parentfield: [{**row, **new_values}]}
		record(doc.parenttype, doc.parent, "update", old_values, new_values)
	else:
		record(doc.doctype, doc.name, "update", old_values, new_values)


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
