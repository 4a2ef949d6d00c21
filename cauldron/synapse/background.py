"""Synapse's background work in the site: forecast fits and simulation runs (Frappe glue; the
engines are cauldron.synapse.forecast and cauldron.synapse.simulation).

A run is an item of the durable queue (command.work_queue, queue `synapse.runs`, key
`forecast:<name>` or `simulation:<name>`) enqueued in the transaction that asks for it (a save,
a button, the schedule), and an RQ job (frappe.enqueue) woken after that commit works the queue;
`work` also runs every minute, so a run whose RQ job was lost (no Redis, a dead worker) still
happens. What a run finds wrong with its input (a series too short, a formula dividing by zero)
is written on the record (status `failed`, its Error field) and the item is done; anything else
fails the item, which is retried with backoff and parked after 5 attempts.

Forecasts: an active forecast is refitted by the hourly schedule once a new interval of its series
has completed (at least every interval, at most hourly), and when it is saved with a change to
what it fits. Its series is its metric's (`analytics_source`) from cauldron.synapse.query.series,
the last `history` intervals before the current, incomplete one.
"""

import json
import time
from datetime import datetime, timedelta, timezone

import frappe
from frappe import _
from frappe.utils import now_datetime

from cauldron import db
from cauldron.pg import CauldronDBError, queue
from cauldron.synapse import forecast, metrics, query, simulation

QUEUE = "synapse.runs"
WORKER = "cauldron.synapse.background.work"
WORKER_JOB_ID = "cauldron-synapse-runs"
WORKER_SECONDS = 50
LEASE_SECONDS = 600
MAX_HISTORY = 5000


# Which series is an analytics metric's ---------------------------------------------------------


def analytics_source(metric) -> dict:
	"""{"metric", "aggregate", "dimensions"} of a Synapse Analytics Metric (a document or its name):
	a structured `query_definition` ({"metric", "aggregate", "window", "dimensions"}, as
	cauldron.synapse.metrics reads it) names a metric of synapse.metrics directly; any other (SQL)
	metric's series is its evaluated values (metrics.series_name: analytics.<metric's name>)."""
	if isinstance(metric, str):
		metric = frappe.get_cached_doc("Synapse Analytics Metric", metric)
	try:
		definition = metrics.parse_definition(metric.get("query_definition"))
	except metrics.MetricError:
		definition = None
	if isinstance(definition, metrics.Structured):
		return {
			"metric": definition.metric,
			"aggregate": definition.aggregate,
			"dimensions": definition.dimensions,
		}
	return {"metric": metrics.series_name(metric.name), "aggregate": "avg", "dimensions": None}


# Forecast parameters ---------------------------------------------------------------------------

PARAMETER_KEYS = ("interval", "season_length", "history", "levels")


def default_season(step: query.Interval) -> int:
	"""Intervals per natural cycle: minutes in an hour, hours in a day, days in a week, weeks and
	months in a year."""
	if step.monthly:
		return 12
	for cycle in (timedelta(hours=1), timedelta(days=1), timedelta(weeks=1), timedelta(weeks=52)):
		if step.width < cycle and cycle % step.width == timedelta(0):
			return cycle // step.width
	return 1


def forecast_settings(parameters) -> dict:
	"""The forecast's parameters with their defaults, checked (ForecastError / QueryError)."""
	if parameters in (None, ""):
		parameters = {}
	if isinstance(parameters, str):
		parameters = json.loads(parameters)
	if not isinstance(parameters, dict):
		raise forecast.ForecastError("Forecast Parameters must be an object")
	unknown = set(parameters) - set(PARAMETER_KEYS)
	if unknown:
		raise forecast.ForecastError(
			f"Forecast Parameters take {', '.join(PARAMETER_KEYS)}, not {', '.join(sorted(unknown))}"
		)
	step = query.parse_interval(parameters.get("interval") or "1 day")
	season = parameters.get("season_length") or default_season(step)
	season = forecast._whole(season, "season_length", 1, forecast.MAX_SEASON)
	history = parameters.get("history") or min(MAX_HISTORY, max(60, 20 * season))
	history = forecast._whole(history, "history", 2, MAX_HISTORY)
	levels = parameters.get("levels") or list(forecast.DEFAULT_LEVELS)
	if not isinstance(levels, list) or not 1 <= len(levels) <= 5:
		raise forecast.ForecastError("levels must be a list of 1 to 5 percentages, such as [80, 95]")
	levels = [forecast._whole(level, "prediction interval level", 1, 99) for level in levels]
	return {"interval": step.text, "season_length": season, "history": history, "levels": levels}


def fit_window(step: query.Interval, history: int, now: datetime) -> tuple[datetime, datetime]:
	"""[start, end): the `history` whole intervals before the one holding `now`."""
	end = step.bucket(now)
	if not step.monthly:
		return end - history * step.width, end
	start = end
	for _month in range(history):
		start = (start - timedelta(days=1)).replace(day=1)
	return start, end


# Running ---------------------------------------------------------------------------------------


def request_run(kind: str, name: str, payload: dict | None = None) -> None:
	"""Queue a run of `kind` ("forecast" or "simulation") for document `name` in the current
	transaction, and wake the worker after it commits."""
	queue.enqueue(db.cursor(), QUEUE, f"{kind}:{name}", payload or {})
	wake_worker()


def wake_worker() -> None:
	"""Wake the forecast and simulation worker once the current transaction commits."""
	db.wake_after_commit(WORKER, WORKER_JOB_ID, queue="long", timeout=1800)


def work(seconds: float = WORKER_SECONDS) -> int:
	"""Run queued forecasts and simulations until none is due or `seconds` have passed; returns how
	many ran."""
	deadline = time.monotonic() + seconds
	worker = f"{frappe.local.site}:{frappe.generate_hash(length=8)}"
	done = 0
	while time.monotonic() < deadline:
		frappe.db.commit()
		items = queue.claim(db.cursor(), QUEUE, worker, limit=1, lease=LEASE_SECONDS)
		frappe.db.commit()
		if not items:
			break
		item = items[0]
		kind, _sep, name = item.key.partition(":")
		try:
			if kind == "forecast":
				run_forecast(name)
			elif kind == "simulation":
				run_simulation(name, (item.payload or {}).get("seed"))
			frappe.db.commit()
			queue.complete(db.cursor(), [item.id], worker)
			frappe.db.commit()
		except Exception as e:
			frappe.db.rollback()
			queue.fail(db.cursor(), item.id, worker, f"{type(e).__name__}: {e}")
			frappe.db.commit()
			frappe.log_error(title=f"Synapse run {item.key} failed")
		done += 1
	return done


def _record(doctype: str, name: str, values: dict) -> None:
	"""One update of the record (one audit row), without its form's validation."""
	doc = frappe.get_doc(doctype, name)
	doc.flags.from_synapse_run = True
	doc.db_set(values, notify=True)


def run_forecast(name: str, now: datetime | None = None) -> dict | None:
	"""Fit forecast `name` on its metric's series now; the result (or the error) on the record."""
	if not frappe.db.exists("Synapse Forecast", name):
		return None
	doc = frappe.get_doc("Synapse Forecast", name)
	now = now or datetime.now(timezone.utc)
	try:
		settings = forecast_settings(doc.forecast_parameters)
		source = analytics_source(doc.metric)
		step = query.parse_interval(settings["interval"])
		start, end = fit_window(step, settings["history"], now)
		found = query.series(
			db.cursor(),
			source["metric"],
			source["dimensions"],
			start,
			end,
			step.text,
			source["aggregate"],
		)
		result = forecast.fit(
			found.points,
			model=doc.forecast_model,
			horizon=doc.forecast_horizon,
			season_length=settings["season_length"],
			levels=settings["levels"],
			step=None if step.monthly else step.width,
		)
	except (CauldronDBError, ValueError) as e:
		# A ForecastError, a QueryError (no point of the metric, a bad interval), bad JSON
		message = str(e)
		if isinstance(e, query.UnknownMetric):
			message = _("{0} (the series of metric {1})").format(message, doc.metric)
		_record(
			"Synapse Forecast",
			name,
			{
				"status": "failed",
				"last_error": message,
				"forecast_date": now_datetime().replace(microsecond=0),
			},
		)
		return None
	data = result.as_dict()
	data.update(
		{
			"source_metric": source["metric"],
			"aggregate": source["aggregate"],
			"dimensions": source["dimensions"],
			"interval": step.text,
			"fitted_at": now.isoformat(),
		}
	)
	_record(
		"Synapse Forecast",
		name,
		{
			"status": "completed",
			"last_error": None,
			"forecast_date": now_datetime().replace(microsecond=0),
			"forecast_data": json.dumps(data),
			"performance_metrics": json.dumps(result.performance),
		},
	)
	return data


def refresh_forecasts() -> int:
	"""Hourly: queue every active forecast whose series has completed a new interval since its
	last fit (or that never completed). Returns how many were queued."""
	now = datetime.now(timezone.utc)
	queued = 0
	for row in frappe.get_all(
		"Synapse Forecast",
		filters={"is_active": 1},
		fields=["name", "status", "forecast_data", "forecast_parameters"],
	):
		try:
			interval = forecast_settings(row.forecast_parameters)["interval"]
		except (CauldronDBError, ValueError):
			interval = None
		if interval and row.status == "completed" and _fresh(row.forecast_data, interval, now):
			continue
		request_run("forecast", row.name)
		queued += 1
	frappe.db.commit()
	return queued


def _fresh(forecast_data, interval: str, now: datetime) -> bool:
	"""Whether the forecast was fitted in the interval `now` is in (nothing new to fit)."""
	try:
		data = json.loads(forecast_data) if isinstance(forecast_data, str) else forecast_data
		fitted = datetime.fromisoformat(data["fitted_at"])
	except (TypeError, ValueError, KeyError):
		return False
	step = query.parse_interval(interval)
	return step.bucket(fitted) == step.bucket(now)


def run_simulation(name: str, seed: int | None = None) -> dict | None:
	"""Run simulation `name`: its results (or the error) on the record."""
	if not frappe.db.exists("Synapse Business Simulation", name):
		return None
	doc = frappe.get_doc("Synapse Business Simulation", name)
	try:
		model = simulation.parse_model(
			json_value(doc.model_definition), json_value(doc.parameters), json_value(doc.scenarios)
		)
		results = simulation.run(model, seed)
	except (CauldronDBError, ValueError) as e:
		_record(
			"Synapse Business Simulation",
			name,
			{"status": "failed", "last_error": str(e), "last_run_at": now_datetime().replace(microsecond=0)},
		)
		return None
	_record(
		"Synapse Business Simulation",
		name,
		{
			"status": "completed",
			"last_error": None,
			"last_run_at": now_datetime().replace(microsecond=0),
			"results": json.dumps(results),
		},
	)
	return results


def json_value(value):
	if isinstance(value, str):
		return json.loads(value) if value.strip() else None
	return value
