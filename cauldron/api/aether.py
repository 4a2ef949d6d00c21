"""Aether endpoints: /api/method/cauldron.api.aether.<name>"""

import uuid

import frappe
from frappe import _

from cauldron import db, params
from cauldron.pg import tables, values

MAX_BATCH = 5000


@frappe.whitelist(methods=["POST"])
@params.checked(json=("interactions",))
def record_interactions(interactions) -> list[str]:
	"""Record agent interactions in aether.agent_interactions with one statement; returns their ids.

	`interactions` is a list of {agent_instance_id, session_id, interaction_type, content, metadata}.
	The caller needs write permission on each agent instance named (an Agent Operator has it); one it
	may not write and one that does not exist get the same refusal. The batch is checked whole before
	anything is written: one bad interaction records none of them.
	"""
	frappe.has_permission("Aether Agent Instance", "write", throw=True)
	if not isinstance(interactions, list) or not interactions:
		frappe.throw(_("interactions must be a non-empty list"), params.InvalidParameter)
	if len(interactions) > MAX_BATCH:
		frappe.throw(
			_("At most {0} interactions per call, not {1}").format(MAX_BATCH, len(interactions)),
			params.InvalidParameter,
		)
	rows = []
	for position, item in enumerate(interactions, 1):
		if not isinstance(item, dict):
			frappe.throw(_("Interaction {0} is not an object").format(position), params.InvalidParameter)
		rows.append(
			tables.AgentInteraction(
				session_id=item.get("session_id"),
				agent_instance_id=instance_id(item.get("agent_instance_id"), position),
				interaction_type=item.get("interaction_type"),
				content=item.get("content"),
				metadata=item.get("metadata"),
			)
		)
	instances = sorted({row.agent_instance_id for row in rows})
	found = set(frappe.get_all("Aether Agent Instance", filters={"name": ("in", instances)}, pluck="name"))
	for instance in instances:
		if instance not in found or not frappe.has_permission("Aether Agent Instance", "write", doc=instance):
			frappe.throw(
				_("You may not record interactions of agent instance {0}").format(instance),
				frappe.PermissionError,
				title=_("Not permitted"),
			)
	with params.refused(_("Invalid agent interaction")):
		return tables.write_agent_interactions(db.cursor(), rows)


def instance_id(value, position: int) -> str:
	"""The instance's name: its UUID in the canonical form (lower case) that names it."""
	try:
		return str(uuid.UUID(str(value)))
	except ValueError:
		frappe.throw(
			_("Interaction {0}: agent_instance_id {1} is not a UUID").format(
				position, frappe.bold(values.shown(value))
			),
			params.InvalidParameter,
			title=_("Invalid agent interaction"),
		)
