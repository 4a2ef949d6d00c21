import frappe
from frappe.tests.utils import FrappeTestCase

from cauldron.aether.doctype.aether_agent_task.aether_agent_task import ApprovalRequired, InvalidTransition
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
		"""A task that requires approval, and the approval it gets when created."""
		frappe.set_user(REQUESTER)
		task = make("Aether Agent Task", requires_approval=1)
		self.assertEqual(task.status, "awaiting_approval")
		(approval,) = frappe.get_all("Aether HITL Approval", filters={"task": task.name}, pluck="name")
		return task, frappe.get_doc("Aether HITL Approval", approval)

	def respond(self, user: str, approval, status: str) -> None:
		frappe.set_user(user)
		approval.reload()
		approval.status = status
		approval.save()

	def test_approved_by_cannot_be_filled_in_to_let_a_task_run(self):
		task, _approval = self.request()
		task.reload()
		task.status = "ready"
		task.approved_by = "Administrator"
		self.assertRaisesRegex(ApprovalRequired, "needs an approved HITL Approval", task.save)
		for status in ("running", "completed"):  # not even a move the state machine has
			with self.subTest(status):
				task.reload()
				task.status = status
				task.approved_by = "Administrator"
				self.assertRaisesRegex(InvalidTransition, "cannot become", task.save)
		self.assertRaises(
			InvalidTransition,
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
		self.assertEqual(task.status, "ready")  # approved, it moves on by itself

	def test_a_rejected_approval_cancels_its_task_and_a_deleted_one_no_longer_approves(self):
		task, approval = self.request()
		self.respond(APPROVER, approval, "rejected")
		task.reload()
		self.assertEqual((task.status, task.approved_by), ("cancelled", None))
		task.status = "ready"
		self.assertRaisesRegex(InvalidTransition, "a cancelled task cannot become ready", task.save)

		task, approval = self.request()
		frappe.set_user("Administrator")
		frappe.delete_doc("Aether HITL Approval", approval.name)
		task.reload()
		self.assertEqual((task.status, task.approved_by, task.approved_at), ("awaiting_approval", None, None))
		task.status = "ready"
		self.assertRaises(ApprovalRequired, task.save)

	def test_every_status_change_is_checked(self):
		task = make("Aether Agent Task")
		self.assertEqual((task.status, task.attempts), ("ready", 0))
		task.status = "completed"
		self.assertRaisesRegex(InvalidTransition, "a ready task cannot become completed", task.save)
		task.reload()
		task.status = "cancelled"
		task.save()
		task.status = "running"
		self.assertRaisesRegex(InvalidTransition, "a cancelled task cannot become running", task.save)
		later = make("Aether Agent Task", not_before="2099-01-01 00:00:00")
		self.assertEqual(later.status, "pending")

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
