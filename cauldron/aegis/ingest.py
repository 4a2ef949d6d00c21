"""Security events into aegis.security_events: normalised, checked whole, written in one statement.

An event is an object::

	{"event_type": "login_failed", "source": "nginx", "severity": "high", "time": "2026-11-26T08:00:00Z",
		"description": "...", "raw_data": {"ip": "203.0.113.9"}}

- `event_type` (required) and `source` (required) are text of at most 100 characters; `source` is
  lower-cased and trimmed, so "Nginx " and "nginx" are one source;
- `severity` is one of info, low, medium, high, critical, or a name other tools use (informational,
  notice, warning, moderate, error, severe, crit, alert, emergency, fatal...), or a number from 0 to 10
  (CVSS-like: below 0.1 info, below 4 low, below 7 medium, below 9 high, else critical); absent: info;
- `time` (or `event_time`) is ISO 8601 text with a zone or seconds since the epoch; absent: now;
- `description` text, at most MAX_DESCRIPTION characters; `raw_data` an object, at most
  MAX_RAW_BYTES as JSON. Any other key is refused (nothing is dropped silently).

A batch is all or nothing: every event is checked first, and one bad event writes nothing; the
error names each bad event by its number (1-based) and why. At most MAX_EVENTS events a batch.
"""

import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone

from psycopg2.extras import execute_values

from cauldron.pg import values
from cauldron.synapse.ingest import MAX_ERRORS, IngestError

MAX_EVENTS = 10_000
MAX_TEXT = 100
MAX_DESCRIPTION = 10_000
MAX_RAW_BYTES = 64 * 1024
SEVERITIES = ("info", "low", "medium", "high", "critical")
SEVERITY_NAMES = {
	"info": "info",
	"informational": "info",
	"information": "info",
	"debug": "info",
	"none": "info",
	"low": "low",
	"notice": "low",
	"minor": "low",
	"medium": "medium",
	"moderate": "medium",
	"warning": "medium",
	"warn": "medium",
	"high": "high",
	"error": "high",
	"err": "high",
	"severe": "high",
	"major": "high",
	"important": "high",
	"critical": "critical",
	"crit": "critical",
	"alert": "critical",
	"emergency": "critical",
	"emerg": "critical",
	"fatal": "critical",
}
KEYS = {"event_type", "source", "severity", "time", "event_time", "description", "raw_data"}


@dataclass(frozen=True)
class SecurityEvent:
	event_type: str
	source: str
	severity: str = "info"
	description: str | None = None
	raw_data: dict | None = None
	event_time: datetime | None = None


class _Bad(Exception):
	pass


def severity(value) -> str:
	"""A severity name or number as one of SEVERITIES."""
	if isinstance(value, bool):
		raise _Bad(f"severity must be a name or a number from 0 to 10, not {values.shown(value)}")
	if isinstance(value, int | float):
		if math.isnan(value) or not 0 <= value <= 10:
			raise _Bad(f"severity number must be from 0 to 10, not {values.shown(value)}")
		if value < 0.1:
			return "info"
		return "low" if value < 4 else "medium" if value < 7 else "high" if value < 9 else "critical"
	if isinstance(value, str) and value.strip().lower() in SEVERITY_NAMES:
		return SEVERITY_NAMES[value.strip().lower()]
	raise _Bad(f"severity {values.shown(value)} is not one of {', '.join(SEVERITIES)} (or a number 0-10)")


def _text(value, what: str, limit: int, required: bool = True) -> str | None:
	if value is None and not required:
		return None
	if not isinstance(value, str) or not value.strip():
		raise _Bad(f"{what} must be non-empty text, not {values.shown(value)}")
	try:
		values.text(value, what)
	except values.InvalidValue as e:
		raise _Bad(str(e)) from None
	if len(value) > limit:
		raise _Bad(f"{what} is longer than {limit} characters")
	return value


def _time(value, now: datetime) -> datetime:
	if value is None:
		return now
	if isinstance(value, str):
		try:
			moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
		except ValueError:
			raise _Bad(f"time {values.shown(value)} is not ISO 8601 text") from None
		if moment.tzinfo is None:
			raise _Bad(f"time {values.shown(value)} has no time zone")
		return moment
	if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
		try:
			return datetime.fromtimestamp(value, timezone.utc)
		except (OverflowError, OSError, ValueError):
			raise _Bad(f"time {value} is out of range") from None
	raise _Bad(f"time must be ISO 8601 text or seconds since the epoch, not {values.shown(value)}")


def normalise(item, now: datetime) -> SecurityEvent:
	if isinstance(item, SecurityEvent):
		item = {
			"event_type": item.event_type,
			"source": item.source,
			"severity": item.severity,
			"description": item.description,
			"raw_data": item.raw_data,
			"time": item.event_time,
		}
		if isinstance(item["time"], datetime):
			item["time"] = item["time"].isoformat()
	if not isinstance(item, dict):
		raise _Bad(f"an event must be an object, not {values.shown(item)}")
	unknown = sorted(set(item) - KEYS)
	if unknown:
		raise _Bad(f"unknown key {unknown[0]!r} (put extra data in raw_data)")
	if "time" in item and "event_time" in item:
		raise _Bad("give time or event_time, not both")
	raw = item.get("raw_data")
	if raw is not None:
		if not isinstance(raw, dict):
			raise _Bad(f"raw_data must be an object, not {values.shown(raw)}")
		try:
			values.check(raw, "raw_data", MAX_RAW_BYTES)
		except values.InvalidValue as e:
			raise _Bad(str(e)) from None
	return SecurityEvent(
		event_type=_text(item.get("event_type"), "event_type", MAX_TEXT).strip(),
		source=_text(item.get("source"), "source", MAX_TEXT).strip().lower(),
		severity=severity(item.get("severity", "info")),
		description=_text(item.get("description"), "description", MAX_DESCRIPTION, required=False),
		raw_data=raw,
		event_time=_time(item.get("time", item.get("event_time")), now),
	)


def parse(items, now: datetime | None = None) -> list[SecurityEvent]:
	"""Every event normalised, or IngestError naming the bad ones (nothing is written)."""
	now = now or datetime.now(timezone.utc)
	if isinstance(items, dict):
		items = [items]
	if not isinstance(items, list) or not items:
		raise values.InvalidValue(
			f"events must be a non-empty JSON list of objects, not {values.shown(items)}"
		)
	if len(items) > MAX_EVENTS:
		raise values.InvalidValue(f"at most {MAX_EVENTS} events a batch, not {len(items)}: split it")
	events, errors, bad = [], [], 0
	for number, item in enumerate(items, 1):
		try:
			events.append(normalise(item, now))
		except _Bad as e:
			bad += 1
			if len(errors) < MAX_ERRORS:
				errors.append((number, str(e)))
	if bad:
		raise IngestError(errors, bad, what="event")
	return events


def write(cur, events: list[SecurityEvent], now: datetime | None = None) -> int:
	"""Insert checked events with one multi-row statement; returns how many."""
	now = now or datetime.now(timezone.utc)
	rows = [
		(
			e.event_time or now,
			e.event_type,
			e.source,
			e.severity,
			e.description,
			None if e.raw_data is None else json.dumps(e.raw_data, default=str),
		)
		for e in events
	]
	if rows:
		execute_values(
			cur,
			"INSERT INTO aegis.security_events (event_time, event_type, source, severity, description,"
			" raw_data) VALUES %s",
			rows,
			template="(%s, %s, %s, %s, %s, %s::jsonb)",
			page_size=1000,
		)
	return len(rows)


def ingest(cur, items, now: datetime | None = None) -> int:
	"""Parse the batch whole, then write it; returns how many events were written."""
	return write(cur, parse(items, now), now)
