import frappe
from frappe.tests.utils import FrappeTestCase

from cauldron import db
from cauldron.pg import vectors
from cauldron.tests.factories import make


class TestLoreDocumentChunk(FrappeTestCase):
	def test_a_documents_chunks_list_in_order_with_their_embedding_state(self):
		cur = db.cursor()
		try:
			dimension = vectors.table_dimension(cur)
		except vectors.VectorsUnavailable:
			self.skipTest("pgvector is not installed in this site's database")
		document = make("Lore Document")
		vectors.replace_document_chunks(
			cur,
			document.name,
			[vectors.Chunk(0, "first", [0.1] * dimension), vectors.Chunk(1, "second", None, {"page": 2})],
		)
		chunks = frappe.get_list(
			"Lore Document Chunk",
			filters={"document_id": document.name},
			fields=["name", "chunk_index", "has_embedding", "content"],
			order_by="chunk_index asc",
		)
		self.assertEqual(
			[(c.chunk_index, c.has_embedding, c.content) for c in chunks], [(0, 1, "first"), (1, 0, "second")]
		)
		self.assertEqual(frappe.get_doc("Lore Document Chunk", chunks[1].name).metadata, {"page": 2})
