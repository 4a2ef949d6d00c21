"""Lore's keyword leg: Okapi BM25 inside Postgres, over postings that triggers keep current.

Why not `ts_rank` / `ts_rank_cd`: they ignore how rare a term is, and `plainto_tsquery` /
`websearch_to_tsquery` AND every term (a natural question then matches nothing) and read " - " as
NOT. Here a question is split into lexemes by a text search configuration (stemming, stop words;
`english` unless set otherwise), every lexeme is OR-ed, and chunks are scored with BM25:

	score(d, q) = sum over lexemes t of q:  qtf(t) * idf(t) * tf(t,d) * (k1 + 1) / (tf(t,d) + k1 * (1 - b + b * dl(d) / avgdl))
	idf(t) = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))          (Lucene's, never negative)

The design: an inverted index as a table, `lore.keyword_postings` (term, chunk_id, tf, dl, doc_key),
one row per distinct lexeme of a chunk, under a covering primary key on (term, chunk_id). Scoring a
question reads only the postings of its lexemes, by index-only scans, and adds them up per chunk;
nothing is computed per chunk that the question does not touch.

- df(t) is counted from the postings at query time (the same index range the scoring reads), so it is
  exact for the query's snapshot and needs no per-term counter: a counter row per term would be a
  hot row that concurrent ingests of overlapping vocabulary wait on (and, at Frappe's REPEATABLE READ,
  fail on with serialization errors).
- N and the total length come from `lore.keyword_stats`, to which every statement on the chunks
  appends one delta row (no row is ever updated, so writers never wait on each other);
  `compact_statistics` folds the deltas into one row (a scheduled job).
- `dl` (the chunk's length in lexemes, stop words out) is stored in each posting so that scoring
  never visits the chunks table; `doc_key` (a 64-bit hash of the chunk's document id) lets a
  permission pre-filter on documents be applied to the postings themselves.
- Statement-level AFTER triggers with transition tables on lore.document_chunks (insert, update of
  content or document, delete, truncate) maintain postings and statistics in the writer's own
  transaction: what a search sees is always the committed chunks, never a stale index.

Rejected: BM25 weights in a pgvector `sparsevec` (the document side's weights depend on avgdl, so
they go stale as the corpus changes, and an exact scan of every chunk's sparse vector is slower
than reading a few postings lists); `ts_rank` over a GIN index (no idf; and a tsvector gives no term
frequency without unnesting every candidate's whole vector).

A posting's tf is capped by the tsvector's 256 positions per lexeme; chunks are far shorter than
that matters for. Deleting a chunk tokenizes its old content again to find its postings (no second
index on chunk_id); `set_config` and `rebuild` rebuild everything when the configuration changes.
"""

from psycopg2 import sql

from cauldron.pg import CauldronDBError
from cauldron.pg.ledger import Step

DEFAULT_CONFIG = "english"
K1 = 1.2
B = 0.75
MAX_QUERY_CHARS = 10_000

# Lexemes of one text, with their frequencies: unnest(tsvector) gives each lexeme once with its
# positions. (A tsvector made by to_tsvector always carries positions.)
STEP_SQL = """
CREATE TABLE IF NOT EXISTS lore.keyword_settings (
	singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	config regconfig NOT NULL DEFAULT 'english'
);
INSERT INTO lore.keyword_settings DEFAULT VALUES ON CONFLICT DO NOTHING;

CREATE TABLE IF NOT EXISTS lore.keyword_postings (
	term text NOT NULL,
	chunk_id uuid NOT NULL,
	tf smallint NOT NULL,
	dl integer NOT NULL,
	model_key integer NOT NULL,
	doc_key bigint NOT NULL,
	CONSTRAINT keyword_postings_pkey PRIMARY KEY (term, chunk_id) INCLUDE (tf, dl, model_key, doc_key)
);
ALTER TABLE lore.keyword_postings SET (autovacuum_vacuum_scale_factor = 0.05);

CREATE TABLE IF NOT EXISTS lore.keyword_stats (
	model_key integer NOT NULL,
	chunks bigint NOT NULL,
	tokens bigint NOT NULL
);

CREATE OR REPLACE FUNCTION lore.keyword_doc_key(document_id text) RETURNS bigint
	LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
	RETURN hashtextextended(document_id, 0);

CREATE OR REPLACE FUNCTION lore.keyword_model_key(model text) RETURNS integer
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN hashtext(coalesce(model, ''));

-- Postings of a statement's rows whose text, document or model changed, and delta rows of
-- statistics per model. Each operation names only the transition tables it has.
CREATE OR REPLACE FUNCTION lore.keyword_chunks_changed() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
	cfg regconfig := (SELECT config FROM lore.keyword_settings);
	removed uuid[];
	added uuid[];
BEGIN
	IF TG_OP = 'DELETE' THEN
		SELECT array_agg(id) INTO removed FROM old_rows;
	ELSIF TG_OP = 'UPDATE' THEN
		SELECT array_agg(o.id) INTO removed FROM old_rows o WHERE NOT EXISTS (
			SELECT 1 FROM new_rows n WHERE n.id = o.id AND n.content = o.content
				AND n.document_id = o.document_id AND n.model = o.model);
		SELECT array_agg(n.id) INTO added FROM new_rows n WHERE NOT EXISTS (
			SELECT 1 FROM old_rows o WHERE o.id = n.id AND o.content = n.content
				AND o.document_id = n.document_id AND o.model = n.model);
	ELSE
		SELECT array_agg(id) INTO added FROM new_rows;
	END IF;
	IF removed IS NOT NULL THEN
		WITH gone AS (
			DELETE FROM lore.keyword_postings p
			USING (
				SELECT o.id, t.lexeme FROM old_rows o CROSS JOIN LATERAL unnest(to_tsvector(cfg, o.content)) t
				WHERE o.id = ANY(removed)
			) d
			WHERE p.term = d.lexeme AND p.chunk_id = d.id
			RETURNING p.chunk_id, p.dl, p.model_key
		)
		INSERT INTO lore.keyword_stats (model_key, chunks, tokens)
		SELECT k, sum(c), sum(t) FROM (
			SELECT lore.keyword_model_key(o.model) AS k, -1 AS c, 0 AS t FROM old_rows o WHERE o.id = ANY(removed)
			UNION ALL
			SELECT DISTINCT ON (chunk_id) model_key, 0, -dl FROM gone
		) x GROUP BY k;
	END IF;
	IF added IS NOT NULL THEN
		WITH changed AS (
			SELECT n.id, n.content, n.document_id, lore.keyword_model_key(n.model) AS model_key
			FROM new_rows n WHERE n.id = ANY(added)
		), terms AS (
			SELECT c.id, c.document_id, c.model_key, t.lexeme, cardinality(t.positions) AS tf
			FROM changed c CROSS JOIN LATERAL unnest(to_tsvector(cfg, c.content)) t
		), posted AS (
			INSERT INTO lore.keyword_postings (term, chunk_id, tf, dl, model_key, doc_key)
			SELECT lexeme, id, tf, sum(tf) OVER (PARTITION BY id), model_key, lore.keyword_doc_key(document_id)
			FROM terms
			RETURNING tf, model_key
		)
		INSERT INTO lore.keyword_stats (model_key, chunks, tokens)
		SELECT k, sum(c), sum(t) FROM (
			SELECT model_key AS k, 1 AS c, 0 AS t FROM changed
			UNION ALL
			SELECT model_key, 0, tf FROM posted
		) x GROUP BY k;
	END IF;
	RETURN NULL;
END
$fn$;

CREATE OR REPLACE FUNCTION lore.keyword_chunks_truncated() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
	TRUNCATE lore.keyword_postings, lore.keyword_stats;
	RETURN NULL;
END
$fn$;

CREATE OR REPLACE FUNCTION lore.keyword_rebuild() RETURNS bigint LANGUAGE plpgsql AS $fn$
DECLARE
	cfg regconfig := (SELECT config FROM lore.keyword_settings);
	posted bigint;
BEGIN
	-- writers of chunks wait until the postings are whole again
	LOCK TABLE lore.document_chunks IN SHARE MODE;
	TRUNCATE lore.keyword_postings, lore.keyword_stats;
	INSERT INTO lore.keyword_postings (term, chunk_id, tf, dl, model_key, doc_key)
	SELECT t.lexeme, c.id, cardinality(t.positions), sum(cardinality(t.positions)) OVER (PARTITION BY c.id),
		lore.keyword_model_key(c.model), lore.keyword_doc_key(c.document_id)
	FROM lore.document_chunks c CROSS JOIN LATERAL unnest(to_tsvector(cfg, c.content)) t;
	GET DIAGNOSTICS posted = ROW_COUNT;
	INSERT INTO lore.keyword_stats (model_key, chunks, tokens)
	SELECT lore.keyword_model_key(c.model), count(*), coalesce(sum(p.tokens), 0)
	FROM lore.document_chunks c
		LEFT JOIN (SELECT chunk_id, min(dl) AS tokens FROM lore.keyword_postings GROUP BY chunk_id) p ON p.chunk_id = c.id
	GROUP BY 1;
	RETURN posted;
END
$fn$;

CREATE OR REPLACE TRIGGER keyword_chunks_inserted AFTER INSERT ON lore.document_chunks
	REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION lore.keyword_chunks_changed();
CREATE OR REPLACE TRIGGER keyword_chunks_updated AFTER UPDATE ON lore.document_chunks
	REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION lore.keyword_chunks_changed();
CREATE OR REPLACE TRIGGER keyword_chunks_deleted AFTER DELETE ON lore.document_chunks
	REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION lore.keyword_chunks_changed();
CREATE OR REPLACE TRIGGER keyword_chunks_truncated AFTER TRUNCATE ON lore.document_chunks
	FOR EACH STATEMENT EXECUTE FUNCTION lore.keyword_chunks_truncated();

-- chunks that were there before the triggers were (an existing site) get their postings now
DO $do$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM lore.keyword_stats) AND EXISTS (SELECT 1 FROM lore.document_chunks) THEN
		PERFORM lore.keyword_rebuild();
	END IF;
END
$do$
"""


def steps() -> list[Step]:
	# lore.document_chunks exists only where pgvector does
	return [Step("lore:keyword_bm25", STEP_SQL, frozenset({"vector"}))]


class KeywordSearchUnavailable(CauldronDBError):
	pass


def available(cur) -> bool:
	cur.execute("SELECT to_regclass('lore.keyword_postings') IS NOT NULL")
	return cur.fetchone()[0]


def _require(cur) -> None:
	if not available(cur):
		raise KeywordSearchUnavailable(
			"keyword search is not provisioned in this database (lore.keyword_postings is missing): "
			"it needs pgvector's lore.document_chunks; a superuser runs CREATE EXTENSION vector; then "
			"`bench --site SITE migrate` creates both"
		)


def query_text(text, what: str = "query") -> str:
	if not isinstance(text, str):
		raise CauldronDBError(f"{what} must be text, got {type(text).__name__}")
	if "\x00" in text:
		raise CauldronDBError(f"{what} contains a NUL character")
	if len(text) > MAX_QUERY_CHARS:
		raise CauldronDBError(f"{what} is {len(text)} characters; at most {MAX_QUERY_CHARS}")
	return text


def ctes(filtered_chunks: sql.Composable | None, readable_documents: sql.Composable | None) -> sql.Composable:
	"""The keyword leg as CTEs `keyword_terms` (the question's lexemes) and `keyword_leg` (id, score:
	the best %(keyword_limit)s chunks by BM25, best first). Parameters: %(text)s, %(model)s (the chunk
	set ranked: each model's chunks are a corpus of their own), %(k1)s, %(b)s, %(keyword_limit)s.

	`readable_documents` is a SELECT of readable document ids, applied to the postings through their
	doc_key (a pre-filter: every candidate is readable, the limit stays full); `filtered_chunks` a
	SELECT of the chunk ids that pass the other filters. The caller checks the document ids of the
	few rows it returns again exactly (a doc_key is a 64-bit hash)."""
	conditions = []
	if readable_documents is not None:
		conditions.append(
			sql.SQL("p.doc_key IN (SELECT lore.keyword_doc_key(r.id::text) FROM ({}) AS r(id))").format(
				readable_documents
			)
		)
	if filtered_chunks is not None:
		conditions.append(sql.SQL("p.chunk_id IN ({})").format(filtered_chunks))
	where = sql.SQL("WHERE ") + sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("")
	return sql.SQL(
		"""
	keyword_terms AS MATERIALIZED (
		SELECT t.lexeme AS term, cardinality(t.positions) AS qtf
		FROM unnest(to_tsvector((SELECT config FROM lore.keyword_settings), %(text)s)) t
	),
	keyword_corpus AS MATERIALIZED (
		SELECT greatest(sum(chunks), 1)::float8 AS n,
			greatest(sum(tokens)::float8 / greatest(sum(chunks), 1), 1) AS avgdl
		FROM lore.keyword_stats WHERE model_key = lore.keyword_model_key(%(model)s)
	),
	keyword_weights AS MATERIALIZED (
		SELECT q.term, q.qtf * ln(1 + (s.n - d.df + 0.5) / (d.df + 0.5)) * (%(k1)s::float8 + 1) AS weight,
			%(k1)s::float8 * (1 - %(b)s::float8) AS base, %(k1)s::float8 * %(b)s::float8 / s.avgdl AS per_token
		FROM keyword_terms q CROSS JOIN keyword_corpus s
			CROSS JOIN LATERAL (
				SELECT count(*) AS df FROM lore.keyword_postings p
				WHERE p.term = q.term AND p.model_key = lore.keyword_model_key(%(model)s)
			) d
		WHERE d.df > 0
	),
	keyword_leg AS MATERIALIZED (
		SELECT p.chunk_id AS id, sum(w.weight * p.tf / (p.tf + w.base + w.per_token * p.dl)) AS score
		FROM keyword_weights w JOIN lore.keyword_postings p
			ON p.term = w.term AND p.model_key = lore.keyword_model_key(%(model)s)
		{where}
		GROUP BY p.chunk_id
		ORDER BY score DESC, p.chunk_id
		LIMIT %(keyword_limit)s
	)"""
	).format(where=where)


def search(
	cur,
	text: str,
	limit: int = 10,
	readable_documents: sql.Composable | list | None = None,
	k1: float = K1,
	b: float = B,
	model: str | None = None,
) -> list[dict]:
	"""The best `limit` chunks for `text` by BM25, as {id, document_id, chunk_index, score}, best first.
	`readable_documents`: the document ids the caller may read (a list, or a SELECT of them); `model`:
	whose chunk set (default the active model's)."""
	_require(cur)
	params = {
		"text": query_text(text),
		"k1": float(k1),
		"b": float(b),
		"keyword_limit": int(limit),
		"model": model if model is not None else active_model(cur),
	}
	readable = None
	if isinstance(readable_documents, list | tuple):
		readable = sql.SQL("SELECT unnest(%(readable)s::text[])")
		params["readable"] = list(readable_documents)
	elif readable_documents is not None:
		readable = readable_documents
	recheck = sql.SQL("")
	if readable is not None:
		recheck = sql.SQL("WHERE c.document_id IN ({})").format(readable)
	cur.execute(
		sql.SQL(
			"""
		WITH {ctes}
		SELECT k.id, c.document_id, c.chunk_index, k.score
		FROM keyword_leg k JOIN lore.document_chunks c ON c.id = k.id
		{recheck}
		ORDER BY k.score DESC, k.id
		"""
		).format(ctes=ctes(None, readable), recheck=recheck),
		params,
	)
	return [
		{"id": str(row[0]), "document_id": row[1], "chunk_index": row[2], "score": row[3]}
		for row in cur.fetchall()
	]


def active_model(cur) -> str:
	"""The model whose chunks search ranks (cauldron.lore.ingest's active model; '' where there is none)."""
	try:
		from cauldron.lore.ingest import active_model as active
	except ImportError:
		return ""
	return active(cur) or ""


def statistics(cur, model: str = "") -> dict:
	"""{chunks, tokens, postings, terms} of one model's chunk set: N, the total length, and the
	index's size (counted from the postings: for tests and `doctor`, not for every search)."""
	_require(cur)
	cur.execute(
		"""
		SELECT coalesce(sum(chunks), 0), coalesce(sum(tokens), 0),
			(SELECT count(*) FROM lore.keyword_postings WHERE model_key = lore.keyword_model_key(%(model)s)),
			(SELECT count(DISTINCT term) FROM lore.keyword_postings
				WHERE model_key = lore.keyword_model_key(%(model)s))
		FROM lore.keyword_stats WHERE model_key = lore.keyword_model_key(%(model)s)
		""",
		{"model": model},
	)
	chunks, tokens, postings, terms = cur.fetchone()
	return {"chunks": int(chunks), "tokens": int(tokens), "postings": postings, "terms": terms}


def compact_statistics(cur) -> int:
	"""Fold the statistics' delta rows into one per model; returns how many rows were folded. Run it in a
	transaction of its own (a scheduled job): it deletes rows, so two at once under REPEATABLE READ
	would make one of them fail; an advisory lock makes the second one a no-op instead."""
	_require(cur)
	cur.execute("SELECT pg_try_advisory_xact_lock(hashtext('lore.keyword_stats'))")
	if not cur.fetchone()[0]:
		return 0
	cur.execute(
		"""
		WITH gone AS (DELETE FROM lore.keyword_stats RETURNING model_key, chunks, tokens),
		folded AS (
			INSERT INTO lore.keyword_stats (model_key, chunks, tokens)
			SELECT model_key, sum(chunks), sum(tokens) FROM gone GROUP BY model_key
		)
		SELECT count(*) FROM gone
		"""
	)
	return cur.fetchone()[0]


def get_config(cur) -> str:
	_require(cur)
	cur.execute("SELECT config::text FROM lore.keyword_settings")
	return cur.fetchone()[0]


def set_config(cur, config: str) -> int:
	"""Use the text search configuration `config` (english, simple, german, ...: one that
	`\\dF` lists) for stemming and stop words, and rebuild every posting with it; returns the
	postings made. A rebuild reads every chunk and blocks chunk writers until it commits."""
	_require(cur)
	if not isinstance(config, str) or not config:
		raise CauldronDBError("text search configuration must be a name such as 'english'")
	cur.execute(
		"""
		SELECT c.oid FROM pg_ts_config c JOIN pg_namespace n ON n.oid = c.cfgnamespace
		WHERE n.nspname || '.' || c.cfgname = %(name)s OR (c.cfgname = %(name)s AND pg_ts_config_is_visible(c.oid))
		""",
		{"name": config},
	)
	found = cur.fetchone()
	if found is None:
		raise CauldronDBError(f"there is no text search configuration {config!r} in this database")
	cur.execute("UPDATE lore.keyword_settings SET config = %s::oid::regconfig", (found[0],))
	return rebuild(cur)


def rebuild(cur) -> int:
	"""Every posting made again from the chunks (after a change of configuration or dictionaries)."""
	_require(cur)
	cur.execute("SELECT lore.keyword_rebuild()")
	return cur.fetchone()[0]
