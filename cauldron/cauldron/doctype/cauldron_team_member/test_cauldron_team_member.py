import frappe
from frappe.tests.utils import FrappeTestCase

from cauldron import db
from cauldron.tests.factories import make, refused_by_postgres


class TestCauldronTeamMember(FrappeTestCase):
	def test_one_membership_per_user_and_team(self):
		member = make("Cauldron Team Member", user="Administrator")
		with self.assertRaises(frappe.UniqueValidationError):
			make("Cauldron Team Member", team=member.team, user="Administrator")
		twin = frappe.get_doc(
			{"doctype": "Cauldron Team Member", "team": member.team, "user": "Administrator"}
		)
		twin.name = frappe.generate_hash()
		with self.assertRaises(frappe.UniqueValidationError), refused_by_postgres():
			twin.db_insert()

	def test_memberships_join_users_and_teams_in_sql(self):
		member = make("Cauldron Team Member", user="Administrator", is_team_admin=1)
		cur = db.cursor()
		cur.execute(
			"""
			SELECT u.username, t.name, m.is_team_admin
			FROM core.team_members m
			JOIN core.users u ON u.id = m.user_id
			JOIN core.teams t ON t.id = m.team_id
			WHERE m.id = %s
			""",
			(member.name,),
		)
		team_name = frappe.db.get_value("Cauldron Team", member.team, "team_name")
		self.assertEqual(cur.fetchone(), ("administrator", team_name, True))
