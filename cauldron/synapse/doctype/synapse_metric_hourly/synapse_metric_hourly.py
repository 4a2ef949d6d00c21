import re

from cauldron.virtual import ReadOnlyTableDocument, RealTable

NAME = re.compile(r"^(\d+)-([0-9a-f]{12})$")
SERIES_HASH = "left(md5(metric_name || '|' || dimensions::text), 12)"


def lookup(name: str):
	"""<bucket epoch microseconds>-<hash of metric and dimensions>: one rollup row."""
	match = NAME.match(name)
	if not match:
		return None
	return (
		f"bucket = 'epoch'::timestamptz + %s::bigint * interval '1 microsecond' AND {SERIES_HASH} = %s",
		(int(match.group(1)), match.group(2)),
	)


class SynapseMetricHourly(ReadOnlyTableDocument):
	real_table = RealTable(
		relation="synapse.metrics_hourly",
		name=f"(extract(epoch FROM bucket) * 1000000)::bigint::text || '-' || {SERIES_HASH}",
		columns={
			"bucket": "bucket",
			"metric_name": "metric_name",
			"dimensions": "dimensions",
			"avg_value": "avg_value",
			"min_value": "min_value",
			"max_value": "max_value",
			"sample_count": "sample_count",
		},
		time_column="bucket",
		written_by="the hourly rollup of synapse.metrics",
		lookup=lookup,
	)
