"""Bench tier: the read-only virtual DocTypes behave in Desk as list view, count and form do, for
their role only, and refuse every write whoever asks."""

import json

import frappe
from frappe.desk import reportview
from frappe.desk.form.load import getdoc
from frappe.tests.utils import FrappeTestCase

from cauldron import db
from cauldron.tests.factories import area_role, make, user_with_roles, virtual_doctypes, write_real_rows
from cauldron.virtual import ReadOnlyTable

PLAIN = "cauldron-virtual-plain@example.com"


def role_user(role: str) -> str:
	return f"cauldron-virtual-{frappe.scrub(role).replace('_', '-')}@example.com"


def desk_list(doctype: str, filters=None) -> list[dict]:
	"""What the list view asks for: its columns, the newest first, a page of 20."""
	meta = frappe.get_meta(doctype)
	fields = ["name", "modified", *(df.fieldname for df in meta.fields if df.in_list_view)]
	frappe.local.form_dict = frappe._dict(
		doctype=doctype,
		fields=json.dumps([f"`tab{doctype}`.`{f}`" for f in fields]),
		filters=json.dumps(filters or []),
		order_by=f"`tab{doctype}`.`modified` desc",
		start=0,
		page_length=20,
		with_comment_count=1,
	)
	result = reportview.get()
	return [dict(zip(result["keys"], row, strict=True)) for row in result["values"]] if result else []


def desk_count(doctype: str, filters=None) -> int:
	frappe.local.form_dict = frappe._dict(doctype=doctype, filters=json.dumps(filters or []))
	return reportview.get_count()


class TestVirtualDocTypes(FrappeTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		for role in {area_role(d) for d in virtual_doctypes()}:
			user_with_roles(role_user(role), role)
		user_with_roles(PLAIN)
		cls.document = make("Lore Document").name
		cls.instance = make("Aether Agent Instance").name
		write_real_rows(db.cursor(), cls.document, cls.instance)

	def tearDown(self):
		frappe.set_user("Administrator")

	def test_the_area_role_lists_counts_and_opens_rows(self):
		for doctype in virtual_doctypes():
			with self.subTest(doctype):
				frappe.set_user(role_user(area_role(doctype)))
				rows = desk_list(doctype)
				self.assertTrue(rows)
				self.assertGreaterEqual(desk_count(doctype), len(rows))
				frappe.local.response = frappe._dict(docs=[])
				getdoc(doctype, rows[0]["name"])  # what the form loads
				(doc,) = frappe.response.docs
				for fieldname, value in rows[0].items():
					if fieldname not in ("modified", "_comment_count"):
						self.assertEqual(doc.get(fieldname), value, fieldname)

	def test_a_plain_user_and_another_area_see_nothing(self):
		for doctype in virtual_doctypes():
			other = next(r for r in ("Synapse Analyst", "Agent Operator") if r != area_role(doctype))
			for user in (PLAIN, role_user(other)):
				with self.subTest(doctype=doctype, user=user):
					frappe.set_user(user)
					self.assertRaises(frappe.PermissionError, desk_list, doctype)
					self.assertRaises(frappe.PermissionError, desk_count, doctype)
					self.assertRaises(frappe.PermissionError, frappe.get_list, doctype)

	def test_nobody_writes_not_even_the_administrator(self):
		for doctype in virtual_doctypes():
			with self.subTest(doctype):
				(name,) = frappe.get_all(doctype, limit=1, pluck="name")
				doc = frappe.get_doc(doctype, name)
				self.assertRaisesRegex(ReadOnlyTable, "read-only", doc.save)
				self.assertRaisesRegex(ReadOnlyTable, "read-only", frappe.delete_doc, doctype, name)
				self.assertRaisesRegex(
					ReadOnlyTable, "read-only", frappe.get_doc({"doctype": doctype}).insert
				)

	def test_an_unknown_name_is_not_found(self):
		for doctype in virtual_doctypes():
			with self.subTest(doctype):
				self.assertRaises(frappe.DoesNotExistError, frappe.get_doc, doctype, "no-such-row")
