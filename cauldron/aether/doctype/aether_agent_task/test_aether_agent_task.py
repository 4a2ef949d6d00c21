import frappe
from frappe.tests.utils import FrappeTestCase

from cauldron.tests.factories import make


class TestAetherAgentTask(FrappeTestCase):
	def test_a_task_that_requires_approval_runs_only_once_approved(self):
		task = make("Aether Agent Task", requires_approval=1)
		task.status = "running"
		self.assertRaisesRegex(frappe.ValidationError, "requires approval", task.save)
		task.reload()
		task.status = "running"
		task.approved_by = "Administrator"
		task.save()
		self.assertIsNotNone(task.approved_at)

	def test_priority_runs_from_1_to_10(self):
		with self.assertRaisesRegex(frappe.ValidationError, "Priority must be from 1 to 10"):
			make("Aether Agent Task", priority=11)
		self.assertEqual(make("Aether Agent Task").priority, 5)

	def test_deleting_a_task_deletes_its_approvals_and_clears_instances_working_on_it(self):
		approval = make("Aether HITL Approval")
		instance = make("Aether Agent Instance", current_task=approval.task)
		frappe.delete_doc("Aether Agent Task", approval.task)
		self.assertFalse(frappe.db.exists("Aether HITL Approval", approval.name))
		self.assertIsNone(frappe.db.get_value("Aether Agent Instance", instance.name, "current_task"))
