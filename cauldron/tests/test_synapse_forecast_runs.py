"""Bench tier: Synapse Forecasts fitted in the site on a real series of synapse.metrics, through the
durable queue and the worker; errors on the record; one active forecast per metric and model; the
hourly refresh."""

import json
import math
import random
import uuid
from datetime import datetime, timedelta, timezone

import frappe
import psycopg2
from frappe.tests.utils import FrappeTestCase
from psycopg2.extras import execute_values

from cauldron import db
from cauldron.api import synapse as api
from cauldron.pg import queue
from cauldron.synapse import background
from cauldron.tests.factories import make


def write_daily(metric_name: str, days: int, end: datetime | None = None) -> list[float]:
	"""Four points a day (their sum has a weekly pattern, a trend and noise) for `days` days before
	today."""
	end = (end or datetime.now(timezone.utc)).replace(hour=0, minute=0, second=0, microsecond=0)
	noise = random.Random(7)
	rows, totals = [], []
	for d in range(days):
		day = end - timedelta(days=days - d)
		total = 400 + 2 * d + 60 * math.sin(2 * math.pi * d / 7) + noise.gauss(0, 4)
		totals.append(total)
		for quarter in range(4):
			rows.append((day + timedelta(hours=6 * quarter + 1), metric_name, total / 4, "{}"))
	execute_values(
		db.cursor(), "INSERT INTO synapse.metrics (time, metric_name, value, dimensions) VALUES %s", rows
	)
	return totals


def metric_for(metric_name: str, aggregate: str = "sum"):
	return make(
		"Synapse Analytics Metric",
		query_definition=json.dumps({"metric": metric_name, "aggregate": aggregate}),
	)


def pending(key: str) -> int:
	cur = db.cursor()
	cur.execute(
		"SELECT count(*) FROM command.work_queue WHERE queue = %s AND key = %s AND status = 'pending'",
		(background.QUEUE, key),
	)
	return cur.fetchone()[0]


class TestSynapseForecastRuns(FrappeTestCase):
	def setUp(self):
		self.metric_name = f"test.sales.{uuid.uuid4().hex[:8]}"

	def tearDown(self):
		frappe.db.rollback()
		db.cursor().execute("DELETE FROM synapse.metrics WHERE metric_name = %s", (self.metric_name,))
		db.cursor().execute("DELETE FROM command.work_queue WHERE queue = %s", (background.QUEUE,))
		for name in frappe.get_all(
			"Synapse Forecast", filters={"forecast_name": ("like", "bench %")}, pluck="name"
		):
			frappe.delete_doc("Synapse Forecast", name, force=True, ignore_permissions=True)
		frappe.db.commit()

	def forecast(self, metric, **fields):
		values = {
			"forecast_name": f"bench {uuid.uuid4().hex[:6]}",
			"metric": metric.name,
			"forecast_model": "exponential_smoothing",
			"forecast_horizon": 14,
			"forecast_parameters": json.dumps({"interval": "1 day"}),
			"is_active": 1,
		}
		values.update(fields)
		return make("Synapse Forecast", **values)

	def test_an_active_forecast_is_queued_fitted_by_the_worker_and_backtested(self):
		write_daily(self.metric_name, 70)
		doc = self.forecast(metric_for(self.metric_name))
		self.assertEqual(doc.status, "running")
		self.assertEqual(pending(f"forecast:{doc.name}"), 1)
		frappe.db.commit()
		self.assertGreaterEqual(background.work(seconds=120), 1)

		doc.reload()
		self.assertEqual(doc.status, "completed", doc.last_error)
		data = json.loads(doc.forecast_data) if isinstance(doc.forecast_data, str) else doc.forecast_data
		self.assertEqual(len(data["points"]), 14)
		self.assertEqual(data["source_metric"], self.metric_name)
		self.assertEqual(data["interval"], "1 day")
		self.assertEqual(data["history_length"], 70)
		self.assertTrue(data["method"].startswith("ETS("), data["method"])
		today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
		self.assertEqual(datetime.fromisoformat(data["points"][0]["time"]), today)
		# the weekly pattern and the trend continue: day 70 of the series without its noise
		expected = 400 + 2 * 70 + 60 * math.sin(2 * math.pi * 70 / 7)
		first = data["points"][0]
		self.assertAlmostEqual(first["mean"], expected, delta=0.02 * expected)
		self.assertLess(first["lo_95"], first["lo_80"])
		self.assertLess(first["lo_80"], first["mean"])
		self.assertLess(first["mean"], first["hi_80"])
		perf = doc.performance_metrics
		perf = json.loads(perf) if isinstance(perf, str) else perf
		self.assertLess(perf["mape"], 5)
		self.assertLess(perf["mase"], perf["seasonal_naive"]["mase"])
		self.assertEqual(pending(f"forecast:{doc.name}"), 0)

	def test_a_series_too_short_fails_on_the_record_and_the_worker_goes_on(self):
		write_daily(self.metric_name, 10)
		short = self.forecast(metric_for(self.metric_name))
		unknown = self.forecast(metric_for(f"test.nothing.{uuid.uuid4().hex[:8]}"))
		frappe.db.commit()
		self.assertGreaterEqual(background.work(seconds=120), 2)  # and whatever else was queued
		short.reload()
		self.assertEqual(short.status, "failed")
		self.assertIn(
			"has 10 values; exponential_smoothing (season length 7) needs at least 21", short.last_error
		)
		unknown.reload()
		self.assertEqual(unknown.status, "failed")
		self.assertIn("no point of it is stored", unknown.last_error)
		# engine errors are the record's, not the queue's: nothing is left to retry
		cur = db.cursor()
		cur.execute(
			"SELECT count(*) FROM command.work_queue WHERE queue = %s AND status <> 'done'",
			(background.QUEUE,),
		)
		self.assertEqual(cur.fetchone()[0], 0)

	def test_one_active_forecast_per_metric_and_model(self):
		metric = metric_for(self.metric_name)
		first = self.forecast(metric)
		with self.assertRaisesRegex(
			frappe.UniqueValidationError, "already the active exponential_smoothing forecast"
		):
			self.forecast(metric)
		# inactive, or another model: fine
		self.forecast(metric, is_active=0)
		self.forecast(metric, forecast_model="theta")
		# and the database settles a race the check cannot see
		cur = db.cursor()
		cur.execute("SAVEPOINT race")
		with self.assertRaises(psycopg2.errors.UniqueViolation):
			cur.execute(
				"""UPDATE "tabSynapse Forecast" SET is_active = 1
				WHERE metric = %s AND forecast_model = 'exponential_smoothing' AND name <> %s""",
				(metric.name, first.name),
			)
		cur.execute("ROLLBACK TO SAVEPOINT race")

	def test_bad_models_and_parameters_are_refused_on_save(self):
		metric = metric_for(self.metric_name)
		with self.assertRaisesRegex(frappe.ValidationError, "forecast model 'prophet' is not one of"):
			self.forecast(metric, forecast_model="prophet")
		with self.assertRaisesRegex(frappe.ValidationError, "interval"):
			self.forecast(metric, forecast_parameters=json.dumps({"interval": "3 fortnights"}))
		with self.assertRaisesRegex(frappe.ValidationError, "not colour"):
			self.forecast(metric, forecast_parameters=json.dumps({"colour": "red"}))

	def test_the_schedule_refits_what_a_new_interval_made_stale(self):
		write_daily(self.metric_name, 40)
		doc = self.forecast(metric_for(self.metric_name), forecast_model="theta")
		frappe.db.commit()
		background.work(seconds=120)
		doc.reload()
		self.assertEqual(doc.status, "completed", doc.last_error)
		# fitted today: nothing to refit
		background.refresh_forecasts()
		self.assertEqual(pending(f"forecast:{doc.name}"), 0)
		# fitted yesterday: refit
		data = json.loads(doc.forecast_data) if isinstance(doc.forecast_data, str) else doc.forecast_data
		data["fitted_at"] = (datetime.now(timezone.utc) - timedelta(days=1)).isoformat()
		frappe.db.set_value("Synapse Forecast", doc.name, "forecast_data", json.dumps(data))
		background.refresh_forecasts()
		self.assertEqual(pending(f"forecast:{doc.name}"), 1)

	def test_the_refresh_endpoint_queues_a_fit_for_writers_only(self):
		write_daily(self.metric_name, 40)
		doc = self.forecast(metric_for(self.metric_name), is_active=0)
		self.assertEqual(pending(f"forecast:{doc.name}"), 0)
		self.assertEqual(api.run_forecast(doc.name), {"status": "running"})
		self.assertEqual(pending(f"forecast:{doc.name}"), 1)
		self.assertEqual(frappe.db.get_value("Synapse Forecast", doc.name, "status"), "running")
		frappe.set_user("Guest")
		try:
			with self.assertRaises(frappe.PermissionError):
				api.run_forecast(doc.name)
		finally:
			frappe.set_user("Administrator")
		background.run_forecast(doc.name)
		self.assertEqual(frappe.db.get_value("Synapse Forecast", doc.name, "status"), "completed")
		queue.purge(db.cursor(), 0, background.QUEUE)
