from cauldron.model import UUIDNamedDocument


class CauldronOrganization(UUIDNamedDocument):
	def validate(self):
		# Domains are case-insensitive; storing them lowercase makes the unique constraint mean it.
		self.domain = (self.domain or "").strip().lower() or None
