import frappe
from frappe.tests.utils import FrappeTestCase

from cauldron.api.storage import access


class TestCauldronStorageBucketRole(FrappeTestCase):
	def test_a_role_row_grants_its_access_and_nothing_more(self):
		bucket = frappe.get_doc(
			{
				"doctype": "Cauldron Storage Bucket",
				"bucket_name": "cauldron-test-role-rows",
				"roles": [{"role": "Knowledge Editor", "access": "read"}],
			}
		).insert(ignore_permissions=True)
		self.assertEqual(bucket.roles[0].access, "read")
		user = frappe.get_doc(
			{
				"doctype": "User",
				"email": "cauldron-role-row@example.com",
				"first_name": "Row",
				"send_welcome_email": 0,
			}
		).insert(ignore_permissions=True)
		row = {"name": bucket.name, "bucket_owner": None}
		self.assertIsNone(access(row, user.name))
		user.add_roles("Knowledge Editor")
		self.assertEqual(access(row, user.name), "read")
		bucket.roles[0].access = "write"
		bucket.save(ignore_permissions=True)
		self.assertEqual(access(row, user.name), "write")
