from datetime import datetime, timedelta, timezone

import frappe
from frappe.tests.utils import FrappeTestCase
from frappe.utils import convert_utc_to_system_timezone

from cauldron import db
from cauldron.pg import audit
from cauldron.tests.factories import uid


class TestCauldronAuditLog(FrappeTestCase):
	def test_rows_show_in_the_sites_time_zone_and_filter_by_resource(self):
		resource = f"doc-{uid()}"
		moment = datetime(2026, 1, 15, 15, 0, tzinfo=timezone.utc)
		audit.write_events(
			db.cursor(),
			[
				audit.AuditEvent(
					"insert", "ToDo", resource, "Administrator", None, {"a": 1}, created_at=moment
				),
				audit.AuditEvent("update", "ToDo", resource, "Administrator", {"a": 1}, {"a": 2}),
				audit.AuditEvent("insert", "Note", resource, "Administrator"),
			],
		)
		rows = frappe.get_list(
			"Cauldron Audit Log",
			filters={"resource_type": "ToDo", "resource_id": resource},
			fields=["name", "action", "created_at", "new_values"],
			order_by="created_at asc",
		)
		self.assertEqual([r.action for r in rows], ["insert", "update"])
		local = convert_utc_to_system_timezone(moment).replace(tzinfo=None)
		self.assertEqual(rows[0].created_at, local)
		self.assertEqual(rows[1].new_values, {"a": 2})
		earlier = frappe.get_list(
			"Cauldron Audit Log",
			filters=[["resource_id", "=", resource], ["created_at", "<", local + timedelta(hours=1)]],
			pluck="name",
		)
		self.assertEqual(earlier, [rows[0].name])

	def test_filter_values_of_the_wrong_type_are_refused_clearly(self):
		with self.assertRaisesRegex(frappe.ValidationError, "is not a date and time"):
			frappe.get_list("Cauldron Audit Log", filters={"created_at": ["<", "yesterday-ish"]})
		with self.assertRaises(frappe.DataError):
			frappe.get_list("Cauldron Audit Log", filters={"pii_salt": "x"})
