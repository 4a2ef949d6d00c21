"""Vector search: HNSW through vectors.search_chunks against exact search, for recall@10 and latency,
with and without a metadata filter, and the time to build the HNSW index.

Data: seeded unit vectors, clustered by default (each chunk a random topic centre plus Gaussian
noise; queries are drawn the same way but are not in the table), or uniform on the sphere with
--clusters 0, the hardest case. Every chunk has metadata {"category": "c0".."c9"}, independent of its
topic; the filtered search asks for {"category": "c0"}, about 10% of the rows.

The chunks are loaded by binary COPY with the provisioned HNSW index dropped, then the index is
built again from its own definition with maintenance_work_mem raised. Exact results are the same
search_chunks call with index scans disabled in its transaction. Each ef_search value is measured
after one untimed warm-up pass over the queries.

	python -m benchmarks.vector_search [--chunks N] [--queries N] [--clusters N] [--ef-search 40,100] [--quick]
"""

import argparse
import io
import json
import struct

import numpy as np
from pgvector import Vector

from benchmarks import _common as common
from cauldron.pg import provision, vectors

DIMENSION = 384
LIMIT = 10
CATEGORIES = 10
FILTER = {"category": "c0"}
CHUNKS_PER_DOCUMENT = 20
ROWS_PER_COPY = 10_000
BUILD_MEMORY = "1GB"
TARGET_RECALL = 0.95
TARGET_MEDIAN_SECONDS = 0.005
HNSW_INDEX = "idx_document_chunks_embedding"
METADATA_INDEX = "idx_document_chunks_metadata"
COPY = "COPY lore.document_chunks (document_id, chunk_index, content, metadata, embedding) FROM STDIN BINARY"


class Topics:
	"""Draws unit vectors around fixed random centres, or uniformly when there are none."""

	def __init__(self, clusters: int, spread: float, seed: int):
		self.rng = np.random.default_rng(seed)
		self.centres = self.rng.standard_normal((clusters, DIMENSION), dtype=np.float32) if clusters else None
		self.spread = spread

	def draw(self, count: int) -> np.ndarray:
		noise = self.rng.standard_normal((count, DIMENSION), dtype=np.float32)
		if self.centres is None:
			points = noise
		else:
			points = self.centres[self.rng.integers(len(self.centres), size=count)] + self.spread * noise
		return points / np.linalg.norm(points, axis=1, keepdims=True)


def copy_data(embeddings: np.ndarray, categories: np.ndarray, first: int) -> bytes:
	"""Rows in COPY's binary format: a header, then each row's field count and length-prefixed fields."""
	parts = [b"PGCOPY\n\xff\r\n\x00", struct.pack("!ii", 0, 0)]
	for offset, (embedding, category) in enumerate(zip(embeddings, categories, strict=True)):
		number = first + offset
		fields = (
			f"doc-{number // CHUNKS_PER_DOCUMENT}".encode(),
			struct.pack("!i", number % CHUNKS_PER_DOCUMENT),
			f"chunk {number}".encode(),
			b"\x01" + json.dumps({"category": f"c{category}"}).encode(),  # jsonb's binary format: version 1
			Vector(embedding).to_binary(),
		)
		parts.append(struct.pack("!h", len(fields)))
		for field in fields:
			parts.append(struct.pack("!i", len(field)))
			parts.append(field)
	parts.append(struct.pack("!h", -1))
	return b"".join(parts)


def load(conn, topics: Topics, count: int) -> None:
	categories = np.random.default_rng(0).integers(CATEGORIES, size=count)
	for first in range(0, count, ROWS_PER_COPY):
		size = min(ROWS_PER_COPY, count - first)
		data = copy_data(topics.draw(size), categories[first : first + size], first)
		with conn.cursor() as cur:
			cur.copy_expert(COPY, io.BytesIO(data))
	conn.commit()


def search(conn, query: np.ndarray, metadata_filter: dict | None, ef_search: int, exact: bool = False):
	"""(seconds, ids) of one search_chunks call, in a transaction of its own."""
	embedding = query.tolist()
	with conn.cursor() as cur:
		if exact:
			cur.execute("SET LOCAL enable_indexscan = off")
		elapsed, results = common.timed(
			lambda: vectors.search_chunks(
				cur, embedding, limit=LIMIT, metadata_filter=metadata_filter, ef_search=ef_search
			)
		)
	conn.rollback()
	return elapsed, [row["id"] for row in results]


def index_scans(conn) -> dict[str, int]:
	"""Scans so far of each index of lore.document_chunks, with this session's counts flushed."""
	with conn.cursor() as cur:
		cur.execute("SELECT pg_stat_force_next_flush()")
	conn.commit()  # the flush happens once the session is idle
	with conn.cursor() as cur:
		cur.execute(
			"SELECT indexrelname, idx_scan FROM pg_stat_user_indexes"
			" WHERE schemaname = 'lore' AND relname = 'document_chunks'"
		)
		scans = dict(cur.fetchall())
	conn.rollback()
	return scans


def measure(conn, queries: np.ndarray, metadata_filter: dict | None, ef_search: int, exact_ids: list):
	"""Recall@10 against `exact_ids`, latencies, and which index served the pass."""
	before = index_scans(conn)
	latencies, recalls, short = [], [], 0
	for query, expected in zip(queries, exact_ids, strict=True):
		elapsed, ids = search(conn, query, metadata_filter, ef_search)
		latencies.append(elapsed)
		recalls.append(len(set(ids) & set(expected)) / len(expected))
		short += len(ids) < LIMIT
	after = index_scans(conn)
	served = {name: after[name] - before.get(name, 0) for name in (HNSW_INDEX, METADATA_INDEX)}
	return {
		"recall": float(np.mean(recalls)),
		"median": common.median(latencies),
		"p95": float(np.percentile(latencies, 95)),
		"short": short,
		"served": served,
	}


def main() -> None:
	parser = argparse.ArgumentParser(
		description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
	)
	parser.add_argument("--chunks", type=int, help="chunks loaded (default 100,000; quick 20,000)")
	parser.add_argument("--queries", type=int, help="queries per measurement (default 200; quick 50)")
	parser.add_argument("--clusters", type=int, help="topic centres, 0 for uniform (default chunks / 100)")
	parser.add_argument("--spread", type=float, help="noise around a centre, per coordinate (default 1.0)")
	parser.add_argument("--ef-search", help="hnsw.ef_search values, comma-separated (default 40,100,200,400)")
	args = common.arguments(
		parser,
		defaults={"chunks": 100_000, "queries": 200, "spread": 1.0, "ef_search": "40,100,200,400"},
		quick={"chunks": 20_000, "queries": 50, "ef_search": "40,100,200"},
	)
	clusters = args.chunks // 100 if args.clusters is None else args.clusters
	ef_values = sorted({vectors.DEFAULT_EF_SEARCH, *(int(v) for v in args.ef_search.split(","))})
	topics = Topics(clusters, args.spread, seed=42)
	queries = topics.draw(args.queries)
	settings = provision.Settings(embedding_dimension=DIMENSION)
	filters = {"no filter": None, f"filter {json.dumps(FILTER)}": FILTER}

	with common.server() as dsn, common.provisioned_database(dsn, settings) as conn:
		common.describe_server(conn)
		with conn.cursor() as cur:
			cur.execute("SELECT pg_get_indexdef(%s::regclass)", (f"lore.{HNSW_INDEX}",))
			index_definition = cur.fetchone()[0]
			cur.execute(f"DROP INDEX lore.{HNSW_INDEX}")
		conn.commit()
		load_seconds = common.seconds(lambda: load(conn, topics, args.chunks))
		common.vacuum_analyze(conn, "lore.document_chunks")
		with conn.cursor() as cur:
			cur.execute(f"SET maintenance_work_mem = '{BUILD_MEMORY}'")
			build_seconds = common.seconds(lambda: cur.execute(index_definition))
			cur.execute("RESET maintenance_work_mem")
			cur.execute("SELECT pg_size_pretty(pg_relation_size(%s::regclass))", (f"lore.{HNSW_INDEX}",))
			index_size = cur.fetchone()[0]
			cur.execute(
				"SELECT count(*) FROM lore.document_chunks WHERE metadata @> %s", (json.dumps(FILTER),)
			)
			filtered_rows = cur.fetchone()[0]
		conn.commit()

		exact, exact_latency = {}, {}
		for name, metadata_filter in filters.items():
			runs = [search(conn, q, metadata_filter, vectors.DEFAULT_EF_SEARCH, exact=True) for q in queries]
			exact[name] = [ids for _elapsed, ids in runs]
			exact_latency[name] = common.median([elapsed for elapsed, _ids in runs])
		results = {}
		for ef_search in ef_values:
			for name, metadata_filter in filters.items():
				measure(conn, queries, metadata_filter, ef_search, exact[name])  # warm-up
				results[name, ef_search] = measure(conn, queries, metadata_filter, ef_search, exact[name])

	shape = f"{clusters:,} topic clusters, spread {args.spread}" if clusters else "uniform on the sphere"
	common.heading(f"data: {args.chunks:,} chunks of dimension {DIMENSION}, {shape}; {args.queries} queries")
	common.figure("load (binary COPY, HNSW index dropped)", common.duration(load_seconds))
	common.figure("HNSW index build (CREATE INDEX)", f"{common.duration(build_seconds)}, {index_size}")
	print(f"    with maintenance_work_mem = '{BUILD_MEMORY}' set in the session")
	defaults = "" if "WITH (" in index_definition else " (pgvector's defaults: m = 16, ef_construction = 64)"
	print(f"    {index_definition}{defaults}")
	common.figure(f"rows matching the filter {json.dumps(FILTER)}", f"{filtered_rows:,}")
	for name in filters:
		common.heading(f"top-{LIMIT} search, {name}: vectors.search_chunks, latency as its caller sees it")
		common.figure(
			"exact search (index scans off), median latency", common.milliseconds(exact_latency[name])
		)
		print(
			f"  {'ef_search':>10}  {'recall@10':>9}  {'median':>9}  {'p95':>9}  {'exact/this':>10}  index scans"
		)
		for ef_search in ef_values:
			result = results[name, ef_search]
			marker = "*" if ef_search == vectors.DEFAULT_EF_SEARCH else " "
			scans = f"HNSW {result['served'][HNSW_INDEX]}, GIN {result['served'][METADATA_INDEX]}"
			short = f"; {result['short']} returned fewer than {LIMIT}" if result["short"] else ""
			print(
				f"  {ef_search:>9}{marker}  {result['recall']:>9.4f}  {common.milliseconds(result['median']):>9}"
				f"  {common.milliseconds(result['p95']):>9}  {exact_latency[name] / result['median']:>9.1f}x"
				f"  {scans}{short}"
			)
		print("  * vectors.DEFAULT_EF_SEARCH")
		default = results[name, vectors.DEFAULT_EF_SEARCH]
		common.figure(
			f"target recall@10 >= {TARGET_RECALL} at the default ef_search",
			common.verdict(default["recall"] >= TARGET_RECALL),
		)
		common.figure(
			f"target median <= {TARGET_MEDIAN_SECONDS * 1000:.0f} ms at the default ef_search",
			common.verdict(default["median"] <= TARGET_MEDIAN_SECONDS),
		)


if __name__ == "__main__":
	main()
