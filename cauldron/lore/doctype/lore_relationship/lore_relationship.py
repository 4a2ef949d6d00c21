from cauldron.model import UUIDNamedDocument, check_range


class LoreRelationship(UUIDNamedDocument):
	def validate(self):
		check_range(self, "confidence", 0, 1)
