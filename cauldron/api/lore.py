"""Lore endpoints: /api/method/cauldron.api.lore.<name>

Embeddings are computed by the caller (any model whose dimension is the site's Embedding Dimension);
Cauldron stores them in lore.document_chunks / lore.entity_embeddings and searches them with HNSW.
"""

import frappe
from frappe import _

from cauldron import db
from cauldron.pg import CauldronDBError, vectors


def _vector_call(call, *args, **kwargs):
	try:
		return call(db.cursor(), *args, **kwargs)
	except vectors.VectorsUnavailable as e:
		frappe.throw(str(e), title=_("Semantic search is not available"))
	except CauldronDBError as e:
		frappe.throw(str(e), title=_("Invalid request"))


@frappe.whitelist()
def search(embedding, limit=10, metadata_filter=None, metric="cosine") -> list[dict]:
	"""The chunks nearest to `embedding` (a list of numbers), optionally only those whose metadata
	contains `metadata_filter`, among the Lore Documents the caller may read."""
	frappe.has_permission("Lore Document", "read", throw=True)
	try:
		limit = int(limit)
	except (TypeError, ValueError):
		frappe.throw(_("limit must be a whole number"))
	rows = _vector_call(
		vectors.search_chunks,
		frappe.parse_json(embedding),
		limit=limit,
		metadata_filter=frappe.parse_json(metadata_filter) if metadata_filter else None,
		metric=metric,
	)
	readable = {
		name
		for name in {row["document_id"] for row in rows}
		if frappe.has_permission("Lore Document", "read", doc=name)
	}
	return [{**row, "id": str(row["id"])} for row in rows if row["document_id"] in readable]


@frappe.whitelist(methods=["POST"])
def set_document_chunks(document: str, chunks) -> int:
	"""Make the Lore Document's chunks exactly `chunks`: a list of {chunk_index, content, embedding,
	metadata}, embedding optional. Needs write permission on the document."""
	frappe.get_doc("Lore Document", document).check_permission("write")
	chunks = frappe.parse_json(chunks)
	if not isinstance(chunks, list) or not all(isinstance(c, dict) for c in chunks):
		frappe.throw(_("chunks must be a list of objects"))
	return _vector_call(
		vectors.replace_document_chunks,
		document,
		[
			vectors.Chunk(c.get("chunk_index"), c.get("content"), c.get("embedding"), c.get("metadata"))
			for c in chunks
		],
	)


@frappe.whitelist(methods=["POST"])
def set_entity_embedding(entity: str, embedding) -> None:
	"""Store the Lore Entity's embedding (shown as lore.entities.embedding). Needs write permission."""
	frappe.get_doc("Lore Entity", entity).check_permission("write")
	_vector_call(vectors.set_entity_embedding, entity, frappe.parse_json(embedding))
