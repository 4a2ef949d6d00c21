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

	def test_settings_saved_before_an_upgrade_added_a_mandatory_field_still_save(self):
		# what a site migrated from a version without Embedding Provider holds: no value for it
		frappe.db.set_single_value("Cauldron Settings", "embedding_provider", None)
		frappe.clear_document_cache("Cauldron Settings", "Cauldron Settings")
		settings = frappe.get_single("Cauldron Settings")
		self.assertFalse(settings.embedding_provider)
		settings.metrics_retention_days = settings.metrics_retention_days or 90
		settings.save()
		self.assertEqual(frappe.db.get_single_value("Cauldron Settings", "embedding_provider"), "Local")
