import re

from cauldron.virtual import ReadOnlyTableDocument, RealTable

NAME = re.compile(r"^(\d+)-([0-9a-f]{12})$")
POINT_HASH = "left(md5(metric_name || '|' || dimensions::text || '|' || value::text), 12)"


def lookup(name: str):
	"""<epoch microseconds>-<hash>: the time finds the partition and index, the hash the point."""
	match = NAME.match(name)
	if not match:
		return None
	return (
		f"time = 'epoch'::timestamptz + %s::bigint * interval '1 microsecond' AND {POINT_HASH} = %s",
		(int(match.group(1)), match.group(2)),
	)


class SynapseMetric(ReadOnlyTableDocument):
	real_table = RealTable(
		relation="synapse.metrics",
		name=f"(extract(epoch FROM time) * 1000000)::bigint::text || '-' || {POINT_HASH}",
		columns={
			"time": "time",
			"metric_name": "metric_name",
			"value": "value",
			"dimensions": "dimensions",
		},
		time_column="time",
		written_by="cauldron.pg.timeseries.write_metrics (batched COPY)",
		lookup=lookup,
	)
