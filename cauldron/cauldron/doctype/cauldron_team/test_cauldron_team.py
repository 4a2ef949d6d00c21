import frappe
from frappe.tests.utils import FrappeTestCase

from cauldron.tests.factories import make, refused_by_postgres


class TestCauldronTeam(FrappeTestCase):
	def test_team_names_are_unique_within_their_organization(self):
		team = make("Cauldron Team")
		with self.assertRaisesRegex(frappe.UniqueValidationError, "already exists"):
			make("Cauldron Team", organization=team.organization, team_name=team.team_name)
		elsewhere = make("Cauldron Team", team_name=team.team_name)
		self.assertNotEqual(elsewhere.organization, team.organization)

	def test_the_database_holds_the_constraint_without_the_controller(self):
		team = make("Cauldron Team")
		twin = frappe.get_doc(
			{"doctype": "Cauldron Team", "organization": team.organization, "team_name": team.team_name}
		)
		twin.name = frappe.generate_hash()
		with self.assertRaises(frappe.UniqueValidationError), refused_by_postgres():
			twin.db_insert()
