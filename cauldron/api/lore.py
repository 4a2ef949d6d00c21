"""Lore endpoints: /api/method/cauldron.api.lore.<name>

Embeddings are computed by the caller (any model whose dimension is the site's Embedding Dimension);
Cauldron stores them in lore.document_chunks / lore.entity_embeddings and searches them with HNSW.
Parameters go through cauldron.params (see cauldron.pg.values for what is refused, and the caps).
"""

import frappe
from frappe import _

from cauldron import db, params
from cauldron.pg import vectors


def _vector_call(call, *args, **kwargs):
	with params.refused():
		try:
			return call(db.cursor(), *args, **kwargs)
		except vectors.VectorsUnavailable as e:
			frappe.throw(str(e), title=_("Semantic search is not available"))


@frappe.whitelist()
@params.checked(json=("embedding", "metadata_filter"))
def search(embedding, limit=10, metadata_filter=None, metric="cosine") -> list[dict]:
	"""The chunks nearest to `embedding` (a list of numbers), optionally only those whose metadata
	contains `metadata_filter`, among the Lore Documents the caller may read."""
	frappe.has_permission("Lore Document", "read", throw=True)
	rows = _vector_call(
		vectors.search_chunks,
		embedding,
		limit=params.whole_number(limit, "limit", 1, 1000),
		metadata_filter=metadata_filter or None,
		metric=metric,
	)
	readable = {
		name
		for name in {row["document_id"] for row in rows}
		if frappe.has_permission("Lore Document", "read", doc=name)
	}
	return [{**row, "id": str(row["id"])} for row in rows if row["document_id"] in readable]


@frappe.whitelist(methods=["POST"])
@params.checked(json=("chunks",), names=("document",))
def set_document_chunks(document: str, chunks) -> int:
	"""Make the Lore Document's chunks exactly `chunks`: a list of {chunk_index, content, embedding,
	metadata}, embedding optional. Needs write permission on the document."""
	frappe.has_permission("Lore Document", "write", throw=True)
	frappe.get_doc("Lore Document", document).check_permission("write")
	if not isinstance(chunks, list) or not all(isinstance(c, dict) for c in chunks):
		frappe.throw(_("chunks must be a list of objects"), params.InvalidParameter)
	return _vector_call(
		vectors.replace_document_chunks,
		document,
		[
			vectors.Chunk(c.get("chunk_index"), c.get("content"), c.get("embedding"), c.get("metadata"))
			for c in chunks
		],
	)


@frappe.whitelist(methods=["POST"])
@params.checked(json=("embedding",), names=("entity",))
def set_entity_embedding(entity: str, embedding) -> None:
	"""Store the Lore Entity's embedding (shown as lore.entities.embedding). Needs write permission."""
	frappe.has_permission("Lore Entity", "write", throw=True)
	frappe.get_doc("Lore Entity", entity).check_permission("write")
	_vector_call(vectors.set_entity_embedding, entity, embedding)
