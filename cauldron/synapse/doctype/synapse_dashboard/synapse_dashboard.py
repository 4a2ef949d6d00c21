"""Synapse Dashboard: its components' data for the Desk page synapse-dashboard-view, and who sees it.

Visibility: a dashboard is its owner's (the user who made it, or the one named in Created By);
`is_public` lets everyone with read access to Synapse Dashboards (Synapse Analyst) read it too.
Users without System Manager see only their own and public ones (list, count, form, REST, the page)
and change only their own.
"""

from datetime import datetime, timedelta, timezone

import frappe
from frappe import _

from cauldron import db
from cauldron.model import UUIDNamedDocument
from cauldron.pg import CauldronDBError
from cauldron.synapse import background, metrics, query

SEE_ALL_ROLES = ("System Manager",)
READ_TYPES = ("read", "print", "email", "export", "report")

# time_range: how far back, and the bucket it is drawn with
RANGES = {
	"1h": (timedelta(hours=1), "1 minute"),
	"24h": (timedelta(days=1), "1 hour"),
	"7d": (timedelta(days=7), "6 hours"),
	"30d": (timedelta(days=30), "1 day"),
	"90d": (timedelta(days=90), "1 day"),
	"1y": (timedelta(days=365), "1 week"),
	"all": (None, "1 month"),
}
ALL_AT_MOST = timedelta(days=3650)
REFRESH_SECONDS = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "6h": 21600, "1d": 86400, "manual": None}
SIZES = {"small": 3, "medium": 6, "large": 9, "full": 12}
TABLE_ROWS = 50


class SynapseDashboard(UUIDNamedDocument):
	pass


def sees_all(user: str | None = None) -> bool:
	user = user or frappe.session.user
	return user == "Administrator" or not set(SEE_ALL_ROLES).isdisjoint(frappe.get_roles(user))


def owns(doc, user: str) -> bool:
	return user in (doc.get("owner"), doc.get("created_by"))


def has_permission(doc, ptype=None, user=None, debug=False):
	"""hooks.has_permission: False hides another user's private dashboard (and any change to a
	dashboard that is not one's own); None leaves the decision to the DocPerms."""
	user = user or frappe.session.user
	if sees_all(user) or owns(doc, user):
		return None
	if doc.get("is_public") and (ptype or "read") in READ_TYPES:
		return None
	return False


def query_conditions(user=None, doctype=None):
	"""hooks.permission_query_conditions: the same rule for lists and counts."""
	user = user or frappe.session.user
	if sees_all(user):
		return ""
	who = frappe.db.escape(user)
	return (
		f"(`tabSynapse Dashboard`.`is_public` = 1 or `tabSynapse Dashboard`.`owner` = {who}"
		f" or `tabSynapse Dashboard`.`created_by` = {who})"
	)


def dashboard_data(name: str, component: str | None = None, now: datetime | None = None) -> dict:
	"""Every active component's data (or the one named `component`), for a user who may read the
	dashboard; its last_viewed is set to now."""
	doc = frappe.get_doc("Synapse Dashboard", name)
	doc.check_permission("read")
	now = now or datetime.now(timezone.utc)
	rows = [row for row in doc.components if row.is_active]
	if component:
		rows = [row for row in rows if row.name == component]
		if not rows:
			frappe.throw(
				_("Dashboard {0} has no active component {1}").format(name, component),
				frappe.DoesNotExistError,
			)
	rows.sort(key=_order)
	if not component:
		# A timestamp, not a change: no audit row, no modified bump.
		frappe.db.set_value(
			"Synapse Dashboard", name, "last_viewed", frappe.utils.now_datetime(), update_modified=False
		)
	return {
		"name": doc.name,
		"dashboard_name": doc.dashboard_name,
		"description": doc.description,
		"is_public": doc.is_public,
		"can_edit": bool(frappe.has_permission("Synapse Dashboard", "write", doc)),
		"generated_at": now.isoformat(),
		"components": [component_data(row, now) for row in rows],
	}


def _order(row):
	position = row.position if isinstance(row.position, dict) else {}
	order = position.get("order")
	return (order if isinstance(order, int | float) and not isinstance(order, bool) else row.idx, row.idx)


def component_data(row, now: datetime) -> dict:
	result = {
		"name": row.name,
		"component_type": row.component_type,
		"title": row.title,
		"chart_type": row.chart_type or "line",
		"time_range": row.time_range or "30d",
		"refresh_frequency": row.refresh_frequency or "1h",
		"refresh_seconds": REFRESH_SECONDS.get(row.refresh_frequency or "1h"),
		"columns": SIZES.get(row.size or "medium", 6),
		"error": None,
	}
	if row.component_type == "text":
		position = row.position if isinstance(row.position, dict) else {}
		result["text"] = str(position.get("text") or "")
		return result
	if row.component_type == "map":
		result["error"] = _("Map components are not drawn: metrics carry no places.")
		return result
	if not row.metric:
		result["error"] = _("No metric chosen for this component.")
		return result
	if not frappe.has_permission("Synapse Analytics Metric", "read", row.metric):
		result["error"] = _("You may not read metric {0}.").format(row.metric)
		return result
	metric = frappe.get_cached_doc("Synapse Analytics Metric", row.metric)
	result["metric"] = metric_summary(metric)
	try:
		# a chart draws whole buckets (its forecast starts at the current one); cards and tables
		# show the current bucket too
		series = metric_series(metric, result["time_range"], now, whole=row.component_type == "chart")
	except CauldronDBError as e:
		result["error"] = (
			_("No data yet for {0}: {1}").format(metric.metric_name, e)
			if isinstance(e, query.UnknownMetric)
			else str(e)
		)
		return result
	result["series"] = series
	values = [value for _time, value in series["points"] if value is not None]
	result["value"] = values[-1] if values else None
	result["previous"] = values[-2] if len(values) > 1 else None
	result["state"] = state(result["value"], result["metric"])
	if row.component_type == "chart":
		result["forecast"] = active_forecast(metric.name, series, now)
	elif row.component_type == "table":
		result["rows"] = [point for point in reversed(series["points"]) if point[1] is not None][:TABLE_ROWS]
	return result


def metric_summary(metric) -> dict:
	return {
		"name": metric.name,
		"metric_name": metric.metric_name,
		"unit": metric.unit_of_measure,
		"is_percentage": metric.is_percentage,
		"is_currency": metric.is_currency,
		"currency": metric.currency,
		"target": metric.target_value,
		"warning": metric.warning_threshold,
		"critical": metric.critical_threshold,
		"direction": threshold_direction(metric),
	}


def threshold_direction(metric) -> str:
	""" "above" (values above the thresholds are bad) or "below": the metric's Alert Direction, or
	for a metric without one, how its thresholds are ordered (a critical below the warning)."""
	direction = (metric.get("alert_direction") or "").lower()
	if direction in metrics.DIRECTIONS:
		return direction
	warning, critical = metric.warning_threshold, metric.critical_threshold
	if warning is not None and critical is not None and critical < warning:
		return "below"
	return "above"


def state(value, metric: dict) -> str | None:
	"""ok, warning or critical for `value`, as the metric's alerts judge it (metrics.Thresholds)."""
	if value is None:
		return None
	thresholds = metrics.Thresholds(
		metric["target"], metric["warning"], metric["critical"], metric["direction"]
	)
	return thresholds.state(value)


def metric_series(metric, time_range: str, now: datetime, whole: bool = False) -> dict:
	"""The metric's series over `time_range` up to now, by the range's bucket (`whole`: up to the
	start of the current bucket)."""
	if time_range not in RANGES:
		raise query.QueryError(f"time range {time_range!r} is not one of {', '.join(RANGES)}")
	span, interval = RANGES[time_range]
	source = background.analytics_source(metric)
	step = query.parse_interval(interval)
	end = step.bucket(now) if whole else step.next(step.bucket(now))
	if span is None:
		first = first_point(source["metric"])
		if first is None:
			raise query.UnknownMetric(f"unknown metric {source['metric']!r}: no point of it is stored")
		start = max(first, end - ALL_AT_MOST)
	else:
		start = end - span
	found = query.series(
		db.cursor(), source["metric"], source["dimensions"], start, end, interval, source["aggregate"]
	)
	data = found.as_dict()
	data["dimensions"] = source["dimensions"]
	return data


def first_point(metric_name: str) -> datetime | None:
	cur = db.cursor()
	cur.execute(
		"SELECT least((SELECT min(time) FROM synapse.metrics WHERE metric_name = %s),"
		" (SELECT min(bucket) FROM synapse.metrics_hourly WHERE metric_name = %s))",
		(metric_name, metric_name),
	)
	return cur.fetchone()[0]


def active_forecast(metric: str, series: dict, now: datetime) -> dict | None:
	"""The newest completed active forecast of the metric, its points from the chart's start to one
	chart span past its end."""
	rows = frappe.get_all(
		"Synapse Forecast",
		filters={"metric": metric, "is_active": 1, "status": "completed"},
		fields=["name", "forecast_name", "forecast_model", "forecast_data", "performance_metrics"],
		order_by="forecast_date desc",
		limit=1,
	)
	if not rows:
		return None
	row = rows[0]
	data = background.json_value(row.forecast_data) or {}
	points = data.get("points") or []
	start = datetime.fromisoformat(series["start"])
	end = datetime.fromisoformat(series["end"])
	horizon_end = end + (end - start)
	shown = []
	for point in points:
		try:
			moment = datetime.fromisoformat(point["time"])
		except (KeyError, TypeError, ValueError):
			continue
		if start <= moment < horizon_end:
			shown.append(point)
	return {
		"name": row.name,
		"forecast_name": row.forecast_name,
		"model": row.forecast_model,
		"method": data.get("method"),
		"levels": data.get("levels") or [],
		"interval": data.get("interval"),
		"points": shown,
		"performance": background.json_value(row.performance_metrics),
	}
