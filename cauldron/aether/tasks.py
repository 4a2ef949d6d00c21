"""Aether's task runtime: the state machine of an agent task and the queue agents claim work from.

Framework-free (a psycopg2 cursor, no Frappe), over the DocType tables `"tabAether Agent Task"`,
`"tabAether Agent Instance"` and `"tabAether Agent Definition"`. The task table *is* the queue, as
Oban's and River's jobs tables are: a task is claimed where it is, under a lease, so there is no
second copy to keep in step. It shares the backoff of the generic queue (cauldron.pg.queue), which
carries work that has no document of its own.

    pending -> awaiting_approval -> ready -> running -> completed | failed | cancelled

- pending: waiting: new, scheduled (`not_before` in the future) or backing off before a retry. A
  due pending task that needs no approval (or has one) is claimable like a ready one, so a retry
  or a scheduled task needs no job to wake it; `promote` (the scheduled job) moves them to ready
  for Desk's sake.
- awaiting_approval: a HITL Approval is asked; approved it moves on (`approve`), rejected or
  expired the task is cancelled.
- ready: claimable. `claim` takes the highest priority (1 first), then the oldest, with `FOR UPDATE
  SKIP LOCKED`, so concurrent claimers never wait for one another nor take the same task.
- running: held by one instance (`assigned_to`) until its lease runs out; `heartbeat` extends it.
- `complete` and `fail` act only on a task the instance still holds. `fail` with retry sends it
  back to pending, not before the backoff, until its attempts are used; then it fails for good.
- `rescue_expired` (the scheduled job) returns running tasks whose lease ran out to pending with
  the attempt counted (or fails them after the last one), and marks instances offline whose
  heartbeat stopped. An offline instance claims again after a heartbeat.

Every move involving an instance leaves a `system` row in aether.agent_interactions (session: the
task's id, created_at: the moment of the move): {"event": "task_transition", "task", "from", "to", ...}. Moves before any instance
took the task (creation, approval) are recorded by the approval document and the audit log.

Times are Frappe's: naive timestamps in the site's time zone (System Settings), from
`statement_timestamp()`, so a claim and its completion inside one transaction still differ.

Isolation: Frappe runs at REPEATABLE READ, where locking a row another claimer changed after this
transaction's snapshot is a serialization error, not a skip. Each operation runs in a savepoint
and raises `Contention` then: nothing of it stands, and the caller retries in a new transaction.
"""

import json
import random
from dataclasses import dataclass
from datetime import datetime

import psycopg2
from psycopg2.extras import execute_values

from cauldron.pg import CauldronDBError, values
from cauldron.pg.queue import BACKOFF_BASE_SECONDS, BACKOFF_CAP_SECONDS, BACKOFF_JITTER, backoff_seconds
from cauldron.pg.views import FRAPPE_DEFAULT_TIME_ZONE

TASKS = '"tabAether Agent Task"'
INSTANCES = '"tabAether Agent Instance"'
DEFINITIONS = '"tabAether Agent Definition"'
APPROVALS = '"tabAether HITL Approval"'

STATUSES = ("pending", "awaiting_approval", "ready", "running", "completed", "failed", "cancelled")
TERMINAL = frozenset({"completed", "failed", "cancelled"})
# Every move a task may make. pending -> running is the claim of a due pending task; failed ->
# pending is a retry (by `fail`, or by hand for a task that failed for good).
TRANSITIONS = {
	"pending": frozenset({"awaiting_approval", "ready", "running", "cancelled"}),
	"awaiting_approval": frozenset({"pending", "ready", "cancelled"}),
	"ready": frozenset({"pending", "running", "cancelled"}),
	"running": frozenset({"completed", "failed", "pending", "cancelled"}),
	"failed": frozenset({"pending"}),
	"completed": frozenset(),
	"cancelled": frozenset(),
}
TASK_TYPES = (
	"analysis",
	"research",
	"generation",
	"classification",
	"extraction",
	"automation",
	"monitoring",
	"remediation",
	"custom",
)
# Instance statuses that may not claim work.
UNAVAILABLE = frozenset({"offline", "paused", "terminated", "error"})
APPROVAL_TYPES = (
	"task_execution",
	"tool_use",
	"data_access",
	"external_action",
	"spending",
	"content_review",
)
# Hours an approval waits for an answer before it expires, unless the agent definition says otherwise.
APPROVAL_EXPIRY_HOURS = {
	"task_execution": 72.0,
	"tool_use": 1.0,
	"data_access": 24.0,
	"external_action": 24.0,
	"spending": 24.0,
	"content_review": 72.0,
}

DEFAULT_LEASE_SECONDS = 300.0
MAX_LEASE_SECONDS = 86400.0
DEFAULT_OFFLINE_AFTER_SECONDS = 600.0
MAX_CLAIM = 100
MAX_RESULT_BYTES = values.MAX_ITEM_BYTES
MAX_ERROR_CHARS = 4000

# The site's clock as Frappe keeps it: a naive timestamp in the System Settings time zone.
NOW = f"""(statement_timestamp() AT TIME ZONE coalesce(
	(SELECT s.value FROM "tabSingles" s WHERE s.doctype = 'System Settings' AND s.field = 'time_zone'),
	'{FRAPPE_DEFAULT_TIME_ZONE}'))"""

INDEXES = {
	"Aether Agent Task": (
		# the claim: due work by priority, then age (both pending and ready are claimable)
		f"""CREATE INDEX IF NOT EXISTS aether_agent_task_claim_idx
			ON {TASKS} (priority, creation, name) WHERE status IN ('pending', 'ready')""",
		# the rescue: leases that run out; an instance's running tasks
		f"""CREATE INDEX IF NOT EXISTS aether_agent_task_lease_idx
			ON {TASKS} (lease_expires_at) WHERE status = 'running'""",
		f"""CREATE INDEX IF NOT EXISTS aether_agent_task_assigned_idx
			ON {TASKS} (assigned_to) WHERE status = 'running'""",
	),
	"Aether HITL Approval": (
		f"""CREATE INDEX IF NOT EXISTS aether_hitl_approval_expiry_idx
			ON {APPROVALS} (expires_at) WHERE status = 'pending'""",
	),
}


def ensure_indexes(cur, doctype: str | None = None) -> None:
	"""The indexes of the queue's queries, of one DocType's table or of all (called from the
	DocTypes' on_doctype_update)."""
	for name, statements in INDEXES.items():
		if doctype in (None, name):
			for statement in statements:
				cur.execute(statement)


# The seed's task statuses that this state machine names otherwise.
SEED_STATUSES = {"approved": "ready", "rejected": "cancelled"}


def migrate_statuses(cur) -> int:
	"""Rows written with the seed's statuses take this machine's (idempotent; returns how many)."""
	cur.execute(
		f"""
		UPDATE {TASKS} SET status = CASE status WHEN 'approved' THEN 'ready' ELSE 'cancelled' END
		WHERE status IN ('approved', 'rejected')
		"""
	)
	return cur.rowcount


class TaskError(CauldronDBError):
	pass


class UnknownTask(TaskError):
	pass


class UnknownInstance(TaskError):
	pass


class InstanceUnavailable(TaskError):
	"""The instance may not take work now (offline, paused, terminated, or its definition inactive)."""


class UnknownTaskType(TaskError):
	pass


class TaskTypeNotAllowed(TaskError):
	pass


class NotHeld(TaskError):
	"""The task is running, but held by another instance."""


class InvalidTransition(TaskError):
	pass


class StaleVersion(TaskError):
	pass


class Contention(TaskError):
	"""Another transaction changed the rows after this one's snapshot: try again in a new one."""


@dataclass(frozen=True)
class Task:
	name: str
	task_name: str
	task_type: str
	priority: int
	description: str | None
	parameters: object
	attempts: int
	max_attempts: int
	lease_expires_at: datetime
	definition: str | None


def check_transition(old: str | None, new: str) -> None:
	if new not in STATUSES:
		raise InvalidTransition(f"{values.shown(new)} is not a task status ({', '.join(STATUSES)})")
	if old is not None and old != new and new not in TRANSITIONS.get(old, ()):
		raise InvalidTransition(f"a {old} task cannot become {new}")


def admitted_status(
	requires_approval: bool, approved: bool, not_before: datetime | None, now: datetime
) -> str:
	"""Where a new (or just approved) task goes: awaiting approval, waiting for its time, or ready."""
	if requires_approval and not approved:
		return "awaiting_approval"
	if not_before is not None and not_before > now:
		return "pending"
	return "ready"


def parse_lines(text: str | None) -> list[str]:
	"""A Small Text field of one value a line (commas also separate)."""
	return [part.strip() for line in (text or "").splitlines() for part in line.split(",") if part.strip()]


def task_types_of(definition_task_types: str | None) -> list[str]:
	"""The task types a definition names, each checked."""
	types = parse_lines(definition_task_types)
	for task_type in types:
		if task_type not in TASK_TYPES:
			raise UnknownTaskType(
				f"unknown task type {values.shown(task_type)}; known: {', '.join(TASK_TYPES)}"
			)
	return types


def approval_expiry_hours(approval_type: str, overrides: dict | None = None) -> float:
	overrides = overrides or {}
	hours = overrides.get(approval_type, APPROVAL_EXPIRY_HOURS.get(approval_type, 24.0))
	if isinstance(hours, bool) or not isinstance(hours, int | float) or not 0 < hours <= 24 * 365:
		raise TaskError(f"approval expiry for {approval_type} must be hours from 0 to 8760, not {hours!r}")
	return float(hours)


def _seconds(value, what: str, high: float) -> float:
	if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= high:
		raise values.InvalidValue(f"{what} must be a number of seconds above 0 and at most {high:g}")
	return float(value)


def _error_text(error) -> str:
	text = error if isinstance(error, str) else str(error)
	text = text.replace("\x00", "\\x00").encode("utf-8", "replace").decode("utf-8")
	return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def _savepoint(cur, name: str, fn):
	"""Run `fn()` in a savepoint; a serialization failure (REPEATABLE READ) becomes Contention, and
	any error leaves the transaction as it was before."""
	cur.execute(f"SAVEPOINT {name}")
	try:
		result = fn()
	except psycopg2.errors.SerializationFailure:
		cur.execute(f"ROLLBACK TO SAVEPOINT {name}")
		cur.execute(f"RELEASE SAVEPOINT {name}")
		raise Contention("another worker changed these tasks meanwhile: try again") from None
	except Exception:
		cur.execute(f"ROLLBACK TO SAVEPOINT {name}")
		cur.execute(f"RELEASE SAVEPOINT {name}")
		raise
	cur.execute(f"RELEASE SAVEPOINT {name}")
	return result


# An interaction's session and instance are UUIDs; every Aether document is named by one, and any
# other name maps to a stable UUID of its own.
def _uuid_sql(column: str) -> str:
	return (
		f"(CASE WHEN {column} ~* '^[0-9a-f]{{8}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{12}}$'"
		f" THEN {column}::uuid ELSE md5({column})::uuid END)"
	)


def _log_sql(source: str, instance: str, extra: str = "") -> str:
	"""INSERT of one transition interaction per row of `source` (columns name, was, status)."""
	return f"""
	INSERT INTO aether.agent_interactions
		(session_id, agent_instance_id, interaction_type, content, created_at)
	SELECT {_uuid_sql("s.name")}, {_uuid_sql(instance)}, 'system',
		jsonb_build_object('event', 'task_transition', 'task', s.name, 'from', s.was, 'to', s.status{extra}),
		clock_timestamp()
	FROM {source} s"""


def log_transition(cur, task: str, instance: str, old: str, new: str, **details) -> None:
	"""One transition interaction, for moves made outside this module (Desk's cancel, for instance)."""
	cur.execute(
		f"""
		INSERT INTO aether.agent_interactions
			(session_id, agent_instance_id, interaction_type, content, created_at)
		VALUES ({_uuid_sql("%(task)s")}, {_uuid_sql("%(instance)s")}, 'system', %(content)s::jsonb,
			clock_timestamp())
		""",
		{
			"task": task,
			"instance": instance,
			"content": json.dumps(
				{"event": "task_transition", "task": task, "from": old, "to": new, **details}
			),
		},
	)


# --- claims ---------------------------------------------------------------------------------------


def _instance(cur, instance: str) -> tuple:
	values.name(instance, "instance")
	cur.execute(
		f"""
		SELECT i.status, i.definition, d.is_active, d.task_types, i.last_heartbeat
		FROM {INSTANCES} i LEFT JOIN {DEFINITIONS} d ON d.name = i.definition
		WHERE i.name = %s
		""",
		(instance,),
	)
	row = cur.fetchone()
	if row is None:
		raise UnknownInstance(f"there is no agent instance {values.shown(instance)}")
	return row


def claimable_types(cur, instance: str, task_types=None) -> tuple[str | None, list[str] | None]:
	"""(definition, the task types to claim: None for any) for `instance`, which must be able to
	work; `task_types` asked for must be known and allowed by its definition."""
	status, definition, is_active, allowed_text, _heartbeat = _instance(cur, instance)
	if status in UNAVAILABLE:
		hint = " (no heartbeat lately): a heartbeat brings it back" if status == "offline" else ""
		raise InstanceUnavailable(f"agent instance {instance} is {status}{hint}; it cannot claim tasks")
	if definition is not None and not is_active:
		raise InstanceUnavailable(f"agent definition {definition} of instance {instance} is not active")
	allowed = task_types_of(allowed_text)
	if task_types is None or task_types == []:
		return definition, allowed or None
	if isinstance(task_types, str):
		task_types = [task_types]
	if not isinstance(task_types, list | tuple) or len(task_types) > len(TASK_TYPES) * 4:
		raise values.InvalidValue("task_types must be a list of task types")
	for task_type in task_types:
		if task_type not in TASK_TYPES:
			raise UnknownTaskType(
				f"unknown task type {values.shown(task_type)}; known: {', '.join(TASK_TYPES)}"
			)
		if allowed and task_type not in allowed:
			raise TaskTypeNotAllowed(
				f"agent definition {definition} runs {', '.join(allowed)}, not {task_type}"
			)
	return definition, sorted(set(task_types))


def claim(
	cur, instance: str, task_types=None, limit: int = 1, lease: float = DEFAULT_LEASE_SECONDS
) -> list[Task]:
	"""Lease up to `limit` due tasks to `instance`: the highest priority, then the oldest, of the
	task types asked for (those its definition allows when none are named; any when it names none),
	meant for its definition or for none. Sets assigned_to, the lease, started_at, counts the
	attempt, makes the first task the instance's current task. Never waits on another claimer."""
	values.whole_number(limit, "limit", 1, MAX_CLAIM)
	lease = _seconds(lease, "lease", MAX_LEASE_SECONDS)
	definition, types = claimable_types(cur, instance, task_types)
	args = {"instance": instance, "definition": definition, "types": types, "limit": limit, "lease": lease}
	sql = f"""
	WITH now AS (SELECT {NOW} AS ts),
	picked AS (
		SELECT t.name, t.status AS was FROM {TASKS} t
		WHERE t.status IN ('pending', 'ready')
			AND (t.not_before IS NULL OR t.not_before <= (SELECT ts FROM now))
			AND (t.requires_approval = 0 OR t.approved_at IS NOT NULL)
			AND (%(types)s::text[] IS NULL OR t.task_type = ANY(%(types)s::text[]))
			AND (t.definition IS NULL OR t.definition = %(definition)s)
		ORDER BY t.priority, t.creation, t.name
		LIMIT %(limit)s
		FOR UPDATE OF t SKIP LOCKED
	),
	claimed AS (
		UPDATE {TASKS} t SET status = 'running', assigned_to = %(instance)s, attempts = t.attempts + 1,
			started_at = now.ts, completed_at = NULL, not_before = NULL,
			lease_expires_at = now.ts + %(lease)s * interval '1 second', modified = now.ts
		FROM picked, now WHERE t.name = picked.name
		RETURNING t.name, picked.was, t.status, t.task_name, t.task_type, t.priority, t.description,
			t.parameters, t.attempts, t.max_attempts, t.lease_expires_at, t.definition, t.creation
	),
	logged AS ({_log_sql("claimed", "%(instance)s", ", 'attempt', s.attempts, 'lease_expires_at', s.lease_expires_at")}),
	busy AS (
		UPDATE {INSTANCES} i SET status = 'running', last_active_at = now.ts, last_heartbeat = now.ts,
			modified = now.ts,
			current_task = (SELECT c.name FROM claimed c ORDER BY c.priority, c.creation, c.name LIMIT 1)
		FROM now WHERE i.name = %(instance)s AND EXISTS (SELECT 1 FROM claimed)
	)
	SELECT name, task_name, task_type, priority, description, parameters, attempts, max_attempts,
		lease_expires_at, definition
	FROM claimed ORDER BY priority, creation, name
	"""

	def run():
		cur.execute(sql, args)
		return [Task(*row) for row in cur.fetchall()]

	return _savepoint(cur, "aether_claim", run)


def _held(cur, task: str, instance: str, action: str) -> tuple:
	"""Lock the task `instance` holds; a clear error when it does not (unknown, another's, or not
	running)."""
	values.name(task, "task")
	values.name(instance, "instance")
	cur.execute(
		f"SELECT status, assigned_to, attempts, max_attempts FROM {TASKS} WHERE name = %s FOR UPDATE",
		(task,),
	)
	row = cur.fetchone()
	if row is None:
		raise UnknownTask(f"there is no agent task {values.shown(task)}")
	status, assigned_to, attempts, max_attempts = row
	if status == "running" and assigned_to == instance:
		return row
	if status == "running":
		raise NotHeld(f"task {task} is held by another instance; {instance} cannot {action} it")
	if assigned_to != instance:
		raise NotHeld(f"task {task} is not held by instance {instance} (it is {status})")
	raise InvalidTransition(f"task {task} is {status}, not running: it cannot {action}")


def _release(cur, task: str, instance: str) -> None:
	"""The instance no longer works on `task`: its current task moves to another it holds, if any."""
	cur.execute(
		f"""
		UPDATE {INSTANCES} i SET last_active_at = {NOW}, modified = {NOW},
			current_task = CASE WHEN i.current_task = %(task)s THEN next.name ELSE i.current_task END,
			status = CASE WHEN next.name IS NULL AND i.status = 'running' THEN 'idle' ELSE i.status END
		FROM (SELECT (SELECT t.name FROM {TASKS} t
			WHERE t.status = 'running' AND t.assigned_to = %(instance)s AND t.name <> %(task)s
			ORDER BY t.priority, t.creation LIMIT 1) AS name) next
		WHERE i.name = %(instance)s
		""",
		{"task": task, "instance": instance},
	)


def heartbeat(cur, task: str | None, instance: str, lease: float = DEFAULT_LEASE_SECONDS) -> datetime | None:
	"""The instance is alive: its heartbeat is recorded (an offline instance is idle again) and, with
	a task, that task's lease is extended. Returns the new lease's end (None without a task)."""
	lease = _seconds(lease, "lease", MAX_LEASE_SECONDS)
	_instance(cur, instance)

	def run():
		expires = None
		if task is not None:
			_held(cur, task, instance, "heartbeat")
			cur.execute(
				f"""
				UPDATE {TASKS} SET lease_expires_at = {NOW} + %s * interval '1 second'
				WHERE name = %s RETURNING lease_expires_at
				""",
				(lease, task),
			)
			expires = cur.fetchone()[0]
		cur.execute(
			f"""
			UPDATE {INSTANCES} SET last_heartbeat = {NOW}, last_active_at = {NOW},
				status = CASE WHEN status = 'offline' THEN
					CASE WHEN current_task IS NULL THEN 'idle' ELSE 'running' END ELSE status END
			WHERE name = %s
			""",
			(instance,),
		)
		return expires

	return _savepoint(cur, "aether_heartbeat", run)


def check_result(result) -> str:
	"""The result as JSON text: any JSON value up to MAX_RESULT_BYTES."""
	values.check(result, "result", MAX_RESULT_BYTES)
	return json.dumps(result)


def complete(cur, task: str, instance: str, result=None) -> None:
	"""The instance finished `task`: completed, with its result (any JSON, up to 256 KiB)."""
	text = check_result(result)
	values.name(instance, "instance")

	def run():
		_held(cur, task, instance, "complete")
		cur.execute(
			f"""
			WITH now AS (SELECT {NOW} AS ts),
			done AS (
				UPDATE {TASKS} t SET status = 'completed', result = %(result)s::json, completed_at = now.ts,
					lease_expires_at = NULL, modified = now.ts
				FROM now WHERE t.name = %(task)s
				RETURNING t.name, 'running'::text AS was, t.status
			)
			{_log_sql("done", "%(instance)s")}
			""",
			{"task": task, "instance": instance, "result": text},
		)
		_release(cur, task, instance)

	_savepoint(cur, "aether_complete", run)


def fail(
	cur,
	task: str,
	instance: str,
	error,
	retry: bool = True,
	base: float = BACKOFF_BASE_SECONDS,
	cap: float = BACKOFF_CAP_SECONDS,
	jitter: float = BACKOFF_JITTER,
) -> str:
	"""The instance's attempt at `task` failed with `error`. With `retry` and attempts left the task
	goes back to pending, not before the backoff (cauldron.pg.queue's: base * 2**(attempts-1), capped,
	plus jitter); otherwise it fails for good. Returns the task's new status."""
	error = _error_text(error)
	values.name(instance, "instance")

	def run():
		_status, _assigned, attempts, max_attempts = _held(cur, task, instance, "fail")
		again = bool(retry) and attempts < max_attempts
		delay = backoff_seconds(attempts, base, cap) * (1 + random.uniform(0, max(0.0, jitter)))
		cur.execute(
			f"""
			WITH now AS (SELECT {NOW} AS ts),
			moved AS (
				UPDATE {TASKS} t SET status = %(status)s, error_message = %(error)s, lease_expires_at = NULL,
					modified = now.ts,
					assigned_to = CASE WHEN %(again)s THEN NULL ELSE t.assigned_to END,
					not_before = CASE WHEN %(again)s THEN now.ts + %(delay)s * interval '1 second' END,
					completed_at = CASE WHEN %(again)s THEN NULL ELSE now.ts END
				FROM now WHERE t.name = %(task)s
				RETURNING t.name, 'running'::text AS was, t.status, t.attempts, t.not_before
			)
			{_log_sql("moved", "%(instance)s", ", 'attempt', s.attempts, 'error', %(error)s::text, 'not_before', s.not_before")}
			""",
			{
				"task": task,
				"instance": instance,
				"status": "pending" if again else "failed",
				"error": error,
				"again": again,
				"delay": delay,
			},
		)
		_release(cur, task, instance)
		return "pending" if again else "failed"

	return _savepoint(cur, "aether_fail", run)


def cancel(cur, task: str, reason: str | None = None) -> str:
	"""Cancel a task that has not ended; returns the status it had. A running task's instance lets go
	of it (its late complete or fail is refused)."""
	values.name(task, "task")

	def run():
		cur.execute(f"SELECT status, assigned_to FROM {TASKS} WHERE name = %s FOR UPDATE", (task,))
		row = cur.fetchone()
		if row is None:
			raise UnknownTask(f"there is no agent task {values.shown(task)}")
		status, assigned_to = row
		check_transition(status, "cancelled")
		cur.execute(
			f"""
			UPDATE {TASKS} SET status = 'cancelled', completed_at = {NOW}, lease_expires_at = NULL,
				modified = {NOW}, error_message = coalesce(%s, error_message)
			WHERE name = %s
			""",
			(_error_text(reason) if reason else None, task),
		)
		if status == "running" and assigned_to:
			log_transition(cur, task, assigned_to, status, "cancelled", reason=reason)
			_release(cur, task, assigned_to)
		return status

	return _savepoint(cur, "aether_cancel", run)


def approve(cur, task: str) -> str | None:
	"""A task awaiting approval was approved: ready, or pending until its not_before. Returns its new
	status (None when it was not awaiting approval: nothing changes)."""
	cur.execute(
		f"""
		UPDATE {TASKS} SET modified = {NOW},
			status = CASE WHEN not_before > {NOW} THEN 'pending' ELSE 'ready' END
		WHERE name = %s AND status = 'awaiting_approval'
		RETURNING status
		""",
		(task,),
	)
	row = cur.fetchone()
	return row[0] if row else None


def promote(cur) -> int:
	"""Due pending tasks that need no approval (or have one) become ready; returns how many. (Claims
	take due pending tasks anyway: this keeps Desk's board true.)"""
	cur.execute(
		f"""
		UPDATE {TASKS} SET status = 'ready', modified = {NOW}
		WHERE status = 'pending' AND (not_before IS NULL OR not_before <= {NOW})
			AND (requires_approval = 0 OR approved_at IS NOT NULL)
		"""
	)
	return cur.rowcount


# --- rescue ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rescued:
	retried: list[str]  # back to pending, attempt counted
	failed: list[str]  # their last attempt's lease ran out
	offline: list[str]  # instances whose heartbeat stopped


def rescue_expired(
	cur,
	offline_after: float = DEFAULT_OFFLINE_AFTER_SECONDS,
	base: float = BACKOFF_BASE_SECONDS,
	cap: float = BACKOFF_CAP_SECONDS,
	limit: int = 10_000,
) -> Rescued:
	"""Running tasks whose lease ran out go back to pending after the backoff (their attempt was
	counted at the claim), or fail when it was their last; instances whose last heartbeat is older
	than `offline_after` seconds are marked offline. Skips rows others hold locked."""
	offline_after = _seconds(offline_after, "offline_after", 10**9)
	cur.execute(
		f"""
		SELECT name, assigned_to, attempts, max_attempts FROM {TASKS}
		WHERE status = 'running' AND lease_expires_at < {NOW}
		ORDER BY lease_expires_at LIMIT %s
		FOR UPDATE SKIP LOCKED
		""",
		(limit,),
	)
	rows = cur.fetchall()
	moves = []
	for name, assigned_to, attempts, max_attempts in rows:
		again = attempts < max_attempts
		delay = backoff_seconds(attempts, base, cap) if again else 0.0
		error = (
			f"lease expired: instance {assigned_to} stopped answering (attempt {attempts} of {max_attempts})"
		)
		moves.append((name, assigned_to or "", "pending" if again else "failed", delay, error))
	if moves:
		execute_values(
			cur,
			f"""
			WITH now AS (SELECT {NOW} AS ts),
			m (name, instance, status, delay, error) AS (VALUES %s),
			moved AS (
				UPDATE {TASKS} t SET status = m.status, error_message = m.error, lease_expires_at = NULL,
					modified = now.ts,
					assigned_to = CASE WHEN m.status = 'pending' THEN NULL ELSE t.assigned_to END,
					not_before = CASE WHEN m.status = 'pending' THEN now.ts + m.delay * interval '1 second' END,
					completed_at = CASE WHEN m.status = 'failed' THEN now.ts END
				FROM m, now WHERE t.name = m.name
				RETURNING t.name, m.instance, 'running'::text AS was, t.status, t.attempts
			),
			logged AS ({_log_sql("(SELECT * FROM moved WHERE instance <> '')", "s.instance", ", 'attempt', s.attempts, 'reason', 'lease expired'")}),
			freed AS (
				UPDATE {INSTANCES} i SET current_task = NULL, modified = now.ts,
					status = CASE WHEN i.status = 'running' THEN 'idle' ELSE i.status END
				FROM now WHERE i.current_task IN (SELECT name FROM moved)
			)
			SELECT 1
			""",
			moves,
			template="(%s, %s, %s, %s::float8, %s)",
			page_size=len(moves),
		)
	cur.execute(
		f"""
		UPDATE {INSTANCES} SET status = 'offline', modified = {NOW}
		WHERE status NOT IN ('offline', 'terminated', 'paused')
			AND last_heartbeat < {NOW} - %s * interval '1 second'
		RETURNING name
		""",
		(offline_after,),
	)
	offline = sorted(row[0] for row in cur.fetchall())
	return Rescued(
		retried=sorted(m[0] for m in moves if m[2] == "pending"),
		failed=sorted(m[0] for m in moves if m[2] == "failed"),
		offline=offline,
	)


# --- approvals ------------------------------------------------------------------------------------


def expire_approvals(cur) -> list[tuple[str, str, str | None]]:
	"""Pending approvals past their expires_at become expired, and the tasks awaiting them are
	cancelled. Returns (approval, task, the task's status before) for each."""
	cur.execute(
		f"""
		WITH now AS (SELECT {NOW} AS ts)
		UPDATE {APPROVALS} a SET status = 'expired', responded_at = now.ts, modified = now.ts
		FROM now
		WHERE a.name IN (
			SELECT name FROM {APPROVALS} WHERE status = 'pending' AND expires_at < (SELECT ts FROM now)
			FOR UPDATE SKIP LOCKED)
		RETURNING a.name, a.task
		"""
	)
	expired = cur.fetchall()
	result = []
	for approval, task in expired:
		cur.execute(f"SELECT status FROM {TASKS} WHERE name = %s", (task,))
		row = cur.fetchone()
		before = row[0] if row else None
		if before == "awaiting_approval":
			cancel(cur, task, f"approval {approval} expired unanswered")
		result.append((approval, task, before))
	return result


# --- instance memory and state -----------------------------------------------------------------------

_UNSET = object()


def update_instance(cur, instance: str, version: int, memory=_UNSET, state=_UNSET) -> int:
	"""Replace the instance's memory and/or state if it is still at `version` (what the writer read);
	returns the new version. A writer that read an older version gets StaleVersion and changes
	nothing: it reads again and merges."""
	values.name(instance, "instance")
	values.whole_number(version, "version", 0, 2**62)
	sets, args = [], {"instance": instance, "version": version}
	for field, value in (("memory", memory), ("state", state)):
		if value is _UNSET:
			continue
		if not isinstance(value, dict):
			raise values.InvalidValue(f"{field} must be a JSON object")
		values.check(value, field, MAX_RESULT_BYTES)
		sets.append(f"{field} = %({field})s::json")
		args[field] = json.dumps(value)
	if not sets:
		raise values.InvalidValue("give memory, state or both")

	def run():
		cur.execute(
			f"""
			UPDATE {INSTANCES} SET {", ".join(sets)}, version = version + 1, modified = {NOW}
			WHERE name = %(instance)s AND version = %(version)s
			RETURNING version
			""",
			args,
		)
		row = cur.fetchone()
		if row:
			return row[0]
		cur.execute(f"SELECT version FROM {INSTANCES} WHERE name = %s", (instance,))
		current = cur.fetchone()
		if current is None:
			raise UnknownInstance(f"there is no agent instance {values.shown(instance)}")
		raise StaleVersion(
			f"agent instance {instance} is at version {current[0]}, not {version}: read it again and retry"
		)

	return _savepoint(cur, "aether_update_instance", run)
