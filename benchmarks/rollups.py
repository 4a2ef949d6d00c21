"""Hourly rollups: a dashboard query read from synapse.metrics_hourly against the same aggregate over
the raw points, and what timeseries.refresh_rollups costs, in full and after one new batch.

The points are generated server-side (INSERT ... SELECT generate_series) evenly over the last
`--days` days, `--metrics` metric names times 4 dimension sets, into day partitions made first.
The dashboard query is hourly avg/min/max/count of one metric over the last 7 days; each form
runs once to warm the cache (its result is compared with the other's), then `--repeats` times in a row.
Each time-series path the server offers is measured in a database of its own: native day partitions
and a rollup table, and TimescaleDB day chunks and a continuous aggregate (refresh_rollups refreshes
it for the hours written).

	python -m benchmarks.rollups [--points N] [--days N] [--metrics N] [--repeats N]
		[--path native|timescaledb|both] [--quick]
"""

import argparse
import json
import math
import random
from datetime import datetime, timedelta, timezone

from benchmarks import _common as common
from cauldron.pg import timeseries

DIMENSIONS = (
	{"host": "web-1", "region": "eu"},
	{"host": "web-2", "region": "eu"},
	{"host": "web-3", "region": "us"},
	{"host": "worker-1", "region": "us", "queue": "default"},
)
# The insert trigger holds each statement's rows in a transition table: a statement per million rows
# keeps that modest and commits as it goes.
ROWS_PER_STATEMENT = 1_000_000
DASHBOARD_DAYS = 7
GENERATE = """
INSERT INTO synapse.metrics (time, metric_name, value, dimensions)
SELECT %(start)s + %(span)s * i / %(total)s, 'metric.' || (i %% %(metrics)s), random() * 100,
	(%(dimensions)s::jsonb[])[1 + (i / %(metrics)s) %% %(dimension_sets)s]
FROM generate_series(%(first)s, %(last)s) AS i
"""
FROM_RAW = """
SELECT date_trunc('hour', time, 'UTC') AS bucket, avg(value), min(value), max(value), count(*)
FROM synapse.metrics
WHERE metric_name = %(metric)s AND time >= %(since)s AND time < %(until)s {extra}
GROUP BY 1 ORDER BY 1
"""
# The rollup keeps one row per hour, metric and dimension set: the dashboard combines the sets,
# weighting each average by its sample count.
FROM_ROLLUP = """
SELECT bucket, sum(avg_value * sample_count) / sum(sample_count), min(min_value), max(max_value),
	sum(sample_count)
FROM synapse.metrics_hourly
WHERE metric_name = %(metric)s AND bucket >= %(since)s AND bucket < %(until)s {extra}
GROUP BY 1 ORDER BY 1
"""
QUERIES = {
	"one metric, all dimension sets": "",
	"one metric, one host (dimensions @> filter)": """AND dimensions @> '{"host": "web-1"}'""",
}


def create_partitions(cur, start: datetime, end: datetime) -> None:
	"""Day partitions over the span (native); on TimescaleDB the load makes its chunks."""
	if timeseries.uses_timescale(cur):
		return
	day = timeseries.period_start(start, "day")
	while day < end:
		timeseries.ensure_partition(cur, timeseries.METRICS, day)
		day = timeseries.period_end(day, "day")


def generate(conn, total: int, metrics: int, start: datetime, end: datetime) -> None:
	for first in range(0, total, ROWS_PER_STATEMENT):
		with conn.cursor() as cur:
			cur.execute(
				GENERATE,
				{
					"start": start,
					"span": end - start,
					"total": total,
					"metrics": metrics,
					"dimensions": [json.dumps(d) for d in DIMENSIONS],
					"dimension_sets": len(DIMENSIONS),
					"first": first,
					"last": min(first + ROWS_PER_STATEMENT, total) - 1,
				},
			)
		conn.commit()


def refresh(conn) -> int:
	with conn.cursor() as cur:
		hours = timeseries.refresh_rollups(cur)
	conn.commit()
	return hours


def fetch(conn, query: str, params: dict) -> list[tuple]:
	with conn.cursor() as cur:
		cur.execute(query, params)
		rows = cur.fetchall()
	conn.rollback()
	return rows


def same_result(raw: list[tuple], rollup: list[tuple]) -> bool:
	if len(raw) != len(rollup):
		return False
	for (bucket, avg, low, high, count), (r_bucket, r_avg, r_low, r_high, r_count) in zip(
		raw, rollup, strict=True
	):
		if (bucket, low, high, count) != (r_bucket, r_low, r_high, r_count) or not math.isclose(avg, r_avg):
			return False
	return True


def new_batch(size: int, metrics: int, end: datetime, rng: random.Random) -> list[tuple]:
	"""One write_metrics batch of the last five minutes, as the scheduled refresh would find it."""
	return [
		(
			end - timedelta(seconds=rng.uniform(0, 300)),
			f"metric.{rng.randrange(metrics)}",
			rng.uniform(0, 100),
			rng.choice(DIMENSIONS),
		)
		for _ in range(size)
	]


def main() -> None:
	parser = argparse.ArgumentParser(
		description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
	)
	parser.add_argument(
		"--points", type=int, help="raw points generated (default 10,000,000; quick 1,000,000)"
	)
	parser.add_argument("--days", type=int, help="days the points span, ending now (default 30)")
	parser.add_argument("--metrics", type=int, help="metric names (default 20)")
	parser.add_argument("--repeats", type=int, help="timed runs of each query (default 7)")
	parser.add_argument("--batch-size", type=int, help="points in the new batch (default 1,000)")
	parser.add_argument("--incremental-repeats", type=int, help="batch + refresh rounds (default 5)")
	common.add_path_argument(parser)
	args = common.arguments(
		parser,
		defaults={
			"points": 10_000_000,
			"days": 30,
			"metrics": 20,
			"repeats": 7,
			"batch_size": 1_000,
			"incremental_repeats": 5,
		},
		quick={"points": 1_000_000, "repeats": 5, "incremental_repeats": 3},
	)
	end = datetime.now(timezone.utc).replace(microsecond=0)
	start = end - timedelta(days=args.days)
	# Whole hours, so that the raw aggregate and the rollup cover the same points.
	until = end.replace(minute=0, second=0) + timedelta(hours=1)
	since = until - timedelta(days=DASHBOARD_DAYS)
	results = {}
	with common.server() as dsn:
		for path in common.timeseries_paths(dsn, args.path):
			common.heading(f"path: {path}")
			results[path] = measure(dsn, path, args, start, end, since, until)
	if len(results) > 1:
		common.heading("side by side: native and TimescaleDB, same server and sizes")
		rows = [
			("load (points/s)", "load_rate", "{:,.0f}"),
			("full refresh_rollups (s)", "full_refresh", "{:.2f}"),
			("incremental refresh_rollups (ms, median)", "incremental", "{:.1f}"),
		]
		for name in QUERIES:
			rows += [(f"{name}: from raw (ms)", f"raw {name}", "{:.2f}")]
			rows += [(f"{name}: from rollup (ms)", f"rollup {name}", "{:.2f}")]
		for label, key, fmt in rows:
			native, timescale = results["native"][key], results["timescaledb"][key]
			common.figure(
				label,
				f"native {fmt.format(native):>9}  timescaledb {fmt.format(timescale):>9}"
				f"  ts/native {timescale / native:.2f}",
			)


def measure(dsn: str, path: str, args, start, end, since, until) -> dict[str, float]:
	"""Load, refresh and query on one time-series path; prints the figures and returns the main ones."""
	rng = random.Random(1)
	with common.provisioned_database(dsn, common.path_settings(path)) as conn:
		common.describe_server(conn)
		with conn.cursor() as cur:
			create_partitions(cur, start, end)
		conn.commit()
		load = common.seconds(lambda: generate(conn, args.points, args.metrics, start, end))
		vacuum = common.seconds(lambda: common.vacuum_analyze(conn, "synapse.metrics"))
		full_refresh, full_hours = common.timed(lambda: refresh(conn))
		common.vacuum_analyze(conn, "synapse.metrics_hourly")
		with conn.cursor() as cur:
			cur.execute("SELECT count(*) FROM synapse.metrics_hourly")
			rollup_rows = cur.fetchone()[0]
		conn.rollback()

		params = {"metric": "metric.0", "since": since, "until": until}
		timings = {}
		checks = {}
		for name, extra in QUERIES.items():
			raw_query, rollup_query = FROM_RAW.format(extra=extra), FROM_ROLLUP.format(extra=extra)
			checks[name] = same_result(fetch(conn, raw_query, params), fetch(conn, rollup_query, params))
			timings[name] = [
				common.median(
					[common.seconds(lambda q=query: fetch(conn, q, params)) for _ in range(args.repeats)]
				)
				for query in (raw_query, rollup_query)
			]

		incremental, incremental_hours = [], []
		for _ in range(args.incremental_repeats):
			with conn.cursor() as cur:
				timeseries.write_metrics(cur, new_batch(args.batch_size, args.metrics, end, rng))
			conn.commit()
			elapsed, hours = common.timed(lambda: refresh(conn))
			incremental.append(elapsed)
			incremental_hours.append(hours)

	container = "day partitions" if path == "native" else "day chunks"
	common.heading(
		f"data ({path}): {args.points:,} points over {args.days} days, {args.metrics} metric names x"
		f" {len(DIMENSIONS)} dimension sets, in {container}"
	)
	common.figure(
		"load (INSERT ... SELECT generate_series)",
		f"{common.duration(load)}, {common.rate(args.points, load, 'points')}",
	)
	common.figure("VACUUM ANALYZE synapse.metrics", common.duration(vacuum))
	common.figure(
		f"full refresh_rollups ({full_hours} hours -> {rollup_rows:,} rollup rows)",
		common.duration(full_refresh),
	)
	common.figure(
		f"incremental refresh_rollups after a {args.batch_size:,}-point batch, median of {len(incremental)}",
		common.milliseconds(common.median(incremental)),
	)
	common.figure("  hours recomputed by each incremental refresh", ", ".join(map(str, incremental_hours)))
	common.heading(
		f"dashboard query ({path}): hourly avg/min/max/count of metric.0 over the last {DASHBOARD_DAYS}"
		f" days, median of {args.repeats} warm runs"
	)
	for name, (raw, rollup) in timings.items():
		print(f"  {name}")
		common.figure("  from raw points (synapse.metrics)", common.milliseconds(raw))
		common.figure("  from the rollup (synapse.metrics_hourly)", common.milliseconds(rollup))
		common.figure("  ratio raw / rollup", f"{raw / rollup:.0f}x")
		common.figure("  same result from both", "yes" if checks[name] else "NO")
	figures = {
		"load_rate": args.points / load,
		"full_refresh": full_refresh,
		"incremental": common.median(incremental) * 1000,
	}
	for name, (raw, rollup) in timings.items():
		figures[f"raw {name}"], figures[f"rollup {name}"] = raw * 1000, rollup * 1000
	return figures


if __name__ == "__main__":
	main()
