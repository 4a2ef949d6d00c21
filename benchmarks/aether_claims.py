"""Aether's task queue (cauldron.aether.tasks) at the SQL layer: claims per second with 1, 4 and 8
concurrent claimers, the time from ready to claimed, and double claims (there must be none).

Claims: N ready tasks (priorities 1-10) are drained by W claimers (threads, one connection each,
at Frappe's REPEATABLE READ, one agent instance each): claim a batch, commit, complete each task,
commit. A claim refused for contention (another claimer committed after this one's snapshot) is
retried in a new transaction and counted. Afterwards every task must be completed exactly once, by
the instance it was assigned to, with one claim interaction. The median of the runs is reported.

Ready -> claimed: W claimers poll (a claim every --poll-ms when they find nothing) while tasks are
inserted ready one at a time; the latency is the task's started_at minus its creation (both the
database's clock), so it is mostly the poll interval.

	python -m benchmarks.aether_claims [--tasks N] [--batch N] [--repeats N] [--quick]
"""

import argparse
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg2

from benchmarks import _common as common
from cauldron.aether import tasks

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from frappe_tables import create_site_tables  # noqa: E402

WORKERS = (1, 4, 8)


def _instances(conn, count: int) -> list[str]:
	with conn.cursor() as cur:
		cur.execute('DELETE FROM "tabAether Agent Instance"')
		cur.execute('DELETE FROM "tabAether Agent Definition"')
		definition = str(uuid.uuid4())
		cur.execute(
			"""INSERT INTO "tabAether Agent Definition" (name, creation, modified, agent_name, agent_type,
				is_active) VALUES (%s, localtimestamp, localtimestamp, 'Bench', 'custom', 1)""",
			(definition,),
		)
		names = [str(uuid.uuid4()) for _ in range(count)]
		for name in names:
			cur.execute(
				"""INSERT INTO "tabAether Agent Instance" (name, creation, modified, instance_name, definition,
					status, memory, state) VALUES (%s, localtimestamp, localtimestamp, %s, %s, 'idle', '{}', '{}')""",
				(name, name[:8], definition),
			)
	conn.commit()
	return names


def _fill(conn, count: int) -> None:
	with conn.cursor() as cur:
		cur.execute('TRUNCATE "tabAether Agent Task", aether.agent_interactions')
		cur.execute(
			"""INSERT INTO "tabAether Agent Task" (name, creation, modified, task_name, task_type, status,
				priority, max_attempts, parameters)
			SELECT gen_random_uuid()::text, localtimestamp - interval '1 day' + n * interval '1 millisecond',
				localtimestamp, 'Task ' || n, 'research', 'ready', 1 + n %% 10, 3, '{"n": 1}'
			FROM generate_series(1, %s) n""",
			(count,),
		)
	conn.commit()
	common.vacuum_analyze(conn, '"tabAether Agent Task"')


def drain(dsn: str, instances: list[str], batch: int, complete: bool = True) -> tuple[float, int, int]:
	"""(seconds, tasks claimed, contention retries) for the instances claiming until nothing is left;
	each completes what it claimed unless `complete` is False (claims alone)."""
	claimed = [0] * len(instances)
	retries = [0] * len(instances)
	errors: list[BaseException] = []
	start_line = threading.Barrier(len(instances) + 1)

	def work(n: int, instance: str) -> None:
		conn = psycopg2.connect(dsn)
		conn.set_session(isolation_level="REPEATABLE READ")  # as Frappe's connections
		try:
			with conn.cursor() as cur:
				start_line.wait()
				empty = 0
				while empty < 3:
					try:
						got = tasks.claim(cur, instance, limit=batch, lease=600)
						conn.commit()
					except tasks.Contention:
						conn.rollback()
						retries[n] += 1
						continue
					if not got:
						empty += 1
						continue
					empty = 0
					claimed[n] += len(got)
					if complete:
						for task in got:
							tasks.complete(cur, task.name, instance, {"ok": True})
						conn.commit()
		except BaseException as e:
			errors.append(e)
			start_line.abort()
		finally:
			conn.close()

	threads = [threading.Thread(target=work, args=(n, i)) for n, i in enumerate(instances)]
	for thread in threads:
		thread.start()
	start_line.wait()
	began = time.perf_counter()
	for thread in threads:
		thread.join()
	elapsed = time.perf_counter() - began
	if errors:
		raise errors[0]
	return elapsed, sum(claimed), sum(retries)


def double_claims(conn, expected: int, status: str) -> int:
	"""Tasks claimed more than once, or not in `status` (completed, or running for claims alone)."""
	with conn.cursor() as cur:
		cur.execute(
			"""SELECT count(*) FILTER (WHERE status <> %s OR attempts <> 1 OR assigned_to IS NULL),
				count(*) FROM "tabAether Agent Task" """,
			(status,),
		)
		bad, total = cur.fetchone()
		cur.execute(
			"""SELECT count(*) FROM (SELECT session_id FROM aether.agent_interactions
				WHERE content->>'to' = 'running' GROUP BY session_id HAVING count(*) > 1) twice"""
		)
		twice = cur.fetchone()[0]
	conn.rollback()
	assert total == expected, (total, expected)
	return bad + twice


def latency(dsn: str, conn, instances: list[str], count: int, poll: float, gap: float) -> list[float]:
	"""Seconds from a task's creation (ready) to its claim, for `count` tasks inserted one by one."""
	with conn.cursor() as cur:
		cur.execute('TRUNCATE "tabAether Agent Task", aether.agent_interactions')
	conn.commit()
	stop = threading.Event()
	errors: list[BaseException] = []

	def work(instance: str) -> None:
		c = psycopg2.connect(dsn)
		c.set_session(isolation_level="REPEATABLE READ")
		try:
			with c.cursor() as cur:
				while not stop.is_set():
					try:
						got = tasks.claim(cur, instance, limit=1, lease=600)
						c.commit()
					except tasks.Contention:
						c.rollback()
						continue
					for task in got:
						tasks.complete(cur, task.name, instance, {"ok": True})
						c.commit()
					if not got:
						time.sleep(poll)
		except BaseException as e:
			errors.append(e)
		finally:
			c.close()

	threads = [threading.Thread(target=work, args=(i,)) for i in instances]
	for thread in threads:
		thread.start()
	with conn.cursor() as cur:
		for n in range(count):
			cur.execute(
				f"""INSERT INTO "tabAether Agent Task" (name, creation, modified, task_name, task_type, status,
					priority, max_attempts, parameters)
				VALUES (gen_random_uuid()::text, {tasks.NOW.replace("statement_timestamp()", "clock_timestamp()")},
					localtimestamp, 'Latency ' || %s, 'research', 'ready', 5, 3, '{{}}')""",
				(n,),
			)
			conn.commit()
			time.sleep(gap)
		deadline = time.time() + 30
		while time.time() < deadline:
			cur.execute("""SELECT count(*) FROM "tabAether Agent Task" WHERE status <> 'completed'""")
			left = cur.fetchone()[0]
			conn.commit()
			if not left:
				break
			time.sleep(0.05)
	stop.set()
	for thread in threads:
		thread.join()
	if errors:
		raise errors[0]
	with conn.cursor() as cur:
		cur.execute(
			"""SELECT extract(epoch FROM started_at - creation)::float8 FROM "tabAether Agent Task"
			WHERE started_at IS NOT NULL"""
		)
		found = [row[0] for row in cur.fetchall()]
	conn.rollback()
	return found


def main() -> None:
	parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
	parser.add_argument("--tasks", type=int)
	parser.add_argument("--batch", type=int)
	parser.add_argument("--repeats", type=int)
	parser.add_argument("--latency-tasks", type=int)
	parser.add_argument("--poll-ms", type=float)
	args = common.arguments(
		parser,
		{"tasks": 100_000, "batch": 10, "repeats": 3, "latency_tasks": 300, "poll_ms": 10.0},
		{"tasks": 5_000, "repeats": 1, "latency_tasks": 60},
	)
	with common.server() as server_dsn, common.provisioned_database(server_dsn) as conn:
		common.describe_server(conn)
		dsn = conn.dsn
		with conn.cursor() as cur:
			create_site_tables(cur)
			tasks.ensure_indexes(cur)
		conn.commit()
		print(
			f"tasks: {args.tasks:,} ready, priorities 1-10; claim batch {args.batch}; {args.repeats} run(s) each"
		)

		total_double = runs_done = 0
		for complete, title in (
			(False, "claims alone (claim a batch, commit)"),
			(True, "claim a batch, commit, complete each task, commit"),
		):
			common.heading(f"{title}; REPEATABLE READ")
			base = None
			for workers in WORKERS:
				instances = _instances(conn, workers)
				runs = []
				for _ in range(args.repeats):
					_fill(conn, args.tasks)
					elapsed, claimed, retries = drain(dsn, instances, args.batch, complete)
					assert claimed == args.tasks, (claimed, args.tasks)
					total_double += double_claims(conn, args.tasks, "completed" if complete else "running")
					runs_done += 1
					runs.append((elapsed, retries))
				elapsed = common.median([r[0] for r in runs])
				per_second = args.tasks / elapsed
				base = base or per_second
				common.figure(
					f"{workers} claimer(s)",
					f"{per_second:,.0f} tasks/s ({common.duration(elapsed)}; x{per_second / base:.2f};"
					f" {statistics.median([r[1] for r in runs]):.0f} contention retries)",
				)
		common.heading("double claims")
		common.figure(f"tasks held twice over {runs_done} runs of {args.tasks:,} tasks", str(total_double))

		common.heading(f"ready -> claimed: 4 claimers polling every {args.poll_ms:g} ms when idle")
		instances = _instances(conn, 4)
		found = latency(dsn, conn, instances, args.latency_tasks, args.poll_ms / 1000, 0.02)
		found.sort()
		common.figure(f"claimed {len(found)} of {args.latency_tasks} tasks inserted 20 ms apart", "")
		common.figure("median", common.milliseconds(statistics.median(found)))
		common.figure("p95", common.milliseconds(found[int(len(found) * 0.95) - 1]))
		print("\nFigures from a shared machine: compare ratios, not absolute rates.")


if __name__ == "__main__":
	main()
