"""Scheduled jobs (hooks.scheduler_events): audit sealing, rollups and partitions."""

import frappe
import psycopg2

from cauldron import db
from cauldron.pg import audit, timeseries


def refresh_rollups():
	# On TimescaleDB the refresh of the continuous aggregate must run outside a transaction.
	frappe.db.commit()
	timeseries.refresh_rollups(db.cursor())
	frappe.db.commit()


def maintain_partitions():
	# Seal first, in a transaction of its own, so retention anchors a complete chain.
	seal_audit()
	timeseries.maintain_partitions(db.cursor(), db.settings().retention_days)
	frappe.db.commit()


def seal_audit():
	audit.seal(db.cursor())
	frappe.db.commit()


def erase_audit_user(user: str, replacement: str, full_name: str | None = None):
	"""GDPR erasure of `user` in core.audit_log, retried if the sealing job touched the same rows."""
	for attempt in range(3):
		try:
			audit.erase_user(db.cursor(), user, replacement, full_name)
			frappe.db.commit()
			return
		except psycopg2.errors.SerializationFailure:
			frappe.db.rollback()
			if attempt == 2:
				raise
