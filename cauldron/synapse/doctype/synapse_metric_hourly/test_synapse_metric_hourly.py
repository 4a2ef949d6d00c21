from datetime import datetime, timezone

import frappe
from frappe.tests.utils import FrappeTestCase

from cauldron import db
from cauldron.pg import timeseries
from cauldron.tests.factories import uid


class TestSynapseMetricHourly(FrappeTestCase):
	def test_the_hourly_rollup_is_listed_and_opens(self):
		cur = db.cursor()
		if timeseries.uses_timescale(cur):
			self.skipTest("the continuous aggregate refreshes on TimescaleDB's own schedule")
		metric = f"latency_{uid()}"
		timeseries.write_metrics(
			cur,
			[
				(datetime(2026, 3, 1, 9, minute, tzinfo=timezone.utc), metric, value, {"host": "a"})
				for minute, value in ((5, 10.0), (35, 30.0))
			],
		)
		timeseries.refresh_rollups(cur)
		(row,) = frappe.get_list(
			"Synapse Metric Hourly",
			filters={"metric_name": metric},
			fields=["name", "avg_value", "min_value", "max_value", "sample_count"],
		)
		self.assertEqual(
			(row.avg_value, row.min_value, row.max_value, row.sample_count), (20.0, 10.0, 30.0, 2)
		)
		self.assertEqual(frappe.get_doc("Synapse Metric Hourly", row.name).dimensions, {"host": "a"})
