"""Aegis ingest: security events per second through cauldron.api.aegis.ingest over HTTP, and at the
engine level (cauldron.aegis.ingest: parsing alone, parsing and writing with one multi-row INSERT
per batch, a commit per batch).

HTTP: with --url (the bench's web server, e.g. http://127.0.0.1:8000) and --token (API key:secret
of a Security Analyst on that site), batches of each size are POSTed as JSON by --clients threads;
the figure is events committed per second (median of the repeats). Without --url, only the engine
level is measured, on the embedded PostgreSQL (or CAULDRON_BENCH_DSN), native path.

	python -m benchmarks.aegis_ingest [--events N] [--sizes 100,1000,10000] [--repeats N]
		[--url URL --token KEY:SECRET [--host SITE] [--clients N]] [--quick]
"""

import argparse
import json
import random
import threading
from datetime import datetime, timedelta, timezone

from benchmarks import _common as common
from cauldron.aegis import ingest


def make_events(count: int, rng: random.Random) -> list[dict]:
	start = datetime.now(timezone.utc) - timedelta(minutes=5)
	kinds = ("login_failed", "login_success", "http_request", "port_scan", "dns_query")
	return [
		{
			"event_type": rng.choice(kinds),
			"source": rng.choice(("nginx", "Suricata", "frappe", "osquery")),
			"severity": rng.choice(("info", "low", "warning", "error", 7.5)),
			"time": (start + timedelta(milliseconds=i)).isoformat(),
			"description": "synthetic event",
			"raw_data": {
				"ip": f"198.51.{rng.randrange(256)}.{rng.randrange(256)}",
				"user": f"user{rng.randrange(1000)}@example.com",
				"user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
				"path": f"/api/resource/{rng.randrange(100)}",
			},
		}
		for i in range(count)
	]


def engine_level(events: list[dict], sizes: list[int], repeats: int) -> None:
	common.heading(f"Engine level: {len(events):,} events (cauldron.aegis.ingest)")
	with common.server() as dsn, common.provisioned_database(dsn, common.path_settings("native")) as conn:
		common.describe_server(conn)
		for size in sizes:
			batches = [events[i : i + size] for i in range(0, len(events), size)]
			parse_times, write_times = [], []
			for _ in range(repeats):
				with conn.cursor() as cur:
					cur.execute("TRUNCATE aegis.security_events")
				conn.commit()
				parse_times.append(common.seconds(lambda batches=batches: [ingest.parse(b) for b in batches]))

				def parse_and_write(batches=batches):
					with conn.cursor() as cur:
						for batch in batches:
							ingest.ingest(cur, batch)
							conn.commit()

				write_times.append(common.seconds(parse_and_write))
			common.figure(
				f"batches of {size:,}: parse only",
				common.rate(len(events), common.median(parse_times), "events"),
			)
			common.figure(
				f"batches of {size:,}: parse + write + commit",
				common.rate(len(events), common.median(write_times), "events"),
			)


def over_http(events: list[dict], sizes: list[int], repeats: int, args) -> None:
	common.heading(f"HTTP: {len(events):,} events to {args.url} ({args.clients} client threads)")
	headers = {"Authorization": f"token {args.token}", "Content-Type": "application/json"}
	if args.host:
		headers["Host"] = args.host
	url = args.url.rstrip("/") + "/api/method/cauldron.api.aegis.ingest"
	for size in sizes:
		bodies = [json.dumps({"events": events[i : i + size]}) for i in range(0, len(events), size)]
		times = []
		for _ in range(repeats):
			elapsed, failures = common.timed(
				lambda bodies=bodies: post_all(url, headers, bodies, args.clients)
			)
			if failures:
				raise SystemExit(f"ingest failed: {failures[0]}")
			times.append(elapsed)
		common.figure(f"batches of {size:,}", common.rate(len(events), common.median(times), "events"))


def post_all(url: str, headers: dict, bodies: list[str], clients: int) -> list[str]:
	"""POST every body, `clients` at a time; returns the failures."""
	import requests

	queue = list(range(len(bodies)))
	lock = threading.Lock()
	failures = []

	def client():
		with requests.Session() as session:
			while True:
				with lock:
					if not queue:
						return
					index = queue.pop()
				response = session.post(url, data=bodies[index], headers=headers, timeout=300)
				if response.status_code != 200:
					failures.append(response.text[:300])

	threads = [threading.Thread(target=client) for _ in range(clients)]
	for t in threads:
		t.start()
	for t in threads:
		t.join()
	return failures


def main() -> None:
	parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
	parser.add_argument("--events", type=int)
	parser.add_argument("--sizes")
	parser.add_argument("--repeats", type=int)
	parser.add_argument("--url")
	parser.add_argument("--token")
	parser.add_argument("--host")
	parser.add_argument("--clients", type=int, default=2)
	args = common.arguments(
		parser,
		{"events": 100_000, "sizes": "100,1000,10000", "repeats": 3},
		{"events": 20_000, "repeats": 1},
	)
	sizes = [int(s) for s in args.sizes.split(",")]
	events = make_events(args.events, random.Random(7))
	if args.url:
		over_http(events, sizes, args.repeats, args)
	engine_level(events, sizes, args.repeats)


if __name__ == "__main__":
	main()
