from frappe.utils import now_datetime

from cauldron.model import UUIDNamedDocument

RESOLVED = ("resolved", "closed")


class AegisSecurityIncident(UUIDNamedDocument):
	def validate(self):
		if self.status in RESOLVED:
			self.resolved_at = self.resolved_at or now_datetime()
		else:
			self.resolved_at = None
