import math
from datetime import datetime, timedelta, timezone

import psycopg2
import pytest
from containers import container_of, containers

from cauldron.pg import CauldronDBError, provision, timeseries

NOW = datetime(2026, 11, 25, 10, 30, tzinfo=timezone.utc)
RETENTION = {"synapse.metrics": 90, "aegis.security_events": 30, "core.audit_log": None}
TIMESCALEDB_ONLY = pytest.mark.parametrize("timeseries_path", ["timescaledb"], indirect=True)


def partition_names(cur, table):
	return [name for name, _low, _high in timeseries.partitions(cur, table)]


def test_partitions_or_chunks_are_created_ahead_per_period(provisioned, timeseries_path):
	_db, conn = provisioned
	cur = conn.cursor()
	report = timeseries.maintain_partitions(cur, RETENTION, now=NOW)

	ahead = {
		timeseries.METRICS: [NOW + timedelta(days=d) for d in range(8)],
		timeseries.SECURITY_EVENTS: [NOW + timedelta(weeks=w) for w in range(5)],
		timeseries.AUDIT_LOG: [NOW + timedelta(days=d) for d in (0, 30, 60, 90)],
	}
	for table, moments in ahead.items():
		made = [container_of(cur, table, moment) for moment in moments]
		assert None not in made, (table.qualified, made)
		assert set(report[table.qualified]["created"]) <= {name for name, _low, _high in made}
	if timeseries_path == "native":
		assert "security_events_p20261123" in partition_names(cur, timeseries.SECURITY_EVENTS)  # ISO week
		assert {"audit_log_p20261101", "audit_log_p20270201"} <= set(
			partition_names(cur, timeseries.AUDIT_LOG)
		)

	report = timeseries.maintain_partitions(cur, RETENTION, now=NOW)
	assert all(r == {"created": [], "dropped": [], "deferred": []} for r in report.values())


def test_points_land_in_their_partition_and_strays_are_kept_then_moved(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	timeseries.maintain_partitions(cur, RETENTION, now=NOW)
	stray = NOW - timedelta(days=40)
	points = [
		(NOW, "orders.created", 1, {"doctype": "Sales Order"}),
		(NOW + timedelta(minutes=5), "orders.created", 2.5, None),
		(stray, "orders.created", 3, {"backfill": True}),
	]
	assert timeseries.write_metrics(cur, points) == 3

	cur.execute("SELECT tableoid::regclass::text, value FROM synapse.metrics ORDER BY value")
	placed = cur.fetchall()
	assert placed[0] == (f"synapse.metrics_p{NOW:%Y%m%d}", 1.0)
	assert placed[2] == ("synapse.metrics_default", 3.0)

	report = timeseries.maintain_partitions(cur, RETENTION, now=NOW)
	assert f"metrics_p{stray:%Y%m%d}" in report["synapse.metrics"]["created"]
	cur.execute("SELECT tableoid::regclass::text, dimensions FROM synapse.metrics WHERE value = 3")
	assert cur.fetchone() == (f"synapse.metrics_p{stray:%Y%m%d}", {"backfill": True})
	cur.execute("SELECT count(*) FROM synapse.metrics_default")
	assert cur.fetchone()[0] == 0
	cur.execute("SELECT count(*) FROM synapse.metrics")
	assert cur.fetchone()[0] == 3


@pytest.mark.parametrize(
	"point, message",
	[
		((datetime(2026, 1, 1), "m", 1, {}), "timezone-aware"),
		((NOW, "", 1, {}), "metric_name"),
		((NOW, "x" * 101, 1, {}), "metric_name"),
		((NOW, "m", "lots", {}), "not a number"),
		((NOW, "m", math.nan, {}), "not finite"),
		((NOW, "m", 1, ["a"]), "dimensions must be an object"),
	],
)
def test_a_bad_point_fails_the_batch_before_anything_is_written(provisioned, point, message):
	_db, conn = provisioned
	cur = conn.cursor()
	good = (NOW, "ok", 1, {})
	with pytest.raises(CauldronDBError, match=message):
		timeseries.write_metrics(cur, [good, point])
	cur.execute("SELECT count(*) FROM synapse.metrics")
	assert cur.fetchone()[0] == 0


def test_retention_drops_whole_partitions_or_chunks_only(provisioned, timeseries_path):
	_db, conn = provisioned
	cur = conn.cursor()
	# TimescaleDB's retention policy measures from the clock, so this test does too.
	now = datetime.now(timezone.utc)
	old, kept = now - timedelta(days=120), now - timedelta(days=60)
	timeseries.write_metrics(cur, [(old, "m", 1, {}), (kept, "m", 2, {}), (now, "m", 3, {})])
	timeseries.maintain_partitions(cur, {}, now=now)  # no retention: only moves strays
	(old_container, _low, _high) = container_of(cur, timeseries.METRICS, old)
	conn.commit()

	if timeseries_path == "native":
		report = timeseries.maintain_partitions(cur, RETENTION, now=now)
		assert report["synapse.metrics"]["dropped"] == [old_container]
	else:
		# the policy provisioning made (90 days), run now instead of on its schedule
		cur.execute(
			"SELECT job_id, config->>'drop_after' FROM timescaledb_information.jobs"
			" WHERE proc_name = 'policy_retention' AND hypertable_name = 'metrics'"
		)
		job_id, drop_after = cur.fetchone()
		assert drop_after == "90 days"
		conn.rollback()
		conn.autocommit = True
		cur.execute("CALL run_job(%s)", (job_id,))
		conn.autocommit = False

	assert old_container not in [name for name, _low, _high in containers(cur, timeseries.METRICS)]
	cur.execute("SELECT value FROM synapse.metrics ORDER BY value")
	assert [r[0] for r in cur.fetchall()] == [2.0, 3.0]


@TIMESCALEDB_ONLY
def test_retention_policy_is_replaced_only_when_its_interval_changes(provisioned, timeseries_path):
	_db, conn = provisioned
	cur = conn.cursor()

	def policies():
		cur.execute(
			"SELECT hypertable_name, job_id, config->>'drop_after' FROM timescaledb_information.jobs"
			" WHERE proc_name = 'policy_retention' ORDER BY 1"
		)
		return cur.fetchall()

	before = policies()
	assert [(name, days) for name, _job, days in before] == [("metrics", "90 days")]
	provision.provision(cur, provision.Settings())  # what every migrate does
	timeseries.apply_retention_policies(cur, provision.Settings().retention_days)  # a settings save
	assert policies() == before  # same job, same run history

	timeseries.apply_retention_policies(cur, RETENTION)
	after = dict((name, (job, days)) for name, job, days in policies())
	assert after["metrics"] == before[0][1:]
	assert after["security_events"][1] == "30 days"

	timeseries.apply_retention_policies(cur, {**RETENTION, "synapse.metrics": 30})
	changed = dict((name, (job, days)) for name, job, days in policies())
	assert changed["metrics"][1] == "30 days" and changed["metrics"][0] != before[0][1]
	assert changed["security_events"] == after["security_events"]

	timeseries.apply_retention_policies(cur, {})
	assert policies() == []


def hourly_from_raw(cur):
	cur.execute(
		f"""
		SELECT date_trunc('hour', time, 'UTC'), metric_name, dimensions,{timeseries.ROLLUP_COLUMNS}
		FROM synapse.metrics GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
		"""
	)
	return cur.fetchall()


def hourly_rollup(cur):
	cur.execute(
		"""
		SELECT bucket, metric_name, dimensions, avg_value, min_value, max_value, sample_count
		FROM synapse.metrics_hourly ORDER BY 1, 2, 3
		"""
	)
	return cur.fetchall()


def test_rollup_matches_raw_and_recomputes_only_touched_hours(provisioned, timeseries_path):
	_db, conn = provisioned
	cur = conn.cursor()
	timeseries.maintain_partitions(cur, RETENTION, now=NOW)
	# two dimension sets of the same metric in every hour: the rows differ only in their dimensions
	points = [
		(
			NOW.replace(minute=0) - timedelta(hours=h) + timedelta(minutes=m),
			"doc.insert",
			h * 10 + m,
			{"dt": dt},
		)
		for h in range(6)
		for m in (0, 20, 40)
		for dt in ("ToDo", "Note")
	]
	timeseries.write_metrics(cur, points)
	conn.commit()
	assert timeseries.refresh_rollups(cur) == 6
	assert hourly_rollup(cur) == hourly_from_raw(cur)
	assert len(hourly_rollup(cur)) == 12
	conn.commit()

	assert timeseries.refresh_rollups(cur) == 0  # nothing new: nothing recomputed

	# A point in the newest hour and one ten days late: both reach the rollup in the next run.
	late = NOW - timedelta(days=10)
	timeseries.write_metrics(
		cur, [(late, "doc.insert", 1000, {"dt": "ToDo"}), (NOW, "doc.insert", -5, {"dt": "ToDo"})]
	)
	conn.commit()
	assert timeseries.refresh_rollups(cur) == 2
	assert hourly_rollup(cur) == hourly_from_raw(cur)
	assert len(hourly_rollup(cur)) == 13
	cur.execute("SELECT count(*) FROM synapse.rollup_invalidations")
	assert cur.fetchone()[0] == 0


@TIMESCALEDB_ONLY
def test_refreshing_the_continuous_aggregate_asks_for_a_committed_transaction(provisioned, timeseries_path):
	_db, conn = provisioned
	cur = conn.cursor()
	timeseries.write_metrics(cur, [(NOW, "m", 1, {})])
	with pytest.raises(CauldronDBError, match="commit first"):
		timeseries.refresh_rollups(cur)
	conn.commit()  # the point is still there to commit
	assert timeseries.refresh_rollups(cur) == 1
	assert not conn.autocommit
	assert len(hourly_rollup(cur)) == 1


def test_concurrent_metric_writers_do_not_wait_on_each_other(provisioned, timeseries_path):
	db, conn = provisioned
	timeseries.maintain_partitions(conn.cursor(), RETENTION, now=NOW)  # the daily job
	conn.commit()
	first, second = db.connect(), db.connect()
	timeseries.write_metrics(first.cursor(), [(NOW + timedelta(days=1), "m", 1, {"a": 1})])  # left open
	cur = second.cursor()
	cur.execute("SET lock_timeout = '2s'")
	try:
		timeseries.write_metrics(cur, [(NOW + timedelta(days=2), "m", 2, {"a": 1})])
		second.commit()
	except psycopg2.errors.LockNotAvailable:
		pytest.fail("a second writer waited for the first one's transaction")
	first.commit()
	cur.execute("SELECT count(*) FROM synapse.metrics")
	assert cur.fetchone()[0] == 2


@TIMESCALEDB_ONLY
def test_a_native_database_stays_native_when_timescaledb_is_there(db, timeseries_path):
	conn = db.connect()
	cur = conn.cursor()
	provision.provision(cur, provision.Settings(timescaledb=False))
	conn.commit()
	assert not timeseries.uses_timescale(cur)

	result = provision.provision(cur)  # a later migrate, TimescaleDB allowed
	conn.commit()
	assert result.capabilities["timescaledb"].installed  # the site's role created it (trusted)
	assert not timeseries.uses_timescale(cur)
	assert {o.status for o in result.outcomes} == {"unchanged"}
	assert timeseries.steps(timescale=True)[0].requires == {"timescaledb"}
	assert "create_hypertable" in timeseries.steps(timescale=True)[0].sql


def test_partition_work_that_would_wait_for_a_lock_is_deferred(provisioned):
	db, conn = provisioned
	cur = conn.cursor()
	timeseries.maintain_partitions(cur, RETENTION, now=NOW)
	stray = NOW - timedelta(days=20)
	timeseries.write_metrics(cur, [(stray, "m", 1, {})])
	conn.commit()
	reader = db.connect()
	reader.cursor().execute("SELECT count(*) FROM synapse.metrics")  # a long report, still open

	report = timeseries.maintain_partitions(cur, RETENTION, now=NOW)

	assert report["synapse.metrics"]["deferred"] == [f"metrics_p{stray:%Y%m%d}"]
	cur.execute("SELECT current_setting('lock_timeout')")
	assert cur.fetchone()[0] == "0"  # the job's own timeout does not outlive it
	conn.commit()
	reader.rollback()
	report = timeseries.maintain_partitions(cur, RETENTION, now=NOW)
	assert report["synapse.metrics"]["created"] == [f"metrics_p{stray:%Y%m%d}"]
	cur.execute("SELECT count(*) FROM synapse.metrics_default")
	assert cur.fetchone()[0] == 0


@pytest.mark.parametrize("days", [-2, 1.5, "90"])
def test_retention_must_be_whole_days(provisioned, days):
	_db, conn = provisioned
	with pytest.raises(CauldronDBError, match="whole number of days"):
		timeseries.maintain_partitions(conn.cursor(), {"synapse.metrics": days}, now=NOW)
