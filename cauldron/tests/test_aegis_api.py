"""Bench tier: cauldron.api.aegis over HTTP (Frappe's WSGI app): ingest of external security events
(normalised, a bad batch writes nothing and says why, only the writer roles), vulnerability import
deduplicated by vulnerability_id (updates in place), the overview's figures, and playbooks whose
rule or steps are bad refused on save."""

import json
import uuid
from datetime import datetime, timezone

import frappe
from frappe.tests.utils import FrappeTestCase

from cauldron import db
from cauldron.aegis import vulns
from cauldron.tests.factories import drop_user, make, rest, user_with_roles
from cauldron.tests.test_aegis_attack import loaded

ANALYST = "cauldron-aegis-api-analyst@example.com"
PLAIN = "cauldron-aegis-api-plain@example.com"
INGEST = "/api/method/cauldron.api.aegis.ingest"
IMPORT = "/api/method/cauldron.api.aegis.import_vulnerabilities"
VECTOR = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
LOW = "CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N"


class TestAegisAPI(FrappeTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.analyst = user_with_roles(ANALYST, "Security Analyst")
		cls.plain = user_with_roles(PLAIN)
		frappe.db.commit()

	@classmethod
	def tearDownClass(cls):
		frappe.db.rollback()
		drop_user(ANALYST)
		drop_user(PLAIN)
		frappe.db.commit()
		super().tearDownClass()

	def setUp(self):
		self.source = f"ids-{uuid.uuid4().hex[:8]}"

	def delete_events(self):
		frappe.db.rollback()
		db.cursor().execute("DELETE FROM aegis.security_events WHERE source = %s", (self.source,))
		frappe.db.commit()

	def stored(self):
		frappe.db.rollback()
		cur = db.cursor()
		cur.execute(
			"SELECT event_type, source, severity, event_time, raw_data FROM aegis.security_events"
			" WHERE source = %s ORDER BY event_time",
			(self.source,),
		)
		return cur.fetchall()

	def test_a_batch_is_normalised_and_written(self):
		batch = [
			{
				"event_type": "port_scan",
				"source": f" {self.source.upper()} ",
				"severity": "warning",
				"time": "2026-11-26T08:00:00Z",
				"raw_data": {"ip": "203.0.113.9"},
			},
			{"event_type": "malware", "source": self.source, "severity": 9.5, "time": 1_795_683_600},
		]
		response = rest("post", INGEST, self.analyst, {"events": batch})
		self.assertEqual(response.status_code, 200, response.data)
		self.assertEqual(response.json["message"], {"written": 2})
		rows = self.stored()
		self.assertEqual(
			[(r[0], r[1], r[2]) for r in rows],
			[("port_scan", self.source, "medium"), ("malware", self.source, "critical")],
		)
		self.assertEqual(rows[0][3], datetime(2026, 11, 26, 8, tzinfo=timezone.utc))
		self.assertEqual(rows[0][4], {"ip": "203.0.113.9"})
		# the JSON list as the whole request body
		response = rest("post", INGEST, self.analyst, [{"event_type": "x", "source": self.source}])
		self.assertEqual(response.status_code, 200, response.data)
		self.assertEqual(len(self.stored()), 3)

	def test_a_bad_batch_writes_nothing_and_says_why(self):
		batch = [
			{"event_type": "ok", "source": self.source},
			{"event_type": "", "source": self.source},
			{"event_type": "x", "source": self.source, "severity": "apocalyptic"},
			{"event_type": "x", "source": self.source, "colour": "red"},
		]
		response = rest("post", INGEST, self.analyst, {"events": batch})
		self.assertEqual(response.status_code, 417, response.data)
		text = response.data.decode()
		self.assertIn("3 bad events, nothing written", text)
		self.assertIn("event 2: event_type must be non-empty text", text)
		self.assertIn("event 3: severity", text)
		self.assertIn("event 4: unknown key 'colour'", text)
		self.assertEqual(self.stored(), [])
		for body in ({"events": []}, {"events": "not json"}, {"events": {"nested": []}}):
			self.assertEqual(rest("post", INGEST, self.analyst, body).status_code, 417, body)
		self.assertEqual(self.stored(), [])

	def test_only_writers_may_ingest(self):
		for token in (self.plain, None):
			response = rest("post", INGEST, token, {"events": [{"event_type": "x", "source": self.source}]})
			self.assertEqual(response.status_code, 403, response.data)
		self.assertEqual(self.stored(), [])

	def test_vulnerabilities_are_deduplicated_by_id_and_updated_in_place(self):
		vid = f"GHSA-{uuid.uuid4().hex[:4]}-test-aegs"
		record = {
			"id": vid,
			"aliases": ["CVE-2026-0001"],
			"summary": "Remote code execution in examplelib",
			"severity": [{"type": "CVSS_V3", "score": VECTOR}],
			"affected": [{"package": {"name": "examplelib", "ecosystem": "PyPI"}}],
		}
		first = rest("post", IMPORT, self.analyst, {"report": [record]})
		self.assertEqual(first.status_code, 200, first.data)
		self.assertEqual(
			{k: first.json["message"][k] for k in ("created", "updated", "unchanged")},
			{"created": 1, "updated": 0, "unchanged": 0},
		)
		(name,) = first.json["message"]["vulnerabilities"]
		again = rest("post", IMPORT, self.analyst, {"report": record})
		self.assertEqual(again.json["message"]["unchanged"], 1, again.data)
		frappe.db.rollback()
		frappe.db.set_value("Aegis Vulnerability", name, "status", "in_progress")
		frappe.db.commit()
		lower = {
			**record,
			"severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N"}],
		}
		lower["affected"] = [{"package": {"name": "otherlib", "ecosystem": "PyPI"}}]
		changed = rest(
			"post",
			IMPORT,
			self.analyst,
			{
				"report": {
					"results": [{"packages": [{"package": {"name": "otherlib"}, "vulnerabilities": [lower]}]}]
				}
			},
		)
		self.assertEqual(changed.json["message"]["updated"], 1, changed.data)
		frappe.db.rollback()
		self.assertEqual(
			frappe.get_all("Aegis Vulnerability", filters={"vulnerability_id": vid}, pluck="name"), [name]
		)
		doc = frappe.get_doc("Aegis Vulnerability", name)
		self.assertEqual(
			(doc.cvss_score, doc.severity, doc.status), (vulns.score(LOW)[0], "low", "in_progress")
		)
		self.assertEqual(set(loaded(doc.affected_systems)["packages"]), {"examplelib", "otherlib"})
		bad = rest("post", IMPORT, self.analyst, {"report": {"hello": "world"}})
		self.assertEqual(bad.status_code, 417)
		self.assertIn("not a vulnerability report", bad.data.decode())
		self.assertEqual(rest("post", IMPORT, self.plain, {"report": record}).status_code, 403)

	def test_cyclonedx_reports_are_imported(self):
		vid = f"CVE-2026-{uuid.uuid4().int % 90000 + 10000}"
		bom = {
			"bomFormat": "CycloneDX",
			"specVersion": "1.5",
			"components": [{"bom-ref": "pkg:pypi/lib@1.0", "name": "lib", "version": "1.0"}],
			"vulnerabilities": [
				{
					"id": vid,
					"ratings": [{"vector": VECTOR, "method": "CVSSv31"}],
					"description": "Bad thing",
					"affects": [{"ref": "pkg:pypi/lib@1.0"}],
				}
			],
		}
		response = rest("post", IMPORT, self.analyst, {"report": bom})
		self.assertEqual(response.status_code, 200, response.data)
		frappe.db.rollback()
		self.assertEqual(
			frappe.db.get_value("Aegis Vulnerability", {"vulnerability_id": vid}, "cvss_score"), 9.8
		)

	def test_the_overview_counts_open_incidents_events_sources_and_users(self):
		make("Aegis Security Incident", severity="critical", title=f"Overview {self.source}")
		cur = db.cursor()
		now = datetime.now(timezone.utc)
		user = f"overview-{self.source}@example.com"
		self.addCleanup(self.delete_events)
		cur.execute(
			"INSERT INTO aegis.security_events (event_time, event_type, source, severity, raw_data)"
			" SELECT %s - i * interval '1 second', 'probe', %s, 'high', jsonb_build_object('user', %s)"
			" FROM generate_series(1, 5000) i",  # enough to top the site's other users and sources
			(now, self.source, user),
		)
		frappe.db.commit()
		response = rest("get", "/api/method/cauldron.api.aegis.overview?days=1", self.analyst)
		self.assertEqual(response.status_code, 200, response.data)
		data = response.json["message"]
		self.assertGreaterEqual(data["open_incidents"]["critical"], 1)
		self.assertEqual(data["unit"], "hour")
		self.assertGreaterEqual(sum(b["events"] for b in data["events"]), 5000)
		self.assertGreaterEqual(sum(b["high"] for b in data["events"]), 5000)
		self.assertIn({"user": user, "events": 5000, "failed_logins": 0}, data["top_users"])
		self.assertIn({"source": self.source, "events": 5000}, data["top_sources"])
		self.assertEqual(rest("get", "/api/method/cauldron.api.aegis.overview", self.plain).status_code, 403)
		self.assertEqual(
			rest("get", "/api/method/cauldron.api.aegis.overview?days=365", self.analyst).status_code, 417
		)

	def test_a_playbook_with_a_bad_rule_or_bad_steps_is_refused(self):
		steps = json.dumps([{"action": "disable_user", "user": "{key}"}])
		for conditions, message in (
			({"match": {"event_type": {"like": "x"}}}, "unknown operator 'like'"),
			(
				{
					"match": {"event_type": "x"},
					"threshold": {"count": 5, "within": "1y", "group_by": "raw_data.user"},
				},
				"threshold.within",
			),
			({"threshold": {"count": 1}}, "needs 'match'"),
		):
			with self.assertRaisesRegex(frappe.ValidationError, message):
				make("Aegis Security Playbook", trigger_conditions=json.dumps(conditions), steps=steps)
		with self.assertRaisesRegex(frappe.ValidationError, "unknown action 'format_disk'"):
			make("Aegis Security Playbook", steps=json.dumps([{"action": "format_disk"}]))
		playbook = make(
			"Aegis Security Playbook",
			trigger_conditions=json.dumps({"match": {"event_type": "x"}}),
			steps=steps,
		)
		self.assertEqual(playbook.is_active, 1)
		frappe.db.rollback()
