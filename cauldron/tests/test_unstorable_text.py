"""Bench tier: text PostgreSQL cannot store, sent through Frappe's own REST to a Cauldron DocType
(a NUL, a lone surrogate, NaN or a \\u0000 escape inside a JSON field, a document name with a NUL) is
a 417 naming the field, never a 500 with a database error, and nothing is written."""

import frappe
from frappe.tests.utils import FrappeTestCase

from cauldron.tests.factories import drop_user, make, resource, rest, user_with_roles

EDITOR = "cauldron-text-editor@example.com"


class TestUnstorableText(FrappeTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.editor = user_with_roles(EDITOR, "Knowledge Editor")
		cls.document = make("Lore Document", title="kept").name
		frappe.db.commit()

	@classmethod
	def tearDownClass(cls):
		frappe.delete_doc("Lore Document", cls.document, force=True)
		drop_user(EDITOR)
		frappe.db.commit()
		super().tearDownClass()

	def count(self):
		return frappe.db.count("Lore Document")

	def test_create_and_update_refuse_what_postgres_cannot_store(self):
		cases = [
			({"title": "a\x00b"}, "Title contains a NUL character"),
			({"content": "lone \ud800 surrogate"}, "Content contains a lone surrogate"),
			({"metadata": '{"score": NaN}'}, "NaN is not a number JSON can carry"),
			({"metadata": '{"k": "\\u0000"}'}, "contains a NUL character"),
			({"metadata": {"k": "a\x00"}}, "contains a NUL character"),
		]
		before = self.count()
		for fields, message in cases:
			with self.subTest(fields=fields):
				data = {"title": "new", "source_type": "manual", **fields}
				response = rest("post", resource("Lore Document"), self.editor, data)
				self.assertEqual(response.status_code, 417, response.data)
				self.assertIn(message, response.data.decode())
				self.assertNotIn("psycopg2", response.data.decode())

				response = rest("put", resource("Lore Document", self.document), self.editor, fields)
				self.assertEqual(response.status_code, 417, response.data)
				self.assertIn(message, response.data.decode())
		self.assertEqual(self.count(), before)
		self.assertEqual(frappe.db.get_value("Lore Document", self.document, "title"), "kept")

	def test_a_name_with_a_nul_is_refused_before_any_query(self):
		for method in ("get", "put", "delete"):
			with self.subTest(method):
				response = rest(
					method, resource("Lore Document", "x\x00y"), self.editor, {} if method == "put" else None
				)
				self.assertEqual(response.status_code, 417, response.data)
				self.assertIn("contains a NUL character", response.data.decode())
