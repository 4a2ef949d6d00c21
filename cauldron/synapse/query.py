"""Synapse queries over `synapse.metrics` and its hourly rollup (framework-free: takes a cursor).

STABLE API (dashboards and forecasts call these; keep the signatures):

	series(cur, metric, dimensions=None, start=..., end=..., interval="1 hour", aggregate="avg",
		fill="null") -> Series
	top(cur, metric, dimension, start=..., end=..., limit=10, aggregate="sum", dimensions=None)
		-> list[TopRow]
	value(cur, metric, dimensions=None, start=..., end=..., aggregate="avg") -> float | None
	parse_interval(text) -> Interval; AGGREGATES; QueryError (and its UnknownMetric)

`series` buckets the points with `time` in [start, end) by `interval` (one minute to one month:
"1 minute", "5m", "15 minutes", "1h", "6 hours", "1 day", "1w", "1 month"...), UTC-aligned: fixed
widths on date_bin's origin 2000-01-03 00:00 UTC (a Monday, so weeks start on Mondays), months on the
first of the month. It returns every bucket from the one holding `start` to the one holding the last
instant before `end`, gaps filled: with None (`fill="null"`, the default; `count` is 0 there), 0
(`fill="zero"`) or the previous bucket's value (`fill="previous"`).

Where the numbers come from: an interval that is a whole number of hours (hours, days, weeks, a
month) reads `synapse.metrics_hourly` for the whole hours inside [start, end) that the rollup holds,
and the raw points for the rest: partial hours at either end, and the hours written since the last
rollup refresh (those `synapse.rollup_invalidations` lists). So the answer is the raw points'
answer whether the hourly job has run or not, and the same on the native and the TimescaleDB paths
(the same relations, filled by the same job). Shorter or unaligned intervals read the raw points.
Gaps are filled in Python from the bucket list, so both paths give the same buckets.

`dimensions` filters points by their dimensions: {"host": "a"} keeps points whose dimensions hold
host = "a" (others may hold more keys); a list as the value keeps any of its values.

`top` ranks the values of one dimension over [start, end) by an aggregate (the N busiest hosts,
DocTypes...), from the same hourly-plus-raw source; points without that dimension are left out.
"""

import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from cauldron.pg import CauldronDBError, values

AGGREGATES = ("avg", "sum", "min", "max", "count")
FILLS = ("null", "zero", "previous")
MAX_BUCKETS = 10_000
MAX_TOP = 1000
MAX_FILTER_VALUES = 100
ORIGIN = datetime(2000, 1, 3, tzinfo=timezone.utc)  # a Monday; date_bin's origin for fixed widths
HOUR = timedelta(hours=1)
MIN_WIDTH = timedelta(minutes=1)
MAX_WIDTH = timedelta(weeks=4)  # fixed widths; "1 month" is the one calendar interval

_UNITS = {
	"m": "minute",
	"min": "minute",
	"mins": "minute",
	"minute": "minute",
	"minutes": "minute",
	"h": "hour",
	"hr": "hour",
	"hrs": "hour",
	"hour": "hour",
	"hours": "hour",
	"d": "day",
	"day": "day",
	"days": "day",
	"w": "week",
	"week": "week",
	"weeks": "week",
	"mo": "month",
	"mon": "month",
	"month": "month",
	"months": "month",
}
_WIDTHS = {"minute": timedelta(minutes=1), "hour": HOUR, "day": timedelta(days=1), "week": timedelta(weeks=1)}


class QueryError(CauldronDBError):
	"""A query refused: bad interval, range, aggregate or filter."""


class UnknownMetric(QueryError):
	"""No point of this metric exists (raw or rolled up)."""


@dataclass(frozen=True)
class Interval:
	"""A bucket width: `width` (fixed) or one calendar month (`width` None)."""

	text: str  # canonical: "5 minutes", "1 hour", "1 month"
	width: timedelta | None

	@property
	def monthly(self) -> bool:
		return self.width is None

	@property
	def hourly(self) -> bool:
		"""Whether every bucket is made of whole UTC hours (the rollup can answer)."""
		return self.width is None or self.width % HOUR == timedelta(0)

	def bucket(self, moment: datetime) -> datetime:
		"""The start of the bucket holding `moment`."""
		moment = moment.astimezone(timezone.utc)
		if self.width is None:
			return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
		return ORIGIN + (moment - ORIGIN) // self.width * self.width

	def next(self, bucket: datetime) -> datetime:
		if self.width is None:
			year, month = (bucket.year + 1, 1) if bucket.month == 12 else (bucket.year, bucket.month + 1)
			return bucket.replace(year=year, month=month)
		return bucket + self.width

	def buckets(self, start: datetime, end: datetime) -> list[datetime]:
		"""Every bucket start from the one holding `start` to the one holding end - 1µs."""
		result = []
		bucket = self.bucket(start)
		while bucket < end:
			result.append(bucket)
			if len(result) > MAX_BUCKETS:
				raise QueryError(
					f"{start.isoformat()} to {end.isoformat()} by {self.text} is more than {MAX_BUCKETS}"
					" buckets: take a longer interval or a shorter range"
				)
			bucket = self.next(bucket)
		return result

	def sql(self, column: str) -> str:
		"""SQL of the bucket of `column` (a timestamptz expression); the width is canonical text."""
		if self.width is None:
			return f"date_trunc('month', {column}, 'UTC')"
		return f"date_bin(INTERVAL '{self.text}', {column}, TIMESTAMPTZ '2000-01-03 00:00:00+00')"


def parse_interval(text) -> Interval:
	"""'1 minute' .. '1 month': a whole number and a unit (m, min, minute(s), h, hour(s), d, day(s),
	w, week(s), mo, month(s)); a fixed width from 1 minute to 4 weeks, or exactly 1 month."""
	if isinstance(text, Interval):
		return text
	if not isinstance(text, str):
		raise QueryError(f"interval must be text such as '5 minutes' or '1 hour', not {values.shown(text)}")
	match = re.fullmatch(r"\s*(\d{1,6})\s*([a-zA-Z]+)\s*", text)
	unit = _UNITS.get(match.group(2).lower()) if match else None
	if not match or not unit:
		raise QueryError(
			f"interval {values.shown(text)} is not a number and a unit (minutes, hours, days, weeks, month)"
		)
	count = int(match.group(1))
	if unit == "month":
		if count != 1:
			raise QueryError(f"interval {values.shown(text)}: the longest interval is 1 month")
		return Interval("1 month", None)
	width = count * _WIDTHS[unit]
	if not MIN_WIDTH <= width <= MAX_WIDTH:
		raise QueryError(f"interval {values.shown(text)} is not between 1 minute and 1 month")
	minutes = width // MIN_WIDTH
	for size, name in ((10080, "week"), (1440, "day"), (60, "hour"), (1, "minute")):
		if minutes % size == 0:
			n = minutes // size
			return Interval(f"{n} {name}{'' if n == 1 else 's'}", width)
	raise AssertionError("unreachable")


def _moment(value, what: str) -> datetime:
	if isinstance(value, str):
		try:
			value = datetime.fromisoformat(value.replace("Z", "+00:00"))
		except ValueError:
			raise QueryError(f"{what} {values.shown(value)} is not an ISO 8601 time") from None
	if not isinstance(value, datetime) or value.tzinfo is None:
		raise QueryError(f"{what} must be a time with a time zone, not {values.shown(value)}")
	return value.astimezone(timezone.utc)


def _range(start, end) -> tuple[datetime, datetime]:
	start, end = _moment(start, "start"), _moment(end, "end")
	if end <= start:
		raise QueryError(f"end ({end.isoformat()}) must be after start ({start.isoformat()})")
	return start, end


def _metric(metric) -> str:
	if not isinstance(metric, str) or not metric.strip() or len(metric) > 100:
		raise QueryError(f"metric must be a name of 1 to 100 characters, not {values.shown(metric)}")
	values.text(metric, "metric")
	return metric


def _aggregate(aggregate) -> str:
	if aggregate not in AGGREGATES:
		raise QueryError(f"aggregate must be one of {', '.join(AGGREGATES)}, not {values.shown(aggregate)}")
	return aggregate


def _filter(dimensions, column: str, params: list) -> str:
	"""SQL (AND ...) keeping rows whose `column` (jsonb) matches `dimensions`; appends to params."""
	if dimensions in (None, {}):
		return ""
	if not isinstance(dimensions, dict):
		raise QueryError(
			f"dimensions must be an object such as {{'host': 'a'}}, not {values.shown(dimensions)}"
		)
	values.check(dimensions, "dimensions")
	clauses = []
	for key, wanted in dimensions.items():
		if not isinstance(key, str) or not key:
			raise QueryError(f"dimension names must be non-empty text, not {values.shown(key)}")
		options = wanted if isinstance(wanted, list) else [wanted]
		if not options or len(options) > MAX_FILTER_VALUES:
			raise QueryError(f"dimension {key!r}: give 1 to {MAX_FILTER_VALUES} values")
		for option in options:
			if not isinstance(option, str | int | float | bool) or (
				isinstance(option, float) and not math.isfinite(option)
			):
				raise QueryError(
					f"dimension {key!r}: {values.shown(option)} is not text, a number or a boolean"
				)
		ors = []
		for option in options:
			ors.append(f"{column} @> %s::jsonb")
			params.append(json.dumps({key: option}))
		clauses.append("(" + " OR ".join(ors) + ")")
	return " AND " + " AND ".join(clauses)


def exists(cur, metric: str) -> bool:
	"""Whether any point of `metric` is stored, raw or in the hourly rollup."""
	cur.execute(
		"SELECT EXISTS (SELECT 1 FROM synapse.metrics WHERE metric_name = %s)"
		" OR EXISTS (SELECT 1 FROM synapse.metrics_hourly WHERE metric_name = %s)",
		(metric, metric),
	)
	return cur.fetchone()[0]


def _known(cur, metric: str) -> None:
	if not exists(cur, metric):
		raise UnknownMetric(f"unknown metric {values.shown(metric)}: no point of it is stored")


def _hour_floor(moment: datetime) -> datetime:
	return moment.replace(minute=0, second=0, microsecond=0)


def _hour_ceil(moment: datetime) -> datetime:
	floor = _hour_floor(moment)
	return floor if floor == moment else floor + HOUR


def _hourly_parts(metric: str, dimensions, start: datetime, end: datetime) -> tuple[str, list]:
	"""SQL of rows (hour, dimensions, n, total, lo, hi) over [start, end): the rollup's rows for the
	whole, refreshed hours; raw points (n = 1) for partial hours at the ends and hours not yet
	refreshed (listed in synapse.rollup_invalidations)."""
	full_start, full_end = _hour_ceil(start), _hour_floor(end)
	params: list = []
	raw = "date_trunc('hour', m.time, 'UTC') AS hour, m.dimensions, 1::bigint AS n, m.value AS total, m.value AS lo, m.value AS hi"
	if full_start >= full_end:  # no whole hour inside: raw points only
		where = _filter(dimensions, "m.dimensions", params)
		return (
			f"SELECT {raw} FROM synapse.metrics m WHERE m.metric_name = %s AND m.time >= %s AND m.time < %s{where}",
			[metric, start, end, *params],
		)
	hourly_filter = _filter(dimensions, "h.dimensions", params)
	hourly_params = list(params)
	params.clear()
	raw_filter = _filter(dimensions, "m.dimensions", params)
	raw_params = list(params)
	query = f"""
	WITH pending AS MATERIALIZED (
		SELECT DISTINCT bucket FROM synapse.rollup_invalidations WHERE bucket >= %s AND bucket < %s
	)
	SELECT h.bucket AS hour, h.dimensions, h.sample_count AS n, h.avg_value * h.sample_count AS total,
		h.min_value AS lo, h.max_value AS hi
	FROM synapse.metrics_hourly h
	WHERE h.metric_name = %s AND h.bucket >= %s AND h.bucket < %s
		AND NOT EXISTS (SELECT 1 FROM pending p WHERE p.bucket = h.bucket){hourly_filter}
	UNION ALL
	SELECT {raw} FROM synapse.metrics m
	WHERE m.metric_name = %s AND m.time >= %s AND m.time < %s{raw_filter}
	UNION ALL
	SELECT {raw} FROM synapse.metrics m
	WHERE m.metric_name = %s AND m.time >= %s AND m.time < %s{raw_filter}
	UNION ALL
	-- hour by hour (LATERAL, OFFSET 0 keeps it from being flattened into a join): as a join, without
	-- fresh statistics, the planner read every point of the metric to find the few pending hours'
	SELECT late.* FROM pending p CROSS JOIN LATERAL (
		SELECT {raw} FROM synapse.metrics m
		WHERE m.metric_name = %s AND m.time >= p.bucket AND m.time < p.bucket + INTERVAL '1 hour'{raw_filter}
		OFFSET 0
	) late
	"""
	return query, [
		full_start,
		full_end,
		metric,
		full_start,
		full_end,
		*hourly_params,
		metric,
		start,
		full_start,
		*raw_params,
		metric,
		full_end,
		end,
		*raw_params,
		metric,
		*raw_params,
	]


# The aggregate of the parts (n, total, lo, hi) of one group.
_COMBINE = {
	"avg": "sum(total) / sum(n)",
	"sum": "sum(total)",
	"min": "min(lo)",
	"max": "max(hi)",
	"count": "sum(n)",
}
_RAW = {
	"avg": "avg(value)",
	"sum": "sum(value)",
	"min": "min(value)",
	"max": "max(value)",
	"count": "count(*)",
}


@dataclass
class Series:
	metric: str
	aggregate: str
	interval: str
	start: datetime
	end: datetime
	source: str  # "rollup" (metrics_hourly, plus raw points for what it lacks) or "raw"
	points: list[tuple[datetime, float | None]] = field(default_factory=list)

	def as_dict(self) -> dict:
		return {
			"metric": self.metric,
			"aggregate": self.aggregate,
			"interval": self.interval,
			"start": self.start.isoformat(),
			"end": self.end.isoformat(),
			"source": self.source,
			"points": [[bucket.isoformat(), value] for bucket, value in self.points],
		}


def series(
	cur,
	metric: str,
	dimensions: dict | None = None,
	start: datetime | str | None = None,
	end: datetime | str | None = None,
	interval: str = "1 hour",
	aggregate: str = "avg",
	fill: str = "null",
	check_exists: bool = True,
	use_rollup: bool = True,
) -> Series:
	"""`metric`'s points in [start, end) matching `dimensions`, aggregated per `interval` bucket,
	every bucket present (see the module's docstring). UnknownMetric when no point of it exists.
	`use_rollup=False` reads the raw points whatever the interval (for comparisons)."""
	metric = _metric(metric)
	aggregate = _aggregate(aggregate)
	if fill not in FILLS:
		raise QueryError(f"fill must be one of {', '.join(FILLS)}, not {values.shown(fill)}")
	step = parse_interval(interval)
	if start is None or end is None:
		raise QueryError("series needs a start and an end")
	start, end = _range(start, end)
	buckets = step.buckets(start, end)
	if check_exists:
		_known(cur, metric)
	if step.hourly and use_rollup:
		parts, params = _hourly_parts(metric, dimensions, start, end)
		cur.execute(
			f"SELECT {step.sql('hour')} AS b, {_COMBINE[aggregate]} FROM ({parts}) parts GROUP BY 1",
			params,
		)
		source = "rollup"
	else:
		params = [metric, start, end]
		where = _filter(dimensions, "dimensions", params)
		cur.execute(
			f"SELECT {step.sql('time')} AS b, {_RAW[aggregate]} FROM synapse.metrics"
			f" WHERE metric_name = %s AND time >= %s AND time < %s{where} GROUP BY 1",
			params,
		)
		source = "raw"
	found = {bucket.astimezone(timezone.utc): value for bucket, value in cur.fetchall()}
	points, previous = [], None
	for bucket in buckets:
		value = found.get(bucket)
		if value is not None:
			value = float(value)
			previous = value
		elif aggregate == "count" or fill == "zero":
			value = 0.0
		elif fill == "previous":
			value = previous
		points.append((bucket, value))
	return Series(metric, aggregate, step.text, start, end, source, points)


@dataclass(frozen=True)
class TopRow:
	value: str  # the dimension's value (JSON scalars as text)
	aggregate: float
	count: int


def top(
	cur,
	metric: str,
	dimension: str,
	start: datetime | str | None = None,
	end: datetime | str | None = None,
	limit: int = 10,
	aggregate: str = "sum",
	dimensions: dict | None = None,
	check_exists: bool = True,
) -> list[TopRow]:
	"""The `limit` values of `dimension` with the highest `aggregate` of `metric` over [start, end)
	(ties by value), each with its point count."""
	metric = _metric(metric)
	aggregate = _aggregate(aggregate)
	if not isinstance(dimension, str) or not dimension:
		raise QueryError(f"dimension must be a dimension name, not {values.shown(dimension)}")
	values.text(dimension, "dimension")
	if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_TOP:
		raise QueryError(f"limit must be a whole number from 1 to {MAX_TOP}, not {values.shown(limit)}")
	if start is None or end is None:
		raise QueryError("top needs a start and an end")
	start, end = _range(start, end)
	if check_exists:
		_known(cur, metric)
	parts, params = _hourly_parts(metric, dimensions, start, end)
	cur.execute(
		f"""
		SELECT dimensions ->> %s AS v, {_COMBINE[aggregate]} AS a, sum(n)::bigint
		FROM ({parts}) parts
		WHERE dimensions ? %s
		GROUP BY 1
		ORDER BY 2 DESC NULLS LAST, 1
		LIMIT %s
		""",
		[dimension, *params, dimension, limit],
	)
	return [TopRow(v, float(a), int(n)) for v, a, n in cur.fetchall()]


def value(
	cur,
	metric: str,
	dimensions: dict | None = None,
	start: datetime | str | None = None,
	end: datetime | str | None = None,
	aggregate: str = "avg",
	check_exists: bool = True,
) -> float | None:
	"""One number: `aggregate` of `metric`'s points in [start, end) matching `dimensions`, from the
	same hourly-plus-raw source as `series` (None when no point matches; count and sum are then 0)."""
	metric = _metric(metric)
	aggregate = _aggregate(aggregate)
	if start is None or end is None:
		raise QueryError("value needs a start and an end")
	start, end = _range(start, end)
	if check_exists:
		_known(cur, metric)
	parts, params = _hourly_parts(metric, dimensions, start, end)
	cur.execute(f"SELECT {_COMBINE[aggregate]} FROM ({parts}) parts", params)
	(result,) = cur.fetchone()
	if result is None:
		return 0.0 if aggregate in ("count", "sum") else None
	return float(result)
