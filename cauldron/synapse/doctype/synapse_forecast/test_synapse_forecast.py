import frappe
from frappe.tests.utils import FrappeTestCase

from cauldron import db
from cauldron.tests.factories import make


class TestSynapseForecast(FrappeTestCase):
	def test_the_horizon_is_at_least_one_period(self):
		with self.assertRaisesRegex(frappe.ValidationError, "Forecast Horizon must be from 1"):
			make("Synapse Forecast", forecast_horizon=0)

	def test_forecasts_join_their_metric_in_sql(self):
		forecast = make("Synapse Forecast")
		cur = db.cursor()
		cur.execute(
			"""
			SELECT m.metric_name, f.forecast_horizon, f.forecast_data->'points'
			FROM synapse.forecasts f JOIN synapse.analytics_metrics m ON m.id = f.metric_id
			WHERE f.id = %s
			""",
			(forecast.name,),
		)
		metric_name = frappe.db.get_value("Synapse Analytics Metric", forecast.metric, "metric_name")
		self.assertEqual(cur.fetchone(), (metric_name, 90, [1, 2, 3]))
