import frappe
from frappe.tests.utils import FrappeTestCase

from cauldron import db
from cauldron.model import InvalidJSON
from cauldron.pg import vectors
from cauldron.tests.factories import make


class TestLoreDocument(FrappeTestCase):
	def test_deleting_a_document_deletes_its_chunks(self):
		cur = db.cursor()
		try:
			vectors.table_dimension(cur)
		except vectors.VectorsUnavailable:
			self.skipTest("pgvector is not installed in this site's database")
		document, other = make("Lore Document"), make("Lore Document")
		for doc in (document, other):
			vectors.replace_document_chunks(
				cur, doc.name, [vectors.Chunk(0, "one", None), vectors.Chunk(1, "two", None)]
			)
		frappe.delete_doc("Lore Document", document.name)
		cur.execute(
			"SELECT document_id, count(*) FROM lore.document_chunks WHERE document_id IN (%s, %s) GROUP BY 1",
			(document.name, other.name),
		)
		self.assertEqual(cur.fetchall(), [(other.name, 2)])

	def test_malformed_json_is_refused_with_a_clear_error(self):
		with self.assertRaisesRegex(InvalidJSON, "Metadata is not valid JSON"):
			make("Lore Document", metadata='{"source": ')

	def test_the_creator_defaults_to_the_session_user(self):
		document = make("Lore Document")
		self.assertEqual(document.created_by, frappe.session.user)
		cur = db.cursor()
		cur.execute(
			"SELECT created_by = md5('User:' || %s)::uuid FROM lore.documents WHERE id = %s",
			(frappe.session.user, document.name),
		)
		self.assertTrue(cur.fetchone()[0])
