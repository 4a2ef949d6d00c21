"""Provisioning: schemas, ledger steps and policies, idempotent, inside the caller's transaction.

Called from Frappe's after_install and from a [post_model_sync] patch, from `bench cauldron
provision`, and from the tests, always with a cursor of the site database.
"""

from dataclasses import dataclass, field

from cauldron.pg import audit, capabilities, ledger, tables, timeseries, vectors
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
		statuses = ("pending", "applied", "unchanged", "changed", "skipped")
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
		*tables.steps(),
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
	caps, installed, timescale = _capabilities(cur)
	outcomes = ledger.apply(cur, all_steps(settings, timescale), installed)
	timeseries.apply_retention_policies(cur, settings.retention_days)
	timeseries.maintain_partitions(cur, settings.retention_days)
	return Result(caps, outcomes, created, _database(cur))


def status(cur, settings: Settings | None = None) -> Result:
	"""What `provision` would do now, changing nothing (for `cauldron doctor`)."""
	settings = settings or Settings()
	caps, installed, timescale = _capabilities(cur)
	return Result(caps, ledger.check(cur, all_steps(settings, timescale), installed), [], _database(cur))


def _capabilities(cur):
	caps = capabilities.detect(cur)
	installed = {name for name, cap in caps.items() if cap.installed}
	return caps, installed, "timescaledb" in installed and not _native_already(cur)


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
