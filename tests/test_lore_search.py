"""Lore search on the real server: the BM25 keyword leg against a reference implementation, its
statistics kept by triggers, hybrid fusion, filters and the permission pre-filter."""

import math
import random
from datetime import datetime

import bm25s
import pytest
from psycopg2 import sql

from cauldron.lore import keyword, search
from cauldron.pg import CauldronDBError, vectors
from cauldron.pg.vectors import Chunk

CORPUS = {
	"invoices": [
		"Sales invoices are posted to the general ledger when they are submitted.",
		"A credit note cancels part of an invoice and reverses its ledger entries.",
	],
	"payroll": [
		"Payroll runs every month; salary slips are created for each employee.",
		"Employees submit expense claims, which payroll reimburses with the salary.",
	],
	"stock": [
		"Stock entries move items between warehouses and value them at moving average.",
		"A delivery note takes items out of the warehouse; the invoice bills them.",
		"Reorder levels raise material requests when stock in a warehouse runs low.",
	],
	"tax": [
		"Tax templates add sales tax and VAT rows to every invoice and order.",
		"Withholding tax is deducted from supplier payments above a threshold.",
	],
	"cooking": [
		"Stir the sauce slowly; a roux burns quickly when the heat is high.",
		"Bread dough rises twice: once after kneading and once shaped in the tin.",
	],
}


def unit(dimension, *hot):
	v = [0.0] * dimension
	for i in hot:
		v[i] = 1.0
	return v


def load(cur, corpus=CORPUS, embedding=None, metadata=None):
	for n, (document, texts) in enumerate(corpus.items()):
		vectors.replace_document_chunks(
			cur,
			document,
			[
				Chunk(
					i,
					text,
					embedding(document, i) if embedding else unit(384, n),
					metadata(document, i) if metadata else {"topic": document},
				)
				for i, text in enumerate(texts)
			],
		)


def lexemes(cur, text):
	"""The lexemes of `text` as the keyword leg sees them: the reference gets the same tokens."""
	cur.execute(
		"""
		SELECT coalesce(array_agg(t.lexeme ORDER BY p.pos), '{}')
		FROM unnest(to_tsvector('english', %s)) t CROSS JOIN LATERAL unnest(t.positions) p(pos)
		""",
		(text,),
	)
	return cur.fetchone()[0]


def reference_scores(cur, corpus, query):
	"""bm25s (Lucene's BM25, k1 1.2, b 0.75; float32) over the same lexemes, times (k1 + 1), which bm25s
	leaves out: {(document, chunk_index): score} for every chunk scoring above zero."""
	keys = [(doc, i) for doc, texts in corpus.items() for i in range(len(texts))]
	tokens = [lexemes(cur, corpus[doc][i]) for doc, i in keys]
	retriever = bm25s.BM25(method="lucene", k1=1.2, b=0.75)
	retriever.index(tokens, show_progress=False)
	scores = retriever.get_scores(lexemes(cur, query)) * 2.2
	return {key: float(s) for key, s in zip(keys, scores, strict=True) if s > 0}


def keyword_scores(cur, query, limit=100, **kwargs):
	return {
		(r["document_id"], r["chunk_index"]): r["score"] for r in keyword.search(cur, query, limit, **kwargs)
	}


QUERIES = (
	"how is an invoice posted to the ledger?",
	"salary of employees",
	"warehouse stock items - reorder",
	"tax on invoices",
	"sauce",
	"what happens when stock runs low in a warehouse and an invoice bills the delivery",
)


def test_bm25_scores_match_the_reference(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	load(cur)
	for query in QUERIES:
		ours = keyword_scores(cur, query)
		reference = reference_scores(cur, CORPUS, query)
		assert ours.keys() == reference.keys(), query
		for key, score in reference.items():
			assert ours[key] == pytest.approx(score, rel=1e-6), (query, key)
		ranked = [key for key, _ in sorted(ours.items(), key=lambda kv: -kv[1])]
		assert ranked == sorted(reference, key=lambda k: -reference[k]), query


def test_terms_are_or_ed_and_a_dash_is_not_a_negation(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	load(cur)
	# no chunk holds both words: AND semantics would find nothing
	found = keyword_scores(cur, "bread payroll")
	assert {("cooking", 1), ("payroll", 0), ("payroll", 1)} == set(found)
	# " - " and a leading "-" are text, not NOT: the sauce chunk is still found
	assert ("cooking", 0) in keyword_scores(cur, "roux - sauce")
	assert ("cooking", 0) in keyword_scores(cur, "-sauce")
	# only stop words and punctuation: nothing to look for, no error
	assert keyword_scores(cur, "what is the & | ! ( ) :*") == {}
	assert keyword_scores(cur, "") == {}


def test_rare_terms_weigh_more_than_common_ones(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	load(cur)
	# "invoice" is in four chunks, "roux" in one: BM25 puts the roux chunk first; ts_rank ranks an
	# invoice chunk at least as high, as it knows nothing of how rare a term is
	first = keyword.search(cur, "invoice roux", 3)[0]
	assert (first["document_id"], first["chunk_index"]) == ("cooking", 0)
	cur.execute(
		"""
		SELECT document_id, chunk_index,
			ts_rank(to_tsvector('english', content), to_tsquery('english', 'invoice | roux'))
		FROM lore.document_chunks
		"""
	)
	ts_rank = {(d, i): r for d, i, r in cur.fetchall()}
	assert max(r for key, r in ts_rank.items() if key != ("cooking", 0)) >= ts_rank[("cooking", 0)]


def test_statistics_follow_inserts_updates_and_deletes(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	load(cur)
	total = sum(len(lexemes(cur, t)) for texts in CORPUS.values() for t in texts)
	stats = keyword.statistics(cur)
	assert (stats["chunks"], stats["tokens"]) == (11, total)

	changed = dict(CORPUS)
	changed["cooking"] = ["Stir the sauce slowly and season the sauce with salt."]
	vectors.replace_document_chunks(cur, "cooking", [Chunk(0, changed["cooking"][0], unit(384, 4))])
	total = sum(len(lexemes(cur, t)) for texts in changed.values() for t in texts)
	assert (keyword.statistics(cur)["chunks"], keyword.statistics(cur)["tokens"]) == (10, total)
	for query in ("sauce salt", "bread dough", "invoice"):
		assert keyword_scores(cur, query) == pytest.approx(reference_scores(cur, changed, query)), query

	cur.execute("DELETE FROM lore.document_chunks WHERE document_id = 'tax'")
	del changed["tax"]
	assert keyword_scores(cur, "tax invoice") == pytest.approx(reference_scores(cur, changed, "tax invoice"))
	# an update that leaves the text alone (a new embedding) touches no posting
	cur.execute("SELECT count(*) FROM lore.keyword_stats")
	rows = cur.fetchone()[0]
	cur.execute("UPDATE lore.document_chunks SET metadata = '{\"x\": 1}'")
	cur.execute("SELECT count(*) FROM lore.keyword_stats")
	assert cur.fetchone()[0] == rows

	# folding the deltas changes no figure
	before = keyword.statistics(cur)
	assert keyword.compact_statistics(cur) == rows
	assert keyword.statistics(cur) == before
	cur.execute("SELECT count(*) FROM lore.keyword_stats")
	assert cur.fetchone()[0] == 1

	# the postings are exactly those a rebuild makes
	cur.execute("SELECT term, chunk_id, tf, dl, doc_key FROM lore.keyword_postings ORDER BY 1, 2")
	kept = cur.fetchall()
	keyword.rebuild(cur)
	cur.execute("SELECT term, chunk_id, tf, dl, doc_key FROM lore.keyword_postings ORDER BY 1, 2")
	assert cur.fetchall() == kept
	assert keyword.statistics(cur) == before

	cur.execute("TRUNCATE lore.document_chunks")
	assert keyword.statistics(cur) == {"chunks": 0, "tokens": 0, "postings": 0, "terms": 0}


def test_chunks_made_before_provisioning_get_postings(db, settings):
	"""A site that had chunks before this step existed: the step indexes them."""
	from cauldron.pg import ledger, provision

	conn = db.connect()
	cur = conn.cursor()
	cur.execute("CREATE SCHEMA lore")
	for step in vectors.steps(384):
		cur.execute(step.sql)
	vectors.replace_document_chunks(cur, "old", [Chunk(0, "an invoice from before", None)])
	provision.provision(cur, settings)
	assert keyword.statistics(cur)["chunks"] == 1
	assert keyword_scores(cur, "invoice") != {}
	assert ledger.missing_objects(cur, keyword.steps()[0].objects) == []


def test_text_search_configuration_is_a_setting(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	load(cur)
	assert keyword.get_config(cur) == "english"
	assert keyword_scores(cur, "the") == {}  # a stop word in english
	keyword.set_config(cur, "simple")
	assert keyword.get_config(cur) == "simple"
	assert len(keyword_scores(cur, "the")) > 0  # simple keeps every word, and stems none
	assert set(keyword_scores(cur, "invoices")) == {("invoices", 0)}  # "invoice" no longer matches
	with pytest.raises(CauldronDBError, match="no text search configuration 'klingon'"):
		keyword.set_config(cur, "klingon")


def test_bad_query_text_is_a_clear_error(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	with pytest.raises(CauldronDBError, match="must be text"):
		keyword.search(cur, 42)
	with pytest.raises(CauldronDBError, match="NUL"):
		keyword.search(cur, "a\x00b")
	with pytest.raises(CauldronDBError, match="at most"):
		keyword.search(cur, "x" * 20_000)


def hit_keys(hits):
	return [(h["document_id"], h["chunk_index"]) for h in hits]


def test_hybrid_fuses_the_two_legs_by_reciprocal_rank(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	load(cur)
	# the embedding points at the payroll chunks; the words at the invoices
	query, embedding = "invoice ledger", unit(384, 1)
	vector = search.search(cur, None, embedding, mode="vector", limit=11)
	words = search.search(cur, query, mode="keyword", limit=11)
	hybrid = search.search(cur, query, embedding, mode="hybrid", limit=11, rrf_k=60)

	assert set(hit_keys(vector)[:2]) == {("payroll", 0), ("payroll", 1)}
	assert hit_keys(words)[0] == ("invoices", 0)
	vector_rank = {key: i + 1 for i, key in enumerate(hit_keys(vector))}
	keyword_rank = {key: i + 1 for i, key in enumerate(hit_keys(words))}
	expected = {
		key: (1 / (60 + vector_rank[key]) if key in vector_rank else 0)
		+ (1 / (60 + keyword_rank[key]) if key in keyword_rank else 0)
		for key in vector_rank.keys() | keyword_rank.keys()
	}
	assert [h["score"] for h in hybrid] == pytest.approx(sorted(expected.values(), reverse=True))
	for hit in hybrid:
		key = (hit["document_id"], hit["chunk_index"])
		assert hit["score"] == pytest.approx(expected[key])
		assert hit["vector_rank"] == vector_rank.get(key)
		assert hit["keyword_rank"] == keyword_rank.get(key)
	# a chunk both legs like beats one only a leg likes
	top = hybrid[0]
	assert top["vector_rank"] is not None and top["keyword_rank"] is not None
	assert vector[0]["vector_distance"] == pytest.approx(0.0, abs=1e-6)
	assert vector[0]["score"] == pytest.approx(1.0)
	assert words[0]["keyword_score"] == words[0]["score"] > words[1]["score"]


def test_highlights_mark_the_matched_words_and_escape_the_text(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	vectors.replace_document_chunks(
		cur, "html", [Chunk(0, "<script>alert(1)</script> when 2 < 3 & invoices are credited", unit(384, 0))]
	)
	hit = search.search(cur, "invoice", mode="keyword")[0]
	assert "<mark>invoices</mark>" in hit["highlight"]
	assert "&amp;" in hit["highlight"] and "&lt;" in hit["highlight"]
	assert "<" not in hit["highlight"].replace("<mark>", "").replace("</mark>", "")
	assert hit["content"].startswith("<script>")  # the content itself is returned as stored
	assert search.search(cur, "invoice", mode="keyword", highlight=False)[0]["highlight"] is None


def test_filters_apply_to_both_legs(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	sources = {"invoices": "erp", "payroll": "hr", "stock": "erp", "tax": "erp", "cooking": "web"}
	load(
		cur,
		metadata=lambda doc, i: {
			"source": sources[doc],
			"doctype": "Item" if doc == "stock" else "Note",
			"i": i,
		},
	)
	cur.execute("UPDATE lore.document_chunks SET created_at = '2024-01-01' WHERE document_id = 'tax'")
	query, embedding = "invoice warehouse salary sauce tax", unit(384, 0, 1, 2, 3, 4)

	def found(mode, **filters):
		return set(
			hit_keys(
				search.search(cur, query, embedding, mode=mode, limit=20, filters=search.Filters(**filters))
			)
		)

	for mode in search.MODES:
		assert {d for d, _ in found(mode, sources=["erp"])} == {"invoices", "stock", "tax"}
		assert {d for d, _ in found(mode, sources=["hr", "web"])} == {"payroll", "cooking"}
		assert {d for d, _ in found(mode, doctypes=["Item"])} == {"stock"}
		# no word of the query is in the bread chunk: the keyword leg alone does not find it
		unmatched = {("cooking", 1)} if mode == "keyword" else set()
		assert found(mode, metadata={"i": 1}) == {(d, 1) for d in CORPUS} - unmatched
		assert {d for d, _ in found(mode, documents=["tax", "cooking"])} == {"tax", "cooking"}
		assert {d for d, _ in found(mode, until=datetime(2025, 1, 1))} == {"tax"}
		assert "tax" not in {d for d, _ in found(mode, since=datetime(2025, 1, 1))}
		assert found(mode, where=sql.SQL("c.chunk_index = 2")) == {("stock", 2)}
	with pytest.raises(CauldronDBError, match="metadata filter must be an object"):
		search.search(cur, "x", mode="keyword", filters=search.Filters(metadata="i=1"))
	with pytest.raises(CauldronDBError, match="sources must be a list"):
		search.search(cur, "x", mode="keyword", filters=search.Filters(sources="erp"))


def test_modes_and_their_inputs(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	with pytest.raises(CauldronDBError, match="unknown search mode 'fuzzy'"):
		search.search(cur, "x", unit(384, 0), mode="fuzzy")
	with pytest.raises(CauldronDBError, match="needs the query's embedding"):
		search.search(cur, "x", mode="hybrid")
	with pytest.raises(CauldronDBError, match="needs the query's text"):
		search.search(cur, None, unit(384, 0), mode="keyword")
	with pytest.raises(CauldronDBError, match="query embedding has 3 dimensions"):
		search.search(cur, "x", [1, 2, 3], mode="hybrid")
	assert search.search(cur, "nothing indexed yet", unit(384, 0)) == []


DOCUMENTS = 200
CHUNKS_PER_DOCUMENT = 5


def many(cur, rng):
	"""1,000 chunks with random unit vectors and words, HNSW and postings both in play."""
	words = [f"w{n}" for n in range(300)]
	embeddings = {}
	for d in range(DOCUMENTS):
		chunks = []
		for i in range(CHUNKS_PER_DOCUMENT):
			v = [rng.gauss(0, 1) for _ in range(384)]
			norm = math.sqrt(sum(x * x for x in v))
			embeddings[(f"doc-{d:03}", i)] = [x / norm for x in v]
			text = " ".join(rng.choice(words) for _ in range(20))
			chunks.append(Chunk(i, text, embeddings[(f"doc-{d:03}", i)]))
		vectors.replace_document_chunks(cur, f"doc-{d:03}", chunks)
	cur.execute("ANALYZE lore.document_chunks")
	return embeddings


def exact_nearest(embeddings, query, readable, k):
	distance = {key: 1 - sum(a * b for a, b in zip(v, query, strict=True)) for key, v in embeddings.items()}
	return sorted((key for key in distance if key[0] in readable), key=distance.get)[:k]


def test_permission_prefilter_keeps_k_results_when_readable_documents_are_rare(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	rng = random.Random(7)
	embeddings = many(cur, rng)
	cur.execute('CREATE TABLE "tabLore Document" (name varchar(140) PRIMARY KEY, owner varchar(140))')
	owners = {f"doc-{d:03}": ("alice" if d % 10 == 3 else "bob") for d in range(DOCUMENTS)}
	cur.execute(
		'INSERT INTO "tabLore Document" SELECT * FROM unnest(%s::text[], %s::text[])',
		(list(owners), list(owners.values())),
	)
	readable_ids = sorted(d for d, o in owners.items() if o == "alice")  # 10% of the documents
	as_subquery = sql.SQL('SELECT name FROM "tabLore Document" WHERE owner = {}').format(sql.Literal("alice"))

	for _ in range(5):
		query = embeddings[(f"doc-{rng.randrange(DOCUMENTS):03}", 0)]
		# what a post-filter gets: the nearest 10 of all, of which about one is readable
		post = [h for h in vectors.search_chunks(cur, query, limit=10) if h["document_id"] in readable_ids]
		assert len(post) < 10
		text = " ".join(rng.choice([f"w{n}" for n in range(300)]) for _ in range(3))
		for readable in (readable_ids, as_subquery):
			hits = search.search(cur, text, query, mode="vector", limit=10, readable=readable)
			assert hit_keys(hits) == exact_nearest(embeddings, query, set(readable_ids), 10)
			for mode in ("keyword", "hybrid"):
				hits = search.search(cur, text, query, mode=mode, limit=10, readable=readable)
				assert len(hits) == 10 and {h["document_id"] for h in hits} <= set(readable_ids), mode
			everything = search.search(cur, text, mode="keyword", limit=1000)
			expected = [
				(h["document_id"], h["chunk_index"]) for h in everything if h["document_id"] in readable_ids
			]
			assert (
				hit_keys(search.search(cur, text, mode="keyword", limit=10, readable=readable))
				== expected[:10]
			)

	# one readable document of 200: too rare for the iterative scan's budget, ranked exactly instead
	cur.execute("SET LOCAL hnsw.max_scan_tuples = 50")
	query = embeddings[("doc-000", 0)]
	hits = search.search(cur, None, query, mode="vector", limit=5, readable=["doc-123"])
	assert hit_keys(hits) == exact_nearest(embeddings, query, {"doc-123"}, 5)
	assert search.search(cur, None, query, mode="vector", limit=5, readable=[]) == []


def test_legs_compare_only_the_active_model(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	load(cur)
	# the column the ingest pipeline adds; until then search takes the model as a parameter
	cur.execute("ALTER TABLE lore.document_chunks ADD COLUMN IF NOT EXISTS model text")
	cur.execute(
		"UPDATE lore.document_chunks SET model = CASE WHEN document_id = 'tax' THEN 'new' ELSE 'old' END"
	)
	old = search.search(cur, None, unit(384, 3), mode="vector", limit=20, model="old")
	assert "tax" not in {h["document_id"] for h in old} and len(old) == 9
	new = search.search(cur, None, unit(384, 3), mode="vector", limit=20, model="new")
	assert {h["document_id"] for h in new} == {"tax"}
	# the keyword leg too: each model's chunk set is a corpus of its own, with its own statistics
	assert {h["document_id"] for h in search.search(cur, "tax invoice", mode="keyword", model="new")} == {
		"tax"
	}
	assert "tax" not in {
		h["document_id"] for h in search.search(cur, "tax invoice", mode="keyword", model="old")
	}
	assert keyword.statistics(cur, "new")["chunks"] == 2 and keyword.statistics(cur, "old")["chunks"] == 9
	assert keyword.statistics(cur, "")["chunks"] == 0
	# the same text under two models (a re-embedding in progress) is not found twice
	cur.execute(
		"""INSERT INTO lore.document_chunks (document_id, chunk_index, content, model)
		SELECT document_id, chunk_index, content, 'new' FROM lore.document_chunks WHERE model = 'old'"""
	)
	hits = search.search(cur, "invoice", mode="keyword", model="old", limit=50)
	assert len(hits) == len({(h["document_id"], h["chunk_index"]) for h in hits}) == 3


class Recording:
	"""A cursor that keeps every statement it ran (with its parameters), to EXPLAIN the search's own."""

	def __init__(self, cur):
		self.cur = cur
		self.statements = []

	def execute(self, statement, params=None):
		self.statements.append((statement, params))
		return self.cur.execute(statement, params)

	def __getattr__(self, name):
		return getattr(self.cur, name)


def executed_plan(cur, mode, readable, query, text=None, limit=10):
	"""(hits, the plan of the search's main statement as it ran: EXPLAIN ANALYZE, in the same
	transaction, after the search set its HNSW options)."""
	recording = Recording(cur)
	hits = search.search(recording, text, query, mode=mode, limit=limit, readable=readable)
	statement, params = recording.statements[-1]
	cur.execute(sql.SQL("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) ") + statement, params)
	return hits, "\n".join(row[0] for row in cur.fetchall())


def branch_ran(plan: str, marker: str) -> bool:
	"""Whether the plan node named by `marker` ran (EXPLAIN ANALYZE says `never executed` otherwise)."""
	lines = [line for line in plan.splitlines() if marker in line]
	assert lines, f"{marker!r} is not in the plan:\n{plan}"
	return any("never executed" not in line for line in lines)


HNSW_SCAN = "Index Scan using idx_document_chunks_embedding"
EXACT_SCAN = "Index Scan using uq_document_chunks_model_chunk"


def test_permission_prefilter_ranks_few_readable_chunks_exactly_and_walks_the_graph_for_many(
	provisioned, monkeypatch
):
	_db, conn = provisioned
	cur = conn.cursor()
	rng = random.Random(11)
	embeddings = many(cur, rng)
	rare = [f"doc-{d:03}" for d in range(DOCUMENTS) if d % 10 == 3]  # 100 chunks of 1,000
	everyone = [f"doc-{d:03}" for d in range(DOCUMENTS)]
	# threshold sqrt(candidates * chunks * ratio): sqrt(10 * 1,000 * 90) = 949 readable chunks
	default_ratio = search.EXACT_COST_RATIO
	monkeypatch.setattr(search, "EXACT_MIN_CHUNKS", 0)
	# 1,000 rows are few enough for the planner to sort them all: it takes the index, as at 100,000
	cur.execute("SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off")
	for _ in range(3):
		query = embeddings[(f"doc-{rng.randrange(DOCUMENTS):03}", 1)]
		hits, plan = executed_plan(cur, "vector", rare, query)
		assert branch_ran(plan, EXACT_SCAN) and not branch_ran(plan, HNSW_SCAN)
		assert hit_keys(hits) == exact_nearest(embeddings, query, set(rare), 10)

		hits, plan = executed_plan(cur, "vector", everyone, query)
		assert branch_ran(plan, HNSW_SCAN) and not branch_ran(plan, EXACT_SCAN)
		assert len(hits) == 10
		assert len(set(hit_keys(hits)) & set(exact_nearest(embeddings, query, set(everyone), 10))) >= 8

	# the graph under a selective filter still fills k with readable chunks (pgvector's iterative scan)
	monkeypatch.setattr(search, "EXACT_COST_RATIO", 0.001)
	query = embeddings[("doc-042", 0)]
	for mode in ("vector", "hybrid"):
		hits, plan = executed_plan(cur, mode, rare, query, text="w1 w2 w3")
		assert branch_ran(plan, HNSW_SCAN) and not branch_ran(plan, EXACT_SCAN), mode
		assert len(hits) == 10 and {h["document_id"] for h in hits} <= set(rare), mode
	# a SELECT of readable documents that names a document twice, or none, changes nothing
	twice = sql.SQL("SELECT d FROM unnest({}::text[]) d").format(sql.Literal([*rare, *rare, None]))
	monkeypatch.setattr(search, "EXACT_COST_RATIO", default_ratio)
	assert hit_keys(search.search(cur, None, query, mode="vector", readable=twice)) == exact_nearest(
		embeddings, query, set(rare), 10
	)


def test_the_readable_select_runs_once_per_search(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	load(cur)
	cur.execute("CREATE SEQUENCE permission_checks")
	cur.execute('CREATE TABLE "tabLore Document" (name varchar(140) PRIMARY KEY, owner varchar(140))')
	cur.execute(
		"""INSERT INTO "tabLore Document" VALUES ('invoices', 'alice'), ('payroll', 'bob'),
		('stock', 'alice'), ('tax', 'bob'), ('cooking', 'bob')"""
	)
	# a permission query that counts its runs: nextval is evaluated after the cheaper owner test, once
	# for each of the two readable documents each time the SELECT runs
	readable = sql.SQL(
		"""SELECT name FROM "tabLore Document" WHERE nextval('permission_checks') > 0 AND owner = 'alice'"""
	)
	for mode in search.MODES:
		cur.execute("SELECT setval('permission_checks', 1, false)")
		hits = search.search(cur, "invoice warehouse", unit(384, 0), mode=mode, limit=3, readable=readable)
		assert hits and {h["document_id"] for h in hits} <= {"invoices", "stock"}, mode
		cur.execute("SELECT last_value FROM permission_checks")
		assert cur.fetchone()[0] == 2, mode


def test_embeddings_are_kept_in_the_row(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	cur.execute(
		"SELECT attstorage FROM pg_attribute WHERE attrelid = 'lore.document_chunks'::regclass"
		" AND attname = 'embedding'"
	)
	assert cur.fetchone()[0] == "m"
	rng = random.Random(3)
	text = " ".join(f"word{rng.randrange(50)}" for _ in range(120))  # ~900 characters
	vectors.replace_document_chunks(
		cur, "long", [Chunk(i, text, [rng.gauss(0, 1) for _ in range(384)]) for i in range(20)]
	)
	# chunk and vector together pass the 2 kB TOAST threshold; the text is compressed, the vector stays
	cur.execute(
		"SELECT pg_relation_size(reltoastrelid) FROM pg_class WHERE oid = 'lore.document_chunks'::regclass"
	)
	assert cur.fetchone()[0] == 0  # nothing went out of line
	cur.execute("SELECT min(pg_column_size(embedding)) FROM lore.document_chunks")
	assert cur.fetchone()[0] == 4 * 384 + 8
