"""Bench tier: bad input to Cauldron's endpoints, as real HTTP requests by a user allowed to call
them, is a 417 with a readable message and writes nothing: NUL and lone surrogates in any string,
NaN and Infinity, bools and int4 overflows where a whole number is wanted, parameters that are not
JSON or nested too deep, zero vectors, a chunk or a call above its documented cap. The virtual
DocTypes' lists refuse bad filter values the same way."""

import json
import uuid

import frappe
from frappe.desk import reportview
from frappe.model.base_document import get_controller
from frappe.tests.utils import FrappeTestCase
from frappe.utils import now_datetime

from cauldron import db
from cauldron.params import InvalidParameter
from cauldron.pg import values, vectors
from cauldron.tests.factories import delete_created_since, drop_user, make, rest, user_with_roles

EDITOR = "cauldron-bad-input-editor@example.com"
OPERATOR = "cauldron-bad-input-operator@example.com"
ANALYST = "cauldron-bad-input-analyst@example.com"


def unit(dimension, *hot):
	v = [0.0] * dimension
	for i in hot:
		v[i] = 1.0
	return v


def deep(depth: int) -> str:
	return "[" * depth + "]" * depth


class TestBadInput(FrappeTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.started = now_datetime()
		try:
			cls.dimension = vectors.table_dimension(db.cursor())
		except vectors.VectorsUnavailable:
			raise cls.skipTest(cls, "pgvector is not installed in this site's database") from None
		cls.editor = user_with_roles(EDITOR, "Knowledge Editor")
		cls.operator = user_with_roles(OPERATOR, "Agent Operator")
		cls.analyst = user_with_roles(ANALYST, "Synapse Analyst")
		cls.document = make("Lore Document").name
		cls.instance = make("Aether Agent Instance").name
		frappe.db.commit()

	@classmethod
	def tearDownClass(cls):
		delete_created_since(cls.started)
		for email in (EDITOR, OPERATOR, ANALYST):
			drop_user(email)
		frappe.db.commit()
		super().tearDownClass()

	def setUp(self):
		good = {"chunk_index": 0, "content": "kept", "embedding": unit(self.dimension, 0)}
		self.assertEqual(self.call("set_document_chunks", self.editor, chunks=[good]).status_code, 200)

	def tearDown(self):
		frappe.set_user("Administrator")

	def call(self, name: str, token: str, **args):
		module = "aether" if name == "record_interactions" else "lore"
		if name == "set_document_chunks":
			args.setdefault("document", self.document)
		return rest("post", f"/api/method/cauldron.api.{module}.{name}", token, args)

	def assertRefused(self, response, message: str):
		self.assertEqual(response.status_code, 417, response.data[:2000])
		shown = " ".join(json.loads(m)["message"] for m in json.loads(response.json["_server_messages"]))
		self.assertIn(message, shown)

	def chunks_stored(self) -> list:
		cur = db.cursor()
		cur.execute(
			"SELECT chunk_index, content FROM lore.document_chunks WHERE document_id = %s ORDER BY 1",
			(self.document,),
		)
		return cur.fetchall()

	def interactions_of(self, session: str) -> int:
		cur = db.cursor()
		cur.execute("SELECT count(*) FROM aether.agent_interactions WHERE session_id = %s::uuid", (session,))
		return cur.fetchone()[0]

	def test_bad_chunks_are_refused_and_keep_the_stored_ones(self):
		embedding = unit(self.dimension, 1)
		replacement = {"chunk_index": 0, "content": "replaced", "embedding": embedding}
		cases = {
			"NUL in content": ({"chunk_index": 1, "content": "a\u0000b"}, "contains a NUL"),
			"surrogate in content": ({"chunk_index": 1, "content": "a\ud800b"}, "lone surrogate"),
			"NUL in metadata": ({"chunk_index": 1, "content": "x", "metadata": {"k": "\u0000"}}, "NUL"),
			"NUL in a metadata key": ({"chunk_index": 1, "content": "x", "metadata": {"\u0000": 1}}, "NUL"),
			"NaN in metadata": ({"chunk_index": 1, "content": "x", "metadata": {"k": float("nan")}}, "nan"),
			"Infinity in metadata": ({"chunk_index": 1, "content": "x", "metadata": [float("inf")]}, "inf"),
			"true as chunk_index": ({"chunk_index": True, "content": "x"}, "chunk_index must be a whole"),
			"chunk_index 2**31": ({"chunk_index": 2**31, "content": "x"}, "from 0 to 2147483647"),
			"zero embedding": ({"chunk_index": 1, "content": "x", "embedding": [0] * self.dimension}, "zero"),
			"embedding of text": (
				{"chunk_index": 1, "content": "x", "embedding": "1" * self.dimension},
				"list",
			),
			"a chunk above the cap": (
				{"chunk_index": 1, "content": "x" * (values.MAX_ITEM_BYTES + 1)},
				f"a chunk holds at most {values.MAX_ITEM_BYTES}",
			),
		}
		for case, (chunk, message) in cases.items():
			with self.subTest(case):
				response = self.call("set_document_chunks", self.editor, chunks=[replacement, chunk])
				self.assertRefused(response, message)
				self.assertEqual(self.chunks_stored(), [(0, "kept")])

	def test_chunks_that_are_no_json_or_nested_too_deep_are_refused(self):
		for chunks, message in (
			("not json", "chunks is not valid JSON"),
			('[{"chunk_index": 1, "content": NaN}]', "NaN is not a number"),
			(deep(5000), "nested deeper than"),
			(json.dumps([{"chunk_index": 1, "content": "x", "metadata": json.loads(deep(100))}]), "nested"),
		):
			with self.subTest(chunks[:40]):
				self.assertRefused(self.call("set_document_chunks", self.editor, chunks=chunks), message)
				self.assertEqual(self.chunks_stored(), [(0, "kept")])

	def test_a_document_name_with_nul_or_surrogate_is_refused(self):
		for name in ("doc\u0000", "doc\udfff"):
			with self.subTest(name.encode("unicode_escape")):
				response = self.call("set_document_chunks", self.editor, document=name, chunks=[])
				self.assertRefused(response, "document contains")
				response = self.call("set_entity_embedding", self.editor, entity=name, embedding=[1])
				self.assertRefused(response, "entity contains")

	def test_a_call_above_the_cap_is_refused(self):
		chunk = {"chunk_index": 0, "content": "y" * (values.MAX_ITEM_BYTES - 100)}
		chunks = [
			{**chunk, "chunk_index": i} for i in range(values.MAX_CALL_BYTES // values.MAX_ITEM_BYTES + 2)
		]
		response = self.call("set_document_chunks", self.editor, chunks=chunks)
		self.assertRefused(response, "larger than 16 MiB")
		self.assertEqual(self.chunks_stored(), [(0, "kept")])

	def test_bad_searches_are_refused(self):
		query = unit(self.dimension, 0)
		for args, message in (
			({"embedding": "not json"}, "embedding is not valid JSON"),
			({"embedding": [0] * self.dimension}, "zero vector"),
			({"embedding": json.dumps([0] * self.dimension), "metric": "inner_product"}, "zero vector"),
			({"embedding": query, "metadata_filter": {"k": "\u0000"}}, "metadata_filter.k contains a NUL"),
			({"embedding": query, "metadata_filter": {"k": "\ud800"}}, "lone surrogate"),
			({"embedding": query, "metadata_filter": "{'k': 1}"}, "metadata_filter is not valid JSON"),
			({"embedding": query, "metadata_filter": deep(5000)}, "nested deeper"),
			({"embedding": query, "metadata_filter": {"k": float("nan")}}, "nan"),
			({"embedding": query, "limit": True}, "limit must be a whole number"),
			({"embedding": query, "limit": "1e9"}, "limit must be a whole number"),
			({"embedding": query, "metric": "\u0000"}, "metric contains a NUL"),
		):
			with self.subTest(args):
				self.assertRefused(self.call("search", self.editor, **args), message)
		by_l2 = self.call("search", self.editor, embedding=[0] * self.dimension, metric="l2")
		self.assertEqual(by_l2.status_code, 200, by_l2.json)

	def test_bad_interactions_record_none_of_the_batch(self):
		for content, metadata, message in (
			({"text": "a\u0000"}, None, "content.text contains a NUL"),
			("\ud800", None, "content contains a lone surrogate"),
			({"score": float("nan")}, None, "content.score is nan"),
			({"score": float("-inf")}, None, "content.score is -inf"),
			({"ok": 1}, {"k": "\u0000"}, "metadata.k contains a NUL"),
			({"ok": 1}, {"k": 2**70}, "beyond 64 bits"),
		):
			session = str(uuid.uuid4())
			good = {
				"session_id": session,
				"agent_instance_id": self.instance,
				"interaction_type": "user_message",
				"content": {"text": "hi"},
			}
			with self.subTest(message):
				bad = {**good, "content": content, "metadata": metadata}
				response = self.call("record_interactions", self.operator, interactions=[good, bad])
				self.assertRefused(response, message)
				self.assertEqual(self.interactions_of(session), 0)
		for interactions, message in (("not json", "not valid JSON"), (deep(5000), "nested deeper")):
			response = self.call("record_interactions", self.operator, interactions=interactions)
			self.assertRefused(response, message)

	def test_virtual_lists_refuse_bad_filter_values(self):
		frappe.set_user(ANALYST)
		for filters, message in (
			([["metric_name", "=", "a\u0000"]], "contains a NUL"),
			([["metric_name", "like", "\ud800%"]], "lone surrogate"),
			([["value", ">", float("nan")]], "nan"),
			([["value", ">", "1e400"]], "is not a number"),
			([["time", ">", "not a time"]], "is not a date and time"),
			({"metric_name": []}, "needs [operator, value]"),
			([["metric_name", 5, "x"]], "operator 5 is not one of"),
			([["metric_name", "in", [{"a": 1}]]], "must be a single value"),
			([["time", "between", ["2026-01-01"]]], "between takes a list of two values"),
			([[1]], "must be [fieldname, operator, value]"),
			("not json", "filters is not valid JSON"),
			(json.loads(deep(200)), "nested deeper"),
		):
			with self.subTest(filters=str(filters)[:60]):
				self.assertRaisesRegex(
					InvalidParameter,
					message.replace("[", r"\["),
					get_controller("Synapse Metric").get_list,
					{"doctype": "Synapse Metric", "filters": filters},
				)
		frappe.set_user(EDITOR)
		frappe.local.form_dict = frappe._dict(
			doctype="Lore Document Chunk", filters=json.dumps([["chunk_index", "=", 2**40]])
		)
		self.assertEqual(reportview.get_count(), 0)  # a bigint compared, no int4 overflow
		frappe.local.form_dict = frappe._dict(
			doctype="Lore Document Chunk", filters=json.dumps([["chunk_index", "=", "2.5"]])
		)
		self.assertRaisesRegex(InvalidParameter, "must be a whole number", reportview.get_count)

	def test_virtual_lists_over_rest_answer_417(self):
		for filters in ([["metric_name", "=", "a\u0000"]], [["value", "=", float("nan")]]):
			response = rest(
				"post",
				"/api/method/frappe.desk.reportview.get_count",
				self.analyst,
				{"doctype": "Synapse Metric", "filters": filters},
			)
			self.assertEqual(response.status_code, 417, response.data[:2000])

	def test_a_virtual_row_name_out_of_range_is_not_found(self):
		for name in ("9" * 18 + "-0123456789ab", "9" * 40 + "-0123456789ab", "\u0000"):
			self.assertRaises(frappe.DoesNotExistError, frappe.get_doc, "Synapse Metric", name)
