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

	def test_list_parameters_that_are_not_json_are_refused_on_every_list_endpoint(self):
		auditor = user_with_roles("cauldron-text-auditor@example.com", "Cauldron Auditor", "Knowledge Editor")
		self.addCleanup(frappe.db.commit)
		self.addCleanup(drop_user, "cauldron-text-auditor@example.com")
		frappe.db.commit()
		for doctype in ("Cauldron Audit Log", "Lore Document"):
			quoted = doctype.replace(" ", "%20")
			for path in (
				f"{resource(doctype)}?filters=notjson",
				f"{resource(doctype)}?fields=notjson",
				f"{resource(doctype)}?filters=%5B%5B%22title%22%2C%22%3D%22%2C%22a%5Cu0000%22%5D%5D",
				f"/api/method/frappe.desk.reportview.get?doctype={quoted}&filters=notjson",
				f"/api/method/frappe.desk.reportview.get_count?doctype={quoted}&filters=notjson",
				f"/api/method/frappe.client.get_list?doctype={quoted}&or_filters=notjson",
			):
				with self.subTest(path):
					response = rest("get", path, auditor)
					self.assertEqual(response.status_code, 417, response.data)
					self.assertNotIn("JSONDecodeError", response.data.decode())
		# a valid list still answers
		response = rest("get", f"{resource('Lore Document')}?filters=%5B%5D", auditor)
		self.assertEqual(response.status_code, 200, response.data)
