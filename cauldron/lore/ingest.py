"""Lore's ingest pipeline: a document's texts become embedded chunks in lore.document_chunks.

Framework-free; the Frappe glue supplies the cursor, the provider(s), a loader for a document's
texts and (in a worker) a commit function.

- `ingest_document` splits the texts, hashes each chunk's text (SHA-256), embeds only the chunks
  whose (content_hash, model) is not stored yet (in this document or any other) and makes the
  document's chunks of that model exactly the new set, in the caller's transaction: a reader sees
  the old set or the new one, never a mix. A document with no text left has no chunks of any model.
- `run_batch` is the worker: it claims items of the durable queue (cauldron.pg.queue, queue
  `lore.embed`, key = the document's name), loads and ingests each in a savepoint of its own and
  completes it there, so the chunks and the item's completion commit together. One bad document
  fails only its own item (retried with backoff, parked after its attempts, with its error); a
  provider that times out, refuses or returns the wrong dimension is such an error.

Models. Every chunk records the model that made its vector. lore.embedding_models holds at most
one `active` model (the one search compares against: `active_model`) and at most one `building`
model. `switch_model` makes a new model the building one and enqueues every document that has
chunks of the active model; workers then write the new model's chunks beside the old ones, and
search keeps answering from the old vectors. After each batch `activate_if_complete` checks the
rule: the building model becomes active only when no document that has chunks of the active model
lacks chunks of the building one; in that same transaction the old model is retired and its chunks
deleted. Before any model was made active, the active model is '' (vectors a caller supplied
through `cauldron.api.lore.set_document_chunks`). The table's dimension is fixed (Cauldron Settings
> Embedding Dimension), so a new model must make vectors of that dimension.

The splitter: `split(text) -> list of chunks`, each with `content` and `metadata` (an object with
those attributes, a (content, metadata) pair or a plain string). By default `cauldron.lore.chunking`
provides it (`chunking.split`), when that module is there; tests and callers may pass their own.
"""

import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import psycopg2
from psycopg2.extras import execute_values

from cauldron.pg import CauldronDBError, queue, values, vectors

QUEUE = "lore.embed"
# Work a model switch enqueues waits behind the edits people make meanwhile.
SWITCH_PRIORITY = -1
EMBED_BATCH_SIZE = 64


class IngestError(CauldronDBError):
	pass


class ProviderError(IngestError):
	"""The provider failed or answered something unusable; the message says which model and why.
	`retryable` is False when trying again cannot help (cauldron.lore.providers says so for a refusal)."""

	def __init__(self, message: str, retryable: bool = True):
		super().__init__(message)
		self.retryable = retryable


@dataclass(frozen=True)
class Text:
	"""One text of a document (its content, an attachment's extracted text) and metadata that every
	chunk made from it carries (for example {"source": "attachment", "file": "manual.pdf"})."""

	text: str
	metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Result:
	document_id: str
	model: str
	chunks: int
	embedded: int  # texts sent to the provider
	reused: int  # chunks whose vector was already stored for this model


def content_hash(text: str) -> str:
	return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _default_split(text: str):
	try:
		from cauldron.lore import chunking
	except ImportError as e:  # the splitter module is not there yet
		raise IngestError("no splitter: pass split=..., or install cauldron.lore.chunking") from e
	return chunking.split(text)


def _texts(texts) -> list[Text]:
	if texts is None:
		return []
	if isinstance(texts, str | Text):
		texts = [texts]
	found = []
	for t in texts:
		if isinstance(t, str):
			t = Text(t)
		elif isinstance(t, tuple):
			t = Text(*t)
		if not isinstance(t, Text) or not isinstance(t.text, str) or not isinstance(t.metadata, dict):
			raise IngestError(f"a document's texts are strings or Text(text, metadata), got {t!r}")
		found.append(t)
	return found


def _piece(piece) -> tuple[str, dict]:
	if isinstance(piece, str):
		return piece, {}
	if isinstance(piece, tuple):
		content, metadata = piece
	else:
		content, metadata = piece.content, getattr(piece, "metadata", None)
	return content, dict(metadata or {})


def split_document(texts, split: Callable | None = None) -> list[tuple[str, dict]]:
	"""The document's chunks in order, as (content, metadata); blank ones are left out."""
	split = split or _default_split
	chunks = []
	for t in _texts(texts):
		values.text(t.text, "document text")
		if not t.text.strip():
			continue
		for piece in split(t.text):
			content, metadata = _piece(piece)
			if not isinstance(content, str):
				raise IngestError(f"the splitter returned {type(content).__name__} content, not text")
			if content.strip():
				chunks.append((content, {**t.metadata, **metadata}))
	return chunks


def _check_provider(provider, dimension: int) -> str:
	model = getattr(provider, "model", None)
	if not isinstance(model, str) or not model:
		raise ProviderError(f"the embedding provider {provider!r} names no model")
	if getattr(provider, "dimension", None) != dimension:
		raise vectors.VectorDimensionError(
			f"embedding model {model} makes {getattr(provider, 'dimension', None)}-dimensional vectors;"
			f" this site's embeddings have {dimension} (Cauldron Settings > Embedding Dimension)"
		)
	return model


def _embed(provider, model: str, texts: list[str], dimension: int, batch_size: int) -> list[str]:
	"""pgvector text of each text's embedding, checked (dimension, finite, not zero)."""
	found = []
	for start in range(0, len(texts), batch_size):
		batch = texts[start : start + batch_size]
		try:
			answer = provider.embed(batch)
		except Exception as e:
			raise ProviderError(
				f"embedding model {model} failed: {type(e).__name__}: {e}",
				retryable=getattr(e, "retryable", True) is not False,
			) from e
		try:
			answer = list(answer)
		except TypeError:
			answer = None
		if answer is None or len(answer) != len(batch):
			raise ProviderError(
				f"embedding model {model} returned {'no list' if answer is None else len(answer)}"
				f" vectors for {len(batch)} texts"
			)
		for offset, vector in enumerate(answer):
			what = f"embedding model {model}'s vector for chunk text {start + offset}"
			if hasattr(vector, "tolist"):  # numpy arrays
				vector = vector.tolist()
			found.append(vectors._vector(vector, dimension, what))
	return found


def ingest_document(
	cur,
	document_id: str,
	texts,
	provider,
	split: Callable | None = None,
	batch_size: int = EMBED_BATCH_SIZE,
) -> Result:
	"""Make the document's chunks of `provider.model` those of `texts`, embedding only new text.

	Everything is checked and embedded before anything is written; the write is one DELETE of the
	chunks past the new end and one multi-row upsert that rewrites only chunks that changed.
	"""
	values.name(document_id, "document")
	dimension = vectors.table_dimension(cur)
	model = _check_provider(provider, dimension)
	chunks = split_document(texts, split)
	rows = []
	for index, (content, metadata) in enumerate(chunks):
		values.whole_number(index, "chunk_index", 0, values.INT4_MAX)
		size = values.text(content, f"chunk {index}'s content") + values.check(
			metadata, f"chunk {index}'s metadata"
		)
		if size > values.MAX_ITEM_BYTES:
			raise values.InvalidValue(
				f"chunk {index} of {document_id} is {size} bytes (content and metadata); a chunk holds at"
				f" most {values.MAX_ITEM_BYTES}: the splitter must make smaller chunks"
			)
		rows.append((index, content, metadata, content_hash(content)))

	hashes = sorted({row[3] for row in rows})
	stored: dict[str, str] = {}
	if hashes:
		cur.execute(
			"""
			SELECT DISTINCT ON (content_hash) content_hash, embedding::text FROM lore.document_chunks
			WHERE model = %s AND content_hash = ANY(%s) AND embedding IS NOT NULL
			""",
			(model, hashes),
		)
		stored = dict(cur.fetchall())
	missing = {}
	for _index, content, _metadata, digest in rows:
		if digest not in stored:
			missing.setdefault(digest, content)
	made = _embed(provider, model, list(missing.values()), dimension, max(1, int(batch_size)))
	stored.update(zip(missing, made, strict=True))

	# the same lock replace_document_chunks takes: two writers of one document do not interleave
	cur.execute(
		"SELECT pg_advisory_xact_lock(hashtext('lore.document_chunks'), hashtext(%s))", (document_id,)
	)
	if not rows:
		# no text: the document has no chunks, whatever model made them
		cur.execute("DELETE FROM lore.document_chunks WHERE document_id = %s", (document_id,))
	else:
		cur.execute(
			"DELETE FROM lore.document_chunks WHERE document_id = %s AND model = %s AND chunk_index >= %s",
			(document_id, model, len(rows)),
		)
		execute_values(
			cur,
			"""
			INSERT INTO lore.document_chunks AS c
				(document_id, model, chunk_index, content, metadata, content_hash, embedding)
			VALUES %s
			ON CONFLICT (document_id, model, chunk_index) DO UPDATE SET
				content = EXCLUDED.content, metadata = EXCLUDED.metadata,
				content_hash = EXCLUDED.content_hash, embedding = EXCLUDED.embedding
			WHERE c.content_hash IS DISTINCT FROM EXCLUDED.content_hash OR c.content <> EXCLUDED.content
				OR c.metadata <> EXCLUDED.metadata
			""",
			[
				(document_id, model, index, content, json.dumps(metadata), digest, stored[digest])
				for index, content, metadata, digest in rows
			],
			template="(%s, %s, %s, %s, %s::jsonb, %s, %s::vector)",
			page_size=len(rows),
		)
	return Result(document_id, model, len(rows), len(missing), len(rows) - _count_new(rows, missing))


def _count_new(rows, missing) -> int:
	"""How many chunks took a vector embedded just now (a text repeated in the document counts each time)."""
	return sum(1 for row in rows if row[3] in missing)


def forget_document(cur, document_id: str) -> int:
	"""Delete the document's chunks of every model (the document is gone); returns how many."""
	values.name(document_id, "document")
	cur.execute(
		"SELECT pg_advisory_xact_lock(hashtext('lore.document_chunks'), hashtext(%s))", (document_id,)
	)
	cur.execute("DELETE FROM lore.document_chunks WHERE document_id = %s", (document_id,))
	return cur.rowcount


def enqueue_document(cur, document_id: str, payload: dict | None = None, run_after: float = 0) -> int:
	"""Queue the document for (re-)ingest, in the caller's transaction (the change's own)."""
	values.name(document_id, "document")
	return queue.enqueue(cur, QUEUE, document_id, payload, run_after=run_after)


# --- models --------------------------------------------------------------------------------------


def _models_table(cur) -> None:
	cur.execute("SELECT to_regclass('lore.embedding_models') IS NOT NULL")
	if not cur.fetchone()[0]:
		vectors.table_dimension(cur)  # raises VectorsUnavailable when pgvector is the reason
		raise vectors.VectorsUnavailable(
			"lore.embedding_models does not exist yet: run `bench --site SITE migrate` (or `cauldron provision`)"
		)


def active_model(cur) -> str:
	"""The model whose vectors search compares: the active one, or '' (vectors callers supplied)
	when no model has been made active."""
	_models_table(cur)
	cur.execute("SELECT model FROM lore.embedding_models WHERE status = 'active'")
	row = cur.fetchone()
	return row[0] if row else ""


def building_model(cur) -> str | None:
	"""The model being built to replace the active one, if any."""
	_models_table(cur)
	cur.execute("SELECT model FROM lore.embedding_models WHERE status = 'building'")
	row = cur.fetchone()
	return row[0] if row else None


def switch_model(cur, model: str, dimension: int) -> int:
	"""Make `model` the one to build (the site's setting changed); returns how many documents (and
	Lore Entities, cauldron.lore.graph) were enqueued to be embedded with it. Switching to the active
	model cancels a build in progress. The chunks of a model whose build is abandoned are deleted."""
	if not isinstance(model, str) or not model:
		raise IngestError("an embedding model is named by a non-empty text")
	values.text(model, "model")
	_models_table(cur)
	table = vectors.table_dimension(cur)
	if dimension != table:
		raise vectors.VectorDimensionError(
			f"embedding model {model} makes {dimension}-dimensional vectors; this site's embeddings have"
			f" {table} (Cauldron Settings > Embedding Dimension). Changing the dimension rebuilds the tables:"
			" it is a migration of its own, not a model switch."
		)
	cur.execute(
		"SELECT model, status FROM lore.embedding_models WHERE status IN ('active', 'building') FOR UPDATE"
	)
	current = {status: name for name, status in cur.fetchall()}
	if current.get("building") == model:
		return 0
	if current.get("building"):
		_retire(cur, current["building"])
	if current.get("active") == model:
		return 0
	cur.execute(
		"""
		INSERT INTO lore.embedding_models (model, dimension, status) VALUES (%s, %s, 'building')
		ON CONFLICT (model) DO UPDATE SET dimension = EXCLUDED.dimension, status = 'building',
			requested_at = now(), activated_at = NULL
		""",
		(model, dimension),
	)
	cur.execute(
		"SELECT DISTINCT document_id FROM lore.document_chunks WHERE model = %s ORDER BY 1",
		(current.get("active", ""),),
	)
	documents = [row[0] for row in cur.fetchall()]
	from cauldron.lore import graph  # Lore Entities' embeddings follow the switch (graph imports this module)

	return queue.enqueue_many(
		cur, QUEUE, [(d, {"reason": "model", "model": model}) for d in documents], priority=SWITCH_PRIORITY
	) + graph.enqueue_for_model(cur, current.get("active", ""), model)


def _retire(cur, model: str) -> None:
	from cauldron.lore import graph

	cur.execute("UPDATE lore.embedding_models SET status = 'retired' WHERE model = %s", (model,))
	cur.execute("DELETE FROM lore.document_chunks WHERE model = %s", (model,))
	graph.abandon_model(cur, model)


def documents_lacking(cur, model: str, limit: int = 100) -> list[str]:
	"""Documents that have chunks of the active model but none of `model` (a switch waits for them)."""
	cur.execute(
		"""
		SELECT DISTINCT a.document_id FROM lore.document_chunks a
		WHERE a.model = %s AND NOT EXISTS (
			SELECT 1 FROM lore.document_chunks b WHERE b.document_id = a.document_id AND b.model = %s)
		ORDER BY 1 LIMIT %s
		""",
		(active_model(cur), model, limit),
	)
	return [row[0] for row in cur.fetchall()]


def activate_if_complete(cur) -> str | None:
	"""Make the building model active when no document lacks its vectors; retire the old one and
	delete its chunks in the same transaction. Returns the model made active, or None."""
	from cauldron.lore import graph

	_models_table(cur)
	cur.execute("SAVEPOINT cauldron_lore_activate")
	try:
		cur.execute("SELECT model FROM lore.embedding_models WHERE status = 'building' FOR UPDATE")
		row = cur.fetchone()
		if (
			row is None
			or documents_lacking(cur, row[0], 1)
			or graph.entities_lacking(cur, row[0], active_model(cur), 1)
		):
			cur.execute("RELEASE SAVEPOINT cauldron_lore_activate")
			return None
		model = row[0]
		cur.execute(
			"UPDATE lore.embedding_models SET status = 'retired' WHERE status = 'active' RETURNING model"
		)
		old = cur.fetchone()
		cur.execute(
			"UPDATE lore.embedding_models SET status = 'active', activated_at = now() WHERE model = %s",
			(model,),
		)
		cur.execute("DELETE FROM lore.document_chunks WHERE model = %s", (old[0] if old else "",))
		graph.activate_model(cur, model)
		cur.execute("RELEASE SAVEPOINT cauldron_lore_activate")
		return model
	except psycopg2.errors.SerializationFailure:
		# another worker is activating it at this moment (REPEATABLE READ)
		cur.execute("ROLLBACK TO SAVEPOINT cauldron_lore_activate")
		cur.execute("RELEASE SAVEPOINT cauldron_lore_activate")
		return None


def models(cur) -> list[dict]:
	"""Every model with its status and chunk count (for Desk)."""
	_models_table(cur)
	cur.execute(
		"""
		SELECT m.model, m.dimension, m.status, m.requested_at, m.activated_at,
			(SELECT count(*) FROM lore.document_chunks c WHERE c.model = m.model) AS chunks
		FROM lore.embedding_models m ORDER BY m.requested_at
		"""
	)
	columns = [c.name for c in cur.description]
	return [dict(zip(columns, row, strict=True)) for row in cur.fetchall()]


# --- the worker ------------------------------------------------------------------------------------


@dataclass
class BatchResult:
	claimed: int = 0
	done: int = 0
	retrying: int = 0  # failed, to be tried again after the backoff
	parked: int = 0  # failed for good (until retried from Desk)
	lost: int = 0  # another worker took the item after this one's lease expired
	chunks: int = 0
	embedded: int = 0
	errors: dict[str, str] = field(default_factory=dict)  # document -> error
	activated: str | None = None


def default_worker_name() -> str:
	return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


Loader = Callable[[object, str, dict], "Iterable | str | None"]


def payload_texts(_cur, _document_id: str, payload: dict):
	"""A loader for items that carry their texts: payload {"texts": [{"text": ..., "metadata": {...}}]}
	(None when the payload says the document was deleted: {"deleted": true})."""
	if payload.get("deleted"):
		return None
	return [Text(t["text"], t.get("metadata") or {}) for t in payload.get("texts", [])]


def run_batch(
	cur,
	providers,
	load: Loader = payload_texts,
	split: Callable | None = None,
	queue_name: str = QUEUE,
	worker: str | None = None,
	limit: int = 10,
	lease: float = queue.DEFAULT_LEASE_SECONDS,
	commit: Callable[[], None] | None = None,
	batch_size: int = EMBED_BATCH_SIZE,
) -> BatchResult:
	"""Claim up to `limit` documents from the queue and ingest each with every provider whose model
	is the active or the building one.

	`load(cur, document_id, payload)` returns the document's texts, or None when it no longer exists
	(its chunks are then deleted). `commit`, when given (a worker: `conn.commit`, `frappe.db.commit`),
	is called after the claim and after each item, so the claim's locks are released at once and
	every finished document stays finished; without it everything happens in the caller's
	transaction. Errors of one document fail its item (retry with backoff, then parked) and the
	batch goes on.
	"""
	providers = list(providers) if isinstance(providers, Sequence) else [providers]
	if not providers:
		raise IngestError("run_batch needs at least one embedding provider")
	worker = worker or default_worker_name()
	result = BatchResult()
	dimension = vectors.table_dimension(cur)
	for provider in providers:
		_check_provider(provider, dimension)
	_first_model(cur, providers[0])
	models_now = {active_model(cur), building_model(cur)} - {None}
	working = [p for p in providers if p.model in models_now]
	if commit:
		commit()  # the claim starts a transaction (and, at REPEATABLE READ, a snapshot) of its own
	items = queue.claim(cur, queue_name, worker, limit, lease)
	result.claimed = len(items)
	if commit:
		commit()
	leased_until = time.monotonic() + lease
	for n, item in enumerate(items):
		if commit and time.monotonic() > leased_until - lease / 2:
			queue.extend(cur, [i.id for i in items[n:]], worker, lease)
			commit()
			leased_until = time.monotonic() + lease
		cur.execute("SAVEPOINT cauldron_lore_item")
		try:
			if not working:
				raise ProviderError(
					f"this worker embeds with {', '.join(p.model for p in providers)}; the site's model is"
					f" {' / '.join(sorted(m or repr('') for m in models_now))}"
				)
			texts = load(cur, item.key, item.payload)
			if texts is None:
				forget_document(cur, item.key)
			else:
				texts = _texts(texts)
				for provider in working:
					done = ingest_document(cur, item.key, texts, provider, split, batch_size)
					result.chunks += done.chunks
					result.embedded += done.embedded
			if queue.complete(cur, [item.id], worker):
				cur.execute("RELEASE SAVEPOINT cauldron_lore_item")
				result.done += 1
			else:  # another worker holds it now: its answer counts, not this one
				cur.execute("ROLLBACK TO SAVEPOINT cauldron_lore_item")
				cur.execute("RELEASE SAVEPOINT cauldron_lore_item")
				result.lost += 1
		except Exception as e:  # one document's failure never stops the batch
			cur.execute("ROLLBACK TO SAVEPOINT cauldron_lore_item")
			cur.execute("RELEASE SAVEPOINT cauldron_lore_item")
			message = str(e) if isinstance(e, CauldronDBError) else f"{type(e).__name__}: {e}"
			result.errors[item.key] = message
			status = queue.fail(cur, item.id, worker, message, retryable=_retryable(e))
			if status == "failed":
				result.parked += 1
			elif status is None:
				result.lost += 1
			else:
				result.retrying += 1
		if commit:
			commit()
	if building_model(cur) is not None:
		result.activated = activate_if_complete(cur)
		if commit:
			commit()
	return result


def _retryable(error: Exception) -> bool:
	"""Whether trying the item again may succeed: not for a provider's refusal or wrong answers (wrong
	dimension, zero vector), nor for text that cannot be stored or split; yes for everything else
	(timeouts, a file being replaced, a deadlock), until its attempts are used up."""
	if isinstance(error, vectors.VectorDimensionError | values.InvalidValue):
		return False
	return getattr(error, "retryable", True) is not False


def _first_model(cur, provider) -> None:
	"""On a site where no model was ever chosen, the worker's model becomes the one to build."""
	_models_table(cur)
	cur.execute("SELECT count(*) FROM lore.embedding_models WHERE status IN ('active', 'building')")
	if cur.fetchone()[0] == 0:
		switch_model(cur, provider.model, provider.dimension)
