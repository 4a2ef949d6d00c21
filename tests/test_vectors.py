import psycopg2
import pytest

from cauldron.pg import CauldronDBError, provision, vectors
from cauldron.pg.vectors import Chunk, VectorDimensionError, VectorsUnavailable


def unit(dimension, *hot):
	"""A vector with 1.0 at the given positions: cosine-near to vectors sharing them."""
	v = [0.0] * dimension
	for i in hot:
		v[i] = 1.0
	return v


def test_search_returns_nearest_chunks_in_order(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	vectors.replace_document_chunks(
		cur,
		"doc-a",
		[
			Chunk(0, "about invoices", unit(384, 0), {"lang": "en"}),
			Chunk(1, "about invoices and taxes", unit(384, 0, 1), {"lang": "de"}),
			Chunk(2, "about payroll", unit(384, 5), {"lang": "en"}),
		],
	)
	results = vectors.search_chunks(cur, unit(384, 0), limit=2)
	assert [(r["document_id"], r["chunk_index"]) for r in results] == [("doc-a", 0), ("doc-a", 1)]
	assert results[0]["distance"] == pytest.approx(0.0, abs=1e-6)
	assert results[0]["distance"] <= results[1]["distance"]

	cur.execute("SELECT current_setting('hnsw.iterative_scan'), current_setting('hnsw.ef_search')")
	assert cur.fetchone() == ("off", "100")

	filtered = vectors.search_chunks(cur, unit(384, 0), limit=5, metadata_filter={"lang": "en"})
	assert [r["chunk_index"] for r in filtered] == [0, 2]
	cur.execute("SELECT current_setting('hnsw.iterative_scan')")
	assert cur.fetchone()[0] == "relaxed_order"  # pgvector 0.8: filtered scans keep walking the graph

	l2 = vectors.search_chunks(cur, unit(384, 5), limit=1, metric="l2")
	assert l2[0]["content"] == "about payroll"


def test_replacing_chunks_keeps_one_row_per_index(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	vectors.replace_document_chunks(cur, "doc", [Chunk(i, f"v1 {i}", unit(384, i)) for i in range(3)])
	vectors.replace_document_chunks(cur, "doc", [Chunk(0, "v2 0", unit(384, 0)), Chunk(1, "v2 1", None)])
	cur.execute("SELECT chunk_index, content FROM lore.document_chunks WHERE document_id = 'doc' ORDER BY 1")
	assert cur.fetchall() == [(0, "v2 0"), (1, "v2 1")]

	with pytest.raises(CauldronDBError, match="appears twice"):
		vectors.replace_document_chunks(cur, "doc", [Chunk(0, "a", None), Chunk(0, "b", None)])
	cur.execute("INSERT INTO lore.document_chunks (document_id, chunk_index, content) VALUES ('d', 0, 'x')")
	with pytest.raises(psycopg2.errors.UniqueViolation):
		cur.execute(
			"INSERT INTO lore.document_chunks (document_id, chunk_index, content) VALUES ('d', 0, 'y')"
		)


def test_wrong_dimension_and_bad_input_are_clear_errors(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	with pytest.raises(VectorDimensionError, match="has 3 dimensions; this site's embeddings have 384"):
		vectors.replace_document_chunks(cur, "doc", [Chunk(0, "x", [1, 2, 3])])
	with pytest.raises(VectorDimensionError, match="query embedding has 385 dimensions"):
		vectors.search_chunks(cur, unit(385, 0))
	with pytest.raises(VectorDimensionError, match="list of numbers"):
		vectors.search_chunks(cur, ["a"] * 384)
	with pytest.raises(VectorDimensionError, match="not finite"):
		vectors.set_entity_embedding(cur, "e", [float("inf")] * 384)
	with pytest.raises(CauldronDBError, match="unknown metric 'dot'"):
		vectors.search_chunks(cur, unit(384, 0), metric="dot")
	with pytest.raises(CauldronDBError, match="limit"):
		vectors.search_chunks(cur, unit(384, 0), limit=0)
	with pytest.raises(CauldronDBError, match="metadata filter must be an object"):
		vectors.search_chunks(cur, unit(384, 0), metadata_filter="lang=en")
	cur.execute("SELECT count(*) FROM lore.document_chunks")
	assert cur.fetchone()[0] == 0


def test_halfvec_index_above_2000_dimensions_is_used_by_search(db):
	conn = db.connect()
	cur = conn.cursor()
	provision.provision(cur, provision.Settings(embedding_dimension=3072))
	vectors.replace_document_chunks(
		cur, "big", [Chunk(i, f"chunk {i}", unit(3072, i, 3000)) for i in range(50)]
	)
	cur.execute("SET enable_seqscan = off")
	assert vectors.search_chunks(cur, unit(3072, 7, 3000), limit=1)[0]["chunk_index"] == 7
	cur.execute(
		"EXPLAIN SELECT id FROM lore.document_chunks ORDER BY (embedding::halfvec(3072)) <=> %s::halfvec(3072)"
		" LIMIT 1",
		(str(unit(3072, 7)),),
	)
	assert "idx_document_chunks_embedding" in " ".join(r[0] for r in cur.fetchall())


def test_entity_embeddings_upsert(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	vectors.set_entity_embedding(cur, "ENT-1", unit(384, 1))
	vectors.set_entity_embedding(cur, "ENT-1", unit(384, 2))
	cur.execute(
		"SELECT count(*), max(embedding <=> %s::vector) FROM lore.entity_embeddings", (str(unit(384, 2)),)
	)
	assert cur.fetchone() == (1, pytest.approx(0.0, abs=1e-6))


def test_search_without_pgvector_says_what_to_do(bare_db):
	conn = bare_db.connect()
	cur = conn.cursor()
	provision.provision(cur)
	with pytest.raises(VectorsUnavailable, match="CREATE EXTENSION vector"):
		vectors.search_chunks(cur, unit(384, 0))
