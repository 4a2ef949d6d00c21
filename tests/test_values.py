"""cauldron.pg.values: every incoming value a table or a JSON response cannot hold is refused with a
message naming it, whatever its depth or shape; and the Postgres layer's writes refuse them before
writing anything."""

import json
import sys

import pytest

from cauldron.pg import CauldronDBError, tables, values, vectors
from cauldron.pg.values import InvalidValue
from cauldron.pg.vectors import Chunk


def deep(depth: int) -> str:
	return "[" * depth + "]" * depth


@pytest.mark.parametrize(
	("value", "message"),
	[
		("a\x00b", r"metadata contains a NUL character \(\\u0000\)"),
		({"k": ["ok", "a\ud800"]}, r"metadata.k\[1\] contains a lone surrogate \(\\ud800\)"),
		({"a\x00": 1}, r"a key of metadata contains a NUL"),
		({"x": float("nan")}, r"metadata.x is nan"),
		([1, float("inf")], r"metadata\[1\] is inf"),
		({"n": 2**64}, r"metadata.n is a whole number beyond 64 bits"),
		({1: "a"}, r"metadata has a key that is not text"),
		({"s": {1, 2}}, r"metadata.s is a set, not a JSON value"),
		(json.loads(deep(values.MAX_DEPTH + 1)), rf"nested deeper than {values.MAX_DEPTH} levels"),
	],
)
def test_check_refuses_what_postgres_or_json_cannot_hold(value, message):
	with pytest.raises(InvalidValue, match=message):
		values.check(value, "metadata")


def test_check_takes_json_of_every_allowed_kind_and_counts_its_size():
	value = {"text": "héllo", "n": -(2**63) + 1, "f": 1.5e300, "t": True, "none": None, "list": [[[]]]}
	assert values.check(value, "metadata") > len("héllo")
	assert values.check(json.loads(deep(values.MAX_DEPTH)), "deep") > 0
	with pytest.raises(InvalidValue, match="larger than 1 KiB"):
		values.check(["x" * 600, "y" * 600], "chunks", max_bytes=1024)


def test_nesting_far_beyond_the_stack_is_refused_not_a_recursion_error():
	nested: list = []
	for _ in range(sys.getrecursionlimit() * 5):
		nested = [nested]
	with pytest.raises(InvalidValue, match="nested deeper"):
		values.check(nested, "filters")
	with pytest.raises(InvalidValue, match="nested deeper"):
		values.parse_json(deep(5000), "chunks")


@pytest.mark.parametrize(
	("text", "message"),
	[
		("not json", "embedding is not valid JSON"),
		("[1, 2", "embedding is not valid JSON"),
		("[NaN]", "NaN is not a number JSON can carry"),
		('{"a": -Infinity}', "-Infinity is not a number JSON can carry"),
		("[1e400]", r"embedding\[0\] is inf"),
		('["\\u0000"]', r"embedding\[0\] contains a NUL"),
		('{"k": "\\udfff"}', r"embedding.k contains a lone surrogate \(\\udfff\)"),
		("[1]\x00", "embedding contains a NUL"),
	],
)
def test_parse_json_refuses_text_that_is_not_strict_json(text, message):
	with pytest.raises(InvalidValue, match=message):
		values.parse_json(text, "embedding")


def test_parse_json_takes_text_or_a_parsed_value():
	assert values.parse_json('{"lang": "en"}', "filter") == {"lang": "en"}
	assert values.parse_json({"lang": "en"}, "filter") == {"lang": "en"}
	with pytest.raises(InvalidValue, match="larger than"):
		values.parse_json(json.dumps(["x" * 100] * 20), "chunks", max_bytes=1000)


def test_whole_numbers_are_never_bools_and_stay_in_range():
	assert values.whole_number(5, "chunk_index") == 5
	assert values.whole_number(" 7 ", "limit", 1, 10, text_allowed=True) == 7
	for bad in (True, False, 2**31, -1, 1.0, "5", None, [1]):
		with pytest.raises(InvalidValue, match="chunk_index must be a whole number from 0 to 2147483647"):
			values.whole_number(bad, "chunk_index")
	for bad in ("1e3", "--5", "٣", "9" * 30, "0x10"):
		with pytest.raises(InvalidValue):
			values.whole_number(bad, "limit", 1, 1000, text_allowed=True)


def test_names_are_short_text_without_nul():
	assert values.name("doc-1", "document") == "doc-1"
	for bad, message in (
		("a\x00", "NUL"),
		("\ud800", "surrogate"),
		("", "document name"),
		(5, "document name"),
	):
		with pytest.raises(InvalidValue, match=message):
			values.name(bad, "document")
	with pytest.raises(InvalidValue, match="longer than 140"):
		values.name("x" * 141, "document")


def unit(dimension, *hot):
	v = [0.0] * dimension
	for i in hot:
		v[i] = 1.0
	return v


def count(cur, table: str) -> int:
	cur.execute(f"SELECT count(*) FROM {table}")
	return cur.fetchone()[0]


@pytest.mark.parametrize(
	("chunk", "message"),
	[
		(Chunk(1, "nul \x00 here", None), "chunk 1's content contains a NUL"),
		(Chunk(1, "surrogate \ud800", None), "chunk 1's content contains a lone surrogate"),
		(Chunk(1, "ok", None, {"k": "\x00"}), r"chunk 1's metadata.k contains a NUL"),
		(Chunk(1, "ok", None, {"k": float("nan")}), r"chunk 1's metadata.k is nan"),
		(Chunk(True, "ok", None), "chunk_index must be a whole number"),
		(Chunk(2**31, "ok", None), "chunk_index must be a whole number from 0 to 2147483647"),
		(Chunk(1, "x" * (values.MAX_ITEM_BYTES + 1), None), "a chunk holds at most"),
		(Chunk(1, "ok", [0.0] * 384), "is a zero vector"),
		(Chunk(1, "ok", [True] * 384), "must be a list of numbers"),
		(Chunk(1, "ok", "1" * 384), "must be a list of numbers"),
	],
)
def test_a_bad_chunk_writes_nothing_and_keeps_the_old_chunks(provisioned, chunk, message):
	_db, conn = provisioned
	cur = conn.cursor()
	vectors.replace_document_chunks(cur, "doc", [Chunk(0, "kept", unit(384, 0))])
	with pytest.raises(CauldronDBError, match=message):
		vectors.replace_document_chunks(cur, "doc", [Chunk(0, "replacement", unit(384, 1)), chunk])
	cur.execute("SELECT chunk_index, content FROM lore.document_chunks")
	assert cur.fetchall() == [(0, "kept")]


def test_a_document_name_with_nul_is_refused_before_the_database(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	with pytest.raises(InvalidValue, match="document contains a NUL"):
		vectors.replace_document_chunks(cur, "doc\x00", [Chunk(0, "x", None)])
	with pytest.raises(InvalidValue, match="entity contains a NUL"):
		vectors.set_entity_embedding(cur, "e\x00", unit(384, 0))
	cur.execute("SELECT 1")  # the transaction is still usable: nothing reached the server
	assert count(cur, "lore.document_chunks") == 0


def test_search_refuses_bad_filters_limits_and_metrics(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	for kwargs, message in (
		({"metadata_filter": {"k": "\x00"}}, "metadata filter.k contains a NUL"),
		({"metadata_filter": {"k": float("inf")}}, "metadata filter.k is inf"),
		({"limit": True}, "limit must be a whole number"),
		({"metric": ["cosine"]}, "unknown metric"),
	):
		with pytest.raises(CauldronDBError, match=message):
			vectors.search_chunks(cur, unit(384, 0), **kwargs)


@pytest.mark.parametrize(
	("content", "metadata", "message"),
	[
		({"text": "a\x00"}, None, r"interaction 2: content.text contains a NUL"),
		("\udc00", None, "interaction 2: content contains a lone surrogate"),
		({"score": float("nan")}, None, "interaction 2: content.score is nan"),
		({"ok": 1}, {"k": "\ud800"}, "interaction 2: metadata.k contains a lone surrogate"),
		("x" * (values.MAX_ITEM_BYTES + 1), None, "interaction 2: an agent interaction is"),
	],
)
def test_a_bad_interaction_records_none_of_the_batch(provisioned, content, metadata, message):
	_db, conn = provisioned
	cur = conn.cursor()
	ids = ("6e4bb0d1-9c1f-4d5e-8a2b-4c6f1a7d9e01", "0b1f6f9c-5a1e-4f59-9b8e-1a2b3c4d5e6f")
	good = tables.AgentInteraction(*ids, "user_message", {"text": "hi"})
	bad = tables.AgentInteraction(*ids, "agent_message", content, metadata)
	with pytest.raises(CauldronDBError, match=message):
		tables.write_agent_interactions(cur, [good, bad])
	assert count(cur, "aether.agent_interactions") == 0
