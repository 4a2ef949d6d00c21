from cauldron.lore import sync
from cauldron.model import UUIDNamedDocument, refuse_secrets


class LoreKnowledgeSource(UUIDNamedDocument):
	def validate(self):
		refuse_secrets(self, "connection_config", "connection_secret")
		# DocType, File and URL sources: what they read must exist and be readable (cauldron.lore.sync)
		sync.check_source(self)

	def on_update(self):
		sync.source_changed(self)

	def on_trash(self):
		sync.source_deleted(self)
