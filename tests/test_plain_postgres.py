"""The machine's own PostgreSQL (15 here), which has no pgvector package at all: the install degrades
cleanly, says what is missing, and half-creates nothing."""

import os
from datetime import datetime, timezone

import psycopg2
import pytest
from conftest import drop_database, make_database

from cauldron.pg import provision, timeseries, vectors

PLAIN_DSN = os.environ.get("CAULDRON_PLAIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def plain_db():
	try:
		psycopg2.connect(PLAIN_DSN, connect_timeout=3).close()
	except psycopg2.OperationalError as e:
		pytest.skip(f"no plain PostgreSQL at {PLAIN_DSN} ({e}); set CAULDRON_PLAIN_DSN")
	database = make_database(PLAIN_DSN)
	yield database
	drop_database(database)


def test_without_the_pgvector_package_install_degrades_and_says_so(plain_db):
	conn = plain_db.connect()
	cur = conn.cursor()
	cur.execute("SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'")
	if cur.fetchone()[0]:
		pytest.skip("this server has pgvector; the degraded path needs one without it")

	result = provision.provision(cur)
	conn.commit()

	assert result.capabilities["vector"].status == "not available on this server"
	summary = result.summary()
	assert "Not on this server (install the OS package first): vector" in summary
	assert "Lore vector tables and semantic search are not created" in summary
	assert {o.step for o in result.by_status("skipped")} == {
		"vectors:lore.document_chunks",
		"vectors:lore.entity_embeddings",
		"lore:keyword_bm25",
		"vectors:lore.document_chunks.models",
		"vectors:lore.entity_embeddings.models",
		"vectors:lore.document_chunks.inline_embeddings",
	}
	cur.execute(
		"SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'lore'"
	)
	assert cur.fetchone()[0] == 0
	with pytest.raises(vectors.VectorsUnavailable):
		vectors.search_chunks(cur, [0.0] * 384)
	conn.rollback()

	# Everything that does not need pgvector works.
	now = datetime.now(timezone.utc)
	timeseries.write_metrics(cur, [(now, "doc.insert", 1, {"doctype": "ToDo"})])
	assert timeseries.refresh_rollups(cur) == 1
	cur.execute("SELECT sample_count FROM synapse.metrics_hourly")
	assert cur.fetchone()[0] == 1
	conn.commit()
	assert {o.status for o in provision.provision(cur).outcomes} == {"unchanged", "skipped"}
