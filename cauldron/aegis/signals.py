"""The site's own security signals into aegis.security_events (Frappe glue over cauldron.aegis.ingest).

Every event has source `frappe` and raw_data with the `user` it is about, the `actor` (the session
user), the request's `ip` and `user_agent` where there is a request, and what else it names:

| event_type | severity | seen by |
|---|---|---|
| login_success, login_failed, logout, user_impersonated | info, low, info, high | Activity Log inserts (Frappe logs each login, failed or not) |
| login_new_ip | medium | a successful login from an IP the user never logged in from (among the kept events) |
| password_changed, password_reset_requested | medium, low | User saves with a new password; a reset key set (forgot password) |
| api_secret_generated | high | a User saved with a new API secret (User.generate_keys) |
| user_enabled, user_disabled | medium | User saves |
| role_granted, role_revoked | medium (high for System Manager / Administrator) | User saves changing Has Role rows |
| permission_changed | medium | DocPerm (a DocType's permissions), Custom DocPerm and User Permission changes |
| two_factor_settings_changed | high when 2FA is turned off, else medium | System Settings and Role two_factor_auth |
| permission_denied | low | any request answered 403 |
| data_export | low | report, list view and Data Export downloads |
| audit_chain_broken | critical | a failed audit-chain verification (verify-audit, the daily check) |

Events of a document change are kept per transaction and written with one statement just before
it commits (as cauldron.events does for audit rows): a rolled-back change leaves no event. A failed
login commits its Activity Log before Frappe refuses the request, so it is kept. Events seen after
the request (403s, exports) are written at once in a transaction of their own.
"""

import json
from datetime import datetime, timezone

import frappe

from cauldron import db
from cauldron.aegis import ingest

SOURCE = "frappe"
PRIVILEGED_ROLES = ("System Manager", "Administrator")
TWO_FACTOR_FIELDS = (
	"enable_two_factor_auth",
	"two_factor_method",
	"bypass_2fa_for_retricted_ip_users",
	"bypass_restrict_ip_check_if_2fa_enabled",
	"lifespan_qrcode_image",
	"otp_issuer_name",
)
EXPORT_METHODS = {
	"frappe.desk.reportview.export_query": "list view export",
	"frappe.desk.query_report.export_query": "report export",
	"frappe.core.doctype.data_export.exporter.export_data": "Data Export",
	"frappe.utils.print_format.download_multi_pdf": "PDF export",
}
PASSWORD_UPDATE = "frappe.core.doctype.user.user.update_password"
MAX_FILTERS = 2000


def _enabled() -> bool:
	flags = frappe.flags
	return not (flags.in_install or flags.in_migrate or flags.in_uninstall or flags.in_patch) and (
		frappe.conf.db_type == "postgres"
	)


def _context() -> dict:
	request = getattr(frappe.local, "request", None)
	raw = {"actor": frappe.session.user if getattr(frappe.local, "session", None) else None}
	if request is not None:
		raw["ip"] = getattr(frappe.local, "request_ip", None)
		raw["user_agent"] = request.headers.get("User-Agent")
		raw["path"] = request.path
	return {k: v for k, v in raw.items() if v is not None}


def event(event_type: str, severity: str, description: str, **raw) -> ingest.SecurityEvent:
	data = {**_context(), **{k: v for k, v in raw.items() if v is not None}}
	return ingest.normalise(
		{
			"event_type": event_type,
			"source": SOURCE,
			"severity": severity,
			"description": description[: ingest.MAX_DESCRIPTION],
			"raw_data": json.loads(json.dumps(data, default=str)),
			"time": datetime.now(timezone.utc).isoformat(),
		},
		datetime.now(timezone.utc),
	)


def emit(event_type: str, severity: str, description: str, **raw) -> None:
	"""One event, written with this transaction's others just before it commits."""
	if _enabled():
		_pending().append(event(event_type, severity, description, **raw))


def emit_now(event_type: str, severity: str, description: str, **raw) -> None:
	"""One event written and committed at once (after the request's own transaction ended)."""
	if not _enabled():
		return
	ingest.write(db.cursor(), [event(event_type, severity, description, **raw)])
	frappe.db.commit()


def _pending() -> list:
	if getattr(frappe.local, "cauldron_aegis_events", None) is None:
		frappe.local.cauldron_aegis_events = []
		frappe.db.before_commit.add(_flush)
		frappe.db.after_rollback.add(_forget)
	return frappe.local.cauldron_aegis_events


def _flush():
	pending, frappe.local.cauldron_aegis_events = frappe.local.cauldron_aegis_events, None
	if pending:
		ingest.write(db.cursor(), pending)


def _forget():
	frappe.local.cauldron_aegis_events = None


# --- document events (doc_events["*"], dispatched by DocType) ----------------------------------------


def _activity_log(doc):
	if doc.operation == "Login":
		frappe.local.cauldron_aegis_login_logged = True
		ip = doc.ip_address or getattr(frappe.local, "request_ip", None)
		if doc.status == "Failed":
			emit("login_failed", "low", f"Failed login for {doc.user}: {doc.subject}", user=doc.user, ip=ip)
		elif doc.status == "Success":
			emit("login_success", "info", f"{doc.user} logged in", user=doc.user, ip=ip)
			if ip and _new_ip(doc.user, ip):
				emit(
					"login_new_ip",
					"medium",
					f"{doc.user} logged in from {ip}, never seen for them",
					user=doc.user,
					ip=ip,
				)
	elif doc.operation == "Logout":
		emit("logout", "info", f"{doc.user} logged out", user=doc.user, ip=doc.ip_address)
	elif doc.operation == "Impersonate":
		emit("user_impersonated", "high", doc.subject or "", user=doc.user)


def _new_ip(user: str, ip: str) -> bool:
	"""Whether `user` logged in before, never from `ip` (a user's first login is not a new IP)."""
	cur = db.cursor()
	cur.execute(
		"""
		SELECT count(*) FILTER (WHERE raw_data->>'ip' = %s), count(*)
		FROM aegis.security_events
		WHERE event_type = 'login_success' AND source = %s AND raw_data->>'user' = %s
		""",
		(ip, SOURCE, user),
	)
	from_ip, logins = cur.fetchone()
	pending = [
		e
		for e in getattr(frappe.local, "cauldron_aegis_events", None) or []
		if e.event_type == "login_success" and (e.raw_data or {}).get("user") == user
	]
	logins += len(pending) - 1  # this login's own event is pending already
	from_ip += sum(1 for e in pending[:-1] if e.raw_data.get("ip") == ip)
	return logins > 0 and from_ip == 0


def _user_before_validate(doc):
	if doc.is_new():
		return
	if doc.get("new_password"):
		emit("password_changed", "medium", f"Password of {doc.name} changed", user=doc.name)
	secret = doc.get("api_secret")
	if secret and set(secret) != {"*"}:
		emit(
			"api_secret_generated",
			"high",
			f"New API key/secret for {doc.name}",
			user=doc.name,
			api_key=doc.api_key,
		)


def _user_before_change(doc):
	# db_set, just before its write: User.reset_password sets a new reset key (forgot password)
	key = doc.get("reset_password_key")
	if key and key != frappe.db.get_value("User", doc.name, "reset_password_key"):
		emit("password_reset_requested", "low", f"Password reset asked for {doc.name}", user=doc.name)


def _user_on_update(doc):
	before = doc.get_doc_before_save()
	if before is None:  # a new user: the roles it starts with are granted too
		for role in sorted({r.role for r in doc.get("roles") or []}):
			severity = "high" if role in PRIVILEGED_ROLES else "medium"
			emit(
				"role_granted",
				severity,
				f"Role {role} granted to new user {doc.name}",
				user=doc.name,
				role=role,
			)
		return
	if bool(before.enabled) != bool(doc.enabled):
		kind = "user_enabled" if doc.enabled else "user_disabled"
		emit(kind, "medium", f"User {doc.name} {'enabled' if doc.enabled else 'disabled'}", user=doc.name)
	old = {r.role for r in before.get("roles") or []}
	new = {r.role for r in doc.get("roles") or []}
	for role in sorted(new - old):
		severity = "high" if role in PRIVILEGED_ROLES else "medium"
		emit("role_granted", severity, f"Role {role} granted to {doc.name}", user=doc.name, role=role)
	for role in sorted(old - new):
		emit("role_revoked", "medium", f"Role {role} taken from {doc.name}", user=doc.name, role=role)


def _perm_rows(rows) -> dict:
	flags = ("read", "write", "create", "delete", "submit", "cancel", "amend", "report", "export")
	return {
		(r.role, r.permlevel or 0, r.get("if_owner") or 0): {f: r.get(f) or 0 for f in flags}
		for r in rows or []
	}


def _doctype_on_update(doc):
	before = doc.get_doc_before_save()
	if before is None:
		return
	old, new = _perm_rows(before.get("permissions")), _perm_rows(doc.get("permissions"))
	if old != new:
		changed = sorted(
			{k[0] for k in set(old) ^ set(new)} | {k[0] for k in old if k in new and old[k] != new[k]}
		)
		emit(
			"permission_changed",
			"medium",
			f"DocPerms of {doc.name} changed for {', '.join(changed)}",
			doctype=doc.name,
			kind="DocPerm",
			roles=changed,
		)


def _custom_docperm(doc, action: str):
	emit(
		"permission_changed",
		"medium",
		f"Custom DocPerm of {doc.parent} for {doc.role} {action}",
		doctype=doc.parent,
		role=doc.role,
		kind="Custom DocPerm",
		action=action,
		permissions={f: doc.get(f) for f in ("read", "write", "create", "delete", "submit", "export")},
	)


def _user_permission(doc, action: str):
	emit(
		"permission_changed",
		"medium",
		f"User Permission for {doc.user} on {doc.allow} {doc.for_value} {action}",
		user=doc.user,
		kind="User Permission",
		allow=doc.allow,
		for_value=doc.for_value,
		action=action,
	)


def _two_factor(doc, fields: tuple[str, ...]):
	before = doc.get_doc_before_save()
	if before is None:
		return
	changed = {f: (before.get(f), doc.get(f)) for f in fields if before.get(f) != doc.get(f)}
	if not changed:
		return
	turned_off = any(
		f in ("enable_two_factor_auth", "two_factor_auth") and not new for f, (_, new) in changed.items()
	)
	emit(
		"two_factor_settings_changed",
		"high" if turned_off else "medium",
		f"Two-factor settings of {doc.doctype} {doc.name} changed: {', '.join(changed)}",
		doctype=doc.doctype,
		name=doc.name,
		changes={f: {"from": a, "to": b} for f, (a, b) in changed.items()},
	)


AFTER_INSERT = {
	"Activity Log": _activity_log,
	"Custom DocPerm": lambda doc: _custom_docperm(doc, "created"),
	"User Permission": lambda doc: _user_permission(doc, "created"),
}
ON_UPDATE = {
	"User": _user_on_update,
	"DocType": _doctype_on_update,
	"Custom DocPerm": lambda doc: (
		_custom_docperm(doc, "changed") if doc.get_doc_before_save() is not None else None
	),
	"User Permission": lambda doc: (
		_user_permission(doc, "changed") if doc.get_doc_before_save() is not None else None
	),
	"System Settings": lambda doc: _two_factor(doc, TWO_FACTOR_FIELDS),
	"Role": lambda doc: _two_factor(doc, ("two_factor_auth",)),
}
ON_TRASH = {
	"Custom DocPerm": lambda doc: _custom_docperm(doc, "deleted"),
	"User Permission": lambda doc: _user_permission(doc, "deleted"),
}
BEFORE_VALIDATE = {"User": _user_before_validate}
BEFORE_CHANGE = {"User": _user_before_change}


def after_insert(doc, method=None):
	if (handler := AFTER_INSERT.get(doc.doctype)) is not None:
		handler(doc)


def on_update(doc, method=None):
	if (handler := ON_UPDATE.get(doc.doctype)) is not None:
		handler(doc)
	if doc.doctype == "Aether HITL Approval":
		from cauldron.aegis import response

		response.approval_changed(doc)


def on_trash(doc, method=None):
	if (handler := ON_TRASH.get(doc.doctype)) is not None:
		handler(doc)


def before_validate(doc, method=None):
	if (handler := BEFORE_VALIDATE.get(doc.doctype)) is not None:
		handler(doc)


def before_change(doc, method=None):
	if (handler := BEFORE_CHANGE.get(doc.doctype)) is not None:
		handler(doc)


# --- requests (after_request) ---------------------------------------------------------------------


def after_request(response=None, request=None):
	"""403 answers, exports and password updates, seen once the request's transaction has ended."""
	if response is None or request is None or not getattr(frappe.local, "initialised", False):
		return
	if not frappe.db or not _enabled():
		return
	status = response.status_code
	path = request.path or ""
	method = path[len("/api/method/") :] if path.startswith("/api/method/") else frappe.form_dict.get("cmd")
	logged, frappe.local.cauldron_aegis_login_logged = (
		getattr(frappe.local, "cauldron_aegis_login_logged", False),
		False,
	)
	try:
		if method == "login" and status >= 400 and not logged:
			# refused before Frappe logged it: locked out after too many failures (Frappe answers
			# those with a 500), rate limited, or refused outright
			user = frappe.form_dict.get("usr")
			reason = {500: "locked out", 429: "rate limited"}.get(status, "refused")
			emit_now(
				"login_failed",
				"low",
				f"Failed login for {user}: {reason} ({status}) before the password was checked",
				user=user,
				reason=reason,
			)
		elif status == 403:
			emit_now(
				"permission_denied",
				"low",
				f"{frappe.session.user} was refused {request.method} {path}",
				user=frappe.session.user,
				method=request.method,
			)
		elif 200 <= status < 300 and method in EXPORT_METHODS:
			form = frappe.form_dict
			emit_now(
				"data_export",
				"low",
				f"{frappe.session.user}: {EXPORT_METHODS[method]}"
				+ (f" of {form.get('doctype') or form.get('report_name') or form.get('doc_type')}"),
				user=frappe.session.user,
				export=method,
				doctype=form.get("doctype") or form.get("doc_type"),
				report_name=form.get("report_name"),
				file_format=form.get("file_format_type") or form.get("file_type"),
				filters=str(form.get("filters") or "")[:MAX_FILTERS] or None,
			)
		elif 200 <= status < 300 and method == PASSWORD_UPDATE:
			emit_now(
				"password_changed",
				"medium",
				f"Password of {frappe.session.user} changed (update-password)",
				user=frappe.session.user,
				via="reset key" if frappe.form_dict.get("key") else "old password",
			)
	except Exception:
		frappe.db.rollback()
		frappe.logger("cauldron").error("aegis: could not record a request's security event", exc_info=True)


# --- the audit chain ------------------------------------------------------------------------------


def audit_verified(result) -> None:
	"""After a verification of core.audit_log's chain (cauldron.pg.audit.verify): a broken chain
	is a critical event, committed at once."""
	if result.ok:
		return
	emit_now(
		"audit_chain_broken",
		"critical",
		f"Audit chain verification failed: {result}",
		broken_seq=result.broken_seq,
		broken_id=result.broken_id,
		reason=result.reason,
	)
