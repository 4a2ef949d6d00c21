import frappe
from frappe.model.base_document import get_controller
from frappe.tests.utils import FrappeTestCase

from cauldron import db
from cauldron.tests.factories import uid


class TestAegisSecurityEvent(FrappeTestCase):
	def test_incidents_filter_by_check_select_and_time_range(self):
		source = f"ids-{uid()}"
		cur = db.cursor()
		cur.execute(
			"""
			INSERT INTO aegis.security_events (event_time, event_type, source, severity, is_incident)
			VALUES ('2026-04-01 10:00+00', 'port_scan', %(s)s, 'low', false),
				('2026-04-01 11:00+00', 'malware', %(s)s, 'critical', true),
				('2026-04-03 11:00+00', 'malware', %(s)s, 'high', true)
			""",
			{"s": source},
		)
		incidents = frappe.get_list(
			"Aegis Security Event",
			filters={"source": source, "is_incident": 1, "severity": ["in", ["critical", "high"]]},
			pluck="event_type",
		)
		self.assertEqual(incidents, ["malware", "malware"])
		on_april_first = frappe.get_list(
			"Aegis Security Event",
			filters={"source": source, "event_time": ["between", ["2026-04-01", "2026-04-01"]]},
			pluck="severity",
			order_by="event_time asc",
		)
		self.assertEqual(on_april_first, ["low", "critical"])
		count = get_controller("Aegis Security Event").get_count(
			{
				"doctype": "Aegis Security Event",
				"filters": [["source", "=", source], ["severity", "!=", "low"]],
			}
		)
		self.assertEqual(count, 2)
