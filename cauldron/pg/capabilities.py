"""Which Postgres extensions the site has, could have, and what is degraded without them."""

import re
import shutil
import subprocess
from dataclasses import dataclass

import psycopg2

# extension -> (what it gives Cauldron, what happens without it, the prefix of the settings it
# registers when preloaded, or None when it needs no preload)
EXTENSIONS = {
	"vector": (
		"Lore embeddings and HNSW semantic search",
		"Lore vector tables and semantic search are not created",
		None,
	),
	"timescaledb": (
		"hypertables, continuous aggregates, retention policies",
		"native range partitions with a scheduled rollup and retention job (same views and APIs)",
		"timescaledb",
	),
	"postgis": ("geospatial types", "no geospatial columns (none are required)", None),
	"pg_stat_statements": (
		"query statistics for `cauldron doctor`",
		"no query statistics",
		"pg_stat_statements",
	),
	"pg_partman": (
		"partition management by the database",
		"cauldron's own partition job manages native partitions",
		None,
	),
	"pgaudit": ("statement-level audit logging", "document-level audit in core.audit_log only", "pgaudit"),
	"pg_cron": ("in-database scheduling", "Frappe's scheduler runs the jobs", "cron"),
}


@dataclass(frozen=True)
class Capability:
	name: str
	installed_version: str | None
	available_version: str | None
	preloaded: bool  # loaded, or needs no preload
	can_create: bool

	@property
	def installed(self) -> bool:
		return self.installed_version is not None

	@property
	def status(self) -> str:
		if self.installed:
			return f"installed {self.installed_version}"
		if not self.available_version:
			return "not available on this server"
		if not self.preloaded:
			return "available, needs shared_preload_libraries"
		if self.can_create:
			return "available, this database role can create it"
		return "available, a superuser must create it"

	@property
	def created_by_provision(self) -> bool:
		"""Provision creates it as the connected role: one it may create (a trusted extension, such as
		timescaledb, by the database's owner), preloaded where it must be."""
		return (
			self.name in CREATED_BY_PROVISION
			and not self.installed
			and bool(self.available_version)
			and self.preloaded
			and self.can_create
		)

	def dba_sql(self) -> list[str]:
		"""The statements a DBA must run to enable this capability (empty when installed, or when
		provision creates it itself)."""
		if self.installed or not self.available_version or self.created_by_provision:
			return []
		sql = []
		if not self.preloaded:
			sql.append(
				f"ALTER SYSTEM SET shared_preload_libraries = '<current list>,{self.name}';"
				" -- then restart PostgreSQL"
			)
		sql.append(f"CREATE EXTENSION IF NOT EXISTS {self.name};")
		return sql


def detect(cur) -> dict[str, Capability]:
	"""One row per extension Cauldron knows, read from the catalogs of the connected database."""
	cur.execute(
		"""
		SELECT n.name, e.extversion, a.default_version,
			-- shared_preload_libraries is hidden from a site role; a loaded library's settings are not
			n.prefix IS NULL OR EXISTS (SELECT 1 FROM pg_settings s WHERE s.name LIKE n.prefix || '.%%'),
			(SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
			OR coalesce((SELECT bool_or(v.trusted) FROM pg_available_extension_versions v
				WHERE v.name = n.name), false)
				AND has_database_privilege(current_database(), 'CREATE')
		FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS n(name, prefix, position)
		LEFT JOIN pg_extension e ON e.extname = n.name
		LEFT JOIN pg_available_extensions a ON a.name = n.name
		ORDER BY n.position
		""",
		(list(EXTENSIONS), [spec[2] for spec in EXTENSIONS.values()]),
	)
	return {
		name: Capability(name, installed, available, bool(preloaded), bool(can_create))
		for name, installed, available, preloaded, can_create in cur.fetchall()
	}


def report(capabilities: dict[str, Capability], database: str) -> str:
	"""The capability table and, below it, what is degraded and the SQL a DBA must run."""
	rows = [("extension", "status", "gives", "without it")]
	for name, cap in capabilities.items():
		gives, without, _ = EXTENSIONS[name]
		rows.append((name, cap.status, gives, "-" if cap.installed else without))
	widths = [max(len(r[i]) for r in rows) for i in range(4)]
	lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
	lines.insert(1, "  ".join("-" * w for w in widths))
	own = [name for name, cap in capabilities.items() if cap.created_by_provision]
	if own:
		lines.append("")
		lines.append(
			f"Created by the next provision (`bench --site SITE migrate`) as the site's own role: {', '.join(own)}"
		)
	todo = [(name, cap) for name, cap in capabilities.items() if cap.dba_sql()]
	if todo:
		lines.append("")
		lines.append(f"To enable the missing capabilities, a superuser runs in database {database!r}:")
		for _name, cap in todo:
			lines.extend(f"  {sql}" for sql in cap.dba_sql())
		lines.append("or: bench --site SITE cauldron provision --db-root-username U --db-root-password P")
	missing = [name for name, cap in capabilities.items() if not cap.available_version]
	if missing:
		lines.append(f"Not on this server (install the OS package first): {', '.join(missing)}")
	return "\n".join(lines)


# What `cauldron provision` creates. The others are reported only: PostGIS and pg_partman would add
# objects to the site's public schema, and pg_cron lives in one database of the server's choosing.
CREATED_BY_PROVISION = ("vector", "timescaledb", "pg_stat_statements")


def create_extensions(cur, skip: tuple[str, ...] = ()) -> list[str]:
	"""Create CREATED_BY_PROVISION (but `skip`) where the server has them and the connected role may:
	a superuser (`cauldron provision --db-root-username`) creates them all, the site's own role the
	trusted ones (TimescaleDB), as provision does.

	Returns the names created. One the server lacks, one that needs a preload the server was not
	started with, or one the role may not create is left out; one that fails is rolled back alone,
	not with the rest. One that a concurrent transaction created after this one's snapshot (two
	provisions at REPEATABLE READ) is a serialization failure: this transaction would build on a
	catalog it cannot see, so it fails whole, to be run again.
	"""
	caps = detect(cur)
	created = []
	for name in CREATED_BY_PROVISION:
		cap = caps[name]
		if name in skip or cap.installed or not cap.available_version or not cap.preloaded:
			continue
		if not cap.can_create:
			continue
		cur.execute("SAVEPOINT cauldron_extension")
		try:
			cur.execute(f'CREATE EXTENSION IF NOT EXISTS "{name}"')
		except psycopg2.Error:
			cur.execute("ROLLBACK TO SAVEPOINT cauldron_extension")
			continue
		cur.execute("RELEASE SAVEPOINT cauldron_extension")
		cur.execute("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = %s)", (name,))
		if not cur.fetchone()[0]:  # it was there already, made by a transaction this one cannot see
			cur.execute(
				"DO $$ BEGIN RAISE EXCEPTION 'an extension was created by a concurrent transaction;"
				" run this one again' USING ERRCODE = 'serialization_failure'; END $$"
			)
		created.append(name)
	return created


# --- client tools --------------------------------------------------------------------------------


def client_major(version_output: str) -> int | None:
	"""The major version in `pg_dump --version`'s output ("pg_dump (PostgreSQL) 15.20 (Debian...)")."""
	match = re.search(r"\(PostgreSQL\)\s+(\d+)", version_output or "")
	return int(match[1]) if match else None


def server_major(cur) -> int:
	cur.execute("SELECT current_setting('server_version_num')::int / 10000")
	return cur.fetchone()[0]


def pg_dump_warning(cur, pg_dump: str | None = None) -> str | None:
	"""Why `bench backup` would fail on this server, or None.

	Frappe runs the first `pg_dump` on PATH, and pg_dump refuses a server newer than itself.
	`pg_dump` names another binary to check (default: the one on PATH, as Frappe finds it).
	"""
	path = pg_dump or shutil.which("pg_dump")
	if not path:
		return "pg_dump is not on PATH: `bench backup` cannot back this site up"
	try:
		output = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30).stdout
	except OSError as e:
		return f"{path} does not run ({e}): `bench backup` cannot back this site up"
	return version_mismatch("pg_dump", path, client_major(output), server_major(cur))


def version_mismatch(tool: str, path: str, client: int | None, server: int) -> str | None:
	if client is None:
		return f"could not read the version of {path}"
	if client < server:
		return (
			f"{path} is {tool} {client}, older than the server's PostgreSQL {server}: `bench backup` fails"
			f" with it. Put a PostgreSQL {server} client first on PATH for bench (e.g. the server's own"
			" bin directory, or the postgresql-client package of that version)."
		)
	return None
