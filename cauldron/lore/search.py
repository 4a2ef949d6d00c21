"""Lore search: the HNSW vector leg, the BM25 keyword leg (cauldron.lore.keyword), and both fused by
Reciprocal Rank Fusion, in one statement, permission-aware inside the SQL.

	search(cur, "how do I cancel an invoice?", embedding=[...], mode="hybrid", limit=10,
		readable=sql.SQL('SELECT name FROM "tabLore Document" WHERE ...'), filters=Filters(...))

Modes: `vector` (cosine distance over the chunks' embeddings of the active model), `keyword` (BM25),
`hybrid` (each leg's best `candidates` chunks, fused: score = sum over legs of 1 / (rrf_k + rank),
rrf_k 60 by default). Every hit carries its parts: each leg's rank and score (cosine distance, BM25),
the fused score, the document id, and a highlight made by `ts_headline` (HTML-escaped text with the
matched words in <mark>...</mark>).

Permissions are a pre-filter, not a post-filter: `readable` (the document ids the caller may read: a
list, or better a SELECT of them that the Frappe glue builds from the user's permission query
conditions and User Permissions) is applied inside each leg, so the legs rank only readable chunks
and `limit` stays full however rare readable documents are. The SELECT runs once per search (a
materialized CTE that every leg reads). In the vector leg, whichever costs less: every readable chunk
ranked exactly (few readable chunks), or a hashed filter on the HNSW scan with pgvector 0.8's
iterative scan (`hnsw.iterative_scan = relaxed_order`: the scan keeps walking the graph until enough
rows pass), whose work grows as readable chunks get rarer (see `_permitted_vector_leg`); when the
graph walk still comes back short (a filter beyond `hnsw.max_scan_tuples`), the leg is run again
exactly. In the keyword leg it filters the postings by their document key. The few returned rows are
checked again against the readable documents exactly.

Filters (`Filters`): documents, knowledge sources and source DocTypes (the chunk metadata keys
`source` and `doctype`, which ingestion writes), metadata containment (jsonb @>, GIN-indexed), and
a date range on the chunk's `created_at`.

The vector leg compares only vectors of one model: where lore.document_chunks has a `model` column,
`model` (or, when not given, the active model that cauldron.lore.ingest names) restricts the leg to
that model's vectors, so a re-embedding in progress never mixes two models' distances.
"""

import html
import json
from dataclasses import dataclass, field
from datetime import date, datetime

from psycopg2 import sql

from cauldron.lore import keyword
from cauldron.pg import CauldronDBError, values, vectors

MODES = ("vector", "keyword", "hybrid")
DEFAULT_RRF_K = 60
MAX_LIMIT = 1000
# Under a permission filter the vector leg ranks every readable chunk exactly, instead of walking the
# HNSW graph, when (readable chunks)**2 <= candidates * chunks * EXACT_COST_RATIO (see
# _permitted_vector_leg), and always when at most EXACT_MIN_CHUNKS chunks are readable. Measured at
# 100,000 chunks of 384 dimensions (random unit vectors, one readable document's chunks together):
# both ways cost the same at about 10,000 readable chunks for 10 candidates and 19,000 for 40.
EXACT_COST_RATIO = 90
EXACT_MIN_CHUNKS = 2000
EXACT_SAMPLE = 64
SOURCE_KEY = "source"
DOCTYPE_KEY = "doctype"
# ts_headline's markers: private-use characters that text hardly ever holds, replaced by <mark> after
# the text is HTML-escaped (ts_headline itself escapes nothing).
START, STOP = "\ue000", "\ue001"
HEADLINE_OPTIONS = (
	f'StartSel={START}, StopSel={STOP}, MaxWords=35, MinWords=15, MaxFragments=2, FragmentDelimiter=" … "'
)


class SearchError(CauldronDBError):
	pass


@dataclass(frozen=True)
class Filters:
	documents: list[str] | None = None
	sources: list[str] | None = None
	doctypes: list[str] | None = None
	metadata: dict | None = None
	since: datetime | date | None = None
	until: datetime | date | None = None
	# Any further condition on the chunk (alias `c`, lore.document_chunks), built by the caller.
	where: sql.Composable | None = field(default=None, compare=False)

	def conditions(self, params: dict) -> list[sql.Composable]:
		found = []
		if self.documents is not None:
			params["f_documents"] = _names(self.documents, "documents")
			found.append(sql.SQL("c.document_id = ANY(%(f_documents)s::text[])"))
		for key, wanted, what in (
			(SOURCE_KEY, self.sources, "sources"),
			(DOCTYPE_KEY, self.doctypes, "doctypes"),
		):
			if wanted is not None:
				params[f"f_{what}"] = [json.dumps({key: v}) for v in _names(wanted, what)]
				found.append(sql.SQL("c.metadata @> ANY(%({})s::jsonb[])").format(sql.SQL(f"f_{what}")))
		if self.metadata is not None:
			if not isinstance(self.metadata, dict):
				raise SearchError(f"metadata filter must be an object, got {self.metadata!r}")
			values.check(self.metadata, "metadata filter")
			params["f_metadata"] = json.dumps(self.metadata)
			found.append(sql.SQL("c.metadata @> %(f_metadata)s::jsonb"))
		for name, value, op in (("since", self.since, ">="), ("until", self.until, "<")):
			if value is not None:
				if not isinstance(value, datetime | date):
					raise SearchError(f"{name} must be a date or datetime, got {value!r}")
				params[f"f_{name}"] = value
				found.append(sql.SQL("c.created_at {} %({})s").format(sql.SQL(op), sql.SQL(f"f_{name}")))
		if self.where is not None:
			found.append(sql.SQL("({})").format(self.where))
		return found


def _names(items, what: str) -> list[str]:
	if isinstance(items, str) or not isinstance(items, list | tuple):
		raise SearchError(f"{what} must be a list of names")
	for item in items:
		values.name(item, what)
	return list(items)


def _readable(readable, params: dict) -> sql.Composable | None:
	"""A SELECT of readable document ids, or None when everything is readable."""
	if readable is None:
		return None
	if isinstance(readable, sql.Composable):
		return readable
	params["readable"] = _names(readable, "readable documents")
	return sql.SQL("SELECT unnest(%(readable)s::text[])")


def search(
	cur,
	query: str | None = None,
	embedding=None,
	*,
	mode: str = "hybrid",
	limit: int = 10,
	filters: Filters | None = None,
	readable: sql.Composable | list | None = None,
	model: str | None = None,
	rrf_k: int = DEFAULT_RRF_K,
	candidates: int | None = None,
	highlight: bool = True,
	ef_search: int = vectors.DEFAULT_EF_SEARCH,
	k1: float = keyword.K1,
	b: float = keyword.B,
) -> list[dict]:
	"""The best `limit` chunks for `query` (text) and/or `embedding` (its vector from the active
	model), best first: {id, document_id, chunk_index, content, metadata, score, vector_rank,
	vector_distance, keyword_rank, keyword_score, highlight}.

	`readable`: the document ids the caller may read, as a list or as a `psycopg2.sql.Composable`
	SELECT of one column (None: all). `candidates`: how many chunks each leg of a hybrid search
	ranks (default max(4 * limit, 40))."""
	if mode not in MODES:
		raise SearchError(f"unknown search mode {mode!r}: use one of {', '.join(MODES)}")
	limit = values.whole_number(limit, "limit", 1, MAX_LIMIT)
	rrf_k = values.whole_number(rrf_k, "rrf_k", 1, 100_000)
	if query is not None:
		query = keyword.query_text(query)
	if mode in ("keyword", "hybrid") and not query:
		raise SearchError(f"a {mode} search needs the query's text")
	if mode in ("vector", "hybrid") and embedding is None:
		raise SearchError(f"a {mode} search needs the query's embedding (from the active model)")
	if candidates is None:
		candidates = max(4 * limit, 40) if mode == "hybrid" else limit
	candidates = values.whole_number(candidates, "candidates", limit, 10 * MAX_LIMIT)

	params: dict = {"limit": limit, "rrf_k": rrf_k, "text": query or "", "k1": float(k1), "b": float(b)}
	readable_select = _readable(readable, params)
	conditions = (filters or Filters()).conditions(params)
	uses_vectors = mode in ("vector", "hybrid")
	dimension, has_model, has_keyword = vectors.prepare_search(
		cur, max(ef_search, candidates), uses_vectors and (bool(conditions) or readable_select is not None)
	)
	if query is not None and not has_keyword:
		keyword._require(cur)  # raises KeywordSearchUnavailable with what to do
	params["model"] = model if model is not None else keyword.active_model(cur)
	# the caller's SELECT of readable documents runs once, into a CTE every leg reads
	readable_ref = sql.SQL("SELECT id FROM readable_documents") if readable_select is not None else None
	vector_conditions = list(conditions)
	if uses_vectors:
		params["embedding"] = vectors._vector(embedding, dimension, "query embedding")
		if has_model:
			# IS TRUE: not an index condition, so no btree with `model` in it (PostgreSQL 18 skip-scans
			# one) competes with the HNSW index for the ORDER BY on a table the planner thinks small
			vector_conditions.append(sql.SQL("(c.model = %(model)s) IS TRUE"))
		if readable_ref is not None:
			# IS TRUE keeps the sublink a hashed filter on the HNSW scan instead of a join
			vector_conditions.append(sql.SQL("(c.document_id IN ({})) IS TRUE").format(readable_ref))

	statement = _statement(
		mode,
		dimension,
		conditions,
		vector_conditions,
		readable_select,
		query is not None,
		highlight,
		exact=False,
		has_model=has_model,
	)
	params.update(
		vector_limit=candidates,
		keyword_limit=candidates,
		headline=HEADLINE_OPTIONS,
		exact_ratio=EXACT_COST_RATIO,
		exact_floor=EXACT_MIN_CHUNKS,
		exact_sample=EXACT_SAMPLE,
	)
	cur.execute(statement, params)
	rows = cur.fetchall()
	filtered = len(vector_conditions) > 0
	if uses_vectors and filtered and (not rows or (rows[0][-1] < candidates and not rows[0][-2])):
		# the iterative scan stopped short of `candidates` rows that pass: rank the filtered rows exactly
		statement = _statement(
			mode,
			dimension,
			conditions,
			vector_conditions,
			readable_select,
			query is not None,
			highlight,
			exact=True,
			has_model=has_model,
		)
		cur.execute(statement, params)
		rows = cur.fetchall()
	columns = [c.name for c in cur.description]
	hits = []
	for row in rows:
		hit = dict(zip(columns, row, strict=True))
		del hit["vector_found"], hit["vector_exact"]
		hit["id"] = str(hit["id"])
		if hit.get("highlight") is not None:
			hit["highlight"] = html.escape(hit["highlight"]).replace(START, "<mark>").replace(STOP, "</mark>")
		hits.append(hit)
	return hits


def _statement(
	mode: str,
	dimension: int,
	conditions: list[sql.Composable],
	vector_conditions: list[sql.Composable],
	readable: sql.Composable | None,
	has_text: bool,
	highlight: bool,
	exact: bool,
	has_model: bool = True,
) -> sql.Composable:
	ctes = []
	readable_ref = None
	if readable is not None:
		readable_ref = sql.SQL("SELECT id FROM readable_documents")
		ctes.append(
			sql.SQL(
				"""
	readable_documents AS MATERIALIZED (
		SELECT DISTINCT r.id::text AS id FROM ({}) AS r(id) WHERE r.id IS NOT NULL
	)"""
			).format(readable)
		)
	if has_text and mode == "vector":
		# only the question's lexemes, for the highlight
		ctes.append(
			sql.SQL(
				"""
	keyword_terms AS MATERIALIZED (
		SELECT t.lexeme AS term FROM unnest(to_tsvector((SELECT config FROM lore.keyword_settings), %(text)s)) t
	)"""
			)
		)
	elif has_text:
		filtered_chunks = None
		if conditions:
			filtered_chunks = sql.SQL("SELECT c.id FROM lore.document_chunks c WHERE {}").format(
				sql.SQL(" AND ").join(conditions)
			)
		ctes.append(keyword.ctes(filtered_chunks, readable_ref))
	exact_used = sql.SQL("true" if exact else "false")
	if mode in ("vector", "hybrid"):
		if dimension > vectors.MAX_VECTOR_INDEX_DIMENSION:
			distance = sql.SQL(f"(c.embedding::halfvec({dimension})) <=> %(embedding)s::halfvec({dimension})")
		else:
			distance = sql.SQL("c.embedding <=> %(embedding)s::vector")
		where = sql.SQL(" AND ").join([sql.SQL("c.embedding IS NOT NULL"), *vector_conditions])
		# ORDER BY an expression the index does not match: the filter first, then an exact sort
		order = sql.SQL("({}) + 0").format(distance) if exact else distance
		if readable is None:
			ctes.append(
				sql.SQL(
					"""
	vector_leg AS MATERIALIZED (
		SELECT c.id, {distance} AS distance FROM lore.document_chunks c
		WHERE {where}
		ORDER BY {order}
		LIMIT %(vector_limit)s
	)"""
				).format(distance=distance, where=where, order=order)
			)
		else:
			ctes.append(_permitted_vector_leg(distance, where, conditions, has_model, exact))
			exact_used = sql.SQL("(SELECT exact FROM vector_plan)")
		ctes.append(
			sql.SQL(
				"""
	vector_ranked AS (
		-- relaxed_order may return near-ties out of order: ranked again here; a distance that is no
		-- finite number (a zero vector stored before they were refused) is left out
		SELECT id, distance, row_number() OVER (ORDER BY distance, id) AS rank FROM vector_leg
		WHERE distance > '-Infinity'::float8 AND distance < 'Infinity'::float8
	)"""
			)
		)
	if mode == "hybrid":
		fused = """
	fused AS (
		SELECT coalesce(v.id, k.id) AS id, v.rank AS vector_rank, v.distance AS vector_distance,
			k.rank AS keyword_rank, k.score AS keyword_score,
			coalesce(1.0 / (%(rrf_k)s + v.rank), 0) + coalesce(1.0 / (%(rrf_k)s + k.rank), 0) AS score
		FROM vector_ranked v
			FULL JOIN (SELECT id, score, row_number() OVER (ORDER BY score DESC, id) AS rank FROM keyword_leg) k
			ON k.id = v.id
		ORDER BY score DESC, id
		LIMIT %(limit)s
	)"""
	elif mode == "vector":
		fused = """
	fused AS (
		SELECT id, rank AS vector_rank, distance AS vector_distance, NULL::bigint AS keyword_rank,
			NULL::float8 AS keyword_score, (1 - distance)::float8 AS score
		FROM vector_ranked ORDER BY rank LIMIT %(limit)s
	)"""
	else:
		fused = """
	fused AS (
		SELECT id, NULL::bigint AS vector_rank, NULL::float8 AS vector_distance,
			row_number() OVER (ORDER BY score DESC, id) AS keyword_rank, score AS keyword_score, score
		FROM keyword_leg ORDER BY score DESC, id LIMIT %(limit)s
	)"""
	ctes.append(sql.SQL(fused))
	if highlight and has_text:
		headline = sql.SQL(
			"""ts_headline((SELECT config FROM lore.keyword_settings), c.content,
			(SELECT string_agg(quote_literal(term), ' | ')::tsquery FROM keyword_terms), %(headline)s)"""
		)
	else:
		headline = sql.SQL("NULL::text")
	recheck = sql.SQL("")
	if readable_ref is not None:
		recheck = sql.SQL("WHERE c.document_id IN ({})").format(readable_ref)
	found = sql.SQL("(SELECT count(*) FROM vector_leg)") if mode != "keyword" else sql.SQL("0")
	if mode == "keyword":
		exact_used = sql.SQL("false")
	return sql.SQL(
		"""
	WITH {ctes}
	SELECT f.id, c.document_id, c.chunk_index, c.content, c.metadata, f.score::float8 AS score,
		f.vector_rank, f.vector_distance, f.keyword_rank, f.keyword_score, {headline} AS highlight,
		{exact_used} AS vector_exact, {found} AS vector_found
	FROM fused f JOIN lore.document_chunks c ON c.id = f.id
	{recheck}
	ORDER BY f.score DESC, f.id
	"""
	).format(
		ctes=sql.SQL(",").join(ctes), headline=headline, recheck=recheck, found=found, exact_used=exact_used
	)


def _permitted_vector_leg(
	distance: sql.Composable,
	where: sql.Composable,
	conditions: list[sql.Composable],
	has_model: bool,
	exact: bool,
) -> sql.Composable:
	"""The vector leg under a permission pre-filter, as CTEs `vector_plan` (exact: whether the readable
	chunks are few enough to rank them all) and `vector_leg`.

	Two ways to the `candidates` nearest readable chunks, and the cheaper one runs (the other branch
	sits behind a one-time filter and is never started):
	- HNSW with the filter on the scan (pgvector's iterative scan): to find c readable chunks when a
	share s of all N chunks is readable, the scan visits about c / s tuples of the graph, each costing
	an expansion of its neighbours: work grows as c * N / R for R readable chunks;
	- exact: every readable chunk's distance, through the (document_id, model, chunk_index) index:
	work grows as R.
	So the exact way is taken when R**2 <= c * N * EXACT_COST_RATIO (a tuple visited in the graph costs
	about that many exact distances). R is estimated from the readable
	documents and the chunks of the first EXACT_SAMPLE of them (exact when there are no more; a count
	of every readable chunk would cost half as much as ranking them); N is the table's row estimate
	(pg_class.reltuples). A wrong guess costs time, never results. The exact way also gives the true
	nearest neighbours, where HNSW is approximate."""
	model = sql.SQL(" AND c.model = %(model)s") if has_model else sql.SQL("")
	exact_where = sql.SQL(" AND ").join([sql.SQL("c.embedding IS NOT NULL"), *conditions])
	if exact:
		plan = sql.SQL("SELECT true AS exact")
	else:
		plan = sql.SQL(
			"""
		SELECT d.documents * s.chunks / greatest(s.documents, 1) <= t.chunks AS exact
		FROM vector_threshold t,
			(SELECT count(*)::float8 AS documents FROM readable_documents) d,
			(SELECT count(*)::float8 AS documents, coalesce(sum(x.chunks), 0)::float8 AS chunks
			FROM (SELECT id FROM readable_documents LIMIT %(exact_sample)s) r CROSS JOIN LATERAL (
				SELECT count(*) AS chunks FROM lore.document_chunks c WHERE c.document_id = r.id{model}
			) x) s"""
		).format(model=model)
	return sql.SQL(
		"""
	vector_threshold AS MATERIALIZED (
		SELECT greatest(%(exact_floor)s,
			sqrt(%(vector_limit)s::float8 * greatest(reltuples, 0) * %(exact_ratio)s::float8))::bigint AS chunks
		FROM pg_class WHERE oid = 'lore.document_chunks'::regclass
	),
	vector_plan AS MATERIALIZED ({plan}
	),
	vector_leg AS MATERIALIZED (
		(SELECT c.id, {distance} AS distance
		FROM readable_documents r CROSS JOIN LATERAL (
			-- OFFSET 0: a nested loop over the readable documents, never a scan of every chunk
			SELECT c.id, c.embedding FROM lore.document_chunks c
			WHERE c.document_id = r.id{model} AND {exact_where} OFFSET 0
		) c
		WHERE (SELECT exact FROM vector_plan)
		ORDER BY 2
		LIMIT %(vector_limit)s)
		UNION ALL
		(SELECT c.id, {distance} AS distance FROM lore.document_chunks c
		WHERE NOT (SELECT exact FROM vector_plan) AND {where}
		ORDER BY {distance}
		LIMIT %(vector_limit)s)
	)"""
	).format(plan=plan, distance=distance, model=model, exact_where=exact_where, where=where)
