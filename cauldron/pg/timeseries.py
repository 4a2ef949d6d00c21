"""Time-series tables: TimescaleDB hypertables where the extension is installed, native range
partitions otherwise. Both paths expose the same relations (`synapse.metrics`,
`synapse.metrics_hourly`, `aegis.security_events`, `core.audit_log`) and the same functions.

Native path:
- each table is `PARTITION BY RANGE` on its time column with a DEFAULT partition, so a row outside
  the partitions made so far is kept, never refused; `maintain_partitions` creates partitions ahead,
  moves rows out of the default partition, and enforces retention by dropping whole partitions;
- `synapse.metrics_hourly` is a table. A statement trigger on `synapse.metrics` logs the hours each
  insert touches into `synapse.rollup_invalidations` (insert-only: concurrent writers never wait
  on each other), and `refresh_rollups` recomputes exactly those hours.

TimescaleDB path:
- each table is a hypertable; `maintain_partitions` creates the chunks ahead (as the native path
  does its partitions), because the first write into a new chunk locks the hypertable against every
  other chunk creation until it commits. Retention of metrics and security events is TimescaleDB's
  own policy; core.audit_log's chunks are anchored in the hash chain and dropped by the job, with the
  same lock timeout and deferral as native partitions;
- `synapse.metrics_hourly` is a continuous aggregate (materialized only). The same statement trigger
  logs the hours written, and `refresh_rollups`, the same hourly job, refreshes the aggregate for
  exactly those hours, late points included: both paths give the same rows after each run. (The
  seed's policy, with its offsets, left the newest hour out and never saw points older than 3 days.)
"""

import csv
import io
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from psycopg2 import errors, extensions, sql

from cauldron.pg import CauldronDBError, audit
from cauldron.pg.ledger import Step


@dataclass(frozen=True)
class TimeSeriesTable:
	schema: str
	name: str
	time_column: str
	columns: str
	constraints: str
	period: str  # partition / chunk width: day | week | month
	indexes: tuple[str, ...]

	@property
	def qualified(self) -> str:
		return f"{self.schema}.{self.name}"


METRICS = TimeSeriesTable(
	schema="synapse",
	name="metrics",
	time_column="time",
	columns="""
	time timestamptz NOT NULL,
	metric_name varchar(100) NOT NULL,
	value double precision NOT NULL,
	dimensions jsonb NOT NULL DEFAULT '{}'""",
	constraints="",
	period="day",
	indexes=(
		"CREATE INDEX IF NOT EXISTS idx_metrics_metric_name ON synapse.metrics (metric_name, time DESC)",
		"CREATE INDEX IF NOT EXISTS idx_metrics_dimensions ON synapse.metrics USING gin (dimensions)",
	),
)

SECURITY_EVENTS = TimeSeriesTable(
	schema="aegis",
	name="security_events",
	time_column="event_time",
	columns="""
	id uuid NOT NULL DEFAULT gen_random_uuid(),
	event_time timestamptz NOT NULL,
	event_type varchar(100) NOT NULL,
	source varchar(100) NOT NULL,
	severity varchar(20) NOT NULL,
	description text,
	raw_data jsonb,
	processed_data jsonb,
	is_incident boolean NOT NULL DEFAULT false,
	created_at timestamptz NOT NULL DEFAULT now()""",
	# Unique keys of a partitioned table or hypertable must contain the time column.
	constraints=",\n\tPRIMARY KEY (id, event_time)",
	period="week",
	indexes=(
		"CREATE INDEX IF NOT EXISTS idx_security_events_type"
		" ON aegis.security_events (event_type, event_time DESC)",
		"CREATE INDEX IF NOT EXISTS idx_security_events_incident"
		" ON aegis.security_events (event_time DESC) WHERE is_incident",
	),
)

AUDIT_LOG = TimeSeriesTable(
	schema="core",
	name="audit_log",
	time_column="created_at",
	columns="""
	id uuid NOT NULL DEFAULT gen_random_uuid(),
	created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	user_id varchar(140),
	action varchar(50) NOT NULL,
	resource_type varchar(140) NOT NULL,
	resource_id varchar(140),
	old_values jsonb,
	new_values jsonb,
	ip_address varchar(45),
	user_agent text,
	pii_salt bytea,
	pii_digest bytea,
	erased_at timestamptz,
	seq bigint,
	prev_hash bytea,
	row_hash bytea""",
	constraints=",\n\tPRIMARY KEY (id, created_at)",
	period="month",
	indexes=(
		"CREATE INDEX IF NOT EXISTS idx_audit_log_resource"
		" ON core.audit_log (resource_type, resource_id, created_at DESC)",
		"CREATE INDEX IF NOT EXISTS idx_audit_log_user ON core.audit_log (user_id, created_at DESC)",
		"CREATE INDEX IF NOT EXISTS idx_audit_log_seq ON core.audit_log (seq) WHERE seq IS NOT NULL",
		"CREATE INDEX IF NOT EXISTS idx_audit_log_unsealed ON core.audit_log (created_at) WHERE seq IS NULL",
	),
)

TABLES = (METRICS, SECURITY_EVENTS, AUDIT_LOG)
PERIOD_INTERVAL = {"day": "1 day", "week": "7 days", "month": "1 month"}
# Partitions kept ready ahead of now, per period.
AHEAD = {"day": 7, "week": 4, "month": 3}

ROLLUP_COLUMNS = """
	avg(value) AS avg_value,
	min(value) AS min_value,
	max(value) AS max_value,
	count(*) AS sample_count"""


def steps(timescale: bool) -> list[Step]:
	"""The ledger steps for every time-series table, for the path this database takes."""
	requires = frozenset({"timescaledb"}) if timescale else frozenset()
	result = []
	for table in TABLES:
		ddl = f"CREATE TABLE IF NOT EXISTS {table.qualified} ({table.columns}{table.constraints}\n)"
		if timescale:
			sql = [
				ddl,
				f"SELECT create_hypertable('{table.qualified}', by_range('{table.time_column}',"
				f" INTERVAL '{PERIOD_INTERVAL[table.period]}'), if_not_exists => TRUE)",
			]
		else:
			sql = [
				f"{ddl} PARTITION BY RANGE ({table.time_column})",
				f"CREATE TABLE IF NOT EXISTS {table.qualified}_default PARTITION OF {table.qualified} DEFAULT",
				f"CREATE INDEX IF NOT EXISTS idx_{table.name}_time_brin"
				f" ON {table.qualified} USING brin ({table.time_column})",
			]
		# create_hypertable makes an index on the time column that the SQL does not name
		made = (("index", f"{table.schema}.{table.name}_{table.time_column}_idx"),) if timescale else ()
		result.append(
			Step(f"timeseries:{table.qualified}", ";\n".join([*sql, *table.indexes]), requires, made)
		)
	result.append(Step("timeseries:synapse.metrics_hourly", _rollup_sql(timescale), requires))
	# Applied steps never change; what comes later is a step of its own.
	result.append(
		Step(
			"timeseries:synapse.metrics_hourly:metric_index",
			# dashboards read one metric over a time range (works on a continuous aggregate too)
			"CREATE INDEX IF NOT EXISTS idx_metrics_hourly_metric ON synapse.metrics_hourly (metric_name, bucket DESC)",
			requires,
		)
	)
	if timescale:
		result.append(Step("timeseries:synapse.metrics_hourly:refresh", TIMESCALE_REFRESH_SQL, requires))
	return result


def _rollup_sql(timescale: bool) -> str:
	if timescale:
		# Seed 6.1: a continuous aggregate with an hourly refresh policy. WITH NO DATA lets it be
		# created inside the provisioning transaction; the policy fills it.
		return f"""
CREATE MATERIALIZED VIEW IF NOT EXISTS synapse.metrics_hourly WITH (timescaledb.continuous) AS
SELECT time_bucket(INTERVAL '1 hour', time) AS bucket, metric_name, dimensions,{ROLLUP_COLUMNS}
FROM synapse.metrics
GROUP BY bucket, metric_name, dimensions
WITH NO DATA;
SELECT add_continuous_aggregate_policy('synapse.metrics_hourly',
	start_offset => INTERVAL '3 days', end_offset => INTERVAL '1 hour',
	schedule_interval => INTERVAL '1 hour', if_not_exists => TRUE)"""
	return (
		"""
CREATE TABLE IF NOT EXISTS synapse.metrics_hourly (
	bucket timestamptz NOT NULL,
	metric_name varchar(100) NOT NULL,
	dimensions jsonb NOT NULL,
	avg_value double precision NOT NULL,
	min_value double precision NOT NULL,
	max_value double precision NOT NULL,
	sample_count bigint NOT NULL,
	PRIMARY KEY (bucket, metric_name, dimensions)
);"""
		+ INVALIDATION_SQL
	)


# The hours each insert statement touches, logged for refresh_rollups (both paths). Insert-only, so
# concurrent writers never wait on each other. (Statement triggers with a transition table work on
# hypertables too; only row triggers with one are refused there.)
INVALIDATION_SQL = """
CREATE TABLE IF NOT EXISTS synapse.rollup_invalidations (
	bucket timestamptz NOT NULL
);
CREATE OR REPLACE FUNCTION synapse.log_metrics_invalidation() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO synapse.rollup_invalidations (bucket)
	SELECT DISTINCT date_trunc('hour', time, 'UTC') FROM new_points;
	RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS metrics_invalidate_rollup ON synapse.metrics;
CREATE TRIGGER metrics_invalidate_rollup AFTER INSERT ON synapse.metrics
	REFERENCING NEW TABLE AS new_points FOR EACH STATEMENT
	EXECUTE FUNCTION synapse.log_metrics_invalidation()"""

# TimescaleDB: refresh_rollups refreshes the continuous aggregate for the logged hours, in place of
# the seed's policy (its end offset left the newest hour out, its start offset every late point).
TIMESCALE_REFRESH_SQL = (
	INVALIDATION_SQL.lstrip("\n")
	+ """;
SELECT remove_continuous_aggregate_policy('synapse.metrics_hourly', if_exists => TRUE)"""
)


def uses_timescale(cur) -> bool:
	"""Which path this database took: whether synapse.metrics is a hypertable."""
	cur.execute("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')")
	if not cur.fetchone()[0]:
		return False
	cur.execute(
		"SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables"
		" WHERE hypertable_schema = 'synapse' AND hypertable_name = 'metrics')"
	)
	return cur.fetchone()[0]


# --- retention ---------------------------------------------------------------------------------


def retention(retention_days: dict[str, int | None], table: "TimeSeriesTable") -> int | None:
	"""Days of `table` to keep: None (or 0) keeps everything; anything else must be a whole number >= 1."""
	days = retention_days.get(table.qualified)
	if days is None or days == 0:
		return None
	if not isinstance(days, int) or isinstance(days, bool) or days < 1:
		raise CauldronDBError(
			f"retention of {table.qualified} must be a whole number of days >= 1, got {days!r}"
		)
	return days


def apply_retention_policies(cur, retention_days: dict[str, int | None]) -> None:
	"""Make TimescaleDB's retention policies match the settings (qualified table -> days or None).

	Not for core.audit_log: its chunks must be anchored in the hash chain before they go, so
	`maintain_partitions` drops them. On the native path it drops every table's partitions.
	"""
	days = {table: retention(retention_days, table) for table in TABLES}
	if not uses_timescale(cur):
		return
	for table in TABLES:
		if table is AUDIT_LOG:
			continue
		# A policy already keeping the same number of days is left alone, with its job id and history.
		cur.execute(
			"""
			SELECT (config->>'drop_after')::interval FROM timescaledb_information.jobs
			WHERE proc_name = 'policy_retention' AND hypertable_schema = %s AND hypertable_name = %s
			""",
			(table.schema, table.name),
		)
		current = [row[0] for row in cur.fetchall()]
		wanted = [timedelta(days=days[table])] if days[table] else []
		if current == wanted:
			continue
		cur.execute("SELECT remove_retention_policy(%s, if_exists => TRUE)", (table.qualified,))
		if days[table]:
			cur.execute(
				"SELECT add_retention_policy(%s, drop_after => make_interval(days => %s))",
				(table.qualified, days[table]),
			)


# --- native partitions -------------------------------------------------------------------------

# Partition DDL waits at most this long for its lock, so that document writes never queue behind it
# for long; what could not get its lock is deferred to the next run.
LOCK_TIMEOUT = "2s"


def period_start(moment: datetime, period: str) -> datetime:
	moment = moment.astimezone(timezone.utc)
	day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
	if period == "day":
		return day
	if period == "week":
		return day - timedelta(days=day.weekday())
	return day.replace(day=1)


def period_end(start: datetime, period: str) -> datetime:
	if period == "day":
		return start + timedelta(days=1)
	if period == "week":
		return start + timedelta(days=7)
	return (start + timedelta(days=32)).replace(day=1)


def partition_name(table: TimeSeriesTable, start: datetime) -> str:
	return f"{table.name}_p{start:%Y%m%d}"


def partitions(cur, table: TimeSeriesTable) -> list[tuple[str, datetime, datetime]]:
	"""(name, lower, upper) of each range partition, oldest first; the default partition is not listed.

	The bounds are cast back by Postgres itself, in the same session that rendered them, so no
	DateStyle or TimeZone setting can make them unreadable.
	"""
	cur.execute(
		r"""
		SELECT c.relname, b[1]::timestamptz, b[2]::timestamptz
		FROM pg_inherits i
		JOIN pg_class c ON c.oid = i.inhrelid
		CROSS JOIN LATERAL regexp_match(
			pg_get_expr(c.relpartbound, c.oid), 'FROM \(''([^'']+)''\) TO \(''([^'']+)''\)'
		) AS b
		WHERE i.inhparent = %s::regclass AND b IS NOT NULL
		ORDER BY 2
		""",
		(table.qualified,),
	)
	return cur.fetchall()


def _relation(schema: str, name: str) -> sql.Composable:
	return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(name))


def ensure_partition(cur, table: TimeSeriesTable, start: datetime) -> bool:
	"""Create the partition that begins at `start`; returns whether it was created.

	Built beside the table and ATTACHed, which locks the parent only against other DDL (not against
	writers, as CREATE TABLE ... PARTITION OF would). Rows already sitting in the default partition
	for that range move into it in the same transaction.
	"""
	end = period_end(start, table.period)
	name = partition_name(table, start)
	cur.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{table.schema}.{name}",))
	if cur.fetchone()[0]:
		return False
	target = _relation(table.schema, name)
	parent = _relation(table.schema, table.name)
	default = _relation(table.schema, f"{table.name}_default")
	time_column = sql.Identifier(table.time_column)
	cur.execute(
		sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)").format(target, parent)
	)
	cur.execute(
		sql.SQL(
			"WITH moved AS (DELETE FROM {default} WHERE {col} >= %s AND {col} < %s RETURNING *)"
			" INSERT INTO {target} SELECT * FROM moved"
		).format(default=default, col=time_column, target=target),
		(start, end),
	)
	cur.execute(
		sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM (%s) TO (%s)").format(parent, target),
		(start, end),
	)
	return True


def maintain_partitions(
	cur, retention_days: dict[str, int | None], now: datetime | None = None
) -> dict[str, dict[str, list[str]]]:
	"""The daily job: partitions (TimescaleDB: chunks) ahead, rows out of the default partition,
	retention.

	Retention drops whole partitions (TimescaleDB: core.audit_log's chunks; the other tables have
	TimescaleDB's retention policies) whose every row is older than the limit; it never DELETEs.
	Returns, per table, the partitions or chunks created, dropped, and deferred because their lock
	was not free within LOCK_TIMEOUT.
	"""
	now = now or datetime.now(timezone.utc)
	days = {table: retention(retention_days, table) for table in TABLES}
	timescale = uses_timescale(cur)
	cur.execute("SELECT current_setting('lock_timeout')")
	(previous_timeout,) = cur.fetchone()
	cur.execute("SELECT set_config('lock_timeout', %s, true)", (LOCK_TIMEOUT,))
	report = {}
	try:
		if timescale:
			for table in TABLES:
				report[table.qualified] = _ensure_chunks(cur, table, now)
			dropped, deferred = _drop_audit_chunks(cur, days[AUDIT_LOG], now)
			report[AUDIT_LOG.qualified]["dropped"] = dropped
			report[AUDIT_LOG.qualified]["deferred"] += deferred
			return report
		for table in TABLES:
			done = {"created": [], "dropped": [], "deferred": []}
			starts = []
			start = period_start(now, table.period)
			for _ in range(AHEAD[table.period] + 1):
				starts.append(start)
				start = period_end(start, table.period)
			cur.execute(
				sql.SQL("SELECT DISTINCT date_trunc('day', {}, 'UTC') FROM {}").format(
					sql.Identifier(table.time_column), _relation(table.schema, f"{table.name}_default")
				)
			)
			starts += sorted({period_start(day, table.period) for (day,) in cur.fetchall()})
			for begin in dict.fromkeys(starts):
				waited, created = _without_waiting(cur, ensure_partition, cur, table, begin)
				if waited or created:
					done["deferred" if waited else "created"].append(partition_name(table, begin))
			if days[table]:
				cutoff = now - timedelta(days=days[table])
				for name, _low, high in partitions(cur, table):
					if high <= cutoff:
						waited, _ = _without_waiting(cur, _drop_partition, cur, table, name)
						done["deferred" if waited else "dropped"].append(name)
			report[table.qualified] = done
	finally:
		# (an aborted transaction ends with its settings; resetting there would hide the error)
		if cur.connection.get_transaction_status() != extensions.TRANSACTION_STATUS_INERROR:
			cur.execute("SELECT set_config('lock_timeout', %s, true)", (previous_timeout,))
	return report


def _without_waiting(cur, action, *args) -> tuple[bool, object]:
	"""Run one partition change in a savepoint: (True, None) if its lock was not free in time."""
	cur.execute("SAVEPOINT cauldron_partition")
	try:
		result = action(*args)
	except errors.LockNotAvailable:
		cur.execute("ROLLBACK TO SAVEPOINT cauldron_partition")
		return True, None
	cur.execute("RELEASE SAVEPOINT cauldron_partition")
	return False, result


def _drop_partition(cur, table: TimeSeriesTable, name: str) -> None:
	relation = _relation(table.schema, name)
	if table is AUDIT_LOG:
		# anchor the hash chain first, so verification can continue after the dropped rows
		audit.anchor_before_drop(cur, relation)
	cur.execute(sql.SQL("DROP TABLE {}").format(relation))


# --- TimescaleDB chunks ------------------------------------------------------------------------


def _chunk_ranges(cur, table: TimeSeriesTable) -> tuple[int, list[tuple[int, int]]]:
	"""The hypertable's chunk width and its chunks' (start, end), in TimescaleDB's internal time
	(microseconds since the Unix epoch)."""
	# extract(epoch ...) is numeric, so the microseconds are exact
	cur.execute(
		"""
		SELECT (extract(epoch FROM time_interval) * 1000000)::bigint
		FROM timescaledb_information.dimensions
		WHERE hypertable_schema = %s AND hypertable_name = %s AND column_name = %s
		""",
		(table.schema, table.name, table.time_column),
	)
	(width,) = cur.fetchone()
	cur.execute(
		"""
		SELECT (extract(epoch FROM range_start) * 1000000)::bigint,
			(extract(epoch FROM range_end) * 1000000)::bigint
		FROM timescaledb_information.chunks
		WHERE hypertable_schema = %s AND hypertable_name = %s
		""",
		(table.schema, table.name),
	)
	return width, cur.fetchall()


def _internal_time(moment: datetime) -> int:
	return (moment - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(microseconds=1)


def _ensure_chunks(cur, table: TimeSeriesTable, now: datetime) -> dict[str, list[str]]:
	"""Create the chunks of the current period and AHEAD periods ahead, as the native path does its
	partitions: a writer into a period whose chunk exists takes no lock another writer waits on.

	Each chunk gets the range TimescaleDB itself would give it (its width, aligned on the epoch); a
	range a chunk already overlaps (the width was changed by hand) is left to TimescaleDB.
	"""
	done = {"created": [], "dropped": [], "deferred": []}
	width, existing = _chunk_ranges(cur, table)
	horizon = period_start(now, table.period)
	for _ in range(AHEAD[table.period] + 1):
		horizon = period_end(horizon, table.period)
	start = _internal_time(now) // width * width
	while start < _internal_time(horizon):
		end = start + width
		if not any(low < end and start < high for low, high in existing):
			waited, chunk = _without_waiting(cur, _create_chunk, cur, table, start, end)
			if waited:
				label = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=start)
				done["deferred"].append(f"{table.name} chunk from {label:%Y-%m-%d %H:%M}")
			else:
				done["created"].append(chunk)
		start = end
	return done


def _create_chunk(cur, table: TimeSeriesTable, start: int, end: int) -> str:
	# TimescaleDB's own chunk creation (what an insert into the range would do), without a row.
	cur.execute(
		"SELECT format('%%I.%%I', schema_name, table_name)"
		" FROM _timescaledb_functions.create_chunk(%s::regclass, %s::jsonb)",
		(table.qualified, json.dumps({table.time_column: [start, end]})),
	)
	return cur.fetchone()[0]


def _drop_audit_chunks(cur, days: int | None, now: datetime) -> tuple[list[str], list[str]]:
	"""TimescaleDB path: core.audit_log's retention, (dropped, deferred) chunks.

	Each chunk is locked (within LOCK_TIMEOUT, else deferred to the next run, as native partitions
	are), anchored in the hash chain, then dropped with drop_chunks over exactly its range.
	"""
	if not days:
		return [], []
	cutoff = now - timedelta(days=days)
	cur.execute(
		"""
		SELECT format('%%I.%%I', chunk_schema, chunk_name), range_start, range_end
		FROM timescaledb_information.chunks
		WHERE hypertable_schema = 'core' AND hypertable_name = 'audit_log' AND range_end <= %s
		ORDER BY range_start
		""",
		(cutoff,),
	)
	dropped, deferred = [], []
	for chunk, low, high in cur.fetchall():
		waited, _ = _without_waiting(cur, _drop_audit_chunk, cur, chunk, low, high)
		(deferred if waited else dropped).append(chunk)
	return dropped, deferred


def _drop_audit_chunk(cur, chunk: str, low: datetime, high: datetime) -> None:
	relation = sql.SQL(chunk)  # quoted by format('%I.%I') above
	cur.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(relation))
	audit.anchor_before_drop(cur, relation)
	cur.execute(
		"SELECT drop_chunks('core.audit_log', older_than => %s::timestamptz, newer_than => %s::timestamptz)",
		(high, low),
	)


# --- metrics -----------------------------------------------------------------------------------


def _point_row(point) -> tuple[str, str, float, str]:
	time, metric_name, value, dimensions = point
	if not isinstance(time, datetime) or time.tzinfo is None:
		raise CauldronDBError(f"metric time must be a timezone-aware datetime, got {time!r}")
	if not isinstance(metric_name, str) or not metric_name.strip() or len(metric_name) > 100:
		raise CauldronDBError(f"metric_name must be 1 to 100 characters, got {metric_name!r}")
	try:
		value = float(value)
	except (TypeError, ValueError):
		raise CauldronDBError(f"metric {metric_name!r}: value {value!r} is not a number") from None
	if not math.isfinite(value):
		raise CauldronDBError(f"metric {metric_name!r}: value {value!r} is not finite")
	if dimensions is None:
		dimensions = {}
	if not isinstance(dimensions, dict):
		raise CauldronDBError(f"metric {metric_name!r}: dimensions must be an object, got {dimensions!r}")
	return time.isoformat(), metric_name, value, json.dumps(dimensions, sort_keys=True, default=str)


def write_metrics(cur, points: Iterable[tuple]) -> int:
	"""Write (time, metric_name, value, dimensions) points with one COPY; returns the count.

	Every point is checked before anything is sent, so a bad point loses none of the others:
	the call fails whole and the caller's transaction decides.
	"""
	rows = [_point_row(p) for p in points]
	if not rows:
		return 0
	buffer = io.StringIO()
	csv.writer(buffer).writerows(rows)
	buffer.seek(0)
	cur.copy_expert(
		"COPY synapse.metrics (time, metric_name, value, dimensions) FROM STDIN WITH (FORMAT csv)", buffer
	)
	return len(rows)


def refresh_rollups(cur) -> int:
	"""Recompute the hours of `synapse.metrics_hourly` touched since the last refresh; returns how many.

	On TimescaleDB this refreshes the continuous aggregate for those hours, which TimescaleDB allows
	only outside a transaction: call it with no transaction open on the cursor's connection (it
	runs in autocommit and leaves the connection as it found it).
	"""
	conn = cur.connection
	idle = conn.autocommit or conn.get_transaction_status() == extensions.TRANSACTION_STATUS_IDLE
	if uses_timescale(cur):
		if not idle:
			raise CauldronDBError(
				"on TimescaleDB, refresh_rollups refreshes a continuous aggregate, which cannot run"
				" inside a transaction: commit first"
			)
		return _refresh_continuous_aggregate(conn)
	cur.execute("SELECT pg_advisory_xact_lock(hashtext('cauldron.metrics_hourly'))")
	cur.execute(
		"""
		CREATE TEMP TABLE rollup_buckets ON COMMIT DROP AS
		WITH taken AS (DELETE FROM synapse.rollup_invalidations RETURNING bucket)
		SELECT DISTINCT bucket FROM taken
		"""
	)
	cur.execute("DELETE FROM synapse.metrics_hourly h USING rollup_buckets b WHERE h.bucket = b.bucket")
	# Read raw points only within the touched hours, merged into runs of consecutive hours: one late
	# point from last month costs an hour's scan, not a month's.
	cur.execute(
		f"""
		INSERT INTO synapse.metrics_hourly
			(bucket, metric_name, dimensions, avg_value, min_value, max_value, sample_count)
		SELECT date_trunc('hour', m.time, 'UTC') AS bucket, m.metric_name, m.dimensions,{ROLLUP_COLUMNS}
		FROM (
			SELECT min(bucket) AS low, max(bucket) + INTERVAL '1 hour' AS high
			FROM (
				SELECT bucket, bucket - row_number() OVER (ORDER BY bucket) * INTERVAL '1 hour' AS run
				FROM rollup_buckets
			) numbered
			GROUP BY run
		) runs
		JOIN synapse.metrics m ON m.time >= runs.low AND m.time < runs.high
		GROUP BY 1, 2, 3
		"""
	)
	cur.execute("SELECT count(*) FROM rollup_buckets")
	count = cur.fetchone()[0]
	cur.execute("DROP TABLE rollup_buckets")
	return count


def _refresh_continuous_aggregate(conn) -> int:
	"""TimescaleDB: refresh synapse.metrics_hourly over each run of logged hours, then forget the log
	rows that were read (rows logged meanwhile stay for the next run)."""
	autocommit = conn.autocommit
	if not autocommit:
		conn.rollback()  # only uses_timescale's read was open
		conn.autocommit = True
	try:
		with conn.cursor() as cur:
			# One refresher at a time; a session lock, since every statement commits on its own.
			cur.execute("SELECT pg_advisory_lock(hashtext('cauldron.metrics_hourly'))")
			try:
				cur.execute("SELECT ctid::text, bucket FROM synapse.rollup_invalidations")
				logged = cur.fetchall()
				hours = sorted({bucket for _ctid, bucket in logged})
				# force (TimescaleDB 2.18+): recompute the logged hours whatever TimescaleDB's own
				# invalidation log says. 2.29 logs none for a COPY into a hypertable that has a
				# statement trigger with a transition table, as synapse.metrics does.
				cur.execute(
					"SELECT EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'refresh_continuous_aggregate'"
					" AND 'force' = ANY(proargnames))"
				)
				force = ", force => TRUE" if cur.fetchone()[0] else ""
				for low, high in _runs(hours):
					cur.execute(
						f"CALL refresh_continuous_aggregate('synapse.metrics_hourly', %s, %s{force})",
						(low, high),
					)
				cur.execute(
					"DELETE FROM synapse.rollup_invalidations WHERE ctid = ANY(%s::tid[])",
					([ctid for ctid, _bucket in logged],),
				)
			finally:
				cur.execute("SELECT pg_advisory_unlock(hashtext('cauldron.metrics_hourly'))")
	finally:
		conn.autocommit = autocommit
	return len(hours)


def _runs(hours: list[datetime]) -> list[tuple[datetime, datetime]]:
	"""Sorted hours merged into [low, high) runs of consecutive hours."""
	runs = []
	for hour in hours:
		if runs and runs[-1][1] == hour:
			runs[-1][1] = hour + timedelta(hours=1)
		else:
			runs.append([hour, hour + timedelta(hours=1)])
	return [(low, high) for low, high in runs]
