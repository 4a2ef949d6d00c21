"""The DDL ledger in schema `command`: each provisioning step is applied once and recorded with the
checksum of the SQL that was run. A step whose SQL has since changed is reported, never re-applied:
changing a live table is a migration of its own, not a side effect of `bench migrate`.

The ledger never claims a step whose objects are gone. Each step knows the objects it makes (read
from its SQL: tables, indexes, views, functions, triggers, hypertables, added columns). A recorded step with one
of them missing (a restore that lost `lore.document_chunks` because `CREATE EXTENSION vector` failed
as the site's user, a table dropped by hand) is reported `missing` and re-applied by the next
provision; when the extension it needs is absent, its record is removed instead, so that it shows
as skipped until the extension arrives. Every step's SQL is idempotent (IF NOT EXISTS, OR REPLACE),
so re-applying it completes what is missing and leaves what is there.
"""

import hashlib
import re
from dataclasses import dataclass, field

from cauldron import __version__

LEDGER_DDL = """
CREATE TABLE IF NOT EXISTS command.ddl_ledger (
	step text PRIMARY KEY,
	checksum text NOT NULL,
	app_version text NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now(),
	applied_by text NOT NULL DEFAULT current_user
)
"""

# Two `bench migrate` runs at once (or a migrate beside a provision) must not interleave.
PROVISION_LOCK = "SELECT pg_advisory_xact_lock(hashtext('cauldron.provision'))"

# What a step's SQL makes, as (kind, name): relation (table, partition, view, materialized view),
# index (named in its table's schema), function, trigger ("name ON schema.table"), hypertable,
# column ("schema.table.column", added by ALTER TABLE ... ADD COLUMN IF NOT EXISTS).
_NAME = r"([a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*)"
_OBJECT_PATTERNS = (
	("relation", re.compile(rf"\bCREATE\s+(?:UNLOGGED\s+)?TABLE\s+IF\s+NOT\s+EXISTS\s+{_NAME}", re.I)),
	("relation", re.compile(rf"\bCREATE\s+(?:MATERIALIZED\s+)?VIEW\s+IF\s+NOT\s+EXISTS\s+{_NAME}", re.I)),
	("relation", re.compile(rf"\bCREATE\s+(?:OR\s+REPLACE\s+)?VIEW\s+{_NAME}", re.I)),
	(
		"index",
		re.compile(
			r"\bCREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:CONCURRENTLY\s+)?IF\s+NOT\s+EXISTS\s+([a-z_][a-z0-9_]*)"
			rf"\s+ON\s+(?:ONLY\s+)?{_NAME}",
			re.I,
		),
	),
	("function", re.compile(rf"\bCREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+{_NAME}\s*\(", re.I)),
	(
		"trigger",
		re.compile(
			r"\bCREATE\s+(?:OR\s+REPLACE\s+)?TRIGGER\s+([a-z_][a-z0-9_]*)\s.*?\bON\s+" + _NAME, re.I | re.S
		),
	),
	("hypertable", re.compile(rf"\bcreate_hypertable\s*\(\s*'{_NAME}'", re.I)),
	(
		"column",
		re.compile(
			rf"\bALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?{_NAME}\s+"
			r"ADD\s+(?:COLUMN\s+)?IF\s+NOT\s+EXISTS\s+([a-z_][a-z0-9_]*)",
			re.I,
		),
	),
)


def objects_in(sql: str) -> tuple[tuple[str, str], ...]:
	"""The objects `sql` creates, in order, as (kind, name)."""
	found = []
	for kind, pattern in _OBJECT_PATTERNS:
		for match in pattern.finditer(sql):
			if kind == "column":
				found.append((match.start(), kind, f"{match[1]}.{match[2]}".lower()))
			elif kind == "index":
				found.append((match.start(), kind, f"{match[2].split('.')[0]}.{match[1]}".lower()))
			elif kind == "trigger":
				found.append((match.start(), kind, f"{match[1].lower()} ON {match[2].lower()}"))
			else:
				found.append((match.start(), kind, match[1].lower()))
	return tuple(dict.fromkeys((kind, name) for _pos, kind, name in sorted(found)))


@dataclass(frozen=True)
class Step:
	name: str
	sql: str
	requires: frozenset[str] = field(default_factory=frozenset)
	# Objects the step makes that its SQL does not show (made by a function it calls, say).
	extra_objects: tuple[tuple[str, str], ...] = ()

	@property
	def checksum(self) -> str:
		return hashlib.sha256(self.sql.encode()).hexdigest()

	@property
	def objects(self) -> tuple[tuple[str, str], ...]:
		return tuple(dict.fromkeys((*objects_in(self.sql), *self.extra_objects)))


@dataclass(frozen=True)
class Outcome:
	step: str
	status: str  # pending | applied | unchanged | changed | missing | skipped
	detail: str = ""


def applied_steps(cur) -> dict[str, str]:
	"""step -> checksum of what is recorded; empty when the ledger does not exist yet."""
	cur.execute("SELECT to_regclass('command.ddl_ledger') IS NOT NULL")
	if not cur.fetchone()[0]:
		return {}
	cur.execute("SELECT step, checksum FROM command.ddl_ledger")
	return dict(cur.fetchall())


def missing_objects(cur, objects) -> list[tuple[str, str]]:
	"""Which of `objects` ((kind, name) pairs) do not exist now.

	Read from the catalog as it is now (to_regclass and friends), not from the transaction's snapshot.
	"""
	objects = list(objects)
	if not objects:
		return []
	cur.execute(
		"""
		SELECT o.kind, o.name FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS o(kind, name, position)
		WHERE NOT CASE o.kind
			WHEN 'relation' THEN to_regclass(o.name) IS NOT NULL
			-- an index on a continuous aggregate lives in TimescaleDB's schema, beside its data
			WHEN 'index' THEN EXISTS (
				SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
				WHERE c.relname = split_part(o.name, '.', 2) AND c.relkind IN ('i', 'I')
					AND n.nspname IN (split_part(o.name, '.', 1), '_timescaledb_internal'))
			WHEN 'function' THEN EXISTS (
				SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
				WHERE n.nspname = split_part(o.name, '.', 1) AND p.proname = split_part(o.name, '.', 2))
			WHEN 'trigger' THEN EXISTS (
				SELECT 1 FROM pg_trigger t
				WHERE t.tgrelid = to_regclass(split_part(o.name, ' ON ', 2))
					AND t.tgname = split_part(o.name, ' ON ', 1))
			WHEN 'column' THEN EXISTS (
				SELECT 1 FROM pg_attribute a
				WHERE a.attrelid = to_regclass(split_part(o.name, '.', 1) || '.' || split_part(o.name, '.', 2))
					AND a.attname = split_part(o.name, '.', 3) AND NOT a.attisdropped)
			-- a hypertable is checked below, where TimescaleDB's catalog can be read
			WHEN 'hypertable' THEN to_regclass(o.name) IS NOT NULL
		END
		ORDER BY o.position
		""",
		([kind for kind, _ in objects], [name for _, name in objects]),
	)
	missing = [tuple(row) for row in cur.fetchall()]
	hypertables = [
		name for kind, name in objects if kind == "hypertable" and ("hypertable", name) not in missing
	]
	if hypertables:
		cur.execute("SELECT to_regclass('_timescaledb_catalog.hypertable') IS NOT NULL")
		if cur.fetchone()[0]:
			cur.execute(
				"""
				SELECT name FROM unnest(%s::text[]) AS name
				WHERE NOT EXISTS (
					SELECT 1 FROM _timescaledb_catalog.hypertable h
					WHERE h.schema_name = split_part(name, '.', 1) AND h.table_name = split_part(name, '.', 2))
				""",
				(hypertables,),
			)
			gone = {row[0] for row in cur.fetchall()}
		else:
			gone = set(hypertables)
		missing = [o for o in objects if o in missing or (o[0] == "hypertable" and o[1] in gone)]
	return missing


def _names(objects) -> str:
	return ", ".join(f"{kind} {name}" for kind, name in objects)


def check(cur, steps: list[Step], capabilities: set[str]) -> list[Outcome]:
	"""What `apply` would do, without doing it: pending | unchanged | changed | missing | skipped."""
	recorded = applied_steps(cur)
	outcomes = []
	for step in steps:
		needs = step.requires - capabilities
		needs_text = f"needs extension {', '.join(sorted(needs))}"
		if step.name in recorded:
			missing = missing_objects(cur, step.objects)
			if recorded[step.name] == step.checksum and not missing:
				outcomes.append(Outcome(step.name, "unchanged"))
			elif recorded[step.name] != step.checksum and (not missing or len(missing) < len(step.objects)):
				detail = "the step's SQL differs from what was applied; not re-applied"
				if missing:
					detail += f"; missing: {_names(missing)}"
				outcomes.append(Outcome(step.name, "changed", detail))
			else:
				detail = f"recorded as applied, but missing: {_names(missing)}; "
				detail += f"{needs_text} before it can be re-applied" if needs else "provision re-applies it"
				outcomes.append(Outcome(step.name, "missing", detail))
		elif needs:
			outcomes.append(Outcome(step.name, "skipped", needs_text))
		else:
			outcomes.append(Outcome(step.name, "pending"))
	return outcomes


def apply(cur, steps: list[Step], capabilities: set[str]) -> list[Outcome]:
	"""Apply the steps not yet recorded and re-apply those whose objects are gone, in order, inside
	the caller's transaction (which holds PROVISION_LOCK)."""
	cur.execute(LEDGER_DDL)
	outcomes = check(cur, steps, capabilities)
	by_name = {step.name: step for step in steps}
	for i, outcome in enumerate(outcomes):
		step = by_name[outcome.step]
		if outcome.status == "missing" and step.requires - capabilities:
			# Cannot be re-applied now: the ledger stops claiming it, and it is pending again once
			# the extension is there.
			cur.execute("DELETE FROM command.ddl_ledger WHERE step = %s", (step.name,))
			outcomes[i] = Outcome(step.name, "skipped", outcome.detail)
			continue
		if outcome.status not in ("pending", "missing"):
			continue
		cur.execute(step.sql)
		cur.execute(
			"""
			INSERT INTO command.ddl_ledger (step, checksum, app_version) VALUES (%s, %s, %s)
			ON CONFLICT (step) DO UPDATE SET checksum = EXCLUDED.checksum,
				app_version = EXCLUDED.app_version, applied_at = now(), applied_by = current_user
			""",
			(step.name, step.checksum, __version__),
		)
		outcomes[i] = Outcome(
			step.name,
			"applied",
			"re-applied: its objects were missing" if outcome.status == "missing" else "",
		)
	return outcomes
