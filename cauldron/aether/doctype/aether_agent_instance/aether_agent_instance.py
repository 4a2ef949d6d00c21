from cauldron.model import UUIDNamedDocument


class AetherAgentInstance(UUIDNamedDocument):
	pass
