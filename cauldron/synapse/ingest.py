"""Synapse ingest: InfluxDB line protocol and JSON batches into `synapse.metrics` (framework-free).

Line protocol (what Telegraf's `data_format = "influx"` and most agents send), one point a line::

	measurement[,tag_key=tag_value...] field_key=field_value[,field_key=field_value...] [timestamp]

parsed by the `line-protocol-parser` package (InfluxDB's escaping: `\\,` `\\ ` `\\=` in measurement,
tag keys, tag values and field keys; `\\"` and `\\\\` inside double-quoted string fields; integers
with an `i` suffix, unsigned with `u`, floats, booleans t/T/true/True/TRUE and f/F/false/...).
Empty lines and `#` comment lines are skipped.

A JSON batch is a list of objects of the same shape: `{"measurement": "cpu", "tags": {"host": "a"},
"fields": {"usage": 12.5}, "time": 1700000000}` where `time` is a whole number in the batch's
precision or ISO 8601 text with a zone (`tags` and `time` optional).

Mapping onto `synapse.metrics (time, metric_name, value, dimensions)`:
- each numeric or boolean field is one point: metric_name = measurement + "." + field key, value =
  the number (booleans 1.0 / 0.0; integers beyond 2**53 lose precision as double precision does);
- dimensions = the tags, plus the line's string fields (a string field is a property of the line,
  such as Telegraf's `uptime_format`, not a number to chart); a string field named like a tag is
  refused, and so is a line with no numeric or boolean field;
- time = the timestamp in `precision` (ns, us, ms or s; default ns, what Telegraf sends), truncated
  to microseconds (PostgreSQL's resolution); a line without one takes the request's time (`now`).

A batch is all or nothing: every line is parsed and checked first, and one bad line writes nothing.
IngestError names each bad line with its number (1-based) and why, up to MAX_ERRORS of them.

Limits per request (a larger request is split by the sender; Telegraf's default batch is 1,000):
MAX_BODY_BYTES of text, MAX_LINES lines, MAX_POINTS points; a metric name at most
MAX_METRIC_NAME_LENGTH characters (the column is varchar(100)); per point at most MAX_DIMENSIONS
dimensions, each key at most MAX_DIMENSION_KEY_BYTES and each value at most
MAX_DIMENSION_VALUE_BYTES of UTF-8. Text with NUL or a lone surrogate and numbers that are NaN or
infinite are refused (cauldron.pg.values).
"""

import math
from datetime import datetime, timedelta, timezone

import line_protocol_parser

from cauldron.pg import CauldronDBError, timeseries, values

MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_LINES = 100_000
MAX_POINTS = 200_000
MAX_METRIC_NAME_LENGTH = 100
MAX_DIMENSIONS = 32
MAX_DIMENSION_KEY_BYTES = 128
MAX_DIMENSION_VALUE_BYTES = 1024
MAX_ERRORS = 20

# Nanoseconds in one unit of each precision.
PRECISIONS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class IngestError(CauldronDBError):
	"""A batch refused whole; `errors` holds (line or point number, why) for each bad one found."""

	def __init__(self, errors: list[tuple[int, str]], total: int | None = None, what: str = "line"):
		self.errors = errors
		self.total = len(errors) if total is None else total
		shown = [f"{what} {number}: {why}" for number, why in errors]
		if self.total > len(errors):
			shown.append(f"... and {self.total - len(errors)} more bad {what}s")
		plural = "" if self.total == 1 else "s"
		super().__init__(f"{self.total} bad {what}{plural}, nothing written:\n" + "\n".join(shown))


class _Bad(Exception):
	pass


def precision_factor(precision: str) -> int:
	if not isinstance(precision, str) or precision not in PRECISIONS:
		raise values.InvalidValue(
			f"precision must be one of {', '.join(PRECISIONS)}, not {values.shown(precision)}"
		)
	return PRECISIONS[precision]


def _time(stamp, factor: int, now: datetime) -> datetime:
	if stamp is None:
		return now
	if isinstance(stamp, str):
		try:
			moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
		except ValueError:
			raise _Bad(f"time {values.shown(stamp)} is not ISO 8601 text") from None
		if moment.tzinfo is None:
			raise _Bad(f"time {values.shown(stamp)} has no time zone")
		return moment
	if isinstance(stamp, bool) or not isinstance(stamp, int):
		raise _Bad(f"time must be a whole number or ISO 8601 text, not {values.shown(stamp)}")
	try:
		return _EPOCH + timedelta(microseconds=(stamp * factor) // 1000)
	except OverflowError:
		raise _Bad(f"timestamp {stamp} is out of range") from None


def _text(value, what: str, max_bytes: int | None = None) -> str:
	if not isinstance(value, str) or not value:
		raise _Bad(f"{what} must be non-empty text, not {values.shown(value)}")
	try:
		size = values.text(value, what)
	except values.InvalidValue as e:
		raise _Bad(str(e)) from None
	if max_bytes is not None and size > max_bytes:
		raise _Bad(f"{what} {values.shown(value)} is longer than {max_bytes} bytes")
	return value


def _points(record: dict, factor: int, now: datetime) -> list[tuple]:
	"""The points of one parsed line or JSON object (keys measurement, tags, fields, time)."""
	measurement = _text(record.get("measurement"), "measurement")
	tags = record.get("tags") or {}
	fields = record.get("fields")
	if not isinstance(tags, dict):
		raise _Bad(f"tags must be an object, not {values.shown(tags)}")
	if not isinstance(fields, dict) or not fields:
		raise _Bad("a point needs at least one field")
	dimensions = {}
	for key, value in tags.items():
		_text(key, "tag key", MAX_DIMENSION_KEY_BYTES)
		dimensions[key] = _text(value, f"tag {key!r}", MAX_DIMENSION_VALUE_BYTES)
	numbers = []
	for key, value in sorted(fields.items()):  # the parser keeps no order: points by field key
		_text(key, "field key", MAX_DIMENSION_KEY_BYTES)
		if isinstance(value, str):
			if key in tags:
				raise _Bad(f"string field {key!r} has the name of a tag")
			dimensions[key] = (
				_text(value, f"string field {key!r}", MAX_DIMENSION_VALUE_BYTES) if value else ""
			)
		elif isinstance(value, bool):
			numbers.append((key, 1.0 if value else 0.0))
		elif isinstance(value, int | float):
			try:
				number = float(value)
			except OverflowError:
				number = math.inf
			if not math.isfinite(number):
				raise _Bad(f"field {key!r} is {value}, not a finite number")
			numbers.append((key, number))
		else:
			raise _Bad(f"field {key!r} is {values.shown(value)}, not a number, boolean or text")
	if not numbers:
		raise _Bad("no numeric or boolean field (string fields alone make no point)")
	if len(dimensions) > MAX_DIMENSIONS:
		raise _Bad(f"{len(dimensions)} dimensions (tags and string fields), more than {MAX_DIMENSIONS}")
	time = _time(record.get("time"), factor, now)
	result = []
	for key, number in numbers:
		name = f"{measurement}.{key}"
		if len(name) > MAX_METRIC_NAME_LENGTH:
			raise _Bad(f"metric name {values.shown(name)} is longer than {MAX_METRIC_NAME_LENGTH} characters")
		result.append((time, name, number, dimensions))
	return result


def _collect(records, factor: int, now: datetime, what: str) -> list[tuple]:
	"""Points of (number, record or parse error) pairs; IngestError naming every bad one."""
	points, errors, bad = [], [], 0
	for number, record in records:
		try:
			if isinstance(record, _Bad):
				raise record
			if not isinstance(record, dict):
				raise _Bad(f"must be an object, not {values.shown(record)}")
			points.extend(_points(record, factor, now))
		except _Bad as e:
			bad += 1
			if len(errors) < MAX_ERRORS:
				errors.append((number, str(e)))
		if len(points) > MAX_POINTS:
			raise IngestError([(number, f"the request holds more than {MAX_POINTS} points")], what=what)
	if bad:
		raise IngestError(errors, bad, what)
	return points


def _parsed_lines(text: str):
	for number, line in enumerate(text.split("\n"), 1):
		line = line.strip()
		if not line or line.startswith("#"):
			continue
		try:
			values.text(line, "the line")  # NUL would end the line early in the C parser
			yield number, line_protocol_parser.parse_line(line)
		except values.InvalidValue as e:
			yield number, _Bad(str(e))
		except line_protocol_parser.LineFormatError as e:
			yield number, _Bad(f"{e} ({values.shown(line)})")


def parse_lines(text, precision: str = "ns", now: datetime | None = None) -> list[tuple]:
	"""Line protocol text (str or UTF-8 bytes) as (time, metric_name, value, dimensions) points."""
	factor = precision_factor(precision)
	now = now or datetime.now(timezone.utc)
	if isinstance(text, bytes | bytearray):
		if len(text) > MAX_BODY_BYTES:
			raise values.InvalidValue(f"the request is larger than {MAX_BODY_BYTES // 2**20} MiB")
		try:
			text = text.decode("utf-8")
		except UnicodeDecodeError as e:
			line = text[: e.start].count(b"\n") + 1
			raise IngestError([(line, "is not UTF-8 text")]) from None
	if len(text) > MAX_BODY_BYTES:
		raise values.InvalidValue(f"the request is larger than {MAX_BODY_BYTES // 2**20} MiB")
	if text.count("\n") >= MAX_LINES:
		raise values.InvalidValue(f"the request has more than {MAX_LINES} lines")
	return _collect(_parsed_lines(text), factor, now, "line")


def parse_batch(items, precision: str = "ns", now: datetime | None = None) -> list[tuple]:
	"""A JSON batch (a list of objects, or its JSON text) as points; numbers in errors are 1-based."""
	factor = precision_factor(precision)
	now = now or datetime.now(timezone.utc)
	if isinstance(items, str | bytes | bytearray):
		items = values.parse_json(items, "the batch", MAX_BODY_BYTES)
	if not isinstance(items, list):
		raise values.InvalidValue(f"a JSON batch must be a list of points, not {values.shown(items)}")
	if len(items) > MAX_LINES:
		raise values.InvalidValue(f"the batch has more than {MAX_LINES} points")
	return _collect(enumerate(items, 1), factor, now, "point")


def is_json(data) -> bool:
	"""Whether a request body is a JSON batch rather than line protocol (it starts with `[`)."""
	if isinstance(data, list):
		return True
	if isinstance(data, bytes | bytearray):
		return data.lstrip()[:1] == b"["
	return isinstance(data, str) and data.lstrip()[:1] == "["


def parse(data, precision: str = "ns", now: datetime | None = None) -> list[tuple]:
	"""Line protocol or a JSON batch, told apart by `is_json`."""
	if is_json(data):
		return parse_batch(data, precision, now)
	if not isinstance(data, str | bytes | bytearray):
		raise values.InvalidValue(
			f"data must be line protocol text or a JSON list of points, not {values.shown(data)}"
		)
	return parse_lines(data, precision, now)


def write(cur, data, precision: str = "ns", now: datetime | None = None) -> int:
	"""Parse `data` whole, then write its points with timeseries.write_metrics (one COPY); returns
	how many points were written. Nothing is written when any line is bad."""
	return timeseries.write_metrics(cur, parse(data, precision, now))
