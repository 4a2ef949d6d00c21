"""Lore's vector tables: document chunks and entity embeddings, HNSW-indexed for cosine search.

The dimension is a site setting fixed when the tables are created (the column type carries it).
pgvector's HNSW index takes `vector` up to 2000 dimensions; above that the index and the queries
use a `halfvec` expression instead, up to halfvec's 4000.

pgvector computes distances in float32 (halfvec values are widened to it), so a vector's components
are kept where every distance between two vectors stays a finite number: at most ±1e15 (±65504,
half precision's maximum, where the index is on halfvec). A vector that is zero in that arithmetic
has no cosine distance (pgvector answers NaN, which no JSON can carry): it is never stored, and a
query vector may be zero only for l2, the one metric that can rank by it.
"""

import json
import math
from dataclasses import dataclass

from pgvector import Vector
from psycopg2.extras import execute_values

from cauldron.pg import CauldronDBError, values
from cauldron.pg.ledger import Step

DEFAULT_DIMENSION = 384  # all-MiniLM-L6-v2 and other small local models
MAX_VECTOR_INDEX_DIMENSION = 2000
MAX_DIMENSION = 4000
# metric -> distance operator
METRICS = {"cosine": "<=>", "l2": "<->", "inner_product": "<#>"}
DEFAULT_EF_SEARCH = 100
# Largest component: float32 sums of squares over 4000 dimensions stay finite.
VECTOR_MAX = 1e15
HALFVEC_MAX = 65504.0
# A vector whose components are all smaller than this is zero in pgvector's arithmetic: its squares
# underflow float32 (1e-18 squared is still a normal float32), or it rounds to 0 as a halfvec.
VECTOR_ZERO = 1e-18
HALFVEC_ZERO = 1e-7


class VectorDimensionError(CauldronDBError):
	pass


class VectorsUnavailable(CauldronDBError):
	pass


def check_dimension(dimension) -> int:
	if not isinstance(dimension, int) or isinstance(dimension, bool) or not 1 <= dimension <= MAX_DIMENSION:
		raise VectorDimensionError(
			f"embedding dimension must be a whole number from 1 to {MAX_DIMENSION}, got {dimension!r}"
		)
	return dimension


def _indexed(column: str, dimension: int) -> str:
	"""The expression the HNSW index is built on, and that ORDER BY must repeat to use it."""
	if dimension > MAX_VECTOR_INDEX_DIMENSION:
		return f"({column}::halfvec({dimension}))"
	return column


def steps(dimension: int) -> list[Step]:
	dimension = check_dimension(dimension)
	opclass = "halfvec_cosine_ops" if dimension > MAX_VECTOR_INDEX_DIMENSION else "vector_cosine_ops"
	chunks = f"""
CREATE TABLE IF NOT EXISTS lore.document_chunks (
	id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	document_id varchar(140) NOT NULL,
	chunk_index integer NOT NULL CHECK (chunk_index >= 0),
	content text NOT NULL,
	metadata jsonb NOT NULL DEFAULT '{{}}',
	embedding vector({dimension}),
	created_at timestamptz NOT NULL DEFAULT now(),
	UNIQUE (document_id, chunk_index)
);
CREATE INDEX IF NOT EXISTS idx_document_chunks_embedding
	ON lore.document_chunks USING hnsw ({_indexed("embedding", dimension)} {opclass});
CREATE INDEX IF NOT EXISTS idx_document_chunks_metadata ON lore.document_chunks USING gin (metadata)"""
	entities = f"""
CREATE TABLE IF NOT EXISTS lore.entity_embeddings (
	entity_id varchar(140) PRIMARY KEY,
	embedding vector({dimension}) NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_entity_embeddings_embedding
	ON lore.entity_embeddings USING hnsw ({_indexed("embedding", dimension)} {opclass})"""
	requires = frozenset({"vector"})
	return [
		Step("vectors:lore.document_chunks", chunks, requires),
		Step("vectors:lore.entity_embeddings", entities, requires),
		Step("vectors:lore.document_chunks.models", CHUNK_MODELS, requires),
		Step(
			"vectors:lore.document_chunks.inline_embeddings",
			INLINE_EMBEDDINGS,
			requires,
			extra_objects=(("column", "lore.document_chunks.embedding"),),
		),
	]


# pgvector gives `vector` EXTERNAL storage: a chunk of 384 dimensions (1.5 kB) and its text pass the
# 2 kB TOAST threshold, so every embedding went out of line, and reading one took a TOAST index lookup
# and two more buffers. MAIN keeps it in the row (out of line only when a row cannot fit a page at
# all, as at thousands of dimensions), so ranking the readable chunks exactly (cauldron.lore.search
# under a selective permission filter) reads one heap tuple per chunk: 2.5 times faster, measured
# with benchmarks/lore_search.py. Rows written before this step keep their storage until rewritten.
INLINE_EMBEDDINGS = "ALTER TABLE lore.document_chunks ALTER COLUMN embedding SET STORAGE MAIN"


# Every chunk records the model that embedded it (`model`; '' for vectors a caller supplied) and the
# SHA-256 of the text that was embedded (`content_hash`), so that unchanged text is not embedded
# again and two models' chunk sets can live side by side while a new model is built
# (cauldron.lore.ingest): a chunk is unique per (document, model, chunk_index). Which model search
# uses is lore.embedding_models' one `active` row. The indexes name this step's objects, so a
# restore that recreates the table re-applies the step too.
CHUNK_MODELS = """
ALTER TABLE lore.document_chunks ADD COLUMN IF NOT EXISTS model text NOT NULL DEFAULT '';
ALTER TABLE lore.document_chunks ADD COLUMN IF NOT EXISTS content_hash text;
CREATE UNIQUE INDEX IF NOT EXISTS uq_document_chunks_model_chunk
	ON lore.document_chunks (document_id, model, chunk_index);
ALTER TABLE lore.document_chunks DROP CONSTRAINT IF EXISTS document_chunks_document_id_chunk_index_key;
CREATE INDEX IF NOT EXISTS idx_document_chunks_model_hash
	ON lore.document_chunks (model, content_hash) WHERE content_hash IS NOT NULL;
CREATE TABLE IF NOT EXISTS lore.embedding_models (
	model text PRIMARY KEY,
	dimension integer NOT NULL,
	status text NOT NULL CHECK (status IN ('building', 'active', 'retired')),
	requested_at timestamptz NOT NULL DEFAULT now(),
	activated_at timestamptz
);
CREATE UNIQUE INDEX IF NOT EXISTS uq_embedding_models_active ON lore.embedding_models ((true))
	WHERE status = 'active';
CREATE UNIQUE INDEX IF NOT EXISTS uq_embedding_models_building ON lore.embedding_models ((true))
	WHERE status = 'building'"""


def table_dimension(cur, table: str = "lore.document_chunks") -> int:
	"""The dimension the table was created with; a clear error when vectors are not provisioned."""
	cur.execute(
		"""
		SELECT a.atttypmod FROM pg_attribute a
		WHERE a.attrelid = to_regclass(%s) AND a.attname = 'embedding' AND NOT a.attisdropped
		""",
		(table,),
	)
	row = cur.fetchone()
	if row is None:
		raise VectorsUnavailable(
			f"{table} does not exist: pgvector is not installed in this database. A superuser runs "
			"CREATE EXTENSION vector; then `bench --site SITE migrate` (or `cauldron provision`) creates it."
		)
	return row[0]


class ZeroVector(VectorDimensionError):
	pass


def _vector(components, dimension: int, what: str, allow_zero: bool = False) -> str:
	"""pgvector's text form of `components`, checked; sent with a ::vector cast, so no type lookup
	is needed. Components must fit the arithmetic of the indexed type (see the module's doc), and
	the vector must not be zero unless `allow_zero`."""
	halfvec = dimension > MAX_VECTOR_INDEX_DIMENSION
	limit, zero = (HALFVEC_MAX, HALFVEC_ZERO) if halfvec else (VECTOR_MAX, VECTOR_ZERO)
	if not isinstance(components, list | tuple) or not all(
		isinstance(v, int | float) and not isinstance(v, bool) for v in components
	):
		raise VectorDimensionError(f"{what} must be a list of numbers")
	if len(components) != dimension:
		raise VectorDimensionError(
			f"{what} has {len(components)} dimensions; this site's embeddings have {dimension}"
			" (Cauldron Settings > Embedding Dimension)"
		)
	try:
		floats = [float(v) for v in components]
	except OverflowError:  # a whole number beyond any float
		floats = [math.inf]
	if not all(math.isfinite(v) and abs(v) <= limit for v in floats):
		raise VectorDimensionError(f"{what} contains a value that is not finite or beyond ±{limit:g}")
	if not allow_zero and not any(abs(v) >= zero for v in floats):
		raise ZeroVector(
			f"{what} is a zero vector (every component below {zero:g} in magnitude): it has no direction,"
			" so cosine distance cannot rank it"
		)
	return Vector(floats).to_text()


@dataclass(frozen=True)
class Chunk:
	chunk_index: int
	content: str
	embedding: list[float] | None
	metadata: dict | None = None


def replace_document_chunks(cur, document_id: str, chunks: list[Chunk], model: str = "") -> int:
	"""Make the document's chunks of `model` ('': vectors the caller made) exactly `chunks` (one
	multi-row statement); returns the count.
	Every chunk is checked before anything is written; each is at most values.MAX_ITEM_BYTES."""
	values.name(document_id, "document")
	dimension = table_dimension(cur)
	rows = []
	seen = set()
	for chunk in chunks:
		values.whole_number(chunk.chunk_index, "chunk_index", 0, values.INT4_MAX)
		if chunk.chunk_index in seen:
			raise CauldronDBError(f"chunk_index {chunk.chunk_index} appears twice for {document_id}")
		seen.add(chunk.chunk_index)
		if not isinstance(chunk.content, str) or not chunk.content:
			raise CauldronDBError(f"chunk {chunk.chunk_index} of {document_id} has no content")
		if chunk.metadata is not None and not isinstance(chunk.metadata, dict):
			raise CauldronDBError(f"chunk {chunk.chunk_index}'s metadata must be an object")
		size = values.text(chunk.content, f"chunk {chunk.chunk_index}'s content")
		size += values.check(chunk.metadata, f"chunk {chunk.chunk_index}'s metadata")
		if size > values.MAX_ITEM_BYTES:
			raise values.InvalidValue(
				f"chunk {chunk.chunk_index} is {size} bytes (content and metadata);"
				f" a chunk holds at most {values.MAX_ITEM_BYTES}"
			)
		embedding = (
			None
			if chunk.embedding is None
			else _vector(chunk.embedding, dimension, f"chunk {chunk.chunk_index}'s embedding")
		)
		rows.append(
			(document_id, chunk.chunk_index, chunk.content, json.dumps(chunk.metadata or {}), embedding)
		)
	# two writers replacing the same document's chunks would otherwise interleave their sets
	cur.execute(
		"SELECT pg_advisory_xact_lock(hashtext('lore.document_chunks'), hashtext(%s))", (document_id,)
	)
	cur.execute(
		"DELETE FROM lore.document_chunks WHERE document_id = %s AND model = %s AND NOT chunk_index = ANY(%s)",
		(document_id, model, sorted(seen)),
	)
	if rows:
		execute_values(
			cur,
			"""
			INSERT INTO lore.document_chunks (document_id, chunk_index, content, metadata, embedding, model)
			VALUES %s
			ON CONFLICT (document_id, model, chunk_index) DO UPDATE
				SET content = EXCLUDED.content, metadata = EXCLUDED.metadata, embedding = EXCLUDED.embedding,
					content_hash = NULL
			""",
			[(*row, model) for row in rows],
			template="(%s, %s, %s, %s::jsonb, %s::vector, %s)",
		)
	return len(rows)


def set_entity_embedding(cur, entity_id: str, embedding) -> None:
	values.name(entity_id, "entity")
	dimension = table_dimension(cur, "lore.entity_embeddings")
	cur.execute(
		"""
		INSERT INTO lore.entity_embeddings (entity_id, embedding) VALUES (%s, %s::vector)
		ON CONFLICT (entity_id) DO UPDATE SET embedding = EXCLUDED.embedding, updated_at = now()
		""",
		(entity_id, _vector(embedding, dimension, "entity embedding")),
	)


def _distance(metric: str, dimension: int) -> str:
	if dimension > MAX_VECTOR_INDEX_DIMENSION:
		return f"{_indexed('embedding', dimension)} {METRICS[metric]} %(query)s::halfvec({dimension})"
	return f"embedding {METRICS[metric]} %(query)s::vector"


def prepare_search(cur, ef_search: int, filtered: bool) -> tuple[int, bool, bool]:
	"""One round trip before a search of lore.document_chunks: (its dimension, whether it has the
	`model` column, whether Lore's keyword leg is provisioned), and this transaction's HNSW settings.

	With a filter on pgvector 0.8+, the scan keeps walking the graph until enough rows pass it
	(iterative scan); CASE evaluates set_config only when that applies.
	"""
	cur.execute(
		"""
		SELECT a.atttypmod,
			EXISTS (SELECT 1 FROM pg_attribute m
				WHERE m.attrelid = a.attrelid AND m.attname = 'model' AND NOT m.attisdropped),
			to_regclass('lore.keyword_postings') IS NOT NULL,
			set_config('hnsw.ef_search', %(ef_search)s, true),
			CASE WHEN %(filtered)s AND string_to_array(e.extversion, '.')::int[] >= '{0,8}'
				THEN set_config('hnsw.iterative_scan', 'relaxed_order', true) END
		FROM pg_attribute a, pg_extension e
		WHERE a.attrelid = to_regclass('lore.document_chunks') AND a.attname = 'embedding'
			AND NOT a.attisdropped AND e.extname = 'vector'
		""",
		{"ef_search": str(int(ef_search)), "filtered": filtered},
	)
	row = cur.fetchone()
	if row is None:
		table_dimension(cur)  # raises VectorsUnavailable with what to do
	return row[0], row[1], row[2]


def search_chunks(
	cur,
	embedding,
	limit: int = 10,
	metadata_filter: dict | None = None,
	metric: str = "cosine",
	ef_search: int = DEFAULT_EF_SEARCH,
) -> list[dict]:
	"""The `limit` chunks nearest to `embedding`, optionally only those whose metadata contains
	`metadata_filter`. Cosine uses the HNSW index; l2 and inner_product scan exactly. A distance that
	is no finite number (a zero vector stored before they were refused) leaves its row out."""
	values.whole_number(limit, "limit", 1, 1000)
	if metadata_filter is not None and not isinstance(metadata_filter, dict):
		raise CauldronDBError(f"metadata filter must be an object, got {metadata_filter!r}")
	values.check(metadata_filter, "metadata filter")
	if not isinstance(metric, str) or metric not in METRICS:
		raise CauldronDBError(f"unknown metric {metric!r}: use one of {', '.join(METRICS)}")
	dimension, _, _ = prepare_search(cur, max(ef_search, limit), metadata_filter is not None)
	query = _vector(embedding, dimension, "query embedding", allow_zero=metric == "l2")
	distance = _distance(metric, dimension)
	where = "WHERE embedding IS NOT NULL" + (" AND metadata @> %(filter)s::jsonb" if metadata_filter else "")
	# relaxed_order may return near-ties out of order: sort the few rows again outside.
	cur.execute(
		f"""
		WITH nearest AS MATERIALIZED (
			SELECT id, document_id, chunk_index, content, metadata, {distance} AS distance
			FROM lore.document_chunks
			{where}
			ORDER BY {distance}
			LIMIT %(limit)s
		)
		SELECT id, document_id, chunk_index, content, metadata, distance FROM nearest
		WHERE distance > '-Infinity'::float8 AND distance < 'Infinity'::float8
		ORDER BY distance
		""",
		{
			"query": query,
			"filter": json.dumps(metadata_filter or {}),
			"limit": limit,
		},
	)
	columns = [c.name for c in cur.description]
	return [dict(zip(columns, row, strict=True)) for row in cur.fetchall()]
