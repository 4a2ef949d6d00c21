"""Bench tier: Aether's runtime through Frappe. Agents claim, heartbeat, complete and fail tasks over
real REST calls as the user of their API key; bad calls are clear 4xx and change nothing; a task
that requires approval gets its HITL Approval, assigned to the definition's approvers, and the
answer (or its expiry, by the scheduled job) moves the task on or cancels it."""

import json
from datetime import timedelta

import frappe
from frappe.tests.utils import FrappeTestCase
from frappe.utils import now_datetime

from cauldron import db, hooks
from cauldron.aether import jobs, tasks
from cauldron.tests.factories import delete_created_since, drop_user, make, rest, user_with_roles

OPERATOR = "cauldron-runtime-operator@example.com"
APPROVER = "cauldron-runtime-approver@example.com"
OUTSIDER = "cauldron-runtime-outsider@example.com"
ANALYST = "cauldron-runtime-analyst@example.com"
API = "/api/method/cauldron.api.aether."


def messages(response) -> str:
	raw = (response.json or {}).get("_server_messages")
	return " ".join(json.loads(m)["message"] for m in json.loads(raw)) if raw else ""


class TestAetherRuntime(FrappeTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.started = now_datetime()
		cls.operator = user_with_roles(OPERATOR, "Agent Operator")
		cls.approver = user_with_roles(APPROVER, "Agent Operator")
		cls.outsider = user_with_roles(OUTSIDER, "Agent Operator")
		cls.analyst = user_with_roles(ANALYST, "Synapse Analyst")
		frappe.db.commit()

	@classmethod
	def tearDownClass(cls):
		frappe.set_user("Administrator")
		delete_created_since(cls.started)
		for email in (OPERATOR, APPROVER, OUTSIDER, ANALYST):
			drop_user(email)
		frappe.db.commit()
		super().tearDownClass()

	def setUp(self):
		frappe.set_user("Administrator")
		# Task types no other test makes, so its instances claim only this test's tasks.
		self.definition = make("Aether Agent Definition", task_types="monitoring\nremediation").name
		self.instance = make("Aether Agent Instance", definition=self.definition).name
		frappe.db.commit()

	def tearDown(self):
		frappe.set_user("Administrator")

	def call(self, method: str, token: str | None = None, **args):
		return rest("post", API + method, token or self.operator, args)

	def task(self, **fields):
		task = make("Aether Agent Task", definition=self.definition, task_type="monitoring", **fields)
		frappe.db.commit()
		return task.name

	def status(self, task: str) -> tuple:
		frappe.db.commit()  # a new snapshot: the REST call committed in its own connection
		return frappe.db.get_value("Aether Agent Task", task, ["status", "assigned_to", "attempts"])

	def test_an_agent_claims_heartbeats_and_completes_over_rest(self):
		low = self.task(priority=9)
		high = self.task(priority=1)
		response = self.call("claim", instance=self.instance, task_types=["monitoring"], limit=1, lease=60)
		self.assertEqual(response.status_code, 200, response.data[:2000])
		(claimed,) = response.json["message"]
		self.assertEqual((claimed["name"], claimed["attempts"]), (high, 1))
		self.assertEqual(self.status(high), ("running", self.instance, 1))
		self.assertEqual(
			frappe.db.get_value("Aether Agent Instance", self.instance, ["status", "current_task"]),
			("running", high),
		)

		beat = self.call("heartbeat", instance=self.instance, task=high, lease=900)
		self.assertEqual(beat.status_code, 200, beat.data[:2000])
		frappe.db.commit()
		lease = frappe.db.get_value("Aether Agent Task", high, "lease_expires_at")
		self.assertGreater(lease, now_datetime() + timedelta(seconds=800))

		done = self.call("complete", task=high, instance=self.instance, result={"summary": "ok"})
		self.assertEqual(done.status_code, 200, done.data[:2000])
		self.assertEqual(self.status(high)[0], "completed")
		result = frappe.db.get_value("Aether Agent Task", high, "result")
		self.assertEqual(json.loads(result) if isinstance(result, str) else result, {"summary": "ok"})
		again = self.call("complete", task=high, instance=self.instance, result={"twice": 1})
		self.assertEqual(again.status_code, 409, again.data[:2000])
		self.assertIn("is completed, not running", messages(again))
		self.assertEqual(self.status(low)[0], "ready")

	def test_a_user_permission_binds_an_agents_user_to_its_own_instances(self):
		"""Frappe's own mechanism: a User Permission on Aether Agent Instance limits an agent's user
		(and so its API key, over REST and MCP) to the instances it names."""
		other = make("Aether Agent Instance", definition=self.definition).name
		task = self.task()
		permission = frappe.get_doc(
			{
				"doctype": "User Permission",
				"user": OUTSIDER,
				"allow": "Aether Agent Instance",
				"for_value": other,
			}
		).insert(ignore_permissions=True)
		frappe.db.commit()
		try:
			refused = self.call("claim", self.outsider, instance=self.instance, task_types=["monitoring"])
			self.assertEqual(refused.status_code, 403, refused.data[:500])
			self.assertEqual(self.status(task), ("ready", None, 0))
			allowed = self.call("claim", self.outsider, instance=other, task_types=["monitoring"])
			self.assertEqual(allowed.status_code, 200, allowed.data[:500])
			self.assertEqual([t["name"] for t in allowed.json["message"]], [task])
		finally:
			frappe.delete_doc("User Permission", permission.name, ignore_permissions=True)
			frappe.db.commit()

	def test_a_failure_is_retried_after_a_backoff_then_fails_for_good(self):
		task = self.task(max_attempts=2)
		self.assertEqual(len(self.call("claim", instance=self.instance).json["message"]), 1)
		failed = self.call("fail", task=task, instance=self.instance, error="timeout", retry=True)
		self.assertEqual((failed.status_code, failed.json["message"]["status"]), (200, "pending"))
		status, assigned, attempts = self.status(task)
		self.assertEqual((status, assigned, attempts), ("pending", None, 1))
		self.assertGreater(frappe.db.get_value("Aether Agent Task", task, "not_before"), now_datetime())
		self.assertEqual(self.call("claim", instance=self.instance).json["message"], [])  # backing off
		frappe.db.set_value("Aether Agent Task", task, "not_before", None)
		frappe.db.commit()
		self.assertEqual(self.call("claim", instance=self.instance).json["message"][0]["attempts"], 2)
		last = self.call("fail", task=task, instance=self.instance, error="timeout again", retry="true")
		self.assertEqual(last.json["message"]["status"], "failed")
		self.assertEqual(frappe.db.get_value("Aether Agent Task", task, "error_message"), "timeout again")

	def test_bad_calls_are_clear_and_change_nothing(self):
		task = self.task()
		other = make("Aether Agent Instance", definition=self.definition).name
		frappe.db.commit()
		unknown = "00000000-0000-4000-8000-000000000000"
		cases = [
			# permission before existence: no write on agents, whatever the instance
			(self.analyst, "claim", {"instance": unknown}, 403, ""),
			(None, "claim", {"instance": self.instance}, 403, ""),
			(self.operator, "claim", {"instance": unknown}, 404, "no agent instance"),
			(
				self.operator,
				"claim",
				{"instance": self.instance, "task_types": ["gossip"]},
				417,
				"unknown task type",
			),
			(
				self.operator,
				"claim",
				{"instance": self.instance, "task_types": ["research"]},
				417,
				"runs monitoring, remediation, not research",
			),
			(
				self.operator,
				"claim",
				{"instance": self.instance, "task_types": "monitoring"},
				417,
				"not valid JSON",
			),
			(self.operator, "claim", {"instance": self.instance, "limit": 0}, 417, "limit"),
			(self.operator, "claim", {"instance": self.instance, "limit": True}, 417, "limit"),
		]
		for token, method, args, code, message in cases:
			with self.subTest(method=method, args=args):
				response = rest("post", API + method, token, args)
				self.assertEqual(response.status_code, code, response.data[:2000])
				self.assertIn(message, messages(response))
		self.assertEqual(self.status(task), ("ready", None, 0))

		self.assertEqual(len(self.call("claim", instance=self.instance).json["message"]), 1)
		held = [
			({"task": task, "instance": other, "result": {}}, 403, "held by another instance"),
			({"task": task, "instance": self.instance, "result": "{not json"}, 417, "not valid JSON"),
			(
				{"task": task, "instance": self.instance, "result": {"text": "x" * 300_000}},
				417,
				"larger than",
			),
			({"task": unknown, "instance": self.instance, "result": {}}, 404, "no agent task"),
		]
		for args, code, message in held:
			with self.subTest(args=str(args)[:80]):
				response = self.call("complete", **args)
				self.assertEqual(response.status_code, code, response.data[:2000])
				self.assertIn(message, messages(response))
		fail = self.call("fail", task=task, instance=other, error="mine now")
		self.assertEqual(fail.status_code, 403, fail.data[:2000])
		self.assertEqual(self.status(task), ("running", self.instance, 1))
		self.assertIsNone(frappe.db.get_value("Aether Agent Task", task, "result"))

		frappe.db.set_value("Aether Agent Instance", other, "status", "offline")
		frappe.db.commit()
		offline = self.call("claim", instance=other)
		self.assertEqual(offline.status_code, 409, offline.data[:2000])
		self.assertIn("is offline", messages(offline))
		back = self.call("heartbeat", instance=other)
		self.assertEqual(back.status_code, 200, back.data[:2000])
		frappe.db.commit()
		self.assertEqual(frappe.db.get_value("Aether Agent Instance", other, "status"), "idle")

	def test_instance_memory_updates_name_the_version_they_read(self):
		first = self.call("update_instance", instance=self.instance, version=0, memory={"facts": [1]})
		self.assertEqual((first.status_code, first.json["message"]["version"]), (200, 1))
		stale = self.call("update_instance", instance=self.instance, version=0, state={"step": 9})
		self.assertEqual(stale.status_code, 409, stale.data[:2000])
		self.assertIn("is at version 1, not 0", messages(stale))
		frappe.db.commit()
		doc = frappe.get_doc("Aether Agent Instance", self.instance)
		self.assertEqual(
			(json.loads(doc.memory) if isinstance(doc.memory, str) else doc.memory), {"facts": [1]}
		)
		self.assertEqual(doc.version, 1)
		doc.state = json.dumps({"edited": "in the form"})
		doc.save()
		self.assertEqual(doc.version, 2)

	def test_the_scheduled_job_rescues_expired_leases(self):
		hooked = hooks.scheduler_events["cron"]["* * * * *"]
		self.assertIn("cauldron.aether.jobs.maintain_tasks", hooked)
		task = self.task()
		self.assertEqual(len(self.call("claim", instance=self.instance, lease=60).json["message"]), 1)
		frappe.db.commit()
		cur = db.cursor()
		cur.execute(
			"""UPDATE "tabAether Agent Task" SET lease_expires_at = lease_expires_at - interval '2 hours'
			WHERE name = %s""",
			(task,),
		)
		cur.execute(
			"""UPDATE "tabAether Agent Instance" SET last_heartbeat = last_heartbeat - interval '2 hours'
			WHERE name = %s""",
			(self.instance,),
		)
		frappe.db.commit()
		jobs.maintain_tasks()
		self.assertEqual(self.status(task), ("pending", None, 1))
		self.assertEqual(
			frappe.db.get_value("Aether Agent Instance", self.instance, ["status", "current_task"]),
			("offline", None),
		)
		late = self.call("complete", task=task, instance=self.instance, result={})
		self.assertEqual(late.status_code, 403, late.data[:2000])


class TestAetherTools(FrappeTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.started = now_datetime()
		cls.operator = user_with_roles(OPERATOR, "Agent Operator", "Knowledge Editor")
		frappe.db.commit()

	@classmethod
	def tearDownClass(cls):
		frappe.set_user("Administrator")
		delete_created_since(cls.started)
		drop_user(OPERATOR)
		frappe.db.commit()
		super().tearDownClass()

	def setUp(self):
		frappe.set_user("Administrator")
		tools = {
			"documents.read": ["Lore Document"],
			"documents.create": ["Lore Entity"],
			"lore.search": False,
		}
		self.definition = make("Aether Agent Definition", tools=json.dumps(tools)).name
		self.instance = make("Aether Agent Instance", definition=self.definition).name
		self.document = make("Lore Document").name
		frappe.db.commit()

	def call(self, tool, arguments, **extra):
		return rest(
			"post",
			API + "call_tool",
			self.operator,
			{"instance": self.instance, "tool": tool, "arguments": arguments, **extra},
		)

	def recorded(self) -> list[tuple]:
		frappe.db.commit()
		cur = db.cursor()
		cur.execute(
			"""SELECT interaction_type, content->>'tool', coalesce(metadata->>'refused', '')
			FROM aether.agent_interactions WHERE agent_instance_id = %s::uuid ORDER BY created_at, interaction_type <> 'tool_call'""",
			(self.instance,),
		)
		return cur.fetchall()

	def test_allowed_tools_run_with_the_callers_permissions_and_are_recorded(self):
		read = self.call("documents.read", {"doctype": "Lore Document", "name": self.document})
		self.assertEqual(read.status_code, 200, read.data[:2000])
		self.assertEqual(read.json["message"]["name"], self.document)
		created = self.call(
			"documents.create",
			{"doctype": "Lore Entity", "fields": {"entity_name": "Kafka", "entity_type": "technology"}},
		)
		self.assertEqual(created.status_code, 200, created.data[:2000])
		self.assertTrue(frappe.db.exists("Lore Entity", created.json["message"]["name"]))
		self.assertEqual(
			[row[:2] for row in self.recorded()],
			[
				("tool_call", "documents.read"),
				("tool_result", "documents.read"),
				("tool_call", "documents.create"),
				("tool_result", "documents.create"),
			],
		)

	def test_a_call_outside_the_allow_list_is_refused_and_recorded(self):
		for tool, arguments in [
			("lore.search", {"query": "kafka"}),
			("documents.read", {"doctype": "Aether Agent Definition", "name": self.definition}),
			("documents.create", {"doctype": "Lore Document", "fields": {"title": "x"}}),
			("shell.exec", {"cmd": "rm -rf /"}),
		]:
			with self.subTest(tool=tool):
				response = self.call(tool, arguments)
				self.assertEqual(response.status_code, 403, response.data[:2000])
				self.assertIn("Tool not allowed", response.data.decode())
		refused = [row for row in self.recorded() if row[0] == "tool_call"]
		self.assertEqual(len(refused), 4)
		self.assertTrue(all(row[2] == "true" for row in refused))

	def test_a_failing_call_is_recorded_with_its_error(self):
		missing = self.call(
			"documents.read", {"doctype": "Lore Document", "name": "00000000-0000-4000-8000-000000000000"}
		)
		self.assertEqual(missing.status_code, 404, missing.data[:2000])
		self.assertEqual([row[0] for row in self.recorded()], ["tool_call", "error"])


class TestAetherApprovals(FrappeTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.started = now_datetime()
		cls.operator = user_with_roles(OPERATOR, "Agent Operator")
		cls.approver = user_with_roles(APPROVER, "Agent Operator")
		cls.outsider = user_with_roles(OUTSIDER, "Agent Operator")
		frappe.db.commit()

	@classmethod
	def tearDownClass(cls):
		frappe.set_user("Administrator")
		delete_created_since(cls.started)
		for email in (OPERATOR, APPROVER, OUTSIDER):
			drop_user(email)
		frappe.db.commit()
		super().tearDownClass()

	def tearDown(self):
		frappe.set_user("Administrator")

	def request(self, **definition):
		"""A task that requires approval, created by the operator; returns (task, its approval)."""
		defn = make("Aether Agent Definition", approvers=APPROVER, **definition).name
		frappe.set_user(OPERATOR)
		task = make("Aether Agent Task", definition=defn, requires_approval=1)
		frappe.set_user("Administrator")
		(approval,) = frappe.get_all("Aether HITL Approval", filters={"task": task.name}, pluck="name")
		frappe.db.commit()
		return task.name, approval

	def respond(self, token, approval, decision, **extra):
		return rest("post", API + "respond", token, {"approval": approval, "decision": decision, **extra})

	def test_a_task_requiring_approval_gets_one_assigned_to_the_definitions_approvers(self):
		task, approval = self.request()
		self.assertEqual(frappe.db.get_value("Aether Agent Task", task, "status"), "awaiting_approval")
		doc = frappe.get_doc("Aether HITL Approval", approval)
		self.assertEqual((doc.status, doc.approval_type, doc.owner), ("pending", "task_execution", OPERATOR))
		self.assertAlmostEqual((doc.expires_at - doc.creation).total_seconds(), 72 * 3600, delta=60)
		todos = frappe.get_all(
			"ToDo",
			filters={"reference_type": "Aether HITL Approval", "reference_name": approval, "status": "Open"},
			pluck="allocated_to",
		)
		self.assertEqual(todos, [APPROVER])
		self.assertTrue(
			frappe.db.exists(
				"Notification Log", {"for_user": APPROVER, "document_name": approval, "type": "Assignment"}
			)
		)

	def test_separation_of_duties_and_named_approvers(self):
		task, approval = self.request()
		mine = self.respond(self.operator, approval, "approve")
		self.assertEqual(mine.status_code, 403, mine.data[:2000])
		self.assertIn("someone else must give it", messages(mine))
		stranger = self.respond(self.outsider, approval, "approve")
		self.assertEqual(stranger.status_code, 403, stranger.data[:2000])
		self.assertIn("Only the approvers named", messages(stranger))
		bad = self.respond(self.approver, approval, "maybe")
		self.assertEqual(bad.status_code, 417, bad.data[:2000])
		frappe.db.commit()
		self.assertEqual(frappe.db.get_value("Aether HITL Approval", approval, "status"), "pending")

		ok = self.respond(self.approver, approval, "approve", response={"budget": 10}, notes="fine")
		self.assertEqual(ok.status_code, 200, ok.data[:2000])
		self.assertEqual(ok.json["message"]["task_status"], "ready")
		frappe.db.commit()
		doc = frappe.get_doc("Aether HITL Approval", approval)
		self.assertEqual((doc.responded_by, doc.notes), (APPROVER, "fine"))
		self.assertEqual(
			json.loads(doc.response) if isinstance(doc.response, str) else doc.response, {"budget": 10}
		)
		self.assertEqual(
			frappe.db.get_value("Aether Agent Task", task, ["status", "approved_by"]), ("ready", APPROVER)
		)
		self.assertFalse(
			frappe.get_all(
				"ToDo",
				filters={
					"reference_type": "Aether HITL Approval",
					"reference_name": approval,
					"status": "Open",
				},
			)
		)
		twice = self.respond(self.approver, approval, "reject")
		self.assertEqual(twice.status_code, 409, twice.data[:2000])

	def test_the_inbox_lists_what_waits_for_the_caller(self):
		task, approval = self.request()

		def inbox(token, **args):
			response = rest("get", API + "inbox?" + "&".join(f"{k}={v}" for k, v in args.items()), token)
			self.assertEqual(response.status_code, 200, response.data[:2000])
			return [row["name"] for row in response.json["message"]]

		self.assertIn(approval, inbox(self.approver))
		row = next(
			r for r in rest("get", API + "inbox", self.approver).json["message"] if r["name"] == approval
		)
		self.assertEqual(
			(row["task"], row["task_status"], row["owner"]), (task, "awaiting_approval", OPERATOR)
		)
		self.assertNotIn(approval, inbox(self.outsider))
		self.assertIn(approval, inbox(self.outsider, everyone=1))
		self.assertEqual(rest("get", API + "inbox", None).status_code, 403)
		self.assertEqual(self.respond(self.approver, approval, "approve").status_code, 200)
		self.assertNotIn(approval, inbox(self.approver))

	def test_a_rejection_cancels_the_task(self):
		task, approval = self.request()
		response = self.respond(self.approver, approval, "reject", notes="too risky")
		self.assertEqual(response.status_code, 200, response.data[:2000])
		self.assertEqual(response.json["message"]["task_status"], "cancelled")

	def test_an_unanswered_approval_expires_and_cancels_its_task(self):
		task, approval = self.request(approval_expiry_hours=json.dumps({"task_execution": 0.5}))
		expires = frappe.db.get_value("Aether HITL Approval", approval, "expires_at")
		self.assertAlmostEqual((expires - now_datetime()).total_seconds(), 1800, delta=120)
		frappe.db.set_value(
			"Aether HITL Approval", approval, "expires_at", now_datetime() - timedelta(minutes=1)
		)
		frappe.db.commit()
		jobs.maintain_tasks()
		frappe.db.commit()
		self.assertEqual(frappe.db.get_value("Aether HITL Approval", approval, "status"), "expired")
		self.assertEqual(frappe.db.get_value("Aether Agent Task", task, "status"), "cancelled")
		self.assertFalse(
			frappe.get_all(
				"ToDo",
				filters={
					"reference_type": "Aether HITL Approval",
					"reference_name": approval,
					"status": "Open",
				},
			)
		)
		late = self.respond(self.approver, approval, "approve")
		self.assertEqual(late.status_code, 409, late.data[:2000])

	def test_a_definitions_runtime_fields_are_checked(self):
		with self.assertRaisesRegex(frappe.ValidationError, "unknown task type 'gossip'"):
			make("Aether Agent Definition", task_types="research\ngossip")
		with self.assertRaisesRegex(frappe.ValidationError, "neither a user nor a role"):
			make("Aether Agent Definition", approvers="nobody@example.com")
		with self.assertRaisesRegex(frappe.ValidationError, "not an approval type"):
			make("Aether Agent Definition", approval_expiry_hours=json.dumps({"whenever": 1}))
		defn = make("Aether Agent Definition", task_types="research, analysis", approvers="Agent Operator")
		self.assertEqual(defn.task_types, "research\nanalysis")


CAPS = "cauldron-runtime-caps@example.com"
NO_METRICS = "cauldron-runtime-nometrics@example.com"


class TestAetherCapabilities(FrappeTestCase):
	"""lore.search and synapse.metrics through call_tool: allowed by the definition, answered with the
	caller's own Frappe permissions, recorded as interactions."""

	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.started = now_datetime()
		cls.caps = user_with_roles(CAPS, "Agent Operator", "Knowledge Editor", "Synapse Analyst")
		cls.no_metrics = user_with_roles(NO_METRICS, "Agent Operator", "Knowledge Editor")
		frappe.db.commit()

	@classmethod
	def tearDownClass(cls):
		frappe.set_user("Administrator")
		delete_created_since(cls.started)
		for email in (CAPS, NO_METRICS):
			drop_user(email)
		frappe.db.commit()
		super().tearDownClass()

	def setUp(self):
		frappe.set_user("Administrator")
		tools = {"lore.search": True, "synapse.metrics": True}
		self.definition = make("Aether Agent Definition", tools=json.dumps(tools)).name
		self.instance = make("Aether Agent Instance", definition=self.definition).name
		self.metric = f"aether.tool.{frappe.generate_hash(length=8)}"
		frappe.db.commit()

	def tearDown(self):
		frappe.set_user("Administrator")
		db.cursor().execute("DELETE FROM synapse.metrics WHERE metric_name = %s", (self.metric,))
		frappe.db.commit()

	def call(self, tool, arguments, token=None):
		return rest(
			"post",
			API + "call_tool",
			token or self.caps,
			{"instance": self.instance, "tool": tool, "arguments": arguments},
		)

	def recorded(self) -> list[tuple]:
		frappe.db.commit()
		cur = db.cursor()
		cur.execute(
			"""SELECT interaction_type, content->>'tool', content->>'rows'
			FROM aether.agent_interactions WHERE agent_instance_id = %s::uuid
			ORDER BY created_at, interaction_type <> 'tool_call'""",
			(self.instance,),
		)
		return cur.fetchall()

	def test_lore_search_finds_passages_the_agent_may_read(self):
		from cauldron.api.lore import set_document_chunks
		from cauldron.pg import vectors

		try:
			dimension = vectors.table_dimension(db.cursor())
		except vectors.VectorsUnavailable:
			self.skipTest("pgvector is not installed in this site's database")
		word = f"zyx{frappe.generate_hash(length=8)}"
		document = make("Lore Document").name
		embedding = [0.0] * dimension
		embedding[3] = 1.0
		set_document_chunks(
			document=document,
			chunks=[
				{"chunk_index": 0, "content": f"The {word} broker restarts nightly", "embedding": embedding}
			],
		)
		frappe.db.commit()
		found = self.call("lore.search", {"query": word, "mode": "keyword", "limit": 5})
		self.assertEqual(found.status_code, 200, found.data[:2000])
		hits = found.json["message"]
		self.assertEqual([h["document"] for h in hits], [document])
		self.assertIn(word, hits[0]["content"])
		bad = self.call("lore.search", {"query": word, "mode": "psychic"})
		self.assertEqual(bad.status_code, 417, bad.data[:2000])
		self.assertEqual(
			self.recorded(),
			[
				("tool_call", "lore.search", None),
				("tool_result", "lore.search", "1"),
				("tool_call", "lore.search", None),
				("error", "lore.search", None),
			],
		)

	def test_synapse_metrics_are_queried_with_the_callers_permissions(self):
		cur = db.cursor()
		cur.execute(
			"""INSERT INTO synapse.metrics (time, metric_name, value, dimensions) VALUES
			(now() - interval '2 minutes', %s, 1.5, '{"host": "a"}'), (now() - interval '1 minute', %s, 2.5, '{"host": "b"}')""",
			(self.metric, self.metric),
		)
		frappe.db.commit()
		query = {
			"filters": [["metric_name", "=", self.metric]],
			"fields": ["metric_name", "value"],
			"limit": 10,
		}
		found = self.call("synapse.metrics", query)
		self.assertEqual(found.status_code, 200, found.data[:2000])
		self.assertEqual(sorted(r["value"] for r in found.json["message"]), [1.5, 2.5])
		one = self.call("synapse.metrics", {**query, "limit": 1})
		self.assertEqual(len(one.json["message"]), 1)
		for arguments, code in (({**query, "limit": 0}, 417), ({"filters": "[[nope"}, 417)):
			with self.subTest(arguments=arguments):
				self.assertEqual(self.call("synapse.metrics", arguments).status_code, code)
		# allowed by the definition, but the caller's user may not read Synapse Metric
		refused = self.call("synapse.metrics", query, token=self.no_metrics)
		self.assertEqual(refused.status_code, 403, refused.data[:2000])
		kinds = [row[:2] for row in self.recorded()]
		self.assertEqual(
			kinds[:4], [("tool_call", "synapse.metrics"), ("tool_result", "synapse.metrics")] * 2
		)
		self.assertEqual(kinds[-2:], [("tool_call", "synapse.metrics"), ("error", "synapse.metrics")])


class TestAetherDesk(FrappeTestCase):
	"""The Task Board's columns and the Agent Instance form's runtime panel."""

	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.started = now_datetime()
		cls.operator = user_with_roles(OPERATOR, "Agent Operator")
		cls.analyst = user_with_roles(ANALYST, "Synapse Analyst")
		frappe.db.commit()

	@classmethod
	def tearDownClass(cls):
		frappe.set_user("Administrator")
		delete_created_since(cls.started)
		for email in (OPERATOR, ANALYST):
			drop_user(email)
		frappe.db.commit()
		super().tearDownClass()

	def setUp(self):
		frappe.set_user("Administrator")
		self.definition = make("Aether Agent Definition", task_types="remediation").name
		self.instance = make("Aether Agent Instance", definition=self.definition).name
		frappe.db.commit()

	def test_the_board_has_a_column_per_status_in_the_queues_order(self):
		def make_task(**fields) -> str:
			return make(
				"Aether Agent Task", definition=self.definition, task_type="remediation", **fields
			).name

		low, high = make_task(priority=9), make_task(priority=1)
		held, waiting = make_task(priority=5), make_task(requires_approval=1)
		frappe.db.commit()
		claimed = rest("post", API + "claim", self.operator, {"instance": self.instance, "limit": 1})
		self.assertEqual(claimed.json["message"][0]["name"], high)
		self.assertIsNotNone(held)
		response = rest("get", API + "board", self.operator, {"definition": self.definition, "limit": 5})
		self.assertEqual(response.status_code, 200, response.data[:2000])
		columns = {c["status"]: c for c in response.json["message"]["columns"]}
		self.assertEqual(list(columns), list(tasks.STATUSES))
		self.assertEqual([t["name"] for t in columns["ready"]["tasks"]], [held, low])
		self.assertEqual(columns["ready"]["count"], 2)
		self.assertEqual([t["name"] for t in columns["running"]["tasks"]], [high])
		self.assertEqual(columns["running"]["tasks"][0]["assigned_to"], self.instance)
		self.assertTrue(columns["running"]["tasks"][0]["instance_name"])
		self.assertEqual([t["name"] for t in columns["awaiting_approval"]["tasks"]], [waiting])
		self.assertEqual((columns["completed"]["count"], columns["completed"]["tasks"]), (0, []))
		narrow = rest("get", API + "board", self.operator, {"definition": self.definition, "limit": 1})
		narrowed = {c["status"]: c for c in narrow.json["message"]["columns"]}["ready"]
		self.assertEqual((narrowed["count"], [t["name"] for t in narrowed["tasks"]]), (2, [held]))
		for args, code in (
			({"task_type": "gossip"}, 417),
			({"limit": 0}, 417),
			({"definition": "x" * 200}, 417),
		):
			with self.subTest(args=args):
				self.assertEqual(rest("get", API + "board", self.operator, args).status_code, code)
		self.assertEqual(rest("get", API + "board", self.analyst, {}).status_code, 403)

	def test_the_instance_form_shows_its_task_lease_heartbeat_and_interactions(self):
		task = make("Aether Agent Task", definition=self.definition, task_type="remediation").name
		frappe.db.commit()
		rest("post", API + "claim", self.operator, {"instance": self.instance, "lease": 600})
		cur = db.cursor()
		cur.execute(
			"""UPDATE "tabAether Agent Instance" SET last_heartbeat = last_heartbeat - interval '90 seconds'
			WHERE name = %s""",
			(self.instance,),
		)
		frappe.db.commit()
		response = rest("get", API + "instance_summary", self.operator, {"instance": self.instance})
		self.assertEqual(response.status_code, 200, response.data[:2000])
		summary = response.json["message"]
		self.assertEqual((summary["status"], summary["current_task"]), ("running", task))
		self.assertEqual(summary["current"]["name"], task)
		self.assertTrue(540 < summary["current"]["lease_seconds_left"] <= 600, summary["current"])
		self.assertTrue(89 <= summary["heartbeat_age_seconds"] < 150, summary["heartbeat_age_seconds"])
		self.assertFalse(summary["heartbeat_stale"])
		self.assertEqual([t["name"] for t in summary["held"]], [task])
		self.assertEqual(summary["interactions"][0]["content"]["to"], "running")
		few = rest(
			"get", API + "instance_summary", self.operator, {"instance": self.instance, "interactions": 0}
		)
		self.assertEqual(few.json["message"]["interactions"], [])
		unknown = "00000000-0000-4000-8000-000000000000"
		for token, args, code in (
			(self.analyst, {"instance": self.instance}, 403),
			(self.analyst, {"instance": unknown}, 403),
			(self.operator, {"instance": unknown}, 404),
			(self.operator, {"instance": self.instance, "interactions": 101}, 417),
		):
			with self.subTest(args=args):
				self.assertEqual(rest("get", API + "instance_summary", token, args).status_code, code)

	def test_the_task_board_page_loads_for_agent_operators(self):
		from frappe.desk.desk_page import get as get_page

		frappe.set_user(OPERATOR)
		page = get_page("aether-task-board")
		self.assertEqual(page.title, "Task Board")
		self.assertIn("cauldron.api.aether.board", page.script)
		frappe.set_user(ANALYST)
		self.assertRaises(frappe.PermissionError, get_page, "aether-task-board")
		frappe.set_user("Administrator")
		shortcuts = frappe.get_doc("Workspace", "Aether").shortcuts
		self.assertIn("aether-task-board", [s.link_to for s in shortcuts])
