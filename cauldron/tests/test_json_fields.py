"""Bench tier: a JSON field holds any JSON value, and a document loads back what it stored."""

import json

import frappe
from frappe.tests.utils import FrappeTestCase

from cauldron.tests.factories import make

# JSON texts of every kind of value; psycopg2 hands each back parsed, as a different Python type.
STORED = ('"abc"', '"{\\"a\\": 1}"', "5", "2.5", "true", '[1, "two"]', '{"a": [1, 2]}')


class TestJSONFields(FrappeTestCase):
	def test_every_json_value_loads_back_as_stored_and_saves_again(self):
		for text in STORED:
			with self.subTest(text):
				name = make("Lore Document", metadata=text).name
				document = frappe.get_doc("Lore Document", name)
				self.assertEqual(as_value(document.metadata), json.loads(text))
				document.title += " (edited)"
				document.save()
				self.assertEqual(as_value(frappe.get_doc("Lore Document", name).metadata), json.loads(text))

	def test_json_null_and_no_value_load_as_none(self):
		for text in ("null", ""):
			with self.subTest(text):
				name = make("Lore Document", metadata=text).name
				self.assertIsNone(frappe.get_doc("Lore Document", name).metadata)


def as_value(field):
	"""A loaded JSON field's value: Frappe keeps an object as a dict, anything else as JSON text."""
	return field if isinstance(field, dict) else json.loads(field)
