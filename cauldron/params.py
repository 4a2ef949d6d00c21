"""Request parameters of every Cauldron endpoint, checked by cauldron.pg.values before use.

`checked` wraps each whitelisted method (cauldron/api/*.py); the virtual DocTypes' list and count
call `check` on the arguments Frappe hands them. A value no table or response can hold (NUL, a lone
surrogate, NaN, JSON nested too deep or that does not parse, a call above values.MAX_CALL_BYTES) is
an InvalidParameter, HTTP 417 with a readable message, before anything is read or written.
"""

import functools
import inspect
from collections.abc import Iterable
from contextlib import contextmanager

import frappe
from frappe import _

from cauldron.pg import CauldronDBError, values


class InvalidParameter(frappe.ValidationError):
	pass


@contextmanager
def refused(title: str | None = None):
	"""A CauldronDBError inside (the Postgres layer's checks) becomes a 417 with its message."""
	try:
		yield
	except InvalidParameter:
		raise
	except CauldronDBError as e:
		frappe.throw(str(e), InvalidParameter, title=title or _("Invalid request"))


def check(params: dict, json: Iterable[str] = (), names: Iterable[str] = ()) -> dict:
	"""`params` checked whole, those named in `json` parsed from JSON text (a JSON request body
	brings them parsed already), those in `names` document names. Returns them, parsed."""
	json, names = set(json), set(names)
	result = dict(params)
	total = 0
	with refused():
		for key, value in params.items():
			if key in json and value == "":
				value = None
			if value is None:
				result[key] = None
				continue
			if key in json:
				value = values.parse_json(value, key)
			elif key in names:
				values.name(value, key)
			total += values.check(value, key)
			if total > values.MAX_CALL_BYTES:
				raise values.InvalidValue(
					f"the call's parameters are larger than {values.MAX_CALL_BYTES // 2**20} MiB"
				)
			result[key] = value
	return result


def checked(json: Iterable[str] = (), names: Iterable[str] = ()):
	"""Decorator of a whitelisted method: every parameter through `check` before the body runs.
	Put it under @frappe.whitelist(), which reads the method's signature through it."""

	def decorate(fn):
		signature = inspect.signature(fn)

		@functools.wraps(fn)
		def wrapper(*args, **kwargs):
			try:
				bound = signature.bind(*args, **kwargs)
			except TypeError as e:  # a parameter missing, or one too many
				frappe.throw(
					_("{0}: {1}").format(fn.__name__, e), InvalidParameter, title=_("Invalid request")
				)
			return fn(**check(bound.arguments, json=json, names=names))

		return wrapper

	return decorate


def parse_json(value, what: str):
	"""One parameter that holds JSON (text, or already parsed), checked."""
	with refused():
		return values.parse_json(value, what)


def whole_number(value, what: str, low: int, high: int) -> int:
	"""A whole number parameter (a form sends it as text)."""
	with refused():
		return values.whole_number(value, what, low, high, text_allowed=True)


# The operators Cauldron's lists and counts take (Frappe's list view offers these).
FILTER_OPERATORS = frozenset(
	("=", "!=", ">", "<", ">=", "<=", "like", "not like", "in", "not in", "is", "between", "timespan")
)


def filters(value, what: str = "filters") -> list[frappe._dict]:
	"""Frappe's filters (a dict, a list of [doctype,] fieldname, operator, value lists, or their
	JSON text) as {fieldname, operator, value}, each checked: a text fieldname and a known operator,
	a single value (a list of them for in, not in and between). Which fields exist is the caller's."""
	with refused(_("Invalid filters")):
		value = values.parse_json(value, what) if isinstance(value, str) else value
		values.check(value, what)
		if value in (None, "", [], {}):
			return []
		if isinstance(value, dict):
			items = [[key, given] for key, given in value.items()]
		elif isinstance(value, list | tuple):
			items = value
		else:
			raise values.InvalidValue(f"{what} must be a list or an object, not {values.shown(value)}")
		return [_filter(item, f"{what}[{i}]") for i, item in enumerate(items)]


def _filter(item, what: str) -> frappe._dict:
	if isinstance(item, dict) and len(item) == 1:
		item = list(item.items())[0]
	if isinstance(item, list | tuple) and len(item) == 2:  # {fieldname: value or [operator, value]}
		key, given = item
		item = [key, *given] if isinstance(given, list | tuple) else [key, "=", given]
		if len(item) != 3:
			raise values.InvalidValue(f"{what}: {values.shown(key)} needs [operator, value]")
	if not isinstance(item, list | tuple) or not 3 <= len(item) <= 5:
		raise values.InvalidValue(
			f"{what} must be [fieldname, operator, value] (or [doctype, fieldname, operator, value]),"
			f" not {values.shown(item)}"
		)
	fieldname, operator, value = item[:3] if len(item) == 3 else item[1:4]
	if not isinstance(fieldname, str) or not fieldname.replace("_", "").isalnum() or not fieldname.isascii():
		raise values.InvalidValue(f"{what}: {values.shown(fieldname)} is no field name")
	operator = operator.lower().strip() if isinstance(operator, str) else operator
	operator = operator or "="
	if operator not in FILTER_OPERATORS:
		raise values.InvalidValue(
			f"{what}: operator {values.shown(operator)} is not one of {', '.join(sorted(FILTER_OPERATORS))}"
		)
	if operator in ("in", "not in"):
		listed = value.split(",") if isinstance(value, str) else value
		listed = list(listed) if isinstance(listed, list | tuple) else [listed]
		value = [values.scalar(v.strip() if isinstance(v, str) else v, what) for v in listed]
		value = [v for v in value if v not in (None, "")]
	elif operator == "between":
		if not isinstance(value, list | tuple) or len(value) != 2:
			raise values.InvalidValue(f"{what}: between takes a list of two values")
		value = [values.scalar(v, what) for v in value]
	else:
		values.scalar(value, what)
	return frappe._dict(fieldname=fieldname, operator=operator, value=value)


# Frappe's list endpoints decode these with json.loads before any app code runs: JSONDecodeError, 500.
LIST_JSON = ("filters", "or_filters", "fields")


def check_request():
	"""before_request, for every /api/ call: a NUL in the path (a document name: the DELETE of
	`/api/resource/<DocType>/<name>` queries before any controller runs) and, for Cauldron's
	DocTypes, list parameters that are not JSON (or hold what no query can) are a 417 before any
	query, where Postgres or Frappe's own decoding would answer 500."""
	path = frappe.local.request.path
	if not path.startswith("/api/"):
		return
	with refused():
		values.text(path, "the request path")
	parts = path.split("/")
	doctype = frappe.form_dict.get("doctype")
	if len(parts) > 3 and parts[2] == "resource":  # /api/resource/<DocType>
		doctype = parts[3]
	elif len(parts) > 4 and parts[2] in ("v1", "v2"):  # /api/v1/resource/<DocType>, /api/v2/document/..
		doctype = parts[4]
	if isinstance(doctype, str) and doctype:
		from cauldron.api.client import cauldron_doctype

		with refused():
			values.name(doctype, "doctype")
		if cauldron_doctype(doctype):
			check({k: frappe.form_dict[k] for k in LIST_JSON if frappe.form_dict.get(k)}, json=LIST_JSON)
