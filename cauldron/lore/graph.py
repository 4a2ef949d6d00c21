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
"""

from dataclasses import dataclass

from psycopg2 import sql

from cauldron.pg import CauldronDBError, values, vectors

MAX_DEPTH = 6
DEFAULT_MAX_NODES = 500


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
	`entity` itself left out."""
	if (entity is None) == (embedding is None):
		raise GraphError("give either an entity or an embedding")
	limit = values.whole_number(limit, "limit", 1, 1000)
	params: dict = {"limit": limit, "entity": entity}
	readable_select = _readable(readable, params)
	dimension = vectors.table_dimension(cur, "lore.entity_embeddings")
	if entity is not None:
		values.name(entity, "entity")
		cur.execute("SELECT embedding::text FROM lore.entity_embeddings WHERE entity_id = %s", (entity,))
		row = cur.fetchone()
		if row is None:
			raise GraphError(f"entity {entity!r} has no embedding yet")
		params["embedding"] = row[0]
	else:
		params["embedding"] = vectors._vector(embedding, dimension, "embedding")
	conditions = [sql.SQL("x.entity_id IS DISTINCT FROM %(entity)s")]
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
