"""Site administration endpoints: /api/method/cauldron.api.admin.<name>"""

import frappe

from cauldron import db
from cauldron.pg import capabilities, ledger


@frappe.whitelist()
def capabilities_report() -> dict:
	"""The database's extension capabilities, what is degraded, and the provisioning ledger."""
	frappe.only_for("System Manager")
	cur = db.cursor()
	caps = capabilities.detect(cur)
	return {
		"capabilities": {
			name: {"status": cap.status, "installed": cap.installed, "dba_sql": cap.dba_sql()}
			for name, cap in caps.items()
		},
		"applied_steps": sorted(ledger.applied_steps(cur)),
		"report": capabilities.report(caps, frappe.conf.db_name),
	}
