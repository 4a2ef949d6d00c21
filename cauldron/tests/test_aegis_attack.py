"""Bench tier, Aegis as an attack: 30 failed logins through a real HTTP POST to /api/method/login for
one user from one IP -> after the detection job, exactly one incident holding those 30 events, its
playbook's "disable user" step waiting for an Aether HITL Approval; the requester may not approve
it, someone else may, and then the user is disabled; every step is in the incident's timeline and in
core.audit_log. The same with a rejected and an expired approval: the step is skipped.

The requests go to the bench's web server (BENCH_URL, default http://127.0.0.1:8000, serving this
site) when it answers, otherwise through Frappe's WSGI app in a thread (frappe's test client)."""

import json
import os
import random
import uuid
from datetime import datetime, timedelta, timezone

import frappe
import requests
from frappe.tests.test_api import make_request
from frappe.tests.utils import FrappeTestCase
from frappe.utils.password import get_decrypted_password

from cauldron import db
from cauldron.aegis import jobs
from cauldron.aether import jobs as aether_jobs
from cauldron.aether.doctype.aether_hitl_approval.aether_hitl_approval import SelfApproval
from cauldron.tests.factories import CLIENT, drop_user, make, user_with_roles

BENCH_URL = os.environ.get("BENCH_URL", "http://127.0.0.1:8000")
VICTIM = "cauldron-aegis-victim@example.com"
APPROVER = "cauldron-aegis-approver@example.com"
ANALYST = "cauldron-aegis-analyst@example.com"
INCIDENT = "Aegis Security Incident"
ATTEMPTS = 30


def _server_up() -> bool:
	try:
		response = requests.get(
			BENCH_URL + "/api/method/ping", timeout=3, headers={"Host": frappe.local.site}
		)
		return response.ok
	except requests.RequestException:
		return False


class HTTP:
	"""POSTs to the bench's web server (real HTTP) or, when it is down, to Frappe's WSGI app."""

	def __init__(self):
		self.real = _server_up()

	def post(self, path, data=None, json_body=None, headers=None):
		headers = {"Host": frappe.local.site, **(headers or {})}
		if self.real:
			return requests.post(BENCH_URL + path, data=data, json=json_body, headers=headers, timeout=60)
		kwargs = {"headers": headers}
		if data is not None:
			kwargs["data"] = data
		if json_body is not None:
			kwargs["json"] = json_body
		response = make_request(target=CLIENT.post, args=(path,), kwargs=kwargs)
		response.ok = response.status_code < 400
		return response


def loaded(value):
	"""A JSON field's value, parsed (text, or already parsed by the driver)."""
	return json.loads(value) if isinstance(value, str) else value


def _json_of(response) -> dict:
	return response.json() if callable(getattr(response, "json", None)) else response.json


class TestAegisAttack(FrappeTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.http = HTTP()
		user_with_roles(VICTIM, "Security Analyst")
		frappe.db.set_value("User", VICTIM, "enabled", 1)
		cls.approver = user_with_roles(APPROVER, "Agent Operator")
		cls.analyst = user_with_roles(ANALYST, "Security Analyst")
		frappe.db.commit()
		jobs.detect()  # events from before this test are evaluated before its playbooks exist

	@classmethod
	def tearDownClass(cls):
		drop_user(VICTIM)
		drop_user(APPROVER)
		drop_user(ANALYST)
		frappe.db.commit()
		super().tearDownClass()

	def setUp(self):
		self.playbooks = []

	def tearDown(self):
		frappe.db.rollback()
		for name in self.playbooks:
			frappe.db.set_value("Aegis Security Playbook", name, "is_active", 0)
			for incident in frappe.get_all(INCIDENT, filters={"detection_rule": name}, pluck="name"):
				frappe.db.set_value(INCIDENT, incident, "status", "closed")
		frappe.db.set_value("User", VICTIM, "enabled", 1)
		frappe.db.commit()

	def playbook(self, steps, **fields) -> str:
		doc = frappe.get_doc(
			{
				"doctype": "Aegis Security Playbook",
				"playbook_name": f"Brute force {uuid.uuid4().hex[:8]}",
				"is_automated": 1,
				"requires_approval": 1,
				"trigger_conditions": json.dumps(
					{
						"match": {"event_type": "login_failed", "source": "frappe", "raw_data.user": VICTIM},
						"threshold": {"count": 5, "within": "10m", "group_by": "raw_data.user"},
						"severity": "high",
						"title": "Brute force against {key}",
					}
				),
				"steps": json.dumps(steps),
				**fields,
			}
		).insert()
		self.playbooks.append(doc.name)
		frappe.db.commit()
		return doc.name

	def attack(self) -> list[str]:
		"""30 failed logins for VICTIM from one (fresh) IP; returns the ids of their events."""
		ip = f"203.0.{random.randint(0, 255)}.{random.randint(1, 254)}"
		since = datetime.now(timezone.utc) - timedelta(seconds=1)
		for attempt in range(ATTEMPTS):
			response = self.http.post(
				"/api/method/login",
				data={"usr": VICTIM, "pwd": f"wrong-{attempt}"},
				headers={"X-Forwarded-For": ip, "User-Agent": "aegis-attack-test/1.0"},
			)
			# 401 until Frappe locks the user out after its allowed attempts, then 500 (its
			# SecurityException has no HTTP status): refused either way
			self.assertIn(response.status_code, (401, 500), response.text[:300])
		frappe.db.rollback()  # see what the server committed
		cur = db.cursor()
		cur.execute(
			"""
			SELECT id::text, raw_data->>'ip', raw_data->>'user_agent' FROM aegis.security_events
			WHERE event_type = 'login_failed' AND raw_data->>'user' = %s AND raw_data->>'ip' = %s
				AND event_time >= %s
			ORDER BY event_time
			""",
			(VICTIM, ip, since),
		)
		rows = cur.fetchall()
		self.assertEqual(len(rows), ATTEMPTS)
		self.assertEqual({(r[1], r[2]) for r in rows}, {(ip, "aegis-attack-test/1.0")})
		return [r[0] for r in rows]

	def incidents(self, playbook: str) -> list:
		frappe.db.rollback()
		return frappe.get_all(INCIDENT, filters={"detection_rule": playbook}, pluck="name")

	def audit_steps(self, incident: str) -> list[tuple]:
		cur = db.cursor()
		cur.execute(
			"""
			SELECT new_values->>'step', new_values->>'status' FROM core.audit_log
			WHERE resource_type = %s AND resource_id = %s AND action = 'aegis_step' ORDER BY created_at
			""",
			(INCIDENT, incident),
		)
		return [(int(step), status) for step, status in cur.fetchall()]

	def respond(self, approval: str, decision: str):
		return self.http.post(
			"/api/method/cauldron.api.aether.respond",
			json_body={"approval": approval, "decision": decision},
			headers={"Authorization": f"token {self.approver}"},
		)

	def test_thirty_failed_logins_one_incident_and_the_user_disabled_once_someone_else_approves(self):
		playbook = self.playbook([{"action": "disable_user", "user": "{key}"}])
		events = self.attack()
		jobs.detect()
		(name,) = self.incidents(playbook)
		incident = frappe.get_doc(INCIDENT, name)
		self.assertEqual(set(loaded(incident.related_events)["events"]), set(events))
		self.assertEqual((incident.event_count, incident.detection_key), (ATTEMPTS, VICTIM))
		self.assertEqual((incident.title, incident.severity), (f"Brute force against {VICTIM}", "high"))
		cur = db.cursor()
		cur.execute(
			"SELECT count(*) FROM aegis.security_events WHERE id = ANY(%s::uuid[]) AND is_incident", (events,)
		)
		self.assertEqual(cur.fetchone()[0], ATTEMPTS)

		(step,) = loaded(incident.response_steps)["steps"]
		self.assertEqual(
			(step["action"], step["params"], step["status"]),
			("disable_user", {"user": VICTIM}, "waiting_approval"),
		)
		approval = frappe.get_doc("Aether HITL Approval", step["approval"])
		self.assertEqual(
			(approval.status, approval.task, approval.owner), ("pending", step["task"], "Administrator")
		)
		self.assertIsNotNone(approval.expires_at)  # Aether's expiry for the approval type
		self.assertEqual(
			frappe.db.get_value("Aether Agent Task", step["task"], "status"), "awaiting_approval"
		)

		jobs.detect()  # a re-run finds nothing new: still one incident, still waiting
		self.assertEqual(self.incidents(playbook), [name])
		self.assertEqual(frappe.db.get_value("User", VICTIM, "enabled"), 1)

		# separation of duties: whoever asked (the detection job's user) cannot approve
		approval.status = "approved"
		with self.assertRaises(SelfApproval):
			approval.save()
		frappe.db.rollback()

		response = self.respond(approval.name, "approve")
		self.assertEqual(response.status_code, 200, response.text[:500])
		self.assertEqual(_json_of(response)["message"]["task_status"], "completed")
		frappe.db.rollback()
		self.assertEqual(frappe.db.get_value("User", VICTIM, "enabled"), 0)
		incident = frappe.get_doc(INCIDENT, name)
		(step,) = loaded(incident.response_steps)["steps"]
		self.assertEqual(step["status"], "done")
		kinds = [e["kind"] for e in loaded(incident.timeline)["entries"]]
		self.assertEqual(
			kinds, ["detected", "playbook_started", "step_waiting_approval", "approved", "step_done"]
		)
		self.assertEqual(self.audit_steps(name), [(0, "waiting_approval"), (0, "done")])
		entries = loaded(incident.timeline)["entries"]
		by = {e["kind"]: e["by"] for e in entries}
		self.assertEqual(
			(by["step_waiting_approval"], by["approved"], by["step_done"]),
			("Administrator", APPROVER, APPROVER),
		)

	def test_a_security_analyst_answers_a_step_from_the_incident(self):
		playbook = self.playbook(
			[
				{"action": "add_note", "note": "Brute force against {key} reviewed"},
				{"action": "disable_user", "user": "{key}"},
			]
		)
		self.attack()
		jobs.detect()
		(name,) = self.incidents(playbook)
		first, second = loaded(frappe.db.get_value(INCIDENT, name, "response_steps"))["steps"]
		path = "/api/method/cauldron.api.aegis.respond_step"

		def answer(token, approval, decision="approve", incident=name):
			return self.http.post(
				path,
				json_body={
					"incident": incident,
					"approval": approval,
					"decision": decision,
					"notes": "checked",
				},
				headers={"Authorization": f"token {token}"},
			)

		# an Agent Operator is not a security analyst; a wrong decision or approval is refused
		self.assertEqual(answer(self.approver, first["approval"]).status_code, 403)
		self.assertEqual(answer(self.analyst, first["approval"], "maybe").status_code, 417)
		self.assertEqual(answer(self.analyst, "no-such-approval").status_code, 409)
		self.assertEqual(
			answer(self.analyst, first["approval"], incident="no-such-incident").status_code, 404
		)
		self.assertEqual(answer(self.analyst, first["approval"]).status_code, 200)
		frappe.db.rollback()
		first, second = loaded(frappe.db.get_value(INCIDENT, name, "response_steps"))["steps"]
		self.assertEqual((first["status"], second["status"]), ("done", "waiting_approval"))
		self.assertEqual(
			frappe.db.get_value("Aether HITL Approval", first["approval"], "responded_by"), ANALYST
		)
		# answered already: a second answer is a conflict; the next step is rejected, the user stays
		self.assertEqual(answer(self.analyst, first["approval"]).status_code, 409)
		self.assertEqual(answer(self.analyst, second["approval"], "reject").status_code, 200)
		frappe.db.rollback()
		self.assertEqual(frappe.db.get_value("User", VICTIM, "enabled"), 1)
		steps = loaded(frappe.db.get_value(INCIDENT, name, "response_steps"))["steps"]
		self.assertEqual([s["status"] for s in steps], ["done", "skipped"])

	def test_a_rejected_step_is_skipped_and_the_next_one_asks_for_its_approval(self):
		playbook = self.playbook(
			[
				{"action": "disable_user", "user": "{key}"},
				{"action": "add_note", "note": "Brute force against {key} reviewed"},
			]
		)
		self.attack()
		jobs.detect()
		(name,) = self.incidents(playbook)
		first, second = loaded(frappe.db.get_value(INCIDENT, name, "response_steps"))["steps"]
		self.assertEqual((first["status"], second["status"]), ("waiting_approval", "pending"))

		response = self.respond(first["approval"], "reject")
		self.assertEqual(response.status_code, 200, response.text[:500])
		frappe.db.rollback()
		self.assertEqual(frappe.db.get_value("User", VICTIM, "enabled"), 1)
		first, second = loaded(frappe.db.get_value(INCIDENT, name, "response_steps"))["steps"]
		self.assertEqual((first["status"], second["status"]), ("skipped", "waiting_approval"))
		self.assertEqual(frappe.db.get_value("Aether Agent Task", first["task"], "status"), "cancelled")

		# the second approval expires unanswered: Aether's job expires it, Aegis's skips the step
		frappe.db.set_value("Aether HITL Approval", second["approval"], "expires_at", "2000-01-01 00:00:00")
		frappe.db.commit()
		aether_jobs.maintain_tasks()
		jobs.detect()
		frappe.db.rollback()
		steps = loaded(frappe.db.get_value(INCIDENT, name, "response_steps"))["steps"]
		self.assertEqual([s["status"] for s in steps], ["skipped", "skipped"])
		self.assertEqual(
			self.audit_steps(name),
			[(0, "waiting_approval"), (0, "skipped"), (1, "waiting_approval"), (1, "skipped")],
		)

	def test_an_automated_playbook_without_approval_runs_its_steps_at_once(self):
		definition = make("Aether Agent Definition", agent_name=f"Aegis triage {uuid.uuid4().hex[:6]}")
		frappe.db.commit()
		playbook = self.playbook(
			[
				{"action": "add_note", "note": "Locked out {key}"},
				{"action": "revoke_access", "user": "{key}"},
				{"action": "notify_role", "role": "Agent Operator", "message": "{title} ({severity})"},
				{
					"action": "open_agent_task",
					"agent_definition": definition.agent_name,
					"task_type": "analysis",
					"title": "Investigate {incident}",
					"priority": 2,
				},
				{"action": "disable_user", "user": "{key}"},
				{"action": "disable_user", "user": "Administrator"},
			],
			requires_approval=0,
		)
		self.assertTrue(frappe.db.get_value("User", VICTIM, "api_key"))
		self.attack()
		jobs.detect()
		(name,) = self.incidents(playbook)
		incident = frappe.get_doc(INCIDENT, name)
		steps = loaded(incident.response_steps)["steps"]
		self.assertEqual([s["status"] for s in steps], ["done"] * 5 + ["failed"])
		self.assertIn("never disabled", steps[5]["error"])
		self.assertEqual(frappe.db.get_value("User", "Administrator", "enabled"), 1)
		self.assertEqual(frappe.db.get_value("User", VICTIM, "enabled"), 0)
		# revoke_access: no API key, no secret
		self.assertFalse(frappe.db.get_value("User", VICTIM, "api_key"))
		self.assertIsNone(get_decrypted_password("User", VICTIM, "api_secret", raise_exception=False))
		# notify_role: the role's users are told, with the incident
		note = frappe.db.get_value(
			"Notification Log",
			{"for_user": APPROVER, "document_type": INCIDENT, "document_name": name},
			"subject",
		)
		self.assertEqual(note, f"Brute force against {VICTIM} (high)")
		# open_agent_task: a task for the definition, the incident in its parameters
		(task,) = frappe.get_all(
			"Aether Agent Task",
			filters={"definition": definition.name},
			fields=["task_name", "task_type", "priority", "parameters"],
		)
		self.assertEqual(
			(task.task_name, task.task_type, task.priority), (f"Investigate {name}", "analysis", 2)
		)
		self.assertEqual(loaded(task.parameters)["aegis_incident"], name)
		texts = [e["text"] for e in loaded(incident.timeline)["entries"]]
		self.assertIn(f"Locked out {VICTIM}", texts)
		self.assertEqual(self.audit_steps(name), [(i, "done") for i in range(5)] + [(5, "failed")])
