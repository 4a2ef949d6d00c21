from cauldron.virtual import ReadOnlyTableDocument, RealTable


class AetherAgentInteraction(ReadOnlyTableDocument):
	real_table = RealTable(
		relation="aether.agent_interactions",
		name="id::text",
		columns={
			"created_at": "created_at",
			"agent_instance_id": "agent_instance_id",
			"session_id": "session_id",
			"interaction_type": "interaction_type",
			"content": "content",
			"metadata": "metadata",
		},
		time_column="created_at",
		written_by="agents, through cauldron.api.aether.record_interactions",
		uuid_fields=frozenset({"agent_instance_id", "session_id"}),
	)
