from datetime import datetime, timedelta, timezone

import frappe
from frappe.tests.utils import FrappeTestCase

from cauldron import db
from cauldron.pg import timeseries
from cauldron.tests.factories import uid


class TestSynapseMetric(FrappeTestCase):
	def test_each_point_is_named_so_that_its_form_opens(self):
		metric = f"queue_depth_{uid()}"
		start = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)
		timeseries.write_metrics(
			db.cursor(),
			[(start + timedelta(minutes=i), metric, float(i), {"queue": "default"}) for i in range(3)],
		)
		rows = frappe.get_list(
			"Synapse Metric", filters={"metric_name": metric}, fields=["name", "value"], order_by="value desc"
		)
		self.assertEqual([r.value for r in rows], [2.0, 1.0, 0.0])
		point = frappe.get_doc("Synapse Metric", rows[-1].name)
		self.assertEqual(
			(point.metric_name, point.value, point.dimensions), (metric, 0.0, {"queue": "default"})
		)
		# Same time, another hash: no such point.
		other = rows[-1].name[:-1] + ("1" if rows[-1].name.endswith("0") else "0")
		self.assertRaises(frappe.DoesNotExistError, frappe.get_doc, "Synapse Metric", other)

	def test_like_and_in_filters(self):
		suffix = uid()
		moment = datetime(2026, 3, 2, tzinfo=timezone.utc)
		timeseries.write_metrics(
			db.cursor(),
			[
				(moment, f"cpu_{suffix}", 1, {}),
				(moment, f"mem_{suffix}", 2, {}),
				(moment, f"disk_{suffix}", 3, {}),
			],
		)
		self.assertEqual(
			frappe.get_list(
				"Synapse Metric",
				filters={"metric_name": ["like", f"%_{suffix}"]},
				pluck="value",
				order_by="value asc",
			),
			[1.0, 2.0, 3.0],
		)
		names = [f"cpu_{suffix}", f"disk_{suffix}"]
		self.assertEqual(
			sorted(
				frappe.get_list("Synapse Metric", filters={"metric_name": ["in", names]}, pluck="metric_name")
			),
			names,
		)
