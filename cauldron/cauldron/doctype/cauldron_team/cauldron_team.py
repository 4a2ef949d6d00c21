from cauldron.model import UUIDNamedDocument, add_unique_index, check_unique_together


class CauldronTeam(UUIDNamedDocument):
	def validate(self):
		check_unique_together(self, "organization", "team_name")


def on_doctype_update():
	add_unique_index("Cauldron Team", "organization", "team_name")
