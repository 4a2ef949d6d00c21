"""Line-protocol ingest: points/s of cauldron.synapse.ingest parsing alone, parsing and writing
(ingest.write: parse the whole batch, then one COPY), and writing already-parsed points
(timeseries.write_metrics), so the share parsing takes is plain. No HTTP: the endpoint adds
Frappe's request handling on top (measured on a bench, not here).

Batches as Telegraf sends them: lines of one measurement with FIELDS fields each (cpu-like), three
tags, nanosecond timestamps; one commit per batch, into an emptied table per run; methods take
turns within each round; the median of the runs is reported.

	python -m benchmarks.line_protocol_ingest [--points N] [--batch-size N] [--repeats N]
		[--path native|timescaledb|both] [--quick]

Through HTTP, against a running site (cauldron.api.synapse.write, as Telegraf posts: text/plain
body, precision in the query string, an API key of a Synapse Writer): the same batches posted by
`--clients` concurrent clients (default 1 and 4), points/s from the first request to the last
answer; the points go under a measurement of their own (printed), deleted afterwards when `--dsn`
names the site's database:

	python -m benchmarks.line_protocol_ingest --url http://127.0.0.1:8000 --token KEY:SECRET
		[--host-header SITE] [--clients 1,4] [--dsn postgresql://...] [--points N] [--repeats N]
"""

import argparse
import functools
import random
import threading
import time
import uuid
from datetime import datetime, timezone

from benchmarks import _common as common
from cauldron.pg import provision, timeseries
from cauldron.synapse import ingest

FIELDS = ("usage_user", "usage_system", "usage_idle", "usage_iowait", "usage_steal")
HOSTS = tuple(f"web-{i}" for i in range(20))


def make_batches(
	points: int, batch_size: int, day: datetime, seed: int, measurement: str = "cpu"
) -> list[bytes]:
	"""Line protocol bodies of `batch_size` points each (len(FIELDS) points a line)."""
	rng = random.Random(seed)
	start = int(day.timestamp()) * 10**9
	lines_per_batch = max(1, batch_size // len(FIELDS))
	lines = []
	for i in range(points // len(FIELDS)):
		stamp = start + rng.randrange(86_400 * 10**9)
		values = ",".join(f"{f}={rng.uniform(0, 100):.3f}" for f in FIELDS)
		lines.append(f"{measurement},host={rng.choice(HOSTS)},cpu=cpu{i % 4},region=eu {values} {stamp}")
	return ["\n".join(lines[i : i + lines_per_batch]).encode() for i in range(0, len(lines), lines_per_batch)]


def empty(conn, day: datetime) -> None:
	with conn.cursor() as cur:
		cur.execute("TRUNCATE synapse.metrics, synapse.rollup_invalidations")
		timeseries.maintain_partitions(cur, provision.Settings().retention_days, now=day)
	conn.commit()


def parse_only(conn, batches, parsed) -> None:
	for body in batches:
		ingest.parse(body)


def parse_and_write(conn, batches, parsed) -> None:
	with conn.cursor() as cur:
		for body in batches:
			ingest.write(cur, body)
			conn.commit()


def write_parsed(conn, batches, parsed) -> None:
	with conn.cursor() as cur:
		for points in parsed:
			timeseries.write_metrics(cur, points)
			conn.commit()


PARSE = "parse only (ingest.parse)"
BOTH = "parse + write (ingest.write, one COPY a batch)"
WRITE = "write parsed points (timeseries.write_metrics)"
METHODS = {PARSE: parse_only, BOTH: parse_and_write, WRITE: write_parsed}


def main() -> None:
	parser = argparse.ArgumentParser(
		description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
	)
	parser.add_argument("--points", type=int, help="points per run (default 200,000; quick 50,000)")
	parser.add_argument("--batch-size", type=int, help="points per batch and commit (default 5,000)")
	parser.add_argument("--repeats", type=int, help="runs per method; the median is reported (default 5)")
	common.add_path_argument(parser)
	parser.add_argument(
		"--url", help="a running site's base URL: measure cauldron.api.synapse.write over HTTP"
	)
	parser.add_argument("--token", help="API key:secret of a user who may write metrics (with --url)")
	parser.add_argument("--host-header", help="Host header naming the site (with --url), if the URL does not")
	parser.add_argument(
		"--clients", default="1,4", help="concurrent clients to measure (with --url; default 1,4)"
	)
	parser.add_argument("--dsn", help="the site database's DSN, to count and delete the points (with --url)")
	args = common.arguments(
		parser,
		defaults={"points": 200_000, "batch_size": 5_000, "repeats": 5},
		quick={"points": 50_000, "repeats": 3},
	)
	day = timeseries.period_start(datetime.now(timezone.utc), "day")
	if args.url:
		over_http(args, day)
		return
	batches = make_batches(args.points, args.batch_size, day, seed=1)
	parsed = [ingest.parse(body) for body in batches]
	count = sum(len(points) for points in parsed)
	rates = {}
	with common.server() as dsn:
		for path in common.timeseries_paths(dsn, args.path):
			common.heading(f"path: {path}")
			with common.provisioned_database(dsn, common.path_settings(path)) as conn:
				common.describe_server(conn)
				elapsed = {name: [] for name in METHODS}
				for _ in range(args.repeats):
					for name, method in METHODS.items():
						empty(conn, day)
						elapsed[name].append(common.seconds(functools.partial(method, conn, batches, parsed)))
						if method is not parse_only:
							with conn.cursor() as cur:
								cur.execute("SELECT count(*) FROM synapse.metrics")
								if cur.fetchone()[0] != count:
									raise RuntimeError(f"{name} did not write {count} points")
							conn.rollback()
			common.heading(
				f"line protocol ingest ({path}): {count:,} points in {len(batches)} batches of"
				f" {args.batch_size:,} ({len(FIELDS)} fields a line, 3 tags), one commit per batch;"
				f" median of {args.repeats} runs"
			)
			rates[path] = {}
			for name, runs in elapsed.items():
				rates[path][name] = count / common.median(runs)
				spread = f"runs {count / max(runs):,.0f}-{count / min(runs):,.0f}"
				common.figure(name, f"{rates[path][name]:>10,.0f} points/s  ({spread})")
			common.figure(
				"ratio parse + write / write parsed points", f"{rates[path][BOTH] / rates[path][WRITE]:.2f}"
			)
	if len(rates) > 1:
		common.heading("side by side: points/s, native and TimescaleDB")
		for name in METHODS:
			native, timescale = rates["native"][name], rates["timescaledb"][name]
			common.figure(name, f"native {native:>9,.0f}  timescaledb {timescale:>9,.0f}")


def post_all(session, url: str, headers: dict, bodies: list[bytes], failures: list) -> None:
	try:
		for body in bodies:
			response = session.post(url, data=body, headers=headers, timeout=300)
			if response.status_code != 200:
				raise RuntimeError(f"HTTP {response.status_code}: {response.text[:500]}")
	except Exception as e:  # reported after the run
		failures.append(e)


def over_http(args, day: datetime) -> None:
	import psycopg2
	import requests

	measurement = f"lpbench_{uuid.uuid4().hex[:8]}"
	batches = make_batches(args.points, args.batch_size, day, seed=1, measurement=measurement)
	count = sum(len(ingest.parse(body)) for body in batches)
	url = args.url.rstrip("/") + "/api/method/cauldron.api.synapse.write?precision=ns"
	headers = {"Content-Type": "text/plain; charset=utf-8", "Authorization": f"token {args.token}"}
	if args.host_header:
		headers["Host"] = args.host_header
	clients = [int(c) for c in args.clients.split(",")]
	print(f"HTTP: {url}; measurement {measurement}")
	rates = {}
	try:
		for _ in range(args.repeats):
			for n in clients:
				sessions = [requests.Session() for _ in range(n)]
				warm = []
				for session in sessions:  # connected and authenticated before the clock starts
					post_all(session, url, headers, [b""], warm)
				if warm:
					raise warm[0]
				failures = []
				threads = [
					threading.Thread(target=post_all, args=(session, url, headers, batches[i::n], failures))
					for i, session in enumerate(sessions)
				]
				started = time.perf_counter()
				for thread in threads:
					thread.start()
				for thread in threads:
					thread.join()
				elapsed = time.perf_counter() - started
				if failures:
					raise failures[0]
				rates.setdefault(n, []).append(count / elapsed)
	finally:
		if args.dsn:
			with psycopg2.connect(args.dsn) as conn, conn.cursor() as cur:
				cur.execute("DELETE FROM synapse.metrics WHERE metric_name LIKE %s", (measurement + ".%",))
				runs = sum(len(r) for r in rates.values())
				print(f"deleted {cur.rowcount:,} points ({count * runs:,} written by {runs} runs)")
	common.heading(
		f"line protocol over HTTP: {count:,} points in {len(batches)} batches of {args.batch_size:,}"
		f" ({len(FIELDS)} fields a line, 3 tags), one request and commit per batch; median of {args.repeats} runs"
	)
	for n, runs in rates.items():
		common.figure(
			f"{n} client{'s' if n > 1 else ''}",
			f"{common.median(runs):>10,.0f} points/s  (runs {min(runs):,.0f}-{max(runs):,.0f})",
		)


if __name__ == "__main__":
	main()
