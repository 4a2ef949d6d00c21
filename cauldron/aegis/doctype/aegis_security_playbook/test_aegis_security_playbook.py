import json

import frappe
from frappe.tests.utils import FrappeTestCase

from cauldron import db
from cauldron.tests.factories import make


class TestAegisSecurityPlaybook(FrappeTestCase):
	def test_steps_may_be_a_json_array(self):
		steps = [{"action": "isolate_host"}, {"action": "rotate_keys", "approval": True}]
		playbook = make("Aegis Security Playbook", steps=steps)
		reloaded = frappe.get_doc("Aegis Security Playbook", playbook.name)
		self.assertEqual(json.loads(reloaded.steps), steps)
		reloaded.description = "Saving again keeps the array"
		reloaded.save()
		cur = db.cursor()
		cur.execute("SELECT steps FROM aegis.security_playbooks WHERE id = %s", (playbook.name,))
		self.assertEqual(cur.fetchone()[0], steps)

	def test_steps_are_required(self):
		with self.assertRaises(frappe.MandatoryError):
			make("Aegis Security Playbook", steps=None)
