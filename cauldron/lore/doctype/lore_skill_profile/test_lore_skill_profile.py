import frappe
from frappe.tests.utils import FrappeTestCase

from cauldron import db
from cauldron.tests.factories import drop_user, make, user_with_roles

USER = "cauldron-skills@example.com"


class TestLoreSkillProfile(FrappeTestCase):
	def test_a_profile_goes_with_its_user(self):
		user_with_roles(USER)
		profile = make("Lore Skill Profile", user=USER)
		drop_user(USER)
		self.assertFalse(frappe.db.exists("Lore Skill Profile", profile.name))

	def test_last_updated_follows_each_save(self):
		profile = make("Lore Skill Profile")
		cur = db.cursor()
		query = "SELECT last_updated, created_at FROM lore.skill_profiles WHERE id = %s"
		cur.execute(query, (profile.name,))
		first_updated, created = cur.fetchone()
		profile.skills = '{"sql": 5, "python": 4}'
		profile.save()
		cur.execute(query, (profile.name,))
		updated, created_again = cur.fetchone()
		self.assertGreater(updated, first_updated)
		self.assertEqual(created_again, created)
