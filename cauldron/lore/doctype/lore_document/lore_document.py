from cauldron.model import UUIDNamedDocument


class LoreDocument(UUIDNamedDocument):
	pass
