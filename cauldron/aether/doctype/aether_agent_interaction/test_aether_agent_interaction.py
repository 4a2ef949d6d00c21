import uuid

import frappe
from frappe.tests.utils import FrappeTestCase
from frappe.utils import now_datetime

from cauldron.tests.factories import delete_created_since, drop_user, make, rest, user_with_roles

OPERATOR = "cauldron-interaction-operator@example.com"
ANALYST = "cauldron-interaction-analyst@example.com"
RECORD = "/api/method/cauldron.api.aether.record_interactions"


class TestAetherAgentInteraction(FrappeTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.started = now_datetime()
		cls.operator = user_with_roles(OPERATOR, "Agent Operator")
		cls.analyst = user_with_roles(ANALYST, "Synapse Analyst")
		cls.instance = make("Aether Agent Instance").name
		frappe.db.commit()

	@classmethod
	def tearDownClass(cls):
		delete_created_since(cls.started)
		drop_user(OPERATOR)
		drop_user(ANALYST)
		frappe.db.commit()
		super().tearDownClass()

	def interaction(self, **fields):
		return {
			"agent_instance_id": self.instance,
			"session_id": str(uuid.uuid4()),
			"interaction_type": "agent_message",
			"content": {"text": "Done."},
			**fields,
		}

	def test_an_operator_records_a_batch_over_rest_and_reads_it_back(self):
		session = str(uuid.uuid4())
		batch = [
			self.interaction(session_id=session),
			self.interaction(session_id=session, interaction_type="tool_call"),
		]
		response = rest("post", RECORD, self.operator, {"interactions": batch})
		self.assertEqual(response.status_code, 200, response.json)
		self.assertEqual(len(response.json["message"]), 2)
		rows = frappe.get_list(
			"Aether Agent Interaction",
			filters={"agent_instance_id": self.instance, "session_id": session},
			pluck="interaction_type",
			order_by="interaction_type asc",
		)
		self.assertEqual(rows, ["agent_message", "tool_call"])

	def test_others_and_bad_batches_are_refused_whole(self):
		self.assertEqual(
			rest("post", RECORD, self.analyst, {"interactions": [self.interaction()]}).status_code, 403
		)
		self.assertEqual(rest("post", RECORD, None, {"interactions": [self.interaction()]}).status_code, 403)
		session = str(uuid.uuid4())
		bad_type = [
			self.interaction(session_id=session),
			self.interaction(session_id=session, interaction_type="yell"),
		]
		response = rest("post", RECORD, self.operator, {"interactions": bad_type})
		self.assertEqual(response.status_code, 417)
		self.assertIn("interaction_type must be one of", response.json["_server_messages"])
		unknown = rest(
			"post",
			RECORD,
			self.operator,
			{"interactions": [self.interaction(agent_instance_id=str(uuid.uuid4()))]},
		)
		# the same answer as for an instance the caller may not write: existence is not disclosed
		self.assertEqual(unknown.status_code, 403)
		self.assertEqual(frappe.get_list("Aether Agent Interaction", filters={"session_id": session}), [])

	def test_an_instance_id_in_any_uuid_spelling_names_the_instance(self):
		session = str(uuid.uuid4())
		batch = [
			self.interaction(session_id=session, agent_instance_id=self.instance.upper()),
			self.interaction(session_id=session, agent_instance_id="{" + self.instance + "}"),
			self.interaction(session_id=session, agent_instance_id=self.instance),
		]
		response = rest("post", RECORD, self.operator, {"interactions": batch})
		self.assertEqual(response.status_code, 200, response.json)
		self.assertEqual(
			frappe.get_list(
				"Aether Agent Interaction", filters={"session_id": session}, pluck="agent_instance_id"
			),
			[self.instance] * 3,
		)

	def test_an_instance_id_that_is_no_uuid_is_refused_clearly(self):
		session = str(uuid.uuid4())
		batch = [
			self.interaction(session_id=session),
			self.interaction(session_id=session, agent_instance_id="researcher-1"),
		]
		response = rest("post", RECORD, self.operator, {"interactions": batch})
		self.assertEqual(response.status_code, 417)
		self.assertIn("Interaction 2: agent_instance_id", response.json["_server_messages"])
		self.assertIn("is not a UUID", response.json["_server_messages"])
		self.assertEqual(frappe.get_list("Aether Agent Interaction", filters={"session_id": session}), [])

	def test_a_filter_on_a_uuid_column_says_what_is_wrong(self):
		with self.assertRaisesRegex(frappe.ValidationError, "is not a UUID"):
			frappe.get_list("Aether Agent Interaction", filters={"session_id": "yesterday"})
