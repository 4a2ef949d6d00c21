import frappe
from frappe.utils import now_datetime

from cauldron.model import UUIDNamedDocument


class AetherHITLApproval(UUIDNamedDocument):
	def validate(self):
		# Whoever moves the request out of pending is the one who responded, and then.
		if self.status == "pending":
			self.responded_by = self.responded_at = None
		elif self.has_value_changed("status") or not self.responded_at:
			self.responded_by = frappe.session.user
			self.responded_at = now_datetime()
