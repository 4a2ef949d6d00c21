import json

import frappe
from frappe import _

from cauldron.aether import tasks, tools
from cauldron.model import UUIDNamedDocument, refuse_secrets


class AetherAgentDefinition(UUIDNamedDocument):
	def validate(self):
		refuse_secrets(self, "model_config", "model_api_key")
		self.check_runtime()

	def check_runtime(self):
		try:
			tools.allow_list(
				json.loads(self.tools) if isinstance(self.tools, str) and self.tools else self.tools
			)
		except (ValueError, tools.ToolError) as e:
			frappe.throw(_("Tools: {0}").format(e), title=_("Tools"))
		try:
			self.task_types = "\n".join(tasks.task_types_of(self.task_types)) or None
		except tasks.TaskError as e:
			frappe.throw(str(e), title=_("Task Types"))
		approvers = tasks.parse_lines(self.approvers)
		for approver in approvers:
			if not (frappe.db.exists("User", approver) or frappe.db.exists("Role", approver)):
				frappe.throw(
					_("Approver {0} is neither a user nor a role.").format(frappe.bold(approver)),
					title=_("Approvers"),
				)
		self.approvers = "\n".join(approvers) or None
		hours = expiry_overrides(self.approval_expiry_hours)
		for approval_type in hours:
			if approval_type not in tasks.APPROVAL_TYPES:
				frappe.throw(
					_("Approval Expiry: {0} is not an approval type ({1}).").format(
						frappe.bold(approval_type), ", ".join(tasks.APPROVAL_TYPES)
					),
					title=_("Approval Expiry"),
				)
			try:
				tasks.approval_expiry_hours(approval_type, hours)
			except tasks.TaskError as e:
				frappe.throw(str(e), title=_("Approval Expiry"))


def expiry_overrides(value) -> dict:
	"""The definition's approval expiry hours per approval type ({} when none)."""
	if isinstance(value, str):
		value = json.loads(value or "{}")
	if value is None:
		return {}
	if not isinstance(value, dict):
		frappe.throw(_("Approval Expiry must be an object of hours per approval type."))
	return value


def approvers_of(definition: str | None) -> list[str]:
	"""Users who may approve the tasks of `definition`: those it names and the enabled users of the
	roles it names; Agent Operators when it names none."""
	named = (
		tasks.parse_lines(frappe.db.get_value("Aether Agent Definition", definition, "approvers"))
		if definition
		else []
	)
	roles = [n for n in named if not frappe.db.exists("User", n)] if named else ["Agent Operator"]
	users = [n for n in named if frappe.db.exists("User", n)]
	if roles:
		users += frappe.get_all(
			"Has Role",
			filters={
				"role": ("in", roles),
				"parenttype": "User",
				"parent": ("not in", ("Administrator", "Guest")),
			},
			pluck="parent",
		)
	enabled = set(frappe.get_all("User", filters={"name": ("in", users or [""]), "enabled": 1}, pluck="name"))
	return sorted(u for u in set(users) if u in enabled)


def may_approve(definition: str | None, user: str) -> bool:
	"""Whether `user` may answer an approval of a task of `definition` (the administrator always may)."""
	if user == "Administrator":
		return True
	named = (
		tasks.parse_lines(frappe.db.get_value("Aether Agent Definition", definition, "approvers"))
		if definition
		else []
	)
	if not named:
		return True  # write permission on the approval (Agent Operator) decides
	return user in named or bool(set(named) & set(frappe.get_roles(user)))
