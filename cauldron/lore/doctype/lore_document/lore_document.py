from cauldron.api import lore
from cauldron.model import UUIDNamedDocument


class LoreDocument(UUIDNamedDocument):
	def on_update(self):
		# queued for embedding in this save's transaction; a worker is woken after the commit
		lore.document_changed(self)
