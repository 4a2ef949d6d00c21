import frappe
from frappe.tests.utils import FrappeTestCase

from cauldron.tests.factories import make


class TestSynapseAnalyticsMetric(FrappeTestCase):
	def test_deleting_a_metric_deletes_its_forecasts_and_clears_dashboard_components(self):
		metric = make("Synapse Analytics Metric")
		forecast = make("Synapse Forecast", metric=metric.name)
		dashboard = make(
			"Synapse Dashboard",
			components=[
				{"component_type": "chart", "title": "Trend", "metric": metric.name},
				{"component_type": "text", "title": "Notes"},
			],
		)
		frappe.delete_doc("Synapse Analytics Metric", metric.name)
		self.assertFalse(frappe.db.exists("Synapse Forecast", forecast.name))
		components = frappe.get_doc("Synapse Dashboard", dashboard.name).components
		self.assertEqual([(c.title, c.metric) for c in components], [("Trend", None), ("Notes", None)])

	def test_a_metric_is_a_percentage_or_a_currency_amount_not_both(self):
		with self.assertRaisesRegex(frappe.ValidationError, "not both"):
			make("Synapse Analytics Metric", is_percentage=1, is_currency=1, currency="USD")
		self.assertIsNone(make("Synapse Analytics Metric", currency="USD").currency)
