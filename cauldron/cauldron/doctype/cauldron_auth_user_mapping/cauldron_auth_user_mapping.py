import uuid

import frappe
from frappe import _

from cauldron.model import UUIDNamedDocument, is_uuid


class CauldronAuthUserMapping(UUIDNamedDocument):
	def validate(self):
		if not is_uuid(self.auth_user_id):
			frappe.throw(_("Auth User ID must be a UUID, not {0}.").format(frappe.bold(self.auth_user_id)))
		# One spelling per id, or the unique constraint could be sidestepped by case.
		self.auth_user_id = str(uuid.UUID(self.auth_user_id))
