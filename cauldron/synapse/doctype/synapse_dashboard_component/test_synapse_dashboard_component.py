import uuid

from frappe.tests.utils import FrappeTestCase

from cauldron.tests.factories import make


class TestSynapseDashboardComponent(FrappeTestCase):
	def test_components_are_named_by_uuids_with_the_seeds_defaults(self):
		dashboard = make("Synapse Dashboard", components=[{"component_type": "kpi", "title": "Revenue"}])
		(component,) = dashboard.components
		self.assertEqual(str(uuid.UUID(component.name)), component.name)
		self.assertEqual(
			(component.time_range, component.refresh_frequency, component.size, component.is_active),
			("30d", "1h", "medium", 1),
		)
