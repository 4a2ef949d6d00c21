"""Scheduled jobs (hooks.scheduler_events): audit sealing, rollups, partitions and Lore's embedding."""

import time

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


# Lore's embedding worker: run every minute and woken after a commit that queued documents
# (cauldron.api.lore.wake_worker); several at once share the work (SKIP LOCKED claims).
LORE_WORKER_SECONDS = 50
LORE_BATCH = 10
# Done items of the queue are kept this long for the counts, then purged daily.
QUEUE_DONE_KEPT_SECONDS = 7 * 86400


def embed_lore_documents(seconds: float = LORE_WORKER_SECONDS):
	"""Embed queued Lore Documents (and Lore Entities: cauldron.lore.graph) in batches until the
	queues have none due or `seconds` have passed."""
	from cauldron.api import lore
	from cauldron.lore import graph, ingest

	deadline = time.monotonic() + seconds
	cur = db.cursor()
	providers = lore.pipeline_providers(cur)
	total = ingest.BatchResult()
	while True:
		batch = ingest.run_batch(
			db.cursor(), providers, load=lore.load_document, limit=LORE_BATCH, commit=frappe.db.commit
		)
		entities = graph.run_entity_batch(db.cursor(), providers, commit=frappe.db.commit)
		for done in (batch, entities):
			for key in ("claimed", "done", "retrying", "parked", "lost", "chunks", "embedded"):
				setattr(total, key, getattr(total, key) + getattr(done, key))
			total.errors.update(done.errors)
			total.activated = done.activated or total.activated
		if not (batch.claimed or entities.claimed) or time.monotonic() > deadline:
			break
	if total.claimed:
		lore.compact_keyword_statistics(db.cursor())
		frappe.db.commit()
	return total


def purge_work_queue():
	"""Delete the durable queue's done items older than a week (parked ones stay until retried)."""
	from cauldron.pg import queue

	queue.purge(db.cursor(), QUEUE_DONE_KEPT_SECONDS)
	frappe.db.commit()
