from cauldron.model import UUIDNamedDocument


class CauldronStorageBucketRole(UUIDNamedDocument):
	pass
