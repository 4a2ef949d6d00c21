"""Bench tier: Frappe's generic endpoints on Cauldron's DocTypes, as real HTTP requests. The list
view's sidebar and frappe.client.get_count answer on every virtual DocType and on Cauldron
Settings, and only to who may read them; counts cannot probe field contents; a write to a virtual
DocType and record_interactions refuse before telling whether a row exists."""

import json
import uuid

import frappe
from frappe.tests.utils import FrappeTestCase
from frappe.utils import now_datetime

from cauldron import db
from cauldron.tests.factories import (
	AREA_ROLE,
	area_role,
	delete_created_since,
	drop_user,
	make,
	resource,
	rest,
	user_with_roles,
	virtual_doctypes,
	write_real_rows,
)

PLAIN = "cauldron-generic-plain@example.com"
SYSTEM_MANAGER = "cauldron-generic-system-manager@example.com"


def role_user(role: str) -> str:
	return f"cauldron-generic-{frappe.scrub(role).replace('_', '-')}@example.com"


def method(name: str, **args) -> str:
	query = "&".join(f"{key}={frappe.utils.quote(str(value))}" for key, value in args.items())
	return f"/api/method/{name}?{query}"


class TestGenericEndpoints(FrappeTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.started = now_datetime()
		cls.tokens = {role: user_with_roles(role_user(role), role) for role in AREA_ROLE.values()}
		cls.plain = user_with_roles(PLAIN)
		cls.system_manager = user_with_roles(SYSTEM_MANAGER, "System Manager")
		cls.document = make("Lore Document", content=f"probe-{uuid.uuid4().hex}").name
		cls.instance = make("Aether Agent Instance").name
		write_real_rows(db.cursor(), cls.document, cls.instance)
		frappe.db.commit()

	@classmethod
	def tearDownClass(cls):
		delete_created_since(cls.started)
		for email in (PLAIN, SYSTEM_MANAGER, *map(role_user, AREA_ROLE.values())):
			drop_user(email)
		frappe.db.commit()
		super().tearDownClass()

	def test_the_list_sidebar_answers_on_every_virtual_doctype_for_its_readers_only(self):
		for doctype in virtual_doctypes():
			with self.subTest(doctype):
				url = method(
					"frappe.desk.reportview.get_sidebar_stats", stats='["_user_tags"]', doctype=doctype
				)
				response = rest("get", url, self.tokens[area_role(doctype)])
				self.assertEqual(response.status_code, 200, response.json)
				self.assertEqual(response.json["message"], {"stats": {}})
				self.assertEqual(rest("get", url, self.plain).status_code, 403)
				self.assertEqual(rest("get", url, None).status_code, 403)

	def test_get_count_counts_virtual_doctypes_for_their_readers_only(self):
		for doctype in virtual_doctypes():
			with self.subTest(doctype):
				url = method("frappe.client.get_count", doctype=doctype)
				response = rest("get", url, self.tokens[area_role(doctype)])
				self.assertEqual(response.status_code, 200, response.json)
				self.assertGreaterEqual(response.json["message"], 1)
				for token in (self.plain, None):
					refused = rest("get", url, token)
					self.assertEqual(refused.status_code, 403, refused.json)
					self.assertNotIn("tab", json.dumps(refused.json))
		filtered = method(
			"frappe.client.get_count",
			doctype="Lore Document Chunk",
			filters=json.dumps({"document_id": self.document}),
		)
		self.assertEqual(rest("get", filtered, self.tokens["Knowledge Editor"]).json["message"], 1)

	def test_get_count_of_cauldron_settings_is_one_for_its_readers_only(self):
		url = method("frappe.client.get_count", doctype="Cauldron Settings")
		response = rest("get", url, self.system_manager)
		self.assertEqual(response.status_code, 200, response.json)
		self.assertEqual(response.json["message"], 1)
		for token in (self.plain, self.tokens["Cauldron Manager"]):
			self.assertEqual(rest("get", url, token).status_code, 403)

	def test_get_count_cannot_probe_what_a_user_may_not_read(self):
		probe = frappe.db.get_value("Lore Document", self.document, "content")
		url = method(
			"frappe.client.get_count",
			doctype="Lore Document",
			filters=json.dumps([["content", "like", f"{probe}%"]]),
		)
		for token in (self.plain, self.tokens["Agent Operator"]):
			response = rest("get", url, token)
			self.assertEqual(response.status_code, 403, response.json)
			self.assertNotIn("message", response.json)
		self.assertEqual(rest("get", url, self.tokens["Knowledge Editor"]).json["message"], 1)

	def test_get_count_of_frappes_own_doctypes_is_frappes(self):
		url = method("frappe.client.get_count", doctype="ToDo")
		response = rest("get", url, self.plain)
		self.assertEqual(response.status_code, 200, response.json)
		self.assertEqual(response.json["message"], frappe.db.count("ToDo"))

	def test_a_write_to_a_virtual_doctype_tells_nobody_whether_the_row_exists(self):
		for doctype in virtual_doctypes():
			(existing,) = frappe.get_all(doctype, limit=1, pluck="name")
			missing = str(uuid.uuid4())
			for who, token in (("Guest", None), ("plain user", self.plain)):
				for verb in ("put", "delete"):
					with self.subTest(doctype=doctype, who=who, verb=verb):
						answers = [
							rest(
								verb,
								resource(doctype, name),
								token,
								{"action": "forged"} if verb == "put" else None,
							)
							for name in (existing, missing)
						]
						self.assertEqual([a.status_code for a in answers], [403, 403])
			token = self.tokens[area_role(doctype)]
			with self.subTest(doctype=doctype, who="its role"):
				for name in (existing, missing):
					answer = rest("put", resource(doctype, name), token, {"action": "forged"})
					self.assertEqual(answer.status_code, 403, answer.json)

	def test_record_interactions_tells_nobody_whether_an_instance_exists(self):
		interaction = {
			"session_id": str(uuid.uuid4()),
			"interaction_type": "user_message",
			"content": {"text": "hi"},
		}
		answers = {}
		for label, instance in (("existing", self.instance), ("missing", str(uuid.uuid4()))):
			for who, token in (
				("plain user", self.plain),
				("Synapse Analyst", self.tokens["Synapse Analyst"]),
			):
				response = rest(
					"post",
					"/api/method/cauldron.api.aether.record_interactions",
					token,
					{"interactions": [{**interaction, "agent_instance_id": instance}]},
				)
				answers[(label, who)] = (response.status_code, response.json.get("exception"))
				self.assertEqual(response.status_code, 403, response.json)
				self.assertNotIn("does not exist", json.dumps(response.json))
		self.assertEqual(answers[("existing", "plain user")], answers[("missing", "plain user")])
		cur = db.cursor()
		cur.execute(
			"SELECT count(*) FROM aether.agent_interactions WHERE session_id = %s::uuid",
			(interaction["session_id"],),
		)
		self.assertEqual(cur.fetchone()[0], 0)
