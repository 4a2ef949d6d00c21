"""cauldron.synapse.metrics: analytics metrics evaluated from structured definitions and from SQL
run on a login of the site's reader role (read only, statement timeout), alert states and their
changes, and a run where one bad metric does not stop the others."""

import uuid
from datetime import datetime, timedelta, timezone

import psycopg2
import pytest
from psycopg2 import sql

from cauldron.pg import timeseries, views
from cauldron.synapse import metrics
from cauldron.synapse.metrics import MetricError, MetricSpec, Thresholds

NOW = datetime(2026, 11, 25, 10, 30, tzinfo=timezone.utc)
READER_PASSWORD = "reader-test"


@pytest.fixture
def site(provisioned):
	"""(database, site connection, reader factory, reader role): the site's reader role granted the
	seed surface, and a login that holds it and nothing else."""
	db, conn = provisioned
	role = views.reader_role_name(db.name)
	login = f"login_{db.name}"
	with db.admin().cursor() as admin:
		views.create_reader_role(admin, role)
		admin.execute(
			sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(login)), (READER_PASSWORD,)
		)
		admin.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(role), sql.Identifier(login)))
	cur = conn.cursor()
	assert views.grant_reader(cur, role) == []
	timeseries.maintain_partitions(cur, {}, now=NOW)
	timeseries.write_metrics(
		cur,
		[
			(NOW - timedelta(minutes=m), "cpu.usage", float(m), {"host": "a" if m % 2 else "b"})
			for m in range(1, 91)
		],
	)
	conn.commit()
	opened = []

	def connect():
		reader = psycopg2.connect(db._dsn(user=login, password=READER_PASSWORD))
		opened.append(reader)
		return reader

	yield db, conn, metrics.Reader(connect), role
	for reader in opened:
		reader.close()
	with db.admin().cursor() as admin:
		admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
		admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(login)))
		admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def evaluate(site, definition, **thresholds):
	_db, conn, reader, role = site
	spec = MetricSpec(str(uuid.uuid4()), definition, Thresholds(**thresholds))
	return metrics.evaluate(spec, conn.cursor(), reader, NOW, timeout=0.5, role=role)


def test_a_structured_definition_aggregates_its_window(site):
	assert evaluate(site, '{"metric": "cpu.usage", "aggregate": "avg", "window": "1 hour"}').value == 30.5
	assert evaluate(site, '{"metric": "cpu.usage", "aggregate": "count", "window": "30 minutes"}').value == 30
	got = evaluate(
		site, '{"metric": "cpu.usage", "aggregate": "max", "window": "1 hour", "dimensions": {"host": "b"}}'
	)
	assert got.value == 60.0 and got.error is None
	assert evaluate(site, '{"metric": "cpu.usage", "aggregate": "sum", "window": "2 days"}').value == sum(
		range(1, 91)
	)


@pytest.mark.parametrize(
	"definition, message",
	[
		('{"metric": "no.such", "window": "1 hour"}', "unknown metric 'no.such'"),
		(
			'{"metric": "cpu.usage", "aggregate": "avg", "window": "1 minute", "dimensions": {"host": "z"}}',
			"no point of 'cpu.usage'",
		),
		('{"metric": "cpu.usage", "aggregate": "median"}', "aggregate must be one of"),
		('{"metric": "cpu.usage", "window": "3 fortnights"}', "is not a number and a unit"),
		('{"metric": "cpu.usage", "window": "400 days"}', "between 1 minute and 366 days"),
		('{"metric": "cpu.usage", "colour": "red"}', "unknown keys colour"),
		('{"aggregate": "avg"}', "names no metric"),
		('{"metric": ', "the query definition"),
		("", "no query definition"),
	],
)
def test_a_bad_structured_definition_is_a_clear_error(site, definition, message):
	result = evaluate(site, definition)
	assert result.value is None and result.alert is None
	assert message in result.error


def test_sql_runs_as_the_reader_role_and_returns_its_number(site):
	_db, _conn, _reader, role = site
	assert evaluate(site, "SELECT count(*) FROM synapse.metrics WHERE metric_name = 'cpu.usage'").value == 90
	assert (
		evaluate(site, "SELECT sum(value)::numeric / 2 FROM synapse.metrics").value == sum(range(1, 91)) / 2
	)
	check = f"SELECT CASE WHEN current_user = '{role}' AND current_setting('transaction_read_only') = 'on' THEN 1 ELSE 0 END"
	assert evaluate(site, check).value == 1


@pytest.mark.parametrize(
	"definition, message",
	[
		# writes, refused by the parser or by the READ ONLY transaction
		("DELETE FROM synapse.metrics", "must be a SELECT, not DELETE"),
		("INSERT INTO synapse.metrics VALUES (now(), 'x', 1, '{}')", "must be a SELECT, not INSERT"),
		(
			"WITH gone AS (DELETE FROM synapse.metrics RETURNING 1) SELECT count(*) FROM gone",
			"tries to write",
		),
		("SELECT 1; DELETE FROM synapse.metrics", "one SELECT statement, not 2"),
		("SELECT 1 INTO scratch", "must not be SELECT INTO"),
		("SELECT count(*) FROM synapse.metrics FOR UPDATE", "must not lock rows"),
		("SELECT set_config('role', 'none', true)::int", "must not call set_config()"),
		(
			"SELECT count(*) FROM (SELECT nextval('command.ddl_ledger_id_seq')) s",
			"permission denied for schema command",
		),
		# too long
		("SELECT count(*) FROM pg_sleep(3)", "took longer than 0.5 s"),
		# no number
		("SELECT 1 WHERE false", "returned no row"),
		("SELECT NULL::int", "returned NULL"),
		("SELECT 'forty-two'", "returned 'forty-two' (str), not a number"),
		("SELECT '42'::text", "returned '42' (str), not a number"),
		("SELECT true", "returned True (bool), not a number"),
		("SELECT 1, 2", "returned 2 columns"),
		("SELECT generate_series(1, 3)", "more than one row"),
		("SELECT 'NaN'::float8", "not a finite number"),
		# what the reader may not read
		("SELECT count(*) FROM command.ddl_ledger", "reads what the reader role may not: permission denied"),
		("SELECT count(*) FROM synapse.rollup_invalidations", "reads what the reader role may not"),
		# not SQL at all
		("SELEKT 1", "does not parse"),
		("SELECT count(*) FROM no_such_table", 'the SQL failed: relation "no_such_table" does not exist'),
	],
)
def test_sql_that_writes_runs_long_or_returns_no_number_is_a_clear_error(site, definition, message):
	_db, conn, _reader, _role = site
	cur = conn.cursor()
	cur.execute("SELECT count(*) FROM synapse.metrics")
	before = cur.fetchone()[0]
	conn.rollback()
	result = evaluate(site, definition)
	assert result.value is None and result.alert is None
	assert message in result.error, result.error
	cur.execute("SELECT count(*) FROM synapse.metrics")
	assert cur.fetchone()[0] == before
	# the reader's connection is still good for the next metric
	assert evaluate(site, "SELECT 7").value == 7


def test_sql_needs_a_reader_login_that_is_no_superuser(site):
	db, conn, _reader, _role = site
	spec = MetricSpec("m", "SELECT 1")
	assert "none is configured" in metrics.evaluate(spec, conn.cursor(), None, NOW).error
	superuser = metrics.Reader(lambda: db.admin())
	assert "is a superuser" in metrics.evaluate(spec, conn.cursor(), superuser, NOW).error
	wrong = metrics.Reader(lambda: psycopg2.connect(db._dsn(user="nobody_at_all", password="x")))
	assert "cannot connect" in metrics.evaluate(spec, conn.cursor(), wrong, NOW).error


def test_states_follow_the_thresholds_in_either_direction():
	above = Thresholds(target=50, warning=80, critical=90, direction="above")
	assert [above.state(v) for v in (10, 80, 80.5, 90, 95)] == ["ok", "ok", "warning", "warning", "critical"]
	below = Thresholds(target=100, warning=80, critical=50, direction="below")
	assert [below.state(v) for v in (120, 80, 79, 50, 10)] == ["ok", "ok", "warning", "warning", "critical"]
	target_only = Thresholds(target=100, direction="below")
	assert [target_only.state(v) for v in (100, 99)] == ["ok", "warning"]
	assert Thresholds().state(1e9) == "ok"
	with pytest.raises(MetricError, match="must not be above the critical one"):
		Thresholds(warning=95, critical=90).check()
	with pytest.raises(MetricError, match="must not be below the critical one"):
		Thresholds(warning=40, critical=50, direction="below").check()
	with pytest.raises(MetricError, match="above or below"):
		Thresholds(direction="sideways").check()


def test_each_change_of_state_is_one_alert_and_a_held_state_none():
	thresholds = Thresholds(warning=80, critical=90)
	state, alerts = None, []
	for step, number in enumerate((10, 85, 86, 95, 99, 85, 20, 20, 91)):
		state, alert = metrics.transition("m", state, number, thresholds, NOW + timedelta(minutes=step))
		if alert:
			alerts.append((alert.from_state, alert.to_state, alert.value, alert.threshold))
	assert alerts == [
		("ok", "warning", 85, 80),
		("warning", "critical", 95, 90),
		("critical", "warning", 85, 90),
		("warning", "ok", 20, 80),
		("ok", "critical", 91, 90),
	]
	assert state == "critical"


def test_a_run_evaluates_every_metric_writes_the_values_and_keeps_going(site):
	_db, conn, reader, role = site
	cur = conn.cursor()
	specs = [
		MetricSpec(
			"good-sql",
			"SELECT count(*) FROM synapse.metrics",
			Thresholds(warning=50, critical=100),
			"ok",
			"Points",
		),
		MetricSpec("bad", "DROP TABLE synapse.metrics", Thresholds(warning=1), "warning"),
		MetricSpec("slow", "SELECT count(*) FROM pg_sleep(3)", Thresholds(warning=1), "ok"),
		MetricSpec(
			"good-json",
			'{"metric": "cpu.usage", "aggregate": "max", "window": "1 day"}',
			Thresholds(critical=80),
			None,
		),
		MetricSpec(
			"held",
			'{"metric": "cpu.usage", "aggregate": "min", "window": "1 day"}',
			Thresholds(critical=0.5, direction="below"),
			"ok",
		),
	]
	results = metrics.evaluate_all(specs, cur, reader, NOW, timeout=0.5, role=role)
	conn.commit()
	by_name = {r.metric: r for r in results}
	assert by_name["good-sql"].value == 90 and by_name["good-sql"].state == "warning"
	assert by_name["good-sql"].alert.from_state == "ok" and by_name["good-sql"].alert.threshold == 50
	assert "must be a SELECT, not DROP" in by_name["bad"].error and by_name["bad"].state == "warning"
	assert "took longer" in by_name["slow"].error and by_name["slow"].state == "ok"
	assert by_name["good-json"].value == 90 and by_name["good-json"].alert.to_state == "critical"
	assert by_name["held"].alert is None and by_name["held"].state == "ok"
	cur.execute(
		"SELECT metric_name, value, dimensions FROM synapse.metrics WHERE metric_name LIKE 'analytics.%%' ORDER BY 1"
	)
	assert cur.fetchall() == [
		("analytics.good-json", 90.0, {}),
		("analytics.good-sql", 90.0, {"metric": "Points"}),
		("analytics.held", 1.0, {}),
	]
	assert metrics.series_name("x") == "analytics.x"
