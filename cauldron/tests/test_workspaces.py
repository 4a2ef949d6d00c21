"""Bench tier: each area's workspace shows to its role (and not to a plain user), and its number
cards count what their filters say."""

import json

import frappe
from frappe.desk.desktop import get_workspace_sidebar_items
from frappe.desk.doctype.number_card.number_card import get_result
from frappe.tests.utils import FrappeTestCase

from cauldron.tests.factories import make, user_with_roles

WORKSPACES = {
	"Cauldron": "Cauldron Manager",
	"Lore": "Knowledge Editor",
	"Synapse": "Synapse Analyst",
	"Aegis": "Security Analyst",
	"Aether": "Agent Operator",
}


def visible_workspaces(user: str) -> set[str]:
	frappe.set_user(user)
	try:
		return {page["name"] for page in get_workspace_sidebar_items()["pages"]} & set(WORKSPACES)
	finally:
		frappe.set_user("Administrator")


class TestWorkspaces(FrappeTestCase):
	def test_each_area_sees_its_own_workspace_and_a_plain_user_none(self):
		for workspace, role in WORKSPACES.items():
			user = f"cauldron-ws-{frappe.scrub(role).replace('_', '-')}@example.com"
			user_with_roles(user, role)
			self.assertIn(workspace, visible_workspaces(user), role)
		user_with_roles("cauldron-ws-plain@example.com")
		self.assertEqual(visible_workspaces("cauldron-ws-plain@example.com"), set())

	def test_number_cards_count_by_their_filters(self):
		cards = frappe.get_all("Number Card", filters={"module": ("in", list(WORKSPACES))}, pluck="name")
		self.assertTrue(cards)
		for name in cards:
			with self.subTest(name):
				card = frappe.get_doc("Number Card", name)
				before = count(card)
				make_counted(card)
				self.assertEqual(count(card), before + 1)
		pending = frappe.get_doc("Number Card", "Aether Pending Approvals")
		approval = make("Aether HITL Approval")
		before = count(pending)
		approval.status = "rejected"
		approval.save()
		self.assertEqual(count(pending), before - 1)


def make_counted(card) -> None:
	"""A document the card counts. An agent task is running only once an instance claims it."""
	fields = matching(card)
	if card.document_type == "Aether Agent Task" and fields.get("status") == "running":
		from cauldron import db
		from cauldron.aether import tasks

		instance = make("Aether Agent Instance").name
		task = make(card.document_type, **{**fields, "status": "pending", "task_type": "custom"}).name
		claimed = tasks.claim(db.cursor(), instance, ["custom"], limit=tasks.MAX_CLAIM)
		assert task in [t.name for t in claimed], (task, claimed)
		return
	make(card.document_type, **fields)


def count(card) -> int:
	return get_result(card.as_json(), card.filters_json)


def matching(card) -> dict:
	"""Field values of a document the card counts."""
	values = {}
	for _doctype, fieldname, operator, value in json.loads(card.filters_json):
		if operator == "=":
			values[fieldname] = value
		elif operator == "in":
			values[fieldname] = value[0]
		else:
			raise AssertionError(f"{card.name}: no matching value for operator {operator}")
	return values
