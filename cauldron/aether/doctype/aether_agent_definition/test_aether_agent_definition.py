import json
import uuid

import frappe
from frappe.tests.utils import FrappeTestCase

from cauldron import db
from cauldron.model import SecretInJSON
from cauldron.pg import tables
from cauldron.tests.factories import make


class TestAetherAgentDefinition(FrappeTestCase):
	def test_the_model_api_key_is_encrypted_never_in_the_model_config(self):
		with self.assertRaisesRegex(SecretInJSON, "Model API Key"):
			make(
				"Aether Agent Definition", model_config=json.dumps({"model": "gpt-4o", "api_key": "sk-live"})
			)
		definition = make(
			"Aether Agent Definition",
			model_api_key="sk-live-abc",
			model_config=json.dumps({"model": "gpt-4o", "max_tokens": 1024, "password_policy": {"min": 8}}),
		)
		self.assertEqual(definition.get_password("model_api_key"), "sk-live-abc")
		cur = db.cursor()
		cur.execute("SELECT d::text FROM aether.agent_definitions d WHERE id = %s", (definition.name,))
		self.assertNotIn("sk-live", cur.fetchone()[0])

	def test_deleting_a_definition_deletes_its_instances_and_their_interactions(self):
		instance = make("Aether Agent Instance")
		cur = db.cursor()
		tables.write_agent_interactions(
			cur, [tables.AgentInteraction(str(uuid.uuid4()), instance.name, "system", {"boot": True})]
		)
		frappe.delete_doc("Aether Agent Definition", instance.definition)
		self.assertFalse(frappe.db.exists("Aether Agent Instance", instance.name))
		cur.execute(
			"SELECT count(*) FROM aether.agent_interactions WHERE agent_instance_id = %s", (instance.name,)
		)
		self.assertEqual(cur.fetchone()[0], 0)
