from cauldron import db
from cauldron.model import UUIDNamedDocument


class LoreEntity(UUIDNamedDocument):
	def on_update(self):
		# a new name or description: queued to be embedded again (cauldron.lore.graph)
		from cauldron.api import lore

		lore.entity_changed(self)


def on_doctype_update():
	# search hits look up their documents' entities by metadata source_document_ids
	from cauldron.lore import graph

	db.cursor().execute(graph.DOCUMENT_LINK_INDEX)
