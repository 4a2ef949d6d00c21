"""The durable work queue (cauldron.pg.queue) on the real server, at Frappe's REPEATABLE READ."""

import threading
import time

import pytest

from cauldron.pg import queue
from cauldron.pg.queue import QueueError

Q = "test.work"


def _status(cur, id_):
	cur.execute("SELECT status, attempts, worker, last_error FROM command.work_queue WHERE id = %s", (id_,))
	return cur.fetchone()


def _due_now(cur, id_):
	"""Move a backed-off item's run_after to now (what waiting out the backoff would do)."""
	cur.execute("UPDATE command.work_queue SET run_after = statement_timestamp() WHERE id = %s", (id_,))


def test_enqueue_claim_complete(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	a = queue.enqueue(cur, Q, "doc-a", {"n": 1})
	b = queue.enqueue(cur, Q, "doc-b", {"n": 2}, priority=5)
	later = queue.enqueue(cur, Q, "doc-later", run_after=3600)
	conn.commit()

	items = queue.claim(cur, Q, "w1", limit=10, lease=60)
	conn.commit()
	# priority first, then oldest; an item not yet due is not handed out
	assert [(i.id, i.key, i.payload, i.attempts) for i in items] == [
		(b, "doc-b", {"n": 2}, 1),
		(a, "doc-a", {"n": 1}, 1),
	]
	assert queue.claim(cur, Q, "w2", limit=10) == []
	assert queue.claim(cur, "test.other", "w2", limit=10) == []
	assert queue.complete(cur, [a, b], "w1") == sorted([a, b])
	conn.commit()
	(s,) = queue.stats(cur, Q)
	assert (s.pending, s.due, s.running, s.failed, s.done) == (1, 0, 0, 0, 2)
	assert _status(cur, later)[0] == "pending"
	assert queue.purge(cur, 0, Q) == 2
	assert queue.stats(cur, Q)[0].done == 0


def test_rolled_back_change_enqueues_nothing(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	cur.execute("CREATE TABLE public.things (name text PRIMARY KEY)")
	conn.commit()
	cur.execute("INSERT INTO public.things VALUES ('x')")
	queue.enqueue(cur, Q, "x", {"change": "insert"})
	conn.rollback()
	cur.execute("INSERT INTO public.things VALUES ('y')")
	queue.enqueue(cur, Q, "y", {"change": "insert"})
	conn.commit()
	cur.execute("SELECT key FROM command.work_queue")
	assert cur.fetchall() == [("y",)]
	assert [i.key for i in queue.claim(cur, Q, "w", 10)] == ["y"]


def test_pending_key_coalesces_and_running_key_gets_a_fresh_item(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	first = queue.enqueue(cur, Q, "doc", {"v": 1}, run_after=60)
	again = queue.enqueue(cur, Q, "doc", {"v": 2})
	assert again == first
	cur.execute(
		"SELECT count(*), max(payload->>'v'), bool_and(run_after <= statement_timestamp()) FROM command.work_queue"
	)
	assert cur.fetchone() == (1, "2", True)  # newest payload, earliest due time
	conn.commit()

	(item,) = queue.claim(cur, Q, "w1", 10)
	conn.commit()
	fresh = queue.enqueue(cur, Q, "doc", {"v": 3})
	conn.commit()
	assert fresh != first
	# the new item waits while its key is being worked on, so one key never runs twice at once
	assert queue.claim(cur, Q, "w2", 10) == []
	conn.commit()
	assert queue.complete(cur, [item.id], "w1") == [item.id]
	conn.commit()
	(next_item,) = queue.claim(cur, Q, "w2", 10)
	assert (next_item.id, next_item.payload) == (fresh, {"v": 3})

	many = queue.enqueue_many(cur, Q, [("a", {"i": 1}), ("b", {}), ("a", {"i": 2})])
	assert many == 2
	cur.execute("SELECT payload FROM command.work_queue WHERE key = 'a'")
	assert cur.fetchall() == [({"i": 2},)]


def test_failures_back_off_then_park_and_retry(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	id_ = queue.enqueue(cur, Q, "flaky", {"x": 1}, max_attempts=3)
	conn.commit()

	(item,) = queue.claim(cur, Q, "w", 1)
	assert queue.fail(cur, item.id, "w", "provider timed out", base=10, cap=30, jitter=0) == "pending"
	cur.execute(
		"SELECT extract(epoch FROM run_after - statement_timestamp()) FROM command.work_queue WHERE id = %s",
		(id_,),
	)
	assert 9 < cur.fetchone()[0] <= 10  # base * 2**0
	assert _status(cur, id_) == ("pending", 1, None, "provider timed out")
	assert queue.claim(cur, Q, "w", 1) == []  # backing off

	_due_now(cur, id_)
	(item,) = queue.claim(cur, Q, "w", 1)
	assert item.attempts == 2
	assert queue.fail(cur, item.id, "w", "again", base=10, cap=15, jitter=0) == "pending"
	cur.execute(
		"SELECT extract(epoch FROM run_after - statement_timestamp()) FROM command.work_queue WHERE id = %s",
		(id_,),
	)
	assert 14 < cur.fetchone()[0] <= 15  # 10 * 2**1 = 20, capped at 15

	_due_now(cur, id_)
	(item,) = queue.claim(cur, Q, "w", 1)
	assert queue.fail(cur, item.id, "w", "gave up: \x00 bad") == "failed"
	status, attempts, _worker, error = _status(cur, id_)
	assert (status, attempts) == ("failed", 3)
	assert "gave up" in error and "\x00" not in error
	assert queue.claim(cur, Q, "w", 1) == []
	(s,) = queue.stats(cur, Q)
	assert (s.failed, s.pending, s.last_error) == (1, 0, error)
	assert [f["id"] for f in queue.failed_items(cur, Q)] == [id_]
	conn.commit()

	assert queue.retry(cur, [id_]) == [id_]
	assert _status(cur, id_)[:2] == ("pending", 0)
	(item,) = queue.claim(cur, Q, "w", 1)
	assert item.id == id_ and item.attempts == 1

	assert queue.backoff_seconds(1) == queue.BACKOFF_BASE_SECONDS
	assert queue.backoff_seconds(1000) == queue.BACKOFF_CAP_SECONDS


def test_failure_while_a_newer_change_waits_hands_over_to_it(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	queue.enqueue(cur, Q, "doc", {"v": 1})
	(item,) = queue.claim(cur, Q, "w", 1)
	newer = queue.enqueue(cur, Q, "doc", {"v": 2})
	assert queue.fail(cur, item.id, "w", "boom") == "superseded"
	cur.execute("SELECT id, status, last_error FROM command.work_queue")
	assert cur.fetchall() == [(newer, "pending", "boom")]

	# a parked item whose key has a pending one again is folded into it on retry
	(item,) = queue.claim(cur, Q, "w", 1)
	cur.execute("UPDATE command.work_queue SET max_attempts = 1 WHERE id = %s", (item.id,))
	assert queue.fail(cur, item.id, "w", "broken") == "failed"
	pending = queue.enqueue(cur, Q, "doc", {"v": 3}, run_after=600)
	assert queue.retry_failed(cur, Q) == [item.id]
	cur.execute("SELECT id, status, run_after <= statement_timestamp() FROM command.work_queue")
	assert cur.fetchall() == [(pending, "pending", True)]


def test_worker_killed_mid_batch_loses_nothing(provisioned):
	db, conn = provisioned
	cur = conn.cursor()
	ids = [queue.enqueue(cur, Q, f"doc-{n}") for n in range(5)]
	conn.commit()

	doomed = db.connect()
	dcur = doomed.cursor()
	claimed = queue.claim(dcur, Q, "doomed", limit=3, lease=0.5)
	doomed.commit()
	assert len(claimed) == 3
	assert queue.complete(dcur, [claimed[0].id], "doomed") == [claimed[0].id]
	doomed.commit()
	doomed.close()  # killed: two items leased, never answered

	others = queue.claim(cur, Q, "w2", limit=10, lease=60)
	conn.commit()
	assert {i.id for i in others} == set(ids) - {c.id for c in claimed}
	time.sleep(0.6)
	reclaimed = queue.claim(cur, Q, "w2", limit=10, lease=60)
	conn.commit()
	assert {i.id for i in reclaimed} == {c.id for c in claimed[1:]}
	assert all(i.attempts == 2 for i in reclaimed)
	# the dead worker's late answer is refused: the items are w2's now
	assert queue.complete(cur, [i.id for i in reclaimed], "doomed") == []
	assert queue.fail(cur, reclaimed[0].id, "doomed", "late") is None
	assert queue.extend(cur, [i.id for i in reclaimed], "doomed") == []
	assert queue.extend(cur, [i.id for i in reclaimed], "w2", 60) == sorted(i.id for i in reclaimed)
	done = queue.complete(cur, [i.id for i in others + reclaimed], "w2")
	assert done == sorted(set(ids) - {claimed[0].id})
	conn.commit()
	assert queue.stats(cur, Q)[0].done == 5


def test_item_whose_workers_keep_dying_is_parked(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	id_ = queue.enqueue(cur, Q, "poison", max_attempts=2)
	queue.fail(cur, -1, "nobody", "no such item")  # an id nobody holds: nothing happens
	conn.commit()
	for _ in range(2):
		assert [i.id for i in queue.claim(cur, Q, "w", 1, lease=0.05)] == [id_]
		conn.commit()
		time.sleep(0.1)
	assert queue.claim(cur, Q, "w", 1) == []
	status, attempts, _worker, error = _status(cur, id_)
	assert (status, attempts) == ("failed", 2)
	assert "lease expired 2 times" in error
	(s,) = queue.stats(cur, Q)
	assert (s.failed, s.running, s.expired) == (1, 0, 0)


def test_concurrent_claims_never_overlap(provisioned):
	db, conn = provisioned
	cur = conn.cursor()
	total = 300
	queue.enqueue_many(cur, Q, [(f"doc-{n}", {"n": n}) for n in range(total)])
	conn.commit()

	seen: dict[str, list[int]] = {}
	errors = []

	def work(name):
		wconn = db.connect()  # REPEATABLE READ, as in Frappe
		try:
			wcur = wconn.cursor()
			mine = []
			empty = 0
			while empty < 5:
				items = queue.claim(wcur, Q, name, limit=7, lease=60)
				wconn.commit()
				if not items:
					empty += 1
					time.sleep(0.01)
					continue
				empty = 0
				mine.extend(i.id for i in items)
				assert queue.complete(wcur, [i.id for i in items], name) == sorted(i.id for i in items)
				wconn.commit()
			seen[name] = mine
		except Exception as e:  # reported below
			errors.append(e)
		finally:
			wconn.close()

	threads = [threading.Thread(target=work, args=(f"w{n}",)) for n in range(4)]
	for t in threads:
		t.start()
	for t in threads:
		t.join()
	assert errors == []
	claimed = [id_ for ids in seen.values() for id_ in ids]
	assert len(claimed) == total
	assert len(set(claimed)) == total
	(s,) = queue.stats(cur, Q)
	assert (s.done, s.pending, s.running) == (total, 0, 0)


def test_enqueue_never_waits_for_a_claim_of_other_keys(provisioned):
	db, conn = provisioned
	cur = conn.cursor()
	queue.enqueue(cur, Q, "a")
	queue.enqueue(cur, Q, "b")
	conn.commit()
	worker = db.connect()
	wcur = worker.cursor()
	assert [i.key for i in queue.claim(wcur, Q, "w", 1)] == ["a"]  # uncommitted: row locks held
	writer = db.connect()
	xcur = writer.cursor()
	xcur.execute("SET lock_timeout = '2s'")
	queue.enqueue(xcur, Q, "c")
	queue.enqueue(xcur, Q, "b", {"again": True})  # coalesces into a pending row nobody holds
	writer.commit()
	# a second claimer skips the locked row instead of waiting for it
	assert [i.key for i in queue.claim(cur, Q, "w2", 5)] == ["b", "c"]
	worker.rollback()


def test_bad_arguments_are_clear_errors(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	with pytest.raises(QueueError, match="queue key"):
		queue.enqueue(cur, Q, "")
	with pytest.raises(QueueError, match="payload must be an object"):
		queue.enqueue(cur, Q, "k", ["not", "an", "object"])
	with pytest.raises(QueueError, match="run_after"):
		queue.enqueue(cur, Q, "k", run_after=float("nan"))
	with pytest.raises(QueueError, match="lease"):
		queue.claim(cur, Q, "w", 1, lease=0)
	cur.execute("SELECT count(*) FROM command.work_queue")
	assert cur.fetchone()[0] == 0


def test_serialization_conflict_in_claim_returns_nothing_and_leaves_the_transaction_usable(provisioned):
	db, conn = provisioned
	cur = conn.cursor()
	id_ = queue.enqueue(cur, Q, "doc")
	conn.commit()
	late = db.connect()
	lcur = late.cursor()
	lcur.execute("SELECT 1")  # its REPEATABLE READ snapshot starts now
	assert [i.id for i in queue.claim(cur, Q, "fast", 1)] == [id_]
	conn.commit()
	assert queue.claim(lcur, Q, "late", 1) == []
	lcur.execute("SELECT 1")
	assert lcur.fetchone() == (1,)
	late.commit()
	# in a new transaction the late worker sees the item taken
	assert queue.claim(lcur, Q, "late", 1) == []
	assert queue.complete(lcur, [id_], "late") == []
