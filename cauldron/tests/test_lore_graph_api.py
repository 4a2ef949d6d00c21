"""Bench tier: the knowledge graph over REST: neighbourhood, shortest path and similar entities, through
the entities the caller may read; permission before existence."""

import uuid

import frappe
from frappe.tests.utils import FrappeTestCase

from cauldron import db
from cauldron.pg import vectors
from cauldron.tests.factories import drop_user, make, rest, user_with_roles

EDITOR = "cauldron-graph-editor@example.com"
PLAIN = "cauldron-graph-plain@example.com"
METHOD = "/api/method/cauldron.api.lore."


def unit(dimension, *hot):
	v = [0.0] * dimension
	for i, weight in hot:
		v[i] = weight
	return v


class TestLoreGraphAPI(FrappeTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.editor = user_with_roles(EDITOR, "Knowledge Editor")
		cls.plain = user_with_roles(PLAIN)
		# a - b - c - d, and a cycle back from d to a through e
		cls.e = {
			k: make("Lore Entity", entity_name=f"graph {k} {uuid.uuid4().hex[:6]}").name for k in "abcde"
		}
		cls.relationships = [
			make(
				"Lore Relationship",
				source_entity=cls.e[s],
				target_entity=cls.e[t],
				relationship_type=kind,
				confidence=confidence,
			).name
			for s, t, kind, confidence in (
				("a", "b", "depends_on", 0.9),
				("b", "c", "depends_on", 0.9),
				("c", "d", "mentions", 0.2),
				("d", "e", "depends_on", 0.9),
				("e", "a", "depends_on", 0.9),
			)
		]
		frappe.db.commit()

	@classmethod
	def tearDownClass(cls):
		for name in cls.relationships:
			frappe.delete_doc("Lore Relationship", name, force=True)
		for name in cls.e.values():
			frappe.delete_doc("Lore Entity", name, force=True)
		drop_user(EDITOR)
		drop_user(PLAIN)
		frappe.db.commit()
		super().tearDownClass()

	def call(self, method, token, **data):
		return rest("post", METHOD + method, token, data)

	def test_neighbourhood_is_bounded_by_depth_and_filters_and_survives_the_cycle(self):
		e = self.e
		response = self.call("neighbourhood", self.editor, entity=e["a"], depth=1)
		self.assertEqual(response.status_code, 200, response.data)
		nodes = {n["name"]: n["depth"] for n in response.json["message"]["nodes"]}
		self.assertEqual(nodes, {e["a"]: 0, e["b"]: 1, e["e"]: 1})

		response = self.call("neighbourhood", self.editor, entity=e["a"], depth=6, min_confidence=0.5)
		nodes = {n["name"]: n["depth"] for n in response.json["message"]["nodes"]}
		# c - d is below the confidence: d is reached the other way round, through e
		self.assertEqual(nodes, {e["a"]: 0, e["b"]: 1, e["e"]: 1, e["c"]: 2, e["d"]: 2})
		self.assertTrue(all(edge["confidence"] >= 0.5 for edge in response.json["message"]["edges"]))

		response = self.call(
			"neighbourhood", self.editor, entity=e["a"], depth=2, relationship_types=["mentions"]
		)
		self.assertEqual([n["name"] for n in response.json["message"]["nodes"]], [e["a"]])

	def test_shortest_path_and_its_absence(self):
		e = self.e
		response = self.call("shortest_path", self.editor, source=e["a"], target=e["d"])
		self.assertEqual(response.status_code, 200, response.data)
		self.assertEqual([step["entity"] for step in response.json["message"]], [e["a"], e["e"], e["d"]])
		response = self.call(
			"shortest_path", self.editor, source=e["a"], target=e["d"], directed=1, max_depth=2
		)
		self.assertEqual(response.status_code, 200, response.data)
		self.assertIsNone(response.json.get("message"))  # a -> b -> c -> d takes three hops

	def test_similar_entities_by_embedding(self):
		try:
			dimension = vectors.table_dimension(db.cursor(), "lore.entity_embeddings")
		except vectors.VectorsUnavailable:
			self.skipTest("pgvector is not installed in this site's database")
		e = self.e
		for key, hot in (("a", [(0, 1.0)]), ("b", [(0, 0.9), (1, 0.1)]), ("c", [(1, 1.0)])):
			vectors.set_entity_embedding(db.cursor(), e[key], unit(dimension, *hot))
		frappe.db.commit()
		# other tests' entities may have embeddings too: compare these three among all of them
		response = self.call("similar_entities", self.editor, entity=e["a"], limit=1000)
		self.assertEqual(response.status_code, 200, response.data)
		names = [hit["name"] for hit in response.json["message"]]
		self.assertNotIn(e["a"], names)
		self.assertLess(names.index(e["b"]), names.index(e["c"]))
		distances = {hit["name"]: hit["distance"] for hit in response.json["message"]}
		self.assertLess(distances[e["b"]], 0.01)
		self.assertAlmostEqual(distances[e["c"]], 1.0, places=6)

	def test_permission_comes_before_existence(self):
		for entity in (self.e["a"], str(uuid.uuid4())):
			for method in ("neighbourhood", "similar_entities"):
				with self.subTest(method=method, entity=entity):
					self.assertEqual(self.call(method, self.plain, entity=entity).status_code, 403)
					self.assertEqual(self.call(method, None, entity=entity).status_code, 403)
		# an editor asking for an entity that does not exist gets the same refusal as the plain user
		self.assertEqual(self.call("neighbourhood", self.editor, entity=str(uuid.uuid4())).status_code, 403)
		response = self.call("neighbourhood", self.editor, entity=self.e["a"], depth=7)
		self.assertEqual(response.status_code, 417)
		response = self.call("neighbourhood", self.editor, entity=self.e["a"], min_confidence="high")
		self.assertEqual(response.status_code, 417)
