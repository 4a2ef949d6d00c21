"""Bench tier, property-based: generated JSON of every shape, thrown at every whitelisted Cauldron
method as real HTTP requests by a user allowed to call it, never gets a 5xx, always gets strict
JSON back, and a refused call leaves the tables it writes exactly as they were.

Every method Frappe has whitelisted from the cauldron package is called, so a new endpoint is
covered the day it is added (with its own argument strategies below, or generic JSON for each of
its parameters). Hypothesis is in Frappe's development dependencies (hypothesis~=6.77).
"""

import importlib
import inspect
import json
import pkgutil

import frappe
from frappe.tests.utils import FrappeTestCase
from frappe.utils import now_datetime
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cauldron import db
from cauldron.pg import vectors
from cauldron.tests.factories import AREA_ROLE, delete_created_since, drop_user, make, rest, user_with_roles

USER = "cauldron-properties@example.com"
EXAMPLES = 60

# Text as a client can send it: any code point, lone surrogates and NUL included.
SPECIAL_TEXT = st.sampled_from(
	["\u0000", "a\u0000b", "\ud800", "x\udfffy", "", " ", "💥", "%", "_", "'", '"']
)
TEXT = st.one_of(SPECIAL_TEXT, st.text(st.characters(blacklist_categories=()), max_size=12))
NUMBERS = st.one_of(
	st.integers(min_value=-(2**80), max_value=2**80),
	st.sampled_from([0, 1, -1, 2**31 - 1, 2**31, 2**63 - 1, 2**63, 2**64]),
	st.floats(allow_nan=True, allow_infinity=True),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT)
JSON = st.recursive(
	SCALARS,
	lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
	max_leaves=12,
)


def deep(depth: int) -> str:
	return "[" * depth + "]" * depth


def as_parameter(values):
	"""A parameter as a client may send it: the JSON value itself in the body, its JSON text (also
	with NaN, which Python writes), or text that is no JSON, or nested far too deep."""
	return st.one_of(
		values,
		values.map(json.dumps),
		st.sampled_from(["not json", "{'a': 1}", "[1, 2", deep(5000), "[NaN]", "1e400", ""]),
	)


class TestEndpointProperties(FrappeTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.started = now_datetime()
		cls.token = user_with_roles(USER, *AREA_ROLE.values(), "Cauldron Auditor", "System Manager")
		cls.document = make("Lore Document").name
		cls.entity = make("Lore Entity").name
		cls.instance = make("Aether Agent Instance").name
		try:
			cls.dimension = vectors.table_dimension(db.cursor())
		except vectors.VectorsUnavailable:
			cls.dimension = 3
		frappe.db.commit()
		cls.strategies = cls.argument_strategies()

	@classmethod
	def tearDownClass(cls):
		delete_created_since(cls.started)
		drop_user(USER)
		frappe.db.commit()
		super().tearDownClass()

	@classmethod
	def argument_strategies(cls) -> dict:
		"""Per method: parameter -> strategy. Near-valid values reach past the first check."""
		embedding = st.one_of(
			st.lists(st.floats(min_value=-2, max_value=2), min_size=cls.dimension, max_size=cls.dimension),
			st.lists(NUMBERS | st.booleans(), min_size=cls.dimension, max_size=cls.dimension),
			st.just([0.0] * cls.dimension),
			JSON,
		)
		chunk = st.fixed_dictionaries(
			{},
			optional={
				"chunk_index": st.one_of(st.integers(min_value=0, max_value=5), NUMBERS, st.booleans(), TEXT),
				"content": st.one_of(TEXT, JSON),
				"embedding": embedding,
				"metadata": JSON,
			},
		)
		interaction = st.fixed_dictionaries(
			{},
			optional={
				"agent_instance_id": st.one_of(st.just(cls.instance), st.uuids().map(str), TEXT, JSON),
				"session_id": st.one_of(st.uuids().map(str), TEXT, NUMBERS),
				"interaction_type": st.one_of(st.sampled_from(["user_message", "tool_call"]), TEXT),
				"content": JSON,
				"metadata": JSON,
			},
		)
		doctypes = st.sampled_from(
			[
				"Lore Document",
				"Lore Document Chunk",
				"Synapse Metric",
				"Cauldron Audit Log",
				"Aether Agent Interaction",
				"Cauldron Settings",
			]
		)
		fieldnames = st.sampled_from(
			["name", "content", "chunk_index", "value", "time", "metric_name", "creation"]
		)
		operators = st.sampled_from(
			["=", "!=", ">", "like", "in", "not in", "between", "is", "timespan", "~"]
		)
		a_filter = st.one_of(st.tuples(fieldnames, operators, JSON).map(list), JSON)
		filters = st.one_of(
			st.lists(a_filter, max_size=3), st.dictionaries(fieldnames, JSON, max_size=2), JSON
		)
		return {
			"cauldron.api.lore.search": {
				"embedding": as_parameter(embedding),
				"limit": st.one_of(st.integers(min_value=-3, max_value=1003), SCALARS),
				"metadata_filter": as_parameter(JSON),
				"metric": st.one_of(st.sampled_from(list(vectors.METRICS)), TEXT, JSON),
			},
			"cauldron.api.lore.set_document_chunks": {
				"document": st.one_of(st.just(cls.document), TEXT, JSON),
				"chunks": as_parameter(st.lists(chunk, max_size=3) | JSON),
			},
			"cauldron.api.lore.set_entity_embedding": {
				"entity": st.one_of(st.just(cls.entity), TEXT, JSON),
				"embedding": as_parameter(embedding),
			},
			"cauldron.api.aether.record_interactions": {
				"interactions": as_parameter(st.lists(interaction, max_size=3) | JSON),
			},
			"cauldron.api.client.get_count": {
				"doctype": st.one_of(doctypes, TEXT, JSON),
				"filters": as_parameter(filters),
			},
		}

	def state(self) -> tuple:
		"""What the endpoints write, as committed (each request commits in its own connection)."""
		frappe.db.commit()
		cur = db.cursor()
		cur.execute(
			"""
			SELECT (SELECT coalesce(string_agg(md5(c::text), ',' ORDER BY c.chunk_index), '')
					FROM lore.document_chunks c WHERE document_id = %(document)s),
				(SELECT coalesce(md5(e::text), '') FROM lore.entity_embeddings e WHERE entity_id = %(entity)s),
				(SELECT count(*) FROM aether.agent_interactions),
				(SELECT count(*) FROM core.audit_log)
			""",
			{"document": self.document, "entity": self.entity},
		)
		return cur.fetchone()

	def check_call(self, path: str, arguments: dict) -> None:
		fn = frappe.get_attr(path)
		before = self.state()
		response = rest("post", f"/api/method/{path}", self.token, arguments)
		note = f"{path}({str(arguments)[:300]}) -> {response.status_code} {response.data[:1500]!r}"
		self.assertLess(response.status_code, 500, note)
		json.loads(response.data, parse_constant=lambda c: self.fail(f"{c} in the response: {note}"))
		if response.status_code != 200:
			self.assertEqual(self.state()[:3], before[:3], f"a refused call wrote: {note}")
		self.assertIn(fn, frappe.whitelisted)

	def test_every_whitelisted_cauldron_method_is_covered(self):
		import cauldron

		for module in pkgutil.walk_packages(cauldron.__path__, "cauldron."):
			if not module.name.startswith(("cauldron.tests", "cauldron.patches")):
				importlib.import_module(module.name)  # so that its whitelisted methods are registered
		methods = {
			f"{fn.__module__}.{fn.__name__}"
			for fn in frappe.whitelisted
			if fn.__module__.startswith("cauldron.")
		}
		self.assertTrue(set(self.strategies) <= methods, set(self.strategies) - methods)
		for path in sorted(methods):
			with self.subTest(path):
				self.run_method(path)

	def run_method(self, path: str) -> None:
		fn = frappe.get_attr(path)
		known = self.strategies.get(path, {})
		parameters = {name: known.get(name, as_parameter(JSON)) for name in inspect.signature(fn).parameters}
		arguments = st.fixed_dictionaries({}, optional=parameters)

		@settings(
			max_examples=EXAMPLES,
			deadline=None,
			database=None,
			suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
		)
		@given(arguments)
		def property(args):
			self.check_call(path, args)

		property()
