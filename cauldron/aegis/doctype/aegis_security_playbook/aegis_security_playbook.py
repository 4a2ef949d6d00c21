from cauldron.model import UUIDNamedDocument


class AegisSecurityPlaybook(UUIDNamedDocument):
	pass
