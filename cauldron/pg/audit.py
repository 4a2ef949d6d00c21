"""core.audit_log storage: batched writes, a tamper-evident hash chain, verification, erasure.

Writers only INSERT: nothing in a document's transaction waits on another. Shortly after commit a
job seals the rows that have become visible, in that order: it numbers them (`seq`) and chains
them, each row's hash covering the previous row's hash, its own non-personal content and a salted
digest of its personal fields. Erasing a user (GDPR) rewrites the personal fields and forgets the
salt; the stored digest keeps the chain verifiable while nothing personal remains.
"""

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

from psycopg2.extras import execute_values

from cauldron.pg.ledger import Step

GENESIS = bytes(32)
EVENT_METRIC_PREFIX = "document."  # one synapse.metrics point per audit row: document.<action>
SEAL_BATCH = 5000

CHAIN_DDL = f"""
CREATE TABLE IF NOT EXISTS core.audit_chain_head (
	singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	last_seq bigint NOT NULL,
	last_hash bytea NOT NULL
);
INSERT INTO core.audit_chain_head (last_seq, last_hash) VALUES (0, '\\x{GENESIS.hex()}') ON CONFLICT DO NOTHING;
-- Rows dropped by retention: the runs of seq they held and the hash that ended each run, so the
-- chain still verifies across the hole.
CREATE TABLE IF NOT EXISTS core.audit_chain_dropped (
	low bigint NOT NULL,
	high bigint NOT NULL,
	last_hash bytea NOT NULL,
	dropped_from text NOT NULL,
	dropped_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (low)
)"""

# Personal fields, hashed with the row's salt; text form computed by Postgres so it is canonical.
PII_TEXT = "jsonb_build_array(user_id, resource_id, old_values, new_values, ip_address, user_agent)::text"
CONTENT_TEXT = "jsonb_build_array(id, created_at AT TIME ZONE 'UTC', action, resource_type)::text"


def steps() -> list[Step]:
	return [Step("audit:chain", CHAIN_DDL)]


@dataclass(frozen=True)
class AuditEvent:
	action: str
	resource_type: str
	resource_id: str | None
	user_id: str | None = None
	old_values: dict | None = None
	new_values: dict | None = None
	ip_address: str | None = None
	user_agent: str | None = None
	created_at: datetime | None = None


def write_events(cur, events: Iterable[AuditEvent]) -> int:
	"""Insert the events with one multi-row statement; returns how many."""
	rows = [
		(
			e.created_at or datetime.now(timezone.utc),
			e.user_id,
			e.action,
			e.resource_type,
			e.resource_id,
			None if e.old_values is None else json.dumps(e.old_values, default=str),
			None if e.new_values is None else json.dumps(e.new_values, default=str),
			e.ip_address,
			e.user_agent,
			os.urandom(16),
		)
		for e in events
	]
	if rows:
		execute_values(
			cur,
			"""
			INSERT INTO core.audit_log (created_at, user_id, action, resource_type, resource_id,
				old_values, new_values, ip_address, user_agent, pii_salt)
			VALUES %s
			""",
			rows,
			template="(%s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s, %s, %s)",
			page_size=1000,
		)
	return len(rows)


def _row_hash(prev_hash: bytes, seq: int, content: str, pii_digest: bytes) -> bytes:
	return hashlib.sha256(prev_hash + f"{seq}|".encode() + content.encode() + pii_digest).digest()


def seal(cur, batch: int = SEAL_BATCH) -> int:
	"""Chain the committed rows not sealed yet, oldest first, and count each into synapse.metrics;
	returns how many were sealed.

	Only sealers wait on the chain head's lock; writers never touch it.
	"""
	cur.execute("SELECT last_seq, last_hash FROM core.audit_chain_head FOR UPDATE")
	last_seq, last_hash = cur.fetchone()
	last_hash = bytes(last_hash)
	total = 0
	while True:
		cur.execute(
			f"""
			SELECT id, created_at, {CONTENT_TEXT},
				sha256(coalesce(pii_salt, ''::bytea) || convert_to({PII_TEXT}, 'UTF8'))
			FROM core.audit_log
			WHERE seq IS NULL
			ORDER BY created_at, id
			LIMIT %s
			""",
			(batch,),
		)
		rows = cur.fetchall()
		if not rows:
			break
		updates = []
		for row_id, created_at, content, digest in rows:
			last_seq += 1
			digest = bytes(digest)
			row_hash = _row_hash(last_hash, last_seq, content, digest)
			updates.append((row_id, created_at, last_seq, last_hash, row_hash, digest))
			last_hash = row_hash
		# Sealing is also where each event becomes a metric point: only committed rows get here, so
		# rolled-back work counts nothing, and the write path carries no metric statement at all.
		execute_values(
			cur,
			f"""
			WITH sealed AS (
				UPDATE core.audit_log a
				SET seq = u.seq, prev_hash = u.prev_hash, row_hash = u.row_hash, pii_digest = u.pii_digest
				FROM (VALUES %s) AS u (id, created_at, seq, prev_hash, row_hash, pii_digest)
				WHERE a.id = u.id AND a.created_at = u.created_at
				RETURNING a.created_at, a.action, a.resource_type
			)
			INSERT INTO synapse.metrics (time, metric_name, value, dimensions)
			SELECT created_at, '{EVENT_METRIC_PREFIX}' || action, 1,
				jsonb_build_object('doctype', resource_type, 'action', action)
			FROM sealed
			""",
			updates,
			template="(%s::uuid, %s::timestamptz, %s::bigint, %s::bytea, %s::bytea, %s::bytea)",
			page_size=1000,
		)
		total += len(rows)
	cur.execute("UPDATE core.audit_chain_head SET last_seq = %s, last_hash = %s", (last_seq, last_hash))
	return total


@dataclass(frozen=True)
class Verification:
	rows_checked: int
	unsealed: int
	broken_seq: int | None = None
	broken_id: str | None = None
	reason: str | None = None

	@property
	def ok(self) -> bool:
		return self.reason is None

	def __str__(self) -> str:
		if self.ok:
			return f"audit chain intact: {self.rows_checked} rows verified, {self.unsealed} not sealed yet"
		return (
			f"audit chain BROKEN at seq {self.broken_seq} (row {self.broken_id}): {self.reason};"
			f" {self.rows_checked} rows verified before it"
		)


def verify(cur) -> Verification:
	"""Walk the chain in seq order and name the first row that does not verify."""
	cur.execute("SELECT low, high, last_hash FROM core.audit_chain_dropped ORDER BY low")
	dropped = {high: (low, bytes(last_hash)) for low, high, last_hash in cur.fetchall()}
	cur.execute("SELECT count(*) FROM core.audit_log WHERE seq IS NULL")
	unsealed = cur.fetchone()[0]
	cur.execute("SELECT last_seq, last_hash FROM core.audit_chain_head")
	head_seq, head_hash = cur.fetchone()

	named = cur.connection.cursor(name="cauldron_audit_verify")
	named.itersize = 5000
	named.execute(
		f"""
		SELECT seq, id, prev_hash, row_hash, pii_digest, erased_at IS NOT NULL, {CONTENT_TEXT},
			sha256(coalesce(pii_salt, ''::bytea) || convert_to({PII_TEXT}, 'UTF8'))
		FROM core.audit_log
		WHERE seq IS NOT NULL
		ORDER BY seq
		"""
	)
	expected_seq, expected_prev, checked = 1, GENESIS, 0
	try:
		for seq, row_id, prev, row_hash, digest, erased, content, fresh_digest in named:
			if seq != expected_seq:
				# A hole is fine only where retention dropped exactly those rows.
				run = dropped.get(seq - 1)
				if run is None or run[0] > expected_seq:
					return Verification(
						checked, unsealed, seq, str(row_id), f"rows {expected_seq}..{seq - 1} are missing"
					)
				expected_prev = run[1]
			if bytes(prev) != expected_prev:
				return Verification(
					checked, unsealed, seq, str(row_id), "prev_hash does not match the previous row"
				)
			if not erased and bytes(fresh_digest) != bytes(digest):
				return Verification(checked, unsealed, seq, str(row_id), "personal fields were changed")
			if _row_hash(expected_prev, seq, content, bytes(digest)) != bytes(row_hash):
				return Verification(checked, unsealed, seq, str(row_id), "row content was changed")
			expected_seq, expected_prev = seq + 1, bytes(row_hash)
			checked += 1
	finally:
		named.close()
	if expected_seq - 1 < head_seq and dropped.get(head_seq) is None:
		return Verification(checked, unsealed, head_seq, None, f"rows {expected_seq}..{head_seq} are missing")
	if head_seq and expected_seq - 1 == head_seq and expected_prev != bytes(head_hash):
		return Verification(checked, unsealed, head_seq, None, "the last row does not match the chain head")
	return Verification(checked, unsealed)


def anchor_before_drop(cur, partition: str) -> None:
	"""Record the runs of seq a retention drop removes and the hash ending each run."""
	seal(cur)
	cur.execute(
		f"""
		INSERT INTO core.audit_chain_dropped (low, high, last_hash, dropped_from)
		SELECT min(seq), max(seq), (array_agg(row_hash ORDER BY seq DESC))[1], %s
		FROM (SELECT seq, row_hash, seq - row_number() OVER (ORDER BY seq) AS run
			FROM {partition} WHERE seq IS NOT NULL) runs
		GROUP BY run
		""",
		(partition,),
	)


def erase_user(cur, user: str, replacement: str) -> int:
	"""Anonymise every audit row that names `user` (GDPR erasure); returns how many rows changed.

	The rows keep their place and hash in the chain: the stored digest stands in for the personal
	fields, and the salt that could confirm a guess of them is forgotten.
	"""
	seal(cur)
	cur.execute(
		"""
		UPDATE core.audit_log SET
			user_id = CASE WHEN user_id = %(user)s THEN %(replacement)s ELSE user_id END,
			resource_id = CASE WHEN resource_id = %(user)s THEN %(replacement)s ELSE resource_id END,
			old_values = replace(old_values::text, %(json_user)s, %(json_replacement)s)::jsonb,
			new_values = replace(new_values::text, %(json_user)s, %(json_replacement)s)::jsonb,
			ip_address = CASE WHEN user_id = %(user)s THEN NULL ELSE ip_address END,
			user_agent = CASE WHEN user_id = %(user)s THEN NULL ELSE user_agent END,
			pii_salt = NULL,
			erased_at = now()
		WHERE user_id = %(user)s OR resource_id = %(user)s
			OR strpos(old_values::text, %(json_user)s) > 0 OR strpos(new_values::text, %(json_user)s) > 0
		""",
		{
			"user": user,
			"replacement": replacement,
			# the name as it stands inside JSON text, escapes and all
			"json_user": json.dumps(user)[1:-1],
			"json_replacement": json.dumps(replacement)[1:-1],
		},
	)
	return cur.rowcount
