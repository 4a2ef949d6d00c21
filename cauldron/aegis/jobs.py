"""Aegis's scheduled work (hooks.py scheduler_events).

Every minute: steps whose approval expired unanswered are skipped (Aether's own job expires them in
SQL, without document events), then the events not evaluated yet are evaluated against the active
playbooks' rules and threats' indicators, batch by batch, each batch committed with the incidents
it opened or extended (cauldron.aegis.response). Daily: the audit chain is verified, and a broken
chain is a critical security event.
"""

import frappe

from cauldron import db
from cauldron.aegis import response, signals
from cauldron.pg import audit


def detect() -> dict:
	skipped = response.sweep_unanswered()
	frappe.db.commit()
	totals = response.run_detection()
	if skipped or totals.get("detections"):
		frappe.logger("cauldron").info(
			f"aegis: {totals['evaluated']} event(s) evaluated, {totals['opened']} incident(s) opened,"
			f" {totals['extended']} extended, {skipped} step(s) skipped after their approval ended"
		)
	return {**totals, "skipped_steps": skipped}


def verify_audit_chain() -> None:
	cur = db.cursor()
	result = audit.verify(cur)
	frappe.db.rollback()
	signals.audit_verified(result)
