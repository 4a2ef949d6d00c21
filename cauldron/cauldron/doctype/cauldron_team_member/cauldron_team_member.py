from cauldron.model import UUIDNamedDocument, add_unique_index, check_unique_together


class CauldronTeamMember(UUIDNamedDocument):
	def validate(self):
		check_unique_together(self, "team", "user")


def on_doctype_update():
	add_unique_index("Cauldron Team Member", "team", "user")
