"""Plain tables Cauldron keeps outside the DocTypes: agent interactions (high volume, written in
batches by agents) and the record of which database roles read the seed-shaped SQL surface.
"""

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from psycopg2.extras import execute_values

from cauldron.pg import CauldronDBError, values
from cauldron.pg.ledger import Step

AGENT_INTERACTION_TYPES = (
	"user_message",
	"agent_message",
	"tool_call",
	"tool_result",
	"observation",
	"system",
	"error",
)

AGENT_INTERACTIONS_DDL = """
CREATE TABLE IF NOT EXISTS aether.agent_interactions (
	id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	session_id uuid NOT NULL,
	agent_instance_id uuid NOT NULL,
	interaction_type varchar(50) NOT NULL,
	content jsonb NOT NULL,
	metadata jsonb NOT NULL DEFAULT '{}',
	created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_agent_interactions_instance
	ON aether.agent_interactions (agent_instance_id, created_at DESC);
CREATE INDEX IF NOT EXISTS idx_agent_interactions_session
	ON aether.agent_interactions (session_id, created_at);
CREATE INDEX IF NOT EXISTS idx_agent_interactions_time_brin
	ON aether.agent_interactions USING brin (created_at)"""

# Views are dropped and recreated around every migrate, and their grants with them; the roles
# granted here get them back each time.
SQL_READERS_DDL = """
CREATE TABLE IF NOT EXISTS command.sql_readers (
	role name PRIMARY KEY,
	granted_at timestamptz NOT NULL DEFAULT now()
)"""


def steps() -> list[Step]:
	return [
		Step("tables:aether.agent_interactions", AGENT_INTERACTIONS_DDL),
		Step("tables:command.sql_readers", SQL_READERS_DDL),
	]


@dataclass(frozen=True)
class AgentInteraction:
	session_id: str
	agent_instance_id: str
	interaction_type: str
	content: object
	metadata: dict | None = field(default=None)


def _uuid(value, what: str) -> str:
	try:
		return str(uuid.UUID(str(value)))
	except ValueError:
		raise CauldronDBError(f"{what} must be a UUID, got {value!r}") from None


def _interaction_row(interaction: AgentInteraction) -> tuple:
	if interaction.interaction_type not in AGENT_INTERACTION_TYPES:
		raise CauldronDBError(
			f"interaction_type must be one of {', '.join(AGENT_INTERACTION_TYPES)},"
			f" got {interaction.interaction_type!r}"
		)
	if interaction.content is None:
		raise CauldronDBError("an agent interaction needs content")
	if interaction.metadata is not None and not isinstance(interaction.metadata, dict):
		raise CauldronDBError(f"metadata must be an object, got {interaction.metadata!r}")
	size = values.check(interaction.content, "content") + values.check(interaction.metadata, "metadata")
	if size > values.MAX_ITEM_BYTES:
		raise values.InvalidValue(
			f"an agent interaction is {size} bytes (content and metadata); at most {values.MAX_ITEM_BYTES}"
		)
	content = json.dumps(interaction.content)
	return (
		_uuid(interaction.session_id, "session_id"),
		_uuid(interaction.agent_instance_id, "agent_instance_id"),
		interaction.interaction_type,
		content,
		json.dumps(interaction.metadata or {}),
	)


def write_agent_interactions(cur, interactions: Iterable[AgentInteraction]) -> list[str]:
	"""Insert the interactions with one multi-row statement; returns their ids, in order.

	Every interaction is checked before anything is sent: one bad interaction fails the call whole.
	"""
	rows = []
	for position, interaction in enumerate(interactions, 1):
		try:
			rows.append(_interaction_row(interaction))
		except CauldronDBError as e:
			raise type(e)(f"interaction {position}: {e}") from None
	if not rows:
		return []
	ids = execute_values(
		cur,
		"""
		INSERT INTO aether.agent_interactions
			(session_id, agent_instance_id, interaction_type, content, metadata)
		VALUES %s
		RETURNING id
		""",
		rows,
		template="(%s::uuid, %s::uuid, %s, %s::jsonb, %s::jsonb)",
		page_size=1000,
		fetch=True,
	)
	return [str(row[0]) for row in ids]
