import json

import frappe
from frappe.tests.utils import FrappeTestCase

from cauldron import db
from cauldron.tests.factories import make


class TestSynapseBusinessSimulation(FrappeTestCase):
	def test_a_simulation_needs_a_model(self):
		with self.assertRaises(frappe.MandatoryError):
			make("Synapse Business Simulation", model_definition=None)

	def test_results_keep_their_json_shape_in_sql(self):
		results = [{"scenario": "base", "revenue": 1.0}, {"scenario": "high", "revenue": 1.2}]
		simulation = make("Synapse Business Simulation", results=json.dumps(results), status="completed")
		cur = db.cursor()
		cur.execute(
			"SELECT jsonb_array_length(results), status, created_by IS NOT NULL"
			" FROM synapse.business_simulations WHERE id = %s",
			(simulation.name,),
		)
		self.assertEqual(cur.fetchone(), (2, "completed", True))
