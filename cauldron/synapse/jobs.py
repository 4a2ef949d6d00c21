"""Synapse's scheduled work (hooks.scheduler_events): analytics metrics evaluated when due.

Every 5 minutes `evaluate_due_metrics` evaluates each Synapse Analytics Metric whose Evaluation
Frequency has passed since its last evaluation (cauldron.synapse.metrics does the work), one metric
per transaction: its value becomes a point of synapse.metrics (`analytics.<metric>`), its Last
Value / Last Evaluated At / Last Error / Alert State are set (frappe.db.set_value: no document
event, no audit row per evaluation), and a change of alert state is a Synapse Metric Alert whose
Notification Log reaches the metric's subscribers (its users and the enabled users of its
Subscriber Role). A metric that fails records its error and the run goes on.

SQL definitions run on a login of the site's reader role, named in the site's config:
`cauldron_reader_login` and `cauldron_reader_password` (a DBA makes it: `CREATE ROLE ... LOGIN
PASSWORD ...; GRANT cauldron_reader_<database> TO ...`); `synapse_sql_timeout` (seconds, default 5).
"""

from datetime import timedelta

import frappe
from frappe import _
from frappe.utils import convert_utc_to_system_timezone, get_datetime

from cauldron import db
from cauldron.pg import views
from cauldron.synapse import metrics

FREQUENCIES = {
	"Every 5 Minutes": timedelta(minutes=5),
	"Every 15 Minutes": timedelta(minutes=15),
	"Hourly": timedelta(hours=1),
	"Daily": timedelta(days=1),
}
# A run starts a little after its minute; a metric due within this margin is evaluated now rather
# than one run later.
MARGIN = timedelta(seconds=60)
FIELDS = [
	"name",
	"metric_name",
	"query_definition",
	"target_value",
	"warning_threshold",
	"critical_threshold",
	"alert_direction",
	"alert_state",
	"evaluation_frequency",
	"last_evaluated_at",
	"subscriber_role",
]
LOCK = "cauldron.synapse.evaluate_metrics"


def _now():
	return frappe.utils.now_datetime()  # the site's local time, as Frappe's Datetime fields hold


def due_metrics(now=None) -> list:
	"""The metrics whose Evaluation Frequency has passed since their last evaluation."""
	now = now or _now()
	rows = frappe.get_all(
		"Synapse Analytics Metric",
		filters={"evaluation_frequency": ("in", list(FREQUENCIES)), "query_definition": ("is", "set")},
		fields=FIELDS,
		order_by="last_evaluated_at asc",
	)
	return [
		row
		for row in rows
		if not row.last_evaluated_at
		or get_datetime(row.last_evaluated_at) + FREQUENCIES[row.evaluation_frequency] <= now + MARGIN
	]


def evaluate_due_metrics():
	"""The scheduled job: every due metric, one at a time; one run at a time on the site."""
	cur = db.cursor()
	cur.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (LOCK,))
	if not cur.fetchone()[0]:
		return []  # the previous run is still going
	try:
		return evaluate_metrics(due_metrics())
	finally:
		frappe.db.rollback()
		db.cursor().execute("SELECT pg_advisory_unlock(hashtext(%s))", (LOCK,))


def reader() -> metrics.Reader | None:
	login = frappe.conf.get("cauldron_reader_login")
	if not login:
		return None
	password = frappe.conf.get("cauldron_reader_password")
	return metrics.Reader(lambda: db.connect_as(login, password))


def spec(row) -> metrics.MetricSpec:
	def number(value):
		return None if value in (None, "") else float(value)

	# Frappe's Float fields hold 0 when left empty: 0 means "not set" (alert on "any" with 0.5)
	return metrics.MetricSpec(
		name=row.name,
		query_definition=row.query_definition,
		thresholds=metrics.Thresholds(
			target=number(row.target_value) or None,
			warning=number(row.warning_threshold) or None,
			critical=number(row.critical_threshold) or None,
			direction=row.alert_direction or "above",
		),
		state=row.alert_state or None,
		title=row.metric_name or "",
	)


def evaluate_metrics(rows) -> list[metrics.Result]:
	"""Evaluate `rows` (dicts of FIELDS), committing each metric's outcome on its own."""
	source = reader()
	role = views.reader_role_name(frappe.conf.db_name)
	timeout = float(frappe.conf.get("synapse_sql_timeout") or metrics.DEFAULT_TIMEOUT)
	results = []
	try:
		for row in rows:
			frappe.db.rollback()  # a fresh snapshot for each metric
			try:
				(result,) = metrics.evaluate_all([spec(row)], db.cursor(), source, timeout=timeout, role=role)
				record(row, result)
				frappe.db.commit()
			except Exception as e:  # not the metric's fault (the database went away...): the run goes on
				frappe.db.rollback()
				result = metrics.Result(
					row.name, state=row.alert_state or None, error=f"evaluation failed: {e}"
				)
				frappe.log_error(title=f"Synapse metric {row.name} evaluation")
				_set_outcome(row.name, result, _now())
				frappe.db.commit()
			results.append(result)
	finally:
		if source:
			source.close()
	return results


def _set_outcome(name: str, result: metrics.Result, at) -> None:
	values = {"last_evaluated_at": at, "last_error": result.error, "alert_state": result.state or ""}
	if result.error is None:
		values["last_value"] = result.value
	frappe.db.set_value("Synapse Analytics Metric", name, values, update_modified=False)


def record(row, result: metrics.Result) -> None:
	"""The outcome of one evaluation on the metric, and its alert (with notifications) if any."""
	_set_outcome(row.name, result, _now())
	if result.alert:
		alert = result.alert
		doc = frappe.get_doc(
			{
				"doctype": "Synapse Metric Alert",
				"metric": row.name,
				"from_state": alert.from_state,
				"to_state": alert.to_state,
				"value": alert.value,
				"threshold": alert.threshold,
				"at": convert_utc_to_system_timezone(alert.at).replace(tzinfo=None),
			}
		)
		doc.flags.from_evaluation = True
		doc.insert(ignore_permissions=True)
		notify(row, doc)


def subscribers(metric: str, role: str | None) -> list[str]:
	users = frappe.get_all(
		"Synapse Metric Subscriber",
		filters={"parent": metric, "parenttype": "Synapse Analytics Metric"},
		pluck="user",
	)
	if role:
		users += frappe.get_all("Has Role", filters={"role": role, "parenttype": "User"}, pluck="parent")
	if not users:
		return []
	enabled = frappe.get_all("User", filters={"name": ("in", users), "enabled": 1}, pluck="name")
	return sorted(set(enabled))


def notify(row, alert) -> None:
	"""A Notification Log (type Alert) for each subscriber, as Frappe's own alerts are made."""
	from frappe.desk.doctype.notification_log.notification_log import enqueue_create_notification

	users = subscribers(row.name, row.subscriber_role)
	if not users:
		return
	name = frappe.bold(row.metric_name or row.name)
	threshold = "" if alert.threshold is None else _(" (threshold {0})").format(f"{alert.threshold:g}")
	subject = _("{0} is {1}: {2}{3}, was {4}").format(
		name, _(alert.to_state), f"{alert.value:g}", threshold, _(alert.from_state)
	)
	enqueue_create_notification(
		users,
		{
			"type": "Alert",
			"document_type": "Synapse Analytics Metric",
			"document_name": row.name,
			"subject": subject,
			"email_content": subject,
			"from_user": "Administrator",
		},
	)
