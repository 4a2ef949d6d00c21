from cauldron.model import UUIDNamedDocument


class SynapseDashboard(UUIDNamedDocument):
	pass
