import frappe
from frappe.model.base_document import get_controller
from frappe.tests.utils import FrappeTestCase

from cauldron import db, virtual
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

	def test_an_unfiltered_count_of_a_large_table_comes_from_its_statistics(self):
		cur = db.cursor()
		insert = (
			"INSERT INTO aegis.security_events (event_time, event_type, source, severity)"
			" SELECT '2026-05-01'::timestamptz + i * interval '1 minute', 'heartbeat', %s, 'info'"
			" FROM generate_series(1, %s) i"
		)
		source = f"agent-{uid()}"
		cur.execute(insert, (source, 50))
		cur.execute("ANALYZE aegis.security_events")
		cur.execute("SELECT count(*) FROM aegis.security_events")
		(analysed,) = cur.fetchone()
		cur.execute(insert, (source, 10))  # not in the statistics yet
		count = get_controller("Aegis Security Event").get_count
		limit = virtual.EXACT_COUNT_LIMIT
		virtual.EXACT_COUNT_LIMIT = analysed - 1  # as if the table were larger than the limit
		try:
			unfiltered = count({"doctype": "Aegis Security Event", "filters": []})
			filtered = count({"doctype": "Aegis Security Event", "filters": [["source", "=", source]]})
		finally:
			virtual.EXACT_COUNT_LIMIT = limit
		self.assertEqual(unfiltered, analysed)  # ANALYZE reads every row of a table this small
		self.assertEqual(filtered, 60)
