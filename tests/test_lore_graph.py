"""The knowledge graph's queries over the Lore Entity / Lore Relationship tables, made here as Frappe
makes them (tests/frappe_tables.py reads the DocTypes' JSON), on the real server."""

import time

import pytest
from frappe_tables import create_doctype_table, doctypes
from psycopg2 import sql

from cauldron.lore import graph
from cauldron.pg import CauldronDBError, vectors


@pytest.fixture
def kg(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	types = doctypes()
	create_doctype_table(cur, types["Lore Entity"])
	create_doctype_table(cur, types["Lore Relationship"])
	return cur


def entities(cur, *names, kind="concept"):
	for name in names:
		cur.execute(
			'INSERT INTO "tabLore Entity" (name, entity_name, entity_type) VALUES (%s, %s, %s)',
			(name, name.upper(), kind),
		)


counter = iter(range(1_000_000))


def relate(cur, source, target, kind="related_to", confidence=1.0):
	name = f"rel-{next(counter):05}"
	cur.execute(
		'INSERT INTO "tabLore Relationship" (name, source_entity, relationship_type, target_entity, confidence)'
		" VALUES (%s, %s, %s, %s, %s)",
		(name, source, kind, target, confidence),
	)
	return name


def depths(result):
	return {n["name"]: n["depth"] for n in result["nodes"]}


def test_neighbourhood_is_bounded_by_depth(kg):
	entities(kg, "a", "b", "c", "d", "e")
	for s, t in ("ab", "bc", "cd", "de"):
		relate(kg, s, t)
	assert depths(graph.neighbourhood(kg, "a", depth=2)) == {"a": 0, "b": 1, "c": 2}
	assert depths(graph.neighbourhood(kg, "c", depth=1)) == {"b": 1, "c": 0, "d": 1}
	result = graph.neighbourhood(kg, "a", depth=4)
	assert depths(result) == {"a": 0, "b": 1, "c": 2, "d": 3, "e": 4}
	assert result["nodes"][0] == {"name": "a", "entity_name": "A", "entity_type": "concept", "depth": 0}
	assert [(e["source"], e["target"]) for e in result["edges"]] == [
		("a", "b"),
		("b", "c"),
		("c", "d"),
		("d", "e"),
	]
	with pytest.raises(CauldronDBError, match="depth"):
		graph.neighbourhood(kg, "a", depth=graph.MAX_DEPTH + 1)
	with pytest.raises(CauldronDBError, match="depth"):
		graph.neighbourhood(kg, "a", depth=0)


def test_cycles_end_and_each_entity_comes_once_at_its_nearest_depth(kg):
	entities(kg, "a", "b", "c", "d")
	for s, t in ("ab", "bc", "ca", "cd", "dd"):  # a triangle, a tail, a self-loop
		relate(kg, s, t)
	result = graph.neighbourhood(kg, "a", depth=graph.MAX_DEPTH)
	assert depths(result) == {"a": 0, "b": 1, "c": 1, "d": 2}
	assert len(result["edges"]) == 5


def test_a_dense_graph_costs_depth_times_edges_not_paths(kg):
	# 30 entities all related to each other: 870 edges, and more than 10^8 walks of 6 hops
	names = [f"n{i:02}" for i in range(30)]
	entities(kg, *names)
	kg.execute(
		"""
		INSERT INTO "tabLore Relationship" (name, source_entity, relationship_type, target_entity, confidence)
		SELECT 'r-' || s || '-' || t, s, 'related_to', t, 1 FROM unnest(%s::text[]) s, unnest(%s::text[]) t
		WHERE s <> t
		""",
		(names, names),
	)
	started = time.perf_counter()
	result = graph.neighbourhood(kg, "n00", depth=graph.MAX_DEPTH)
	path = graph.shortest_path(kg, "n00", "n29")
	assert time.perf_counter() - started < 30  # a path-enumerating walk would not end
	assert len(result["nodes"]) == 30 and len(result["edges"]) == 870
	assert [step["entity"] for step in path] == ["n00", "n29"]


def test_filters_on_relationship_type_confidence_and_direction(kg):
	entities(kg, "acme", "alice", "bob", "widget", "paris")
	relate(kg, "alice", "acme", "works_for", 0.9)
	relate(kg, "bob", "acme", "works_for", 0.4)
	relate(kg, "acme", "widget", "owns", 1.0)
	relate(kg, "acme", "paris", "located_in", 0.8)
	assert set(depths(graph.neighbourhood(kg, "acme", depth=1))) == {
		"acme",
		"alice",
		"bob",
		"widget",
		"paris",
	}
	assert set(depths(graph.neighbourhood(kg, "acme", depth=1, relationship_types=["works_for"]))) == {
		"acme",
		"alice",
		"bob",
	}
	confident = graph.neighbourhood(kg, "acme", depth=1, min_confidence=0.8)
	assert set(depths(confident)) == {"acme", "alice", "widget", "paris"}
	assert all(e["confidence"] >= 0.8 for e in confident["edges"])
	# forward only: acme's own relationships, not those pointing at it
	assert set(depths(graph.neighbourhood(kg, "acme", depth=2, directed=True))) == {"acme", "widget", "paris"}
	assert set(depths(graph.neighbourhood(kg, "alice", depth=2, directed=True))) == {
		"alice",
		"acme",
		"widget",
		"paris",
	}
	with pytest.raises(CauldronDBError, match="relationship_types must be a list"):
		graph.neighbourhood(kg, "acme", relationship_types="owns")
	with pytest.raises(CauldronDBError, match="min_confidence must be a number"):
		graph.neighbourhood(kg, "acme", min_confidence="high")


def test_unreadable_entities_are_neither_shown_nor_walked_through(kg):
	entities(kg, "a", "secret", "c", "d")
	relate(kg, "a", "secret")
	relate(kg, "secret", "c")
	relate(kg, "a", "d")
	readable = ["a", "c", "d"]
	assert set(depths(graph.neighbourhood(kg, "a", depth=3))) == {"a", "secret", "c", "d"}
	assert set(depths(graph.neighbourhood(kg, "a", depth=3, readable=readable))) == {"a", "d"}
	as_select = sql.SQL("""SELECT name FROM "tabLore Entity" WHERE name <> 'secret'""")
	assert set(depths(graph.neighbourhood(kg, "a", depth=3, readable=as_select))) == {"a", "d"}
	assert graph.neighbourhood(kg, "secret", readable=readable) == {
		"nodes": [],
		"edges": [],
		"truncated": False,
	}
	assert graph.shortest_path(kg, "a", "c", readable=readable) is None
	assert [s["entity"] for s in graph.shortest_path(kg, "a", "c")] == ["a", "secret", "c"]


def test_max_nodes_truncates_nearest_first(kg):
	entities(kg, "hub", *[f"s{i}" for i in range(10)])
	for i in range(10):
		relate(kg, "hub", f"s{i}")
	result = graph.neighbourhood(kg, "hub", depth=1, max_nodes=4)
	assert [n["name"] for n in result["nodes"]] == ["hub", "s0", "s1", "s2"]
	assert result["truncated"] is True
	assert len(result["edges"]) == 3


def test_shortest_path_takes_the_fewest_hops(kg):
	entities(kg, *"abcdefg")
	# a long way round (a-b-c-d-e) and a short one (a-f-e), and g beyond e
	long_way = [relate(kg, s, t) for s, t in ("ab", "bc", "cd", "de")]
	short_way = [relate(kg, "a", "f", "part_of"), relate(kg, "e", "f", "uses")]
	relate(kg, "e", "g")
	path = graph.shortest_path(kg, "a", "g")
	assert path == [
		{"entity": "a", "relationship": None, "depth": 0},
		{"entity": "f", "relationship": short_way[0], "depth": 1},
		{"entity": "e", "relationship": short_way[1], "depth": 2},
		{"entity": "g", "relationship": path[3]["relationship"], "depth": 3},
	]
	assert graph.shortest_path(kg, "a", "g", max_depth=2) is None
	# without the short way's relationship types, the long way
	path = graph.shortest_path(kg, "a", "e", relationship_types=["related_to"])
	assert [s["entity"] for s in path] == ["a", "b", "c", "d", "e"]
	assert [s["relationship"] for s in path[1:]] == long_way
	# forward only: e -> f points the wrong way
	assert graph.shortest_path(kg, "a", "e", directed=True) == [
		{"entity": "a", "relationship": None, "depth": 0},
		*[
			{"entity": e, "relationship": r, "depth": i + 1}
			for i, (e, r) in enumerate(zip("bcde", long_way, strict=True))
		],
	]
	assert graph.shortest_path(kg, "a", "a") == [{"entity": "a", "relationship": None, "depth": 0}]
	assert graph.shortest_path(kg, "a", "nowhere") is None


def unit(*hot):
	v = [0.0] * 384
	for i in hot:
		v[i] = 1.0
	return v


def test_similar_entities_by_their_embeddings(kg):
	entities(kg, "invoice", "bill", "receipt", "river")
	vectors.set_entity_embedding(kg, "invoice", unit(0, 1))
	vectors.set_entity_embedding(kg, "bill", unit(0, 1, 2))
	vectors.set_entity_embedding(kg, "receipt", unit(0, 3))
	vectors.set_entity_embedding(kg, "river", unit(9))
	similar = graph.similar_entities(kg, "invoice", limit=3)
	assert [s["name"] for s in similar] == ["bill", "receipt", "river"]
	assert similar[0]["entity_name"] == "BILL" and similar[0]["distance"] < similar[1]["distance"]
	assert [s["name"] for s in graph.similar_entities(kg, embedding=unit(9), limit=1)] == ["river"]
	assert [
		s["name"] for s in graph.similar_entities(kg, "invoice", limit=3, readable=["river", "receipt"])
	] == [
		"receipt",
		"river",
	]
	with pytest.raises(CauldronDBError, match="has no embedding yet"):
		graph.similar_entities(kg, "nobody")
	with pytest.raises(CauldronDBError, match="either an entity or an embedding"):
		graph.similar_entities(kg)


def test_tables_are_parameters(kg):
	kg.execute("CREATE SCHEMA kg")
	kg.execute('CREATE TABLE kg.things (LIKE "tabLore Entity" INCLUDING DEFAULTS)')
	kg.execute('CREATE TABLE kg.links (LIKE "tabLore Relationship" INCLUDING DEFAULTS)')
	tables = graph.Tables(entity="things", relationship="links", schema="kg")
	kg.execute("INSERT INTO kg.things (name, entity_name) VALUES ('x', 'X'), ('y', 'Y')")
	kg.execute(
		"INSERT INTO kg.links (name, source_entity, relationship_type, target_entity, confidence) VALUES ('l', 'x', 'uses', 'y', 1)"
	)
	result = graph.neighbourhood(kg, "x", tables=tables)
	assert depths(result) == {"x": 0, "y": 1} and result["nodes"][1]["entity_name"] == "Y"
	assert graph.neighbourhood(kg, "x")["nodes"] == [
		{"name": "x", "entity_name": None, "entity_type": None, "depth": 0}
	]
