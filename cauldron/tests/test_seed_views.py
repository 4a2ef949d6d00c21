"""Bench tier: the seed-named views show what the DocTypes and Frappe store, and migrate's hooks
drop and recreate them around the schema changes they would otherwise block."""

from frappe.tests.utils import FrappeTestCase
from frappe.utils import convert_utc_to_system_timezone, get_datetime

from cauldron import db
from cauldron.pg import views
from cauldron.setup import install
from cauldron.tests.factories import make, seed_doctypes, user_with_roles

USER = "cauldron-views@example.com"


def view_of(doctype: str) -> views.View:
	return next(v for v in views.doctype_views() if v.doctype == doctype)


class TestSeedViews(FrappeTestCase):
	def test_each_view_returns_the_rows_created_through_its_doctype(self):
		cur = db.cursor()
		for doctype in seed_doctypes():
			with self.subTest(doctype):
				doc = make(doctype)
				relation = view_of(doctype).relation
				created = "requested_at" if relation == "aether.hitl_approvals" else "created_at"
				key = (
					"md5('Cauldron Storage Bucket:' || %s)::uuid"
					if doctype == "Cauldron Storage Bucket"
					else "%s"
				)
				cur.execute(f"SELECT {created} FROM {relation} WHERE id = {key}", (doc.name,))
				(instant,) = cur.fetchone()
				# Frappe's naive local creation time and the view's timestamptz are the same instant.
				local = convert_utc_to_system_timezone(instant).replace(tzinfo=None)
				self.assertEqual(local, get_datetime(doc.creation))

	def test_dashboard_components_are_rows_of_their_dashboard(self):
		dashboard = make("Synapse Dashboard")
		cur = db.cursor()
		cur.execute(
			"SELECT id::text, title FROM synapse.dashboard_components WHERE dashboard_id = %s",
			(dashboard.name,),
		)
		self.assertEqual(cur.fetchall(), [(dashboard.components[0].name, "Revenue")])

	def test_frappe_users_and_roles_in_the_seeds_shape(self):
		user_with_roles(USER, "Knowledge Editor")
		cur = db.cursor()
		cur.execute(
			"""
			SELECT u.email, u.is_active, u.is_system_admin, u.password_hash, a.encrypted_password, r.name
			FROM core.users u
			JOIN auth.users a ON a.id = u.id
			JOIN core.user_roles ur ON ur.user_id = u.id
			JOIN core.roles r ON r.id = ur.role_id
			WHERE u.email = %s
			""",
			(USER,),
		)
		self.assertEqual(cur.fetchall(), [(USER, True, False, None, None, "Knowledge Editor")])
		cur.execute(
			"""
			SELECT p.can_read, p.can_write, p.can_create, p.can_delete
			FROM core.permissions p JOIN core.roles r ON r.id = p.role_id
			WHERE r.name = 'Knowledge Editor' AND p.resource_type = %s
			""",
			("Lore Document",),
		)
		self.assertEqual(cur.fetchall(), [(True, True, True, True)])


class TestMigrateHooks(FrappeTestCase):
	"""Its own class: the hooks commit, which must not carry other tests' documents with it."""

	def test_migrate_drops_the_views_first_and_recreates_them_after(self):
		cur = db.cursor()
		created = views.existing_views(cur)
		self.assertEqual(len(created), len(views.all_views(cur)))
		install.before_migrate()
		self.assertEqual(views.existing_views(cur), [])
		# what migrate does to a DocType table, which a view over it would refuse
		cur.execute('ALTER TABLE "tabLore Document" ALTER COLUMN source_type TYPE varchar(60)')
		cur.execute('ALTER TABLE "tabLore Document" ALTER COLUMN source_type TYPE varchar(50)')
		install.after_migrate()
		self.assertEqual(views.existing_views(cur), created)
