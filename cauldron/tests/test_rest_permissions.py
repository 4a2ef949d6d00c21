"""Bench tier: every Cauldron DocType through /api/resource as real HTTP requests. Its area role
creates, reads, updates and deletes; a plain user, another area's role and Guest get nothing; the
read-only virtual DocTypes refuse every write, even to their own role."""

import frappe
from frappe.tests.utils import FrappeTestCase
from frappe.utils import now_datetime

from cauldron.tests.factories import (
	AREA_ROLE,
	UPDATES,
	area_role,
	delete_created_since,
	drop_user,
	make,
	resource,
	rest,
	seed_doctypes,
	user_with_roles,
	values,
	virtual_doctypes,
)

PLAIN = "cauldron-plain@example.com"


def role_user(role: str) -> str:
	return f"cauldron-{frappe.scrub(role).replace('_', '-')}@example.com"


class TestRestPermissions(FrappeTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.started = now_datetime()
		cls.tokens = {role: user_with_roles(role_user(role), role) for role in AREA_ROLE.values()}
		cls.plain = user_with_roles(PLAIN)
		frappe.db.commit()

	@classmethod
	def tearDownClass(cls):
		delete_created_since(cls.started)
		for email in (PLAIN, *map(role_user, AREA_ROLE.values())):
			drop_user(email)
		frappe.db.commit()
		super().tearDownClass()

	def outsiders(self, doctype: str) -> dict:
		"""Who must be refused: a plain user, the role of another area, and Guest."""
		other = next(role for role in AREA_ROLE.values() if role != area_role(doctype))
		return {"plain user": self.plain, other: self.tokens[other], "Guest": None}

	def test_every_seed_doctype_is_a_doctype(self):
		self.assertEqual(len(seed_doctypes()), 23)
		self.assertEqual(len(virtual_doctypes()), 6)

	def test_the_area_role_creates_reads_updates_and_deletes_every_seed_doctype(self):
		for doctype in seed_doctypes():
			with self.subTest(doctype):
				token = self.tokens[area_role(doctype)]
				payload = values(doctype)
				frappe.db.commit()
				created = rest("post", resource(doctype), token, payload)
				self.assertEqual(created.status_code, 200, created.json)
				name = created.json["data"]["name"]

				read = rest("get", resource(doctype, name), token)
				self.assertEqual(read.status_code, 200, read.json)
				fieldname, value = UPDATES[doctype]
				updated = rest("put", resource(doctype, name), token, {fieldname: value})
				self.assertEqual(updated.status_code, 200, updated.json)
				self.assertEqual(updated.json["data"][fieldname], value)
				listed = rest("get", resource(doctype) + f'?filters=[["name","=","{name}"]]', token)
				self.assertEqual([row["name"] for row in listed.json["data"]], [name])

				deleted = rest("delete", resource(doctype, name), token)
				self.assertEqual(deleted.status_code, 202, deleted.json)
				self.assertEqual(rest("get", resource(doctype, name), token).status_code, 404)

	def test_plain_users_other_areas_and_guest_get_nothing(self):
		for doctype in seed_doctypes():
			doc = make(doctype)
			frappe.db.commit()
			fieldname, value = UPDATES[doctype]
			for who, token in self.outsiders(doctype).items():
				with self.subTest(doctype=doctype, who=who):
					payload = values(doctype)
					frappe.db.commit()
					calls = {
						"create": rest("post", resource(doctype), token, payload),
						"read": rest("get", resource(doctype, doc.name), token),
						"list": rest("get", resource(doctype), token),
						"update": rest("put", resource(doctype, doc.name), token, {fieldname: value}),
						"delete": rest("delete", resource(doctype, doc.name), token),
					}
					for call, response in calls.items():
						self.assertEqual(response.status_code, 403, f"{call}: {response.json}")
			self.assertTrue(frappe.db.exists(doctype, doc.name))
			self.assertNotEqual(frappe.db.get_value(doctype, doc.name, fieldname), value)

	def test_virtual_doctypes_are_read_by_their_role_and_written_by_nobody(self):
		for doctype in virtual_doctypes():
			token = self.tokens[area_role(doctype)]
			with self.subTest(doctype):
				listed = rest("get", resource(doctype), token)
				self.assertEqual(listed.status_code, 200, listed.json)
				for who, outsider in self.outsiders(doctype).items():
					self.assertEqual(rest("get", resource(doctype), outsider).status_code, 403, who)
				for token_, who in ((token, "its role"), (None, "Guest")):
					refused = rest("post", resource(doctype), token_, {"action": "forged"})
					self.assertEqual(refused.status_code, 403, f"{who}: {refused.json}")
