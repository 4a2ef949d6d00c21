from cauldron.virtual import ReadOnlyTableDocument, RealTable, by_time_and_hash, time_and_hash_name

# One rollup row per bucket and series (metric and dimensions).
SERIES_HASH = "left(md5(metric_name || '|' || dimensions::text), 12)"


class SynapseMetricHourly(ReadOnlyTableDocument):
	real_table = RealTable(
		relation="synapse.metrics_hourly",
		name=time_and_hash_name("bucket", SERIES_HASH),
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
		lookup=by_time_and_hash("bucket", SERIES_HASH),
	)
