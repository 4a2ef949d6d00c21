"""Bench-tier helpers for bin/bench-tier's backup/restore and two-site checks, run with
`bench --site SITE execute cauldron.tests.restore_check.<function>` (not a test module: Frappe's
runner collects test_*.py only)."""

import frappe
from psycopg2 import errors, sql

from cauldron import db
from cauldron.lore import ingest
from cauldron.pg import audit, provision, tables, timeseries, vectors, views
from cauldron.tests import factories

MARK = "restore-check"


def _query(dimension: int) -> list[float]:
	return [1.0 / (1 + (i * 7) % dimension) for i in range(dimension)]


def seed() -> dict:
	"""Rows in every Cauldron relation (through Cauldron's own writers), the daily partition job run
	and the audit chain sealed: the state a backup is taken of."""
	cur = db.cursor()
	dimension = vectors.table_dimension(cur)
	query = _query(dimension)
	document = factories.make("Lore Document", title=f"{MARK} {factories.uid()}").name
	# each chunk a little further from the search's query than the one before: no ties
	chunks = [
		vectors.Chunk(
			i, f"{MARK} chunk {i}", [q + (0.05 * i if j == 0 else 0.0) for j, q in enumerate(query)]
		)
		for i in range(30)
	]
	# as the active model's vectors: search compares only those
	vectors.replace_document_chunks(cur, document, chunks, model=ingest.active_model(cur))
	entity = factories.make("Lore Entity").name
	vectors.set_entity_embedding(cur, entity, query)
	now = frappe.utils.now_datetime().astimezone()
	timeseries.write_metrics(cur, [(now, f"{MARK}.points", i, {"i": i}) for i in range(20)])
	timeseries.refresh_rollups(cur)
	cur.execute(
		"INSERT INTO aegis.security_events (event_time, event_type, source, severity)"
		" VALUES (now(), %s, 'bench-tier', 'low')",
		(MARK,),
	)
	tables.write_agent_interactions(
		cur,
		[
			tables.AgentInteraction(
				"5f1e0c3a-2b2b-4c4c-8d8d-0123456789ab",
				"7d0f2d4e-1c1b-4d7e-9a55-0123456789ab",
				"observation",
				{"text": MARK},
			)
		],
	)
	frappe.db.commit()
	timeseries.maintain_partitions(cur, db.settings().retention_days)
	audit.seal(cur)
	frappe.db.commit()
	return {"document": document, "entity": entity}


def snapshot() -> dict:
	"""What must be the same after a restore: the rows of every Cauldron relation and seed view, the
	audit chain's verification, and a search's results."""
	from cauldron.api import lore

	cur = db.cursor()
	counts = provision.relation_counts(cur)
	# which roles read this site is the site's own business: a restore into another site revokes
	# the source's reader and forgets it (views.reconcile_readers)
	counts.pop("command.sql_readers")
	for view in views.existing_views(cur):
		schema, name = view.split(".")
		cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, name)))
		counts[view] = cur.fetchone()[0]
	verification = audit.verify(cur)
	results = lore.search(embedding=_query(vectors.table_dimension(cur)), limit=10)
	return {
		"counts": counts,
		"audit": {"ok": verification.ok, "rows": verification.rows_checked},
		"search": sorted([round(r["distance"], 6), r["chunk_index"], r["document_id"]] for r in results),
	}


def reader_role() -> str:
	return views.reader_role_name(frappe.conf.db_name)


def make_login(root_user: str, root_password: str, login: str, password: str) -> str:
	"""As the superuser: a login role holding this site's reader role (made by `cauldron provision`)."""
	reader = reader_role()
	with db.cursor_as(root_user, root_password) as cur:
		cur.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(login)))
		cur.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(login)), (password,))
		cur.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(reader), sql.Identifier(login)))
	return reader


def as_root(root_user: str, root_password: str, statement: str) -> None:
	"""Run one statement as the superuser in this site's database (what a DBA does)."""
	with db.cursor_as(root_user, root_password) as cur:
		cur.execute(statement)


def drop_login(root_user: str, root_password: str, login: str) -> None:
	with db.cursor_as(root_user, root_password) as cur:
		cur.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(login)))


def read_as(login: str, password: str) -> str:
	"""Connect to this site's database as `login` and read core.users and core.audit_log:
	"read" or "denied"."""
	conn = db.connect_as(login, password)
	try:
		with conn.cursor() as cur:
			cur.execute("SELECT count(*) FROM core.users")
			cur.execute("SELECT count(*) FROM core.audit_log")
		return "read"
	except errors.InsufficientPrivilege:
		return "denied"
	finally:
		conn.close()
