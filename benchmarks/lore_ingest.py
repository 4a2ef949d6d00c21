"""End-to-end Lore ingest through the durable queue: `--documents` documents (2,000; --quick 200)
enqueued and worked off by cauldron.lore.ingest.run_batch (claim a batch from cauldron.pg.queue,
load each document's texts from its payload, split them with cauldron.lore.chunking, hash, embed
the new chunks, write them through the keyword triggers, complete the item, commit) until the queue
is empty. Wall time, documents/s and chunks/s.

Three runs, each in a fresh database, so each tells one part of the cost apart:
- `queue + local model`: the real thing, with the local model (cauldron.lore.providers.LocalProvider);
- `queue + instant provider`: the same with a provider that answers at once (a vector made from
  the text's hash): everything but the model, i.e. the pipeline's own cost;
- `direct + instant provider`: ingest_document called for each document with a commit after each,
  as the worker does, but no queue at all (no enqueue, claim, complete, savepoints).
The queue's own overhead is the second minus the third (per document, and as a share of the real
run); the model's share is the first minus the second.

Documents: Markdown made from the docstrings of Python's standard library (present wherever
Python is): each document a `# title` and about --words words of consecutive docstring text, so
documents and their chunks differ (a repeated chunk would reuse its stored vector and not be
embedded; the `embedded` figure says how many texts went to the model).

	python -m benchmarks.lore_ingest [--documents N] [--words N] [--batch N] [--quick] [--no-model]
"""

import argparse
import hashlib
import importlib
import sys
import time
import warnings

import numpy as np

from benchmarks import _common as common
from cauldron.lore import ingest
from cauldron.pg import provision

DIMENSION = 384


class InstantProvider:
	"""Answers at once: a unit vector drawn from a generator seeded with the text's hash."""

	model = "bench/instant"
	dimension = DIMENSION

	def embed(self, texts):
		out = []
		for text in texts:
			seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
			v = np.random.default_rng(seed).standard_normal(DIMENSION)
			out.append((v / np.linalg.norm(v)).tolist())
		return out


def docstring_words() -> list[str]:
	"""The words of the standard library's module and member docstrings, in a fixed order."""
	words: list[str] = []
	with warnings.catch_warnings():
		warnings.simplefilter("ignore")
		for name in sorted(sys.stdlib_module_names):
			if name.startswith(("_", "test", "idle", "tkinter", "turtle", "antigravity", "this")):
				continue
			try:
				module = importlib.import_module(name)
			except Exception:
				continue
			for obj in [module, *(v for k, v in sorted(vars(module).items()) if not k.startswith("_"))]:
				doc = getattr(obj, "__doc__", None) if getattr(obj, "__module__", name) == name else None
				if isinstance(doc, str):
					words.extend(doc.split())
	return words


def documents(count: int, words_each: int) -> list[tuple[str, str]]:
	"""(name, Markdown text) of `count` documents of consecutive docstring words."""
	words = docstring_words()
	made = []
	for n in range(count):
		start = (n * words_each) % max(1, len(words) - words_each)
		body = words[start : start + words_each]
		paragraphs = [" ".join(body[i : i + 60]) for i in range(0, len(body), 60)]
		made.append((f"DOC-{n:05}", f"# Document {n}\n\n" + "\n\n".join(paragraphs)))
	return made


def chunk_count(conn) -> int:
	with conn.cursor() as cur:
		cur.execute("SELECT count(*) FROM lore.document_chunks")
		count = cur.fetchone()[0]
	conn.rollback()
	return count


def through_queue(conn, docs, provider, batch: int) -> dict:
	"""Enqueue every document (one transaction), then work the queue off; seconds of each part."""
	started = time.perf_counter()
	with conn.cursor() as cur:
		for name, text in docs:
			ingest.enqueue_document(cur, name, {"texts": [{"text": text}]})
	conn.commit()
	enqueued = time.perf_counter()
	embedded = batches = 0
	with conn.cursor() as cur:
		while True:
			result = ingest.run_batch(cur, provider, limit=batch, commit=conn.commit, worker="bench")
			conn.commit()
			if result.errors:
				raise SystemExit(f"ingest failed: {result.errors}")
			if not result.claimed:
				break
			embedded += result.embedded
			batches += 1
	done = time.perf_counter()
	return {
		"enqueue": enqueued - started,
		"work": done - enqueued,
		"total": done - started,
		"embedded": embedded,
		"batches": batches,
	}


def direct(conn, docs, provider) -> dict:
	"""ingest_document for each document and a commit after each: the worker's work without a queue."""
	started = time.perf_counter()
	embedded = 0
	with conn.cursor() as cur:
		ingest.switch_model(cur, provider.model, provider.dimension)
		conn.commit()
		for name, text in docs:
			embedded += ingest.ingest_document(cur, name, [ingest.Text(text)], provider).embedded
			conn.commit()
	done = time.perf_counter()
	return {"enqueue": 0.0, "work": done - started, "total": done - started, "embedded": embedded}


def main() -> None:
	parser = argparse.ArgumentParser(
		description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
	)
	parser.add_argument("--documents", type=int, help="documents ingested (default 2,000; quick 200)")
	parser.add_argument("--words", type=int, help="words per document (default 350)")
	parser.add_argument("--batch", type=int, help="documents a worker claims at a time (default 10)")
	parser.add_argument("--no-model", action="store_true", help="leave the local model's run out")
	args = common.arguments(
		parser, defaults={"documents": 2000, "words": 350, "batch": 10}, quick={"documents": 200}
	)
	docs = documents(args.documents, args.words)
	settings = provision.Settings(embedding_dimension=DIMENSION, timescaledb=False)
	runs = [("direct + instant provider", direct, InstantProvider())]
	runs.append(("queue + instant provider", through_queue, InstantProvider()))
	if not args.no_model:
		from cauldron.lore.providers import LocalProvider

		runs.append(("queue + local model", through_queue, LocalProvider.get()))
	results = {}
	with common.server() as dsn:
		for label, how, provider in runs:
			with common.provisioned_database(dsn, settings) as conn:
				if label == runs[0][0]:
					common.describe_server(conn)
				figures = (
					how(conn, docs, provider) if how is direct else how(conn, docs, provider, args.batch)
				)
				figures["chunks"] = chunk_count(conn)
				results[label] = figures

	words = sum(len(text.split()) for _, text in docs)
	common.heading(
		f"{len(docs):,} documents (~{words // len(docs)} words of Markdown each), claimed {args.batch} at a time,"
		" one worker"
	)
	for label, f in results.items():
		common.figure(
			label,
			f"{common.duration(f['total'])} wall ({f['chunks']:,} chunks, {f['embedded']:,} embedded):"
			f" {f['chunks'] / f['total']:,.0f} chunks/s, {len(docs) / f['total']:,.1f} documents/s",
		)
		if f["enqueue"]:
			common.figure(
				"    of which enqueue (every document, one transaction)",
				f"{common.duration(f['enqueue'])} ({common.rate(len(docs), f['enqueue'], 'documents')})",
			)
	base = results["direct + instant provider"]["total"]
	queued = results["queue + instant provider"]["total"]
	overhead = queued - base
	common.heading("the queue's own cost")
	common.figure(
		"queue + instant provider minus direct + instant provider",
		f"{common.duration(overhead)} ({overhead / len(docs) * 1000:.2f} ms per document,"
		f" {overhead / queued:.0%} of the instant run)",
	)
	if "queue + local model" in results:
		real = results["queue + local model"]["total"]
		common.figure("share of the real run (queue + local model)", f"{overhead / real:.1%}")
		common.figure(
			"the model's share of the real run (real minus queue + instant)", f"{(real - queued) / real:.0%}"
		)


if __name__ == "__main__":
	main()
