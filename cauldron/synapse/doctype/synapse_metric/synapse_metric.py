from cauldron.virtual import ReadOnlyTableDocument, RealTable, by_time_and_hash, time_and_hash_name

POINT_HASH = "left(md5(metric_name || '|' || dimensions::text || '|' || value::text), 12)"


class SynapseMetric(ReadOnlyTableDocument):
	real_table = RealTable(
		relation="synapse.metrics",
		name=time_and_hash_name("time", POINT_HASH),
		columns={
			"time": "time",
			"metric_name": "metric_name",
			"value": "value",
			"dimensions": "dimensions",
		},
		time_column="time",
		written_by="cauldron.pg.timeseries.write_metrics (batched COPY)",
		lookup=by_time_and_hash("time", POINT_HASH),
	)
