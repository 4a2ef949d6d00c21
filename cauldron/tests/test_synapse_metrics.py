"""Bench tier: Synapse Analytics Metrics evaluated in the site: the schedule's run records each value
as a point, the metric's state and error, one Synapse Metric Alert per change of state with a
Notification Log for each subscriber, none while a state holds; SQL runs on a login of the site's
reader role; a bad metric does not stop the run."""

import os
import uuid
from datetime import datetime, timedelta, timezone

import frappe
from frappe.tests.utils import FrappeTestCase
from frappe.utils import add_to_date, now_datetime
from psycopg2 import sql

from cauldron import db
from cauldron.pg import timeseries, views
from cauldron.synapse import jobs, metrics
from cauldron.tests.factories import drop_user, rest, user_with_roles

SUBSCRIBER = "cauldron-synapse-subscriber@example.com"
ROLE_MEMBER = "cauldron-synapse-role-member@example.com"
PLAIN = "cauldron-synapse-metrics-plain@example.com"
LOGIN = "cauldron_synapse_test_login"
PASSWORD = "synapse-test-" + uuid.uuid4().hex[:8]


def root():
	conf = frappe.conf
	return (
		os.environ.get("DB_ROOT_USERNAME") or conf.root_login or "postgres",
		os.environ.get("DB_ROOT_PASSWORD") or conf.root_password,
	)


class TestSynapseMetricEvaluation(FrappeTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.role = views.reader_role_name(frappe.conf.db_name)
		with db.cursor_as(*root()) as cur:
			views.create_reader_role(cur, cls.role)
			cur.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(LOGIN)))
			cur.execute(
				sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(LOGIN)), (PASSWORD,)
			)
			cur.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(cls.role), sql.Identifier(LOGIN)))
		views.grant_reader(db.cursor(), cls.role)
		cls.analyst = user_with_roles(SUBSCRIBER, "Synapse Analyst")
		cls.plain = user_with_roles(PLAIN)
		user_with_roles(ROLE_MEMBER, "Cauldron Auditor")
		frappe.db.commit()
		frappe.local.conf.cauldron_reader_login = LOGIN
		frappe.local.conf.cauldron_reader_password = PASSWORD
		frappe.local.conf.synapse_sql_timeout = 0.5

	@classmethod
	def tearDownClass(cls):
		for key in ("cauldron_reader_login", "cauldron_reader_password", "synapse_sql_timeout"):
			frappe.local.conf.pop(key, None)
		for email in (SUBSCRIBER, PLAIN, ROLE_MEMBER):
			drop_user(email)
		frappe.db.commit()
		with db.cursor_as(*root()) as cur:
			cur.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(LOGIN)))
		super().tearDownClass()

	def setUp(self):
		self.source = f"m{uuid.uuid4().hex[:8]}.load"
		self.made = []

	def tearDown(self):
		frappe.db.rollback()
		for name in self.made:
			frappe.delete_doc("Synapse Analytics Metric", name, force=True, ignore_permissions=True)
			frappe.db.delete("Notification Log", {"document_name": name})
		cur = db.cursor()
		cur.execute(
			"DELETE FROM synapse.metrics WHERE metric_name = %s OR metric_name = ANY(%s)",
			(self.source, [metrics.series_name(n) for n in self.made]),
		)
		frappe.db.commit()

	def metric(self, definition, **fields):
		doc = frappe.get_doc(
			{
				"doctype": "Synapse Analytics Metric",
				"metric_name": f"Load {uuid.uuid4().hex[:6]}",
				"query_definition": definition,
				"evaluation_frequency": "Every 5 Minutes",
				**fields,
			}
		).insert()
		self.made.append(doc.name)
		frappe.db.commit()
		return doc

	def load(self, value):
		"""The source metric's average over the last hour becomes `value`."""
		cur = db.cursor()
		cur.execute("DELETE FROM synapse.metrics WHERE metric_name = %s", (self.source,))
		at = datetime.now(timezone.utc) - timedelta(minutes=5)
		timeseries.write_metrics(cur, [(at, self.source, value, {"host": "a"})])
		frappe.db.commit()

	def run_ours(self):
		due = [row for row in jobs.due_metrics(add_to_date(now_datetime(), hours=1)) if row.name in self.made]
		return {r.metric: r for r in jobs.evaluate_metrics(due)}

	def alerts(self, name):
		return frappe.get_all(
			"Synapse Metric Alert",
			filters={"metric": name},
			fields=["from_state", "to_state", "value", "threshold"],
			order_by="creation asc",
		)

	def notifications(self, name):
		return frappe.get_all(
			"Notification Log", filters={"document_name": name}, fields=["for_user", "subject", "type"]
		)

	def test_states_alerts_and_notifications_over_runs(self):
		definition = f'{{"metric": "{self.source}", "aggregate": "avg", "window": "1 hour"}}'
		doc = self.metric(
			definition,
			warning_threshold=50,
			critical_threshold=80,
			subscribers=[{"user": SUBSCRIBER}],
			subscriber_role="Cauldron Auditor",
		)
		states = []
		for value in (10, 60, 65, 90, 20):
			self.load(value)
			result = self.run_ours()[doc.name]
			self.assertIsNone(result.error)
			states.append(frappe.db.get_value("Synapse Analytics Metric", doc.name, "alert_state"))
		self.assertEqual(states, ["ok", "warning", "warning", "critical", "ok"])
		self.assertEqual(
			[(a.from_state, a.to_state, a.value, a.threshold) for a in self.alerts(doc.name)],
			[("ok", "warning", 60, 50), ("warning", "critical", 90, 80), ("critical", "ok", 20, 50)],
		)
		notes = self.notifications(doc.name)
		# each change reached the subscriber and every enabled user of the role (a member made here,
		# and whoever else holds it on this site), once
		recipients = {n.for_user for n in notes}
		self.assertTrue({SUBSCRIBER, ROLE_MEMBER} <= recipients)
		self.assertEqual(len(notes), 3 * len(recipients))
		self.assertEqual({n.type for n in notes}, {"Alert"})
		self.assertTrue(any("is critical: 90 (threshold 80), was warning" in n.subject for n in notes))
		saved = frappe.db.get_value(
			"Synapse Analytics Metric",
			doc.name,
			["last_value", "last_error", "last_evaluated_at"],
			as_dict=True,
		)
		self.assertEqual((saved.last_value, saved.last_error), (20, None))
		self.assertIsNotNone(saved.last_evaluated_at)
		cur = db.cursor()
		cur.execute(
			"SELECT value, dimensions FROM synapse.metrics WHERE metric_name = %s ORDER BY time",
			(metrics.series_name(doc.name),),
		)
		self.assertEqual([row[0] for row in cur.fetchall()], [10, 60, 65, 90, 20])

	def test_sql_runs_as_the_reader_and_a_bad_metric_does_not_stop_the_run(self):
		users = self.metric("SELECT count(*) FROM core.users", warning_threshold=0.5)
		secret = self.metric('SELECT count(*) FROM "tabUser"')
		slow = self.metric("SELECT count(*) FROM pg_sleep(2)")
		text = self.metric("SELECT 'many'")
		writer = self.metric(
			"WITH gone AS (DELETE FROM synapse.metrics RETURNING 1) SELECT count(*) FROM gone"
		)
		results = self.run_ours()
		self.assertGreater(results[users.name].value, 0)
		self.assertEqual(results[users.name].state, "warning")
		expected = {
			secret.name: "reads what the reader role may not: permission denied for table tabUser",
			slow.name: "took longer than 0.5 s",
			text.name: "returned 'many' (str), not a number",
			writer.name: "tries to write",
		}
		for name, message in expected.items():
			self.assertIn(message, results[name].error)
			self.assertIn(message, frappe.db.get_value("Synapse Analytics Metric", name, "last_error"))
			self.assertEqual(self.alerts(name), [])
		cur = db.cursor()
		cur.execute(
			"SELECT count(*) FROM synapse.metrics WHERE metric_name = ANY(%s)",
			([metrics.series_name(n) for n in self.made],),
		)
		self.assertEqual(cur.fetchone()[0], 1)  # only the good one's value

	def test_without_a_reader_login_sql_metrics_say_so(self):
		doc = self.metric("SELECT 1")
		login = frappe.local.conf.pop("cauldron_reader_login")
		try:
			result = self.run_ours()[doc.name]
		finally:
			frappe.local.conf.cauldron_reader_login = login
		self.assertIn("cauldron_reader_login", result.error)

	def test_only_due_metrics_are_evaluated(self):
		never = self.metric("SELECT 1", evaluation_frequency="Never")
		hourly = self.metric("SELECT 1", evaluation_frequency="Hourly")
		now = now_datetime()
		due = {row.name for row in jobs.due_metrics(now)}
		self.assertIn(hourly.name, due)
		self.assertNotIn(never.name, due)
		frappe.db.set_value(
			"Synapse Analytics Metric", hourly.name, "last_evaluated_at", add_to_date(now, minutes=-30)
		)
		self.assertNotIn(hourly.name, {row.name for row in jobs.due_metrics(now)})
		self.assertIn(hourly.name, {row.name for row in jobs.due_metrics(add_to_date(now, minutes=31))})
		frappe.db.rollback()
		jobs.evaluate_due_metrics()  # the scheduled job itself
		self.assertEqual(frappe.db.get_value("Synapse Analytics Metric", hourly.name, "last_value"), 1)
		self.assertIsNone(frappe.db.get_value("Synapse Analytics Metric", never.name, "last_evaluated_at"))

	def test_a_definition_or_thresholds_that_cannot_work_are_refused_on_save(self):
		for fields, message in (
			({"query_definition": "DELETE FROM synapse.metrics"}, "must be a SELECT, not DELETE"),
			({"query_definition": "SELECT 1; SELECT 2"}, "one SELECT statement"),
			({"query_definition": '{"metric": "x", "window": "ages"}'}, "is not a number and a unit"),
			({"warning_threshold": 90, "critical_threshold": 80}, "must not be above the critical one"),
			(
				{"warning_threshold": 10, "critical_threshold": 20, "alert_direction": "below"},
				"must not be below the critical one",
			),
		):
			with self.subTest(fields), self.assertRaisesRegex(frappe.ValidationError, message):
				frappe.get_doc(
					{"doctype": "Synapse Analytics Metric", "metric_name": "Bad", **fields}
				).insert()

	def test_evaluate_now_over_http_for_writers_of_the_metric(self):
		# (the request is served in a thread of its own, which has the site's config, not this test's)
		self.load(42)
		doc = self.metric(
			f'{{"metric": "{self.source}", "aggregate": "max", "window": "1 hour"}}', critical_threshold=40
		)
		path = "/api/method/cauldron.api.synapse.evaluate_metric"
		self.assertEqual(rest("post", path, self.plain, {"metric": doc.name}).status_code, 403)
		self.assertEqual(rest("post", path, self.plain, {"metric": str(uuid.uuid4())}).status_code, 403)
		response = rest("post", path, self.analyst, {"metric": doc.name})
		self.assertEqual(response.status_code, 200, response.data)
		self.assertEqual(
			response.json["message"],
			{
				"value": 42.0,
				"state": "critical",
				"error": None,
				"alert": {"from_state": "ok", "to_state": "critical", "threshold": 40.0},
			},
		)

	def test_a_deleted_user_leaves_the_subscribers(self):
		email = f"cauldron-synapse-gone-{uuid.uuid4().hex[:6]}@example.com"
		user_with_roles(email, "Synapse Analyst")
		doc = self.metric("SELECT 1", subscribers=[{"user": email}, {"user": SUBSCRIBER}])
		drop_user(email)
		frappe.db.commit()
		self.assertEqual(
			[s.user for s in frappe.get_doc("Synapse Analytics Metric", doc.name).subscribers], [SUBSCRIBER]
		)
