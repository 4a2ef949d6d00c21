"""Aegis detection: the cost of evaluating rules over aegis.security_events (cauldron.aegis.detect),
and the time from an event to its detection while events arrive at 1,000 per second.

1. Rule evaluation per 100,000 events: EVENTS events (logins, failures from 1,000 users, port scans,
   web requests with IPs and user agents) written with ingest.write, then evaluated by
   detect.evaluate in batches of BATCH (a commit each, as the job does) with 1 rule, with the 8 rules
   below (2 thresholds) and with the 8 rules plus 5 threats of 200 indicators each. Reported per
   100,000 events (median of REPEATS runs, each on a freshly written table).
2. Event to detection at RATE events/s: a writer commits RATE/10 events every 100 ms for SECONDS
   seconds, among them bursts of failed logins for one user (a brute force crossing the threshold
   of 5 in 10 minutes); a detector evaluates new events every INTERVAL seconds (the site's job runs
   every minute: add up to 60 s there). Reported: the time from the commit of the event that
   crossed the threshold to the commit of its detection, median and max, and whether the detector
   kept up (events left unevaluated at the end).

Engine level, on the embedded PostgreSQL (or CAULDRON_BENCH_DSN); native time-series path.

	python -m benchmarks.aegis_detection [--events N] [--batch N] [--repeats N] [--rate N]
		[--seconds N] [--interval S] [--quick]
"""

import argparse
import ipaddress
import random
import statistics
import threading
import time
from datetime import datetime, timedelta, timezone

import psycopg2

from benchmarks import _common as common
from cauldron.aegis import detect, ingest
from cauldron.aegis.rules import compile_indicators, compile_rule

BRUTE_FORCE = {
	"match": {"event_type": "login_failed"},
	"threshold": {"count": 5, "within": "10m", "group_by": "raw_data.user"},
}
RULES = [
	BRUTE_FORCE,
	{"match": {"event_type": "port_scan", "raw_data.ip": {"cidr": ["10.0.0.0/8", "192.168.0.0/16"]}}},
	{
		"match": {
			"event_type": "http_request",
			"raw_data.user_agent": {"contains": "sqlmap", "case": "insensitive"},
		}
	},
	{"match": {"event_type": "http_request", "raw_data.path": {"regex": r"\.\./|/etc/passwd"}}},
	{"match": {"severity": {"in": ["critical"]}, "source": {"regex": "^ids"}}},
	{"match": {"event_type": "login_success"}, "not": {"raw_data.ip": {"cidr": "203.0.113.0/24"}}},
	{
		"match": {"event_type": "http_request"},
		"threshold": {"count": 50, "within": "1m", "group_by": "raw_data.ip"},
	},
	{"any": [{"event_type": "role_granted"}, {"event_type": "api_secret_generated"}]},
]


def threats(count: int, size: int, rng: random.Random) -> list:
	found = []
	for t in range(count):
		ips = [str(ipaddress.ip_address(rng.getrandbits(32))) for _ in range(size // 2)]
		cidrs = [f"{rng.randrange(1, 223)}.{rng.randrange(256)}.0.0/16" for _ in range(size // 4)]
		domains = [f"bad{t}-{i}.example" for i in range(size // 8)]
		hashes = [f"{rng.getrandbits(256):064x}" for _ in range(size // 8)]
		found.append(
			compile_indicators(
				f"threat-{t}", {"ips": ips, "cidrs": cidrs, "domains": domains, "hashes": hashes}
			)
		)
	return found


def make_events(count: int, start: datetime, rng: random.Random) -> list[dict]:
	users = [f"user{i}@example.com" for i in range(1000)]
	events = []
	for i in range(count):
		moment = start + timedelta(milliseconds=i * 10)
		roll = rng.random()
		ip = str(ipaddress.ip_address(rng.getrandbits(32)))
		if roll < 0.30:
			kind, raw = "login_success", {"user": rng.choice(users), "ip": ip}
		elif roll < 0.40:
			kind, raw = "login_failed", {"user": rng.choice(users[:100]), "ip": ip}
		elif roll < 0.45:
			kind, raw = "port_scan", {"ip": f"10.{rng.randrange(256)}.{rng.randrange(256)}.1"}
		else:
			agent = "sqlmap/1.7" if rng.random() < 0.001 else "Mozilla/5.0"
			kind, raw = "http_request", {"ip": ip, "path": f"/api/resource/{i % 97}", "user_agent": agent}
		events.append(
			{
				"event_type": kind,
				"source": "nginx" if kind == "http_request" else "frappe",
				"severity": "info",
				"time": moment.isoformat(),
				"raw_data": raw,
			}
		)
	return events


def write(conn, events: list[dict]) -> None:
	with conn.cursor() as cur:
		for i in range(0, len(events), ingest.MAX_EVENTS):
			ingest.ingest(cur, events[i : i + ingest.MAX_EVENTS])
	conn.commit()


def reset(conn) -> None:
	with conn.cursor() as cur:
		cur.execute("TRUNCATE aegis.security_events, aegis.detection_matches")
	conn.commit()


def evaluate_all(conn, rules, found_threats, batch: int) -> tuple[int, int]:
	evaluated = detections = 0
	with conn.cursor() as cur:
		while True:
			run = detect.evaluate(cur, rules, found_threats, {}, batch)
			conn.commit()
			evaluated += run.evaluated
			detections += len(run.detections)
			if not run.more:
				return evaluated, detections


def evaluation_cost(conn, args, rng) -> None:
	common.heading(f"Rule evaluation: {args.events:,} events, batches of {args.batch:,}")
	rules = [compile_rule(f"rule-{i}", r) for i, r in enumerate(RULES)]
	sets = {
		"1 rule (brute-force threshold)": ([rules[0]], []),
		f"{len(rules)} rules (2 thresholds)": (rules, []),
		f"{len(rules)} rules + 5 threats x 200 indicators": (rules, threats(5, 200, rng)),
	}
	events = make_events(args.events, datetime.now(timezone.utc) - timedelta(days=1), rng)
	for label, (chosen, found_threats) in sets.items():
		times = []
		for _ in range(args.repeats):
			reset(conn)
			write(conn, events)
			elapsed, (evaluated, detections) = common.timed(
				lambda chosen=chosen, found_threats=found_threats: evaluate_all(
					conn, chosen, found_threats, args.batch
				)
			)
			assert evaluated == args.events, evaluated
			times.append(elapsed)
		per = common.median(times) * 100_000 / args.events
		common.figure(
			f"{label}: per 100,000 events",
			f"{per:.2f} s ({args.events / common.median(times):,.0f} events/s; {detections} detections)",
		)


def latency(dsn: str, args, rng) -> None:
	common.heading(
		f"Event to detection at {args.rate:,} events/s for {args.seconds} s, detector every {args.interval} s"
	)
	rules = [compile_rule(f"rule-{i}", r) for i, r in enumerate(RULES)]
	writer_conn, detector_conn = psycopg2.connect(dsn), psycopg2.connect(dsn)
	reset(writer_conn)
	crossings: dict[str, float] = {}  # attacked user -> commit time of the event that crosses 5
	detected: dict[str, float] = {}
	stop = threading.Event()
	per_tick = max(1, args.rate // 10)

	def writer():
		tick, attacked = 0, 0
		next_at = time.perf_counter()
		with writer_conn.cursor() as cur:
			while tick < args.seconds * 10:
				now = datetime.now(timezone.utc)
				batch = make_events(per_tick, now, rng)
				for event in batch:
					event["time"] = now.isoformat()
				victim = None
				if tick % 20 == 5:  # a brute force every 2 s: 5 failures of one user in one tick
					victim = f"victim{attacked}@example.com"
					attacked += 1
					for k in range(5):
						batch[k] = {
							"event_type": "login_failed",
							"source": "frappe",
							"time": now.isoformat(),
							"raw_data": {"user": victim, "ip": "198.51.100.7"},
						}
				ingest.ingest(cur, batch)
				writer_conn.commit()
				if victim:
					crossings[victim] = time.perf_counter()
				tick += 1
				next_at += 0.1
				time.sleep(max(0.0, next_at - time.perf_counter()))
		stop.set()

	def detector():
		with detector_conn.cursor() as cur:
			while True:
				finished = stop.is_set()
				while True:
					run = detect.evaluate(cur, rules, [], {}, args.batch)
					detector_conn.commit()
					moment = time.perf_counter()
					for d in run.detections:
						if d.rule == "rule-0" and d.key.startswith("victim") and d.key not in detected:
							detected[d.key] = moment
					if not run.more:
						break
				if finished:
					return
				time.sleep(args.interval)

	threads = [threading.Thread(target=writer), threading.Thread(target=detector)]
	started = time.perf_counter()
	for t in threads:
		t.start()
	for t in threads:
		t.join()
	elapsed = time.perf_counter() - started
	with writer_conn.cursor() as cur:
		cur.execute(
			"SELECT count(*), count(*) FILTER (WHERE processed_data IS NULL) FROM aegis.security_events"
		)
		total, left = cur.fetchone()
	lags = [detected[v] - crossings[v] for v in crossings if v in detected]
	missed = [v for v in crossings if v not in detected]
	common.figure("events written (achieved rate)", f"{total:,} ({total / elapsed:,.0f} events/s)")
	common.figure("brute forces detected / written", f"{len(lags)} / {len(crossings)}")
	if lags:
		common.figure("event to detection, median", common.milliseconds(statistics.median(lags)))
		common.figure("event to detection, max", common.milliseconds(max(lags)))
	common.figure("events left unevaluated at the end", str(left))
	if missed:
		print(f"  missed: {missed[:5]}")
	writer_conn.close()
	detector_conn.close()


def main() -> None:
	parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
	parser.add_argument("--events", type=int)
	parser.add_argument("--batch", type=int)
	parser.add_argument("--repeats", type=int)
	parser.add_argument("--rate", type=int)
	parser.add_argument("--seconds", type=int)
	parser.add_argument("--interval", type=float)
	args = common.arguments(
		parser,
		{
			"events": 100_000,
			"batch": detect.DEFAULT_BATCH,
			"repeats": 3,
			"rate": 1000,
			"seconds": 30,
			"interval": 1.0,
		},
		{"events": 20_000, "repeats": 1, "seconds": 8},
	)
	rng = random.Random(12)
	with common.server() as dsn, common.provisioned_database(dsn, common.path_settings("native")) as conn:
		common.describe_server(conn)
		evaluation_cost(conn, args, rng)
		latency(psycopg2.extensions.make_dsn(dsn, dbname=conn.info.dbname), args, rng)


if __name__ == "__main__":
	main()
