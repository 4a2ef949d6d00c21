from cauldron.model import UUIDNamedDocument


class AetherAgentInstance(UUIDNamedDocument):
	def validate(self):
		# Memory and state carry a version (cauldron.aether.tasks.update_instance): a change made in
		# the form raises it too, so an agent holding the old version is told to read again.
		before = self.get_doc_before_save()
		if before is None:
			self.version = 0
		elif self.has_value_changed("memory") or self.has_value_changed("state"):
			self.version = (before.version or 0) + 1
		else:
			self.version = before.version
