from cauldron.model import UUIDNamedDocument


class LoreSkillProfile(UUIDNamedDocument):
	pass
