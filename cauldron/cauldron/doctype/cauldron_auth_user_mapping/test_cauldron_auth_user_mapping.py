import uuid

import frappe
from frappe.tests.utils import FrappeTestCase

from cauldron.tests.factories import make, refused_by_postgres


class TestCauldronAuthUserMapping(FrappeTestCase):
	def test_the_external_id_is_a_uuid_in_one_spelling(self):
		with self.assertRaisesRegex(frappe.ValidationError, "must be a UUID"):
			make("Cauldron Auth User Mapping", auth_user_id="auth0|12345")
		external = uuid.uuid4()
		mapping = make("Cauldron Auth User Mapping", auth_user_id=str(external).upper())
		self.assertEqual(mapping.auth_user_id, str(external))

	def test_an_external_id_maps_to_one_user_only(self):
		external = str(uuid.uuid4())
		make("Cauldron Auth User Mapping", auth_user_id=external)
		with self.assertRaises(frappe.UniqueValidationError), refused_by_postgres():
			make("Cauldron Auth User Mapping", auth_user_id=external.upper())
