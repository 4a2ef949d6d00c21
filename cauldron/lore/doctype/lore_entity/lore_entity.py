from cauldron.model import UUIDNamedDocument


class LoreEntity(UUIDNamedDocument):
	pass
