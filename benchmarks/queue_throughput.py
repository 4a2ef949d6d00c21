"""The durable work queue (cauldron.pg.queue): enqueue and claim/complete rates, in items per second.

Enqueue is measured as a document change does it (one `enqueue` in a transaction of its own, then
commit), as a re-enqueue of keys still pending (coalescing: an update of the pending row, no new
row), and as a bulk `enqueue_many` (a model switch enqueuing every document). Claim/complete is a
worker's loop: claim a batch, commit, complete it, commit; with one worker and with several at once
(threads, one connection each, SKIP LOCKED between them). The queue is emptied before every run;
the median of the runs is reported.

	python -m benchmarks.queue_throughput [--items N] [--claim-limit N] [--workers N] [--repeats N] [--quick]
"""

import argparse
import json
import threading

import psycopg2

from benchmarks import _common as common
from cauldron.pg import queue

Q = "bench.queue"


def _empty(conn) -> None:
	with conn.cursor() as cur:
		cur.execute("TRUNCATE command.work_queue")
	conn.commit()
	common.vacuum_analyze(conn, "command.work_queue")


def enqueue_one_per_transaction(conn, keys: list[str]) -> None:
	with conn.cursor() as cur:
		for key in keys:
			queue.enqueue(cur, Q, key, {"doctype": "Lore Document", "name": key})
			conn.commit()


def enqueue_in_one_transaction(conn, keys: list[str]) -> None:
	"""The statement's own cost: what an enqueue adds to the transaction of the change it belongs to."""
	with conn.cursor() as cur:
		for key in keys:
			queue.enqueue(cur, Q, key, {"doctype": "Lore Document", "name": key})
	conn.commit()


def insert_plain_in_one_transaction(conn, keys: list[str]) -> None:
	"""Baseline: a one-row INSERT of the same values into a table with a primary key only."""
	with conn.cursor() as cur:
		for key in keys:
			cur.execute(
				"INSERT INTO bench_plain (queue, key, payload) VALUES (%s, %s, %s::jsonb)",
				(Q, key, json.dumps({"doctype": "Lore Document", "name": key})),
			)
	conn.commit()


def enqueue_bulk(conn, keys: list[str]) -> None:
	with conn.cursor() as cur:
		queue.enqueue_many(cur, Q, [(key, {"reason": "model"}) for key in keys])
	conn.commit()


def _count(conn, status: str) -> int:
	with conn.cursor() as cur:
		cur.execute("SELECT count(*) FROM command.work_queue WHERE status = %s", (status,))
		n = cur.fetchone()[0]
	conn.rollback()
	return n


def drain(dsn: str, workers: int, limit: int) -> int:
	"""Claim and complete until the queue is empty, with `workers` connections at once; returns how
	many items were completed (checked against what was pending)."""
	done = [0] * workers
	errors: list[BaseException] = []

	def work(n: int) -> None:
		conn = psycopg2.connect(dsn)
		conn.set_session(isolation_level="REPEATABLE READ")  # as Frappe's connections
		try:
			with conn.cursor() as cur:
				empty = 0
				while empty < 3:
					items = queue.claim(cur, Q, f"bench-{n}", limit, lease=300)
					conn.commit()
					if not items:
						empty += 1
						continue
					empty = 0
					done[n] += len(queue.complete(cur, [i.id for i in items], f"bench-{n}"))
					conn.commit()
		except BaseException as e:
			errors.append(e)
		finally:
			conn.close()

	threads = [threading.Thread(target=work, args=(n,)) for n in range(workers)]
	for t in threads:
		t.start()
	for t in threads:
		t.join()
	if errors:
		raise errors[0]
	return sum(done)


def main() -> None:
	parser = argparse.ArgumentParser(
		description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
	)
	parser.add_argument("--items", type=int, help="items per run (default 20,000; quick 2,000)")
	parser.add_argument(
		"--bulk-items", type=int, help="items per enqueue_many run (default 100,000; quick 10,000)"
	)
	parser.add_argument("--claim-limit", type=int, help="items per claim (default 50)")
	parser.add_argument("--workers", type=int, help="concurrent workers in the second drain (default 2)")
	parser.add_argument("--repeats", type=int, help="runs of each; the median is reported (default 3)")
	args = common.arguments(
		parser,
		defaults={"items": 20_000, "bulk_items": 100_000, "claim_limit": 50, "workers": 2, "repeats": 3},
		quick={"items": 2_000, "bulk_items": 10_000, "repeats": 2},
	)
	keys = [f"LORE-DOC-{n:07d}" for n in range(args.items)]
	bulk_keys = [f"LORE-DOC-{n:07d}" for n in range(args.bulk_items)]
	runs: dict[str, list[float]] = {}
	counts: dict[str, int] = {}

	def record(name: str, count: int, elapsed: float) -> None:
		runs.setdefault(name, []).append(elapsed)
		counts[name] = count

	with common.server() as dsn, common.provisioned_database(dsn) as conn:
		common.describe_server(conn)
		dbname = conn.get_dsn_parameters()["dbname"]
		db_dsn = psycopg2.extensions.make_dsn(dsn, dbname=dbname)
		with conn.cursor() as cur:
			cur.execute(
				"CREATE TABLE bench_plain (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, queue text,"
				" key text, payload jsonb)"
			)
		conn.commit()
		for _ in range(args.repeats):
			_empty(conn)
			record(
				"enqueue statement inside the change's transaction",
				len(keys),
				common.seconds(lambda: enqueue_in_one_transaction(conn, keys)),
			)
			with conn.cursor() as cur:
				cur.execute("TRUNCATE bench_plain")
			conn.commit()
			record(
				"baseline: plain one-row INSERT inside a transaction",
				len(keys),
				common.seconds(lambda: insert_plain_in_one_transaction(conn, keys)),
			)
			_empty(conn)
			record(
				"enqueue, one per transaction",
				len(keys),
				common.seconds(lambda: enqueue_one_per_transaction(conn, keys)),
			)
			record(
				"re-enqueue of pending keys (coalesced), one per transaction",
				len(keys),
				common.seconds(lambda: enqueue_one_per_transaction(conn, keys)),
			)
			if _count(conn, "pending") != len(keys):
				raise RuntimeError("coalescing made duplicate items")
			elapsed, done = common.timed(lambda: drain(db_dsn, 1, args.claim_limit))
			if done != len(keys):
				raise RuntimeError(f"1 worker completed {done} of {len(keys)}")
			record(f"claim + complete, 1 worker, {args.claim_limit} a claim", done, elapsed)

			_empty(conn)
			enqueue_bulk(conn, keys)
			elapsed, done = common.timed(lambda: drain(db_dsn, args.workers, args.claim_limit))
			if done != len(keys) or _count(conn, "done") != len(keys):
				raise RuntimeError(f"{args.workers} workers completed {done} of {len(keys)}")
			record(
				f"claim + complete, {args.workers} workers at once, {args.claim_limit} a claim", done, elapsed
			)

			_empty(conn)
			record(
				"enqueue_many (bulk)", len(bulk_keys), common.seconds(lambda: enqueue_bulk(conn, bulk_keys))
			)
			# a claim with a large backlog: the partial index keeps it from reading the backlog
			with conn.cursor() as cur:
				common.vacuum_analyze(conn, "command.work_queue")
				claims = []
				for _ in range(20):
					claims.append(
						common.seconds(
							lambda: (queue.claim(cur, Q, "probe", args.claim_limit), conn.commit())
						)
					)
				runs.setdefault(
					f"one claim of {args.claim_limit} with {len(bulk_keys):,} pending", []
				).append(common.median(claims))

	common.heading(
		f"work queue throughput: {args.items:,} items a run, median of {args.repeats} runs"
		" (shared 2-core machine: figures vary with the other work on it)"
	)
	for name, elapsed in runs.items():
		if name in counts:
			median = common.median(elapsed)
			common.figure(name, f"{counts[name] / median:>10,.0f} items/s  ({common.duration(median)})")
		else:
			common.figure(name, common.milliseconds(common.median(elapsed)))
	one = counts["enqueue, one per transaction"] / common.median(runs["enqueue, one per transaction"])
	many = f"claim + complete, {args.workers} workers at once, {args.claim_limit} a claim"
	single = f"claim + complete, 1 worker, {args.claim_limit} a claim"
	common.figure(
		f"ratio {args.workers} workers / 1 worker",
		f"{common.median(runs[single]) / common.median(runs[many]):.2f}x",
	)
	common.figure("time per enqueue + commit (one per transaction)", common.milliseconds(1 / one))
	statement = common.median(runs["enqueue statement inside the change's transaction"]) / len(keys)
	plain = common.median(runs["baseline: plain one-row INSERT inside a transaction"]) / len(keys)
	common.figure("time an enqueue adds to a change's transaction", common.milliseconds(statement))
	common.figure("ratio enqueue / plain INSERT", f"{statement / plain:.2f}x")


if __name__ == "__main__":
	main()
