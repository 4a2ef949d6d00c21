from cauldron.model import UUIDNamedDocument, check_range


class AegisThreat(UUIDNamedDocument):
	def validate(self):
		check_range(self, "confidence", 0, 1)
