from cauldron.model import UUIDNamedDocument


class SynapseBusinessSimulation(UUIDNamedDocument):
	pass
