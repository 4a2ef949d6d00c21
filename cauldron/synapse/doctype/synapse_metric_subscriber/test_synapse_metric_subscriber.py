from frappe.tests.utils import FrappeTestCase


class TestSynapseMetricSubscriber(FrappeTestCase):
	pass  # covered by cauldron.tests.test_synapse_metrics (subscribers notified, a deleted user's rows go)
