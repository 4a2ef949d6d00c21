import frappe
from frappe.tests.utils import FrappeTestCase

from cauldron.tests.factories import make


class TestSynapseMetricAlert(FrappeTestCase):
	def test_alerts_are_made_by_the_evaluation_only_and_never_changed(self):
		metric = make("Synapse Analytics Metric")
		fields = {
			"metric": metric.name,
			"from_state": "ok",
			"to_state": "warning",
			"value": 3,
			"at": frappe.utils.now(),
		}
		with self.assertRaisesRegex(frappe.ValidationError, "not by hand"):
			frappe.get_doc({"doctype": "Synapse Metric Alert", **fields}).insert()
		alert = frappe.get_doc({"doctype": "Synapse Metric Alert", **fields})
		alert.flags.from_evaluation = True
		alert.insert()
		self.assertEqual(alert.metric_name, metric.metric_name)
		alert.value = 4
		with self.assertRaisesRegex(frappe.ValidationError, "cannot be changed"):
			alert.save()
		frappe.delete_doc("Synapse Analytics Metric", metric.name)
		self.assertFalse(frappe.db.exists("Synapse Metric Alert", alert.name))
