"""Aether's task queue through REST: claims per second with 1, 4 and 8 concurrent agents calling
cauldron.api.aether.claim (and complete) over HTTP against a running bench web server, the time
from ready to claimed, and double claims (there must be none).

Runs inside a bench, with the bench's Python, from its sites folder, as the bench's user: it makes
an Agent Operator user with an API key, a definition, the instances and the tasks through Frappe
(tasks with one INSERT ... SELECT), and removes them afterwards:

	cd BENCH/sites && ../env/bin/python /path/to/cauldron/benchmarks/aether_claims_rest.py \
		--site SITE [--url http://127.0.0.1:8000] [--tasks 2000] [--batch 10] [--quick]

Each agent is a thread with its own HTTP connection and agent instance: claim a batch (one request),
then, unless claims alone are measured, complete each task (one request each). A claim the server
refuses for contention (409 after its own retries) is retried and counted. Afterwards every task
must have been claimed exactly once. Ready -> claimed: 4 agents poll (a claim every --poll-ms when
they find nothing) while tasks are inserted ready one at a time (--gap-ms apart: below what
the agents can take, or the figure is the backlog's); the latency is the task's
started_at minus its creation (both the database's clock).
"""

import argparse
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

import frappe
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import _common as common  # noqa: E402
from cauldron import db  # noqa: E402
from cauldron.aether import tasks  # noqa: E402

USER = "cauldron-bench-agent@example.com"
TASK_TYPE = "custom"
WORKERS = (1, 4, 8)


def set_up(instances: int) -> tuple[str, str, list[str]]:
	"""(API token, definition, instances) of a fresh Agent Operator."""
	if frappe.db.exists("User", USER):
		frappe.delete_doc("User", USER, force=True, ignore_permissions=True)
	user = frappe.get_doc(
		{
			"doctype": "User",
			"email": USER,
			"first_name": "Bench Agent",
			"send_welcome_email": 0,
			"user_type": "System User",
			"roles": [{"role": "Agent Operator"}],
		}
	)
	user.api_key = frappe.generate_hash(length=15)
	secret = frappe.generate_hash(length=15)
	user.api_secret = secret
	user.insert(ignore_permissions=True)
	definition = frappe.get_doc(
		{
			"doctype": "Aether Agent Definition",
			"agent_name": f"Bench {uuid.uuid4().hex[:6]}",
			"agent_type": "custom",
			"is_active": 1,
			"task_types": TASK_TYPE,
		}
	).insert(ignore_permissions=True)
	names = [
		frappe.get_doc(
			{
				"doctype": "Aether Agent Instance",
				"instance_name": f"bench-{n}",
				"definition": definition.name,
				"status": "idle",
			}
		)
		.insert(ignore_permissions=True)
		.name
		for n in range(instances)
	]
	frappe.db.commit()
	return f"{user.api_key}:{secret}", definition.name, names


def others_waiting() -> int:
	cur = db.cursor()
	cur.execute(
		"""SELECT count(*) FROM "tabAether Agent Task" WHERE task_type = %s AND status IN ('pending', 'ready')""",
		(TASK_TYPE,),
	)
	return cur.fetchone()[0]


def fill(definition: str, count: int) -> None:
	cur = db.cursor()
	cur.execute("""DELETE FROM "tabAether Agent Task" WHERE definition = %s""", (definition,))
	cur.execute(
		"""INSERT INTO "tabAether Agent Task" (name, creation, modified, owner, modified_by, docstatus, idx,
			task_name, task_type, status, priority, attempts, max_attempts, requires_approval, definition,
			parameters)
		SELECT gen_random_uuid()::text, localtimestamp - interval '1 day' + n * interval '1 millisecond',
			localtimestamp, 'Administrator', 'Administrator', 0, 0, 'Bench ' || n, %s, 'ready', 1 + n %% 10,
			0, 3, 0, %s, '{"n": 1}'
		FROM generate_series(1, %s) n""",
		(TASK_TYPE, definition, count),
	)
	frappe.db.commit()


class Agent:
	def __init__(self, url: str, site: str, token: str, instance: str):
		self.url = url.rstrip("/") + "/api/method/cauldron.api.aether."
		self.instance = instance
		self.http = requests.Session()
		self.http.headers.update({"Authorization": f"token {token}", "X-Frappe-Site-Name": site})
		self.conflicts = 0

	def call(self, method: str, **args):
		response = self.http.post(self.url + method, json=args, timeout=120)
		if response.status_code == 409 and method == "claim":
			self.conflicts += 1
			return None
		if response.status_code != 200:
			raise RuntimeError(f"{method}: {response.status_code} {response.text[:500]}")
		return response.json()["message"]

	def claim(self, limit: int):
		return self.call("claim", instance=self.instance, task_types=[TASK_TYPE], limit=limit, lease=600)

	def complete(self, task: str):
		self.call("complete", task=task, instance=self.instance, result={"ok": True})


def drain(agents: list[Agent], batch: int, complete: bool) -> tuple[float, int, int]:
	claimed = [0] * len(agents)
	errors: list[BaseException] = []
	start_line = threading.Barrier(len(agents) + 1)
	for agent in agents:
		agent.conflicts = 0

	def work(n: int, agent: Agent) -> None:
		try:
			start_line.wait()
			empty = 0
			while empty < 2:
				got = agent.claim(batch)
				if got is None:
					continue
				if not got:
					empty += 1
					continue
				empty = 0
				claimed[n] += len(got)
				if complete:
					for task in got:
						agent.complete(task["name"])
		except BaseException as e:
			errors.append(e)
			start_line.abort()

	threads = [threading.Thread(target=work, args=(n, a)) for n, a in enumerate(agents)]
	for thread in threads:
		thread.start()
	start_line.wait()
	began = time.perf_counter()
	for thread in threads:
		thread.join()
	elapsed = time.perf_counter() - began
	if errors:
		raise errors[0]
	return elapsed, sum(claimed), sum(a.conflicts for a in agents)


def double_claims(definition: str, expected: int, status: str) -> int:
	frappe.db.commit()
	cur = db.cursor()
	cur.execute(
		"""SELECT count(*) FILTER (WHERE status <> %s OR attempts <> 1 OR assigned_to IS NULL), count(*)
		FROM "tabAether Agent Task" WHERE definition = %s""",
		(status, definition),
	)
	bad, total = cur.fetchone()
	cur.execute(
		"""SELECT count(*) FROM (SELECT i.session_id FROM aether.agent_interactions i
			JOIN "tabAether Agent Task" t ON t.name = i.session_id::text
			WHERE t.definition = %s AND i.content->>'to' = 'running'
			GROUP BY i.session_id HAVING count(*) > 1) twice""",
		(definition,),
	)
	twice = cur.fetchone()[0]
	frappe.db.commit()
	assert total == expected, (total, expected)
	return bad + twice


def latency(agents: list[Agent], definition: str, count: int, poll: float, gap: float) -> list[float]:
	fill(definition, 0)
	stop = threading.Event()
	errors: list[BaseException] = []

	def work(agent: Agent) -> None:
		try:
			while not stop.is_set():
				got = agent.claim(1)
				for task in got or []:
					agent.complete(task["name"])
				if not got:
					time.sleep(poll)
		except BaseException as e:
			errors.append(e)

	threads = [threading.Thread(target=work, args=(a,)) for a in agents]
	for thread in threads:
		thread.start()
	cur = db.cursor()
	now = tasks.NOW.replace("statement_timestamp()", "clock_timestamp()")
	for n in range(count):
		cur.execute(
			f"""INSERT INTO "tabAether Agent Task" (name, creation, modified, owner, modified_by, docstatus, idx,
				task_name, task_type, status, priority, attempts, max_attempts, requires_approval, definition,
				parameters)
			VALUES (gen_random_uuid()::text, {now}, localtimestamp, 'Administrator', 'Administrator', 0, 0,
				'Latency ' || %s, %s, 'ready', 5, 0, 3, 0, %s, '{{}}')""",
			(n, TASK_TYPE, definition),
		)
		frappe.db.commit()
		time.sleep(gap)
	deadline = time.time() + 60
	while time.time() < deadline:
		cur = db.cursor()
		cur.execute(
			"""SELECT count(*) FROM "tabAether Agent Task" WHERE definition = %s AND status <> 'completed'""",
			(definition,),
		)
		left = cur.fetchone()[0]
		frappe.db.commit()
		if not left:
			break
		time.sleep(0.05)
	stop.set()
	for thread in threads:
		thread.join()
	if errors:
		raise errors[0]
	cur = db.cursor()
	cur.execute(
		"""SELECT extract(epoch FROM started_at - creation)::float8 FROM "tabAether Agent Task"
		WHERE definition = %s AND started_at IS NOT NULL""",
		(definition,),
	)
	found = [row[0] for row in cur.fetchall()]
	frappe.db.commit()
	return found


def clean_up(definition: str, instances: list[str]) -> None:
	cur = db.cursor()
	cur.execute("""DELETE FROM "tabAether Agent Task" WHERE definition = %s""", (definition,))
	cur.execute("DELETE FROM aether.agent_interactions WHERE agent_instance_id::text = ANY(%s)", (instances,))
	cur.execute("""DELETE FROM "tabAether Agent Instance" WHERE name = ANY(%s)""", (instances,))
	cur.execute("""DELETE FROM "tabAether Agent Definition" WHERE name = %s""", (definition,))
	frappe.db.commit()
	frappe.delete_doc("User", USER, force=True, ignore_permissions=True)
	frappe.db.commit()


def main() -> None:
	parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
	parser.add_argument("--site", required=True)
	parser.add_argument("--url", default="http://127.0.0.1:8000")
	parser.add_argument("--tasks", type=int, default=2000)
	parser.add_argument("--batch", type=int, default=10)
	parser.add_argument("--latency-tasks", type=int, default=200)
	parser.add_argument("--poll-ms", type=float, default=10.0)
	parser.add_argument("--gap-ms", type=float, default=100.0, help="between the latency tasks' inserts")
	parser.add_argument("--latency-only", action="store_true")
	parser.add_argument("--quick", action="store_true")
	args = parser.parse_args()
	if args.quick:
		args.tasks, args.latency_tasks = 300, 40

	frappe.init(site=args.site)
	frappe.connect()
	frappe.set_user("Administrator")
	token, definition, instances = set_up(max(WORKERS))
	try:
		if others_waiting():
			raise SystemExit(f"other {TASK_TYPE} tasks wait in this site: the agents would claim them")
		agents = [Agent(args.url, args.site, token, name) for name in instances]
		for attempt in range(60):  # the server is up (it may be restarting) and takes the key
			try:
				agents[0].call("heartbeat", instance=instances[0])
				break
			except requests.ConnectionError:
				if attempt == 59:
					raise
				time.sleep(1)
		print(
			f"server: {args.url} (site {args.site}); {args.tasks:,} ready tasks a run, claim batch {args.batch}"
		)
		total_double = runs = 0
		for complete, title in (
			(False, "claims alone (one request claims a batch)"),
			(True, "claim a batch, then complete each task (one request each)"),
		)[: 0 if args.latency_only else 2]:
			common.heading(f"{title}; through REST")
			base = None
			for workers in WORKERS:
				fill(definition, args.tasks)
				elapsed, claimed, conflicts = drain(agents[:workers], args.batch, complete)
				assert claimed == args.tasks, (claimed, args.tasks)
				total_double += double_claims(definition, args.tasks, "completed" if complete else "running")
				runs += 1
				per_second = args.tasks / elapsed
				base = base or per_second
				requests_made = args.tasks // args.batch + (args.tasks if complete else 0)
				common.figure(
					f"{workers} agent(s)",
					f"{per_second:,.0f} tasks/s ({common.duration(elapsed)}; x{per_second / base:.2f};"
					f" {requests_made / elapsed:,.0f} requests/s; {conflicts} claims refused for contention)",
				)
		if runs:
			common.heading("double claims")
			common.figure(f"tasks held twice over {runs} runs of {args.tasks:,} tasks", str(total_double))
		common.heading(f"ready -> claimed: 4 agents polling every {args.poll_ms:g} ms when idle")
		found = sorted(
			latency(agents[:4], definition, args.latency_tasks, args.poll_ms / 1000, args.gap_ms / 1000)
		)
		common.figure(
			f"claimed {len(found)} of {args.latency_tasks} tasks inserted {args.gap_ms:g} ms apart", ""
		)
		common.figure("median", common.milliseconds(statistics.median(found)))
		common.figure("p95", common.milliseconds(found[max(int(len(found) * 0.95) - 1, 0)]))
		print("\nFigures from a shared machine: compare ratios, not absolute rates.")
	finally:
		clean_up(definition, instances)
		frappe.destroy()


if __name__ == "__main__":
	main()
