import frappe
from frappe.tests.utils import FrappeTestCase

from cauldron.tests.factories import make, refused_by_postgres, uid


class TestCauldronOrganization(FrappeTestCase):
	def test_domains_are_unique_whatever_their_case(self):
		domain = f"{uid()}.example.com"
		org = make("Cauldron Organization", domain=f" {domain.upper()} ")
		self.assertEqual(org.domain, domain)
		with self.assertRaises(frappe.UniqueValidationError), refused_by_postgres():
			make("Cauldron Organization", domain=domain.title())

	def test_deleting_an_organization_deletes_its_teams_and_their_members(self):
		org = make("Cauldron Organization")
		team = make("Cauldron Team", organization=org.name)
		member = make("Cauldron Team Member", team=team.name)
		other_team = make("Cauldron Team")
		frappe.delete_doc("Cauldron Organization", org.name)
		self.assertFalse(frappe.db.exists("Cauldron Team", team.name))
		self.assertFalse(frappe.db.exists("Cauldron Team Member", member.name))
		self.assertTrue(frappe.db.exists("Cauldron Team", other_team.name))
