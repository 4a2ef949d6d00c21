"""Bench tier: cauldron.api.synapse.series and top over real HTTP: answers, gap filling, the rollup,
who may read, and bad input as 4xx with a message."""

import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

import frappe
from frappe.tests.utils import FrappeTestCase

from cauldron import db
from cauldron.pg import timeseries
from cauldron.tests.factories import drop_user, rest, user_with_roles

ANALYST = "cauldron-synapse-series-analyst@example.com"
PLAIN = "cauldron-synapse-series-plain@example.com"
BASE = "/api/method/cauldron.api.synapse."
DAY = datetime(2026, 3, 2, tzinfo=timezone.utc)


def get(method, token, **arguments):
	return rest("get", BASE + method + "?" + urlencode(arguments), token)


class TestSynapseSeries(FrappeTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.analyst = user_with_roles(ANALYST, "Synapse Analyst")
		cls.plain = user_with_roles(PLAIN)
		frappe.db.commit()

	@classmethod
	def tearDownClass(cls):
		drop_user(ANALYST)
		drop_user(PLAIN)
		frappe.db.commit()
		super().tearDownClass()

	def setUp(self):
		self.metric = f"m{uuid.uuid4().hex[:8]}.requests"
		# 08:00-10:00: a point every 10 minutes, host a = 1 and host b = 3; nothing 10:00-12:00
		points = [
			(DAY + timedelta(hours=8, minutes=10 * i), self.metric, value, {"host": host})
			for i in range(12)
			for host, value in (("a", 1.0), ("b", 3.0))
		]
		timeseries.write_metrics(db.cursor(), points)
		frappe.db.commit()

	def tearDown(self):
		cur = db.cursor()
		cur.execute("DELETE FROM synapse.metrics WHERE metric_name = %s", (self.metric,))
		cur.execute("DELETE FROM synapse.metrics_hourly WHERE metric_name = %s", (self.metric,))
		frappe.db.commit()

	def series(self, token=None, **arguments):
		arguments = {
			"metric": self.metric,
			"start": DAY.isoformat(),
			"end": (DAY + timedelta(hours=12)).isoformat(),
			**arguments,
		}
		return get("series", token or self.analyst, **arguments)

	def test_hourly_series_with_gaps_and_a_filter(self):
		response = self.series(
			interval="1 hour", aggregate="sum", start=(DAY + timedelta(hours=7)).isoformat()
		)
		self.assertEqual(response.status_code, 200, response.data)
		body = response.json["message"]
		self.assertEqual(body["source"], "rollup")
		self.assertEqual(
			body["points"],
			[
				[(DAY + timedelta(hours=h)).isoformat(), value]
				for h, value in ((7, None), (8, 24.0), (9, 24.0), (10, None), (11, None))
			],
		)
		response = self.series(interval="30m", aggregate="avg", dimensions='{"host": "b"}', fill="zero")
		points = dict(response.json["message"]["points"])
		self.assertEqual(response.json["message"]["source"], "raw")
		self.assertEqual(len(points), 24)
		self.assertEqual(points[(DAY + timedelta(hours=8, minutes=30)).isoformat()], 3.0)
		self.assertEqual(points[(DAY + timedelta(hours=11)).isoformat()], 0.0)

	def test_the_same_answer_after_the_hourly_rollup(self):
		before = self.series(interval="1 day", aggregate="avg").json["message"]["points"]
		frappe.db.commit()
		timeseries.refresh_rollups(db.cursor())
		frappe.db.commit()
		cur = db.cursor()
		cur.execute("SELECT count(*) FROM synapse.metrics_hourly WHERE metric_name = %s", (self.metric,))
		self.assertEqual(cur.fetchone()[0], 4)  # two hours, two hosts
		self.assertEqual(self.series(interval="1 day", aggregate="avg").json["message"]["points"], before)
		self.assertEqual(before, [[DAY.isoformat(), 2.0]])

	def test_top(self):
		response = get(
			"top",
			self.analyst,
			metric=self.metric,
			dimension="host",
			start=DAY.isoformat(),
			end=(DAY + timedelta(days=1)).isoformat(),
			limit=1,
		)
		self.assertEqual(response.status_code, 200, response.data)
		self.assertEqual(response.json["message"], [{"value": "b", "aggregate": 36.0, "count": 12}])

	def test_who_may_read_and_bad_input(self):
		self.assertEqual(self.series(self.plain).status_code, 403)
		self.assertEqual(get("series", None, metric=self.metric).status_code, 403)
		response = self.series(metric="no.such.metric")
		self.assertEqual(response.status_code, 404, response.data)
		self.assertIn("unknown metric", response.data.decode())
		for arguments, message in (
			({"interval": "1 second"}, "is not a number and a unit"),
			({"interval": "2 months"}, "longest interval"),
			({"aggregate": "p99"}, "aggregate must be one of"),
			({"start": "noon"}, "is not an ISO 8601 time"),
			({"dimensions": "{host"}, "dimensions"),
			({"interval": "1 minute", "start": (DAY - timedelta(days=30)).isoformat()}, "buckets"),
		):
			response = self.series(**arguments)
			self.assertEqual(response.status_code, 417, (arguments, response.data))
			self.assertIn(message, response.data.decode(), arguments)
		response = get("top", self.analyst, metric=self.metric, dimension="host", limit=0)
		self.assertEqual(response.status_code, 417, response.data)
