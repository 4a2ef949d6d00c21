import frappe
from frappe import _

from cauldron.model import UUIDNamedDocument, add_unique_index, check_unique_together


class CauldronStorageObject(UUIDNamedDocument):
	def validate(self):
		check_unique_together(self, "bucket", "object_name")
		self.check_file_visibility()

	def check_file_visibility(self):
		if not self.file or frappe.db.get_value("Cauldron Storage Bucket", self.bucket, "public"):
			return
		if not self.file.startswith("/private/files/"):
			frappe.throw(
				_("Bucket {0} is private: attach its objects as private files.").format(
					frappe.bold(self.bucket)
				),
				title=_("Public file in a private bucket"),
			)


def on_doctype_update():
	add_unique_index("Cauldron Storage Object", "bucket", "object_name")
