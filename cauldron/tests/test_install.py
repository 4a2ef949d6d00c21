"""Bench tier: what install and migrate leave in the site's database, and the MariaDB refusal."""

import frappe
from frappe.tests.utils import FrappeTestCase

from cauldron import db
from cauldron.pg import ledger, provision
from cauldron.setup import install


def catalog(cur):
	cur.execute(
		"""
		SELECT n.nspname, c.relname, c.relkind,
			(SELECT array_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod) ORDER BY a.attnum)
				FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = ANY(%s)
		ORDER BY 1, 2
		""",
		(list(provision.SCHEMAS),),
	)
	return cur.fetchall()


class TestInstall(FrappeTestCase):
	def test_install_created_the_schemas_and_applied_every_available_step(self):
		cur = db.cursor()
		cur.execute(
			"SELECT nspname FROM pg_namespace WHERE obj_description(oid, 'pg_namespace') = %s",
			(provision.OWNED_MARK,),
		)
		self.assertEqual({r[0] for r in cur.fetchall()}, set(provision.SCHEMAS))
		status = provision.status(cur, db.settings())
		self.assertEqual(status.by_status("pending"), [])
		self.assertEqual(status.by_status("changed"), [])
		applied = ledger.applied_steps(cur)
		self.assertIn("timeseries:core.audit_log", applied)
		for outcome in status.by_status("skipped"):
			self.assertTrue(outcome.step.startswith("vectors:"), outcome)

	def test_provisioning_again_changes_nothing(self):
		# Provisioning also keeps partitions: a row other tests wrote beyond the partitions made so
		# far moves out of the default partition into one of its own. Once that is done, provisioning
		# again changes nothing.
		install.provision_site()
		cur = db.cursor()
		before = catalog(cur)
		result = install.provision_site()
		self.assertEqual({o.status for o in result.outcomes} - {"skipped"}, {"unchanged"})
		self.assertEqual(catalog(db.cursor()), before)

	def test_site_db_user_is_not_a_superuser(self):
		# Cauldron must work with the site's own, unprivileged role: that is what real sites have.
		cur = db.cursor()
		cur.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
		self.assertFalse(cur.fetchone()[0])

	def test_mariadb_site_is_refused_before_anything_is_created(self):
		db_type = frappe.conf.db_type
		frappe.conf.db_type = "mariadb"
		try:
			self.assertRaisesRegex(db.NotPostgres, "needs a PostgreSQL site", install.before_install)
		finally:
			frappe.conf.db_type = db_type

	def test_scheduled_jobs_are_registered(self):
		for method in (
			"cauldron.tasks.seal_audit",
			"cauldron.tasks.refresh_rollups",
			"cauldron.tasks.maintain_partitions",
		):
			self.assertTrue(frappe.db.exists("Scheduled Job Type", {"method": method}), method)
