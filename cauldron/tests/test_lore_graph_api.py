"""Bench tier: the knowledge graph over REST: neighbourhood, shortest path and similar entities, through
the entities the caller may read; permission before existence. Entities are embedded by Lore's
pipeline (the worker run here directly, with the local model) and search hits carry the readable
entities linked to their documents."""

import json
import uuid
from urllib.parse import urlencode

import frappe
from frappe.tests.utils import FrappeTestCase
from frappe.utils import now_datetime

from cauldron import db, tasks
from cauldron.lore import graph, ingest, providers
from cauldron.pg import vectors
from cauldron.tests.factories import delete_created_since, drop_user, make, rest, user_with_roles

EDITOR = "cauldron-graph-editor@example.com"
PLAIN = "cauldron-graph-plain@example.com"
RESTRICTED = "cauldron-graph-restricted@example.com"
METHOD = "/api/method/cauldron.api.lore."


def work():
	"""The embedding worker, as the scheduler runs it (it commits)."""
	return tasks.embed_lore_documents(seconds=120)


def has_vectors() -> bool:
	try:
		vectors.table_dimension(db.cursor(), "lore.entity_embeddings")
		return True
	except vectors.VectorsUnavailable:
		return False


def entity_queue(name: str) -> list[str]:
	cur = db.cursor()
	cur.execute(
		"SELECT status FROM command.work_queue WHERE queue = %s AND key = %s ORDER BY id",
		(graph.ENTITY_QUEUE, name),
	)
	return [row[0] for row in cur.fetchall()]


def embedding_of(name: str):
	cur = db.cursor()
	cur.execute(
		"SELECT model, embedding::text, next_model FROM lore.entity_embeddings WHERE entity_id = %s", (name,)
	)
	return cur.fetchone()


def unit(dimension, *hot):
	v = [0.0] * dimension
	for i, weight in hot:
		v[i] = weight
	return v


class TestLoreGraphAPI(FrappeTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.started = now_datetime()
		cls.editor = user_with_roles(EDITOR, "Knowledge Editor")
		cls.plain = user_with_roles(PLAIN)
		cls.restricted = user_with_roles(RESTRICTED, "Knowledge Editor")
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
		delete_created_since(cls.started)
		frappe.db.delete("User Permission", {"user": RESTRICTED})
		for email in (EDITOR, PLAIN, RESTRICTED):
			drop_user(email)
		frappe.db.commit()
		if has_vectors():
			work()  # the deleted entities' and documents' queue items
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
			# as a caller's vectors are stored: the active model's, the only ones compared
			graph.set_entity_embedding(db.cursor(), e[key], unit(dimension, *hot))
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

	def test_the_neighbourhood_as_the_form_asks_for_it(self):
		# Lore Entity's form (lore_graph.bundle.js) sends a GET with the types as a JSON list
		e = self.e
		query = {"entity": e["b"], "depth": 2, "relationship_types": json.dumps(["depends_on"])}
		response = rest("get", METHOD + "neighbourhood?" + urlencode(query), self.editor)
		self.assertEqual(response.status_code, 200, response.data)
		graph_ = response.json["message"]
		self.assertEqual(
			{n["name"]: n["depth"] for n in graph_["nodes"]}, {e["b"]: 0, e["a"]: 1, e["c"]: 1, e["e"]: 2}
		)
		self.assertEqual(
			{(x["source"], x["target"], x["relationship_type"]) for x in graph_["edges"]},
			{(e["a"], e["b"], "depends_on"), (e["b"], e["c"], "depends_on"), (e["e"], e["a"], "depends_on")},
		)
		centre = graph_["nodes"][0]
		self.assertEqual(
			(centre["name"], centre["entity_type"]),
			(e["b"], frappe.db.get_value("Lore Entity", e["b"], "entity_type")),
		)
		self.assertTrue(centre["entity_name"].startswith("graph b "))

	def test_an_entity_is_embedded_by_the_pipeline_and_found_by_similar_entities(self):
		if not has_vectors():
			self.skipTest("pgvector is not installed in this site's database")
		settings = frappe.get_single("Cauldron Settings")
		if (settings.embedding_provider or "Local") != "Local":
			settings.embedding_provider = "Local"
			settings.save()
		frappe.db.commit()
		work()  # whatever other tests left queued; the local model becomes the active one
		self.assertEqual(ingest.active_model(db.cursor()), providers.LOCAL_MODEL)

		tag = uuid.uuid4().hex[:8]
		plant = make(
			"Lore Entity",
			entity_name=f"Photosynthesis {tag}",
			entity_type="concept",
			description="How green plants turn sunlight, water and carbon dioxide into sugar and oxygen.",
		)
		volcano = make(
			"Lore Entity",
			entity_name=f"Volcanic eruption {tag}",
			entity_type="event",
			description="Molten rock and ash thrown out of a mountain.",
		)
		# queued in the save's own transaction
		self.assertEqual(entity_queue(plant.name), ["pending"])
		frappe.db.commit()
		result = work()
		self.assertEqual(result.errors, {})
		self.assertEqual(entity_queue(plant.name), ["done"])
		model, vector, next_model = embedding_of(plant.name)
		self.assertEqual((model, next_model), (providers.LOCAL_MODEL, None))
		# the vector is the local model's embedding of the name and description
		expected = providers.provider_from_settings({"provider": "local"}).embed(
			[graph.entity_text(plant.entity_name, plant.description)]
		)[0]
		stored = json.loads(vector)
		dot = sum(a * b for a, b in zip(stored, expected, strict=True))
		self.assertGreater(
			dot / (sum(a * a for a in stored) ** 0.5 * sum(b * b for b in expected) ** 0.5), 0.999
		)

		response = self.call("similar_entities", self.editor, query="how do plants make food from light?")
		self.assertEqual(response.status_code, 200, response.data)
		names = [hit["name"] for hit in response.json["message"]]
		self.assertIn(plant.name, names)
		self.assertLess(names.index(plant.name), names.index(volcano.name) if volcano.name in names else 99)
		response = self.call("similar_entities", self.editor, entity=volcano.name, limit=1000)
		self.assertEqual(response.status_code, 200, response.data)
		self.assertIn(plant.name, [hit["name"] for hit in response.json["message"]])

		# a new description is embedded again; another type alone is not
		plant.description = "The Calvin cycle fixes carbon in the chloroplast."
		plant.save()
		self.assertEqual(entity_queue(plant.name), ["done", "pending"])
		frappe.db.commit()
		work()
		self.assertNotEqual(embedding_of(plant.name)[1], vector)
		plant.reload()
		plant.entity_type = "technology"
		plant.save()
		frappe.db.commit()
		self.assertEqual(entity_queue(plant.name), ["done", "done"])

	def test_search_hits_carry_the_readable_entities_of_their_documents(self):
		if not has_vectors():
			self.skipTest("pgvector is not installed in this site's database")
		word = "zq" + uuid.uuid4().hex[:10]
		document = make(
			"Lore Document",
			title=f"Report {word}",
			content=f"The {word} committee met in Lisbon about the harbour project.",
			source_type="manual",
		).name
		other = make("Lore Document", title=f"Other {word}", content=f"Nothing else about {word}.").name
		link = {graph.DOCUMENT_LINK_KEY: [document]}
		lisbon = make(
			"Lore Entity", entity_name=f"Lisbon {word}", entity_type="location", metadata=json.dumps(link)
		)
		harbour = make(
			"Lore Entity",
			entity_name=f"Harbour project {word}",
			entity_type="project",
			metadata=json.dumps(link),
		)
		make("Lore Entity", entity_name=f"Unlinked {word}", entity_type="concept")
		# the restricted editor may read one of the two entities only
		frappe.get_doc(
			{
				"doctype": "User Permission",
				"user": RESTRICTED,
				"allow": "Lore Entity",
				"for_value": lisbon.name,
			}
		).insert(ignore_permissions=True)
		frappe.db.commit()
		work()

		def hits(token):
			response = self.call("search", token, query=word, mode="keyword", limit=10)
			self.assertEqual(response.status_code, 200, response.data)
			return {hit["document"]: hit["entities"] for hit in response.json["message"]}

		found = hits(self.editor)
		self.assertEqual(set(found), {document, other})
		self.assertEqual(
			found[document],
			[
				{
					"name": harbour.name,
					"entity_name": harbour.entity_name,
					"entity_type": "project",
					"url": f"/app/lore-entity/{harbour.name}",
				},
				{
					"name": lisbon.name,
					"entity_name": lisbon.entity_name,
					"entity_type": "location",
					"url": f"/app/lore-entity/{lisbon.name}",
				},
			],
		)
		self.assertEqual(found[other], [])
		restricted = hits(self.restricted)
		self.assertEqual([e["name"] for e in restricted[document]], [lisbon.name])
