import json

import frappe
from frappe import _

from cauldron.aegis.playbooks import compile_steps
from cauldron.aegis.rules import RuleError, compile_rule
from cauldron.model import UUIDNamedDocument


def _parsed(value):
	if isinstance(value, str):
		return json.loads(value) if value.strip() else None
	return value


class AegisSecurityPlaybook(UUIDNamedDocument):
	def validate(self):
		"""The rule and the steps are checked here, so the detection job never meets a bad one."""
		try:
			conditions = _parsed(self.trigger_conditions)
			if conditions:
				compile_rule(self.name or "new", conditions)
			if self.steps:  # none: Frappe's own mandatory check says so
				compile_steps(_parsed(self.steps))
		except (RuleError, ValueError) as e:
			frappe.throw(str(e), title=_("Invalid playbook"))
