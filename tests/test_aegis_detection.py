"""Aegis: the rule format, threat indicators, event ingest and detection over aegis.security_events."""

import json
from datetime import datetime, timedelta, timezone

import pytest

from cauldron.aegis import detect, ingest, rules
from cauldron.pg import values
from cauldron.synapse.ingest import IngestError

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=timezone.utc)

BRUTE_FORCE = {
	"match": {"event_type": "login_failed"},
	"threshold": {"count": 5, "within": "10m", "group_by": "raw_data.user"},
	"severity": "high",
	"title": "Repeated failed logins for {key}",
}


def event(**kw) -> dict:
	base = {"event_type": "login_failed", "source": "frappe", "severity": "low", "description": None}
	base.update(kw)
	return base


# -- the rule format ------------------------------------------------------------------------------


@pytest.mark.parametrize(
	"match, ev, expected",
	[
		({"event_type": "login_failed"}, event(), True),
		({"event_type": "login_failed"}, event(event_type="login"), False),
		({"severity": {"in": ["high", "critical"]}}, event(severity="high"), True),
		({"severity": {"in": ["high", "critical"]}}, event(severity="low"), False),
		({"raw_data.user_agent": {"contains": "curl"}}, event(raw_data={"user_agent": "curl/8.1"}), True),
		(
			{"raw_data.user_agent": {"contains": "CURL", "case": "insensitive"}},
			event(raw_data={"user_agent": "curl/8.1"}),
			True,
		),
		({"raw_data.user_agent": {"contains": "CURL"}}, event(raw_data={"user_agent": "curl/8.1"}), False),
		({"source": {"regex": "^fra"}}, event(), True),
		({"source": {"regex": "^nginx"}}, event(), False),
		({"raw_data.ip": {"cidr": "10.0.0.0/8"}}, event(raw_data={"ip": "10.1.2.3"}), True),
		(
			{"raw_data.ip": {"cidr": ["10.0.0.0/8", "2001:db8::/32"]}},
			event(raw_data={"ip": "2001:db8::1"}),
			True,
		),
		({"raw_data.ip": {"cidr": "10.0.0.0/8"}}, event(raw_data={"ip": "11.1.2.3"}), False),
		({"raw_data.ip": {"cidr": "10.0.0.0/8"}}, event(raw_data={"ip": "not an ip"}), False),
		({"raw_data.request.path": "/login"}, event(raw_data={"request": {"path": "/login"}}), True),
		({"raw_data.user": {"exists": True}}, event(raw_data={}), False),
		({"raw_data.user": {"exists": False}}, event(raw_data={}), True),
		({"raw_data.count": {"gte": 3}}, event(raw_data={"count": 5}), True),
		({"raw_data.count": {"lte": 3}}, event(raw_data={"count": 5}), False),
		(
			{"raw_data.roles": {"contains": "System Manager"}},
			event(raw_data={"roles": ["System Manager"]}),
			True,
		),
	],
)
def test_conditions(match, ev, expected):
	assert rules.compile_rule("r", {"match": match}).matches(ev) is expected


def test_any_and_not():
	rule = rules.compile_rule(
		"r",
		{
			"any": [{"event_type": "role_added"}, {"event_type": "docperm_changed"}],
			"not": {"raw_data.user": "Administrator"},
		},
	)
	assert rule.matches(event(event_type="role_added", raw_data={"user": "a@example.com"}))
	assert not rule.matches(event(event_type="role_added", raw_data={"user": "Administrator"}))
	assert not rule.matches(event(event_type="login_failed", raw_data={"user": "a@example.com"}))


@pytest.mark.parametrize(
	"conditions, message",
	[
		([], "must be a JSON object"),
		({}, "needs 'match'"),
		({"match": {"colour": "red"}}, "unknown field 'colour'"),
		({"match": {"raw_data": "x"}}, "unknown field 'raw_data'"),
		({"match": {"source": {"like": "x"}}}, "unknown operator 'like'"),
		({"match": {"source": {"regex": "("}}}, "bad regular expression"),
		({"match": {"raw_data.ip": {"cidr": "10.0.0.0/33"}}}, "not an IP network"),
		({"match": {"source": {"in": "x"}}}, "'in' takes a list"),
		({"match": {"source": ["a", "b"]}}, "needs an operator"),
		(
			{"match": {"source": "x"}, "threshold": {"count": 0, "within": "1m", "group_by": "source"}},
			"count",
		),
		(
			{"match": {"source": "x"}, "threshold": {"count": 3, "within": "soon", "group_by": "source"}},
			"window",
		),
		(
			{"match": {"source": "x"}, "threshold": {"count": 3, "within": "90d", "group_by": "source"}},
			"30 days",
		),
		({"match": {"source": "x"}, "threshold": {"count": 3, "within": "1m"}}, "group_by"),
		({"match": {"source": "x"}, "severity": "extreme"}, "severity"),
		({"match": {"source": "x"}, "when": "now"}, "unknown key 'when'"),
	],
)
def test_bad_rules_are_refused_with_where_and_why(conditions, message):
	with pytest.raises(rules.RuleError, match=message):
		rules.compile_rule("r", conditions)


def test_indicators():
	threat = rules.compile_indicators(
		"t",
		{
			"ips": ["203.0.113.9"],
			"cidrs": ["198.51.100.0/24"],
			"domains": ["evil.example"],
			"hashes": ["ABCDEF"],
			"user_agents": ["sqlmap"],
		},
	)
	assert threat.matches(event(raw_data={"ip": "203.0.113.9"})) == ["ip:203.0.113.9"]
	assert threat.matches(event(raw_data={"remote_addr": "198.51.100.7"})) == ["cidr:198.51.100.0/24"]
	assert threat.matches(event(raw_data={"url": "https://cdn.evil.example/x"})) == ["domain:evil.example"]
	assert threat.matches(event(raw_data={"host": "notevil.example"})) == []
	assert threat.matches(event(raw_data={"sha256": "abcdef"})) == ["hash:abcdef"]
	assert threat.matches(event(raw_data={"user_agent": "sqlmap/1.7"})) == ["user_agent:sqlmap"]
	assert threat.matches(event(raw_data={"ip": "192.0.2.1"})) == []
	assert not rules.compile_indicators("empty", {})
	with pytest.raises(rules.RuleError, match="not an IP address"):
		rules.compile_indicators("t", {"ips": ["999.1.1.1"]})
	with pytest.raises(rules.RuleError, match="unknown indicator kind 'urls'"):
		rules.compile_indicators("t", {"urls": ["x"]})


# -- ingest -------------------------------------------------------------------------------------


def test_ingest_normalises_severity_source_and_time():
	events = ingest.parse(
		[
			{"event_type": "x", "source": " Nginx ", "severity": "warning", "time": 1_700_000_000},
			{"event_type": "x", "source": "ids", "severity": 9.8, "time": "2026-11-26T08:00:00Z"},
			{"event_type": "x", "source": "ids"},
		],
		now=NOW,
	)
	assert [(e.source, e.severity) for e in events] == [
		("nginx", "medium"),
		("ids", "critical"),
		("ids", "info"),
	]
	assert events[0].event_time == datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc)
	assert events[1].event_time == NOW
	assert events[2].event_time == NOW


def test_a_bad_batch_writes_nothing_and_names_each_bad_event(provisioned):
	_, conn = provisioned
	batch = [
		{"event_type": "ok", "source": "s"},
		{"event_type": "", "source": "s"},
		{"event_type": "ok", "source": "s", "severity": "apocalyptic"},
		{"event_type": "ok", "source": "s", "time": "yesterday"},
		{"event_type": "ok", "source": "s", "colour": "red"},
		{"event_type": "ok", "source": "s", "raw_data": {"a": "\x00"}},
		"not an object",
	]
	with conn.cursor() as cur:
		with pytest.raises(IngestError) as caught:
			ingest.ingest(cur, batch, now=NOW)
		cur.execute("SELECT count(*) FROM aegis.security_events")
		assert cur.fetchone()[0] == 0
	assert [n for n, _ in caught.value.errors] == [2, 3, 4, 5, 6, 7]
	text = str(caught.value)
	assert "6 bad events, nothing written" in text
	assert "event 3: severity 'apocalyptic'" in text
	assert "unknown key 'colour'" in text
	with pytest.raises(values.InvalidValue, match="non-empty JSON list"):
		ingest.parse([])


# -- detection ----------------------------------------------------------------------------------


def write(cur, count, start=NOW, step=timedelta(seconds=10), **kw):
	items = []
	for i in range(count):
		item = {"event_type": "login_failed", "source": "frappe", "severity": "low", **kw}
		item["time"] = (start + i * step).isoformat()
		items.append(item)
	return ingest.ingest(cur, items, now=NOW)


def brute_force():
	return rules.compile_rule("Brute force", BRUTE_FORCE)


def test_a_brute_force_is_one_detection_holding_every_attempt(provisioned):
	_, conn = provisioned
	with conn.cursor() as cur:
		write(cur, 30, raw_data={"user": "victim@example.com", "ip": "203.0.113.9"})
		write(cur, 3, raw_data={"user": "other@example.com", "ip": "203.0.113.9"})
		run = detect.evaluate(cur, [brute_force()], now=NOW)
	conn.commit()
	assert run.evaluated == 33 and not run.more and not run.busy
	assert len(run.detections) == 1
	found = run.detections[0]
	assert (found.rule, found.key, found.severity) == ("Brute force", "victim@example.com", "high")
	assert found.title == "Repeated failed logins for victim@example.com"
	assert len(found.events) == 30
	with conn.cursor() as cur:
		cur.execute("SELECT count(*) FROM aegis.security_events WHERE processed_data IS NULL")
		assert cur.fetchone()[0] == 0
		cur.execute(
			"SELECT processed_data FROM aegis.security_events WHERE raw_data->>'user' = 'other@example.com' LIMIT 1"
		)
		assert cur.fetchone()[0]["aegis"]["rules"] == ["Brute force"]
		# a re-run has nothing left to evaluate
		again = detect.evaluate(cur, [brute_force()], now=NOW)
		assert again.evaluated == 0 and again.detections == []


def test_attempts_below_the_threshold_count_when_it_is_reached_later(provisioned):
	_, conn = provisioned
	user = {"user": "late@example.com"}
	with conn.cursor() as cur:
		write(cur, 4, raw_data=user)
		assert detect.evaluate(cur, [brute_force()], now=NOW).detections == []
		conn.commit()
		write(cur, 1, start=NOW + timedelta(minutes=2), raw_data=user)
		run = detect.evaluate(cur, [brute_force()], now=NOW)
	assert len(run.detections) == 1 and len(run.detections[0].events) == 5


def test_attempts_spread_wider_than_the_window_are_not_detected(provisioned):
	_, conn = provisioned
	with conn.cursor() as cur:
		write(cur, 10, step=timedelta(minutes=3), raw_data={"user": "slow@example.com"})
		run = detect.evaluate(cur, [brute_force()], now=NOW)
	assert run.evaluated == 10 and run.detections == []


def test_many_groups_of_several_threshold_rules_in_one_batch_count_only_their_own_matches(provisioned):
	_, conn = provisioned
	by_ip = rules.compile_rule(
		"Spray",
		{
			"match": {"event_type": "login_failed"},
			"threshold": {"count": 8, "within": "1h", "group_by": "raw_data.ip"},
		},
	)
	with conn.cursor() as cur:
		write(cur, 4, raw_data={"user": "a@example.com", "ip": "192.0.2.1"})
		write(cur, 4, start=NOW - timedelta(hours=1), raw_data={"user": "b@example.com", "ip": "192.0.2.2"})
		assert detect.evaluate(cur, [brute_force(), by_ip], now=NOW).detections == []
		conn.commit()
		later = NOW + timedelta(minutes=3)
		write(cur, 1, start=later, raw_data={"user": "a@example.com", "ip": "192.0.2.1"})  # a's fifth
		write(cur, 1, start=later, raw_data={"user": "b@example.com", "ip": "192.0.2.2"})  # b's are too old
		write(cur, 5, start=later, raw_data={"user": "c@example.com", "ip": "192.0.2.1"})
		for i in range(50):  # many groups in the batch, none reaching the threshold
			write(cur, 1, start=later, raw_data={"user": f"u{i}@example.com", "ip": f"198.51.100.{i}"})
		run = detect.evaluate(cur, [brute_force(), by_ip], now=NOW)
	found = {(d.rule, d.key): len(d.events) for d in run.detections}
	# a: 4 earlier + 1; c: 5; the spray from 192.0.2.1: a's 5 and c's 5 (b's IP has 5 in its hour)
	assert found == {
		("Brute force", "a@example.com"): 5,
		("Brute force", "c@example.com"): 5,
		("Spray", "192.0.2.1"): 10,
	}


def test_an_open_incident_takes_later_matches_within_its_window(provisioned):
	_, conn = provisioned
	key = ("Brute force", "victim@example.com")
	with conn.cursor() as cur:
		write(cur, 1, start=NOW + timedelta(minutes=5), raw_data={"user": key[1]})
		write(cur, 1, start=NOW + timedelta(hours=2), raw_data={"user": key[1]})
		run = detect.evaluate(cur, [brute_force()], open_groups={key: NOW}, now=NOW)
	assert len(run.detections) == 1 and len(run.detections[0].events) == 1


def test_a_run_evaluates_in_batches_and_a_late_run_catches_up(provisioned):
	_, conn = provisioned
	with conn.cursor() as cur:
		write(cur, 25, raw_data={"user": "u"})
		first = detect.evaluate(cur, [brute_force()], batch=10, now=NOW)
		conn.commit()
		assert first.evaluated == 10 and first.more
		seen = first.evaluated
		found = sum(len(d.events) for d in first.detections)
		while True:
			run = detect.evaluate(cur, [brute_force()], batch=10, now=NOW)
			conn.commit()
			seen += run.evaluated
			found += len({i for d in run.detections for i, _ in d.events})
			if not run.more:
				break
	assert seen == 25
	assert found >= 25  # every attempt ends up in a detection of the group (some twice across runs)


def test_an_event_committed_late_is_still_evaluated(provisioned):
	db, conn = provisioned
	late = db.connect()
	with late.cursor() as lcur:
		write(lcur, 1, start=NOW - timedelta(minutes=1), raw_data={"user": "u"})  # not committed yet
	with conn.cursor() as cur:
		write(cur, 1, raw_data={"user": "u"})
		conn.commit()
		assert detect.evaluate(cur, [brute_force()], now=NOW).evaluated == 1
		conn.commit()
		late.commit()
		run = detect.evaluate(cur, [brute_force()], now=NOW)
		assert run.evaluated == 1


def test_two_runs_never_evaluate_the_same_events(provisioned):
	db, conn = provisioned
	other = db.connect()
	with conn.cursor() as cur:
		write(cur, 5, raw_data={"user": "u"})
		conn.commit()
		first = detect.evaluate(cur, [brute_force()], now=NOW)
		with other.cursor() as ocur:
			assert detect.evaluate(ocur, [brute_force()], now=NOW).busy
		other.rollback()
	conn.commit()
	assert first.evaluated == 5 and len(first.detections) == 1


def test_threat_indicators_are_matched_against_events(provisioned):
	_, conn = provisioned
	threat = rules.compile_indicators("Known scanner", {"ips": ["203.0.113.9"]}, severity="critical")
	with conn.cursor() as cur:
		write(cur, 2, event_type="http_request", raw_data={"ip": "203.0.113.9"})
		write(cur, 2, event_type="http_request", raw_data={"ip": "192.0.2.1"})
		run = detect.evaluate(cur, [], [threat], now=NOW)
		assert len(run.detections) == 1
		found = run.detections[0]
		assert (found.threat, found.severity, found.indicators) == (
			"Known scanner",
			"critical",
			["ip:203.0.113.9"],
		)
		assert len(found.events) == 2
		assert detect.mark_incident(cur, found.events) == 2
		assert detect.mark_incident(cur, found.events) == 0
		cur.execute("SELECT count(*) FROM aegis.security_events WHERE is_incident")
		assert cur.fetchone()[0] == 2
		cur.execute(
			"SELECT processed_data FROM aegis.security_events WHERE raw_data->>'ip' = '203.0.113.9' LIMIT 1"
		)
		assert json.loads(json.dumps(cur.fetchone()[0]))["aegis"]["threats"] == ["Known scanner"]


def test_cidr_indicators_find_exactly_the_networks_holding_an_address_in_their_order():
	import ipaddress
	import random

	rng = random.Random(5)
	cidrs = [f"{rng.randrange(1, 223)}.{rng.randrange(256)}.0.0/16" for _ in range(200)]
	cidrs += ["10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "2001:db8::/32", "2001:db8:1::/48"]
	threat = rules.compile_indicators("t", {"cidrs": cidrs})
	addresses = [str(ipaddress.ip_address(rng.getrandbits(32))) for _ in range(3000)]
	addresses += ["10.1.2.3", "10.9.9.9", "2001:db8:1::7", "2001:db9::1"]
	for address in addresses:
		expected = [f"cidr:{net}" for net in threat.networks if ipaddress.ip_address(address) in net]
		assert threat.matches({"raw_data": {"ip": address}}) == list(dict.fromkeys(expected)), address
	nested = rules.compile_indicators("n", {"cidrs": ["10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24"]})
	assert nested.matches({"raw_data": {"ip": "10.1.2.3"}}) == [
		"cidr:10.0.0.0/8",
		"cidr:10.1.0.0/16",
		"cidr:10.1.2.0/24",
	]
