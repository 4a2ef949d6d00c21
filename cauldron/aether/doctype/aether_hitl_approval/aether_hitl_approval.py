from datetime import timedelta

import frappe
from frappe import _
from frappe.desk.form import assign_to
from frappe.utils import now_datetime

from cauldron import db
from cauldron.aether import tasks
from cauldron.aether.doctype.aether_agent_definition.aether_agent_definition import (
	approvers_of,
	expiry_overrides,
	may_approve,
)
from cauldron.aether.doctype.aether_agent_task.aether_agent_task import latest_approval, update_approval
from cauldron.model import UUIDNamedDocument

# At most this many approvers are assigned an approval (a role may hold many users).
MAX_ASSIGNEES = 20


class SelfApproval(frappe.PermissionError):
	pass


class NotAnApprover(frappe.PermissionError):
	pass


class AetherHITLApproval(UUIDNamedDocument):
	def before_insert(self):
		definition = frappe.db.get_value("Aether Agent Task", self.task, "definition")
		overrides = (
			expiry_overrides(
				frappe.db.get_value("Aether Agent Definition", definition, "approval_expiry_hours")
			)
			if definition
			else {}
		)
		hours = tasks.approval_expiry_hours(self.approval_type, overrides)
		self.expires_at = now_datetime() + timedelta(hours=hours)

	def validate(self):
		self.set_response()
		if self.status == "approved" and self.has_value_changed("status") and self.responded_by == self.owner:
			frappe.throw(
				_("You asked for this approval, so someone else must give it."),
				SelfApproval,
				title=_("Approval by someone else"),
			)
		if self.has_value_changed("status") and self.status != "pending":
			before = self.get_doc_before_save()
			if self.status == "expired":
				frappe.throw(_("An approval expires by itself, when its time is up."), title=_("Expired"))
			if before and not may_approve(self.definition(), frappe.session.user):
				frappe.throw(
					_("Only the approvers named in agent definition {0} answer this approval.").format(
						frappe.bold(self.definition())
					),
					NotAnApprover,
					title=_("Not an approver"),
				)

	def definition(self) -> str | None:
		return frappe.db.get_value("Aether Agent Task", self.task, "definition")

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

	def after_insert(self):
		"""The approvers get it the Frappe way: an assignment (ToDo), a Notification Log, and an
		email where the site sends them. The requester is never one of them."""
		users = [u for u in approvers_of(self.definition()) if u != self.owner][:MAX_ASSIGNEES]
		if users:
			assign_to.add(
				{
					"assign_to": users,
					"doctype": self.doctype,
					"name": self.name,
					"description": _("Approve or reject: {0}").format(self.description or self.approval_type),
				},
				ignore_permissions=True,
			)

	def on_update(self):
		if not self.has_value_changed("status"):
			return
		update_approval(self.task)
		if self.status != "pending":
			assign_to.close_all_assignments(self.doctype, self.name, ignore_permissions=True)
		cur = db.cursor()
		if self.status == "approved":
			tasks.approve(cur, self.task)
		elif self.status in ("rejected", "expired", "cancelled"):
			status, requires_approval = frappe.db.get_value(
				"Aether Agent Task", self.task, ["status", "requires_approval"]
			)
			if status == "awaiting_approval" or (
				requires_approval and status in ("pending", "ready") and not latest_approval(self.task)
			):
				tasks.cancel(cur, self.task, _("approval {0} {1}").format(self.name, self.status))

	def after_delete(self):
		update_approval(self.task)


def on_doctype_update():
	tasks.ensure_indexes(db.cursor(), "Aether HITL Approval")
