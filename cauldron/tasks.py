"""Scheduled jobs (hooks.scheduler_events): audit sealing, rollups and partitions."""

import frappe

from cauldron import db
from cauldron.pg import audit, timeseries


def refresh_rollups():
	timeseries.refresh_rollups(db.cursor())
	frappe.db.commit()


def maintain_partitions():
	timeseries.maintain_partitions(db.cursor(), db.settings().retention_days)
	frappe.db.commit()


def seal_audit():
	audit.seal(db.cursor())
	frappe.db.commit()
