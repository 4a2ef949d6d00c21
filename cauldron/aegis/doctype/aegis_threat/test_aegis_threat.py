import frappe
from frappe.tests.utils import FrappeTestCase

from cauldron.tests.factories import make


class TestAegisThreat(FrappeTestCase):
	def test_confidence_is_a_probability_and_required(self):
		with self.assertRaisesRegex(frappe.ValidationError, "from 0 to 1"):
			make("Aegis Threat", confidence=-0.1)
		self.assertEqual(make("Aegis Threat").status, "active")

	def test_severity_is_one_of_the_known_levels(self):
		with self.assertRaises(frappe.ValidationError):
			make("Aegis Threat", severity="apocalyptic")
