"""Read-only virtual DocTypes over Cauldron's real tables (audit log, metrics, security events,
document chunks, agent interactions): Desk's list view with filters and sorting, the count, the form
and REST reads come straight from SQL; inserts, updates and deletes are refused.

Frappe calls a virtual DocType's get_list/get_count/get_stats from Desk without checking
permissions itself, so each of them checks read permission here, for the user and with the
ignore_permissions of a frappe.get_list / get_all call; loading a row checks it too, before saying
whether the row exists. A page holds at most MAX_PAGE_LENGTH rows. Filters, fields and paging go
through cauldron.params, and every filter value is cast to its field's type in Python, so bad input
is a 417 with a message, never a database error.
"""

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import frappe
from frappe import _
from frappe.database.utils import DefaultOrderBy
from frappe.model.base_document import get_controller
from frappe.model.document import Document
from frappe.utils import get_datetime, get_system_timezone, get_timespan_date_range

from cauldron import db, params
from cauldron.model import is_uuid
from cauldron.pg import values

# Rows in one list call, even when it asks for all of them (a page length of 0 or none): these
# tables grow by millions of rows. Page through more with start.
MAX_PAGE_LENGTH = 1000
# Unfiltered counts above this come from the statistics, not a scan of the whole table.
EXACT_COUNT_LIMIT = 100_000
# Rows of a table, or of its partitions (hypertable chunks), as last analysed: a partitioned parent
# holds their total too, so it counts only without children. Never-analysed tables (reltuples -1)
# count for nothing, so a young table is always counted exactly.
ESTIMATE = """
SELECT coalesce(sum(c.reltuples) FILTER (WHERE c.reltuples > 0), 0)::bigint
FROM pg_class c
WHERE c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = %(relation)s::regclass)
	OR (c.oid = %(relation)s::regclass AND NOT EXISTS (SELECT 1 FROM pg_inherits WHERE inhparent = c.oid))
"""
# Columns Frappe's list view asks for that rows of a plain table do not have.
UNSTORED_FIELDS = {
	"owner": "NULL::text",
	"modified_by": "NULL::text",
	"docstatus": "0",
	"idx": "0",
	"_user_tags": "NULL::text",
	"_comments": "NULL::text",
	"_assign": "NULL::text",
	"_liked_by": "NULL::text",
	"_seen": "NULL::text",
	"_comment_count": "0",
}
_FIELD = re.compile(r"^(?:`?tab[^`.]+`?\.)?`?(\w+)`?(?:\s+as\s+`?(\w+)`?)?$", re.I)
_ORDER = re.compile(r"^(?:`?tab[^`.]+`?\.)?`?(\w+)`?(?:\s+(asc|desc))?$", re.I)


class ReadOnlyTable(frappe.PermissionError):
	pass


class InvalidPaging(frappe.ValidationError):
	pass


def by_id(name: str) -> tuple[str, tuple] | None:
	return ("id = %s::uuid", (name,)) if is_uuid(name) else None


# Microseconds since the epoch up to the end of year 9999 (Python's datetime and well inside Postgres's).
_TIME_AND_HASH = re.compile(r"^([0-9]{1,18})-([0-9a-f]{12})\Z")
_LAST_MICROSECOND = 253402300799999999


def time_and_hash_name(time_column: str, hash_expression: str) -> str:
	"""For a table without a key: <epoch microseconds of the time>-<12 hex digits of a hash>."""
	return f"(extract(epoch FROM {time_column}) * 1000000)::bigint::text || '-' || {hash_expression}"


def by_time_and_hash(time_column: str, hash_expression: str) -> Callable[[str], tuple[str, tuple] | None]:
	"""The lookup of a time_and_hash_name: the time finds the partition and index, the hash the row."""

	def lookup(name: str) -> tuple[str, tuple] | None:
		match = _TIME_AND_HASH.match(name)
		if not match or int(match.group(1)) > _LAST_MICROSECOND:
			return None
		return (
			f"{time_column} = 'epoch'::timestamptz + %s::bigint * interval '1 microsecond'"
			f" AND {hash_expression} = %s",
			(int(match.group(1)), match.group(2)),
		)

	return lookup


@dataclass(frozen=True)
class RealTable:
	relation: str  # the real table, schema-qualified
	name: str  # SQL expression that names a row
	columns: dict[str, str]  # fieldname -> SQL expression over the table
	time_column: str  # fieldname the list sorts by, shown as created and modified
	written_by: str  # where rows come from, for the error when someone tries to write
	uuid_fields: frozenset[str] = field(default_factory=frozenset)
	lookup: Callable[[str], tuple[str, tuple] | None] = by_id  # name -> WHERE clause, or None


class ReadOnlyTableDocument(Document):
	"""A virtual DocType backed by `real_table`, one of Cauldron's real tables. (Not `source`: a
	field of that name, such as a security event's, would hide the class attribute.)"""

	real_table: RealTable

	@classmethod
	def get_list(cls, args) -> list:
		return TableQuery(args.get("doctype") or cls.doctype_name(), args).rows()

	@classmethod
	def get_count(cls, args) -> int:
		return TableQuery(args.get("doctype") or cls.doctype_name(), args).count()

	@classmethod
	def get_stats(cls, args) -> dict:
		"""The list view's sidebar (frappe.desk.reportview.get_sidebar_stats, whose args name no
		DocType): no tags on these rows."""
		frappe.has_permission(cls.doctype_name(), "read", throw=True)
		return {}

	@classmethod
	def doctype_name(cls) -> str:
		"""The DocType of this controller, from its module's name as Frappe lays them out."""
		return frappe.unscrub(cls.__module__.rsplit(".", 1)[-1])

	def load_from_db(self):
		"""Permission first, so that whether a row exists is told only to whoever may read it; a
		load for update (REST PUT) is refused before anything is looked up."""
		if self.flags.for_update:
			self._refuse()
		frappe.has_permission(self.doctype, "read", throw=True)
		found = self.real_table.lookup(self.name) if isinstance(self.name, str) else None
		row = TableQuery(self.doctype, {}, check_permission=False).load(found) if found else None
		if row is None:
			frappe.throw(_("{0} {1} not found").format(_(self.doctype), self.name), frappe.DoesNotExistError)
		super(Document, self).__init__(row)

	def db_insert(self, *args, **kwargs):
		self._refuse()

	def db_update(self, *args, **kwargs):
		self._refuse()

	def delete(self, *args, **kwargs):
		self._refuse()

	def _refuse(self):
		frappe.throw(
			_("{0} is read-only: its rows are in {1}, written by {2}.").format(
				_(self.doctype), self.real_table.relation, self.real_table.written_by
			),
			ReadOnlyTable,
			title=_("Read-only"),
		)


class TableQuery:
	"""One list, count or load of a RealTable, from the arguments Frappe's list view and REST pass."""

	def __init__(self, doctype: str, args: dict, check_permission: bool = True):
		self.args = frappe._dict(args)
		if check_permission:
			self._check_permission(doctype)
		self.doctype = doctype
		self.meta = frappe.get_meta(doctype)
		self.real_table: RealTable = get_controller(doctype).real_table
		self.params: dict = {"tz": get_system_timezone()}

	def _check_permission(self, doctype: str) -> None:
		"""As frappe.get_list does: read permission of its `user`, unless it ignores permissions.
		Only frappe.get_list passes `user` (and its own flags): reportview strips `user` from a
		request's arguments, so flags that come without it are the request's and count for nothing."""
		if self.args.get("user"):
			if (self.args.get("flags") or {}).get("ignore_permissions"):
				return
			frappe.has_permission(doctype, "read", user=self.args.user, throw=True)
		else:
			frappe.has_permission(doctype, "read", throw=True)

	# --- expressions ---

	def _param(self, value) -> str:
		key = f"p{len(self.params)}"
		self.params[key] = value
		return f"%({key})s"

	def _fieldtype(self, fieldname: str) -> str | None:
		if fieldname in ("creation", "modified"):
			return "Datetime"
		df = self.meta.get_field(fieldname)
		return df.fieldtype if df else None

	def _column(self, fieldname: str) -> str:
		"""The stored value of a field, as filters and sorting compare it."""
		if fieldname == "name":
			return self.real_table.name
		if fieldname in ("creation", "modified"):
			fieldname = self.real_table.time_column
		if fieldname in self.real_table.columns:
			return self.real_table.columns[fieldname]
		frappe.throw(_("{0} has no field {1}").format(_(self.doctype), fieldname), frappe.DataError)

	def _output(self, fieldname: str) -> str:
		"""A field as the document shows it: datetimes in the site's time zone, UUIDs as text."""
		if fieldname in UNSTORED_FIELDS:
			return UNSTORED_FIELDS[fieldname]
		column = self._column(fieldname)
		if self._fieldtype(fieldname) == "Datetime":
			return f"({column} AT TIME ZONE %(tz)s)"
		if fieldname in self.real_table.uuid_fields:
			return f"({column})::text"
		return column

	def _value(self, fieldname: str, value) -> str:
		"""A filter value (checked by params.filters) as its field's type, cast in Python so that a
		value that does not fit is an error here, never in the database."""
		fieldtype = self._fieldtype(fieldname)
		shown = frappe.bold(values.shown(value))
		if value is None:
			return "NULL"
		if fieldtype == "Datetime":
			moment = self._moment(value)
			return f"({self._param(moment.replace(tzinfo=None))}::timestamp AT TIME ZONE %(tz)s)"
		if fieldname in self.real_table.uuid_fields:
			if not is_uuid(value):
				frappe.throw(_("{0} is not a UUID").format(shown), params.InvalidParameter)
			return f"{self._param(str(value))}::uuid"
		if fieldtype in ("Int", "Check"):
			if isinstance(value, bool | float) and float(value).is_integer():
				value = int(value)
			return f"{self._param(params.whole_number(value, fieldname, -values.INT8_MAX, values.INT8_MAX))}::bigint"
		if fieldtype == "Float":
			try:
				number = float(value)
			except (TypeError, ValueError):
				number = None
			if number is None or not math.isfinite(number) or isinstance(value, bool):
				frappe.throw(_("{0} is not a number").format(shown), params.InvalidParameter)
			return f"{self._param(number)}::float8"
		return f"{self._param(str(value))}::text"

	# --- clauses ---

	def _compared(self, fieldname: str) -> str:
		"""The column as a filter compares it: text-like columns (varchar, text, jsonb) as text."""
		column = self._column(fieldname)
		typed = self._fieldtype(fieldname) in ("Datetime", "Int", "Check", "Float")
		if typed or fieldname in self.real_table.uuid_fields:
			return column
		return f"({column})::text"

	def _moment(self, value, end_of_day: bool = False):
		try:
			moment = get_datetime(value)
		except Exception:
			moment = None
		if moment is None or not hasattr(moment, "hour"):
			frappe.throw(
				_("{0} is not a date and time").format(frappe.bold(values.shown(value))),
				params.InvalidParameter,
			)
		if end_of_day and len(str(value)) <= 10:
			moment = moment.replace(hour=23, minute=59, second=59, microsecond=999999)
		return moment

	def _condition(self, f) -> str:
		fieldname, operator, value = f.fieldname, f.operator, f.value
		column = self._compared(fieldname)
		if operator == "timespan":
			operator, value = "between", get_timespan_date_range(value) if isinstance(value, str) else None
			if value is None:
				frappe.throw(_("{0} is not a timespan").format(frappe.bold(f.value)), params.InvalidParameter)
		if operator in ("=", ">", "<", ">=", "<="):
			return f"{column} {operator} {self._value(fieldname, value)}"
		if operator == "!=":
			return f"{column} IS DISTINCT FROM {self._value(fieldname, value)}"
		if operator in ("like", "not like"):
			negate = "NOT " if operator == "not like" else ""
			return f"coalesce({negate}({column})::text ILIKE {self._param(str(value))}, {bool(negate)})"
		if operator in ("in", "not in"):
			if not value:
				return "FALSE" if operator == "in" else "TRUE"
			listed = ", ".join(self._value(fieldname, v) for v in value)
			if operator == "in":
				return f"{column} IN ({listed})"
			return f"({column} IS NULL OR {column} NOT IN ({listed}))"
		if operator == "is":
			return f"{column} IS {'NOT NULL' if value == 'set' else 'NULL'}"
		if operator == "between":
			low, high = value
			if self._fieldtype(fieldname) == "Datetime":
				low, high = self._moment(low), self._moment(high, end_of_day=True)
			return f"{column} BETWEEN {self._value(fieldname, low)} AND {self._value(fieldname, high)}"
		frappe.throw(
			_("Filter operator {0} is not supported on {1}").format(operator, _(self.doctype)),
			params.InvalidParameter,
		)

	def _filters(self, filters, what: str) -> list:
		return params.filters(filters, what)

	def _where(self) -> str:
		conditions = [self._condition(f) for f in self._filters(self.args.filters, "filters")]
		alternatives = [self._condition(f) for f in self._filters(self.args.or_filters, "or_filters")]
		if alternatives:
			conditions.append("(" + " OR ".join(alternatives) + ")")
		return " AND ".join(conditions) or "TRUE"

	def _fields(self) -> list[tuple[str, str]]:
		"""(fieldname, output key) of each requested field; every field when none is named."""
		requested = self.args.fields or []
		if isinstance(requested, str):
			requested = params.parse_json(requested, "fields") if requested.startswith("[") else [requested]
		if self.args.pluck:
			requested = [self.args.pluck]
		if not isinstance(requested, list | tuple):
			requested = [requested]
		if not requested or "*" in requested:
			return [("name", "name"), *((f, f) for f in self.real_table.columns), ("modified", "modified")]
		result = []
		for spec in requested:
			match = _FIELD.match(spec.strip()) if isinstance(spec, str) else None
			if not match:
				spec = values.shown(spec)
				frappe.throw(_("Field {0} is not supported on {1}").format(spec, _(self.doctype)))
			result.append((match.group(1), match.group(2) or match.group(1)))
		return result

	def _order(self) -> str:
		items = []
		order_by = "" if self.args.order_by == DefaultOrderBy else self.args.order_by
		if not isinstance(order_by, str | None):
			frappe.throw(_("order_by must be text"), params.InvalidParameter)
		for item in (order_by or "").split(","):
			match = _ORDER.match(item.strip())
			if match:
				items.append(f"{self._column(match.group(1))} {(match.group(2) or 'asc').upper()}")
		return ", ".join(items) or f"{self._column(self.real_table.time_column)} DESC"

	def _count_argument(self, *keys: str) -> int:
		"""The first of `keys` given, as a whole number of 0 or more (0 when none is given)."""
		key, value = next(
			((k, self.args[k]) for k in keys if self.args.get(k) not in (None, "")), (keys[0], 0)
		)
		if isinstance(value, str) and value.strip().isascii() and value.strip().isdecimal():
			value = int(value)
		if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= values.INT8_MAX:
			return value
		frappe.throw(
			_("{0} must be a whole number, 0 or more, not {1}").format(key, frappe.bold(values.shown(value))),
			InvalidPaging,
			title=_("Invalid paging"),
		)

	def _run(self, statement: str, bound: dict | None = None) -> tuple[list, list]:
		cur = db.cursor()
		cur.execute(statement, self.params if bound is None else bound)
		return [c.name for c in cur.description], cur.fetchall()

	# --- results ---

	def rows(self) -> list:
		fields = self._fields()
		select = ", ".join(f'{self._output(f)} AS "{key}"' for f, key in fields)
		asked = self._count_argument("page_length", "limit_page_length", "limit")
		capped = not 0 < asked <= MAX_PAGE_LENGTH
		page_length = MAX_PAGE_LENGTH if capped else asked
		start = self._count_argument("start", "limit_start")
		statement = (
			f"SELECT {select} FROM {self.real_table.relation} WHERE {self._where()}"
			f" ORDER BY {self._order()} LIMIT {page_length} OFFSET {start}"
		)
		columns, rows = self._run(statement)
		if capped and len(rows) == MAX_PAGE_LENGTH:
			frappe.msgprint(
				_("{0} lists at most {1} rows at a time: filter it, or page on with start.").format(
					_(self.doctype), MAX_PAGE_LENGTH
				),
				alert=True,
			)
		if self.args.pluck:
			return [row[0] for row in rows]
		if self.args.as_list:
			return [list(row) for row in rows]
		return [frappe._dict(zip(columns, row, strict=True)) for row in rows]

	def count(self) -> int:
		where = self._where()
		relation = self.real_table.relation
		if where == "TRUE":
			estimate = self._run(ESTIMATE, {"relation": relation})[1][0][0]
			if estimate > EXACT_COUNT_LIMIT:
				return estimate
		return self._run(f"SELECT count(*) FROM {relation} WHERE {where}")[1][0][0]

	def load(self, found: tuple[str, tuple]) -> dict | None:
		condition, values = found
		fields = self._fields()
		select = ", ".join(f'{self._output(f)} AS "{key}"' for f, key in fields)
		placeholders = tuple(self._param(v) for v in values)
		statement = (
			f"SELECT {select} FROM {self.real_table.relation} WHERE {condition % placeholders} LIMIT 1"
		)
		columns, rows = self._run(statement)
		if not rows:
			return None
		row = dict(zip(columns, rows[0], strict=True))
		row["creation"] = row["modified"]
		row["docstatus"] = 0
		return row
