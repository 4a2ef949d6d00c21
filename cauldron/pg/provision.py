"""Provisioning: schemas, ledger steps and policies, idempotent, inside the caller's transaction.

Called from Frappe's after_install and from a [post_model_sync] patch, from `bench cauldron
provision`, and from the tests, always with a cursor of the site database.

Also the database side of a restore (`prepare_restore`, `finish_restore`): the extensions a dump
needs are created by a superuser in the empty target database before the dump is loaded as the
site's own user, so the vector tables and their rows come back with everything else.
"""

import gzip
import re
from dataclasses import dataclass, field

from cauldron.aegis import detect as aegis_detect
from cauldron.lore import graph as lore_graph
from cauldron.lore import keyword as lore_keyword
from cauldron.pg import audit, capabilities, ledger, queue, tables, timeseries, vectors
from cauldron.pg.ledger import Outcome

SCHEMAS = ("core", "lore", "synapse", "aegis", "aether", "command", "auth", "storage")
# Marks the schemas Cauldron created, so that uninstall never drops one it found (a Supabase
# database has its own `auth` and `storage`).
OWNED_MARK = "Managed by the cauldron Frappe app; dropped by bench uninstall-app cauldron."


@dataclass
class Settings:
	embedding_dimension: int = vectors.DEFAULT_DIMENSION
	# qualified table -> days kept, None = forever
	retention_days: dict[str, int | None] = field(
		default_factory=lambda: {
			"synapse.metrics": 90,
			"aegis.security_events": None,
			"core.audit_log": None,
		}
	)
	# Take the TimescaleDB path where the server offers it (the extension is trusted: provision
	# creates it as the site's own role). False keeps a new database on native partitions.
	timescaledb: bool = True


@dataclass
class Result:
	capabilities: dict[str, capabilities.Capability]
	outcomes: list[Outcome]
	created_schemas: list[str]
	database: str

	def by_status(self, status: str) -> list[Outcome]:
		return [o for o in self.outcomes if o.status == status]

	def summary(self) -> str:
		lines = [capabilities.report(self.capabilities, self.database), ""]
		statuses = ("pending", "applied", "unchanged", "changed", "missing", "skipped")
		counts = {s: len(self.by_status(s)) for s in statuses if self.by_status(s)}
		lines.append("provisioning steps: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
		lines.extend(f"  {o.status}: {o.step} ({o.detail})" for o in self.outcomes if o.detail)
		return "\n".join(lines)


def ensure_schemas(cur) -> list[str]:
	# to_regnamespace reads the catalog as it is now, not as this transaction's snapshot saw it
	# (REPEATABLE READ, Frappe's level, would miss a schema a concurrent provision just created).
	cur.execute(
		"SELECT name FROM unnest(%s::text[]) AS name WHERE to_regnamespace(name) IS NULL", (list(SCHEMAS),)
	)
	missing = {row[0] for row in cur.fetchall()}
	created = [s for s in SCHEMAS if s in missing]
	for schema in created:
		cur.execute(f"CREATE SCHEMA {schema}")
		cur.execute(f"COMMENT ON SCHEMA {schema} IS %s", (OWNED_MARK,))
	return created


def all_steps(settings: Settings, timescale: bool) -> list[ledger.Step]:
	return [
		*timeseries.steps(timescale),
		*audit.steps(),
		*vectors.steps(settings.embedding_dimension),
		*lore_graph.steps(),
		*lore_keyword.steps(),
		*tables.steps(),
		*queue.steps(),
		*aegis_detect.steps(),
	]


def provision(cur, settings: Settings | None = None) -> Result:
	"""Create or complete everything Cauldron keeps outside the DocType tables.

	Never fails for a missing extension: what needs it is skipped and reported with the SQL a DBA
	runs. Raises only for real errors, and then the caller's transaction rolls everything back.
	"""
	settings = settings or Settings()
	vectors.check_dimension(settings.embedding_dimension)
	cur.execute(ledger.PROVISION_LOCK)
	created = ensure_schemas(cur)
	capabilities.create_extensions(cur, skip=() if settings.timescaledb else ("timescaledb",))
	caps, installed, timescale = _capabilities(cur, settings)
	outcomes = ledger.apply(cur, all_steps(settings, timescale), installed)
	timeseries.apply_retention_policies(cur, settings.retention_days)
	timeseries.maintain_partitions(cur, settings.retention_days)
	return Result(caps, outcomes, created, _database(cur))


def status(cur, settings: Settings | None = None) -> Result:
	"""What `provision` would do now, changing nothing (for `cauldron doctor`)."""
	settings = settings or Settings()
	caps, installed, timescale = _capabilities(cur, settings, planned=True)
	return Result(caps, ledger.check(cur, all_steps(settings, timescale), installed), [], _database(cur))


def _capabilities(cur, settings: Settings, planned: bool = False):
	"""(capabilities, extensions installed, whether the time-series take the TimescaleDB path);
	`planned` counts the extensions provision would create as installed."""
	caps = capabilities.detect(cur)
	installed = {name for name, cap in caps.items() if cap.installed}
	if planned:
		installed |= {name for name, cap in caps.items() if cap.created_by_provision}
	# A database already on hypertables stays there whatever the setting says.
	wanted = settings.timescaledb or timeseries.uses_timescale(cur)
	return caps, installed, wanted and "timescaledb" in installed and not _native_already(cur)


def _database(cur) -> str:
	cur.execute("SELECT current_database()")
	return cur.fetchone()[0]


def _native_already(cur) -> bool:
	"""A database provisioned natively stays native when TimescaleDB arrives later: converting live
	partitioned tables into hypertables is a migration of its own, not a side effect of migrate."""
	cur.execute("SELECT to_regclass('synapse.metrics_default') IS NOT NULL")
	return cur.fetchone()[0]


def drop_schemas(cur) -> list[str]:
	"""Drop the schemas Cauldron created (uninstall). Schemas it found in place are left alone."""
	cur.execute(
		"""
		SELECT n.nspname FROM pg_namespace n
		WHERE n.nspname = ANY(%s) AND obj_description(n.oid, 'pg_namespace') = %s
		""",
		(list(SCHEMAS), OWNED_MARK),
	)
	owned = [row[0] for row in cur.fetchall()]
	for schema in owned:
		cur.execute(f"DROP SCHEMA {schema} CASCADE")
	return owned


# --- backup and restore ------------------------------------------------------------------------

_EXTENSION_LINE = re.compile(r'^CREATE EXTENSION (?:IF NOT EXISTS )?"?([a-z0-9_]+)"?', re.M)


def dump_extensions(path: str) -> list[str]:
	"""The extensions a plain-SQL dump (gzipped or not; `pg_dump`'s or Frappe's backup) creates.

	pg_dump writes them before any table, so reading stops at the first table's data.
	"""
	opener = gzip.open if str(path).endswith(".gz") else open
	found = []
	with opener(path, "rt", encoding="utf-8", errors="replace") as dump:
		for line in dump:
			if line.startswith("CREATE EXTENSION"):
				match = _EXTENSION_LINE.match(line)
				if match and match[1] not in found:
					found.append(match[1])
			elif line.startswith(("COPY ", "CREATE TABLE ")):
				break
	return found


def prepare_restore(root_cur, extensions: list[str]) -> list[str]:
	"""As a superuser, in the empty database a dump is about to be loaded into: create the
	extensions the dump uses (the site's own user cannot create pgvector, and psql carries on past
	the failure, losing every table with a vector column), and on TimescaleDB run its documented
	`timescaledb_pre_restore()`. Returns the extensions created; one the server lacks is left to
	fail in the load, as it would anyway."""
	root_cur.execute(
		"SELECT name FROM unnest(%s::text[]) AS name"
		" WHERE name IN (SELECT a.name FROM pg_available_extensions a)"
		" AND name NOT IN (SELECT extname FROM pg_extension)",
		(list(extensions),),
	)
	available = {row[0] for row in root_cur.fetchall()}
	created = []
	for name in extensions:
		if name in available:
			root_cur.execute(f'CREATE EXTENSION IF NOT EXISTS "{name}"')
			created.append(name)
	if "timescaledb" in extensions and _has_extension(root_cur, "timescaledb"):
		root_cur.execute("SELECT timescaledb_pre_restore()")
	return created


def finish_restore(root_cur) -> None:
	"""As a superuser, after the load: TimescaleDB's `timescaledb_post_restore()` when it is there."""
	if _has_extension(root_cur, "timescaledb"):
		root_cur.execute("SELECT timescaledb_post_restore()")


def _has_extension(cur, name: str) -> bool:
	cur.execute("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = %s)", (name,))
	return cur.fetchone()[0]


def relation_counts(cur) -> dict[str, int]:
	"""Rows of every table and materialized view in Cauldron's schemas (a partitioned table counted
	once, with its partitions), to compare a restored site with its source."""
	cur.execute(
		"""
		SELECT format('%%I.%%I', n.nspname, c.relname) FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = ANY(%s) AND c.relkind IN ('r', 'p', 'm') AND NOT c.relispartition
			AND has_table_privilege(c.oid, 'SELECT')
		ORDER BY 1
		""",
		(list(SCHEMAS),),
	)
	counts = {}
	for (relation,) in cur.fetchall():
		cur.execute(f"SELECT count(*) FROM {relation}")
		counts[relation] = cur.fetchone()[0]
	return counts
