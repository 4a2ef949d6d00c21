import json

import frappe
from frappe.tests.utils import FrappeTestCase

from cauldron import db
from cauldron.tests.factories import make


class TestAegisSecurityPlaybook(FrappeTestCase):
	def test_steps_may_be_a_json_array(self):
		steps = [{"action": "disable_user", "user": "{key}"}, {"action": "add_note", "note": "Done: {title}"}]
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

	def test_a_bad_rule_or_step_is_refused_with_what_is_wrong(self):
		with self.assertRaisesRegex(frappe.ValidationError, "unknown action 'isolate_host'"):
			make("Aegis Security Playbook", steps=json.dumps([{"action": "isolate_host"}]))
		with self.assertRaisesRegex(frappe.ValidationError, r"match.raw_data.ip: .* is not an IP network"):
			make(
				"Aegis Security Playbook",
				trigger_conditions=json.dumps({"match": {"raw_data.ip": {"cidr": "nope"}}}),
			)
