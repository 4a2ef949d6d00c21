"""Synapse analytics metrics: one evaluation run of `--count` metrics (default 100) with
cauldron.synapse.metrics.evaluate_all, what the scheduled job does for the metrics due: each
evaluated, its value written as a point (one COPY), its state and alert worked out.

Data: `--points` points (default 2,000,000) generated server-side over the last 7 days,
benchmarks.rollups' 20 metric names times 4 dimension sets, the hourly rollup refreshed. Metrics: 60%
structured definitions (avg, sum, max or count over windows of 15 minutes to 7 days, every third one
with a host filter), 40% SQL SELECTs over synapse.metrics and metrics_hourly run on a login of the
database's reader role (READ ONLY, statement_timeout, SET LOCAL ROLE); the thresholds alternate
between alerting above and below, so that states change between runs and alerts are made. The median of `--repeats` runs is reported, with the per-metric median of
each kind.

	python -m benchmarks.synapse_metrics_eval [--count N] [--points N] [--repeats N]
		[--path native|timescaledb|both] [--quick]
"""

import argparse
import random
import statistics
import uuid
from contextlib import closing
from datetime import datetime, timedelta, timezone

import psycopg2
from psycopg2 import sql

from benchmarks import _common as common
from benchmarks import rollups
from cauldron.pg import views
from cauldron.synapse import metrics

WINDOWS = ("15 minutes", "1 hour", "6 hours", "1 day", "7 days")
SQL = (
	"SELECT count(*) FROM synapse.metrics WHERE metric_name = 'metric.{i}' AND time > now() - interval '1 hour'",
	"SELECT avg(avg_value) FROM synapse.metrics_hourly WHERE metric_name = 'metric.{i}'"
	" AND bucket > now() - interval '1 day'",
	"SELECT max(value) FROM synapse.metrics WHERE metric_name = 'metric.{i}'"
	" AND time > now() - interval '15 minutes' AND dimensions @> '{{\"host\": \"web-1\"}}'",
	"SELECT sum(sample_count) FROM synapse.metrics_hourly WHERE bucket > now() - interval '7 days'"
	" AND metric_name = 'metric.{i}'",
)


def make_specs(count: int, metric_names: int, rng: random.Random) -> list[metrics.MetricSpec]:
	specs = []
	for n in range(count):
		i = n % metric_names
		if n % 5 < 3:
			definition = (
				f'{{"metric": "metric.{i}", "aggregate": "{("avg", "sum", "max", "count")[n % 4]}",'
				f' "window": "{WINDOWS[n % len(WINDOWS)]}"'
				+ (', "dimensions": {"host": "web-1"}' if n % 3 == 0 else "")
				+ "}"
			)
		else:
			definition = SQL[n % len(SQL)].format(i=i)
		thresholds = metrics.Thresholds(warning=rng.uniform(0, 60), critical=rng.uniform(60, 120))
		specs.append(metrics.MetricSpec(str(uuid.uuid4()), definition, thresholds, None, f"Metric {n}"))
	return specs


def main() -> None:
	parser = argparse.ArgumentParser(
		description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
	)
	parser.add_argument("--count", type=int, help="analytics metrics per run (default 100)")
	parser.add_argument("--points", type=int, help="raw points generated (default 2,000,000; quick 200,000)")
	parser.add_argument("--repeats", type=int, help="runs; the median is reported (default 7; quick 3)")
	common.add_path_argument(parser)
	args = common.arguments(
		parser,
		defaults={"count": 100, "points": 2_000_000, "repeats": 7},
		quick={"points": 200_000, "repeats": 3},
	)
	with common.server() as dsn:
		for path in common.timeseries_paths(dsn, args.path):
			common.heading(f"path: {path}")
			measure(dsn, path, args)


def measure(dsn: str, path: str, args) -> None:
	end = datetime.now(timezone.utc).replace(microsecond=0)
	start = end - timedelta(days=7)
	with common.provisioned_database(dsn, common.path_settings(path)) as conn:
		common.describe_server(conn)
		with conn.cursor() as cur:
			rollups.create_partitions(cur, start, end + timedelta(days=1))
			cur.execute("SELECT current_database()")
			database = cur.fetchone()[0]
		conn.commit()
		load = common.seconds(lambda: rollups.generate(conn, args.points, 20, start, end))
		common.vacuum_analyze(conn, "synapse.metrics")
		rollups.refresh(conn)
		common.figure("points loaded (generate_series)", f"{args.points:,} in {load:.1f} s")

		role = views.reader_role_name(database)
		login, password = f"{role[:40]}_login", uuid.uuid4().hex
		admin = psycopg2.connect(psycopg2.extensions.make_dsn(dsn, dbname=database))
		admin.autocommit = True
		with closing(admin), admin.cursor() as cur:
			views.create_reader_role(cur, role)
			cur.execute(
				sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(login)), (password,)
			)
			cur.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(role), sql.Identifier(login)))
		try:
			with conn.cursor() as cur:
				views.grant_reader(cur, role)
			conn.commit()
			reader = metrics.Reader(
				lambda: psycopg2.connect(
					psycopg2.extensions.make_dsn(dsn, dbname=database, user=login, password=password)
				)
			)
			run(conn, reader, role, args)
			reader.close()
		finally:
			admin = psycopg2.connect(psycopg2.extensions.make_dsn(dsn, dbname=database))
			admin.autocommit = True
			with closing(admin), admin.cursor() as cur:
				cur.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
				cur.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(login)))
				cur.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def run(conn, reader, role: str, args) -> None:
	specs = make_specs(args.count, 20, random.Random(3))
	structured = {s.name for s in specs if s.query_definition.startswith("{")}
	runs, per_structured, per_sql, alerts, errors = [], [], [], 0, set()
	base = {spec.name: spec.thresholds for spec in specs}
	for repeat in range(args.repeats + 1):
		# alerting above (w, c), then below (w + 200, w + 100): every value (0 to 100) is critical
		# below, and ok or warning above for most, so most states change every run: alerts are made
		for spec in specs:
			w, c = base[spec.name].warning, base[spec.name].critical
			spec.thresholds = (
				metrics.Thresholds(warning=w, critical=c, direction="above")
				if repeat % 2
				else metrics.Thresholds(warning=w + 200, critical=w + 100, direction="below")
			)
		with conn.cursor() as cur:
			elapsed, results = common.timed(
				lambda cur=cur: metrics.evaluate_all(specs, cur, reader, role=role)
			)
		conn.commit()
		for spec, result in zip(specs, results, strict=True):
			spec.state = result.state
		if not repeat:
			continue  # warm-up (the reader's connection is opened in it)
		runs.append(elapsed)
		alerts += sum(1 for r in results if r.alert)
		errors |= {r.error for r in results if r.error}
		per_structured += [r.seconds for r in results if r.metric in structured]
		per_sql += [r.seconds for r in results if r.metric not in structured]
	run_median = statistics.median(runs)
	common.figure(
		f"run of {args.count} metrics ({len(structured)} structured): median", common.milliseconds(run_median)
	)
	common.figure("metrics evaluated per second", common.rate(args.count, run_median, "metrics"))
	common.figure("per structured metric: median", common.milliseconds(statistics.median(per_structured)))
	common.figure(
		"per SQL metric (reader login, read only): median", common.milliseconds(statistics.median(per_sql))
	)
	common.figure("alerts over the timed runs", str(alerts))
	common.figure("errors", f"{len(errors)} distinct: " + "; ".join(sorted(errors)[:3]) if errors else "none")


if __name__ == "__main__":
	main()
