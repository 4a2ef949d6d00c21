import math

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


def test_zero_vectors_are_refused_where_the_metric_cannot_rank_them(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	zero = [0.0] * 384
	with pytest.raises(vectors.ZeroVector, match="chunk 0's embedding is a zero vector"):
		vectors.replace_document_chunks(cur, "doc", [Chunk(0, "x", zero)])
	with pytest.raises(vectors.ZeroVector, match="entity embedding is a zero vector"):
		vectors.set_entity_embedding(cur, "e", zero)
	# below float32's reach once squared: as zero to pgvector's cosine as 0.0 itself
	with pytest.raises(vectors.ZeroVector):
		vectors.set_entity_embedding(cur, "e", [1e-30] * 384)
	assert count(cur, "lore.document_chunks") == count(cur, "lore.entity_embeddings") == 0

	vectors.replace_document_chunks(cur, "doc", [Chunk(0, "x", unit(384, 0)), Chunk(1, "y", unit(384, 1))])
	for metric in ("cosine", "inner_product"):
		with pytest.raises(vectors.ZeroVector, match="query embedding is a zero vector"):
			vectors.search_chunks(cur, zero, metric=metric)
	by_l2 = vectors.search_chunks(cur, zero, metric="l2")  # the one metric that ranks by a zero vector
	assert [r["distance"] for r in by_l2] == [pytest.approx(1.0), pytest.approx(1.0)]


def test_a_zero_vector_stored_earlier_never_reaches_a_result_as_nan(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	vectors.replace_document_chunks(cur, "doc", [Chunk(0, "x", unit(384, 0))])
	cur.execute(
		"INSERT INTO lore.document_chunks (document_id, chunk_index, content, embedding)"
		" VALUES ('old', 0, 'zero', %s::vector)",
		(str([0.0] * 384),),
	)
	cur.execute("SET enable_indexscan = off")  # an exact scan meets the zero row
	results = vectors.search_chunks(cur, unit(384, 0), limit=10)
	assert [r["content"] for r in results] == ["x"]
	assert all(math.isfinite(r["distance"]) for r in results)


def test_components_stay_where_every_distance_is_finite(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	huge = unit(384, 0)
	huge[0] = 1e16
	with pytest.raises(VectorDimensionError, match="not finite or beyond ±1e\\+15"):
		vectors.replace_document_chunks(cur, "doc", [Chunk(0, "x", huge)])
	big = unit(384, *range(384))
	big = [1e15 * v for v in big]
	vectors.replace_document_chunks(cur, "doc", [Chunk(0, "x", big)])
	for metric in vectors.METRICS:
		(result,) = vectors.search_chunks(cur, [-v for v in big], metric=metric)
		assert math.isfinite(result["distance"]), metric


def test_halfvec_sites_refuse_what_rounds_to_zero_in_half_precision(db):
	conn = db.connect()
	cur = conn.cursor()
	provision.provision(cur, provision.Settings(embedding_dimension=2048))
	with pytest.raises(vectors.ZeroVector, match="below 1e-07"):
		vectors.replace_document_chunks(cur, "doc", [Chunk(0, "x", [1e-8] * 2048)])
	vectors.replace_document_chunks(cur, "doc", [Chunk(0, "x", [1e-7] * 2048)])
	(result,) = vectors.search_chunks(cur, [1e-7] * 2048)
	assert result["distance"] == pytest.approx(0.0, abs=1e-3)


def count(cur, table: str) -> int:
	cur.execute(f"SELECT count(*) FROM {table}")
	return cur.fetchone()[0]
