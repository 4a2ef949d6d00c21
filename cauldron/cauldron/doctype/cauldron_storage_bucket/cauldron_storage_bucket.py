from cauldron.model import SeedDocument


class CauldronStorageBucket(SeedDocument):
	pass
