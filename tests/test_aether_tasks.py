"""Aether's task runtime (cauldron.aether.tasks) on the real server, over Frappe-shaped DocType tables
at Frappe's REPEATABLE READ: transitions, claims, leases, rescue, retries, approvals' expiry,
optimistic concurrency, and no task held by two instances at once."""

import threading
import uuid
from datetime import timedelta

import pytest
from frappe_tables import create_site_tables

from cauldron.aether import tasks
from cauldron.pg import provision, values


@pytest.fixture
def site(db, settings):
	conn = db.connect()
	with conn.cursor() as cur:
		create_site_tables(cur)
		provision.provision(cur, settings)
		tasks.ensure_indexes(cur)
	conn.commit()
	return db, conn


def local_now(cur):
	cur.execute(f"SELECT {tasks.NOW}")
	return cur.fetchone()[0]


def definition(cur, task_types: str = "", active: int = 1) -> str:
	name = str(uuid.uuid4())
	cur.execute(
		"""INSERT INTO "tabAether Agent Definition" (name, creation, modified, agent_name, agent_type,
			is_active, task_types) VALUES (%s, localtimestamp, localtimestamp, 'Researcher', 'researcher', %s, %s)""",
		(name, active, task_types),
	)
	return name


def instance(cur, definition_name: str, status: str = "idle") -> str:
	name = str(uuid.uuid4())
	cur.execute(
		"""INSERT INTO "tabAether Agent Instance" (name, creation, modified, instance_name, definition,
			status, memory, state) VALUES (%s, localtimestamp, localtimestamp, %s, %s, %s, '{}', '{}')""",
		(name, f"worker-{name[:6]}", definition_name, status),
	)
	return name


def task(
	cur,
	priority: int = 5,
	task_type: str = "research",
	order: int = 0,
	status: str = "ready",
	requires_approval: int = 0,
	approved: bool = False,
	not_before=None,
	definition_name: str | None = None,
	max_attempts: int = 3,
) -> str:
	name = str(uuid.uuid4())
	cur.execute(
		"""INSERT INTO "tabAether Agent Task" (name, creation, modified, task_name, task_type, status,
			priority, requires_approval, approved_at, not_before, definition, max_attempts, parameters)
		VALUES (%s, timestamp '2026-01-01' + %s * interval '1 second', localtimestamp, %s, %s, %s, %s, %s,
			%s, %s, %s, %s, '{"q": 1}')""",
		(
			name,
			order,
			f"Task {order}",
			task_type,
			status,
			priority,
			requires_approval,
			"2026-01-01 00:00:00" if approved else None,
			not_before,
			definition_name,
			max_attempts,
		),
	)
	return name


def row(cur, name: str, *columns: str) -> tuple:
	cur.execute(f'SELECT {", ".join(columns)} FROM "tabAether Agent Task" WHERE name = %s', (name,))
	return cur.fetchone()


def instance_row(cur, name: str, *columns: str) -> tuple:
	cur.execute(f'SELECT {", ".join(columns)} FROM "tabAether Agent Instance" WHERE name = %s', (name,))
	return cur.fetchone()


def transitions(cur, task_name: str) -> list[tuple]:
	cur.execute(
		"""SELECT content->>'from', content->>'to', agent_instance_id::text FROM aether.agent_interactions
		WHERE session_id = %s::uuid AND content->>'event' = 'task_transition' ORDER BY created_at, id""",
		(task_name,),
	)
	return cur.fetchall()


def test_the_state_machine_refuses_moves_it_does_not_have():
	tasks.check_transition("ready", "running")
	tasks.check_transition("running", "pending")  # a retry
	tasks.check_transition("failed", "pending")
	for old, new in [
		("completed", "running"),
		("cancelled", "completed"),
		("completed", "pending"),
		("awaiting_approval", "running"),
		("pending", "completed"),
		("failed", "running"),
	]:
		with pytest.raises(tasks.InvalidTransition, match=f"a {old} task cannot become {new}"):
			tasks.check_transition(old, new)
	with pytest.raises(tasks.InvalidTransition, match="is not a task status"):
		tasks.check_transition("ready", "approved")
	assert set(tasks.TRANSITIONS) == set(tasks.STATUSES)
	assert all(new in tasks.STATUSES for moves in tasks.TRANSITIONS.values() for new in moves)


def test_a_new_task_is_admitted_by_approval_and_time():
	from datetime import datetime

	now = datetime(2026, 5, 1, 12, 0)
	later = now + timedelta(hours=1)
	assert tasks.admitted_status(True, False, None, now) == "awaiting_approval"
	assert tasks.admitted_status(True, True, None, now) == "ready"
	assert tasks.admitted_status(False, False, later, now) == "pending"
	assert tasks.admitted_status(False, False, now - timedelta(seconds=1), now) == "ready"


def test_claims_take_the_highest_priority_then_the_oldest(site):
	_db, conn = site
	cur = conn.cursor()
	worker = instance(cur, definition(cur))
	old_low = task(cur, priority=7, order=1)
	new_high = task(cur, priority=1, order=5)
	old_high = task(cur, priority=1, order=2)
	middle = task(cur, priority=5, order=0)
	conn.commit()
	claimed = tasks.claim(cur, worker, limit=3, lease=60)
	conn.commit()
	assert [t.name for t in claimed] == [old_high, new_high, middle]
	assert [t.attempts for t in claimed] == [1, 1, 1]
	assert claimed[0].parameters == {"q": 1}
	assert [t.name for t in tasks.claim(cur, worker, limit=10)] == [old_low]
	assert tasks.claim(cur, worker, limit=10) == []


def test_a_claim_assigns_leases_timestamps_and_records_the_move(site):
	_db, conn = site
	cur = conn.cursor()
	worker = instance(cur, definition(cur))
	first = task(cur, priority=2)
	second = task(cur, priority=3)
	conn.commit()
	before = local_now(cur)
	conn.commit()
	claimed = tasks.claim(cur, worker, limit=2, lease=120)
	conn.commit()
	status, assigned, started, lease, attempts = row(
		cur, first, "status", "assigned_to", "started_at", "lease_expires_at", "attempts"
	)
	assert (status, assigned, attempts) == ("running", worker, 1)
	# the site's clock (America/New_York in these tables), not the server's UTC
	assert before <= started <= before + timedelta(seconds=30)
	assert lease == claimed[0].lease_expires_at
	assert timedelta(seconds=119) < lease - started <= timedelta(seconds=121)
	assert instance_row(cur, worker, "status", "current_task") == ("running", first)
	assert instance_row(cur, worker, "last_heartbeat")[0] >= before
	assert transitions(cur, first) == [("ready", "running", worker)]
	assert transitions(cur, second) == [("ready", "running", worker)]
	conn.commit()


def test_task_types_come_from_the_request_and_the_definition(site):
	_db, conn = site
	cur = conn.cursor()
	anyone = instance(cur, definition(cur))
	analyst = instance(cur, definition(cur, "analysis\nmonitoring"))
	research = task(cur, task_type="research", order=1)
	analysis = task(cur, task_type="analysis", order=2)
	monitoring = task(cur, task_type="monitoring", order=3)
	conn.commit()

	with pytest.raises(tasks.UnknownTaskType, match="unknown task type 'gossip'"):
		tasks.claim(cur, anyone, ["gossip"])
	with pytest.raises(tasks.TaskTypeNotAllowed, match="runs analysis, monitoring, not research"):
		tasks.claim(cur, analyst, ["research"])
	assert [t.name for t in tasks.claim(cur, analyst, ["monitoring"], limit=5)] == [monitoring]
	# no types named: the definition's
	assert [t.name for t in tasks.claim(cur, analyst, None, limit=5)] == [analysis]
	assert tasks.claim(cur, analyst, None, limit=5) == []
	# a definition that names none runs any
	assert [t.name for t in tasks.claim(cur, anyone, [], limit=5)] == [research]
	conn.commit()


def test_a_task_meant_for_a_definition_goes_only_to_its_instances(site):
	_db, conn = site
	cur = conn.cursor()
	mine, other = definition(cur), definition(cur)
	worker, stranger = instance(cur, mine), instance(cur, other)
	meant = task(cur, definition_name=mine)
	conn.commit()
	assert tasks.claim(cur, stranger, limit=5) == []
	assert [t.name for t in tasks.claim(cur, worker, limit=5)] == [meant]


def test_unapproved_scheduled_and_ended_tasks_are_not_claimed(site):
	_db, conn = site
	cur = conn.cursor()
	worker = instance(cur, definition(cur))
	now = local_now(cur)
	awaiting = task(cur, status="awaiting_approval", requires_approval=1)
	unapproved = task(cur, status="pending", requires_approval=1)  # written by SQL, not admitted
	approved = task(cur, status="ready", requires_approval=1, approved=True)
	later = task(cur, status="pending", not_before=now + timedelta(hours=1))
	due = task(cur, status="pending", not_before=now - timedelta(seconds=1), order=5)
	for status in ("running", "completed", "failed", "cancelled"):
		task(cur, status=status)
	conn.commit()
	claimed = [t.name for t in tasks.claim(cur, worker, limit=100)]
	assert sorted(claimed) == sorted([approved, due])
	assert transitions(cur, due) == [("pending", "running", worker)]
	assert row(cur, later, "status") == ("pending",)
	assert row(cur, awaiting, "status")[0] == "awaiting_approval"
	assert row(cur, unapproved, "status")[0] == "pending"


def test_unknown_offline_and_inactive_instances_cannot_claim(site):
	_db, conn = site
	cur = conn.cursor()
	ready = task(cur)
	offline = instance(cur, definition(cur), status="offline")
	paused = instance(cur, definition(cur), status="paused")
	retired = instance(cur, definition(cur, active=0))
	conn.commit()
	with pytest.raises(tasks.UnknownInstance, match="there is no agent instance"):
		tasks.claim(cur, str(uuid.uuid4()))
	with pytest.raises(tasks.InstanceUnavailable, match="is offline .* a heartbeat brings it back"):
		tasks.claim(cur, offline)
	with pytest.raises(tasks.InstanceUnavailable, match="is paused"):
		tasks.claim(cur, paused)
	with pytest.raises(tasks.InstanceUnavailable, match="is not active"):
		tasks.claim(cur, retired)
	with pytest.raises(values.InvalidValue, match="limit"):
		tasks.claim(cur, paused, limit=0)
	assert row(cur, ready, "status") == ("ready",)
	# a heartbeat without a task brings an offline instance back
	assert tasks.heartbeat(cur, None, offline) is None
	assert instance_row(cur, offline, "status") == ("idle",)
	assert [t.name for t in tasks.claim(cur, offline)] == [ready]


def test_heartbeat_complete_and_what_cannot_follow(site):
	_db, conn = site
	cur = conn.cursor()
	defn = definition(cur)
	worker, other = instance(cur, defn), instance(cur, defn)
	job, second = task(cur, order=1), task(cur, order=2)
	conn.commit()
	claimed = tasks.claim(cur, worker, limit=2, lease=30)
	conn.commit()
	lease = tasks.heartbeat(cur, job, worker, lease=600)
	assert lease > claimed[0].lease_expires_at + timedelta(seconds=500)
	with pytest.raises(tasks.NotHeld, match="held by another instance"):
		tasks.heartbeat(cur, job, other)
	with pytest.raises(tasks.NotHeld, match="held by another instance"):
		tasks.complete(cur, job, other, {"stolen": True})
	with pytest.raises(tasks.UnknownTask):
		tasks.complete(cur, str(uuid.uuid4()), worker, {})
	with pytest.raises(values.InvalidValue, match="larger than"):
		tasks.complete(cur, job, worker, {"text": "x" * (tasks.MAX_RESULT_BYTES + 1)})
	with pytest.raises(values.InvalidValue, match="not a number JSON can carry"):
		tasks.complete(cur, job, worker, {"score": float("nan")})
	assert row(cur, job, "status", "result") == ("running", None)

	tasks.complete(cur, job, worker, {"summary": "done", "n": [1, 2]})
	conn.commit()
	status, result, completed, lease = row(cur, job, "status", "result", "completed_at", "lease_expires_at")
	assert (status, result, lease) == ("completed", {"summary": "done", "n": [1, 2]}, None)
	assert completed is not None
	# the instance still holds the second task: it is current now
	assert instance_row(cur, worker, "status", "current_task") == ("running", second)
	with pytest.raises(tasks.InvalidTransition, match="is completed, not running"):
		tasks.complete(cur, job, worker, {})
	with pytest.raises(tasks.InvalidTransition, match="is completed, not running"):
		tasks.heartbeat(cur, job, worker)
	with pytest.raises(tasks.InvalidTransition, match="a completed task cannot become cancelled"):
		tasks.cancel(cur, job)
	assert tasks.claim(cur, other, limit=10) == []  # a completed task is never claimed again

	assert tasks.cancel(cur, second, "not needed") == "running"
	conn.commit()
	assert row(cur, second, "status", "error_message") == ("cancelled", "not needed")
	with pytest.raises(tasks.InvalidTransition, match="is cancelled, not running: it cannot complete"):
		tasks.complete(cur, second, worker, {})
	assert instance_row(cur, worker, "status", "current_task") == ("idle", None)
	assert transitions(cur, second) == [("ready", "running", worker), ("running", "cancelled", worker)]
	assert transitions(cur, job) == [("ready", "running", worker), ("running", "completed", worker)]


def test_failures_retry_with_backoff_until_the_last_attempt(site):
	_db, conn = site
	cur = conn.cursor()
	worker = instance(cur, definition(cur))
	job = task(cur, max_attempts=3)
	conn.commit()

	def due_now():
		cur.execute("UPDATE \"tabAether Agent Task\" SET not_before = localtimestamp - interval '1 day'")
		conn.commit()

	delays = []
	for attempt in (1, 2):
		(claimed,) = tasks.claim(cur, worker)
		assert claimed.attempts == attempt
		now = local_now(cur)
		assert tasks.fail(cur, job, worker, f"boom {attempt}") == "pending"
		conn.commit()
		status, not_before, assigned, error = row(
			cur, job, "status", "not_before", "assigned_to", "error_message"
		)
		assert (status, assigned, error) == ("pending", None, f"boom {attempt}")
		delays.append((not_before - now).total_seconds())
		assert tasks.claim(cur, worker) == []  # backing off
		due_now()
	# the queue's backoff: 10 s, then 20 s, each with up to 25 % jitter
	assert 10 <= delays[0] <= 12.5 + 1 and 20 <= delays[1] <= 25 + 1
	(claimed,) = tasks.claim(cur, worker)
	assert claimed.attempts == 3
	assert tasks.fail(cur, job, worker, "boom 3") == "failed"
	conn.commit()
	status, completed, assigned = row(cur, job, "status", "completed_at", "assigned_to")
	assert (status, assigned) == ("failed", worker) and completed is not None
	assert [(a, b) for a, b, _ in transitions(cur, job)] == [
		("ready", "running"),
		("running", "pending"),
		("pending", "running"),
		("running", "pending"),
		("pending", "running"),
		("running", "failed"),
	]

	other = task(cur, max_attempts=3)
	conn.commit()
	tasks.claim(cur, worker)
	assert tasks.fail(cur, other, worker, "bad input, do not retry", retry=False) == "failed"


def test_an_error_is_kept_storable_and_bounded(site):
	_db, conn = site
	cur = conn.cursor()
	worker = instance(cur, definition(cur))
	job = task(cur)
	conn.commit()
	tasks.claim(cur, worker)
	tasks.fail(cur, job, worker, "nul \x00 here " + "y" * 10_000, retry=False)
	(error,) = row(cur, job, "error_message")
	assert error.startswith("nul \\x00 here") and len(error) == tasks.MAX_ERROR_CHARS


def test_rescue_returns_expired_leases_and_marks_silent_instances_offline(site):
	_db, conn = site
	cur = conn.cursor()
	defn = definition(cur)
	dead, alive = instance(cur, defn), instance(cur, defn)
	retried = task(cur, order=1, max_attempts=2)
	last = task(cur, order=2, max_attempts=1)
	kept = task(cur, order=3)
	conn.commit()
	tasks.claim(cur, dead, limit=2, lease=60)
	tasks.claim(cur, alive, limit=1, lease=600)
	cur.execute(
		"""UPDATE "tabAether Agent Task" SET lease_expires_at = lease_expires_at - interval '1 hour'
		WHERE assigned_to = %s""",
		(dead,),
	)
	cur.execute(
		"""UPDATE "tabAether Agent Instance" SET last_heartbeat = last_heartbeat - interval '1 hour'
		WHERE name = %s""",
		(dead,),
	)
	conn.commit()
	rescued = tasks.rescue_expired(cur, offline_after=600)
	conn.commit()
	assert rescued == tasks.Rescued(retried=[retried], failed=[last], offline=[dead])
	status, attempts, assigned, not_before, error = row(
		cur, retried, "status", "attempts", "assigned_to", "not_before", "error_message"
	)
	assert (status, attempts, assigned) == ("pending", 1, None)
	assert not_before > local_now(cur) and "lease expired" in error
	assert row(cur, last, "status", "attempts", "assigned_to") == ("failed", 1, dead)
	assert row(cur, kept, "status", "assigned_to") == ("running", alive)
	assert instance_row(cur, dead, "status", "current_task") == ("offline", None)
	assert instance_row(cur, alive, "status", "current_task") == ("running", kept)
	assert transitions(cur, retried)[-1] == ("running", "pending", dead)
	assert transitions(cur, last)[-1] == ("running", "failed", dead)
	# the dead instance's late answer is refused, and nothing more to rescue
	with pytest.raises(tasks.NotHeld):
		tasks.complete(cur, retried, dead, {})
	assert tasks.rescue_expired(cur, offline_after=600) == tasks.Rescued([], [], [])
	# due again, the retried task is claimed with its attempt counted
	cur.execute('UPDATE "tabAether Agent Task" SET not_before = NULL WHERE name = %s', (retried,))
	(again,) = tasks.claim(cur, alive)
	assert (again.name, again.attempts) == (retried, 2)


def test_promote_and_approve_move_waiting_tasks_on(site):
	_db, conn = site
	cur = conn.cursor()
	now = local_now(cur)
	due = task(cur, status="pending", not_before=now - timedelta(minutes=1))
	later = task(cur, status="pending", not_before=now + timedelta(hours=1))
	awaiting = task(cur, status="awaiting_approval", requires_approval=1)
	scheduled = task(
		cur, status="awaiting_approval", requires_approval=1, not_before=now + timedelta(hours=1)
	)
	assert tasks.promote(cur) == 1
	assert row(cur, due, "status") == ("ready",) and row(cur, later, "status") == ("pending",)
	assert tasks.approve(cur, awaiting) == "ready"
	assert tasks.approve(cur, scheduled) == "pending"
	assert tasks.approve(cur, due) is None


def test_expired_approvals_cancel_their_tasks(site):
	_db, conn = site
	cur = conn.cursor()
	now = local_now(cur)
	awaiting = task(cur, status="awaiting_approval", requires_approval=1)
	fresh_task = task(cur, status="awaiting_approval", requires_approval=1)
	names = []
	for task_name, expires in (
		(awaiting, now - timedelta(minutes=1)),
		(fresh_task, now + timedelta(hours=1)),
	):
		name = str(uuid.uuid4())
		cur.execute(
			"""INSERT INTO "tabAether HITL Approval" (name, creation, modified, task, approval_type, status,
				expires_at) VALUES (%s, localtimestamp, localtimestamp, %s, 'task_execution', 'pending', %s)""",
			(name, task_name, expires),
		)
		names.append(name)
	conn.commit()
	assert tasks.expire_approvals(cur) == [(names[0], awaiting, "awaiting_approval")]
	cur.execute('SELECT name, status FROM "tabAether HITL Approval" ORDER BY status')
	assert dict(cur.fetchall()) == {names[0]: "expired", names[1]: "pending"}
	assert row(cur, awaiting, "status", "error_message") == (
		"cancelled",
		f"approval {names[0]} expired unanswered",
	)
	assert row(cur, fresh_task, "status") == ("awaiting_approval",)
	assert tasks.expire_approvals(cur) == []


def test_approval_expiry_hours_per_type():
	assert tasks.approval_expiry_hours("tool_use") == 1.0
	assert tasks.approval_expiry_hours("tool_use", {"tool_use": 0.25}) == 0.25
	with pytest.raises(tasks.TaskError, match="hours"):
		tasks.approval_expiry_hours("spending", {"spending": -1})


def test_instance_memory_and_state_use_optimistic_concurrency(site):
	db, conn = site
	cur = conn.cursor()
	worker = instance(cur, definition(cur))
	conn.commit()
	assert tasks.update_instance(cur, worker, 0, memory={"facts": 1}) == 1
	conn.commit()
	with pytest.raises(tasks.StaleVersion, match="is at version 1, not 0"):
		tasks.update_instance(cur, worker, 0, state={"step": "lost"})
	assert tasks.update_instance(cur, worker, 1, state={"step": 2}) == 2
	conn.commit()
	assert instance_row(cur, worker, "memory", "state", "version") == ({"facts": 1}, {"step": 2}, 2)
	with pytest.raises(tasks.UnknownInstance):
		tasks.update_instance(cur, str(uuid.uuid4()), 0, memory={})
	with pytest.raises(values.InvalidValue, match="memory must be a JSON object"):
		tasks.update_instance(cur, worker, 2, memory=[1])

	# two writers that read version 2 at once: exactly one wins, the other is told
	outcomes = []
	barrier = threading.Barrier(2)

	def write(n: int) -> None:
		c = db.connect()
		with c.cursor() as wcur:
			barrier.wait()
			try:
				outcomes.append(tasks.update_instance(wcur, worker, 2, memory={"writer": n}))
				c.commit()
			except (tasks.StaleVersion, tasks.Contention) as e:
				c.rollback()
				outcomes.append(type(e).__name__)
		c.close()

	threads = [threading.Thread(target=write, args=(n,)) for n in range(2)]
	for t in threads:
		t.start()
	for t in threads:
		t.join()
	assert sorted(map(str, outcomes))[0] == "3" and len(outcomes) == 2
	assert outcomes.count(3) == 1
	conn.rollback()
	assert instance_row(cur, worker, "version")[0] == 3


CLAIMERS = 8
TASKS = 5000


def test_no_task_is_held_by_two_instances_at_once(site):
	"""8 concurrent claimers over 5000 tasks (the benchmark does 100,000): every task claimed once."""
	db, conn = site
	cur = conn.cursor()
	defn = definition(cur)
	workers = [instance(cur, defn) for _ in range(CLAIMERS)]
	cur.execute(
		"""INSERT INTO "tabAether Agent Task" (name, creation, modified, task_name, task_type, status,
			priority, max_attempts, parameters)
		SELECT gen_random_uuid()::text, timestamp '2026-01-01' + n * interval '1 millisecond', localtimestamp,
			'Task ' || n, 'research', 'ready', 1 + n %% 10, 3, '{}'
		FROM generate_series(1, %s) n""",
		(TASKS,),
	)
	conn.commit()
	claimed: dict[str, list[str]] = {w: [] for w in workers}
	contention = [0]
	errors: list[BaseException] = []

	def work(worker: str) -> None:
		c = db.connect()
		try:
			with c.cursor() as wcur:
				while True:
					try:
						got = tasks.claim(wcur, worker, limit=10, lease=600)
						c.commit()
					except tasks.Contention:
						c.rollback()
						contention[0] += 1
						continue
					if not got:
						wcur.execute("""SELECT count(*) FROM "tabAether Agent Task" WHERE status = 'ready'""")
						left = wcur.fetchone()[0]
						c.commit()
						if not left:
							return
						continue
					claimed[worker].extend(t.name for t in got)
					for t in got:
						tasks.complete(wcur, t.name, worker, {"by": worker})
					c.commit()
		except BaseException as e:  # pragma: no cover - reported below
			errors.append(e)
		finally:
			c.close()

	threads = [threading.Thread(target=work, args=(w,)) for w in workers]
	for t in threads:
		t.start()
	for t in threads:
		t.join()
	assert errors == []
	every = [name for names in claimed.values() for name in names]
	assert len(every) == TASKS and len(set(every)) == TASKS
	assert sum(1 for names in claimed.values() if names) > 1  # the claimers did share the work
	cur.execute(
		"""SELECT count(*), count(DISTINCT t.name) FILTER (WHERE t.result->>'by' = t.assigned_to)
		FROM "tabAether Agent Task" t WHERE t.status = 'completed' AND t.attempts = 1"""
	)
	assert cur.fetchone() == (TASKS, TASKS)
	cur.execute(
		"""SELECT count(*) FROM (SELECT session_id FROM aether.agent_interactions
			WHERE content->>'to' = 'running' GROUP BY session_id HAVING count(*) > 1) twice"""
	)
	assert cur.fetchone()[0] == 0


def test_a_serialization_conflict_is_contention_and_leaves_nothing(site):
	"""At REPEATABLE READ a claim whose snapshot predates another claimer's commit is refused whole."""
	db, conn = site
	cur = conn.cursor()
	defn = definition(cur)
	first, second = instance(cur, defn), instance(cur, defn)
	job = task(cur)
	conn.commit()
	late = db.connect()
	lcur = late.cursor()
	lcur.execute("SELECT 1")  # its snapshot starts here
	tasks.claim(cur, first)
	conn.commit()
	with pytest.raises(tasks.Contention):
		tasks.claim(lcur, second)
	lcur.execute('SELECT current_task FROM "tabAether Agent Instance" WHERE name = %s', (second,))
	assert lcur.fetchone() == (None,)
	late.rollback()
	assert row(cur, job, "assigned_to") == (first,)


def test_a_definitions_tools_are_an_allow_list():
	from cauldron.aether import tools

	allowed = tools.allow_list(
		{"lore.search": True, "documents.read": ["Lore Document", "Lore Document"], "synapse.metrics": False}
	)
	assert allowed == {"lore.search": True, "documents.read": ["Lore Document"], "synapse.metrics": False}
	tools.check(allowed, "lore.search")
	tools.check(allowed, "documents.read", "Lore Document")
	refusals = [
		("synapse.metrics", None, "synapse.metrics is not in this agent's tools"),
		("interactions.record", None, "is not in this agent's tools"),
		("documents.read", "Aegis Threat", "not allowed on 'Aegis Threat'"),
		("documents.create", "Lore Document", "not allowed on 'Lore Document'"),
		("shell.exec", None, "unknown tool 'shell.exec'"),
		(["lore.search"], None, "unknown tool"),
	]
	for tool, doctype, message in refusals:
		with pytest.raises(tools.ToolRefused, match=message):
			tools.check(allowed, tool, doctype)
	assert tools.allow_list({}) == {} and tools.allow_list(None) == {}
	for bad, message in [
		({"web.browse": True}, "unknown tool 'web.browse'"),
		({"documents.read": "Lore Document"}, "takes a list of DocType names"),
		({"documents.read": ["a\x00b"]}, "NUL"),
		({"lore.search": "yes"}, "is true or false"),
		(["lore.search"], "must be an object"),
	]:
		with pytest.raises((tools.ToolError, values.InvalidValue), match=message):
			tools.allow_list(bad)


def test_the_seeds_statuses_are_migrated(site):
	_db, conn = site
	cur = conn.cursor()
	approved = task(cur, status="approved")
	rejected = task(cur, status="rejected")
	running = task(cur, status="running")
	assert tasks.migrate_statuses(cur) == 2
	assert [row(cur, n, "status")[0] for n in (approved, rejected, running)] == [
		"ready",
		"cancelled",
		"running",
	]
	assert tasks.migrate_statuses(cur) == 0
	assert set(tasks.SEED_STATUSES.values()) <= set(tasks.STATUSES)


def test_the_seed_view_shows_the_state_machines_statuses_as_they_are(site):
	_db, conn = site
	cur = conn.cursor()
	from cauldron.pg import views

	assert views.create_views(cur) == []
	names = {status: task(cur, status=status, order=n) for n, status in enumerate(tasks.STATUSES)}
	cur.execute(
		"SELECT id::text, status FROM aether.agent_tasks WHERE id::text = ANY(%s)", (list(names.values()),)
	)
	assert dict(cur.fetchall()) == {name: status for status, name in names.items()}
	conn.rollback()
