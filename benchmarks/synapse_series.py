"""Synapse `series` latency (cauldron.synapse.query.series, what the endpoint and dashboards run) over
a synapse.metrics of `--points` points (default 10 million), generated server-side with
generate_series evenly over the last `--days` days: `--metrics` metric names times 4 dimension sets
(benchmarks.rollups' data), the hourly rollup refreshed.

Measured, p50 and p95 of `--repeats` runs after one warm-up, for one metric:
- a 30-day hourly series (metrics_hourly for the refreshed hours, raw points for the rest), beside the
  same series computed from the raw points only (use_rollup=False), and with a dimension filter;
- the same 30-day hourly series right after a new batch of points not yet rolled up (their hours
  are read raw);
- a 24-hour one-minute series (raw points), and with a dimension filter.

	python -m benchmarks.synapse_series [--points N] [--days N] [--metrics N] [--repeats N]
		[--path native|timescaledb|both] [--quick]
"""

import argparse
import random
import statistics
from datetime import datetime, timedelta, timezone

from benchmarks import _common as common
from benchmarks import rollups
from cauldron.pg import timeseries
from cauldron.synapse import query

METRIC = "metric.3"


def percentile(values: list[float], fraction: float) -> float:
	ordered = sorted(values)
	return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def timed_series(conn, repeats: int, **arguments) -> tuple[float, float, query.Series]:
	"""(p50, p95) seconds of `repeats` runs after a warm-up, and the last answer."""
	times = []
	result = None
	for run in range(repeats + 1):
		with conn.cursor() as cur:
			elapsed, result = common.timed(lambda cur=cur: query.series(cur, METRIC, **arguments))
		conn.rollback()
		if run:
			times.append(elapsed)
	return statistics.median(times), percentile(times, 0.95), result


def main() -> None:
	parser = argparse.ArgumentParser(
		description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
	)
	parser.add_argument(
		"--points", type=int, help="raw points generated (default 10,000,000; quick 1,000,000)"
	)
	parser.add_argument("--days", type=int, help="days the points span, ending now (default 30)")
	parser.add_argument("--metrics", type=int, help="metric names (default 20)")
	parser.add_argument("--repeats", type=int, help="timed runs of each series (default 15; quick 5)")
	common.add_path_argument(parser)
	args = common.arguments(
		parser,
		defaults={"points": 10_000_000, "days": 30, "metrics": 20, "repeats": 15},
		quick={"points": 1_000_000, "repeats": 5},
	)
	end = datetime.now(timezone.utc).replace(microsecond=0)
	start = end - timedelta(days=args.days)
	results = {}
	with common.server() as dsn:
		for path in common.timeseries_paths(dsn, args.path):
			common.heading(f"path: {path}")
			results[path] = measure(dsn, path, args, start, end)
	if len(results) > 1:
		common.heading("side by side: native and TimescaleDB (p50, ms)")
		for label in results["native"]:
			native, timescale = results["native"][label], results["timescaledb"][label]
			common.figure(label, f"native {native * 1000:8.2f}  timescaledb {timescale * 1000:8.2f}")


def measure(dsn: str, path: str, args, start: datetime, end: datetime) -> dict[str, float]:
	with common.provisioned_database(dsn, common.path_settings(path)) as conn:
		common.describe_server(conn)
		with conn.cursor() as cur:
			rollups.create_partitions(cur, start, end + timedelta(days=1))
		conn.commit()
		load = common.seconds(lambda: rollups.generate(conn, args.points, args.metrics, start, end))
		common.vacuum_analyze(conn, "synapse.metrics")
		refresh = common.seconds(lambda: rollups.refresh(conn))
		common.vacuum_analyze(conn, "synapse.metrics_hourly")
		per_metric = args.points // args.metrics
		common.figure("points loaded (generate_series)", f"{args.points:,} in {load:.1f} s")
		common.figure("full rollup refresh", common.duration(refresh))
		common.figure(f"points of {METRIC} (4 dimension sets)", f"{per_metric:,}")

		month = {"start": end - timedelta(days=30), "end": end, "interval": "1 hour", "aggregate": "avg"}
		day = {"start": end - timedelta(hours=24), "end": end, "interval": "1 minute", "aggregate": "avg"}
		host = {"dimensions": {"host": "web-1"}}
		cases = {
			"30 days by hour (rollup + raw edges)": month,
			"30 days by hour, raw points only (use_rollup=False)": {**month, "use_rollup": False},
			"30 days by hour, host=web-1 (rollup)": {**month, **host},
			"24 hours by minute (raw)": day,
			"24 hours by minute, host=web-1 (raw)": {**day, **host},
		}
		figures = {}
		answers = {}
		for label, arguments in cases.items():
			p50, p95, answer = timed_series(conn, args.repeats, **arguments)
			answers[label] = answer
			figures[label] = p50
			common.figure(f"{label}: p50 / p95", f"{common.milliseconds(p50)} / {common.milliseconds(p95)}")
		same = all(
			(a[1] is None and b[1] is None) or abs(a[1] - b[1]) < 1e-6
			for a, b in zip(
				answers["30 days by hour (rollup + raw edges)"].points,
				answers["30 days by hour, raw points only (use_rollup=False)"].points,
				strict=True,
			)
		)
		common.figure("rollup answer equals the raw answer", str(same))
		common.figure(
			"30-day hourly: raw / rollup",
			f"{figures['30 days by hour, raw points only (use_rollup=False)'] / figures['30 days by hour (rollup + raw edges)']:.1f}x",
		)

		# A new batch in the last minutes, not yet rolled up: its hour is read from the raw points.
		rng = random.Random(2)
		with conn.cursor() as cur:
			timeseries.write_metrics(
				cur,
				[
					(
						end - timedelta(seconds=rng.uniform(0, 300)),
						METRIC,
						rng.uniform(0, 100),
						{"host": "web-1"},
					)
					for _ in range(1000)
				],
			)
		conn.commit()
		label = "30 days by hour, a batch not yet rolled up"
		p50, p95, _answer = timed_series(conn, args.repeats, **month)
		figures[label] = p50
		common.figure(f"{label}: p50 / p95", f"{common.milliseconds(p50)} / {common.milliseconds(p95)}")
		return figures


if __name__ == "__main__":
	main()
