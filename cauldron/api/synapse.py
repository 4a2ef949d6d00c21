"""Synapse endpoints (/api/method/cauldron.api.synapse.<name>).

`write` takes metrics as InfluxDB line protocol or a JSON batch (cauldron.synapse.ingest says what
each becomes in synapse.metrics, and the limits per request) and writes them in the request's
transaction with one COPY: a batch with a bad line writes nothing and answers 417 with each bad
line's number and why.

Telegraf's HTTP output posts line protocol as the raw body (text/plain), which Frappe does not put
into the request's parameters: `data` then comes from the body itself, and `precision` from the
query string (`...synapse.write?precision=s`). A JSON list posted as application/json arrives as
`data`; so does `{"data": [...], "precision": "s"}`.

Who may write: the roles in WRITER_ROLES, through Frappe's API keys (`Authorization: token
key:secret`) or a session; every other user, Guest included, is refused (403) before the body is
read. Synapse Writer is the role of agents and collectors: it may write metrics and nothing else
(no desk access, no DocType); give a Telegraf's API user that role alone.

`series` and `top` read metrics (cauldron.synapse.query) for whoever may read Synapse Metric
(Synapse Analyst, System Manager).
"""

from datetime import datetime, timedelta

import frappe
from frappe import _
from frappe.utils import get_system_timezone, now_datetime

from cauldron import db, params
from cauldron.pg import values
from cauldron.synapse import ingest, query

WRITER_ROLES = ("Synapse Writer", "Synapse Analyst", "System Manager")


@frappe.whitelist(methods=["POST"])
@params.checked()
def write(data=None, precision: str = "ns") -> int:
	"""Write the points of `data` (line protocol text or a JSON list of points; the request body
	when absent); returns how many points were written."""
	if set(WRITER_ROLES).isdisjoint(frappe.get_roles()):
		raise frappe.PermissionError(f"Writing metrics needs one of the roles {', '.join(WRITER_ROLES)}")
	if data is None:
		data = frappe.request.get_data() if frappe.request else b""
	with params.refused():
		return ingest.write(db.cursor(), data, precision or "ns")


def _moment(value, what: str, default: datetime) -> datetime:
	"""ISO 8601 text (or a datetime); without a zone, the site's time zone, as Frappe's own times."""
	if value in (None, ""):
		return default
	if isinstance(value, str):
		try:
			value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
		except ValueError:
			frappe.throw(
				_("{0} {1} is not an ISO 8601 time").format(what, frappe.bold(values.shown(value))),
				params.InvalidParameter,
				title=_("Invalid request"),
			)
	if not isinstance(value, datetime):
		frappe.throw(_("{0} must be an ISO 8601 time").format(what), params.InvalidParameter)
	if value.tzinfo is None:
		from zoneinfo import ZoneInfo

		value = value.replace(tzinfo=ZoneInfo(get_system_timezone()))
	return value


def _range(start, end, default_span: timedelta) -> tuple[datetime, datetime]:
	from zoneinfo import ZoneInfo

	now = now_datetime().replace(tzinfo=ZoneInfo(get_system_timezone()))
	end = _moment(end, "end", now)
	return _moment(start, "start", end - default_span), end


def _read(method):
	"""Run a query for a reader of Synapse Metric: an unknown metric is a 404, bad input a 417."""
	frappe.has_permission("Synapse Metric", "read", throw=True)
	with params.refused():
		try:
			return method(db.cursor())
		except query.UnknownMetric as e:
			frappe.throw(str(e), frappe.DoesNotExistError, title=_("Unknown metric"))


@frappe.whitelist(methods=["GET", "POST"])
@params.checked(json=("dimensions",))
def series(
	metric: str,
	dimensions=None,
	start: str | None = None,
	end: str | None = None,
	interval: str = "1 hour",
	aggregate: str = "avg",
	fill: str = "null",
) -> dict:
	"""`metric` aggregated per `interval` ("1 minute" to "1 month") over [start, end) (ISO 8601;
	default the last 24 hours), points matching `dimensions` ({"host": "a"}, {"host": ["a", "b"]})
	only, every bucket present: {"metric", "aggregate", "interval", "start", "end", "source",
	"points": [[bucket, value or null], ...]}. See cauldron.synapse.query."""
	start, end = _range(start, end, timedelta(days=1))
	return _read(
		lambda cur: query.series(
			cur, metric, dimensions, start, end, interval or "1 hour", aggregate or "avg", fill or "null"
		).as_dict()
	)


@frappe.whitelist(methods=["GET", "POST"])
@params.checked(json=("dimensions",))
def top(
	metric: str,
	dimension: str,
	start: str | None = None,
	end: str | None = None,
	limit: int = 10,
	aggregate: str = "sum",
	dimensions=None,
) -> list[dict]:
	"""The `limit` values of `dimension` with the highest `aggregate` of `metric` over [start, end)
	(default the last 24 hours): [{"value", "aggregate", "count"}, ...]."""
	limit = params.whole_number(limit, "limit", 1, query.MAX_TOP)
	start, end = _range(start, end, timedelta(days=1))
	return _read(
		lambda cur: [
			{"value": row.value, "aggregate": row.aggregate, "count": row.count}
			for row in query.top(cur, metric, dimension, start, end, limit, aggregate or "sum", dimensions)
		]
	)


# Forecasts, simulations and dashboards (cauldron.synapse.background runs the first two; the
# dashboard's data is cauldron.synapse.doctype.synapse_dashboard.synapse_dashboard's).


@frappe.whitelist(methods=["POST"])
@params.checked(names=("forecast",))
def run_forecast(forecast: str) -> dict:
	"""Fit forecast `forecast` again in the background (the form's Refresh button)."""
	from cauldron.synapse import background

	doc = frappe.get_doc("Synapse Forecast", forecast)
	doc.check_permission("write")
	doc.db_set({"status": "running", "last_error": None}, notify=True)
	background.request_run("forecast", doc.name)
	return {"status": "running"}


@frappe.whitelist(methods=["POST"])
@params.checked(names=("simulation",))
def run_simulation(simulation: str, seed=None) -> dict:
	"""Run simulation `simulation` in the background, with `seed` (a whole number; else the
	model's seed, else a new one, recorded in its results) so a run can be repeated."""
	from cauldron.synapse import background

	if seed not in (None, ""):
		seed = params.whole_number(seed, "seed", 0, 2**63 - 1)
	else:
		seed = None
	doc = frappe.get_doc("Synapse Business Simulation", simulation)
	doc.check_permission("write")
	doc.db_set({"status": "running", "last_error": None}, notify=True)
	background.request_run("simulation", doc.name, {"seed": seed})
	return {"status": "running"}


@frappe.whitelist(methods=["POST"])
@params.checked(names=("dashboard", "component"))
def dashboard_data(dashboard: str, component: str | None = None) -> dict:
	"""The data of dashboard `dashboard`'s active components (or of one), for whoever may read it
	(its owner, anyone with Synapse Analyst when it is public, System Manager); a dashboard one may
	not read answers 403 whether or not it exists (404 only to those who may read every one)."""
	from cauldron.synapse.doctype.synapse_dashboard import synapse_dashboard as board

	doc = frappe.db.exists("Synapse Dashboard", dashboard) and frappe.get_doc("Synapse Dashboard", dashboard)
	if not doc or not frappe.has_permission("Synapse Dashboard", "read", doc):
		if not doc and board.sees_all() and frappe.has_permission("Synapse Dashboard", "read"):
			frappe.throw(_("Synapse Dashboard {0} not found").format(dashboard), frappe.DoesNotExistError)
		frappe.throw(
			_("No Synapse Dashboard {0} that you may read").format(dashboard),
			frappe.PermissionError,
			title=_("Not permitted"),
		)
	return board.dashboard_data(dashboard, component or None)


@frappe.whitelist(methods=["POST"])
@params.checked(names=("metric",))
def evaluate_metric(metric: str) -> dict:
	"""Evaluate one Synapse Analytics Metric now, as the schedule does (its point, its state, an
	alert and notifications on a change); for whoever may write the metric."""
	from cauldron.synapse import jobs

	if not frappe.db.exists("Synapse Analytics Metric", metric) or not frappe.has_permission(
		"Synapse Analytics Metric", "write", doc=metric
	):
		frappe.throw(_("You may not evaluate metric {0}").format(metric), frappe.PermissionError)
	row = frappe.get_all("Synapse Analytics Metric", filters={"name": metric}, fields=jobs.FIELDS)[0]
	(result,) = jobs.evaluate_metrics([row])
	alert = result.alert
	return {
		"value": result.value,
		"state": result.state,
		"error": result.error,
		"alert": alert
		and {"from_state": alert.from_state, "to_state": alert.to_state, "threshold": alert.threshold},
	}
