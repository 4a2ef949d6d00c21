"""The DDL ledger in schema `command`: each provisioning step is applied once and recorded with the
checksum of the SQL that was run. A step whose SQL has since changed is reported, never re-applied:
changing a live table is a migration of its own, not a side effect of `bench migrate`.
"""

import hashlib
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


@dataclass(frozen=True)
class Step:
	name: str
	sql: str
	requires: frozenset[str] = field(default_factory=frozenset)

	@property
	def checksum(self) -> str:
		return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True)
class Outcome:
	step: str
	status: str  # pending | applied | unchanged | changed | skipped
	detail: str = ""


def applied_steps(cur) -> dict[str, str]:
	"""step -> checksum of what is recorded; empty when the ledger does not exist yet."""
	cur.execute("SELECT to_regclass('command.ddl_ledger') IS NOT NULL")
	if not cur.fetchone()[0]:
		return {}
	cur.execute("SELECT step, checksum FROM command.ddl_ledger")
	return dict(cur.fetchall())


def check(cur, steps: list[Step], capabilities: set[str]) -> list[Outcome]:
	"""What `apply` would do, without doing it: pending | unchanged | changed | skipped per step."""
	recorded = applied_steps(cur)
	outcomes = []
	for step in steps:
		missing = step.requires - capabilities
		if step.name in recorded:
			if recorded[step.name] == step.checksum:
				outcomes.append(Outcome(step.name, "unchanged"))
			else:
				outcomes.append(
					Outcome(
						step.name, "changed", "the step's SQL differs from what was applied; not re-applied"
					)
				)
		elif missing:
			outcomes.append(Outcome(step.name, "skipped", f"needs extension {', '.join(sorted(missing))}"))
		else:
			outcomes.append(Outcome(step.name, "pending"))
	return outcomes


def apply(cur, steps: list[Step], capabilities: set[str]) -> list[Outcome]:
	"""Apply the steps not yet recorded, in order, inside the caller's transaction (which holds
	PROVISION_LOCK)."""
	cur.execute(LEDGER_DDL)
	outcomes = check(cur, steps, capabilities)
	by_name = {step.name: step for step in steps}
	for i, outcome in enumerate(outcomes):
		if outcome.status != "pending":
			continue
		step = by_name[outcome.step]
		cur.execute(step.sql)
		cur.execute(
			"INSERT INTO command.ddl_ledger (step, checksum, app_version) VALUES (%s, %s, %s)"
			" ON CONFLICT (step) DO NOTHING",
			(step.name, step.checksum, __version__),
		)
		outcomes[i] = Outcome(step.name, "applied")
	return outcomes
