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

from psycopg2 import sql
from psycopg2.extras import execute_values

from cauldron.pg.ledger import Step

GENESIS = bytes(32)
ERASE_ACTION = "erase"
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

	Only sealers wait on the chain head's lock; writers never touch it. Run it in a transaction of
	its own: under REPEATABLE READ (Frappe's level) locking a head that another sealer moved after
	this transaction's snapshot is a serialization failure.
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
	if total:
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
	# Rows an erasure rewrote, as its own sealed record names them: erased_at alone proves nothing.
	cur.execute(
		"""
		SELECT DISTINCT jsonb_array_elements(new_values->'erased_seqs')::bigint FROM core.audit_log
		WHERE action = %s AND seq IS NOT NULL
		""",
		(ERASE_ACTION,),
	)
	erased_seqs = {row[0] for row in cur.fetchall()}

	def hole_before(seq: int, expected: int):
		"""The hash that ended the dropped rows expected..seq-1, or None if they were not dropped."""
		run = dropped.get(seq - 1)
		last_hash = run[1] if run else None
		while run and run[0] > expected:
			run = dropped.get(run[0] - 1)
		return last_hash if run else None

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
				expected_prev = hole_before(seq, expected_seq)
				if expected_prev is None:
					return Verification(
						checked, unsealed, seq, str(row_id), f"rows {expected_seq}..{seq - 1} are missing"
					)
			if bytes(prev) != expected_prev:
				return Verification(
					checked, unsealed, seq, str(row_id), "prev_hash does not match the previous row"
				)
			if bytes(fresh_digest) != bytes(digest) and not (erased and seq in erased_seqs):
				return Verification(checked, unsealed, seq, str(row_id), "personal fields were changed")
			if _row_hash(expected_prev, seq, content, bytes(digest)) != bytes(row_hash):
				return Verification(checked, unsealed, seq, str(row_id), "row content was changed")
			expected_seq, expected_prev = seq + 1, bytes(row_hash)
			checked += 1
	finally:
		named.close()
	if expected_seq - 1 < head_seq and hole_before(head_seq + 1, expected_seq) is None:
		return Verification(checked, unsealed, head_seq, None, f"rows {expected_seq}..{head_seq} are missing")
	if head_seq and expected_seq - 1 == head_seq and expected_prev != bytes(head_hash):
		return Verification(checked, unsealed, head_seq, None, "the last row does not match the chain head")
	return Verification(checked, unsealed)


def anchor_before_drop(cur, partition: sql.Composable) -> None:
	"""Record the runs of seq a retention drop removes and the hash ending each run.

	Rows never sealed were never in the chain, so dropping them leaves no hole in it.
	"""
	cur.execute(
		sql.SQL(
			"""
		INSERT INTO core.audit_chain_dropped (low, high, last_hash, dropped_from)
		SELECT min(seq), max(seq), (array_agg(row_hash ORDER BY seq DESC))[1], %s
		FROM (SELECT seq, row_hash, seq - row_number() OVER (ORDER BY seq) AS run
			FROM {} WHERE seq IS NOT NULL) runs
		GROUP BY run
		"""
		).format(partition),
		(partition.as_string(cur),),
	)


def _ere(literal: str) -> str:
	"""`literal` escaped for a Postgres regular expression."""
	return "".join(f"\\{c}" if c in r".^$*+?()[]{}|\-" else c for c in literal)


def erase_user(cur, user: str, replacement: str, full_name: str | None = None) -> int:
	"""Anonymise every audit row that names `user` (GDPR erasure); returns how many rows changed.

	The user's own actions lose the user, IP and user agent; the rows about their User document
	lose their values; elsewhere the email (and full name) are replaced where they stand as whole
	words, so other addresses that merely contain it are left intact. The rows keep their place and
	hash in the chain: the stored digest stands in for the personal fields, the salt that could
	confirm a guess of them is forgotten, and an `erase` row, sealed into the chain like any other,
	names the sealed rows that were rewritten.
	"""
	email = rf"(?<![[:alnum:]._%+-]){_ere(user)}(?![[:alnum:].-])"
	name = rf"(?<![[:alnum:]]){_ere(full_name)}(?![[:alnum:]])" if full_name and full_name != user else None

	def redacted(column: str) -> str:
		text = f"regexp_replace({column}::text, %(email)s, %(replacement)s, 'g')"
		if name:
			text = f"regexp_replace({text}, %(name)s, 'REDACTED', 'g')"
		return f"""CASE WHEN resource_type = 'User' AND resource_id = %(user)s THEN NULL
				ELSE {text}::jsonb END"""

	matches = "old_values::text ~ %(email)s OR new_values::text ~ %(email)s"
	if name:
		matches += " OR old_values::text ~ %(name)s OR new_values::text ~ %(name)s"
	cur.execute(
		f"""
		UPDATE core.audit_log SET
			old_values = {redacted("old_values")},
			new_values = {redacted("new_values")},
			user_id = CASE WHEN user_id = %(user)s THEN %(replacement)s ELSE user_id END,
			resource_id = CASE WHEN resource_id = %(user)s THEN %(replacement)s ELSE resource_id END,
			ip_address = CASE WHEN user_id = %(user)s THEN NULL ELSE ip_address END,
			user_agent = CASE WHEN user_id = %(user)s THEN NULL ELSE user_agent END,
			pii_salt = NULL,
			erased_at = now()
		WHERE user_id = %(user)s OR resource_id = %(user)s OR {matches}
		RETURNING seq
		""",
		{"user": user, "replacement": replacement, "email": email, "name": name},
	)
	seqs = [row[0] for row in cur.fetchall()]
	erased_seqs = sorted(seq for seq in seqs if seq is not None)
	write_events(
		cur,
		[
			AuditEvent(
				action=ERASE_ACTION,
				resource_type="User",
				resource_id=replacement,
				new_values={"erased_rows": len(seqs), "erased_seqs": erased_seqs},
			)
		],
	)
	return len(seqs)
