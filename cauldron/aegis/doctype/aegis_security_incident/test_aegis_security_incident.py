import frappe
from frappe.tests.utils import FrappeTestCase

from cauldron.tests.factories import drop_user, make, user_with_roles

ANALYST = "cauldron-incident-analyst@example.com"


class TestAegisSecurityIncident(FrappeTestCase):
	def test_resolved_at_is_set_on_resolution_and_cleared_on_reopening(self):
		incident = make("Aegis Security Incident")
		self.assertIsNone(incident.resolved_at)
		incident.status = "resolved"
		incident.save()
		resolved_at = incident.resolved_at
		self.assertIsNotNone(resolved_at)
		incident.status = "closed"
		incident.save()
		self.assertEqual(incident.resolved_at, resolved_at)
		incident.status = "investigating"
		incident.save()
		self.assertIsNone(incident.resolved_at)

	def test_an_incident_outlives_its_assignee(self):
		user_with_roles(ANALYST, "Security Analyst")
		incident = make("Aegis Security Incident", assigned_to=ANALYST)
		drop_user(ANALYST)
		self.assertTrue(frappe.db.exists("Aegis Security Incident", incident.name))
		self.assertIsNone(frappe.db.get_value("Aegis Security Incident", incident.name, "assigned_to"))
