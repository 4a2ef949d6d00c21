import frappe
from frappe.tests.utils import FrappeTestCase

from cauldron import db
from cauldron.pg import vectors


class TestCauldronSettings(FrappeTestCase):
	def test_embedding_dimension_is_fixed_once_vector_tables_exist(self):
		settings = frappe.get_single("Cauldron Settings")
		try:
			current = vectors.table_dimension(db.cursor())
		except vectors.VectorsUnavailable:
			self.skipTest("pgvector is not installed in this site's database")
		settings.embedding_dimension = current + 1
		self.assertRaisesRegex(frappe.ValidationError, "fixed at", settings.save)

	def test_out_of_range_dimension_is_refused(self):
		settings = frappe.get_single("Cauldron Settings")
		settings.embedding_dimension = 5000
		self.assertRaisesRegex(frappe.ValidationError, "from 1 to 4000", settings.save)
