import frappe
from frappe.tests.utils import FrappeTestCase

from cauldron import db
from cauldron.tests.factories import make


class TestCauldronStorageObject(FrappeTestCase):
	def test_an_object_path_is_unique_within_its_bucket(self):
		obj = make("Cauldron Storage Object", object_name="a/b/c.txt")
		with self.assertRaises(frappe.UniqueValidationError):
			make("Cauldron Storage Object", bucket=obj.bucket, object_name="a/b/c.txt")
		self.assertTrue(make("Cauldron Storage Object", object_name="a/b/c.txt").name)

	def test_a_private_bucket_holds_only_private_files(self):
		private = make("Cauldron Storage Bucket", public=0)
		with self.assertRaisesRegex(frappe.ValidationError, "is private"):
			make("Cauldron Storage Object", bucket=private.name, file="/files/report.pdf")
		make("Cauldron Storage Object", bucket=private.name, file="/private/files/report.pdf")
		public = make("Cauldron Storage Bucket", public=1)
		make("Cauldron Storage Object", bucket=public.name, file="/files/report.pdf")

	def test_path_tokens_are_the_path_split_on_slashes(self):
		obj = make("Cauldron Storage Object", object_name="reports/2026/q1.pdf")
		cur = db.cursor()
		cur.execute("SELECT path_tokens, metadata->>'size' FROM storage.objects WHERE id = %s", (obj.name,))
		self.assertEqual(cur.fetchone(), (["reports", "2026", "q1.pdf"], "1024"))
