"""cauldron.synapse.query: series and top over synapse.metrics and its hourly rollup, on both
time-series paths, against answers computed in Python from the raw points."""

import random
from collections import defaultdict
from datetime import datetime, timedelta, timezone

import pytest

from cauldron.pg import timeseries
from cauldron.synapse import query

NOW = datetime(2026, 11, 25, 10, 30, tzinfo=timezone.utc)
START = datetime(2026, 10, 30, 22, 17, tzinfo=timezone.utc)  # crosses a month, not hour-aligned
HOSTS = ("alpha", "beta", "gamma")


def make_points(seed=7):
	rng = random.Random(seed)
	points = []
	moment = START
	while moment < NOW:
		# holes: no point at all between 03:00 and 05:00 UTC on odd days
		if not (moment.day % 2 and 3 <= moment.hour < 5):
			host = rng.choice(HOSTS)
			points.append((moment, "cpu.usage", round(rng.uniform(0, 100), 3), {"host": host, "dc": "x"}))
		moment += timedelta(minutes=rng.randint(1, 20))
	points.append((NOW - timedelta(hours=1), "other.metric", 1, {"host": "alpha"}))
	return points


def expected(points, metric, start, end, step, aggregate, dimensions=None):
	groups = defaultdict(list)
	for time, name, value, dims in points:
		if name != metric or not start <= time < end:
			continue
		if dimensions and any(
			dims.get(k) not in (v if isinstance(v, list) else [v]) for k, v in dimensions.items()
		):
			continue
		groups[step.bucket(time)].append(value)
	result = []
	for bucket in step.buckets(start, end):
		got = groups.get(bucket)
		if not got:
			result.append((bucket, 0.0 if aggregate == "count" else None))
			continue
		result.append(
			(
				bucket,
				{
					"avg": sum(got) / len(got),
					"sum": sum(got),
					"min": min(got),
					"max": max(got),
					"count": float(len(got)),
				}[aggregate],
			)
		)
	return result


def same(got, want):
	assert [b for b, _ in got] == [b for b, _ in want]
	for (bucket, a), (_, b) in zip(got, want, strict=True):
		assert (a is None) == (b is None), bucket
		if a is not None:
			assert a == pytest.approx(b, rel=1e-9, abs=1e-9), bucket


@pytest.fixture
def loaded(provisioned, timeseries_path):
	_db, conn = provisioned
	cur = conn.cursor()
	timeseries.maintain_partitions(cur, {}, now=NOW)
	points = make_points()
	timeseries.write_metrics(cur, points)
	conn.commit()
	return conn, cur, points


CASES = [
	("1 minute", "avg", START, START + timedelta(hours=3)),
	("5m", "max", START, START + timedelta(hours=30)),
	("90 minutes", "sum", START, NOW),  # not whole hours: raw
	("1 hour", "avg", START, NOW),
	("1h", "count", START - timedelta(days=2), NOW + timedelta(hours=2)),  # empty buckets at both ends
	("6 hours", "min", START, NOW),
	("1 day", "sum", START, NOW),
	("1 week", "avg", START, NOW),
	("1 month", "count", START, NOW),
]


@pytest.mark.parametrize("interval, aggregate, start, end", CASES)
def test_series_equals_the_raw_answer_before_and_after_the_rollup_runs(
	loaded, interval, aggregate, start, end
):
	conn, cur, points = loaded
	step = query.parse_interval(interval)
	want = expected(points, "cpu.usage", start, end, step, aggregate)
	before = query.series(cur, "cpu.usage", None, start, end, interval, aggregate)
	same(before.points, want)
	assert before.source == ("rollup" if step.hourly else "raw")
	conn.commit()
	assert timeseries.refresh_rollups(cur) > 0
	after = query.series(cur, "cpu.usage", None, start, end, interval, aggregate)
	same(after.points, want)


def test_series_reads_the_rollup_for_refreshed_hours(loaded):
	"""After the refresh, whole hours come from metrics_hourly: changing a raw point behind the
	rollup's back changes nothing for an hourly series, and a minute series still sees it."""
	conn, cur, points = loaded
	conn.commit()
	timeseries.refresh_rollups(cur)
	hour = datetime(2026, 11, 20, 12, tzinfo=timezone.utc)
	hourly = query.series(cur, "cpu.usage", None, hour, hour + timedelta(hours=1), "1 hour", "count")
	cur.execute(
		"DELETE FROM synapse.metrics WHERE metric_name = 'cpu.usage' AND time >= %s AND time < %s",
		(hour, hour + timedelta(hours=1)),
	)
	assert cur.rowcount > 0
	again = query.series(cur, "cpu.usage", None, hour, hour + timedelta(hours=1), "1 hour", "count")
	assert again.points == hourly.points and hourly.points[0][1] > 0
	minutes = query.series(cur, "cpu.usage", None, hour, hour + timedelta(hours=1), "1 minute", "count")
	assert sum(v for _, v in minutes.points) == 0


def test_points_written_after_the_refresh_are_read_raw_until_the_next(loaded):
	conn, cur, points = loaded
	conn.commit()
	timeseries.refresh_rollups(cur)
	late = (datetime(2026, 11, 20, 12, 10, tzinfo=timezone.utc), "cpu.usage", 1000.0, {"host": "alpha"})
	timeseries.write_metrics(cur, [late])
	conn.commit()
	start, end = datetime(2026, 11, 19, tzinfo=timezone.utc), datetime(2026, 11, 21, tzinfo=timezone.utc)
	got = query.series(cur, "cpu.usage", None, start, end, "1 hour", "max")
	same(got.points, expected([*points, late], "cpu.usage", start, end, got_step("1 hour"), "max"))
	assert dict(got.points)[datetime(2026, 11, 20, 12, tzinfo=timezone.utc)] == 1000.0


def got_step(text):
	return query.parse_interval(text)


@pytest.mark.parametrize(
	"dimensions",
	[{"host": "alpha"}, {"host": ["beta", "gamma"]}, {"host": "alpha", "dc": "x"}, {"host": "nobody"}],
)
def test_a_dimension_filter_keeps_matching_points_on_both_sources(loaded, dimensions):
	conn, cur, points = loaded
	start, end = START, NOW
	for interval in ("1 hour", "10 minutes"):
		want = expected(points, "cpu.usage", start, end, got_step(interval), "sum", dimensions)
		same(query.series(cur, "cpu.usage", dimensions, start, end, interval, "sum").points, want)
	conn.commit()
	timeseries.refresh_rollups(cur)
	want = expected(points, "cpu.usage", start, end, got_step("1 day"), "avg", dimensions)
	same(query.series(cur, "cpu.usage", dimensions, start, end, "1 day", "avg").points, want)


def test_gaps_are_filled_as_asked(loaded):
	_conn, cur, _points = loaded
	day = datetime(2026, 11, 1, tzinfo=timezone.utc)  # odd day: nothing from 03:00 to 05:00
	args = (cur, "cpu.usage", None, day, day + timedelta(hours=8), "1 hour", "avg")
	nulls = dict(query.series(*args).points)
	assert len(nulls) == 8
	assert nulls[day + timedelta(hours=3)] is None and nulls[day + timedelta(hours=4)] is None
	assert nulls[day + timedelta(hours=2)] is not None
	zeros = dict(query.series(*args, fill="zero").points)
	assert zeros[day + timedelta(hours=3)] == 0.0
	carried = dict(query.series(*args, fill="previous").points)
	assert (
		carried[day + timedelta(hours=3)]
		== carried[day + timedelta(hours=4)]
		== nulls[day + timedelta(hours=2)]
	)
	counts = dict(
		query.series(cur, "cpu.usage", None, day, day + timedelta(hours=8), "1 hour", "count").points
	)
	assert counts[day + timedelta(hours=3)] == 0.0


def test_buckets_are_utc_aligned_and_weeks_start_on_monday():
	week = query.parse_interval("1w")
	assert week.bucket(datetime(2026, 11, 26, 15, tzinfo=timezone.utc)) == datetime(
		2026, 11, 23, tzinfo=timezone.utc
	)  # a Monday
	month = query.parse_interval("1 month")
	assert month.buckets(
		datetime(2026, 11, 15, tzinfo=timezone.utc), datetime(2027, 1, 2, tzinfo=timezone.utc)
	) == [
		datetime(2026, 11, 1, tzinfo=timezone.utc),
		datetime(2026, 12, 1, tzinfo=timezone.utc),
		datetime(2027, 1, 1, tzinfo=timezone.utc),
	]
	local = datetime(2026, 11, 26, 1, 30, tzinfo=timezone(timedelta(hours=5)))
	assert query.parse_interval("1 day").bucket(local) == datetime(2026, 11, 25, tzinfo=timezone.utc)
	assert query.parse_interval("15m").text == "15 minutes"
	assert query.parse_interval("120 minutes").text == "2 hours"
	assert query.parse_interval("14 days").text == "2 weeks"
	assert query.parse_interval("1 hour").hourly and not query.parse_interval("90m").hourly


@pytest.mark.parametrize("aggregate", ["sum", "count", "max"])
def test_top_ranks_dimension_values_on_both_sources(loaded, aggregate):
	conn, cur, points = loaded
	start, end = START, NOW

	def want():
		groups = defaultdict(list)
		for time, name, value, dims in points:
			if name == "cpu.usage" and start <= time < end:
				groups[dims["host"]].append(value)
		rows = [
			(host, {"sum": sum(v), "count": len(v), "max": max(v)}[aggregate], len(v))
			for host, v in groups.items()
		]
		return sorted(rows, key=lambda r: (-r[1], r[0]))[:2]

	for refresh in (False, True):
		if refresh:
			conn.commit()
			timeseries.refresh_rollups(cur)
		got = query.top(cur, "cpu.usage", "host", start, end, limit=2, aggregate=aggregate)
		assert [(r.value, r.count) for r in got] == [(h, n) for h, _a, n in want()]
		assert [r.aggregate for r in got] == pytest.approx([a for _h, a, _n in want()])
	assert query.top(cur, "cpu.usage", "nothing", start, end) == []


def test_unknown_metric_and_bad_arguments_are_clear_errors(loaded):
	_conn, cur, _points = loaded
	with pytest.raises(query.UnknownMetric, match="unknown metric 'nope'"):
		query.series(cur, "nope", None, START, NOW, "1 hour")
	with pytest.raises(query.UnknownMetric):
		query.top(cur, "nope", "host", START, NOW)
	bad = [
		({"interval": "30 seconds"}, "is not a number and a unit"),
		({"interval": "0 minutes"}, "between 1 minute and 1 month"),
		({"interval": "5 weeks"}, "between 1 minute and 1 month"),
		({"interval": "2 months"}, "longest interval is 1 month"),
		({"aggregate": "median"}, "aggregate must be one of"),
		({"fill": "linear"}, "fill must be one of"),
		({"start": NOW, "end": START}, "must be after start"),
		({"start": "yesterday"}, "not an ISO 8601 time"),
		({"start": datetime(2026, 11, 1)}, "with a time zone"),
		({"dimensions": ["host"]}, "dimensions must be an object"),
		({"dimensions": {"host": {"a": 1}}}, "is not text, a number or a boolean"),
		({"interval": "1 minute", "start": NOW - timedelta(days=30)}, "more than 10000 buckets"),
	]
	for change, message in bad:
		args = {"metric": "cpu.usage", "dimensions": None, "start": START, "end": NOW, "interval": "1 hour"}
		args.update(change)
		with pytest.raises(query.QueryError, match=message):
			query.series(cur, **args)
	with pytest.raises(query.QueryError, match="limit must be"):
		query.top(cur, "cpu.usage", "host", START, NOW, limit=0)


@pytest.mark.parametrize("aggregate", query.AGGREGATES)
def test_value_is_the_raw_answer_over_any_range_before_and_after_the_rollup(loaded, aggregate):
	conn, cur, points = loaded
	ranges = [
		(START, NOW),  # unaligned ends: raw edges around whole rolled-up hours
		(
			datetime(2026, 11, 20, 12, 5, tzinfo=timezone.utc),
			datetime(2026, 11, 20, 12, 50, tzinfo=timezone.utc),
		),
		(
			datetime(2026, 11, 1, 3, tzinfo=timezone.utc),
			datetime(2026, 11, 1, 5, tzinfo=timezone.utc),
		),  # a hole
	]

	def want(start, end):
		got = [v for t, name, v, _d in points if name == "cpu.usage" and start <= t < end]
		if not got:
			return 0.0 if aggregate in ("count", "sum") else None
		return {
			"avg": sum(got) / len(got),
			"sum": sum(got),
			"min": min(got),
			"max": max(got),
			"count": len(got),
		}[aggregate]

	for refresh in (False, True):
		if refresh:
			conn.commit()
			timeseries.refresh_rollups(cur)
		for start, end in ranges:
			expected_value = want(start, end)
			got = query.value(cur, "cpu.usage", None, start, end, aggregate)
			if expected_value is None:
				assert got is None
			else:
				assert got == pytest.approx(expected_value, rel=1e-9)
