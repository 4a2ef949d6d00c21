"""Bench tier: Synapse Dashboards' data (cauldron.api.synapse.dashboard_data) from real points:
charts over their time range with the active forecast and the thresholds, number cards against
target, tables; last_viewed; who sees which dashboard (is_public) in the data, lists and REST."""

import json
import uuid
from datetime import datetime, timedelta, timezone

import frappe
from frappe.tests.utils import FrappeTestCase
from psycopg2.extras import execute_values

from cauldron import db
from cauldron.api import synapse as api
from cauldron.tests.factories import drop_user, make, resource, rest, user_with_roles

OWNER = "cauldron-dash-owner@example.com"
OTHER = "cauldron-dash-other@example.com"
MANAGER = "cauldron-dash-manager@example.com"
PATH = "/api/method/cauldron.api.synapse.dashboard_data"


def as_user(user, fn, *args, **kwargs):
	previous = frappe.session.user
	frappe.set_user(user)
	try:
		return fn(*args, **kwargs)
	finally:
		frappe.set_user(previous)


class TestSynapseDashboards(FrappeTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.tokens = {
			OWNER: user_with_roles(OWNER, "Synapse Analyst"),
			OTHER: user_with_roles(OTHER, "Synapse Analyst"),
			MANAGER: user_with_roles(MANAGER, "Synapse Analyst", "System Manager"),
		}
		frappe.db.commit()

	@classmethod
	def tearDownClass(cls):
		for email in (OWNER, OTHER, MANAGER):
			drop_user(email)
		frappe.db.commit()
		super().tearDownClass()

	def setUp(self):
		self.metric_name = f"test.orders.{uuid.uuid4().hex[:8]}"
		self.now = datetime.now(timezone.utc)
		# one point an hour for 40 days: value = the day's number (0 = 40 days ago) + hour / 100
		today = self.now.replace(hour=0, minute=0, second=0, microsecond=0)
		rows = []
		for day in range(41):
			for hour in range(24):
				moment = today - timedelta(days=40 - day) + timedelta(hours=hour, minutes=30)
				if moment < self.now:
					rows.append((moment, self.metric_name, day + hour / 100, "{}"))
		self.last = rows[-1][2]
		execute_values(
			db.cursor(), "INSERT INTO synapse.metrics (time, metric_name, value, dimensions) VALUES %s", rows
		)
		self.metric = make(
			"Synapse Analytics Metric",
			metric_name=f"Orders {uuid.uuid4().hex[:6]}",
			query_definition=json.dumps({"metric": self.metric_name, "aggregate": "avg"}),
			target_value=50.0,
			warning_threshold=30.0,
			critical_threshold=10.0,
			alert_direction="below",  # where the DocType has it; else read from the thresholds' order
		)
		self.created = []

	def tearDown(self):
		frappe.set_user("Administrator")
		frappe.db.rollback()
		db.cursor().execute("DELETE FROM synapse.metrics WHERE metric_name = %s", (self.metric_name,))
		for doctype, name in reversed(self.created):
			frappe.delete_doc(doctype, name, force=True, ignore_permissions=True, ignore_missing=True)
		frappe.delete_doc("Synapse Analytics Metric", self.metric.name, force=True, ignore_permissions=True)
		frappe.db.commit()

	def dashboard(self, owner=OWNER, is_public=0, components=None):
		components = components or [
			{
				"component_type": "chart",
				"title": "Orders",
				"metric": self.metric.name,
				"chart_type": "line",
				"time_range": "30d",
				"refresh_frequency": "5m",
			},
			{
				"component_type": "kpi",
				"title": "Now",
				"metric": self.metric.name,
				"time_range": "24h",
				"size": "small",
			},
			{
				"component_type": "table",
				"title": "Week",
				"metric": self.metric.name,
				"time_range": "7d",
				"refresh_frequency": "manual",
			},
			{"component_type": "text", "title": "Note", "position": json.dumps({"text": "<b>read me</b>"})},
			{"component_type": "map", "title": "Where"},
			{"component_type": "chart", "title": "Off", "metric": self.metric.name, "is_active": 0},
		]
		doc = as_user(
			owner,
			make,
			"Synapse Dashboard",
			dashboard_name=f"Board {uuid.uuid4().hex[:6]}",
			is_public=is_public,
			created_by=owner,
			components=components,
		)
		self.created.append(("Synapse Dashboard", doc.name))
		return doc

	def test_components_carry_their_series_thresholds_and_number(self):
		doc = self.dashboard()
		data = as_user(OWNER, api.dashboard_data, doc.name)
		by_title = {c["title"]: c for c in data["components"]}
		self.assertEqual(
			list(by_title), ["Orders", "Now", "Week", "Note", "Where"]
		)  # the inactive one is left out

		chart = by_title["Orders"]
		self.assertEqual(chart["series"]["interval"], "1 day")
		self.assertEqual(chart["refresh_seconds"], 300)
		points = chart["series"]["points"]
		self.assertEqual(len(points), 30)
		# whole days up to yesterday; a day's average: the day's number + 0.115 (hours 0..23 / 100)
		day_before = points[-1]
		days_ago = self.now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
		self.assertEqual(datetime.fromisoformat(day_before[0]), days_ago)
		self.assertAlmostEqual(day_before[1], 39 + 0.115, places=6)
		self.assertEqual(
			chart["metric"],
			{
				"name": self.metric.name,
				"metric_name": self.metric.metric_name,
				"unit": "USD",
				"is_percentage": 0,
				"is_currency": 0,
				"currency": None,
				"target": 50.0,
				"warning": 30.0,
				"critical": 10.0,
				"direction": "below",
			},
		)
		self.assertIsNone(chart["forecast"])

		kpi = by_title["Now"]
		self.assertEqual(kpi["series"]["interval"], "1 hour")
		self.assertAlmostEqual(kpi["value"], self.last, places=6)
		self.assertEqual(kpi["state"], "ok")  # 40 is above the warning threshold of 30
		self.assertEqual(kpi["columns"], 3)

		table = by_title["Week"]
		self.assertIsNone(table["refresh_seconds"])
		# 7 days by 6 hours, the current bucket's only point (hh:30) perhaps still to come
		self.assertIn(len(table["rows"]), (27, 28))
		self.assertGreater(table["rows"][0][0], table["rows"][1][0])  # newest first

		self.assertEqual(by_title["Note"]["text"], "<b>read me</b>")  # the page escapes it
		self.assertIn("not drawn", by_title["Where"]["error"])

	def set_thresholds(self, warning, critical, direction):
		values = {"warning_threshold": warning, "critical_threshold": critical}
		if frappe.get_meta("Synapse Analytics Metric").has_field("alert_direction"):
			values["alert_direction"] = direction
		frappe.db.set_value("Synapse Analytics Metric", self.metric.name, values)
		frappe.clear_document_cache("Synapse Analytics Metric", self.metric.name)

	def test_the_state_follows_the_thresholds_direction(self):
		self.set_thresholds(45, 60, "above")
		doc = self.dashboard(
			components=[
				{"component_type": "kpi", "title": "Now", "metric": self.metric.name, "time_range": "24h"}
			]
		)
		kpi = as_user(OWNER, api.dashboard_data, doc.name)["components"][0]
		self.assertEqual(kpi["metric"]["direction"], "above")
		self.assertEqual(kpi["state"], "ok")  # at most 40.23, below the warning threshold of 45
		self.set_thresholds(20, 30, "above")
		self.assertEqual(as_user(OWNER, api.dashboard_data, doc.name)["components"][0]["state"], "critical")
		self.set_thresholds(40.5, 39, "below")
		self.assertEqual(as_user(OWNER, api.dashboard_data, doc.name)["components"][0]["state"], "warning")

	def test_an_active_forecast_is_drawn_into_the_chart(self):
		tomorrow = self.now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
		points = [
			{
				"step": i + 1,
				"time": (tomorrow + timedelta(days=i)).isoformat(),
				"mean": 41.0 + i,
				"lo_80": 40.0 + i,
				"hi_80": 42.0 + i,
			}
			for i in range(3)
		]
		forecast = make(
			"Synapse Forecast",
			forecast_name="bench dashboard",
			metric=self.metric.name,
			forecast_model="theta",
			forecast_horizon=3,
			status="completed",
			forecast_data=json.dumps({"method": "Theta(STM)", "levels": [80], "points": points}),
			performance_metrics=json.dumps({"mape": 1.5, "mase": 0.4, "seasonal_naive": {"mase": 1.0}}),
		)
		self.created.append(("Synapse Forecast", forecast.name))
		frappe.db.set_value("Synapse Forecast", forecast.name, {"is_active": 1, "status": "completed"})
		doc = self.dashboard(
			components=[
				{
					"component_type": "chart",
					"title": "Orders",
					"metric": self.metric.name,
					"time_range": "30d",
				}
			]
		)
		chart = as_user(OWNER, api.dashboard_data, doc.name)["components"][0]
		self.assertEqual(chart["forecast"]["name"], forecast.name)
		self.assertEqual(chart["forecast"]["method"], "Theta(STM)")
		self.assertEqual([p["mean"] for p in chart["forecast"]["points"]], [41.0, 42.0, 43.0])
		self.assertEqual(chart["forecast"]["performance"]["mase"], 0.4)

	def test_last_viewed_is_set_when_the_dashboard_is_opened(self):
		doc = self.dashboard()
		self.assertIsNone(frappe.db.get_value("Synapse Dashboard", doc.name, "last_viewed"))
		modified = frappe.db.get_value("Synapse Dashboard", doc.name, "modified")
		as_user(OWNER, api.dashboard_data, doc.name)
		viewed = frappe.db.get_value("Synapse Dashboard", doc.name, "last_viewed")
		self.assertIsNotNone(viewed)
		self.assertEqual(frappe.db.get_value("Synapse Dashboard", doc.name, "modified"), modified)
		# refreshing one component is no new view
		component = doc.components[0].name
		data = as_user(OWNER, api.dashboard_data, doc.name, component)
		self.assertEqual([c["name"] for c in data["components"]], [component])

	def test_private_dashboards_are_their_owners_public_ones_everyones_to_read(self):
		private = self.dashboard()
		public = self.dashboard(is_public=1)
		other_list = as_user(
			OTHER,
			frappe.get_list,
			"Synapse Dashboard",
			filters={"name": ("in", [private.name, public.name])},
			pluck="name",
		)
		self.assertEqual(other_list, [public.name])
		manager_list = as_user(
			MANAGER,
			frappe.get_list,
			"Synapse Dashboard",
			filters={"name": ("in", [private.name, public.name])},
			pluck="name",
		)
		self.assertEqual(sorted(manager_list), sorted([private.name, public.name]))

		with self.assertRaises(frappe.PermissionError):
			as_user(OTHER, api.dashboard_data, private.name)
		self.assertEqual(as_user(OTHER, api.dashboard_data, public.name)["name"], public.name)
		self.assertEqual(as_user(MANAGER, api.dashboard_data, private.name)["name"], private.name)
		# reading a public dashboard is not changing it
		doc = as_user(OTHER, frappe.get_doc, "Synapse Dashboard", public.name)
		doc.description = "mine now"
		with self.assertRaises(frappe.PermissionError):
			as_user(OTHER, doc.save)

	def test_over_http_another_users_private_dashboard_is_a_403_like_a_missing_one(self):
		private = self.dashboard()
		frappe.db.commit()
		token = self.tokens[OTHER]
		refused = rest("post", PATH, token, {"dashboard": private.name})
		missing = rest("post", PATH, token, {"dashboard": str(uuid.uuid4())})
		self.assertEqual(refused.status_code, 403, refused.json)
		self.assertEqual(missing.status_code, 403, missing.json)
		self.assertEqual(
			rest("post", PATH, self.tokens[MANAGER], {"dashboard": str(uuid.uuid4())}).status_code, 404
		)
		self.assertEqual(rest("get", resource("Synapse Dashboard", private.name), token).status_code, 403)
		mine = rest("post", PATH, self.tokens[OWNER], {"dashboard": private.name})
		self.assertEqual(mine.status_code, 200, mine.json)
		self.assertEqual(len(mine.json["message"]["components"]), 5)
		self.assertEqual(rest("post", PATH, None, {"dashboard": private.name}).status_code, 403)
