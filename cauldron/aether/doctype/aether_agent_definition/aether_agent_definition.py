from cauldron.model import UUIDNamedDocument, refuse_secrets


class AetherAgentDefinition(UUIDNamedDocument):
	def validate(self):
		refuse_secrets(self, "model_config", "model_api_key")
