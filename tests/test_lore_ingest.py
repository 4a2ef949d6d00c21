"""Lore's ingest pipeline (cauldron.lore.ingest) over the durable queue, on the real server.

The embedding model is a test double: words hashed into a vector, deterministic, so that what was
embedded and what was reused can be counted. Everything else is real: Postgres, pgvector, the queue.
"""

import hashlib
import re
import time

import pytest

from cauldron.lore import ingest
from cauldron.lore.ingest import IngestError, ProviderError, Text
from cauldron.pg import queue, vectors
from cauldron.pg.vectors import Chunk, VectorDimensionError


class WordHashModel:
	"""Each word adds 1 at a position its hash picks; `calls` records every batch it was sent."""

	def __init__(self, model="words-v1", dimension=384, fail_on=None, answer_dimension=None):
		self.model = model
		self.dimension = dimension
		self.fail_on = fail_on
		self.answer_dimension = answer_dimension or dimension
		self.calls: list[list[str]] = []

	def embed(self, texts):
		self.calls.append(list(texts))
		vectors_ = []
		for text in texts:
			if self.fail_on and self.fail_on in text:
				raise TimeoutError("the embedding server did not answer in 30 s")
			v = [0.0] * self.answer_dimension
			for word in re.findall(r"\w+", text.lower()):
				h = int.from_bytes(hashlib.sha256(f"{self.model}:{word}".encode()).digest()[:4], "big")
				v[h % self.answer_dimension] += 1.0
			vectors_.append(v)
		return vectors_

	@property
	def embedded(self) -> list[str]:
		return [t for call in self.calls for t in call]


def paragraphs(text):
	"""The test's splitter: one chunk per paragraph, its number in the metadata."""
	return [Chunk(i, p.strip(), None, {"paragraph": i}) for i, p in enumerate(text.split("\n\n"))]


class Piece:
	def __init__(self, content, metadata):
		self.content = content
		self.metadata = metadata


def split(text):
	return [Piece(c.content, c.metadata) for c in paragraphs(text)]


DOC = "Invoices are due in thirty days.\n\nLate invoices accrue interest.\n\nPayroll runs monthly."


def chunks_of(cur, document, model=None):
	cur.execute(
		"""
		SELECT chunk_index, content, metadata, model, content_hash, embedding::text, id
		FROM lore.document_chunks WHERE document_id = %s AND (%s::text IS NULL OR model = %s)
		ORDER BY model, chunk_index
		""",
		(document, model, model),
	)
	return cur.fetchall()


def test_ingest_stores_chunks_with_model_hash_and_vector(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	model = WordHashModel()
	texts = [Text(DOC, {"source": "content"}), Text("Attachment text.", {"file": "a.pdf"})]
	result = ingest.ingest_document(cur, "DOC-1", texts, model, split)
	assert (result.chunks, result.embedded, result.reused) == (4, 4, 0)
	rows = chunks_of(cur, "DOC-1")
	assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
		(0, "Invoices are due in thirty days.", {"source": "content", "paragraph": 0}, "words-v1"),
		(1, "Late invoices accrue interest.", {"source": "content", "paragraph": 1}, "words-v1"),
		(2, "Payroll runs monthly.", {"source": "content", "paragraph": 2}, "words-v1"),
		(3, "Attachment text.", {"file": "a.pdf", "paragraph": 0}, "words-v1"),
	]
	assert rows[0][4] == hashlib.sha256(b"Invoices are due in thirty days.").hexdigest()
	expected = model.embed(["Payroll runs monthly."])[0]
	stored = [float(x) for x in rows[2][5].strip("[]").split(",")]
	assert stored == expected
	# the vectors are searchable as before
	(hit,) = vectors.search_chunks(cur, expected, limit=1)
	assert (hit["document_id"], hit["chunk_index"]) == ("DOC-1", 2)


def test_unchanged_chunks_are_not_embedded_again(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	model = WordHashModel()
	ingest.ingest_document(cur, "DOC-1", DOC, model, split)
	before = chunks_of(cur, "DOC-1")
	model.calls.clear()

	again = ingest.ingest_document(cur, "DOC-1", DOC, model, split)
	assert (again.embedded, again.reused) == (0, 3)
	assert model.calls == []
	assert chunks_of(cur, "DOC-1") == before  # same rows, same ids: nothing rewritten

	edited = DOC.replace("Late invoices accrue interest.", "Late invoices accrue 2% interest.")
	result = ingest.ingest_document(cur, "DOC-1", edited, model, split)
	assert (result.embedded, result.reused) == (1, 2)
	assert model.embedded == ["Late invoices accrue 2% interest."]
	after = chunks_of(cur, "DOC-1")
	assert [r[6] for r in after] == [r[6] for r in before]  # rows updated in place
	assert after[1][1] == "Late invoices accrue 2% interest." and after[1][5] != before[1][5]

	# the same text in another document reuses the stored vector too
	model.calls.clear()
	other = ingest.ingest_document(cur, "DOC-2", "Payroll runs monthly.", model, split)
	assert (other.embedded, other.reused) == (0, 1)
	# a text repeated within one document is embedded once
	twice = ingest.ingest_document(cur, "DOC-3", "Fresh words.\n\nFresh words.", model, split)
	assert (twice.chunks, twice.embedded) == (2, 1)
	assert model.embedded == ["Fresh words."]


def test_replacement_is_whole_and_a_failure_writes_nothing(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	model = WordHashModel()
	ingest.ingest_document(cur, "DOC-1", DOC, model, split)
	conn.commit()
	before = chunks_of(cur, "DOC-1")

	failing = WordHashModel(fail_on="Brand")
	with pytest.raises(ProviderError, match="words-v1 failed: TimeoutError: the embedding server did not"):
		ingest.ingest_document(cur, "DOC-1", "Brand new first.\n\nPayroll runs monthly.", failing, split)
	assert chunks_of(cur, "DOC-1") == before

	shorter = ingest.ingest_document(cur, "DOC-1", "Payroll runs monthly.", model, split)
	assert shorter.chunks == 1
	assert [(r[0], r[1]) for r in chunks_of(cur, "DOC-1")] == [(0, "Payroll runs monthly.")]

	# no text left: no chunks of any model, the caller's own included
	vectors.replace_document_chunks(cur, "DOC-1", [Chunk(0, "caller's chunk", None)])
	assert len(chunks_of(cur, "DOC-1")) == 2
	empty = ingest.ingest_document(cur, "DOC-1", ["", "  \n"], model, split)
	assert empty.chunks == 0
	assert chunks_of(cur, "DOC-1") == []


def test_wrong_dimensions_and_bad_answers_are_clear_errors(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	with pytest.raises(
		VectorDimensionError, match="makes 768-dimensional vectors; this site's embeddings have 384"
	):
		ingest.ingest_document(cur, "DOC-1", DOC, WordHashModel(dimension=768), split)
	with pytest.raises(VectorDimensionError, match="has 383 dimensions; this site's embeddings have 384"):
		ingest.ingest_document(cur, "DOC-1", DOC, WordHashModel(answer_dimension=383), split)
	with pytest.raises(vectors.ZeroVector):
		ingest.ingest_document(cur, "DOC-1", "!!! ???", WordHashModel(), split)

	class Short(WordHashModel):
		def embed(self, texts):
			return super().embed(texts)[:-1]

	with pytest.raises(ProviderError, match="returned 2 vectors for 3 texts"):
		ingest.ingest_document(cur, "DOC-1", DOC, Short(), split)

	class Nameless:
		dimension = 384

	with pytest.raises(ProviderError, match="names no model"):
		ingest.ingest_document(cur, "DOC-1", DOC, Nameless(), split)
	with pytest.raises(IngestError, match="strings or Text"):
		ingest.ingest_document(cur, "DOC-1", [42], WordHashModel(), split)
	with pytest.raises(ingest.values.InvalidValue):
		ingest.ingest_document(cur, "DOC-1", "a\x00b", WordHashModel(), split)
	assert chunks_of(cur, "DOC-1") == []


def _texts_from(documents):
	"""A loader over a dict, as the Frappe glue loads a Lore Document's content and attachments."""

	def load(_cur, document_id, _payload):
		if documents.get(document_id) == "explode":
			raise ValueError(f"cannot read {document_id}: disguised binary file")
		return documents.get(document_id)

	return load


def test_run_batch_ingests_and_one_bad_document_does_not_stop_it(provisioned):
	db, conn = provisioned
	cur = conn.cursor()
	documents = {"DOC-1": DOC, "DOC-2": "explode", "DOC-3": "Slow server here.", "DOC-4": "Fine text."}
	for name in documents:
		ingest.enqueue_document(cur, name)
	conn.commit()
	model = WordHashModel(fail_on="Slow server")

	result = ingest.run_batch(cur, model, _texts_from(documents), split, limit=10, commit=conn.commit)
	assert (result.claimed, result.done, result.retrying, result.parked) == (4, 2, 2, 0)
	assert result.errors == {
		"DOC-2": "ValueError: cannot read DOC-2: disguised binary file",
		"DOC-3": "embedding model words-v1 failed: TimeoutError: the embedding server did not answer in 30 s",
	}
	assert result.activated == "words-v1"  # the site's first model, complete at once
	assert ingest.active_model(cur) == "words-v1"
	assert len(chunks_of(cur, "DOC-1")) == 3 and chunks_of(cur, "DOC-3") == []
	(s,) = queue.stats(cur, ingest.QUEUE)
	assert (s.done, s.pending, s.due, s.running) == (2, 2, 0, 0)
	assert "TimeoutError" in s.last_error or "disguised" in s.last_error

	# committed: another connection sees the chunks and the queue's state
	other = db.connect().cursor()
	other.execute("SELECT count(*) FROM lore.document_chunks WHERE model = 'words-v1'")
	assert other.fetchone()[0] == 4

	# the errors persist until the attempts are used up: then the items are parked with them
	cur.execute("UPDATE command.work_queue SET max_attempts = 2, run_after = now() WHERE status = 'pending'")
	conn.commit()
	result = ingest.run_batch(cur, model, _texts_from(documents), split, commit=conn.commit)
	assert (result.claimed, result.parked) == (2, 2)
	assert {f["key"]: f["last_error"] for f in queue.failed_items(cur, ingest.QUEUE)} == result.errors

	# fixed, retried from Desk: done
	documents["DOC-2"] = "Now readable."
	model.fail_on = None
	queue.retry_failed(cur, ingest.QUEUE)
	conn.commit()
	result = ingest.run_batch(cur, model, _texts_from(documents), split, commit=conn.commit)
	assert (result.done, result.errors) == (2, {})

	# a deleted document loses its chunks through the same queue
	del documents["DOC-1"]
	ingest.enqueue_document(cur, "DOC-1", {"deleted": True})
	conn.commit()
	assert ingest.run_batch(cur, model, _texts_from(documents), split, commit=conn.commit).done == 1
	assert chunks_of(cur, "DOC-1") == []


def test_enqueue_rolls_back_with_the_change(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	ingest.enqueue_document(cur, "DOC-1", {"texts": [{"text": "never committed"}]})
	conn.rollback()
	result = ingest.run_batch(cur, WordHashModel(), split=split, commit=conn.commit)
	assert result.claimed == 0


def test_payload_texts_loader(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	ingest.enqueue_document(cur, "DOC-1", {"texts": [{"text": DOC, "metadata": {"source": "content"}}]})
	conn.commit()
	result = ingest.run_batch(cur, WordHashModel(), split=split, commit=conn.commit)
	assert (result.done, result.chunks) == (1, 3)
	assert chunks_of(cur, "DOC-1")[0][2] == {"source": "content", "paragraph": 0}


def test_a_worker_that_lost_its_lease_writes_nothing(provisioned):
	db, conn = provisioned
	cur = conn.cursor()
	ingest.enqueue_document(cur, "DOC-1")
	conn.commit()
	thief = db.connect()

	def slow_load(_cur, document_id, _payload):
		# while this worker reads the document, its lease runs out and another worker takes the item
		time.sleep(0.2)
		tcur = thief.cursor()
		assert [i.key for i in queue.claim(tcur, ingest.QUEUE, "thief", 1, lease=60)] == [document_id]
		thief.commit()
		return DOC

	result = ingest.run_batch(cur, WordHashModel(), slow_load, split, lease=0.1, commit=conn.commit)
	assert (result.claimed, result.done, result.lost) == (1, 0, 1)
	assert chunks_of(cur, "DOC-1") == []
	cur.execute("SELECT status, worker FROM command.work_queue")
	assert cur.fetchall() == [("running", "thief")]


def test_switching_models_keeps_the_old_vectors_until_the_new_set_is_complete(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	documents = {f"DOC-{n}": f"Document number {n}.\n\nShared closing words." for n in range(3)}
	documents["DOC-EMPTY"] = ""
	old, new = WordHashModel("words-v1"), WordHashModel("words-v2")
	load = _texts_from(documents)
	for name in documents:
		ingest.enqueue_document(cur, name)
	conn.commit()
	assert ingest.run_batch(cur, old, load, split, commit=conn.commit).activated == "words-v1"

	with pytest.raises(VectorDimensionError, match="a migration of its own"):
		ingest.switch_model(cur, "big-model", 1024)
	assert ingest.switch_model(cur, "words-v2", 384) == 3  # the documents that have vectors
	conn.commit()
	assert (ingest.active_model(cur), ingest.building_model(cur)) == ("words-v1", "words-v2")
	assert ingest.documents_lacking(cur, "words-v2") == ["DOC-0", "DOC-1", "DOC-2"]

	# a worker still on the old model keeps the active set current and does not finish the switch
	documents["DOC-0"] = "Document zero, edited.\n\nShared closing words."
	ingest.enqueue_document(cur, "DOC-0")
	conn.commit()
	half = ingest.run_batch(cur, [old, new], load, split, limit=1, commit=conn.commit)
	# the edit coalesced into DOC-0's re-embed item and raised its priority: it comes first
	assert (half.done, half.activated) == (1, None)
	assert chunks_of(cur, "DOC-0", "words-v1")[0][1] == "Document zero, edited."
	assert chunks_of(cur, "DOC-0", "words-v2")[0][1] == "Document zero, edited."
	assert ingest.active_model(cur) == "words-v1"
	assert ingest.documents_lacking(cur, "words-v2") == ["DOC-1", "DOC-2"]
	# search still answers from the old model's complete set
	cur.execute(
		"SELECT count(DISTINCT document_id) FROM lore.document_chunks WHERE model = %s", ("words-v1",)
	)
	assert cur.fetchone()[0] == 3

	rest = ingest.run_batch(cur, new, load, split, limit=10, commit=conn.commit)
	assert rest.done == 2
	assert rest.activated == "words-v2"
	assert ingest.active_model(cur) == "words-v2"
	cur.execute("SELECT DISTINCT model FROM lore.document_chunks")
	assert cur.fetchall() == [("words-v2",)]
	assert {m["model"]: (m["status"], m["chunks"]) for m in ingest.models(cur)} == {
		"words-v1": ("retired", 0),
		"words-v2": ("active", 6),
	}

	# a worker left on the retired model fails its items with the reason, and loses nothing
	ingest.enqueue_document(cur, "DOC-1")
	conn.commit()
	stale = ingest.run_batch(cur, old, load, split, commit=conn.commit)
	assert (stale.done, stale.retrying) == (0, 1)
	assert stale.errors["DOC-1"] == "this worker embeds with words-v1; the site's model is words-v2"

	# switching back and forth: the abandoned build's chunks go, switching to the active model is a no-op
	assert ingest.switch_model(cur, "words-v1", 384) == 3
	assert ingest.switch_model(cur, "words-v2", 384) == 0
	assert ingest.building_model(cur) is None


def test_first_model_replaces_vectors_callers_supplied(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	vectors.replace_document_chunks(cur, "DOC-1", [Chunk(0, "caller", [1.0] + [0.0] * 383)])
	conn.commit()
	assert ingest.active_model(cur) == ""
	documents = {"DOC-1": "Pipeline text for one."}
	result = ingest.run_batch(cur, WordHashModel(), _texts_from(documents), split, commit=conn.commit)
	# the caller's document was enqueued by the first switch, embedded, and only then switched over
	assert (result.done, result.activated) == (1, "words-v1")
	assert [(r[1], r[3]) for r in chunks_of(cur, "DOC-1")] == [("Pipeline text for one.", "words-v1")]


class Refused(Exception):
	"""What cauldron.lore.providers raises for a 401: trying again cannot help."""

	retryable = False


def test_errors_that_retrying_cannot_cure_are_parked_at_once(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()

	class Refusing(WordHashModel):
		def embed(self, texts):
			if any("secret" in t for t in texts):
				raise Refused("401 Unauthorized: invalid API key")
			return super().embed(texts)

	documents = {
		"DOC-1": "A secret plan.",
		"DOC-2": "\x00 binary junk",
		"DOC-3": "Slow server.",
		"DOC-4": "Fine.",
	}
	for name in documents:
		ingest.enqueue_document(cur, name)
	conn.commit()
	model = Refusing(fail_on="Slow server")
	result = ingest.run_batch(cur, model, _texts_from(documents), split, commit=conn.commit)
	assert (result.done, result.parked, result.retrying) == (1, 2, 1)
	parked = {f["key"]: f["last_error"] for f in queue.failed_items(cur, ingest.QUEUE)}
	assert set(parked) == {"DOC-1", "DOC-2"}
	assert "401 Unauthorized" in parked["DOC-1"]
	assert (
		parked["DOC-2"] == "document text contains a NUL character (\\u0000), which PostgreSQL cannot store"
	)
	cur.execute("SELECT key, attempts FROM command.work_queue WHERE status = 'pending'")
	assert cur.fetchall() == [("DOC-3", 1)]
