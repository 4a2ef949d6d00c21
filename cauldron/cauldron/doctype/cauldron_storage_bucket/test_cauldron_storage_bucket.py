import frappe
from frappe.tests.utils import FrappeTestCase

from cauldron import db
from cauldron.tests.factories import make


class TestCauldronStorageBucket(FrappeTestCase):
	def test_a_bucket_is_named_by_its_name_and_keyed_by_a_uuid_in_sql(self):
		bucket = make("Cauldron Storage Bucket", bucket_owner="Administrator")
		self.assertEqual(bucket.name, bucket.bucket_name)
		cur = db.cursor()
		cur.execute(
			"SELECT id = md5('Cauldron Storage Bucket:' || name)::uuid, owner = md5('User:Administrator')::uuid"
			" FROM storage.buckets WHERE name = %s",
			(bucket.name,),
		)
		self.assertEqual(cur.fetchone(), (True, True))

	def test_a_bucket_with_objects_cannot_be_deleted(self):
		obj = make("Cauldron Storage Object")
		with self.assertRaises(frappe.LinkExistsError):
			frappe.delete_doc("Cauldron Storage Bucket", obj.bucket)
		frappe.delete_doc("Cauldron Storage Object", obj.name)
		frappe.delete_doc("Cauldron Storage Bucket", obj.bucket)
		self.assertFalse(frappe.db.exists("Cauldron Storage Bucket", obj.bucket))
