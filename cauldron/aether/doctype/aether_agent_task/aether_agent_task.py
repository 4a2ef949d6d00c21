import frappe
from frappe import _
from frappe.utils import now_datetime

from cauldron.model import UUIDNamedDocument, check_range

# Statuses a task reaches only once it may run.
UNDER_WAY = ("running", "completed", "failed")


class AetherAgentTask(UUIDNamedDocument):
	def validate(self):
		check_range(self, "priority", 1, 10)
		self.check_approval()

	def check_approval(self):
		if not self.approved_by:
			self.approved_at = None
		elif not self.approved_at:
			self.approved_at = now_datetime()
		if self.requires_approval and not self.approved_by and self.status in UNDER_WAY:
			frappe.throw(
				_("Task {0} requires approval before it can be {1}.").format(
					frappe.bold(self.task_name), _(self.status)
				),
				title=_("Approval required"),
			)
