"""Aegis detection over aegis.security_events (framework-free: a cursor and compiled rules).

Each event is evaluated once. An event not evaluated yet has `processed_data IS NULL` (ingest never
sets it); `evaluate` reads such events oldest first, matches them against the rules and threat
indicators, and in the same transaction writes what it found into each event's processed_data
(`{"aegis": {"evaluated_at": ..., "rules": [...], "threats": [...]}}`). That is the watermark: a
re-run finds nothing left to do, a late run catches up from the oldest event not evaluated, and
an event committed late (its transaction started before a run and ended after it) is still
evaluated by the next run, which a time watermark would skip. A partial index keeps finding them
cheap. Runs take a transaction-level advisory lock, so two never evaluate the same events: a run
that finds the lock held does nothing.

Threshold rules count matches per group in aegis.detection_matches (rule, key, event), kept for
the longest window (30 days). A group is detected at each new event whose window ending at it
holds at least `count` matches; its detection carries every match in those windows, so the first
incident of a brute force holds the attempts before the threshold too. A group whose incident is
still open (`open_groups`: (rule, key) -> time of its last event) takes every new match within
the window of that incident's last event, below the threshold or not.
"""

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from psycopg2.extras import execute_values

from cauldron.aegis.rules import SEVERITIES, Detection, Indicators, Rule
from cauldron.pg.ledger import Step

LOCK_KEY = 0x41454749  # "AEGI": one evaluation at a time per database
DEFAULT_BATCH = 10_000
DEFAULT_WINDOW = timedelta(hours=1)  # how long a rule without threshold keeps adding to its incident
MATCH_RETENTION = timedelta(days=30)

DDL = """
CREATE TABLE IF NOT EXISTS aegis.detection_matches (
	rule text NOT NULL,
	key text NOT NULL,
	event_time timestamptz NOT NULL,
	event_id uuid NOT NULL,
	PRIMARY KEY (rule, key, event_time, event_id)
);
CREATE INDEX IF NOT EXISTS idx_detection_matches_time ON aegis.detection_matches (event_time);
CREATE INDEX IF NOT EXISTS idx_security_events_unevaluated
	ON aegis.security_events (created_at, id) WHERE processed_data IS NULL"""


# A user's successful logins by IP: "a login from an IP never seen for this user" looks there
# (cauldron.aegis.signals), at every login, however many events are kept.
LOGIN_INDEX_DDL = """
CREATE INDEX IF NOT EXISTS idx_security_events_login_user
	ON aegis.security_events ((raw_data->>'user'), (raw_data->>'ip'))
	WHERE event_type = 'login_success'"""


def steps() -> list[Step]:
	return [Step("aegis:detection", DDL), Step("aegis:login_index", LOGIN_INDEX_DDL)]


@dataclass
class Run:
	evaluated: int = 0
	detections: list[Detection] = field(default_factory=list)
	busy: bool = False  # another run held the lock: nothing was done
	more: bool = False  # the batch was full: run again to catch up


def _window(rule: Rule) -> timedelta:
	return rule.threshold.within if rule.threshold else DEFAULT_WINDOW


def _severity(rule_severity: str | None, events: list[dict]) -> str:
	if rule_severity:
		return rule_severity
	ranks = [SEVERITIES.index(e["severity"]) for e in events if e.get("severity") in SEVERITIES]
	return SEVERITIES[max(ranks)] if ranks else "medium"


def _events(cur, batch: int) -> list[dict]:
	cur.execute(
		"""
		SELECT id::text, event_time, event_type, source, severity, description, raw_data
		FROM aegis.security_events
		WHERE processed_data IS NULL
		ORDER BY created_at, id
		LIMIT %s
		""",
		(batch,),
	)
	names = ("id", "event_time", "event_type", "source", "severity", "description", "raw_data")
	return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _record_matches(cur, rows: list[tuple]) -> None:
	if rows:
		execute_values(
			cur,
			"INSERT INTO aegis.detection_matches (rule, key, event_time, event_id) VALUES %s"
			" ON CONFLICT DO NOTHING",
			rows,
			template="(%s, %s, %s, %s::uuid)",
			page_size=1000,
		)


def _rule_matches(
	cur, rule: str, spans: dict[str, tuple[datetime, datetime]]
) -> dict[str, list[tuple[datetime, str]]]:
	"""The recorded matches of `rule` for each key in `spans` within its (low, high] span, oldest
	first: one statement for all the groups of a batch (a batch can hold thousands of groups)."""
	found: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
	if not spans:
		return found
	keys = list(spans)
	cur.execute(
		"""
		SELECT m.key, m.event_time, m.event_id::text
		FROM aegis.detection_matches m
		JOIN unnest(%s::text[], %s::timestamptz[], %s::timestamptz[]) AS g(key, low, high)
			ON m.key = g.key AND m.event_time > g.low AND m.event_time <= g.high
		WHERE m.rule = %s
		ORDER BY m.key, m.event_time, m.event_id
		""",
		(keys, [spans[k][0] for k in keys], [spans[k][1] for k in keys], rule),
	)
	for key, moment, event_id in cur.fetchall():
		found[key].append((moment, event_id))
	return found


def _threshold_hits(
	matches: list[tuple[datetime, str]], new_ids: set[str], count: int, within: timedelta
) -> list[tuple[datetime, str]]:
	"""The matches in every window (ending at a new match) that holds at least `count` matches."""
	hit: dict[str, datetime] = {}
	start = 0
	for end, (moment, event_id) in enumerate(matches):
		while matches[start][0] <= moment - within:
			start += 1
		if event_id in new_ids and end - start + 1 >= count:
			for t, i in matches[start : end + 1]:
				hit[i] = t
	return sorted(((t, i) for i, t in hit.items()), key=lambda x: (x[0], x[1]))


def evaluate(
	cur,
	rules: list[Rule],
	threats: list[Indicators] = (),
	open_groups: dict[tuple[str, str], datetime] | None = None,
	batch: int = DEFAULT_BATCH,
	now: datetime | None = None,
) -> Run:
	"""Evaluate the events not evaluated yet (at most `batch`, oldest first) in the caller's
	transaction; returns what was found. The caller opens or extends incidents from
	`run.detections` in the same transaction, then commits."""
	now = now or datetime.now(timezone.utc)
	open_groups = open_groups or {}
	cur.execute("SELECT pg_try_advisory_xact_lock(%s)", (LOCK_KEY,))
	if not cur.fetchone()[0]:
		return Run(busy=True)
	events = _events(cur, batch)
	if not events:
		return Run()
	by_id = {e["id"]: e for e in events}
	marks: dict[str, dict] = {e["id"]: {"rules": [], "threats": []} for e in events}
	# (rule, key) -> new matching events
	groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
	rules_by_name = {r.name: r for r in rules}
	threat_hits: dict[str, list[tuple[dict, list[str]]]] = defaultdict(list)
	match_rows = []
	for event in events:
		for rule in rules:
			if not rule.matches(event):
				continue
			key = rule.key(event)
			if key is None:
				continue
			marks[event["id"]]["rules"].append(rule.name)
			groups[(rule.name, key)].append(event)
			if rule.threshold:
				match_rows.append((rule.name, key, event["event_time"], event["id"]))
		for threat in threats:
			found = threat.matches(event)
			if found:
				marks[event["id"]]["threats"].append(threat.name)
				threat_hits[threat.name].append((event, found))
	_record_matches(cur, match_rows)

	recorded: dict[str, dict[str, list[tuple[datetime, str]]]] = {}
	for rule in rules:
		if rule.threshold:
			spans = {
				key: (
					min(e["event_time"] for e in new) - rule.threshold.within,
					max(e["event_time"] for e in new),
				)
				for (name, key), new in groups.items()
				if name == rule.name
			}
			recorded[rule.name] = _rule_matches(cur, rule.name, spans)

	detections = []
	for (name, key), new in groups.items():
		rule = rules_by_name[name]
		within = _window(rule)
		last_open = open_groups.get((name, key))
		chosen: list[tuple[datetime, str]] = []
		if rule.threshold:
			new_ids = {e["id"] for e in new}
			matches = recorded[name].get(key, [])
			chosen = _threshold_hits(matches, new_ids, rule.threshold.count, within)
		else:
			chosen = [(e["event_time"], e["id"]) for e in new]
		if last_open is not None:
			# an open incident of this group takes the new matches that follow it within the window
			taken = {i for _, i in chosen}
			horizon = last_open
			for event in sorted(new, key=lambda e: (e["event_time"], e["id"])):
				if event["event_time"] - horizon <= within and event["id"] not in taken:
					chosen.append((event["event_time"], event["id"]))
					taken.add(event["id"])
				if event["id"] in taken:
					horizon = max(horizon, event["event_time"])
			chosen.sort()
		if not chosen:
			continue
		members = [by_id[i] for _, i in chosen if i in by_id]
		detections.append(
			Detection(
				rule=name,
				key=key,
				title=rule.incident_title(key),
				severity=_severity(rule.severity, members or new),
				events=[(i, t) for t, i in chosen],
			)
		)
	for name, hits in threat_hits.items():
		threat = next(t for t in threats if t.name == name)
		found = list(dict.fromkeys(i for _, ind in hits for i in ind))
		detections.append(
			Detection(
				rule=f"threat:{name}",
				key="",
				title=f"Threat indicator matched: {name}",
				severity=threat.severity or _severity(None, [e for e, _ in hits]),
				events=[(e["id"], e["event_time"]) for e, _ in hits],
				indicators=found,
				threat=name,
			)
		)

	stamp = now.isoformat()
	execute_values(
		cur,
		"""
		UPDATE aegis.security_events AS e SET processed_data = v.data::jsonb
		FROM (VALUES %s) AS v(id, event_time, data)
		WHERE e.id = v.id::uuid AND e.event_time = v.event_time::timestamptz
		""",
		[
			(
				event_id,
				by_id[event_id]["event_time"],
				json.dumps({"aegis": {"evaluated_at": stamp, **mark}}),
			)
			for event_id, mark in marks.items()
		],
		page_size=1000,
	)
	cur.execute("DELETE FROM aegis.detection_matches WHERE event_time < %s", (now - MATCH_RETENTION,))
	return Run(evaluated=len(events), detections=detections, more=len(events) >= batch)


def mark_incident(cur, events: list[tuple[str, datetime]]) -> int:
	"""Set is_incident on the given (id, event_time) events; returns how many changed."""
	if not events:
		return 0
	execute_values(
		cur,
		"""
		UPDATE aegis.security_events AS e SET is_incident = true
		FROM (VALUES %s) AS v(id, event_time)
		WHERE e.id = v.id::uuid AND e.event_time = v.event_time::timestamptz AND NOT e.is_incident
		""",
		[(i, t) for i, t in events],
		page_size=1000,
	)
	return cur.rowcount
