import frappe
from frappe.tests.utils import FrappeTestCase

from cauldron.tests.factories import make, user_with_roles

APPROVER = "cauldron-approval-approver@example.com"


class TestAetherHITLApproval(FrappeTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		user_with_roles(APPROVER, "Agent Operator")

	def tearDown(self):
		frappe.set_user("Administrator")

	def test_responding_records_who_and_when_and_reopening_clears_it(self):
		approval = make("Aether HITL Approval")
		self.assertIsNone(approval.responded_by)
		approval.status = "rejected"
		approval.response = '{"comment": "not now"}'
		approval.save()
		self.assertEqual(approval.responded_by, frappe.session.user)
		self.assertIsNotNone(approval.responded_at)
		approval.status = "pending"
		approval.save()
		self.assertIsNone(approval.responded_by)
		self.assertIsNone(approval.responded_at)

	def test_who_responded_cannot_be_rewritten(self):
		approval = make("Aether HITL Approval")
		frappe.set_user(APPROVER)
		approval.status = "approved"
		approval.save()
		responded_at = approval.responded_at
		frappe.set_user("Administrator")
		approval.reload()
		approval.responded_by, approval.responded_at = "Administrator", "2026-01-01 00:00:00"
		approval.notes = "Approved by the administrator, honest"
		approval.save()
		approval.reload()
		self.assertEqual((approval.responded_by, approval.responded_at), (APPROVER, responded_at))
		self.assertEqual(frappe.db.get_value("Aether Agent Task", approval.task, "approved_by"), APPROVER)

	def test_an_approval_stays_with_its_task(self):
		approval = make("Aether HITL Approval")
		approval.task = make("Aether Agent Task").name
		self.assertRaises(frappe.CannotChangeConstantError, approval.save)

	def test_requested_at_is_when_the_approval_was_asked_for(self):
		from cauldron import db

		approval = make("Aether HITL Approval")
		cur = db.cursor()
		cur.execute(
			"SELECT abs(extract(epoch FROM clock_timestamp() - requested_at)) < 60 FROM aether.hitl_approvals WHERE id = %s",
			(approval.name,),
		)
		self.assertTrue(cur.fetchone()[0])
