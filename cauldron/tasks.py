"""Scheduled jobs (hooks.scheduler_events): the native time-series path's rollups and partitions."""

import frappe

from cauldron import db
from cauldron.pg import timeseries


def refresh_rollups():
	timeseries.refresh_rollups(db.cursor())
	frappe.db.commit()


def maintain_partitions():
	timeseries.maintain_partitions(db.cursor(), db.settings().retention_days)
	frappe.db.commit()
