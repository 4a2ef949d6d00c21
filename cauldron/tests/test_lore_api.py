"""Bench tier: Lore's vector endpoints over REST, for the Knowledge Editor and no one else; chunks a
caller supplies are the active model's (or the building one's), never another's."""

import json

import frappe
from frappe.tests.utils import FrappeTestCase

from cauldron import db
from cauldron.pg import vectors
from cauldron.tests.factories import make, rest, user_with_roles

EDITOR = "cauldron-lore-editor@example.com"
PLAIN = "cauldron-lore-plain@example.com"


def unit(dimension, *hot):
	v = [0.0] * dimension
	for i in hot:
		v[i] = 1.0
	return v


class TestLoreAPI(FrappeTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		try:
			cls.dimension = vectors.table_dimension(db.cursor())
		except vectors.VectorsUnavailable:
			raise cls.skipTest(cls, "pgvector is not installed in this site's database") from None
		cls.editor = user_with_roles(EDITOR, "Knowledge Editor")
		cls.plain = user_with_roles(PLAIN)
		cls.document = make("Lore Document").name
		frappe.db.commit()

	@classmethod
	def tearDownClass(cls):
		frappe.delete_doc("Lore Document", cls.document, force=True)
		frappe.db.commit()
		super().tearDownClass()

	def set_chunks(self, token, chunks):
		return rest(
			"post",
			"/api/method/cauldron.api.lore.set_document_chunks",
			token,
			{"document": self.document, "chunks": chunks},
		)

	def test_editor_stores_chunks_and_finds_the_nearest(self):
		chunks = [
			{
				"chunk_index": 0,
				"content": "invoices",
				"embedding": unit(self.dimension, 0),
				"metadata": {"lang": "en"},
			},
			{
				"chunk_index": 1,
				"content": "payroll",
				"embedding": unit(self.dimension, 5),
				"metadata": {"lang": "de"},
			},
		]
		response = self.set_chunks(self.editor, chunks)
		self.assertEqual(response.status_code, 200, response.data)
		self.assertEqual(response.json["message"], 2)

		query = {"embedding": json.dumps(unit(self.dimension, 5)), "limit": 1}
		response = rest("post", "/api/method/cauldron.api.lore.search", self.editor, query)
		self.assertEqual(response.status_code, 200, response.data)
		(nearest,) = response.json["message"]
		self.assertEqual((nearest["document_id"], nearest["content"]), (self.document, "payroll"))

		query = {
			"embedding": json.dumps(unit(self.dimension, 5)),
			"metadata_filter": json.dumps({"lang": "en"}),
		}
		response = rest("post", "/api/method/cauldron.api.lore.search", self.editor, query)
		self.assertEqual([r["content"] for r in response.json["message"]], ["invoices"])

	def test_wrong_dimension_is_a_clear_error_and_stores_nothing(self):
		response = self.set_chunks(self.editor, [{"chunk_index": 0, "content": "x", "embedding": [1, 2, 3]}])
		self.assertEqual(response.status_code, 417, response.data)
		self.assertIn(
			f"has 3 dimensions; this site's embeddings have {self.dimension}", response.data.decode()
		)
		cur = db.cursor()
		cur.execute("SELECT count(*) FROM lore.document_chunks WHERE content = 'x'")
		self.assertEqual(cur.fetchone()[0], 0)

	def test_others_are_refused(self):
		query = {"embedding": json.dumps(unit(self.dimension, 0))}
		for token in (self.plain, None):
			self.assertEqual(
				rest("post", "/api/method/cauldron.api.lore.search", token, query).status_code, 403
			)
			chunks = [{"chunk_index": 0, "content": "x", "embedding": unit(self.dimension, 0)}]
			self.assertEqual(self.set_chunks(token, chunks).status_code, 403)

	def test_chunks_of_a_model_search_never_compares_are_refused(self):
		response = rest(
			"post",
			"/api/method/cauldron.api.lore.set_document_chunks",
			self.editor,
			{
				"document": self.document,
				"model": "some-other-model",
				"chunks": [{"chunk_index": 0, "content": "other", "embedding": unit(self.dimension, 1)}],
			},
		)
		self.assertEqual(response.status_code, 417, response.data)
		self.assertIn("neither the active embedding model", response.data.decode())
		cur = db.cursor()
		cur.execute("SELECT count(*) FROM lore.document_chunks WHERE content = 'other'")
		self.assertEqual(cur.fetchone()[0], 0)

	def test_a_search_needs_a_query_or_an_embedding_and_a_known_mode(self):
		for args, message in (
			({}, "needs a query (text) or an embedding"),
			({"query": "x", "mode": "fuzzy"}, "mode must be one of"),
		):
			with self.subTest(args):
				response = rest("post", "/api/method/cauldron.api.lore.search", self.editor, args)
				self.assertEqual(response.status_code, 417, response.data)
				self.assertIn(message, response.data.decode())
