"""The seed's ON DELETE rules for Cauldron's Link fields, applied when the linked document is deleted.

A Link not listed here blocks the delete (Frappe's own check, the seed's plain REFERENCES): a
storage bucket with objects cannot be deleted. Cascades delete each dependent document (so its own
rules and hooks run); set-null clears the Link in one statement without touching `modified`, as
SQL's SET NULL would, and so fires no document events.

Three Links have no foreign key in the seed: a bucket's and an object's owner (a Supabase user id)
and an agent instance's current task (agent_tasks is created after agent_instances there). They
are cleared when their target goes, rather than left dangling or blocking the delete.

Rows of the real tables that hang off a document (chunks, entity embeddings, agent interactions)
are deleted with it.
"""

from dataclasses import dataclass

CASCADE = "cascade"
SET_NULL = "set null"


@dataclass(frozen=True)
class Reference:
	doctype: str
	fieldname: str
	target: str
	on_delete: str


@dataclass(frozen=True)
class TableReference:
	table: str
	column: str
	target: str


REFERENCES = (
	Reference("Cauldron Team", "organization", "Cauldron Organization", CASCADE),
	Reference("Cauldron Team Member", "team", "Cauldron Team", CASCADE),
	Reference("Cauldron Team Member", "user", "User", CASCADE),
	Reference("Cauldron Auth User Mapping", "user", "User", CASCADE),
	Reference("Cauldron Storage Bucket", "bucket_owner", "User", SET_NULL),
	Reference("Cauldron Storage Object", "object_owner", "User", SET_NULL),
	Reference("Lore Document", "created_by", "User", SET_NULL),
	Reference("Lore Relationship", "source_entity", "Lore Entity", CASCADE),
	Reference("Lore Relationship", "target_entity", "Lore Entity", CASCADE),
	Reference("Lore Skill Profile", "user", "User", CASCADE),
	Reference("Aegis Security Incident", "assigned_to", "User", SET_NULL),
	Reference("Synapse Forecast", "metric", "Synapse Analytics Metric", CASCADE),
	Reference("Synapse Dashboard", "created_by", "User", SET_NULL),
	Reference("Synapse Dashboard Component", "metric", "Synapse Analytics Metric", SET_NULL),
	Reference("Synapse Analytics Metric", "subscriber_role", "Role", SET_NULL),
	Reference("Synapse Metric Subscriber", "user", "User", CASCADE),
	Reference("Synapse Metric Alert", "metric", "Synapse Analytics Metric", CASCADE),
	Reference("Synapse Business Simulation", "created_by", "User", SET_NULL),
	Reference("Aether Agent Instance", "definition", "Aether Agent Definition", CASCADE),
	Reference("Aether Agent Instance", "current_task", "Aether Agent Task", SET_NULL),
	Reference("Aether Agent Task", "assigned_to", "Aether Agent Instance", SET_NULL),
	Reference("Aether Agent Task", "created_by", "User", SET_NULL),
	Reference("Aether Agent Task", "approved_by", "User", SET_NULL),
	Reference("Aether Agent Task", "definition", "Aether Agent Definition", SET_NULL),
	Reference("Aether HITL Approval", "task", "Aether Agent Task", CASCADE),
	Reference("Aether HITL Approval", "responded_by", "User", SET_NULL),
)

TABLE_REFERENCES = (
	TableReference("lore.document_chunks", "document_id", "Lore Document"),
	TableReference("lore.entity_embeddings", "entity_id", "Lore Entity"),
	TableReference("aether.agent_interactions", "agent_instance_id", "Aether Agent Instance"),
)

# Every DocType whose deletion has to do something: hooks.doc_events lists exactly these.
TARGETS = tuple(sorted({r.target for r in REFERENCES} | {r.target for r in TABLE_REFERENCES}))


def on_trash(doc, method=None):
	"""doc_events on_trash of every target: runs before Frappe's check for remaining links."""
	import frappe
	from psycopg2 import sql

	from cauldron import db

	for ref in REFERENCES:
		if ref.target != doc.doctype:
			continue
		if ref.on_delete == CASCADE:
			for name in frappe.get_all(ref.doctype, filters={ref.fieldname: doc.name}, pluck="name"):
				frappe.delete_doc(ref.doctype, name, ignore_permissions=True)
		else:
			frappe.db.set_value(
				ref.doctype, {ref.fieldname: doc.name}, ref.fieldname, None, update_modified=False
			)
	cur = None
	for ref in TABLE_REFERENCES:
		if ref.target != doc.doctype:
			continue
		cur = cur or db.cursor()
		cur.execute("SELECT to_regclass(%s) IS NOT NULL", (ref.table,))
		if cur.fetchone()[0]:
			schema, table = ref.table.split(".")
			cur.execute(
				sql.SQL("DELETE FROM {} WHERE {} = %s").format(
					sql.Identifier(schema, table), sql.Identifier(ref.column)
				),
				(doc.name,),
			)
