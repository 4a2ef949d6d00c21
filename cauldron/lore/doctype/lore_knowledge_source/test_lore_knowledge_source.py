import json

import frappe
from frappe.tests.utils import FrappeTestCase

from cauldron import db
from cauldron.model import SecretInJSON
from cauldron.tests.factories import make


class TestLoreKnowledgeSource(FrappeTestCase):
	def test_credentials_in_the_connection_config_are_refused(self):
		for config in (
			{"url": "https://wiki.example.com", "password": "hunter2"},
			{"auth": {"type": "basic", "api_key": "k"}},
			{"headers": [{"Authorization": "x", "X-Access-Token": "t"}]},
		):
			with self.subTest(config), self.assertRaisesRegex(SecretInJSON, "Connection Secret"):
				make("Lore Knowledge Source", connection_config=json.dumps(config))

	def test_the_secret_is_encrypted_and_never_in_the_table_or_the_view(self):
		token = "ghp_" + "x" * 300
		source = make("Lore Knowledge Source", connection_secret=token)
		self.assertEqual(source.get_password("connection_secret"), token)
		stored = frappe.db.get_value("Lore Knowledge Source", source.name, "connection_secret")
		self.assertNotIn("ghp_", stored or "")
		cur = db.cursor()
		cur.execute("SELECT k::text FROM lore.knowledge_sources k WHERE id = %s", (source.name,))
		self.assertNotIn("ghp_", cur.fetchone()[0])
