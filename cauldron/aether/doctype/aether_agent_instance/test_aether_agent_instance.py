import frappe
from frappe.tests.utils import FrappeTestCase

from cauldron import db
from cauldron.tests.factories import make


class TestAetherAgentInstance(FrappeTestCase):
	def test_deleting_an_instance_unassigns_its_tasks(self):
		instance = make("Aether Agent Instance")
		task = make("Aether Agent Task", assigned_to=instance.name)
		frappe.delete_doc("Aether Agent Instance", instance.name)
		self.assertTrue(frappe.db.exists("Aether Agent Task", task.name))
		self.assertIsNone(frappe.db.get_value("Aether Agent Task", task.name, "assigned_to"))

	def test_instances_show_their_definition_and_current_task_in_sql(self):
		task = make("Aether Agent Task")
		instance = make("Aether Agent Instance", current_task=task.name, status="running")
		cur = db.cursor()
		cur.execute(
			"""
			SELECT d.agent_name, t.task_name, i.status
			FROM aether.agent_instances i
			JOIN aether.agent_definitions d ON d.id = i.definition_id
			JOIN aether.agent_tasks t ON t.id = i.current_task_id
			WHERE i.id = %s
			""",
			(instance.name,),
		)
		agent_name = frappe.db.get_value("Aether Agent Definition", instance.definition, "agent_name")
		self.assertEqual(cur.fetchone(), (agent_name, task.task_name, "running"))
