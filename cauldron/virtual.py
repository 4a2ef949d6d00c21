"""Read-only virtual DocTypes over Cauldron's real tables (audit log, metrics, security events,
document chunks, agent interactions): Desk's list view with filters and sorting, the count, the form
and REST reads come straight from SQL; inserts, updates and deletes are refused.

Frappe calls a virtual DocType's get_list/get_count/get_stats from Desk without checking
permissions itself, so each of them checks read permission here, for the user and with the
ignore_permissions of a frappe.get_list / get_all call. A page holds at most MAX_PAGE_LENGTH rows.
"""

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import frappe
from frappe import _
from frappe.database.utils import DefaultOrderBy
from frappe.model.base_document import get_controller
from frappe.model.document import Document
from frappe.utils import get_datetime, get_system_timezone, get_timespan_date_range
from frappe.utils.data import get_filter

from cauldron import db
from cauldron.model import is_uuid

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


_TIME_AND_HASH = re.compile(r"^(\d+)-([0-9a-f]{12})$")


def time_and_hash_name(time_column: str, hash_expression: str) -> str:
	"""For a table without a key: <epoch microseconds of the time>-<12 hex digits of a hash>."""
	return f"(extract(epoch FROM {time_column}) * 1000000)::bigint::text || '-' || {hash_expression}"


def by_time_and_hash(time_column: str, hash_expression: str) -> Callable[[str], tuple[str, tuple] | None]:
	"""The lookup of a time_and_hash_name: the time finds the partition and index, the hash the row."""

	def lookup(name: str) -> tuple[str, tuple] | None:
		match = _TIME_AND_HASH.match(name)
		if not match:
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

	@staticmethod
	def get_list(args) -> list:
		return TableQuery(args["doctype"], args).rows()

	@staticmethod
	def get_count(args) -> int:
		return TableQuery(args["doctype"], args).count()

	@staticmethod
	def get_stats(args) -> dict:
		frappe.has_permission(args["doctype"], "read", throw=True)
		return {}  # no tags on these rows

	def load_from_db(self):
		found = self.real_table.lookup(self.name)
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
		"""A filter value, checked against the field's type so bad input is an error, not a 500."""
		fieldtype = self._fieldtype(fieldname)
		if fieldtype == "Datetime":
			try:
				moment = get_datetime(value)
			except Exception:
				moment = None
			if moment is None:
				frappe.throw(_("{0} is not a date and time").format(frappe.bold(value)))
			return f"({self._param(moment.replace(tzinfo=None))}::timestamp AT TIME ZONE %(tz)s)"
		if fieldname in self.real_table.uuid_fields and not is_uuid(value):
			frappe.throw(_("{0} is not a UUID").format(frappe.bold(value)))
		if fieldtype in ("Int", "Float", "Check"):
			try:
				float(value)
			except (TypeError, ValueError):
				frappe.throw(_("{0} is not a number").format(frappe.bold(value)))
		return self._param(value)

	# --- clauses ---

	def _condition(self, f) -> str:
		fieldname, operator, value = f.fieldname, f.operator.lower(), f.value
		column = self._column(fieldname)
		if operator == "timespan":
			operator, value = "between", get_timespan_date_range(value)
		if operator in ("=", ">", "<", ">=", "<="):
			return f"{column} {operator} {self._value(fieldname, value)}"
		if operator == "!=":
			return f"{column} IS DISTINCT FROM {self._value(fieldname, value)}"
		if operator in ("like", "not like"):
			negate = "NOT " if operator == "not like" else ""
			return f"coalesce({negate}({column})::text ILIKE {self._param(str(value))}, {bool(negate)})"
		if operator in ("in", "not in"):
			values = value.split(",") if isinstance(value, str) else list(value or [])
			values = [v.strip() if isinstance(v, str) else v for v in values if v not in (None, "")]
			if not values:
				return "FALSE" if operator == "in" else "TRUE"
			listed = ", ".join(self._value(fieldname, v) for v in values)
			if operator == "in":
				return f"{column} IN ({listed})"
			return f"({column} IS NULL OR {column} NOT IN ({listed}))"
		if operator == "is":
			return f"{column} IS {'NOT NULL' if value == 'set' else 'NULL'}"
		if operator == "between":
			low, high = (get_datetime(v) if self._fieldtype(fieldname) == "Datetime" else v for v in value)
			if self._fieldtype(fieldname) == "Datetime" and len(str(value[1])) <= 10:
				high = high.replace(hour=23, minute=59, second=59, microsecond=999999)
			return f"{column} BETWEEN {self._value(fieldname, low)} AND {self._value(fieldname, high)}"
		frappe.throw(_("Filter operator {0} is not supported on {1}").format(operator, _(self.doctype)))

	def _filters(self, filters) -> list:
		if isinstance(filters, str):
			filters = json.loads(filters or "[]")
		if isinstance(filters, dict):
			filters = [{key: value} for key, value in filters.items()]
		return [get_filter(self.doctype, f) for f in filters or []]

	def _where(self) -> str:
		conditions = [self._condition(f) for f in self._filters(self.args.filters)]
		alternatives = [self._condition(f) for f in self._filters(self.args.or_filters)]
		if alternatives:
			conditions.append("(" + " OR ".join(alternatives) + ")")
		return " AND ".join(conditions) or "TRUE"

	def _fields(self) -> list[tuple[str, str]]:
		"""(fieldname, output key) of each requested field; every field when none is named."""
		requested = self.args.fields or []
		if isinstance(requested, str):
			requested = json.loads(requested) if requested.startswith("[") else [requested]
		if self.args.pluck:
			requested = [self.args.pluck]
		if not requested or "*" in requested:
			return [("name", "name"), *((f, f) for f in self.real_table.columns), ("modified", "modified")]
		result = []
		for spec in requested:
			match = _FIELD.match(spec.strip())
			if not match:
				frappe.throw(_("Field {0} is not supported on {1}").format(spec, _(self.doctype)))
			result.append((match.group(1), match.group(2) or match.group(1)))
		return result

	def _order(self) -> str:
		items = []
		order_by = "" if self.args.order_by == DefaultOrderBy else self.args.order_by
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
		if isinstance(value, str) and value.strip().isdecimal():
			return int(value)
		if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
			return value
		frappe.throw(
			_("{0} must be a whole number, 0 or more, not {1}").format(key, frappe.bold(value)),
			InvalidPaging,
			title=_("Invalid paging"),
		)

	def _run(self, statement: str, params: dict | None = None) -> tuple[list, list]:
		cur = db.cursor()
		cur.execute(statement, self.params if params is None else params)
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
