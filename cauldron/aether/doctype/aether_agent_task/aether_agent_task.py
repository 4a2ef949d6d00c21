import frappe
from frappe import _
from frappe.utils import get_datetime, now_datetime

from cauldron import db
from cauldron.aether import tasks
from cauldron.model import UUIDNamedDocument, check_range

# Statuses a task that requires approval moves to only once a HITL Approval of it is approved.
NEEDS_APPROVAL = ("ready", "running", "completed", "failed")


class ApprovalRequired(frappe.ValidationError):
	pass


class InvalidTransition(frappe.ValidationError):
	http_status_code = 409


class AetherAgentTask(UUIDNamedDocument):
	def before_insert(self):
		"""A new task is admitted by the runtime: awaiting approval, waiting for its time, or ready."""
		if (self.status or "pending") not in ("pending", "ready", "awaiting_approval"):
			frappe.throw(
				_("A new task starts pending; {0} is for the runtime to set.").format(
					frappe.bold(self.status)
				),
				InvalidTransition,
				title=_("Invalid status"),
			)
		not_before = get_datetime(self.not_before) if self.not_before else None
		self.status = tasks.admitted_status(bool(self.requires_approval), False, not_before, now_datetime())
		self.attempts = 0
		self.assigned_to = self.started_at = self.completed_at = self.lease_expires_at = None

	def validate(self):
		check_range(self, "priority", 1, 10)
		check_range(self, "max_attempts", 1, 100)
		self.check_transition()
		self.check_approval()

	def check_transition(self):
		before = self.get_doc_before_save()
		if before and self.has_value_changed("status"):
			try:
				tasks.check_transition(before.status, self.status)
			except tasks.InvalidTransition as e:
				frappe.throw(
					_("Task {0}: {1}.").format(frappe.bold(self.task_name), str(e)),
					InvalidTransition,
					title=_("Invalid status"),
				)

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
		if before and not before.requires_approval and self.requires_approval and self.status != "pending":
			frappe.throw(
				_("Task {0} is {1}: it can require approval only while pending.").format(
					frappe.bold(self.task_name), _(self.status)
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

	def after_insert(self):
		if self.requires_approval:
			request_approval(self)


def request_approval(task, approval_type: str = "task_execution", description: str | None = None):
	"""The HITL Approval a task that requires approval gets when it is created; the approval's own
	controller sets when it expires and assigns it to the approvers."""
	return frappe.get_doc(
		{
			"doctype": "Aether HITL Approval",
			"task": task.name,
			"approval_type": approval_type,
			"description": description or task.task_name,
			"details": frappe.as_json({"task_type": task.task_type, "parameters": task.parameters}),
		}
	).insert(ignore_permissions=True)


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


def on_doctype_update():
	cur = db.cursor()
	tasks.ensure_indexes(cur, "Aether Agent Task")
	tasks.migrate_statuses(cur)
