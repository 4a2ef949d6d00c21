"""Where a time-series row lives, on either path: a native range partition or a TimescaleDB chunk."""

from datetime import datetime

from cauldron.pg import timeseries


def containers(cur, table: timeseries.TimeSeriesTable) -> list[tuple[str, datetime, datetime]]:
	"""(name as maintain_partitions reports it, lower, upper) of each partition or chunk, oldest first."""
	if timeseries.uses_timescale(cur):
		cur.execute(
			"""
			SELECT format('%%I.%%I', chunk_schema, chunk_name), range_start, range_end
			FROM timescaledb_information.chunks
			WHERE hypertable_schema = %s AND hypertable_name = %s
			ORDER BY range_start
			""",
			(table.schema, table.name),
		)
		return cur.fetchall()
	return timeseries.partitions(cur, table)


def container_of(cur, table: timeseries.TimeSeriesTable, moment: datetime):
	"""The (name, lower, upper) holding `moment`, or None."""
	return next((c for c in containers(cur, table) if c[1] <= moment < c[2]), None)
