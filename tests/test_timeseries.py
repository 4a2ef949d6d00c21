import math
from datetime import datetime, timedelta, timezone

import psycopg2
import pytest

from cauldron.pg import CauldronDBError, timeseries

NOW = datetime(2026, 11, 25, 10, 30, tzinfo=timezone.utc)
RETENTION = {"synapse.metrics": 90, "aegis.security_events": 30, "core.audit_log": None}


def partition_names(cur, table):
	return [name for name, _low, _high in timeseries.partitions(cur, table)]


def test_partitions_are_created_ahead_per_period(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	timeseries.maintain_partitions(cur, RETENTION, now=NOW)

	metrics = partition_names(cur, timeseries.METRICS)
	assert {f"metrics_p{(NOW + timedelta(days=d)):%Y%m%d}" for d in range(8)} <= set(metrics)
	assert "security_events_p20261123" in partition_names(cur, timeseries.SECURITY_EVENTS)  # ISO week
	audit = partition_names(cur, timeseries.AUDIT_LOG)
	assert {"audit_log_p20261101", "audit_log_p20261201", "audit_log_p20270201"} <= set(audit)

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


def test_retention_drops_whole_partitions_only(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	old, kept = NOW - timedelta(days=120), NOW - timedelta(days=60)
	timeseries.write_metrics(cur, [(old, "m", 1, {}), (kept, "m", 2, {}), (NOW, "m", 3, {})])
	timeseries.maintain_partitions(cur, {}, now=NOW)  # no retention: only moves strays
	assert f"metrics_p{old:%Y%m%d}" in partition_names(cur, timeseries.METRICS)

	report = timeseries.maintain_partitions(cur, RETENTION, now=NOW)

	assert report["synapse.metrics"]["dropped"] == [f"metrics_p{old:%Y%m%d}"]
	cur.execute("SELECT to_regclass(%s)", (f"synapse.metrics_p{old:%Y%m%d}",))
	assert cur.fetchone()[0] is None
	cur.execute("SELECT value FROM synapse.metrics ORDER BY value")
	assert [r[0] for r in cur.fetchall()] == [2.0, 3.0]


def hourly_from_raw(cur):
	cur.execute(
		f"""
		SELECT date_trunc('hour', time, 'UTC'), metric_name, dimensions,{timeseries.ROLLUP_COLUMNS}
		FROM synapse.metrics GROUP BY 1, 2, 3 ORDER BY 1, 2, 3::text
		"""
	)
	return cur.fetchall()


def hourly_rollup(cur):
	cur.execute(
		"""
		SELECT bucket, metric_name, dimensions, avg_value, min_value, max_value, sample_count
		FROM synapse.metrics_hourly ORDER BY 1, 2, 3::text
		"""
	)
	return cur.fetchall()


def test_rollup_matches_raw_and_recomputes_only_touched_hours(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	points = [
		(NOW.replace(minute=0) - timedelta(hours=h) + timedelta(minutes=m), name, h * 10 + m, {"doctype": dt})
		for h in range(6)
		for m in (0, 20, 40)
		for name, dt in (("doc.insert", "ToDo"), ("doc.update", "Note"))
	]
	timeseries.write_metrics(cur, points)
	assert timeseries.refresh_rollups(cur) == 6
	assert hourly_rollup(cur) == hourly_from_raw(cur)
	assert len(hourly_rollup(cur)) == 12

	assert timeseries.refresh_rollups(cur) == 0  # nothing new: nothing recomputed

	late = NOW - timedelta(days=2)
	timeseries.write_metrics(
		cur, [(late, "doc.insert", 1000, {"doctype": "ToDo"}), (NOW, "doc.insert", -5, {"doctype": "ToDo"})]
	)
	assert timeseries.refresh_rollups(cur) == 2
	assert hourly_rollup(cur) == hourly_from_raw(cur)
	cur.execute("SELECT count(*) FROM synapse.rollup_invalidations")
	assert cur.fetchone()[0] == 0


def test_concurrent_metric_writers_do_not_wait_on_each_other(provisioned):
	db, _conn = provisioned
	first, second = db.connect(), db.connect()
	timeseries.write_metrics(first.cursor(), [(NOW, "m", 1, {"a": 1})])  # transaction left open
	cur = second.cursor()
	cur.execute("SET lock_timeout = '2s'")
	try:
		timeseries.write_metrics(cur, [(NOW, "m", 2, {"a": 1})])
		second.commit()
	except psycopg2.errors.LockNotAvailable:
		pytest.fail("a second writer waited for the first one's transaction")
	first.commit()
	cur.execute("SELECT count(*) FROM synapse.metrics")
	assert cur.fetchone()[0] == 2


def test_native_path_is_kept_when_timescaledb_is_absent(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	assert not timeseries.uses_timescale(cur)
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
