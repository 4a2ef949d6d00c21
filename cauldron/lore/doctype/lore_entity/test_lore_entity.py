import frappe
from frappe.tests.utils import FrappeTestCase

from cauldron import db
from cauldron.pg import vectors
from cauldron.tests.factories import make


class TestLoreEntity(FrappeTestCase):
	def test_deleting_an_entity_deletes_its_edges_both_ways_and_its_embedding(self):
		entity = make("Lore Entity")
		outgoing = make("Lore Relationship", source_entity=entity.name)
		incoming = make("Lore Relationship", target_entity=entity.name)
		unrelated = make("Lore Relationship")
		cur = db.cursor()
		has_vectors = True
		try:
			vectors.set_entity_embedding(
				cur, entity.name, [0.1] * vectors.table_dimension(cur, "lore.entity_embeddings")
			)
		except vectors.VectorsUnavailable:
			has_vectors = False
		frappe.delete_doc("Lore Entity", entity.name)
		self.assertFalse(frappe.db.exists("Lore Relationship", outgoing.name))
		self.assertFalse(frappe.db.exists("Lore Relationship", incoming.name))
		self.assertTrue(frappe.db.exists("Lore Relationship", unrelated.name))
		if has_vectors:
			cur.execute("SELECT count(*) FROM lore.entity_embeddings WHERE entity_id = %s", (entity.name,))
			self.assertEqual(cur.fetchone()[0], 0)
