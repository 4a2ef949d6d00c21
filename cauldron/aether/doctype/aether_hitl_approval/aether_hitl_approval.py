import frappe
from frappe import _
from frappe.utils import now_datetime

from cauldron.aether.doctype.aether_agent_task.aether_agent_task import update_approval
from cauldron.model import UUIDNamedDocument


class SelfApproval(frappe.PermissionError):
	pass


class AetherHITLApproval(UUIDNamedDocument):
	def validate(self):
		self.set_response()
		if self.status == "approved" and self.has_value_changed("status") and self.responded_by == self.owner:
			frappe.throw(
				_("You asked for this approval, so someone else must give it."),
				SelfApproval,
				title=_("Approval by someone else"),
			)

	def set_response(self):
		"""Whoever moves the request out of pending is the one who responded, and then; nothing
		else sets these fields."""
		if self.status == "pending":
			self.responded_by = self.responded_at = None
		elif self.has_value_changed("status"):
			self.responded_by, self.responded_at = frappe.session.user, now_datetime()
		else:
			before = self.get_doc_before_save()
			self.responded_by, self.responded_at = before.responded_by, before.responded_at

	def on_update(self):
		if self.has_value_changed("status"):
			update_approval(self.task)

	def after_delete(self):
		update_approval(self.task)
