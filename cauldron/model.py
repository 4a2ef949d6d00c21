"""Base classes of the DocTypes that carry the seed's tables."""

import json
import re
import uuid

import frappe
from frappe import _
from frappe.model.document import Document
from psycopg2 import sql

from cauldron import db, params
from cauldron.pg import values

# A key that names a credential, as a whole word of it (so `max_tokens` is no token): its text
# value belongs in a Password field, not in plain JSON.
SECRET_KEY = re.compile(
	r"(^|_)(password|passwd|pass|passphrase|secret|token|api_?key|private_key|access_key|credentials?)(_|$)"
)


class InvalidJSON(frappe.ValidationError):
	pass


class SecretInJSON(frappe.ValidationError):
	pass


class SeedDocument(Document):
	"""A row of a seed table. JSON fields (its own and its children's) must hold JSON."""

	def load_from_db(self):
		refuse_unstorable_text(self, ("name",))
		super().load_from_db()
		for doc in (self, *self.get_all_children()):
			json_fields_from_db(doc)

	def _validate_links(self):
		# The first step of an insert or a save that reads the database with the document's values.
		for doc in (self, *self.get_all_children()):
			refuse_unstorable_text(doc, ("name", *(df.fieldname for df in doc.meta.fields)))
		super()._validate_links()

	def before_validate(self):
		for doc in (self, *self.get_all_children()):
			normalize_json_fields(doc)


class UUIDNamedDocument(SeedDocument):
	"""A seed row keyed, as in the seed, by a UUID (Frappe 15 has no UUID autoname)."""

	def autoname(self):
		self.name = str(uuid.uuid4())

	def before_validate(self):
		super().before_validate()
		# Names given by a data import must still be UUIDs: the SQL views cast them.
		if not is_uuid(self.name):
			frappe.throw(_("{0} is not a UUID; {1} names are UUIDs.").format(self.name, _(self.doctype)))


def is_uuid(value) -> bool:
	try:
		uuid.UUID(str(value))
	except ValueError:
		return False
	return True


def refuse_unstorable_text(doc, fieldnames) -> None:
	"""NUL and lone surrogates, which no PostgreSQL text column holds: a 417 naming the field, before
	the value reaches a query (a 500 with a database error otherwise)."""
	with params.refused(_("Invalid value")):
		for fieldname in fieldnames:
			value = doc.get(fieldname)
			if isinstance(value, str):
				values.text(value, f"{_(doc.doctype)} {_(doc.meta.get_label(fieldname))}")


def json_fields_from_db(doc) -> None:
	"""psycopg2 hands a json column back parsed, so a stored JSON string "abc" arrives as the str
	abc, not as JSON text. Give the document the JSON text of every value but an object, which
	Frappe takes as a dict (and a list it refuses outright)."""
	for df in doc.meta.get("fields", {"fieldtype": "JSON"}):
		value = doc.get(df.fieldname)
		if value is not None and not isinstance(value, dict):
			doc.set(df.fieldname, json.dumps(value))


def normalize_json_fields(doc) -> None:
	"""Refuse malformed JSON with a clear error, and store arrays as text: Frappe 15 refuses a
	list as a field value, yet a JSON field may hold one (a playbook's steps)."""
	for df in doc.meta.get("fields", {"fieldtype": "JSON"}):
		value = doc.get(df.fieldname)
		if value in (None, ""):
			doc.set(df.fieldname, None)
		else:
			# strictly: no NaN or Infinity, no \u0000 or lone surrogate, nothing jsonb cannot hold
			try:
				values.parse_json(value, _(df.label))
			except values.InvalidValue as e:
				frappe.throw(str(e), InvalidJSON, title=_("Invalid JSON"))
			if not isinstance(value, str | dict):
				doc.set(df.fieldname, json.dumps(value))


def refuse_secrets(doc, json_field: str, password_field: str) -> None:
	"""Refuse a credential inside a JSON field: it would be stored and shown in plain text."""
	value = doc.get(json_field)
	if isinstance(value, str):
		value = json.loads(value)
	key = _secret_key(value)
	if key:
		frappe.throw(
			_(
				"{0} must not hold credentials (found key {1}); put the secret in {2}, which is encrypted."
			).format(
				_(doc.meta.get_label(json_field)), frappe.bold(key), _(doc.meta.get_label(password_field))
			),
			SecretInJSON,
			title=_("Secret in plain JSON"),
		)


def _secret_key(value) -> str | None:
	if isinstance(value, dict):
		for key, item in value.items():
			if isinstance(item, str) and item and SECRET_KEY.search(str(key).lower().replace("-", "_")):
				return key
			found = _secret_key(item)
			if found:
				return found
	elif isinstance(value, list):
		for item in value:
			found = _secret_key(item)
			if found:
				return found
	return None


def check_unique_together(doc, *fieldnames: str) -> None:
	"""The seed's multi-column UNIQUE, with a clear message; a database constraint added in the
	DocType's on_doctype_update settles races."""
	filters = {f: doc.get(f) for f in fieldnames}
	if frappe.db.exists(doc.doctype, {**filters, "name": ("!=", doc.name)}):
		frappe.throw(
			_("A {0} with {1} already exists.").format(
				_(doc.doctype),
				", ".join(f"{_(doc.meta.get_label(f))} {frappe.bold(doc.get(f))}" for f in fieldnames),
			),
			frappe.UniqueValidationError,
			title=_("Duplicate"),
		)


def add_unique_index(doctype: str, *fieldnames: str) -> None:
	"""Called from on_doctype_update. Columns are quoted (frappe.db.add_unique does not, and `user`
	is reserved). The name ends in `_key`, as Postgres names unique constraints: Frappe recognises a
	unique violation by it and raises UniqueValidationError."""
	index = (frappe.scrub(doctype) + "_" + "_".join(fieldnames))[:59] + "_key"
	db.cursor().execute(
		sql.SQL("CREATE UNIQUE INDEX IF NOT EXISTS {} ON {} ({})").format(
			sql.Identifier(index),
			sql.Identifier("tab" + doctype),
			sql.SQL(", ").join(map(sql.Identifier, fieldnames)),
		)
	)


def check_range(doc, fieldname: str, low: float, high: float) -> None:
	value = doc.get(fieldname)
	if value is not None and not low <= value <= high:
		frappe.throw(
			_("{0} must be from {1} to {2}, not {3}.").format(
				_(doc.meta.get_label(fieldname)), low, high, value
			),
			title=_("Out of range"),
		)
