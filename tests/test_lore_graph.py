"""The knowledge graph's queries over the Lore Entity / Lore Relationship tables, made here as Frappe
makes them (tests/frappe_tables.py reads the DocTypes' JSON), on the real server."""

import json
import time

import pytest
from frappe_tables import create_doctype_table, doctypes
from psycopg2 import sql
from test_lore_ingest import WordHashModel

from cauldron.lore import graph, ingest
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


# --- entity embeddings made by the pipeline ----------------------------------------------------------


def described(cur, name, entity_name, description=None, documents=None, kind="concept"):
	cur.execute(
		'INSERT INTO "tabLore Entity" (name, entity_name, entity_type, description, metadata)'
		" VALUES (%s, %s, %s, %s, %s)",
		(name, entity_name, kind, description, json.dumps({graph.DOCUMENT_LINK_KEY: documents or []})),
	)


def stored(cur):
	cur.execute(
		"SELECT entity_id, model, embedding IS NOT NULL, next_model FROM lore.entity_embeddings ORDER BY 1"
	)
	return cur.fetchall()


def queued(cur):
	cur.execute(
		"SELECT key, status FROM command.work_queue WHERE queue = %s ORDER BY key", (graph.ENTITY_QUEUE,)
	)
	return cur.fetchall()


def test_entity_text_is_name_then_description():
	assert graph.entity_text("  Acme \n Corp ", "Makes widgets.\n") == "Acme Corp\n\nMakes widgets."
	assert graph.entity_text("Acme", None) == "Acme"
	assert graph.entity_text(None, "  ") == ""


def test_the_pipeline_embeds_queued_entities_with_the_model_and_one_failure_stays_its_own(kg):
	conn = kg.connection
	described(kg, "inv", "Invoice", "A bill for goods sent to a customer")
	described(kg, "riv", "River", "Water flowing to the sea")
	described(kg, "bad", "Broken", "this text makes the provider time out")
	for name in ("inv", "riv", "bad", "gone"):  # "gone" was deleted after it was queued
		graph.enqueue_entity(kg, name)
	conn.commit()
	model = WordHashModel("words-v1", fail_on="time out")
	result = graph.run_entity_batch(kg, model, commit=conn.commit)
	# the first model on a site becomes the active one as soon as nothing lacks its vectors
	assert (result.claimed, result.done, result.retrying, result.activated) == (4, 3, 1, "words-v1")
	assert "TimeoutError" in result.errors["bad"]
	assert stored(kg) == [("inv", "words-v1", True, None), ("riv", "words-v1", True, None)]
	assert queued(kg) == [("bad", "pending"), ("gone", "done"), ("inv", "done"), ("riv", "done")]
	# the texts went to the provider in one call, then the failing batch one text at a time
	assert model.calls[0] == [
		"Invoice\n\nA bill for goods sent to a customer",
		"River\n\nWater flowing to the sea",
		"Broken\n\nthis text makes the provider time out",
	]
	assert model.calls[1:] == [[text] for text in model.calls[0]]
	# the vector is the provider's for name and description: a text's own embedding is nearest to it
	query = WordHashModel("words-v1").embed(["water flowing to the sea"])[0]
	similar = graph.similar_entities(kg, embedding=query, limit=2)
	assert [s["name"] for s in similar] == ["riv", "inv"]
	assert similar[0]["entity_name"] == "River"
	# an entity that is deleted loses its vector when its item comes
	kg.execute("""DELETE FROM "tabLore Entity" WHERE name = 'riv'""")
	graph.enqueue_entity(kg, "riv")
	conn.commit()
	assert graph.run_entity_batch(kg, model, commit=conn.commit).done == 1
	assert [row[0] for row in stored(kg)] == ["inv"]


def test_enqueue_rolls_back_with_the_change(kg):
	conn = kg.connection
	conn.commit()
	described(kg, "x", "X")
	graph.enqueue_entity(kg, "x")
	conn.rollback()
	assert queued(kg) == []


def test_a_model_switch_re_embeds_entities_and_similar_answers_from_the_old_vectors_until_done(kg):
	conn = kg.connection
	old, new = WordHashModel("words-v1"), WordHashModel("words-v2")
	for name, label, description in (
		("inv", "Invoice", "A bill for goods"),
		("rec", "Receipt", "Proof a bill was paid"),
		("riv", "River", "Water flowing to the sea"),
	):
		described(kg, name, label, description)
		graph.enqueue_entity(kg, name)
	conn.commit()
	assert graph.run_entity_batch(kg, old, commit=conn.commit).activated == "words-v1"
	before = [s["name"] for s in graph.similar_entities(kg, "inv", limit=2)]

	# the switch enqueues every entity with a vector (no document has chunks here)
	assert ingest.switch_model(kg, "words-v2", 384) == 3
	conn.commit()
	assert graph.entities_lacking(kg, "words-v2", "words-v1") == ["inv", "rec", "riv"]
	assert ingest.activate_if_complete(kg) is None  # entities lack the new model's vectors
	# a caller's vector may be the building model's, never a third model's
	with pytest.raises(CauldronDBError, match="neither the active embedding model"):
		graph.set_entity_embedding(kg, "inv", unit(1), model="words-v9")

	# part of the way: the new vectors wait beside the old ones, search answers from the old set
	half = graph.run_entity_batch(kg, [old, new], limit=1, commit=conn.commit)
	assert (half.done, half.activated) == (1, None)
	assert stored(kg)[0] == ("inv", "words-v1", True, "words-v2")
	assert [s["name"] for s in graph.similar_entities(kg, "inv", limit=2)] == before
	cur = conn.cursor()
	cur.execute("SELECT count(*) FROM lore.entity_embeddings WHERE model = 'words-v1'")
	assert cur.fetchone()[0] == 3

	rest = graph.run_entity_batch(kg, new, commit=conn.commit)
	assert (rest.done, rest.activated) == (2, "words-v2")
	assert ingest.active_model(kg) == "words-v2"
	assert stored(kg) == [(n, "words-v2", True, None) for n in ("inv", "rec", "riv")]
	query = new.embed(["Receipt\n\nProof a bill was paid"])[0]
	assert graph.similar_entities(kg, embedding=query, limit=1)[0]["name"] == "rec"

	# an abandoned build leaves the active vectors and drops its own
	ingest.switch_model(kg, "words-v3", 384)
	graph.run_entity_batch(kg, WordHashModel("words-v3"), limit=1, commit=conn.commit)
	assert stored(kg)[0][3] == "words-v3"
	ingest.switch_model(kg, "words-v2", 384)
	assert stored(kg) == [(n, "words-v2", True, None) for n in ("inv", "rec", "riv")]


def test_entities_of_documents_through_metadata_readable_ones_only(kg):
	described(kg, "acme", "Acme", documents=["DOC-1", "DOC-2"], kind="organization")
	described(kg, "alice", "Alice", documents=["DOC-1"], kind="person")
	described(kg, "secret", "Secret", documents=["DOC-1"])
	described(kg, "loner", "Loner")
	kg.execute(
		"""INSERT INTO "tabLore Entity" (name, entity_name, entity_type) VALUES ('bare', 'Bare', 'other')"""
	)
	found = graph.document_entities(kg, ["DOC-1", "DOC-2", "DOC-3"])
	assert found == {
		"DOC-1": [
			{"name": "acme", "entity_name": "Acme", "entity_type": "organization"},
			{"name": "alice", "entity_name": "Alice", "entity_type": "person"},
			{"name": "secret", "entity_name": "Secret", "entity_type": "concept"},
		],
		"DOC-2": [{"name": "acme", "entity_name": "Acme", "entity_type": "organization"}],
	}
	readable = sql.SQL("""SELECT name FROM "tabLore Entity" WHERE name <> 'secret'""")
	assert [e["name"] for e in graph.document_entities(kg, ["DOC-1"], readable=readable)["DOC-1"]] == [
		"acme",
		"alice",
	]
	assert [e["name"] for e in graph.document_entities(kg, ["DOC-1"], per_document=1)["DOC-1"]] == ["acme"]
	assert graph.document_entities(kg, []) == {}
	with pytest.raises(CauldronDBError, match="list of names"):
		graph.document_entities(kg, "DOC-1")

	# the link is indexed: on a large table the lookup is an index scan, not a scan of every entity
	kg.execute(graph.DOCUMENT_LINK_INDEX)
	kg.execute("SET LOCAL enable_seqscan = off")
	kg.execute(
		"""EXPLAIN SELECT name FROM "tabLore Entity" WHERE (metadata::jsonb -> %s) ? 'DOC-1'""",
		(graph.DOCUMENT_LINK_KEY,),
	)
	assert "lore_entity_source_document_ids" in " ".join(row[0] for row in kg.fetchall())
