import frappe
from frappe.tests.utils import FrappeTestCase

from cauldron.aether.doctype.aether_agent_task.aether_agent_task import ApprovalRequired
from cauldron.aether.doctype.aether_hitl_approval.aether_hitl_approval import SelfApproval
from cauldron.tests.factories import make, user_with_roles

REQUESTER = "cauldron-task-requester@example.com"
APPROVER = "cauldron-task-approver@example.com"


class TestAetherAgentTask(FrappeTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		user_with_roles(REQUESTER, "Agent Operator")
		user_with_roles(APPROVER, "Agent Operator")

	def tearDown(self):
		frappe.set_user("Administrator")

	def request(self):
		"""A task that requires approval, and the approval its operator asks for."""
		frappe.set_user(REQUESTER)
		task = make("Aether Agent Task", requires_approval=1, status="awaiting_approval")
		return task, make("Aether HITL Approval", task=task.name, approval_type="task_execution")

	def respond(self, user: str, approval, status: str) -> None:
		frappe.set_user(user)
		approval.reload()
		approval.status = status
		approval.save()

	def test_approved_by_cannot_be_filled_in_to_let_a_task_run(self):
		task, _approval = self.request()
		for status in ("approved", "running", "completed"):
			with self.subTest(status):
				task.reload()
				task.status = status
				task.approved_by = "Administrator"
				self.assertRaisesRegex(ApprovalRequired, "needs an approved HITL Approval", task.save)
		self.assertRaises(
			ApprovalRequired,
			make,
			"Aether Agent Task",
			requires_approval=1,
			status="running",
			approved_by=APPROVER,
		)
		unrequired = make("Aether Agent Task", approved_by=APPROVER, approved_at="2026-01-01 00:00:00")
		self.assertEqual((unrequired.approved_by, unrequired.approved_at), (None, None))

	def test_the_requester_cannot_approve_and_someone_else_can(self):
		task, approval = self.request()
		self.assertRaises(SelfApproval, self.respond, REQUESTER, approval, "approved")
		task.reload()
		self.assertIsNone(task.approved_by)

		self.respond(APPROVER, approval, "approved")
		task.reload()
		self.assertEqual((task.approved_by, task.approved_at), (APPROVER, approval.responded_at))
		frappe.set_user(REQUESTER)
		task.status = "running"
		task.save()
		task.status = "completed"
		task.save()

	def test_an_approval_rejected_or_deleted_no_longer_approves_the_task(self):
		task, approval = self.request()
		self.respond(APPROVER, approval, "approved")
		self.respond(APPROVER, approval, "rejected")
		task.reload()
		self.assertIsNone(task.approved_by)
		task.status = "running"
		self.assertRaises(ApprovalRequired, task.save)

		self.respond(APPROVER, approval, "approved")
		frappe.delete_doc("Aether HITL Approval", approval.name)
		task.reload()
		self.assertEqual((task.approved_by, task.approved_at), (None, None))
		task.status = "approved"
		self.assertRaises(ApprovalRequired, task.save)

	def test_requiring_approval_cannot_be_taken_back(self):
		task, _approval = self.request()
		task.reload()
		task.requires_approval = 0
		self.assertRaisesRegex(ApprovalRequired, "cannot be taken back", task.save)

	def test_priority_runs_from_1_to_10(self):
		with self.assertRaisesRegex(frappe.ValidationError, "Priority must be from 1 to 10"):
			make("Aether Agent Task", priority=11)
		self.assertEqual(make("Aether Agent Task").priority, 5)

	def test_deleting_a_task_deletes_its_approvals_and_clears_instances_working_on_it(self):
		task, approval = self.request()
		self.respond(APPROVER, approval, "approved")
		frappe.set_user("Administrator")
		instance = make("Aether Agent Instance", current_task=task.name)
		frappe.delete_doc("Aether Agent Task", task.name)
		self.assertFalse(frappe.db.exists("Aether Agent Task", task.name))
		self.assertFalse(frappe.db.exists("Aether HITL Approval", approval.name))
		self.assertIsNone(frappe.db.get_value("Aether Agent Instance", instance.name, "current_task"))
