import frappe
from frappe.tests.utils import FrappeTestCase

from cauldron.tests.factories import make


class TestAetherHITLApproval(FrappeTestCase):
	def test_responding_records_who_and_when_and_reopening_clears_it(self):
		approval = make("Aether HITL Approval")
		self.assertIsNone(approval.responded_by)
		approval.status = "approved"
		approval.response = '{"comment": "go ahead"}'
		approval.save()
		self.assertEqual(approval.responded_by, frappe.session.user)
		self.assertIsNotNone(approval.responded_at)
		approval.status = "pending"
		approval.save()
		self.assertIsNone(approval.responded_by)
		self.assertIsNone(approval.responded_at)

	def test_requested_at_is_when_the_approval_was_asked_for(self):
		from cauldron import db

		approval = make("Aether HITL Approval")
		cur = db.cursor()
		cur.execute(
			"SELECT abs(extract(epoch FROM clock_timestamp() - requested_at)) < 60 FROM aether.hitl_approvals WHERE id = %s",
			(approval.name,),
		)
		self.assertTrue(cur.fetchone()[0])
