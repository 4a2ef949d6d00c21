"""Metrics ingest: batched writes against one INSERT per point, in points per second.

Batched means COPY through timeseries.write_metrics (the product's path) and, for comparison, a
multi-row INSERT through psycopg2's execute_values. Every method commits once per batch, as a
request writing a batch would, so they differ only in how the points reach the server. The table is
emptied before each run so that every run starts alike (its partitions or chunks for the day made
again by the daily job first); the methods take turns within each round. Each time-series path the
server offers is measured in a database of its own: native partitions, and TimescaleDB hypertables.

	python -m benchmarks.metrics_ingest [--points N] [--single-points N] [--batch-size N]
		[--path native|timescaledb|both] [--quick]
"""

import argparse
import json
import random
from datetime import datetime, timedelta, timezone

from psycopg2.extras import execute_values

from benchmarks import _common as common
from cauldron.pg import provision, timeseries

TARGET_POINTS_PER_SECOND = 50_000
METRIC_NAMES = ("http.requests", "http.latency_ms", "cpu.percent", "memory.used_mb", "queue.depth")
DIMENSIONS = (
	{"host": "web-1", "region": "eu"},
	{"host": "web-2", "region": "eu"},
	{"host": "web-3", "region": "us"},
	{"host": "worker-1", "region": "us", "queue": "default"},
)
INSERT = "INSERT INTO synapse.metrics (time, metric_name, value, dimensions) VALUES"


def make_points(count: int, day: datetime, seed: int) -> list[tuple]:
	"""Points spread over `day`, in time order as they would arrive."""
	rng = random.Random(seed)
	points = [
		(
			day + timedelta(seconds=rng.uniform(0, 86_400)),
			rng.choice(METRIC_NAMES),
			round(rng.uniform(0, 100), 3),
			rng.choice(DIMENSIONS),
		)
		for _ in range(count)
	]
	return sorted(points, key=lambda point: point[0])


def write_copy(cur, batch: list[tuple]) -> None:
	timeseries.write_metrics(cur, batch)


def _row(point: tuple) -> tuple:
	time, metric_name, value, dimensions = point
	return time, metric_name, value, json.dumps(dimensions, sort_keys=True)


def write_values(cur, batch: list[tuple]) -> None:
	# page_size: one statement for the whole batch (execute_values splits at 100 rows by default).
	execute_values(
		cur,
		f"{INSERT} %s",
		[_row(point) for point in batch],
		template="(%s, %s, %s, %s::jsonb)",
		page_size=len(batch),
	)


def write_one_by_one(cur, batch: list[tuple]) -> None:
	for point in batch:
		cur.execute(f"{INSERT} (%s, %s, %s, %s::jsonb)", _row(point))


COPY = "COPY (timeseries.write_metrics)"
VALUES = "multi-row INSERT (execute_values)"
ONE_BY_ONE = "one INSERT per point"
METHODS = {COPY: write_copy, VALUES: write_values, ONE_BY_ONE: write_one_by_one}
BATCHED = (COPY, VALUES)


def run(conn, write, points: list[tuple], batch_size: int, day: datetime) -> float:
	"""Seconds to write `points` batch by batch, one commit per batch, into an emptied table."""
	with conn.cursor() as cur:
		cur.execute("TRUNCATE synapse.metrics, synapse.rollup_invalidations")
		# TRUNCATE drops a hypertable's chunks: the daily job makes them again, as it would have
		timeseries.maintain_partitions(cur, provision.Settings().retention_days, now=day)
	conn.commit()

	def write_all() -> None:
		with conn.cursor() as cur:
			for start in range(0, len(points), batch_size):
				write(cur, points[start : start + batch_size])
				conn.commit()

	elapsed = common.seconds(write_all)
	with conn.cursor() as cur:
		cur.execute("SELECT count(*) FROM synapse.metrics")
		written = cur.fetchone()[0]
	conn.rollback()
	if written != len(points):
		raise RuntimeError(f"wrote {written} points, expected {len(points)}")
	return elapsed


def main() -> None:
	parser = argparse.ArgumentParser(
		description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
	)
	parser.add_argument("--points", type=int, help="points per batched run (default 200,000; quick 50,000)")
	parser.add_argument(
		"--single-points",
		type=int,
		help="points per one-INSERT-per-point run (default 20,000; quick 5,000)",
	)
	parser.add_argument("--batch-size", type=int, help="points per batch and commit (default 1,000)")
	parser.add_argument("--repeats", type=int, help="runs per method; the median is reported (default 5)")
	common.add_path_argument(parser)
	args = common.arguments(
		parser,
		defaults={"points": 200_000, "single_points": 20_000, "batch_size": 1_000, "repeats": 5},
		quick={"points": 50_000, "single_points": 5_000, "repeats": 3},
	)
	day = timeseries.period_start(datetime.now(timezone.utc), "day")
	points = make_points(args.points, day, seed=1)
	samples = {COPY: points, VALUES: points, ONE_BY_ONE: make_points(args.single_points, day, seed=2)}
	rates = {}
	with common.server() as dsn:
		for path in common.timeseries_paths(dsn, args.path):
			common.heading(f"path: {path}")
			with common.provisioned_database(dsn, common.path_settings(path)) as conn:
				common.describe_server(conn)
				with conn.cursor() as cur:
					timeseries.maintain_partitions(cur, provision.Settings().retention_days, now=day)
				conn.commit()
				elapsed = {name: [] for name in METHODS}
				for _ in range(args.repeats):
					for name, write in METHODS.items():
						elapsed[name].append(run(conn, write, samples[name], args.batch_size, day))
			rates[path] = report(path, elapsed, samples, args)
	if len(rates) > 1:
		common.heading("side by side: points/s, native and TimescaleDB, same server and sizes")
		for name in METHODS:
			native, timescale = rates["native"][name], rates["timescaledb"][name]
			common.figure(
				name,
				f"native {native:>9,.0f}  timescaledb {timescale:>9,.0f}  ratio ts/native {timescale / native:.2f}",
			)


def report(path: str, elapsed: dict, samples: dict, args) -> dict[str, float]:
	common.heading(
		f"metrics ingest ({path}): points spread over one day (UTC), {len(METRIC_NAMES)} metric names,"
		f" {len(DIMENSIONS)} dimension sets; batches of {args.batch_size:,}, one commit per batch;"
		f" median of {args.repeats} runs"
	)
	rates = {}
	for name, runs in elapsed.items():
		count = len(samples[name])
		rates[name] = count / common.median(runs)
		spread = f"runs {count / max(runs):,.0f}-{count / min(runs):,.0f}"
		common.figure(f"{name} ({count:,} points)", f"{rates[name]:>10,.0f} points/s  ({spread})")
	for name in BATCHED:
		common.figure(
			f"ratio {name.split(' (')[0]} / {ONE_BY_ONE}", f"{rates[name] / rates[ONE_BY_ONE]:.1f}x"
		)
	for name in BATCHED:
		met = rates[name] >= TARGET_POINTS_PER_SECOND
		common.figure(f"target >= {TARGET_POINTS_PER_SECOND:,} points/s, {name}", common.verdict(met))
	return rates


if __name__ == "__main__":
	main()
