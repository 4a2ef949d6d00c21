from cauldron.virtual import ReadOnlyTableDocument, RealTable


class CauldronAuditLog(ReadOnlyTableDocument):
	real_table = RealTable(
		relation="core.audit_log",
		name="id::text",
		columns={
			"created_at": "created_at",
			"action": "action",
			"resource_type": "resource_type",
			"resource_id": "resource_id",
			"user_id": "user_id",
			"ip_address": "ip_address",
			"user_agent": "user_agent",
			"old_values": "old_values",
			"new_values": "new_values",
		},
		time_column="created_at",
		written_by="Cauldron's document hooks",
	)
