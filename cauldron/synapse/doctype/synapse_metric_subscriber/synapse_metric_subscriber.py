from cauldron.model import UUIDNamedDocument


class SynapseMetricSubscriber(UUIDNamedDocument):
	pass
