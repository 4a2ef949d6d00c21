"""Site administration endpoints: /api/method/cauldron.api.admin.<name>"""

import frappe

from cauldron import db, params
from cauldron.pg import capabilities, provision


@frappe.whitelist()
@params.checked()
def capabilities_report() -> dict:
	"""The database's extension capabilities, what is degraded, and the provisioning ledger."""
	frappe.only_for("System Manager")
	cur = db.cursor()
	caps = capabilities.detect(cur)
	status = provision.status(cur, db.settings())
	return {
		"capabilities": {
			name: {"status": cap.status, "installed": cap.installed, "dba_sql": cap.dba_sql()}
			for name, cap in caps.items()
		},
		# what the ledger records and whose objects exist (a restore can lose them)
		"applied_steps": sorted(o.step for o in status.outcomes if o.status in ("unchanged", "changed")),
		"steps": {o.step: {"status": o.status, "detail": o.detail} for o in status.outcomes},
		"report": capabilities.report(caps, frappe.conf.db_name),
	}
