"""Bench tier: `bench migrate` re-applies a provisioning step whose objects are gone, and doctor's
status names it until then (the ledger never claims what is not there)."""

from frappe.tests.utils import FrappeTestCase

from cauldron import db
from cauldron.pg import provision
from cauldron.setup import install


class TestLedgerObjects(FrappeTestCase):
	def status(self) -> dict:
		return {o.step: o for o in provision.status(db.cursor(), db.settings()).outcomes}

	def test_migrate_reapplies_a_step_whose_objects_were_dropped(self):
		cur = db.cursor()
		cur.execute("DROP INDEX core.idx_audit_log_user")
		cur.execute("DROP TABLE aether.agent_interactions")
		outcomes = self.status()
		self.assertEqual(outcomes["timeseries:core.audit_log"].status, "missing")
		self.assertIn("index core.idx_audit_log_user", outcomes["timeseries:core.audit_log"].detail)
		self.assertEqual(outcomes["tables:aether.agent_interactions"].status, "missing")

		install.after_migrate()  # what every `bench migrate` ends with

		outcomes = self.status()
		self.assertNotIn("missing", {o.status for o in outcomes.values()})
		cur = db.cursor()
		cur.execute("SELECT to_regclass('core.idx_audit_log_user'), to_regclass('aether.agent_interactions')")
		self.assertEqual(cur.fetchone(), ("core.idx_audit_log_user", "aether.agent_interactions"))
		# the seed view over it is back too, readable
		cur.execute("SELECT count(*) FROM aether.agent_interactions")
