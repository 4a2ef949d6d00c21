from cauldron.virtual import ReadOnlyTableDocument, RealTable


class AegisSecurityEvent(ReadOnlyTableDocument):
	real_table = RealTable(
		relation="aegis.security_events",
		name="id::text",
		columns={
			"event_time": "event_time",
			"event_type": "event_type",
			"source": "source",
			"severity": "severity",
			"is_incident": "is_incident::int",
			"created_at": "created_at",
			"description": "description",
			"raw_data": "raw_data",
			"processed_data": "processed_data",
		},
		time_column="event_time",
		written_by="security event collectors",
	)
