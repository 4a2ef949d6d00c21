"""Synapse analytics metrics, evaluated (framework-free: cursors and plain values).

A metric's `query_definition` is one of:

- structured JSON: {"metric": "cpu.usage", "aggregate": "avg", "window": "1 hour",
  "dimensions": {"host": "a"}} ("dimension_filter" or "filter" name the dimensions too): the aggregate (avg, sum, min, max, count) of a synapse.metrics
  metric over the window that ends at the evaluation (a whole number and a unit: minutes, hours,
  days or weeks, up to 366 days), read as cauldron.synapse.query.value reads it;
- one read-only SQL SELECT returning one row of one number, such as
  `SELECT count(*) FROM core.users WHERE created_at > now() - interval '1 day'`. It is parsed with
  PostgreSQL's own parser (pglast) and must be a single SELECT (no SELECT INTO, FOR UPDATE or
  set_config), then run on the reader's connection (a login holding the site's reader role) in a
  READ ONLY transaction with a statement_timeout, after SET LOCAL ROLE to the reader role when one
  is named: it can neither write nor read what the reader may not, and the transaction is always
  rolled back.

Every failure is a MetricError with a sentence saying why: the SQL writes, takes too long, returns
no row, NULL, text or more than one value, reads a relation the reader may not, names an unknown
metric; a structured window with no point has no average.

Alert states. `direction` "above": the state is critical when value > critical_threshold, else
warning when value > warning_threshold, else ok; "below": value < critical, else value <
warning. A metric with a target but no thresholds is warning when the value is on the wrong side of
the target. A change of state (ok -> warning -> critical -> ok, in any order) is an Alert naming the
threshold crossed (for a return to ok, the boundary it came back over); while a state holds there
is none. A metric never evaluated counts as ok; an evaluation that fails keeps the state.

`evaluate_all` evaluates a list of metrics, one failing not stopping the others, writes each value
as a point of synapse.metrics named `series_name(metric)` ("analytics.<metric name (its UUID)>")
with one COPY, and returns each result with its alert, if any. The Frappe glue
(cauldron/synapse/jobs.py) records alerts and notifies subscribers.
"""

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import psycopg2
from psycopg2 import errors, sql

from cauldron.pg import CauldronDBError, timeseries, values
from cauldron.synapse import query

STATES = ("ok", "warning", "critical")
DIRECTIONS = ("above", "below")
DEFAULT_TIMEOUT = 5.0  # seconds, per SQL definition
MAX_WINDOW = timedelta(days=366)
SERIES_PREFIX = "analytics."
# Functions a definition may not call even on the reader's connection: set_config could change the
# session's role or the transaction's settings from inside a SELECT.
REFUSED_FUNCTIONS = frozenset({"set_config"})
_WINDOW_UNITS = {
	"minute": timedelta(minutes=1),
	"hour": timedelta(hours=1),
	"day": timedelta(days=1),
	"week": timedelta(weeks=1),
}


class MetricError(CauldronDBError):
	"""A metric that cannot be evaluated; the message says why."""


def series_name(metric: str) -> str:
	"""The synapse.metrics metric_name of an analytics metric's evaluated values."""
	return SERIES_PREFIX + metric


# --- definitions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Structured:
	metric: str
	aggregate: str
	window: timedelta
	dimensions: dict | None = None


@dataclass(frozen=True)
class SqlQuery:
	text: str


def parse_window(text) -> timedelta:
	if not isinstance(text, str):
		raise MetricError(f"window must be text such as '1 hour' or '7 days', not {values.shown(text)}")
	match = re.fullmatch(r"\s*(\d{1,6})\s*([a-zA-Z]+)\s*", text)
	unit = query._UNITS.get(match.group(2).lower()) if match else None
	if not match or unit not in _WINDOW_UNITS:
		raise MetricError(
			f"window {values.shown(text)} is not a number and a unit (minutes, hours, days, weeks)"
		)
	window = int(match.group(1)) * _WINDOW_UNITS[unit]
	if not timedelta(minutes=1) <= window <= MAX_WINDOW:
		raise MetricError(f"window {values.shown(text)} is not between 1 minute and 366 days")
	return window


def parse_definition(text) -> Structured | SqlQuery:
	"""A query_definition: JSON (an object) or one SELECT; MetricError when it is neither."""
	if not isinstance(text, str) or not text.strip():
		raise MetricError("the metric has no query definition")
	try:
		values.text(text, "the query definition")
	except values.InvalidValue as e:
		raise MetricError(str(e)) from None
	if text.lstrip().startswith("{"):
		try:
			spec = values.parse_json(text, "the query definition")
		except values.InvalidValue as e:
			raise MetricError(str(e)) from None
		return _structured(spec)
	check_select(text)
	return SqlQuery(text)


# Other names of "dimensions" a definition may use (the "dimension filter").
DIMENSION_KEYS = ("dimensions", "dimension_filter", "filter")


def _structured(spec) -> Structured:
	if not isinstance(spec, dict):
		raise MetricError(f"a structured definition is a JSON object, not {values.shown(spec)}")
	given = [key for key in DIMENSION_KEYS if key in spec]
	if len(given) > 1:
		raise MetricError(f"the definition gives its dimensions twice ({', '.join(given)})")
	spec = dict(spec)
	if given:
		spec["dimensions"] = spec.pop(given[0])
	known = {"metric", "aggregate", "window", "dimensions"}
	unknown = sorted(set(spec) - known)
	if unknown:
		raise MetricError(
			f"the definition has unknown keys {', '.join(unknown)} (it takes {', '.join(sorted(known))})"
		)
	if "metric" not in spec:
		raise MetricError(
			'the definition names no metric ({"metric": "...", "aggregate": ..., "window": ...})'
		)
	try:
		metric = query._metric(spec["metric"])
		aggregate = query._aggregate(spec.get("aggregate", "avg"))
		query._filter(spec.get("dimensions"), "d", [])
	except CauldronDBError as e:
		raise MetricError(str(e)) from None
	return Structured(metric, aggregate, parse_window(spec.get("window", "1 hour")), spec.get("dimensions"))


def check_select(text: str) -> None:
	"""Refuse anything but one plain SELECT (PostgreSQL's parser, via pglast)."""
	import pglast
	from pglast import ast, visitors

	try:
		statements = pglast.parse_sql(text)
	except pglast.parser.ParseError as e:
		raise MetricError(f"the SQL does not parse: {e}") from None
	if len(statements) != 1:
		raise MetricError(f"the SQL must be one SELECT statement, not {len(statements)} statements")
	statement = statements[0].stmt
	if not isinstance(statement, ast.SelectStmt):
		kind = type(statement).__name__.removesuffix("Stmt").upper()
		raise MetricError(f"the SQL must be a SELECT, not {kind}: a metric only reads")
	if statement.intoClause is not None:
		raise MetricError("the SQL must not be SELECT INTO: a metric only reads")

	class Refusals(visitors.Visitor):
		def visit_FuncCall(self, _ancestors, node):
			name = node.funcname[-1].sval.lower()
			if name in REFUSED_FUNCTIONS:
				raise MetricError(f"the SQL must not call {name}()")

		def visit_SelectStmt(self, _ancestors, node):
			if node.lockingClause:
				raise MetricError("the SQL must not lock rows (FOR UPDATE / FOR SHARE): a metric only reads")

	Refusals()(statement)


# --- evaluation -------------------------------------------------------------------------------


def _number(rows: list, description) -> float:
	if not rows:
		raise MetricError("the SQL returned no row; it must return one row holding one number")
	if len(rows) > 1:
		raise MetricError("the SQL returned more than one row; it must return one row holding one number")
	if len(description) != 1:
		raise MetricError(f"the SQL returned {len(description)} columns; it must return one number")
	(result,) = rows[0]
	if result is None:
		raise MetricError("the SQL returned NULL, not a number")
	if isinstance(result, bool) or not isinstance(result, int | float | Decimal):
		raise MetricError(f"the SQL returned {values.shown(result)} ({type(result).__name__}), not a number")
	number = float(result)
	if not math.isfinite(number):
		raise MetricError(f"the SQL returned {result}, not a finite number")
	return number


def _first_line(error: psycopg2.Error) -> str:
	return (error.pgerror or str(error)).strip().splitlines()[0].removeprefix("ERROR:").strip()


def run_sql(conn, text: str, timeout: float = DEFAULT_TIMEOUT, role: str | None = None) -> float:
	"""The number one SELECT returns on `conn` (the reader's connection), in a READ ONLY transaction
	with `timeout` seconds of statement_timeout, as `role` when given; always rolled back."""
	check_select(text)
	conn.rollback()
	try:
		with conn.cursor() as cur:
			cur.execute("SET TRANSACTION READ ONLY")
			cur.execute("SELECT set_config('statement_timeout', %s, true)", (f"{int(timeout * 1000)}ms",))
			if role:
				try:
					cur.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
				except errors.InsufficientPrivilege:
					raise MetricError(
						f"the reader's login may not act as {role}: GRANT {role} TO the login"
					) from None
			try:
				cur.execute(text)
				rows = cur.fetchmany(2) if cur.description else []
			except errors.QueryCanceled:
				raise MetricError(f"the SQL took longer than {timeout:g} s (statement timeout)") from None
			except errors.ReadOnlySqlTransaction as e:
				raise MetricError(f"the SQL tries to write: {_first_line(e)}") from None
			except errors.InsufficientPrivilege as e:
				raise MetricError(f"the SQL reads what the reader role may not: {_first_line(e)}") from None
			except psycopg2.Error as e:
				raise MetricError(f"the SQL failed: {_first_line(e)}") from None
			if cur.description is None:
				raise MetricError("the SQL returned no rows at all (not a query)")
			return _number(rows, cur.description)
	finally:
		conn.rollback()


def run_structured(cur, definition: Structured, now: datetime) -> float:
	try:
		result = query.value(
			cur, definition.metric, definition.dimensions, now - definition.window, now, definition.aggregate
		)
	except query.UnknownMetric as e:
		raise MetricError(str(e)) from None
	except CauldronDBError as e:
		raise MetricError(str(e)) from None
	if result is None:
		raise MetricError(
			f"no point of {definition.metric!r} in the {definition.window} before {now.isoformat()}:"
			f" no {definition.aggregate}"
		)
	return result


# --- alert states -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Thresholds:
	target: float | None = None
	warning: float | None = None
	critical: float | None = None
	direction: str = "above"

	def check(self) -> None:
		if self.direction not in DIRECTIONS:
			raise MetricError(f"direction must be above or below, not {values.shown(self.direction)}")
		if self.warning is not None and self.critical is not None:
			if self.direction == "above" and self.warning > self.critical:
				raise MetricError(
					f"alerting above: the warning threshold ({self.warning:g}) must not be above the"
					f" critical one ({self.critical:g})"
				)
			if self.direction == "below" and self.warning < self.critical:
				raise MetricError(
					f"alerting below: the warning threshold ({self.warning:g}) must not be below the"
					f" critical one ({self.critical:g})"
				)

	def _beyond(self, number: float, threshold: float | None) -> bool:
		if threshold is None:
			return False
		return number > threshold if self.direction == "above" else number < threshold

	def state(self, number: float) -> str:
		if self._beyond(number, self.critical):
			return "critical"
		if self._beyond(number, self.warning):
			return "warning"
		if self.warning is None and self.critical is None and self._beyond(number, self.target):
			return "warning"
		return "ok"

	def threshold(self, state: str, previous: str) -> float | None:
		"""The threshold a change into `state` crossed."""
		if state == "critical":
			return self.critical
		if state == "warning":
			if previous == "critical":
				return self.critical
			return self.warning if self.warning is not None else self.target
		# back to ok: over the boundary of the state it leaves
		if previous == "warning":
			return self.warning if self.warning is not None else self.target
		return self.warning if self.warning is not None else self.critical


@dataclass(frozen=True)
class Alert:
	metric: str
	from_state: str
	to_state: str
	value: float
	threshold: float | None
	at: datetime


def transition(
	metric: str, previous: str | None, number: float, thresholds: Thresholds, at: datetime
) -> tuple[str, Alert | None]:
	"""The new state for `number`, and the Alert when it differs from `previous` (None: ok)."""
	previous = previous if previous in STATES else "ok"
	state = thresholds.state(number)
	if state == previous:
		return state, None
	return state, Alert(metric, previous, state, number, thresholds.threshold(state, previous), at)


# --- a run ------------------------------------------------------------------------------------


@dataclass
class MetricSpec:
	name: str  # the Synapse Analytics Metric's name (a UUID)
	query_definition: str | None
	thresholds: Thresholds = field(default_factory=Thresholds)
	state: str | None = None  # the alert state it is in
	title: str = ""  # its metric_name, for the point's dimensions


@dataclass
class Result:
	metric: str
	value: float | None = None
	state: str | None = None
	error: str | None = None
	alert: Alert | None = None
	seconds: float = 0.0


def evaluate(
	spec: MetricSpec,
	cur,
	reader: Callable[[], object] | None = None,
	now: datetime | None = None,
	timeout: float = DEFAULT_TIMEOUT,
	role: str | None = None,
) -> Result:
	"""Evaluate one metric; a MetricError becomes the result's error (state unchanged)."""
	import time

	now = now or datetime.now(timezone.utc)
	started = time.perf_counter()
	result = Result(spec.name, state=spec.state)
	try:
		spec.thresholds.check()
		definition = parse_definition(spec.query_definition)
		if isinstance(definition, Structured):
			number = run_structured(cur, definition, now)
		else:
			if reader is None:
				raise MetricError(
					"SQL definitions run on the reader's login, and none is configured"
					" (site config: cauldron_reader_login and cauldron_reader_password)"
				)
			number = run_sql(reader(), definition.text, timeout, role)
		result.value = number
		result.state, result.alert = transition(spec.name, spec.state, number, spec.thresholds, now)
	except MetricError as e:
		result.error = str(e)
	result.seconds = time.perf_counter() - started
	return result


def evaluate_all(
	specs: list[MetricSpec],
	cur,
	reader: Callable[[], object] | None = None,
	now: datetime | None = None,
	timeout: float = DEFAULT_TIMEOUT,
	role: str | None = None,
) -> list[Result]:
	"""Evaluate every metric (one failing does not stop the others) and write their values as
	points of synapse.metrics (one COPY, in `cur`'s transaction); returns the results in order."""
	now = now or datetime.now(timezone.utc)
	results = [evaluate(spec, cur, reader, now, timeout, role) for spec in specs]
	points = [
		(now, series_name(spec.name), result.value, {"metric": spec.title} if spec.title else {})
		for spec, result in zip(specs, results, strict=True)
		if result.error is None
	]
	timeseries.write_metrics(cur, points)
	return results


class Reader:
	"""A lazily opened reader connection (`connect()` makes it), closed by `close()`; callable,
	as evaluate's `reader` argument wants."""

	def __init__(self, connect: Callable[[], object]):
		self._connect = connect
		self._conn = None

	def __call__(self):
		if self._conn is None or self._conn.closed:
			try:
				self._conn = self._connect()
			except psycopg2.OperationalError as e:
				raise MetricError(f"the reader's login cannot connect: {str(e).strip()}") from None
			with self._conn.cursor() as cur:
				cur.execute("SELECT rolsuper FROM pg_roles WHERE rolname = session_user")
				(superuser,) = cur.fetchone()
			self._conn.rollback()
			if superuser:
				self.close()
				raise MetricError(
					"the reader's login is a superuser: give SQL metrics a login of the reader role"
				)
		return self._conn

	def close(self):
		if self._conn is not None:
			self._conn.close()
			self._conn = None
