"""Lore's knowledge graph: neighbourhoods, shortest paths and similar entities, in SQL.

The graph is the Lore Entity and Lore Relationship DocTypes' tables (`tabLore Entity`: name,
entity_name, entity_type, description; `tabLore Relationship`: name, source_entity,
relationship_type, target_entity, confidence), named by `Tables` so that another schema or copy can
stand in. Entity embeddings are lore.entity_embeddings (entity_id, embedding).

Traversals are recursive CTEs over (entity, depth) pairs joined with UNION, not UNION ALL: a pair is
expanded once, so a cycle cannot loop, and the work is bounded by depth x edges reached, never by the
number of paths (which grows exponentially in a dense graph). Each step follows an edge either way
(or only forward with `directed=True`), through the relationship types asked for and at or above a
minimum confidence. `readable`, a SELECT of the entity names the caller may read (or a list), keeps
the walk to readable entities: one the caller may not read is neither shown nor walked through.

Each hop looks relationships up by source_entity and by target_entity: on a large graph those two
columns want an index (`search_index` on the DocType's fields).

Entity embeddings are made by Lore's pipeline from an entity's name and description (`entity_text`).
A change enqueues the entity in the durable queue (cauldron.pg.queue, queue `lore.entities`, key =
the entity's name) in the change's own transaction; `run_entity_batch` claims items, embeds their
texts with every provider whose model is the active or the building one (cauldron.lore.ingest's
models) and stores each vector with the model that made it. A row of lore.entity_embeddings holds
the active model's vector (`embedding`, `model`: what lore.entities.embedding shows and
`similar_entities` compares, only among vectors of the active model) and, while a model switch is
being built, the new model's (`next_embedding`, `next_model`); the switch enqueues every entity
with an active vector, and activation (ingest.activate_if_complete, once no document and no entity
lacks the new model's vectors) moves the new vectors in, in one statement.

Entities link to Lore Documents through their metadata: `{"source_document_ids": ["<Lore Document
name>", ...]}` (the documents an entity was found in); `document_entities` gives each search hit's
document its entities, through a GIN index on that key (`DOCUMENT_LINK_INDEX`).
"""

import time
from collections.abc import Sequence
from dataclasses import dataclass

from psycopg2 import sql

from cauldron.lore import ingest
from cauldron.pg import CauldronDBError, queue, values, vectors
from cauldron.pg.ledger import Step

MAX_DEPTH = 6
DEFAULT_MAX_NODES = 500
ENTITY_QUEUE = "lore.entities"
ENTITY_BATCH = 32
# the metadata key naming the Lore Documents an entity was found in
DOCUMENT_LINK_KEY = "source_document_ids"
MAX_ENTITIES_PER_DOCUMENT = 20


class GraphError(CauldronDBError):
	pass


@dataclass(frozen=True)
class Tables:
	entity: str = "tabLore Entity"
	relationship: str = "tabLore Relationship"
	schema: str = "public"

	@property
	def entities(self) -> sql.Composable:
		return sql.Identifier(self.schema, self.entity)

	@property
	def relationships(self) -> sql.Composable:
		return sql.Identifier(self.schema, self.relationship)


LORE = Tables()


def _edges_sql(tables: Tables, directed: bool, readable: sql.Composable | None) -> sql.Composable:
	"""A LATERAL subquery: the edges leaving `w.entity` (either way unless directed) that pass the
	filters, as (next, relationship): %(types)s (NULL: any), %(min_confidence)s."""
	keep = sql.SQL(
		"(%(types)s::text[] IS NULL OR r.relationship_type = ANY(%(types)s::text[]))"
		" AND r.confidence >= %(min_confidence)s"
	)
	forward = sql.SQL(
		"SELECT r.target_entity AS next, r.name AS relationship FROM {r} r WHERE r.source_entity = w.entity AND {keep}"
	).format(r=tables.relationships, keep=keep)
	parts = [forward]
	if not directed:
		parts.append(
			sql.SQL(
				"SELECT r.source_entity, r.name FROM {r} r WHERE r.target_entity = w.entity AND {keep}"
			).format(r=tables.relationships, keep=keep)
		)
	edges = sql.SQL(" UNION ALL ").join(parts)
	if readable is None:
		return edges
	return sql.SQL("SELECT e.next, e.relationship FROM ({edges}) e WHERE e.next IN ({readable})").format(
		edges=edges, readable=readable
	)


def _readable(readable, params: dict) -> sql.Composable | None:
	if readable is None:
		return None
	if isinstance(readable, sql.Composable):
		return readable
	if isinstance(readable, str) or not isinstance(readable, list | tuple):
		raise GraphError("readable entities must be a list of names or a SELECT of them")
	params["readable"] = [values.name(n, "entity") for n in readable]
	return sql.SQL("SELECT unnest(%(readable)s::text[])")


def _params(entity, depth, relationship_types, min_confidence) -> dict:
	values.name(entity, "entity")
	values.whole_number(depth, "depth", 1, MAX_DEPTH)
	if relationship_types is not None:
		if isinstance(relationship_types, str) or not isinstance(relationship_types, list | tuple):
			raise GraphError("relationship_types must be a list")
		for t in relationship_types:
			values.name(t, "relationship type")
		relationship_types = list(relationship_types)
	if min_confidence is None:
		min_confidence = float("-inf")
	elif not isinstance(min_confidence, int | float) or isinstance(min_confidence, bool):
		raise GraphError(f"min_confidence must be a number, got {min_confidence!r}")
	return {
		"entity": entity,
		"depth": depth,
		"types": relationship_types,
		"min_confidence": float(min_confidence),
	}


def _is_readable(cur, entity: str, readable: sql.Composable | None, params: dict) -> bool:
	if readable is None:
		return True
	cur.execute(sql.SQL("SELECT %(entity)s IN ({})").format(readable), params)
	return cur.fetchone()[0]


def neighbourhood(
	cur,
	entity: str,
	depth: int = 2,
	relationship_types: list[str] | None = None,
	min_confidence: float | None = None,
	directed: bool = False,
	readable=None,
	max_nodes: int = DEFAULT_MAX_NODES,
	tables: Tables = LORE,
) -> dict:
	"""The entities within `depth` hops of `entity` and the relationships among them:
	{"nodes": [{name, entity_name, entity_type, depth}], "edges": [{name, source, target,
	relationship_type, confidence}], "truncated": bool}. Nodes nearest first, at most `max_nodes`
	(the entity itself at depth 0); edges are those between two returned nodes that pass the filters."""
	params = _params(entity, depth, relationship_types, min_confidence)
	params["max_nodes"] = values.whole_number(max_nodes, "max_nodes", 1, 100_000)
	readable_select = _readable(readable, params)
	if not _is_readable(cur, entity, readable_select, params):
		return {"nodes": [], "edges": [], "truncated": False}
	cur.execute(
		sql.SQL(
			"""
		WITH RECURSIVE walk(entity, depth) AS (
			SELECT %(entity)s::varchar, 0
			UNION
			SELECT n.next, w.depth + 1
			FROM walk w CROSS JOIN LATERAL ({edges}) n
			WHERE w.depth < %(depth)s
		),
		nearest AS (
			SELECT entity, min(depth) AS depth FROM walk GROUP BY entity
			ORDER BY min(depth), entity LIMIT %(max_nodes)s + 1
		)
		SELECT n.entity, e.entity_name, e.entity_type, n.depth
		FROM nearest n LEFT JOIN {entities} e ON e.name = n.entity
		ORDER BY n.depth, n.entity
		"""
		).format(edges=_edges_sql(tables, directed, readable_select), entities=tables.entities),
		params,
	)
	rows = cur.fetchall()
	truncated = len(rows) > max_nodes
	nodes = [
		{"name": name, "entity_name": label, "entity_type": kind, "depth": d}
		for name, label, kind, d in rows[:max_nodes]
	]
	params["nodes"] = [n["name"] for n in nodes]
	cur.execute(
		sql.SQL(
			"""
		SELECT r.name, r.source_entity, r.target_entity, r.relationship_type, r.confidence::float8
		FROM {r} r
		WHERE r.source_entity = ANY(%(nodes)s::text[]) AND r.target_entity = ANY(%(nodes)s::text[])
			AND (%(types)s::text[] IS NULL OR r.relationship_type = ANY(%(types)s::text[]))
			AND r.confidence >= %(min_confidence)s
		ORDER BY r.name
		"""
		).format(r=tables.relationships),
		params,
	)
	edges = [
		{"name": n, "source": s, "target": t, "relationship_type": k, "confidence": c}
		for n, s, t, k, c in cur.fetchall()
	]
	return {"nodes": nodes, "edges": edges, "truncated": truncated}


def shortest_path(
	cur,
	source: str,
	target: str,
	max_depth: int = MAX_DEPTH,
	relationship_types: list[str] | None = None,
	min_confidence: float | None = None,
	directed: bool = False,
	readable=None,
	tables: Tables = LORE,
) -> list[dict] | None:
	"""A shortest path from `source` to `target` of at most `max_depth` hops, as its steps
	[{entity, relationship, depth}] from source (relationship None) to target; None when there is none
	within `max_depth`. Among paths of equal length the one through the smallest names is taken."""
	params = _params(source, max_depth, relationship_types, min_confidence)
	params["target"] = values.name(target, "target entity")
	readable_select = _readable(readable, params)
	if not _is_readable(cur, source, readable_select, params):
		return None
	if source == target:
		return [{"entity": source, "relationship": None, "depth": 0}]
	# Breadth first from the source: (entity, depth, parent) triples, each expanded once and never
	# past the target. A triple (x, d, p) whose x is first reached at depth d is on a shortest path
	# to x, and so is (p, d - 1): walking parents back from the target gives a shortest path.
	cur.execute(
		sql.SQL(
			"""
		WITH RECURSIVE walk(entity, depth, parent, relationship) AS (
			SELECT %(entity)s::varchar, 0, NULL::varchar, NULL::varchar
			UNION
			SELECT n.next, w.depth + 1, w.entity, n.relationship
			FROM walk w CROSS JOIN LATERAL ({edges}) n
			WHERE w.depth < %(depth)s AND w.entity <> %(target)s
		),
		back(entity, depth, parent, relationship) AS (
			SELECT * FROM (
				SELECT w.entity, w.depth, w.parent, w.relationship FROM walk w WHERE w.entity = %(target)s
				ORDER BY w.depth, w.parent, w.relationship LIMIT 1
			) first
			UNION ALL
			SELECT p.entity, p.depth, p.parent, p.relationship
			FROM back b CROSS JOIN LATERAL (
				SELECT w.entity, w.depth, w.parent, w.relationship FROM walk w
				WHERE w.entity = b.parent AND w.depth = b.depth - 1
				ORDER BY w.parent NULLS FIRST, w.relationship LIMIT 1
			) p
		)
		SELECT entity, relationship, depth FROM back ORDER BY depth
		"""
		).format(edges=_edges_sql(tables, directed, readable_select)),
		params,
	)
	rows = cur.fetchall()
	if not rows:
		return None
	return [{"entity": e, "relationship": r, "depth": d} for e, r, d in rows]


def similar_entities(
	cur,
	entity: str | None = None,
	embedding=None,
	limit: int = 10,
	readable=None,
	ef_search: int = vectors.DEFAULT_EF_SEARCH,
	tables: Tables = LORE,
) -> list[dict]:
	"""The entities whose embeddings are nearest (cosine) to `entity`'s own, or to `embedding` (a
	text's, from the active model): [{name, entity_name, entity_type, distance}], nearest first,
	`entity` itself left out. Only vectors of the active model are compared."""
	if (entity is None) == (embedding is None):
		raise GraphError("give either an entity or an embedding")
	limit = values.whole_number(limit, "limit", 1, 1000)
	params: dict = {"limit": limit, "entity": entity}
	readable_select = _readable(readable, params)
	dimension = vectors.table_dimension(cur, "lore.entity_embeddings")
	_require_models(cur)
	params["model"] = ingest.active_model(cur)
	if entity is not None:
		values.name(entity, "entity")
		cur.execute(
			"SELECT embedding::text FROM lore.entity_embeddings"
			" WHERE entity_id = %s AND model = %s AND embedding IS NOT NULL",
			(entity, params["model"]),
		)
		row = cur.fetchone()
		if row is None:
			raise GraphError(
				f"entity {entity!r} has no embedding yet (none of the active model {params['model'] or repr('')})"
			)
		params["embedding"] = row[0]
	else:
		params["embedding"] = vectors._vector(embedding, dimension, "embedding")
	# only the active model's vectors: while a switch is built, the new ones wait in next_embedding
	conditions = [
		sql.SQL("x.model = %(model)s AND x.embedding IS NOT NULL"),
		sql.SQL("x.entity_id IS DISTINCT FROM %(entity)s"),
	]
	if readable_select is not None:
		conditions.append(sql.SQL("(x.entity_id IN ({})) IS TRUE").format(readable_select))
	indexed = vectors._indexed("x.embedding", dimension)
	cast = f"halfvec({dimension})" if dimension > vectors.MAX_VECTOR_INDEX_DIMENSION else "vector"
	distance = sql.SQL(f"{indexed} <=> %(embedding)s::{cast}")
	cur.execute(
		"SELECT set_config('hnsw.ef_search', %s, true), set_config('hnsw.iterative_scan', 'relaxed_order', true)"
		" FROM pg_extension WHERE extname = 'vector' AND string_to_array(extversion, '.')::int[] >= '{0,8}'",
		(str(max(int(ef_search), limit)),),
	)
	cur.execute(
		sql.SQL(
			"""
		WITH nearest AS MATERIALIZED (
			SELECT x.entity_id, {distance} AS distance FROM lore.entity_embeddings x
			WHERE {where} ORDER BY {distance} LIMIT %(limit)s
		)
		SELECT n.entity_id, e.entity_name, e.entity_type, n.distance
		FROM nearest n LEFT JOIN {entities} e ON e.name = n.entity_id
		ORDER BY n.distance, n.entity_id
		"""
		).format(distance=distance, where=sql.SQL(" AND ").join(conditions), entities=tables.entities),
		params,
	)
	return [
		{"name": n, "entity_name": label, "entity_type": kind, "distance": d}
		for n, label, kind, d in cur.fetchall()
	]


# --- entities of documents -------------------------------------------------------------------------

DOCUMENT_LINK_INDEX = (
	'CREATE INDEX IF NOT EXISTS "lore_entity_source_document_ids" ON "tabLore Entity"'
	f" USING gin (((metadata::jsonb) -> '{DOCUMENT_LINK_KEY}'))"
)


def document_entities(
	cur,
	documents: Sequence[str],
	readable=None,
	per_document: int = MAX_ENTITIES_PER_DOCUMENT,
	tables: Tables = LORE,
) -> dict[str, list[dict]]:
	"""The entities linked to each of `documents` (their metadata's source_document_ids names it),
	readable ones only: {document: [{name, entity_name, entity_type}]}, by entity name, at most
	`per_document` each; a document without entities is left out."""
	if isinstance(documents, str) or not isinstance(documents, Sequence):
		raise GraphError("documents must be a list of names")
	params: dict = {
		"documents": sorted({values.name(d, "document") for d in documents}),
		"per_document": values.whole_number(per_document, "per_document", 1, 1000),
		"key": DOCUMENT_LINK_KEY,
	}
	if not params["documents"]:
		return {}
	readable_select = _readable(readable, params)
	where = [sql.SQL("(e.metadata::jsonb -> %(key)s) ? d.document")]
	if readable_select is not None:
		where.append(sql.SQL("e.name IN ({})").format(readable_select))
	cur.execute(
		sql.SQL(
			"""
		SELECT d.document, e.name, e.entity_name, e.entity_type
		FROM unnest(%(documents)s::text[]) d(document)
		CROSS JOIN LATERAL (
			SELECT e.name, e.entity_name, e.entity_type FROM {entities} e WHERE {where}
			ORDER BY e.entity_name, e.name LIMIT %(per_document)s
		) e
		ORDER BY d.document, e.entity_name, e.name
		"""
		).format(entities=tables.entities, where=sql.SQL(" AND ").join(where)),
		params,
	)
	found: dict[str, list[dict]] = {}
	for document, name, label, kind in cur.fetchall():
		found.setdefault(document, []).append({"name": name, "entity_name": label, "entity_type": kind})
	return found


# --- entity embeddings made by the pipeline --------------------------------------------------------

# lore.entity_embeddings records the model of each vector, and holds a model switch's new vectors
# beside the active ones (the new column takes the table's own vector type, so no dimension here).
ENTITY_MODELS = """
ALTER TABLE lore.entity_embeddings ADD COLUMN IF NOT EXISTS model text NOT NULL DEFAULT '';
ALTER TABLE lore.entity_embeddings ADD COLUMN IF NOT EXISTS next_model text;
ALTER TABLE lore.entity_embeddings ALTER COLUMN embedding DROP NOT NULL;
DO $$
BEGIN
	IF NOT EXISTS (
		SELECT FROM pg_attribute WHERE attrelid = 'lore.entity_embeddings'::regclass
			AND attname = 'next_embedding' AND NOT attisdropped
	) THEN
		EXECUTE format('ALTER TABLE lore.entity_embeddings ADD COLUMN next_embedding %s', (
			SELECT format_type(atttypid, atttypmod) FROM pg_attribute
			WHERE attrelid = 'lore.entity_embeddings'::regclass AND attname = 'embedding'));
	END IF;
END
$$;
CREATE INDEX IF NOT EXISTS idx_entity_embeddings_model ON lore.entity_embeddings (model, entity_id);
CREATE INDEX IF NOT EXISTS idx_entity_embeddings_next_model ON lore.entity_embeddings (next_model)
	WHERE next_model IS NOT NULL"""


def steps() -> list[Step]:
	# lore.entity_embeddings exists only where pgvector does
	return [Step("vectors:lore.entity_embeddings.models", ENTITY_MODELS, frozenset({"vector"}))]


def models_ready(cur) -> bool:
	"""Whether lore.entity_embeddings records models (its provisioning step has run)."""
	cur.execute(
		"SELECT EXISTS (SELECT FROM pg_attribute WHERE attrelid = to_regclass('lore.entity_embeddings')"
		" AND attname = 'next_model' AND NOT attisdropped)"
	)
	return cur.fetchone()[0]


def _require_models(cur) -> None:
	vectors.table_dimension(cur, "lore.entity_embeddings")  # VectorsUnavailable without pgvector
	if not models_ready(cur):
		raise vectors.VectorsUnavailable(
			"lore.entity_embeddings does not record models yet: run `bench --site SITE migrate`"
			" (or `cauldron provision`)"
		)


def entity_text(entity_name: str | None, description: str | None) -> str:
	"""What an entity's embedding is made from: its name, then its description."""
	name = " ".join((entity_name or "").split())
	description = (description or "").strip()
	return f"{name}\n\n{description}" if name and description else name or description


def enqueue_entity(cur, entity: str, payload: dict | None = None, priority: int = 0) -> int:
	"""Queue the entity for (re-)embedding, in the caller's transaction (the change's own)."""
	values.name(entity, "entity")
	return queue.enqueue(cur, ENTITY_QUEUE, entity, payload, priority=priority)


def store_entity_embedding(cur, entity: str, model: str, embedding) -> str:
	"""Store a vector `model` made for `entity`: as its active vector when `model` is the active
	model, as its next one when `model` is being built. Returns which ("active" or "building")."""
	values.name(entity, "entity")
	dimension = vectors.table_dimension(cur, "lore.entity_embeddings")
	_require_models(cur)
	if not isinstance(embedding, str):
		embedding = vectors._vector(embedding, dimension, "entity embedding")
	active, building = ingest.active_model(cur), ingest.building_model(cur)
	if model == active:
		cur.execute(
			"""
			INSERT INTO lore.entity_embeddings (entity_id, model, embedding) VALUES (%s, %s, %s::vector)
			ON CONFLICT (entity_id) DO UPDATE
				SET model = EXCLUDED.model, embedding = EXCLUDED.embedding, updated_at = now()
			""",
			(entity, model, embedding),
		)
		return "active"
	if model is not None and model == building:
		cur.execute(
			"""
			INSERT INTO lore.entity_embeddings (entity_id, model, embedding, next_model, next_embedding)
			VALUES (%s, '', NULL, %s, %s::vector)
			ON CONFLICT (entity_id) DO UPDATE
				SET next_model = EXCLUDED.next_model, next_embedding = EXCLUDED.next_embedding, updated_at = now()
			""",
			(entity, model, embedding),
		)
		return "building"
	raise GraphError(
		f"model {model!r} is neither the active embedding model ({active or 'none'}) nor the one being"
		" built: similar_entities would never compare its vectors"
	)


def set_entity_embedding(cur, entity: str, embedding, model: str | None = None) -> str:
	"""A caller's vector for `entity`, as the active model's (the default) or the building one's."""
	if model in (None, ""):
		_require_models(cur)
		model = ingest.active_model(cur)
	return store_entity_embedding(cur, entity, model, embedding)


def forget_entity(cur, entity: str) -> int:
	cur.execute("DELETE FROM lore.entity_embeddings WHERE entity_id = %s", (entity,))
	return cur.rowcount


# Called by cauldron.lore.ingest's model switch, activation and abandoned builds.


def enqueue_for_model(cur, active: str, model: str, priority: int = ingest.SWITCH_PRIORITY) -> int:
	"""Queue every entity with a vector of the `active` model, to be embedded with `model`."""
	if not models_ready(cur):
		return 0
	cur.execute(
		"SELECT entity_id FROM lore.entity_embeddings WHERE model = %s AND embedding IS NOT NULL ORDER BY 1",
		(active,),
	)
	return queue.enqueue_many(
		cur,
		ENTITY_QUEUE,
		[(row[0], {"reason": "model", "model": model}) for row in cur.fetchall()],
		priority=priority,
	)


def entities_lacking(cur, model: str, active: str, limit: int = 100) -> list[str]:
	"""Entities with a vector of the `active` model but none of `model` (a switch waits for them)."""
	if not models_ready(cur):
		return []
	cur.execute(
		"""
		SELECT entity_id FROM lore.entity_embeddings
		WHERE model = %s AND embedding IS NOT NULL AND next_model IS DISTINCT FROM %s
		ORDER BY 1 LIMIT %s
		""",
		(active, model, limit),
	)
	return [row[0] for row in cur.fetchall()]


def activate_model(cur, model: str) -> None:
	"""`model` became the active one: its vectors become the entities' vectors; other models' go."""
	if not models_ready(cur):
		return
	cur.execute(
		"""
		UPDATE lore.entity_embeddings SET model = next_model, embedding = next_embedding,
			next_model = NULL, next_embedding = NULL, updated_at = now()
		WHERE next_model = %s
		""",
		(model,),
	)
	cur.execute(
		"DELETE FROM lore.entity_embeddings WHERE model IS DISTINCT FROM %s OR embedding IS NULL", (model,)
	)


def abandon_model(cur, model: str) -> None:
	"""The build of `model` was abandoned: its vectors go."""
	if not models_ready(cur):
		return
	cur.execute(
		"UPDATE lore.entity_embeddings SET next_model = NULL, next_embedding = NULL WHERE next_model = %s",
		(model,),
	)
	cur.execute("DELETE FROM lore.entity_embeddings WHERE embedding IS NULL AND next_model IS NULL")


def _load_entities(cur, names: list[str], tables: Tables) -> dict[str, str]:
	cur.execute(
		sql.SQL("SELECT name, entity_name, description FROM {} WHERE name = ANY(%s::text[])").format(
			tables.entities
		),
		(names,),
	)
	found = {name: entity_text(label, description) for name, label, description in cur.fetchall()}
	return {name: found[name] for name in names if name in found}  # in the order claimed


def _embed_texts(provider, texts: dict[str, str], dimension: int, batch_size: int):
	"""(vectors by entity, errors by entity): one provider call per batch; when a batch fails, each
	of its texts alone, so that one bad text fails only its own entity."""
	made, errors = {}, {}
	names = [n for n, t in texts.items() if t]
	try:
		found = ingest._embed(provider, provider.model, [texts[n] for n in names], dimension, batch_size)
		made = dict(zip(names, found, strict=True))
	except Exception:
		for name in names:
			try:
				made[name] = ingest._embed(provider, provider.model, [texts[name]], dimension, 1)[0]
			except Exception as e:
				errors[name] = e
	return made, errors


def run_entity_batch(
	cur,
	providers,
	worker: str | None = None,
	limit: int = ENTITY_BATCH,
	lease: float = queue.DEFAULT_LEASE_SECONDS,
	commit=None,
	batch_size: int = ingest.EMBED_BATCH_SIZE,
	tables: Tables = LORE,
) -> ingest.BatchResult:
	"""Claim up to `limit` queued entities and embed each one's name and description with every
	provider whose model is the active or the building one (cauldron.lore.ingest.run_batch's rules:
	`commit` after the claim and after each item; one entity's failure fails only its item, retried
	with backoff, then parked). An entity that no longer exists loses its vector. After a batch the
	building model is made active if nothing lacks its vectors any more."""
	providers = list(providers) if isinstance(providers, Sequence) else [providers]
	if not providers:
		raise GraphError("run_entity_batch needs at least one embedding provider")
	worker = worker or ingest.default_worker_name()
	result = ingest.BatchResult()
	dimension = vectors.table_dimension(cur, "lore.entity_embeddings")
	_require_models(cur)
	for provider in providers:
		ingest._check_provider(provider, dimension)
	ingest._first_model(cur, providers[0])
	models_now = {ingest.active_model(cur), ingest.building_model(cur)} - {None}
	working = [p for p in providers if p.model in models_now]
	if commit:
		commit()
	items = queue.claim(cur, ENTITY_QUEUE, worker, limit, lease)
	result.claimed = len(items)
	if commit:
		commit()
	if not items:
		return result
	started = time.monotonic()
	texts = _load_entities(cur, [i.key for i in items], tables)
	made, errors = {}, {}
	for provider in working:
		made[provider.model], failed = _embed_texts(provider, texts, dimension, max(1, int(batch_size)))
		for name, error in failed.items():
			errors.setdefault(name, error)
	if commit and time.monotonic() - started > lease / 2:
		queue.extend(cur, [i.id for i in items], worker, lease)
		commit()
	for item in items:
		cur.execute("SAVEPOINT cauldron_lore_entity")
		try:
			if not working:
				raise ingest.ProviderError(
					f"this worker embeds with {', '.join(p.model for p in providers)}; the site's model is"
					f" {' / '.join(sorted(m or repr('') for m in models_now))}"
				)
			if item.key in errors:
				raise errors[item.key]
			if not texts.get(item.key):
				forget_entity(cur, item.key)
			else:
				for provider in working:
					store_entity_embedding(cur, item.key, provider.model, made[provider.model][item.key])
					result.embedded += 1
			if queue.complete(cur, [item.id], worker):
				cur.execute("RELEASE SAVEPOINT cauldron_lore_entity")
				result.done += 1
			else:  # another worker holds it now
				cur.execute("ROLLBACK TO SAVEPOINT cauldron_lore_entity")
				cur.execute("RELEASE SAVEPOINT cauldron_lore_entity")
				result.lost += 1
		except Exception as e:  # one entity's failure never stops the batch
			cur.execute("ROLLBACK TO SAVEPOINT cauldron_lore_entity")
			cur.execute("RELEASE SAVEPOINT cauldron_lore_entity")
			message = str(e) if isinstance(e, CauldronDBError) else f"{type(e).__name__}: {e}"
			result.errors[item.key] = message
			status = queue.fail(cur, item.id, worker, message, retryable=ingest._retryable(e))
			if status == "failed":
				result.parked += 1
			elif status is None:
				result.lost += 1
			else:
				result.retrying += 1
		if commit:
			commit()
	if ingest.building_model(cur) is not None:
		result.activated = ingest.activate_if_complete(cur)
		if commit:
			commit()
	return result
