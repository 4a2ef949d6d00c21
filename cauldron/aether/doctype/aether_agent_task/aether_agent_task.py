import frappe
from frappe import _

from cauldron.model import UUIDNamedDocument, check_range

# Statuses a task that requires approval moves to only once a HITL Approval of it is approved.
NEEDS_APPROVAL = ("approved", "running", "completed", "failed")


class ApprovalRequired(frappe.ValidationError):
	pass


class AetherAgentTask(UUIDNamedDocument):
	def validate(self):
		check_range(self, "priority", 1, 10)
		self.check_approval()

	def check_approval(self):
		approval = latest_approval(self.name)
		# Who approved and when come from the approval, whatever the form or REST call sent.
		self.approved_by, self.approved_at = approval or (None, None)
		before = self.get_doc_before_save()
		if before and before.requires_approval and not self.requires_approval:
			frappe.throw(
				_("Task {0} requires approval, and that cannot be taken back.").format(
					frappe.bold(self.task_name)
				),
				ApprovalRequired,
				title=_("Approval required"),
			)
		if (
			self.requires_approval
			and not approval
			and self.status in NEEDS_APPROVAL
			and self.has_value_changed("status")
		):
			frappe.throw(
				_("Task {0} needs an approved HITL Approval before it can be {1}.").format(
					frappe.bold(self.task_name), _(self.status)
				),
				ApprovalRequired,
				title=_("Approval required"),
			)


def latest_approval(task: str) -> tuple | None:
	"""(responded_by, responded_at) of the task's latest approved HITL Approval, if any."""
	return frappe.db.get_value(
		"Aether HITL Approval",
		{"task": task, "status": "approved"},
		["responded_by", "responded_at"],
		order_by="responded_at desc",
	)


def update_approval(task: str) -> None:
	"""After an approval of `task` changes or goes. Written without document events, as derived
	values are (see cauldron.relations): the audit log records the approval's own change."""
	approved_by, approved_at = latest_approval(task) or (None, None)
	frappe.db.set_value("Aether Agent Task", task, {"approved_by": approved_by, "approved_at": approved_at})
