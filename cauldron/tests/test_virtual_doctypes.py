"""Bench tier: the read-only virtual DocTypes behave in Desk as list view, count and form do, for
their role only, and refuse every write whoever asks."""

import json
from datetime import datetime, timedelta, timezone

import frappe
from frappe.desk import reportview
from frappe.desk.form.load import getdoc
from frappe.tests.utils import FrappeTestCase

from cauldron import db
from cauldron.pg import timeseries
from cauldron.tests.factories import (
	area_role,
	make,
	uid,
	user_with_roles,
	virtual_doctypes,
	write_real_rows,
)
from cauldron.virtual import MAX_PAGE_LENGTH, InvalidPaging, ReadOnlyTable

PLAIN = "cauldron-virtual-plain@example.com"


def role_user(role: str) -> str:
	return f"cauldron-virtual-{frappe.scrub(role).replace('_', '-')}@example.com"


def desk_list(doctype: str, filters=None, **args) -> list[dict]:
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
	frappe.local.form_dict.update(args)
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

	def test_server_code_lists_as_frappe_get_list_does_for_its_user_or_ignoring_permissions(self):
		for doctype in virtual_doctypes():
			with self.subTest(doctype):
				frappe.set_user(PLAIN)
				self.assertEqual(len(frappe.get_all(doctype, limit=1)), 1)
				self.assertEqual(len(frappe.get_list(doctype, limit=1, ignore_permissions=True)), 1)
				frappe.set_user("Administrator")
				self.assertRaises(frappe.PermissionError, frappe.get_list, doctype, user=PLAIN)
				self.assertTrue(frappe.get_list(doctype, user=role_user(area_role(doctype))))

	def test_a_request_cannot_ignore_permissions(self):
		frappe.set_user(PLAIN)
		for doctype in virtual_doctypes():
			with self.subTest(doctype):
				self.assertRaises(
					frappe.PermissionError,
					desk_list,
					doctype,
					flags={"ignore_permissions": 1},
					ignore_permissions=1,
					user="Administrator",
				)

	def test_a_start_or_page_length_that_is_no_whole_number_is_refused(self):
		for args in ({"start": "abc"}, {"start": -1}, {"page_length": "-5"}, {"page_length": "2.5"}):
			with self.subTest(args):
				self.assertRaisesRegex(
					InvalidPaging, "must be a whole number", desk_list, "Synapse Metric", **args
				)
		self.assertRaises(InvalidPaging, frappe.get_all, "Synapse Metric", limit_start=-1)
		self.assertRaises(InvalidPaging, frappe.get_all, "Synapse Metric", limit=-1)

	def test_all_rows_are_at_most_a_page_of_the_maximum_length_and_say_so(self):
		metric = f"burst_{uid()}"
		moment = datetime(2026, 3, 3, tzinfo=timezone.utc)
		timeseries.write_metrics(
			db.cursor(),
			[(moment + timedelta(seconds=i), metric, float(i), {}) for i in range(MAX_PAGE_LENGTH + 1)],
		)
		filters = {"metric_name": metric}
		for limit in (0, None, MAX_PAGE_LENGTH + 1):
			with self.subTest(limit=limit):
				frappe.clear_messages()
				self.assertEqual(
					len(frappe.get_all("Synapse Metric", filters=filters, limit_page_length=limit)),
					MAX_PAGE_LENGTH,
				)
				(message,) = frappe.get_message_log()
				self.assertIn(f"at most {MAX_PAGE_LENGTH} rows", message["message"])
		frappe.clear_messages()
		self.assertEqual(
			frappe.get_all("Synapse Metric", filters=filters, limit_start=MAX_PAGE_LENGTH, pluck="value"),
			[0.0],  # the oldest, as the list is newest first
		)
		self.assertEqual(len(frappe.get_all("Synapse Metric", filters=filters, limit=5)), 5)
		self.assertEqual(frappe.get_message_log(), [])

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
