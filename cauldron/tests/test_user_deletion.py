"""Bench tier: deleting a Frappe User applies the seed's ON DELETE rules for core.users: what
belongs to the user goes, what merely names the user keeps its row with the reference cleared."""

import uuid

import frappe
from frappe.tests.utils import FrappeTestCase

from cauldron.tests.factories import drop_user, make, user_with_roles

USER = "cauldron-leaver@example.com"


class TestUserDeletion(FrappeTestCase):
	def test_the_users_memberships_mappings_and_profiles_go_and_references_are_cleared(self):
		user_with_roles(USER, "Knowledge Editor", "Agent Operator")
		owned = [
			make("Cauldron Team Member", user=USER),
			make("Cauldron Auth User Mapping", user=USER, auth_user_id=str(uuid.uuid4())),
			make("Lore Skill Profile", user=USER),
		]
		named = {
			make("Lore Document", created_by=USER): "created_by",
			make("Synapse Dashboard", created_by=USER): "created_by",
			make("Synapse Business Simulation", created_by=USER): "created_by",
			make("Aegis Security Incident", assigned_to=USER): "assigned_to",
			make("Aether Agent Task", created_by=USER): "created_by",
			make("Cauldron Storage Bucket", bucket_owner=USER): "bucket_owner",
			make("Cauldron Storage Object", object_owner=USER): "object_owner",
		}
		approval = make("Aether HITL Approval")
		frappe.set_user(USER)
		approval.status = "approved"
		approval.save()
		frappe.set_user("Administrator")
		approved = frappe.get_doc("Aether Agent Task", approval.task)
		self.assertEqual(approved.approved_by, USER)
		named[approved] = "approved_by"

		drop_user(USER)

		for doc in owned:
			self.assertFalse(frappe.db.exists(doc.doctype, doc.name), doc.doctype)
		for doc, fieldname in named.items():
			self.assertTrue(frappe.db.exists(doc.doctype, doc.name), doc.doctype)
			self.assertIsNone(frappe.db.get_value(doc.doctype, doc.name, fieldname), doc.doctype)
		self.assertIsNone(frappe.db.get_value("Aether HITL Approval", approval.name, "responded_by"))
