import frappe
from frappe.tests.utils import FrappeTestCase

from cauldron import db
from cauldron.tests.factories import make


class TestLoreRelationship(FrappeTestCase):
	def test_confidence_is_a_probability(self):
		with self.assertRaisesRegex(frappe.ValidationError, "from 0 to 1"):
			make("Lore Relationship", confidence=1.5)

	def test_edges_join_their_entities_in_sql(self):
		edge = make("Lore Relationship", relationship_type="depends_on")
		cur = db.cursor()
		cur.execute(
			"""
			SELECT s.name, r.relationship_type, t.name, r.confidence
			FROM lore.relationships r
			JOIN lore.entities s ON s.id = r.source_entity_id
			JOIN lore.entities t ON t.id = r.target_entity_id
			WHERE r.id = %s
			""",
			(edge.name,),
		)
		names = [
			frappe.db.get_value("Lore Entity", e, "entity_name")
			for e in (edge.source_entity, edge.target_entity)
		]
		self.assertEqual(cur.fetchone(), (names[0], "depends_on", names[1], 0.9))
