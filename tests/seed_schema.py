"""The seed's tables, parsed from its CREATE TABLE statements (and the metrics_hourly aggregate).

The seed (the specification) sits beside the repository in ../shared/seed/, as it does in the
project's CI (.ci/run); tests that need it are skipped where it is not.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SEED = HERE.parent.parent / "shared" / "seed" / "000_8ff4eb117c944f36.txt"

# Seed spelling -> Postgres's own (format_type)
TYPES = {
	"UUID": "uuid",
	"TEXT": "text",
	"TEXT[]": "text[]",
	"BOOLEAN": "boolean",
	"TIMESTAMPTZ": "timestamp with time zone",
	"JSONB": "jsonb",
	"FLOAT": "double precision",
	"DOUBLE PRECISION": "double precision",
	"INTEGER": "integer",
}


@dataclass(frozen=True)
class Column:
	name: str
	type: str
	references: str | None = None  # schema.table
	on_delete: str | None = None  # "cascade" | "set null" | None (no action: blocked)


@dataclass
class Table:
	relation: str
	columns: list[Column] = field(default_factory=list)

	@property
	def names(self) -> list[str]:
		return [c.name for c in self.columns]


def sql_blocks(text: str) -> str:
	return "\n".join(re.findall(r"```sql\n(.*?)```", text, re.S))


def seed_sql() -> str:
	if not SEED.exists():
		# A checkout on its own (GitHub's CI) has no ../shared; the project's CI always has it.
		pytest.skip(f"the seed (the specification) is not beside this checkout: {SEED}")
	return sql_blocks(SEED.read_text())


def _split_top_level(body: str) -> list[str]:
	parts, depth, current = [], 0, []
	for char in body:
		if char == "(":
			depth += 1
		elif char == ")":
			depth -= 1
		if char == "," and depth == 0:
			parts.append("".join(current))
			current = []
		else:
			current.append(char)
	parts.append("".join(current))
	return [p.strip() for p in parts if p.strip()]


def _type(spec: str) -> str:
	spec = spec.upper()
	for seed_type in sorted(TYPES, key=len, reverse=True):
		if spec == seed_type or spec.startswith(seed_type + " "):
			return TYPES[seed_type]
	match = re.match(r"(VARCHAR|VECTOR)\((\d+)\)", spec)
	if match:
		kind = "character varying" if match.group(1) == "VARCHAR" else "vector"
		return f"{kind}({match.group(2)})"
	raise ValueError(f"unknown seed type in {spec!r}")


def _column(definition: str) -> Column:
	definition = re.sub(r"--.*", "", definition).strip()
	name, rest = definition.split(None, 1)
	references = re.search(r"REFERENCES\s+(\w+\.\w+)", rest)
	on_delete = re.search(r"ON DELETE (CASCADE|SET NULL)", rest)
	return Column(
		name,
		_type(rest),
		references.group(1) if references else None,
		on_delete.group(1).lower() if on_delete else None,
	)


def tables() -> dict[str, Table]:
	"""Every seed table by its qualified name, columns in the seed's order."""
	text = re.sub(r"--[^\n]*", "", seed_sql())
	result = {}
	for match in re.finditer(r"CREATE TABLE (\w+\.\w+) \((.*?)\n\);", text, re.S):
		table = Table(match.group(1))
		for part in _split_top_level(match.group(2)):
			if re.match(r"(UNIQUE|PRIMARY KEY|CONSTRAINT|CHECK)\b", part):
				continue
			table.columns.append(_column(part))
		result[table.relation] = table
	result["synapse.metrics_hourly"] = _metrics_hourly(text, result["synapse.metrics"])
	return result


def _metrics_hourly(text: str, metrics: Table) -> Table:
	"""The continuous aggregate's columns: its SELECT list, typed from synapse.metrics."""
	select = re.search(r"MATERIALIZED VIEW synapse\.metrics_hourly.*?SELECT(.*?)FROM", text, re.S).group(1)
	source = {c.name: c.type for c in metrics.columns}
	table = Table("synapse.metrics_hourly")
	for item in _split_top_level(select):
		alias = re.search(r"\bAS (\w+)$", item)
		name = alias.group(1) if alias else item
		if item.startswith("time_bucket"):
			sql_type = "timestamp with time zone"
		elif item.upper().startswith("COUNT"):
			sql_type = "bigint"
		elif re.match(r"(AVG|MIN|MAX)\(", item, re.I):
			sql_type = "double precision"
		else:
			sql_type = source[name]
		table.columns.append(Column(name, sql_type))
	return table
