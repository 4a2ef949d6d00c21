"""Bench tier: the site's own security signals land in aegis.security_events (cauldron.aegis.signals):
logins and a login from a new IP over HTTP, role, enabled, password, reset and API secret changes,
permission and two-factor changes, 403 answers, exports and a broken audit chain; a rolled-back
change leaves no event."""

import json
import random
import uuid
from datetime import datetime, timezone

import frappe
from frappe.core.doctype.user.user import generate_keys
from frappe.tests.utils import FrappeTestCase

from cauldron import db
from cauldron.aegis import signals
from cauldron.pg.audit import Verification
from cauldron.tests.factories import drop_user, user_with_roles
from cauldron.tests.test_aegis_attack import HTTP

# new users each run: events outlive them, and a login from a "new IP" depends on earlier logins
USER = f"cauldron-aegis-signals-{uuid.uuid4().hex[:8]}@example.com"
PLAIN = f"cauldron-aegis-plain-{uuid.uuid4().hex[:8]}@example.com"
PASSWORD = "Cauldron-Signals-9f3!x"


class TestAegisSignals(FrappeTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.http = HTTP()
		user_with_roles(USER, "Security Analyst")
		cls.plain = user_with_roles(PLAIN)
		frappe.db.commit()

	@classmethod
	def tearDownClass(cls):
		frappe.db.rollback()
		drop_user(USER)
		drop_user(PLAIN)
		frappe.db.commit()
		super().tearDownClass()

	def setUp(self):
		self.since = datetime.now(timezone.utc)  # the server runs on this clock too

	def events(self, event_type: str, user: str = USER) -> list[dict]:
		cur = db.cursor()
		cur.execute(
			"""
			SELECT severity, raw_data FROM aegis.security_events
			WHERE event_type = %s AND source = 'frappe' AND raw_data->>'user' = %s AND event_time >= %s
			ORDER BY event_time
			""",
			(event_type, user, self.since),
		)
		return [{"severity": s, **(raw or {})} for s, raw in cur.fetchall()]

	def test_user_changes_are_events_written_with_their_commit_and_dropped_with_a_rollback(self):
		user = frappe.get_doc("User", USER)
		user.append("roles", {"role": "System Manager"})
		user.enabled = 0
		user.save(ignore_permissions=True)
		frappe.db.rollback()
		self.assertEqual(self.events("role_granted"), [])

		user = frappe.get_doc("User", USER)
		user.append("roles", {"role": "System Manager"})
		user.save(ignore_permissions=True)
		user.remove_roles("System Manager")
		user.reload()
		user.enabled = 0
		user.save(ignore_permissions=True)
		user.enabled = 1
		user.new_password = PASSWORD
		user.save(ignore_permissions=True)
		frappe.db.commit()
		(granted,) = self.events("role_granted")
		self.assertEqual(
			(granted["severity"], granted["role"], granted["actor"]),
			("high", "System Manager", "Administrator"),
		)
		self.assertEqual([e["role"] for e in self.events("role_revoked")], ["System Manager"])
		self.assertEqual(len(self.events("user_disabled")), 1)
		self.assertEqual(len(self.events("user_enabled")), 1)
		self.assertEqual(len(self.events("password_changed")), 1)

	def test_a_new_user_s_roles_are_granted_roles(self):
		email = f"cauldron-aegis-new-{uuid.uuid4().hex[:8]}@example.com"
		user_with_roles(email, "System Manager", "Security Analyst")
		frappe.db.commit()
		granted = [(e["role"], e["severity"]) for e in self.events("role_granted", email)]
		drop_user(email)
		frappe.db.commit()
		self.assertEqual(granted, [("Security Analyst", "medium"), ("System Manager", "high")])

	def test_api_secret_generation_and_a_password_reset_request(self):
		generate_keys(USER)
		frappe.get_doc("User", USER).reset_password()
		frappe.db.commit()
		(secret,) = self.events("api_secret_generated")
		self.assertEqual(secret["severity"], "high")
		self.assertEqual(secret["api_key"], frappe.db.get_value("User", USER, "api_key"))
		self.assertEqual(len(self.events("password_reset_requested")), 1)

	def test_permission_and_two_factor_changes(self):
		role = frappe.get_doc(
			{"doctype": "Role", "role_name": f"Aegis Signals {uuid.uuid4().hex[:6]}"}
		).insert()
		frappe.get_doc(
			{"doctype": "Custom DocPerm", "parent": "ToDo", "role": role.name, "read": 1, "permlevel": 0}
		).insert(ignore_permissions=True)
		granted = frappe.get_doc(
			{"doctype": "User Permission", "user": USER, "allow": "Role", "for_value": role.name}
		).insert(ignore_permissions=True)
		granted.delete()
		role.two_factor_auth = 1
		role.save()
		role.two_factor_auth = 0
		role.save()
		signals._flush()  # as at commit, without committing the changes
		cur = db.cursor()
		cur.execute(
			"""
			SELECT event_type, severity, raw_data->>'kind', raw_data->>'action' FROM aegis.security_events
			WHERE event_time >= %s AND (raw_data->>'role' = %s OR raw_data->>'for_value' = %s
				OR raw_data->>'name' = %s)
			ORDER BY event_time, event_type
			""",
			(self.since, role.name, role.name, role.name),
		)
		self.assertEqual(
			cur.fetchall(),
			[
				("permission_changed", "medium", "Custom DocPerm", "created"),
				("permission_changed", "medium", "User Permission", "created"),
				("permission_changed", "medium", "User Permission", "deleted"),
				("two_factor_settings_changed", "medium", None, None),
				("two_factor_settings_changed", "high", None, None),  # turned off
			],
		)
		frappe.db.rollback()

	def test_logins_over_http_and_a_login_from_a_new_ip(self):
		frappe.db.set_value("User", USER, "enabled", 1)
		from frappe.utils.password import update_password

		update_password(USER, PASSWORD)
		frappe.db.commit()
		home = f"198.51.100.{random.randint(1, 254)}"
		away = f"192.0.2.{random.randint(1, 254)}"
		for ip in (home, away, away):
			response = self.http.post(
				"/api/method/login", data={"usr": USER, "pwd": PASSWORD}, headers={"X-Forwarded-For": ip}
			)
			self.assertEqual(response.status_code, 200, response.text[:300])
		response = self.http.post(
			"/api/method/login", data={"usr": USER, "pwd": "not it"}, headers={"X-Forwarded-For": home}
		)
		self.assertEqual(response.status_code, 401)
		frappe.db.rollback()
		self.assertEqual([e["ip"] for e in self.events("login_success")], [home, away, away])
		(new_ip,) = self.events("login_new_ip")  # the first login is no "new" IP; the second one is
		self.assertEqual((new_ip["ip"], new_ip["severity"]), (away, "medium"))
		(failed,) = self.events("login_failed")
		self.assertEqual(failed["ip"], home)

	def test_a_refused_request_and_an_export_are_events(self):
		response = self.http.post(
			"/api/method/frappe.client.get_list",
			json_body={"doctype": "Aegis Security Incident"},
			headers={"Authorization": f"token {self.plain}"},
		)
		self.assertEqual(response.status_code, 403)
		analyst = user_with_roles(USER, "Security Analyst")
		frappe.db.commit()
		response = self.http.post(
			"/api/method/frappe.desk.reportview.export_query",
			data={
				"doctype": "Aegis Vulnerability",
				"file_format_type": "CSV",
				"fields": json.dumps(["name", "title"]),
				"filters": json.dumps([]),
			},
			headers={"Authorization": f"token {analyst}"},
		)
		self.assertEqual(response.status_code, 200, response.text[:300])
		frappe.db.rollback()
		(denied,) = self.events("permission_denied", PLAIN)
		self.assertEqual((denied["path"], denied["method"]), ("/api/method/frappe.client.get_list", "POST"))
		(export,) = self.events("data_export", USER)
		self.assertEqual((export["doctype"], export["file_format"]), ("Aegis Vulnerability", "CSV"))

	def test_a_broken_audit_chain_is_a_critical_event(self):
		signals.audit_verified(Verification(10, 0))  # intact: nothing
		signals.audit_verified(Verification(10, 0, 11, str(uuid.uuid4()), "row hash does not match"))
		cur = db.cursor()
		cur.execute(
			"SELECT severity, raw_data->>'reason' FROM aegis.security_events"
			" WHERE event_type = 'audit_chain_broken' AND event_time >= %s",
			(self.since,),
		)
		self.assertEqual(cur.fetchall(), [("critical", "row hash does not match")])
