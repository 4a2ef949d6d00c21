from cauldron.model import UUIDNamedDocument, refuse_secrets


class LoreKnowledgeSource(UUIDNamedDocument):
	def validate(self):
		refuse_secrets(self, "connection_config", "connection_secret")
