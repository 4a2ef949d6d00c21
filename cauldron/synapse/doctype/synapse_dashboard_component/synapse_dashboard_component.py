from cauldron.model import UUIDNamedDocument


class SynapseDashboardComponent(UUIDNamedDocument):
	pass
