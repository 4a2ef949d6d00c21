"""Lore endpoints (/api/method/cauldron.api.lore.<name>) and the Frappe glue of Lore's pipeline.

Lore Documents are embedded in the site: a save enqueues the document in command.work_queue in the
save's own transaction (cauldron.lore.ingest) and wakes a background worker after the commit
(cauldron.tasks.embed_lore_documents, also run every minute); the worker loads the document's
content and its attachments' text (cauldron.lore.extract), splits and embeds them with the provider
of Cauldron Settings (cauldron.lore.providers) and replaces the document's chunks.

`search` takes text (embedded with the active model's provider), a vector, or both, and ranks by
BM25, by vector, or both fused (cauldron.lore.search). Which documents the caller may read is
Frappe's own answer (DocPerms, User Permissions, permission query conditions, shares): the SQL of
frappe.get_list goes into the search statement as a subquery, so every leg ranks readable chunks
only and `limit` stays full.

Parameters go through cauldron.params (see cauldron.pg.values for what is refused, and the caps).
"""

import dataclasses
import json

import frappe
from frappe import _
from frappe.utils import get_datetime
from psycopg2 import sql

from cauldron import db, params
from cauldron.lore import extract, graph, ingest, keyword, providers, sync
from cauldron.lore import search as lore_search
from cauldron.pg import CauldronDBError, queue, vectors

DOCTYPE = "Lore Document"
SETTINGS = "Cauldron Settings"
WORKER = "cauldron.tasks.embed_lore_documents"
WORKER_JOB_ID = "cauldron-lore-embed"
# Cauldron Settings > Embedding Provider -> cauldron.lore.providers' kind
PROVIDER_KINDS = {"Local": "local", "OpenAI-compatible": "openai", "Azure OpenAI": "azure"}
# Who sees the queue and retries its items (its keys name documents of every user).
QUEUE_ROLES = ("System Manager", "Cauldron Manager", "Knowledge Editor")


def _vector_call(call, *args, **kwargs):
	with params.refused():
		try:
			return call(db.cursor(), *args, **kwargs)
		except vectors.VectorsUnavailable as e:
			frappe.throw(str(e), title=_("Semantic search is not available"))


# --- providers ------------------------------------------------------------------------------------


def provider_settings(doc, api_key: str | None = None) -> dict:
	"""cauldron.lore.providers' settings dict from a Cauldron Settings document."""
	return {
		"provider": PROVIDER_KINDS.get(doc.get("embedding_provider") or "Local", "local"),
		"base_url": (doc.get("embedding_base_url") or "").strip(),
		"model": (doc.get("embedding_model") or "").strip(),
		"dimension": doc.get("embedding_dimension") or vectors.DEFAULT_DIMENSION,
		"timeout": doc.get("embedding_timeout") or 30,
		"batch_size": doc.get("embedding_batch_size") or 64,
		"api_version": (doc.get("embedding_api_version") or "").strip(),
		"send_dimensions": bool(doc.get("embedding_send_dimensions")),
		"api_key": api_key,
	}


def model_of(settings: dict) -> str:
	"""The model a settings dict names, without building its provider."""
	if (settings.get("provider") or "local") == "local":
		return providers.LOCAL_MODEL
	return (settings.get("model") or "").strip()


def _saved_password(fieldname: str) -> str | None:
	from frappe.utils.password import get_decrypted_password

	return get_decrypted_password(SETTINGS, SETTINGS, fieldname, raise_exception=False) or None


def _settings():
	return frappe.get_cached_doc(SETTINGS)


def site_provider():
	"""The provider Cauldron Settings names (ProviderError when its settings are unusable)."""
	return providers.provider_from_settings(
		provider_settings(_settings(), _saved_password("embedding_api_key"))
	)


def previous_provider():
	"""The provider of the model being replaced while a new one is built, if it was recorded."""
	saved = _settings().get("embedding_previous_settings")
	if not saved:
		return None
	settings = json.loads(saved) if isinstance(saved, str) else dict(saved)
	settings["api_key"] = _saved_password("embedding_previous_api_key")
	return providers.provider_from_settings(settings)


def pipeline_providers(cur) -> list:
	"""The providers a worker embeds with: the site's, and while a model switch is being built, the
	one of the model search still answers from (so documents edited meanwhile stay current in both)."""
	found = [site_provider()]
	active, building = ingest.active_model(cur), ingest.building_model(cur)
	if building and active and found[0].model != active:
		previous = previous_provider()
		if previous is not None and previous.model == active:
			found.append(previous)
	return found


def query_provider(cur):
	"""The provider of the active model (the vectors search compares), or None when there is none."""
	active = ingest.active_model(cur)
	if not active:
		return None
	current = site_provider()
	if current.model == active:
		return current
	previous = previous_provider()
	return previous if previous is not None and previous.model == active else None


# --- ingestion ------------------------------------------------------------------------------------


class AttachmentError(ingest.IngestError):
	"""An attachment Lore cannot read: trying again cannot help until the file changes."""

	retryable = False


def load_document(_cur, name: str, _payload: dict):
	"""The worker's loader: a Lore Document's title and content, then its attachments' text, as
	ingest.Text; None when the document is gone (its chunks are then deleted)."""
	row = frappe.db.get_value(DOCTYPE, name, ["title", "content", "source_type", "metadata"], as_dict=True)
	if row is None:
		return None
	title = " ".join((row.title or "").split())
	# a knowledge source's document: its chunks name the source, the record's DocType and the link
	origin = sync.chunk_metadata(row.metadata)
	texts = [
		ingest.Text(
			f"# {title}\n\n{row.content or ''}" if title else row.content or "",
			{"part": "content", "source_type": row.source_type or "", **origin},
		)
	]
	for file in frappe.get_all(
		"File",
		filters={"attached_to_doctype": DOCTYPE, "attached_to_name": name, "is_folder": 0},
		fields=["name", "file_name", "file_url", "file_size"],
		order_by="creation asc, name asc",
	):
		label = file.file_name or file.file_url or file.name
		if (file.file_url or "").startswith(("http://", "https://")):
			continue  # a link to elsewhere, not a file of this site: not fetched
		if file.file_size and file.file_size > extract.MAX_BYTES:
			raise AttachmentError(
				f"attachment {label} is {file.file_size:,} bytes; Lore reads files up to {extract.MAX_BYTES:,}"
			)
		content = frappe.get_doc("File", file.name).get_content()
		if isinstance(content, str):
			content = content.encode("utf-8", "surrogatepass")
		try:
			found = extract.extract(content, file.file_name)
		except extract.ExtractError as e:
			raise AttachmentError(f"attachment {label}: {e}") from e
		texts.append(
			ingest.Text(
				found.text,
				{"part": "attachment", "file": label, "file_url": file.file_url or "", "kind": found.kind},
			)
		)
	return texts


def wake_worker() -> None:
	"""Wake the embedding worker once the current transaction commits (cauldron.db.wake_after_commit)."""
	db.wake_after_commit(WORKER, WORKER_JOB_ID)


def enqueue_documents(names) -> int:
	"""Queue documents for (re-)embedding in the caller's transaction, and wake the worker."""
	cur = db.cursor()
	count = 0
	for name in names:
		ingest.enqueue_document(cur, name)
		count += 1
	if count:
		wake_worker()
	return count


def document_changed(doc, method=None) -> None:
	"""Lore Document on_update: its text changed (or it is new), so it is embedded again."""
	if not doc.get_doc_before_save() or any(
		doc.has_value_changed(field) for field in ("title", "content", "source_type")
	):
		enqueue_documents([doc.name])


def entity_changed(doc, method=None) -> None:
	"""Lore Entity on_update: a new entity, or a new name or description, is embedded again
	(cauldron.lore.graph's queue, in the save's transaction; the same worker)."""
	if not doc.get_doc_before_save() or any(
		doc.has_value_changed(field) for field in ("entity_name", "description")
	):
		graph.enqueue_entity(db.cursor(), doc.name)
		wake_worker()


def file_changed(doc, method=None) -> None:
	"""after_insert / after_delete of every document (hooks' "*"): a File attached to a Lore Document
	came or went."""
	if doc.doctype == "File" and doc.get("attached_to_doctype") == DOCTYPE and doc.get("attached_to_name"):
		enqueue_documents([doc.attached_to_name])


# --- search ---------------------------------------------------------------------------------------


def readable_documents(user: str | None = None, doctype: str = DOCTYPE) -> sql.Composable:
	"""The SELECT of the names of `doctype` (Lore Document) `user` may read, as Frappe's own list
	builds it (DocPerms, User Permissions, permission query conditions, shares), for use inside
	another statement. frappe.get_list(run=0) gives its SQL as frappe.db.sql would send it, before the
	two rewrites that sql() still makes (ifnull, and no parameters: a % is literal)."""
	from frappe.database.database import IFNULL_PATTERN

	text = frappe.get_list(
		doctype, fields=["name"], run=0, limit_page_length=0, order_by="", user=user or frappe.session.user
	)
	text = IFNULL_PATTERN.sub("coalesce(", str(text).strip())
	return sql.SQL(text.replace("%", "%%"))


def _names_list(value, what: str) -> list[str] | None:
	if value in (None, "", []):
		return None
	if isinstance(value, str):
		value = [value]
	if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
		frappe.throw(_("{0} must be a list of names").format(what), params.InvalidParameter)
	return value


def _moment(value, what: str):
	if value in (None, ""):
		return None
	try:
		return get_datetime(value)
	except Exception:
		frappe.throw(_("{0} is not a date: {1}").format(what, str(value)[:50]), params.InvalidParameter)


MODES = {None, "", *lore_search.MODES}


@frappe.whitelist()
@params.checked(json=("embedding", "metadata_filter", "documents", "sources", "doctypes"))
def search(
	query=None,
	embedding=None,
	limit=10,
	mode=None,
	metadata_filter=None,
	documents=None,
	sources=None,
	doctypes=None,
	since=None,
	until=None,
	metric="cosine",
) -> list[dict]:
	"""The best `limit` chunks of the Lore Documents the caller may read, best first.

	`query`: text (embedded with the active model's provider for the vector leg); `embedding`: the
	query's vector made by the caller (of the active model). `mode`: vector, keyword or hybrid
	(default: hybrid with text, vector with only a vector; without an active model to embed the text,
	keyword). Filters: `metadata_filter` (chunk metadata contains it, e.g. {"part": "attachment"}),
	`documents`, `sources` and `doctypes` (lists), `since` / `until` (the chunk's creation).
	Each hit: document (its name), title, url, chunk_index, content, metadata, score, highlight
	(HTML, matched words in <mark>), vector_rank, vector_distance (= distance), keyword_rank,
	keyword_score. `metric` other than cosine is an exact scan filtered after ranking (as before
	permission-aware search), for vectors only."""
	frappe.has_permission(DOCTYPE, "read", throw=True)
	limit = params.whole_number(limit, "limit", 1, lore_search.MAX_LIMIT)
	if mode is not None and (not isinstance(mode, str) or mode not in MODES):
		frappe.throw(
			_("mode must be one of {0}").format(", ".join(lore_search.MODES)), params.InvalidParameter
		)
	if query is not None and not isinstance(query, str):
		frappe.throw(_("query must be text"), params.InvalidParameter)
	query = query if query and query.strip() else None
	if query is None and embedding is None:
		frappe.throw(_("search needs a query (text) or an embedding"), params.InvalidParameter)
	if metric != "cosine" and query is None:
		return _search_by_metric(embedding, limit, metadata_filter, metric)
	if metric != "cosine":
		frappe.throw(_("a text search ranks by cosine distance only"), params.InvalidParameter)
	if metadata_filter is not None and not isinstance(metadata_filter, dict):
		frappe.throw(_("metadata_filter must be an object"), params.InvalidParameter)

	cur = db.cursor()
	with params.refused():
		try:
			if not mode:
				mode = "hybrid" if query else "vector"
				if embedding is None and query_provider(cur) is None:
					mode = "keyword"
			if mode != "keyword" and embedding is None and query is not None:
				embedding = _embed_query(cur, query)
			filters = lore_search.Filters(
				documents=_names_list(documents, "documents"),
				sources=_names_list(sources, "sources"),
				doctypes=_names_list(doctypes, "doctypes"),
				metadata=metadata_filter or None,
				since=_moment(since, "since"),
				until=_moment(until, "until"),
			)
			hits = lore_search.search(
				cur,
				query,
				embedding,
				mode=mode,
				limit=limit,
				filters=filters,
				readable=readable_documents(),
				highlight=query is not None,
			)
		except vectors.VectorsUnavailable as e:
			frappe.throw(str(e), title=_("Semantic search is not available"))
		except providers.ProviderError as e:
			frappe.throw(str(e), params.InvalidParameter, title=_("The embedding provider failed"))
	return _named(hits)


def _embed_query(cur, query: str) -> list[float]:
	provider = query_provider(cur)
	if provider is None:
		active = ingest.active_model(cur)
		frappe.throw(
			_(
				"No embedding model can embed the question: {0}. Search with mode=keyword, pass the"
				" query's embedding, or wait until Lore has embedded the documents."
			).format(
				_("no model is active yet")
				if not active
				else _("the active model {0} is not the one Cauldron Settings names").format(active)
			),
			params.InvalidParameter,
			title=_("No embedding model"),
		)
	return provider.embed([query])[0]


def _named(hits: list[dict]) -> list[dict]:
	found = (
		frappe.get_all(
			DOCTYPE,
			filters={"name": ("in", sorted({h["document_id"] for h in hits}))},
			fields=["name", "title", "source_url"],
			as_list=True,
		)
		if hits
		else []
	)
	titles = {name: title for name, title, _url in found}
	sources = {name: url for name, _title, url in found}
	entities = _document_entities(sorted({h["document_id"] for h in hits}))
	return [
		{
			**hit,
			"id": str(hit["id"]),
			"document": hit["document_id"],
			"title": titles.get(hit["document_id"]),
			"url": f"/app/lore-document/{hit['document_id']}",
			# the record, file or page a knowledge source read the document from
			"source_url": sources.get(hit["document_id"]) or None,
			"distance": hit.get("vector_distance"),
			"entities": entities.get(hit["document_id"], []),
		}
		for hit in hits
	]


def _document_entities(documents: list[str]) -> dict[str, list[dict]]:
	"""The Lore Entities the caller may read that are linked to each document (cauldron.lore.graph)."""
	if not documents or not frappe.has_permission(ENTITY, "read"):
		return {}
	found = graph.document_entities(db.cursor(), documents, readable=readable_documents(doctype=ENTITY))
	return {
		document: [{**e, "url": f"/app/lore-entity/{e['name']}"} for e in linked]
		for document, linked in found.items()
	}


def _search_by_metric(embedding, limit, metadata_filter, metric) -> list[dict]:
	rows = _vector_call(
		vectors.search_chunks, embedding, limit=limit, metadata_filter=metadata_filter or None, metric=metric
	)
	readable = {
		name
		for name in {row["document_id"] for row in rows}
		if frappe.has_permission(DOCTYPE, "read", doc=name)
	}
	return _named(
		[
			{**row, "vector_distance": row["distance"], "score": None, "highlight": None}
			for row in rows
			if row["document_id"] in readable
		]
	)


# --- caller-supplied vectors ----------------------------------------------------------------------


@frappe.whitelist(methods=["POST"])
@params.checked(json=("chunks",), names=("document",))
def set_document_chunks(document: str, chunks, model=None) -> int:
	"""Make the Lore Document's chunks of `model` exactly `chunks`: a list of {chunk_index, content,
	embedding, metadata}, embedding optional. Needs write permission on the document.

	The vectors must be the active model's (the default), or the one being built (name it): search
	compares only vectors of the active model. Lore embeds the document itself on its next save."""
	frappe.has_permission(DOCTYPE, "write", throw=True)
	frappe.get_doc(DOCTYPE, document).check_permission("write")
	if not isinstance(chunks, list) or not all(isinstance(c, dict) for c in chunks):
		frappe.throw(_("chunks must be a list of objects"), params.InvalidParameter)
	if model is not None and not isinstance(model, str):
		frappe.throw(_("model must be text"), params.InvalidParameter)
	return _vector_call(_replace_chunks, document, chunks, model)


def _replace_chunks(cur, document, chunks, model):
	active = ingest.active_model(cur)
	if model in (None, ""):
		model = active
	elif model not in (active, ingest.building_model(cur)):
		raise CauldronDBError(
			f"model {model!r} is neither the active embedding model ({active or 'none'}) nor the one being"
			" built: search would never compare its vectors"
		)
	return vectors.replace_document_chunks(
		cur,
		document,
		[
			vectors.Chunk(c.get("chunk_index"), c.get("content"), c.get("embedding"), c.get("metadata"))
			for c in chunks
		],
		model=model,
	)


@frappe.whitelist(methods=["POST"])
@params.checked(json=("embedding",), names=("entity",))
def set_entity_embedding(entity: str, embedding) -> None:
	"""Store the Lore Entity's embedding (shown as lore.entities.embedding), as the active model's.
	Needs write permission. Lore embeds the entity itself when its name or description changes."""
	frappe.has_permission("Lore Entity", "write", throw=True)
	frappe.get_doc("Lore Entity", entity).check_permission("write")
	_vector_call(graph.set_entity_embedding, entity, embedding)


# --- the queue and the models, for Desk -----------------------------------------------------------


@frappe.whitelist()
def pipeline_status() -> dict:
	"""The embedding queue's counts and parked items, the models and the site's provider."""
	frappe.only_for(QUEUE_ROLES)
	cur = db.cursor()
	stats = queue.stats(cur, ingest.QUEUE)[0]
	try:
		models = ingest.models(cur)
		active, building = ingest.active_model(cur), ingest.building_model(cur)
	except vectors.VectorsUnavailable as e:
		models, active, building = [], None, None
		frappe.msgprint(str(e), title=_("Semantic search is not available"))
	settings = _settings()
	return {
		"queue": {k: v for k, v in dataclasses.asdict(stats).items() if k != "queue"},
		"failed": [
			{**item, "title": frappe.db.get_value(DOCTYPE, item["key"], "title")}
			for item in queue.failed_items(cur, ingest.QUEUE, 100)
		],
		"models": models,
		"active_model": active,
		"building_model": building,
		"provider": settings.embedding_provider or "Local",
		"provider_model": model_of(provider_settings(settings)),
	}


@frappe.whitelist(methods=["POST"])
@params.checked(json=("ids",))
def retry(ids=None) -> int:
	"""Put parked items back in the queue (all of them when `ids` is not given); wakes the worker."""
	frappe.only_for(QUEUE_ROLES)
	cur = db.cursor()
	with params.refused():
		if ids is None:
			done = queue.retry_failed(cur, ingest.QUEUE)
		else:
			if not isinstance(ids, list) or not all(
				isinstance(i, int) and not isinstance(i, bool) for i in ids
			):
				frappe.throw(_("ids must be a list of whole numbers"), params.InvalidParameter)
			done = queue.retry(cur, ids)
	if done:
		wake_worker()
	return len(done)


@frappe.whitelist(methods=["POST"])
def embed_all() -> int:
	"""Queue every Lore Document and Lore Entity (a site whose documents predate the pipeline, or
	after a failure); returns how many documents."""
	frappe.only_for(("System Manager", "Cauldron Manager"))
	cur = db.cursor()
	for name in frappe.get_all(ENTITY, pluck="name", order_by="creation asc"):
		graph.enqueue_entity(cur, name)
	return enqueue_documents(frappe.get_all(DOCTYPE, pluck="name", order_by="creation asc"))


@frappe.whitelist(methods=["POST"])
def test_provider() -> dict:
	"""Embed a short text with the saved provider: its model, dimension and time, or its error."""
	import time

	frappe.only_for(("System Manager",))
	try:
		provider = site_provider()
		started = time.monotonic()
		vector = provider.embed(["Cauldron checks its embedding provider."])[0]
	except providers.ProviderError as e:
		frappe.throw(str(e), title=_("The embedding provider failed"))
	return {
		"model": provider.model,
		"dimension": len(vector),
		"milliseconds": round((time.monotonic() - started) * 1000, 1),
	}


def compact_keyword_statistics(cur) -> None:
	if keyword.available(cur):
		keyword.compact_statistics(cur)


# --- knowledge graph ------------------------------------------------------------------------------

ENTITY = "Lore Entity"


def _graph_filters(relationship_types, min_confidence, directed) -> dict:
	if min_confidence not in (None, ""):
		try:
			min_confidence = float(min_confidence)
		except (TypeError, ValueError):
			frappe.throw(_("min_confidence must be a number from 0 to 1"), params.InvalidParameter)
	return {
		"relationship_types": _names_list(relationship_types, "relationship_types"),
		"min_confidence": None if min_confidence in (None, "") else min_confidence,
		"directed": directed in (True, 1, "1", "true"),
	}


def _readable_entity(entity: str) -> None:
	"""Read permission on the entity, the same refusal whether it exists or not."""
	# has_permission loads the document: a name that does not exist would be a 404 there
	if not frappe.db.exists(ENTITY, entity) or not frappe.has_permission(ENTITY, "read", doc=entity):
		frappe.throw(_("Not permitted to read {0} {1}").format(_(ENTITY), entity), frappe.PermissionError)


@frappe.whitelist()
@params.checked(json=("relationship_types",), names=("entity",))
def neighbourhood(entity, depth=2, relationship_types=None, min_confidence=None, directed=False) -> dict:
	"""The Lore Entities within `depth` hops (1 to 6) of `entity` and the relationships among them,
	through readable entities only: {nodes: [{name, entity_name, entity_type, depth}], edges: [{name,
	source, target, relationship_type, confidence}], truncated}. Filters: `relationship_types`
	(a list), `min_confidence`, `directed` (follow relationships from source to target only)."""
	_readable_entity(entity)
	depth = params.whole_number(depth, "depth", 1, graph.MAX_DEPTH)
	with params.refused():
		return graph.neighbourhood(
			db.cursor(),
			entity,
			depth,
			**_graph_filters(relationship_types, min_confidence, directed),
			readable=readable_documents(doctype=ENTITY),
		)


@frappe.whitelist()
@params.checked(json=("relationship_types",), names=("source", "target"))
def shortest_path(
	source, target, max_depth=graph.MAX_DEPTH, relationship_types=None, min_confidence=None, directed=False
):
	"""A shortest path between two Lore Entities through readable ones: [{entity, relationship,
	depth}] from `source` to `target`, or null when there is none within `max_depth` hops."""
	_readable_entity(source)
	_readable_entity(target)
	max_depth = params.whole_number(max_depth, "max_depth", 1, graph.MAX_DEPTH)
	with params.refused():
		return graph.shortest_path(
			db.cursor(),
			source,
			target,
			max_depth,
			**_graph_filters(relationship_types, min_confidence, directed),
			readable=readable_documents(doctype=ENTITY),
		)


@frappe.whitelist()
@params.checked(names=("entity",))
def similar_entities(entity=None, query=None, limit=10) -> list[dict]:
	"""The readable Lore Entities nearest to `entity`'s embedding, or to the text `query` embedded
	with the active model: [{name, entity_name, entity_type, distance}], nearest first."""
	if (entity is None) == (query is None):
		frappe.throw(_("give either an entity or a query"), params.InvalidParameter)
	if entity is not None:
		_readable_entity(entity)
	else:
		frappe.has_permission(ENTITY, "read", throw=True)
		if not isinstance(query, str) or not query.strip():
			frappe.throw(_("query must be text"), params.InvalidParameter)
	limit = params.whole_number(limit, "limit", 1, 1000)
	cur = db.cursor()
	with params.refused():
		try:
			embedding = None if entity is not None else _embed_query(cur, query)
			return graph.similar_entities(
				cur,
				entity=entity,
				embedding=embedding,
				limit=limit,
				readable=readable_documents(doctype=ENTITY),
			)
		except vectors.VectorsUnavailable as e:
			frappe.throw(str(e), title=_("Semantic search is not available"))
		except providers.ProviderError as e:
			frappe.throw(str(e), params.InvalidParameter, title=_("The embedding provider failed"))
