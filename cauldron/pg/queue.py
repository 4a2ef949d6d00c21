"""The durable work queue every module shares: `command.work_queue`.

Postgres holds the truth; RQ (or anything else) only wakes the workers.

- `enqueue` runs in the caller's transaction, so a change and the work it causes commit or roll back
  together. It is one `INSERT ... ON CONFLICT (queue, key) WHERE status = 'pending' DO UPDATE` on a
  partial unique index: at most one *pending* item per (queue, key), so re-enqueueing a key that is
  still waiting coalesces into that item (newest payload, earliest run_after, highest priority, its
  attempts reset). A key that is being worked on (`running`) is outside that index, so the change
  gets a fresh pending item and is not lost. Writers of different keys never wait on each other;
  two transactions enqueueing the *same* key at the same moment wait for one another at the unique
  index, as they would at the row of the document they both changed.
- `claim` takes due items with `FOR UPDATE SKIP LOCKED` (priority first, then oldest) and leases
  them to a worker; an item whose lease expired (its worker died or hung) is claimable again, and
  every claim counts as an attempt, so an item that keeps killing its workers ends up parked too.
  A pending item whose key is still running under a live lease waits for it: one key is never
  worked on by two workers at once.
- `complete` / `fail` act only on items the worker still holds: once another worker has claimed
  an expired item, the first one's late answer is refused (the ids it gets back say which).
- `fail` retries with exponential backoff (capped, with jitter); after `max_attempts` the item is
  parked as `failed` with its error, visible in `stats` and `failed_items`, and `retry` puts it back.
- Done items are kept for `stats` until `purge` removes them (a daily job).

Times come from `statement_timestamp()`, not `now()`: a worker may claim and complete inside one
long transaction, and `now()` would stand still for all of it.

Isolation: Frappe's connections run at REPEATABLE READ, where locking a row another worker changed
after this transaction's snapshot is a serialization error, not a skip. `claim` catches that inside
a savepoint and returns what it got (possibly nothing); the worker tries again in a new transaction.
Claim in a short transaction of its own and commit (`run_batch` in cauldron.lore.ingest does): an
uncommitted claim holds its rows' locks, and an `enqueue` coalescing into one of them waits for it.
"""

import json
import random
from dataclasses import dataclass
from datetime import datetime

import psycopg2
from psycopg2.extras import execute_values

from cauldron.pg import CauldronDBError, values
from cauldron.pg.ledger import Step

TABLE = "command.work_queue"
STATUSES = ("pending", "running", "failed", "done")
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_LEASE_SECONDS = 300
# Backoff after the n-th failed attempt: BASE * 2**(n-1) seconds, at most CAP, plus up to JITTER of it.
BACKOFF_BASE_SECONDS = 10.0
BACKOFF_CAP_SECONDS = 3600.0
BACKOFF_JITTER = 0.25
MAX_ERROR_CHARS = 4000

QUEUE_DDL = """
CREATE TABLE IF NOT EXISTS command.work_queue (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	queue text NOT NULL,
	key text NOT NULL,
	payload jsonb NOT NULL DEFAULT '{}',
	priority smallint NOT NULL DEFAULT 0,
	status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'failed', 'done')),
	attempts integer NOT NULL DEFAULT 0,
	max_attempts integer NOT NULL DEFAULT 5 CHECK (max_attempts >= 1),
	run_after timestamptz NOT NULL DEFAULT statement_timestamp(),
	enqueued_at timestamptz NOT NULL DEFAULT statement_timestamp(),
	updated_at timestamptz NOT NULL DEFAULT statement_timestamp(),
	worker text,
	leased_until timestamptz,
	last_error text,
	finished_at timestamptz
);
CREATE UNIQUE INDEX IF NOT EXISTS uq_work_queue_pending
	ON command.work_queue (queue, key) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS idx_work_queue_due
	ON command.work_queue (queue, priority DESC, run_after, id) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS idx_work_queue_running
	ON command.work_queue (queue, key, leased_until) WHERE status = 'running';
CREATE INDEX IF NOT EXISTS idx_work_queue_failed
	ON command.work_queue (queue, updated_at) WHERE status = 'failed';
CREATE INDEX IF NOT EXISTS idx_work_queue_done
	ON command.work_queue (finished_at) WHERE status = 'done'"""


def steps() -> list[Step]:
	return [Step("queue:command.work_queue", QUEUE_DDL)]


class QueueError(CauldronDBError):
	pass


@dataclass(frozen=True)
class Item:
	id: int
	queue: str
	key: str
	payload: dict
	attempts: int
	max_attempts: int
	leased_until: datetime
	enqueued_at: datetime


_ITEM_COLUMNS = "id, queue, key, payload, attempts, max_attempts, leased_until, enqueued_at"


def _name(value, what: str) -> str:
	if not isinstance(value, str) or not value:
		raise QueueError(f"{what} must be a non-empty text, got {value!r}")
	values.text(value, what)
	return value


def _seconds(value, what: str) -> float:
	if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 10**9:
		raise QueueError(f"{what} must be a number of seconds from 0, got {value!r}")
	return float(value)


def _row(queue, key, payload, priority, max_attempts, delay) -> tuple:
	_name(key, "queue key")
	if payload is not None and not isinstance(payload, dict):
		raise QueueError(f"payload must be an object, got {type(payload).__name__}")
	values.check(payload, "payload")
	values.whole_number(priority, "priority", -32768, 32767)
	values.whole_number(max_attempts, "max_attempts", 1, 1000)
	return (queue, key, json.dumps(payload or {}), priority, max_attempts, delay)


_ENQUEUE = """
INSERT INTO command.work_queue AS q (queue, key, payload, priority, max_attempts, run_after)
VALUES %s
ON CONFLICT (queue, key) WHERE status = 'pending' DO UPDATE SET
	payload = EXCLUDED.payload,
	priority = greatest(q.priority, EXCLUDED.priority),
	max_attempts = EXCLUDED.max_attempts,
	run_after = least(q.run_after, EXCLUDED.run_after),
	attempts = 0,
	updated_at = statement_timestamp()
RETURNING id, (xmax = 0) AS inserted
"""
_TEMPLATE = "(%s, %s, %s::jsonb, %s, %s, statement_timestamp() + %s * interval '1 second')"


def enqueue(
	cur,
	queue: str,
	key: str,
	payload: dict | None = None,
	run_after: float = 0,
	priority: int = 0,
	max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> int:
	"""Add work for `key` to `queue` in the caller's transaction; returns the pending item's id.

	`run_after` is a delay in seconds. While an item for the key is pending, this coalesces into it
	(the newest payload wins); while one is running, a new pending item is made.
	"""
	_name(queue, "queue")
	row = _row(queue, key, payload, priority, max_attempts, _seconds(run_after, "run_after"))
	cur.execute(_ENQUEUE.replace("%s", _TEMPLATE, 1), row)
	return cur.fetchone()[0]


def enqueue_many(
	cur, queue: str, items, priority: int = 0, max_attempts: int = DEFAULT_MAX_ATTEMPTS, run_after: float = 0
) -> int:
	"""`enqueue` for many (key, payload) pairs in one statement per 1000; a key given twice keeps its
	last payload. Returns how many items are pending for them."""
	_name(queue, "queue")
	delay = _seconds(run_after, "run_after")
	rows = {}
	for key, payload in items:
		rows[key] = _row(queue, key, payload, priority, max_attempts, delay)
	total = 0
	batch = list(rows.values())
	for start in range(0, len(batch), 1000):
		total += len(
			execute_values(cur, _ENQUEUE, batch[start : start + 1000], template=_TEMPLATE, fetch=True)
		)
	return total


def claim(cur, queue: str, worker: str, limit: int = 10, lease: float = DEFAULT_LEASE_SECONDS) -> list[Item]:
	"""Lease up to `limit` due items of `queue` to `worker` for `lease` seconds.

	Items whose lease expired come first (they were claimed before); an expired item that has used
	all its attempts is parked as failed instead ("the worker never answered"). Then pending items,
	highest priority first, then the earliest due. Never blocks on rows another worker is claiming.
	"""
	_name(queue, "queue")
	_name(worker, "worker")
	values.whole_number(limit, "limit", 1, 100_000)
	lease = _seconds(lease, "lease")
	if lease <= 0:
		raise QueueError("lease must be more than 0 seconds")
	args = {"queue": queue, "worker": worker, "lease": lease, "limit": limit}
	claimed: list[Item] = []
	cur.execute("SAVEPOINT cauldron_queue_claim")
	try:
		cur.execute(
			f"""
			WITH lost AS (
				SELECT id FROM {TABLE}
				WHERE queue = %(queue)s AND status = 'running' AND leased_until < statement_timestamp()
					AND attempts >= max_attempts
				FOR UPDATE SKIP LOCKED
			)
			UPDATE {TABLE} q SET status = 'failed', worker = NULL, leased_until = NULL,
				finished_at = statement_timestamp(), updated_at = statement_timestamp(),
				last_error = 'lease expired ' || q.attempts || ' times: its worker stopped before answering'
					|| coalesce(' (last error: ' || q.last_error || ')', '')
			WHERE q.id = ANY(ARRAY(SELECT id FROM lost))
			""",
			args,
		)
		cur.execute(
			f"""
			WITH expired AS (
				SELECT id FROM {TABLE}
				WHERE queue = %(queue)s AND status = 'running' AND leased_until < statement_timestamp()
				ORDER BY leased_until
				LIMIT %(limit)s
				FOR UPDATE SKIP LOCKED
			)
			UPDATE {TABLE} q SET worker = %(worker)s, attempts = q.attempts + 1,
				leased_until = statement_timestamp() + %(lease)s * interval '1 second',
				updated_at = statement_timestamp()
			WHERE q.id = ANY(ARRAY(SELECT id FROM expired))
			RETURNING {", ".join("q." + c.strip() for c in _ITEM_COLUMNS.split(","))}
			""",
			args,
		)
		claimed.extend(Item(*row) for row in sorted(cur.fetchall()))
		if len(claimed) < limit:
			args["limit"] = limit - len(claimed)
			cur.execute(
				f"""
				WITH due AS (
					SELECT p.id FROM {TABLE} p
					WHERE p.queue = %(queue)s AND p.status = 'pending'
						AND p.run_after <= statement_timestamp()
						AND NOT EXISTS (
							SELECT 1 FROM {TABLE} r
							WHERE r.queue = p.queue AND r.key = p.key AND r.status = 'running'
								AND r.leased_until >= statement_timestamp())
					ORDER BY p.priority DESC, p.run_after, p.id
					LIMIT %(limit)s
					FOR UPDATE SKIP LOCKED
				)
				, claimed AS (
					UPDATE {TABLE} q SET status = 'running', worker = %(worker)s, attempts = q.attempts + 1,
						leased_until = statement_timestamp() + %(lease)s * interval '1 second',
						updated_at = statement_timestamp()
					WHERE q.id = ANY(ARRAY(SELECT id FROM due))
					RETURNING q.*
				)
				SELECT {_ITEM_COLUMNS} FROM claimed ORDER BY priority DESC, run_after, id
				""",
				args,
			)
			claimed.extend(Item(*row) for row in cur.fetchall())
		cur.execute("RELEASE SAVEPOINT cauldron_queue_claim")
	except psycopg2.errors.SerializationFailure:
		# REPEATABLE READ: another worker claimed a row after this snapshot began. Nothing of this
		# claim stands; a new transaction will see the queue as it is.
		cur.execute("ROLLBACK TO SAVEPOINT cauldron_queue_claim")
		cur.execute("RELEASE SAVEPOINT cauldron_queue_claim")
		return []
	# Expired items were claimed first; hand them out in the order a worker should take them.
	return claimed


def _held(cur, sql: str, ids, params) -> list[int]:
	"""Run `sql`, an UPDATE ... RETURNING id of the worker's own items, with `params(ids)`; returns
	the ids it changed. At REPEATABLE READ an item another worker claimed after this transaction's
	snapshot is a serialization error: then each id is tried alone, and those taken are left out."""
	ids = sorted(set(ids))
	found: list[int] = []
	for group in [ids] if len(ids) <= 1 else [ids, *[[i] for i in ids]]:
		cur.execute("SAVEPOINT cauldron_queue_held")
		try:
			cur.execute(sql, params(group))
			found.extend(row[0] for row in cur.fetchall())
			cur.execute("RELEASE SAVEPOINT cauldron_queue_held")
			if group is ids:
				break
		except psycopg2.errors.SerializationFailure:
			cur.execute("ROLLBACK TO SAVEPOINT cauldron_queue_held")
			cur.execute("RELEASE SAVEPOINT cauldron_queue_held")
	return sorted(found)


def extend(cur, ids, worker: str, lease: float = DEFAULT_LEASE_SECONDS) -> list[int]:
	"""Renew the worker's lease on `ids` (a heartbeat between items); returns the ids still held."""
	lease = _seconds(lease, "lease")
	return _held(
		cur,
		f"""
		UPDATE {TABLE} SET leased_until = statement_timestamp() + %s * interval '1 second'
		WHERE id = ANY(%s) AND worker = %s AND status = 'running'
		RETURNING id
		""",
		ids,
		lambda group: (lease, group, worker),
	)


def complete(cur, ids, worker: str) -> list[int]:
	"""Mark the worker's items done; returns the ids it still held (others were claimed by another
	worker after its lease expired, and stay theirs)."""
	return _held(
		cur,
		f"""
		UPDATE {TABLE} SET status = 'done', leased_until = NULL, finished_at = statement_timestamp(),
			updated_at = statement_timestamp()
		WHERE id = ANY(%s) AND worker = %s AND status = 'running'
		RETURNING id
		""",
		ids,
		lambda group: (group, worker),
	)


def backoff_seconds(
	attempts: int, base: float = BACKOFF_BASE_SECONDS, cap: float = BACKOFF_CAP_SECONDS
) -> float:
	"""The delay before the next try after `attempts` failed ones, without jitter."""
	return min(cap, base * 2 ** max(0, min(attempts, 64) - 1))


def fail(
	cur,
	id: int,
	worker: str,
	error: str,
	base: float = BACKOFF_BASE_SECONDS,
	cap: float = BACKOFF_CAP_SECONDS,
	jitter: float = BACKOFF_JITTER,
	retryable: bool = True,
) -> str | None:
	"""Record that the worker's attempt at item `id` failed with `error`; an error that trying again
	cannot cure (`retryable=False`: a refused API key, an unreadable file) parks it at once.

	Returns the item's new status: `pending` (retried after the backoff), `failed` (parked: all its
	attempts are used), `superseded` (a newer pending item for the same key will do the work, so this
	one is dropped and its error handed to that one), or None when the worker no longer holds it.
	"""
	error = _error_text(error)
	cur.execute("SAVEPOINT cauldron_queue_fail")
	try:
		cur.execute(
			f"SELECT queue, key, attempts, max_attempts FROM {TABLE} WHERE id = %s AND worker = %s"
			" AND status = 'running' FOR UPDATE",
			(id, worker),
		)
		row = cur.fetchone()
		cur.execute("RELEASE SAVEPOINT cauldron_queue_fail")
	except psycopg2.errors.SerializationFailure:  # claimed by another worker after this snapshot
		cur.execute("ROLLBACK TO SAVEPOINT cauldron_queue_fail")
		cur.execute("RELEASE SAVEPOINT cauldron_queue_fail")
		row = None
	if row is None:
		return None
	queue, key, attempts, max_attempts = row
	if attempts >= max_attempts or not retryable:
		cur.execute(
			f"""
			UPDATE {TABLE} SET status = 'failed', last_error = %s, leased_until = NULL,
				finished_at = statement_timestamp(), updated_at = statement_timestamp()
			WHERE id = %s
			""",
			(error, id),
		)
		return "failed"
	delay = backoff_seconds(attempts, base, cap) * (1 + random.uniform(0, max(0.0, jitter)))
	# A change that arrived while this item ran made a newer pending item for the key: it covers this
	# one (the worker reads the latest state), so it takes this item's error and this one goes.
	cur.execute(
		f"""
		UPDATE {TABLE} SET last_error = coalesce(last_error, %s), updated_at = statement_timestamp()
		WHERE queue = %s AND key = %s AND status = 'pending'
		RETURNING id
		""",
		(error, queue, key),
	)
	if cur.fetchone() is not None:
		cur.execute(f"DELETE FROM {TABLE} WHERE id = %s", (id,))
		return "superseded"
	cur.execute(
		f"""
		UPDATE {TABLE} SET status = 'pending', worker = NULL, leased_until = NULL, last_error = %s,
			run_after = statement_timestamp() + %s * interval '1 second', updated_at = statement_timestamp()
		WHERE id = %s
		""",
		(error, delay, id),
	)
	return "pending"


def _error_text(error) -> str:
	text = str(error) if not isinstance(error, str) else error
	text = text.replace("\x00", "\\x00").encode("utf-8", "replace").decode("utf-8")
	return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def retry(cur, ids) -> list[int]:
	"""Put parked (failed) items back in the queue, due now with fresh attempts; returns the ids
	handled. Per key one item goes back (the newest); when the key already has a pending item, that
	one is made due now instead and the parked ones are folded into it (deleted)."""
	cur.execute(
		f"""
		SELECT f.id, f.queue, f.key, p.id FROM {TABLE} f
		LEFT JOIN {TABLE} p ON p.queue = f.queue AND p.key = f.key AND p.status = 'pending'
		WHERE f.id = ANY(%s) AND f.status = 'failed'
		ORDER BY f.id DESC
		FOR UPDATE OF f
		""",
		(list(ids),),
	)
	rows = cur.fetchall()
	back, folded, due_now, seen = [], [], set(), set()
	for id_, queue, key, pending in rows:
		if pending is not None:
			due_now.add(pending)
			folded.append(id_)
		elif (queue, key) in seen:
			folded.append(id_)
		else:
			seen.add((queue, key))
			back.append(id_)
	if folded:
		cur.execute(f"DELETE FROM {TABLE} WHERE id = ANY(%s)", (folded,))
	if due_now:
		cur.execute(
			f"""
			UPDATE {TABLE} SET run_after = least(run_after, statement_timestamp()), attempts = 0,
				updated_at = statement_timestamp()
			WHERE id = ANY(%s) AND status = 'pending'
			""",
			(sorted(due_now),),
		)
	if back:
		cur.execute(
			f"""
			UPDATE {TABLE} SET status = 'pending', attempts = 0, worker = NULL, leased_until = NULL,
				finished_at = NULL, run_after = statement_timestamp(), updated_at = statement_timestamp()
			WHERE id = ANY(%s)
			""",
			(back,),
		)
	return sorted(back + folded)


def retry_failed(cur, queue: str) -> list[int]:
	"""`retry` every parked item of `queue`."""
	cur.execute(f"SELECT id FROM {TABLE} WHERE queue = %s AND status = 'failed'", (queue,))
	return retry(cur, [row[0] for row in cur.fetchall()])


def purge(cur, older_than_seconds: float = 7 * 86400, queue: str | None = None) -> int:
	"""Delete done items finished more than `older_than_seconds` ago; returns how many."""
	cur.execute(
		f"""
		DELETE FROM {TABLE} WHERE status = 'done'
			AND finished_at < statement_timestamp() - %s * interval '1 second'
			AND (%s::text IS NULL OR queue = %s)
		""",
		(_seconds(older_than_seconds, "older_than_seconds"), queue, queue),
	)
	return cur.rowcount


@dataclass(frozen=True)
class Stats:
	queue: str
	pending: int
	due: int
	running: int
	expired: int  # running items whose lease has run out (a worker died or hangs)
	failed: int
	done: int
	oldest_pending_seconds: float | None
	last_error: str | None
	last_error_at: datetime | None


def stats(cur, queue: str | None = None) -> list[Stats]:
	"""Counts per queue (all queues when `queue` is None), for Desk and monitoring."""
	cur.execute(
		f"""
		SELECT queue,
			count(*) FILTER (WHERE status = 'pending'),
			count(*) FILTER (WHERE status = 'pending' AND run_after <= statement_timestamp()),
			count(*) FILTER (WHERE status = 'running'),
			count(*) FILTER (WHERE status = 'running' AND leased_until < statement_timestamp()),
			count(*) FILTER (WHERE status = 'failed'),
			count(*) FILTER (WHERE status = 'done'),
			extract(epoch FROM statement_timestamp() - min(enqueued_at) FILTER (WHERE status = 'pending'))::float8,
			(array_agg(last_error ORDER BY updated_at DESC) FILTER (WHERE last_error IS NOT NULL))[1],
			max(updated_at) FILTER (WHERE last_error IS NOT NULL)
		FROM {TABLE}
		WHERE %s::text IS NULL OR queue = %s
		GROUP BY queue ORDER BY queue
		""",
		(queue, queue),
	)
	found = [Stats(*row) for row in cur.fetchall()]
	if queue is not None and not found:
		return [Stats(queue, 0, 0, 0, 0, 0, 0, None, None, None)]
	return found


def failed_items(cur, queue: str, limit: int = 100) -> list[dict]:
	"""The parked items of `queue`, newest first, with their errors (for a Desk list)."""
	values.whole_number(limit, "limit", 1, 1000)
	cur.execute(
		f"""
		SELECT id, key, payload, attempts, last_error, enqueued_at, finished_at FROM {TABLE}
		WHERE queue = %s AND status = 'failed' ORDER BY updated_at DESC, id DESC LIMIT %s
		""",
		(queue, limit),
	)
	columns = [c.name for c in cur.description]
	return [dict(zip(columns, row, strict=True)) for row in cur.fetchall()]
