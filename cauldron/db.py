"""The bridge between Frappe and cauldron.pg: a raw cursor on the site's own connection.

frappe.db.sql rewrites SQL on Postgres (quoting bare integers, turning int parameters into strings),
which breaks DDL and vector queries. A raw psycopg2 cursor of the same connection shares the
request's transaction, so Cauldron's writes commit or roll back with the document they belong to.
"""

from contextlib import contextmanager

import frappe
import psycopg2

from cauldron.pg import provision


class NotPostgres(frappe.ValidationError):
	pass


def ensure_postgres() -> None:
	if frappe.conf.db_type != "postgres":
		frappe.throw(
			f"Cauldron needs a PostgreSQL site; this site uses {frappe.conf.db_type or 'mariadb'}."
			" Create the site with `bench new-site --db-type postgres` and install Cauldron there.",
			NotPostgres,
			title="PostgreSQL required",
		)


def cursor():
	ensure_postgres()
	if not frappe.db._conn:
		frappe.db.connect()
	return frappe.db._conn.cursor()


def connect_as(user: str, password: str | None):
	"""A new connection to the site's database as another role (a superuser, a reader's login)."""
	conf = frappe.conf
	return psycopg2.connect(
		host=conf.db_host or "127.0.0.1",
		port=conf.db_port or 5432,
		dbname=conf.db_name,
		user=user,
		password=password,
	)


@contextmanager
def cursor_as(user: str, password: str | None):
	"""A cursor of `connect_as`, in one transaction committed on success, closed after."""
	conn = connect_as(user, password)
	try:
		with conn, conn.cursor() as cur:
			yield cur
	finally:
		conn.close()


def settings(doc=None) -> provision.Settings:
	"""Provisioning settings from Cauldron Settings (`doc`, or the saved one; defaults before install)."""
	defaults = provision.Settings()
	if doc is None:
		if not frappe.db.exists("DocType", "Cauldron Settings"):
			return defaults
		doc = frappe.get_cached_doc("Cauldron Settings")
	return provision.Settings(
		embedding_dimension=doc.embedding_dimension or defaults.embedding_dimension,
		retention_days={
			"synapse.metrics": doc.metrics_retention_days or None,
			"aegis.security_events": doc.security_events_retention_days or None,
			"core.audit_log": doc.audit_retention_days or None,
		},
	)


def wake_after_commit(method: str, job_id: str, queue: str = "default", timeout: int | None = None) -> None:
	"""Wake the worker job `method` once the current transaction commits: once per transaction, and
	not at all while the same job is already queued. The work itself waits in Postgres (the durable
	queue, cauldron.pg.queue): without Redis, or if the job is lost, the scheduler's own run finds it."""
	woken = frappe.local.flags.setdefault("cauldron_woken", set())
	if job_id in woken:
		return
	woken.add(job_id)

	def forget():
		woken.discard(job_id)

	frappe.db.after_commit.add(forget)
	frappe.db.after_rollback.add(forget)
	try:
		frappe.enqueue(
			method,
			queue=queue,
			timeout=timeout,
			enqueue_after_commit=True,
			job_id=job_id,
			deduplicate=True,
		)
	except Exception:
		frappe.log_error(title=f"Cauldron: could not wake {method} (its scheduled run will take the work)")
