"""Backup and restore at the database level, as Frappe does them on Postgres: a plain `pg_dump` of the
site's database as its own user, loaded with `psql` (which carries on after errors) as the new site's
own user, who is no superuser. Loaded that way alone, every table with a vector column is lost with
its rows; with Cauldron's step (a superuser creates the dump's extensions in the empty database
first) every row of every Cauldron relation comes back.
"""

import subprocess
from datetime import datetime, timedelta, timezone

import psycopg2
import pytest
from conftest import SITE_PASSWORD, SITE_ROLE, drop_database, make_database
from frappe_tables import create_site_tables

from cauldron.aegis import detect, rules
from cauldron.lore import ingest
from cauldron.pg import audit, capabilities, embedded, provision, tables, timeseries, vectors, views
from cauldron.pg.audit import AuditEvent
from cauldron.pg.vectors import Chunk

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def unit(dimension, i):
	values = [0.0] * dimension
	values[i % dimension] = 1.0
	values[(i * 7 + 3) % dimension] += 0.5
	return values


def _site_dsn(db) -> str:
	return psycopg2.extensions.make_dsn(db.server_dsn, dbname=db.name, user=SITE_ROLE, password=SITE_PASSWORD)


def pg_dump(db, path):
	"""As Frappe's backup: plain SQL of the whole database, as the site's user, gzipped."""
	subprocess.run(
		f"set -o pipefail; {embedded._bin('pg_dump')} '{_site_dsn(db)}' | gzip > {path}",
		shell=True,
		executable="/bin/bash",
		check=True,
	)


def psql_load(db, path) -> str:
	"""As Frappe's restore: psql as the site's user, no ON_ERROR_STOP. Returns what psql said."""
	done = subprocess.run(
		f"set -o pipefail; gzip -cd {path} | {embedded._bin('psql')} '{_site_dsn(db)}'",
		shell=True,
		executable="/bin/bash",
		capture_output=True,
		text=True,
	)
	assert done.returncode == 0, done.stderr  # psql carries on: errors do not fail the load
	return done.stderr


@pytest.fixture
def source(provisioned):
	"""A provisioned site database with rows in every Cauldron relation and a sealed audit chain."""
	db, conn = provisioned
	cur = conn.cursor()
	create_site_tables(cur)
	views.create_views(cur)
	vectors.replace_document_chunks(
		cur,
		"DOC-1",
		[Chunk(i, f"chunk {i}", unit(384, i), {"lang": "en" if i % 2 else "de"}) for i in range(40)],
	)
	vectors.replace_document_chunks(cur, "DOC-2", [Chunk(0, "no embedding yet", None)])
	vectors.set_entity_embedding(cur, "ENT-1", unit(384, 5))
	# a model being built, and the queued work that builds it: both documents and the entity
	assert ingest.switch_model(cur, "restore-test-model", 384) == 3
	timeseries.write_metrics(
		cur, [(NOW - timedelta(minutes=m), "cpu", m, {"host": "a"}) for m in range(0, 600, 7)]
	)
	timeseries.refresh_rollups(cur)
	# older than the partitions made so far, within retention: kept in the default partition
	timeseries.write_metrics(cur, [(NOW - timedelta(days=30), "cpu", 1, {})])
	cur.execute(
		"INSERT INTO aegis.security_events (event_time, event_type, source, severity, is_incident)"
		" VALUES (now(), 'login_failed', 'pytest', 'high', true)"
	)
	# evaluated by a threshold rule: its match is counted in aegis.detection_matches
	rule = rules.compile_rule(
		"restore",
		{
			"match": {"event_type": "login_failed"},
			"threshold": {"count": 1, "within": "1h", "group_by": "source"},
		},
	)
	assert len(detect.evaluate(cur, [rule]).detections) == 1
	audit.write_events(
		cur,
		[
			AuditEvent("update", "ToDo", f"TODO-{i}", "alice@example.com", {"a": 1}, {"a": 2}, created_at=NOW)
			for i in range(25)
		],
	)
	audit.seal(cur)
	tables.write_agent_interactions(
		cur,
		[
			tables.AgentInteraction(
				"5f1e0c3a-2b2b-4c4c-8d8d-0123456789ab",
				"7d0f2d4e-1c1b-4d7e-9a55-0123456789ab",
				"user_message",
				{"text": "hello"},
			)
		],
	)
	conn.commit()
	counts = provision.relation_counts(cur)
	empty = {relation for relation, n in counts.items() if n == 0}
	assert empty <= {"synapse.rollup_invalidations", "core.audit_chain_dropped", "command.sql_readers"}
	return db, conn


@pytest.fixture
def target(server_dsn):
	"""An empty database owned by the site's user, as Frappe's restore creates it; no extension."""
	database = make_database(server_dsn)
	yield database
	drop_database(database)


def search(cur):
	return [
		(r["document_id"], r["chunk_index"], round(r["distance"], 6))
		for r in vectors.search_chunks(cur, unit(384, 3), limit=10, metadata_filter={"lang": "en"})
	]


def test_restore_as_the_site_user_alone_loses_the_vector_tables_and_the_ledger_says_so(
	source, target, tmp_path
):
	db, _conn = source
	dump = tmp_path / "site.sql.gz"
	pg_dump(db, dump)
	assert provision.dump_extensions(dump) == ["vector"]

	said = psql_load(target, dump)
	assert "permission denied to create extension" in said

	conn = target.connect()
	cur = conn.cursor()
	cur.execute("SELECT to_regclass('lore.document_chunks')")
	assert cur.fetchone()[0] is None  # the rows went with it
	outcomes = {o.step: o for o in provision.status(cur).outcomes}
	assert outcomes["vectors:lore.document_chunks"].status == "missing"
	assert "needs extension vector" in outcomes["vectors:lore.document_chunks"].detail
	result = provision.provision(cur)
	conn.commit()
	skipped = {o.step for o in result.by_status("skipped")}
	assert {"vectors:lore.document_chunks", "vectors:lore.entity_embeddings"} <= skipped
	cur.execute("SELECT step FROM command.ddl_ledger WHERE step = ANY(%s)", (list(skipped),))
	assert cur.fetchall() == []  # the ledger no longer claims what is not there


def test_restore_with_the_extensions_created_first_keeps_every_row(source, target, tmp_path):
	db, conn = source
	cur = conn.cursor()
	counts = provision.relation_counts(cur)
	results = search(cur)
	assert len(results) == 10
	conn.rollback()
	dump = tmp_path / "site.sql.gz"
	pg_dump(db, dump)

	# Cauldron's step: a superuser prepares the empty database, then the site's user loads the dump.
	with target.admin().cursor() as admin:
		assert provision.prepare_restore(admin, provision.dump_extensions(dump)) == ["vector"]
	psql_load(target, dump)
	with target.admin().cursor() as admin:
		provision.finish_restore(admin)

	restored = target.connect()
	rcur = restored.cursor()
	result = provision.provision(rcur)
	views.create_views(rcur)
	restored.commit()
	assert {o.status for o in result.outcomes} == {"unchanged"}
	assert provision.relation_counts(rcur) == counts
	assert search(rcur) == results
	verification = audit.verify(rcur)
	assert verification.ok, str(verification)
	assert verification.rows_checked == 25
	assert views.existing_views(rcur) == views.existing_views(cur)


def test_doctor_warns_about_a_pg_dump_older_than_the_server(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	server = capabilities.server_major(cur)
	assert capabilities.pg_dump_warning(cur, embedded._bin("pg_dump")) is None  # the server's own
	assert capabilities.client_major("pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)") == 15
	warning = capabilities.version_mismatch("pg_dump", "/usr/bin/pg_dump", 15, server)
	assert f"pg_dump 15, older than the server's PostgreSQL {server}" in warning
	assert "`bench backup` fails" in warning
	assert capabilities.version_mismatch("pg_dump", "/x/pg_dump", server + 1, server) is None
	assert "does not run" in capabilities.pg_dump_warning(cur, "/nonexistent/pg_dump")
