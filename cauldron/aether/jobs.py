"""Aether's scheduled work (hooks.py scheduler_events): every minute, rescue tasks whose lease ran
out and mark silent instances offline, make due pending tasks ready, and expire approvals nobody
answered in time (their tasks are cancelled)."""

import frappe
import psycopg2
from frappe.desk.form import assign_to

from cauldron import db
from cauldron.aether import tasks


def maintain_tasks() -> None:
	cur = db.cursor()
	try:
		rescued = tasks.rescue_expired(cur)
		tasks.promote(cur)
		expired = tasks.expire_approvals(cur)
	except (psycopg2.errors.SerializationFailure, tasks.Contention):
		# A claim or an answer changed these rows meanwhile; the next minute's run takes them.
		frappe.db.rollback()
		return
	for approval, _task, _before in expired:
		assign_to.close_all_assignments("Aether HITL Approval", approval, ignore_permissions=True)
	frappe.db.commit()
	if rescued.retried or rescued.failed or rescued.offline or expired:
		frappe.logger("cauldron").info(
			f"aether: {len(rescued.retried)} task(s) back to pending, {len(rescued.failed)} failed after"
			f" their last lease, {len(rescued.offline)} instance(s) offline, {len(expired)} approval(s) expired"
		)
