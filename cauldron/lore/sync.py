"""Lore's knowledge sources inside Frappe: their records, files and pages become Lore Documents, which
the ingest pipeline embeds (cauldron.api.lore: a Lore Document's save queues it in command.work_queue
in the same transaction).

- DocType sources follow every change as it is saved: hooks' "*" on_change, after_delete and
  after_rename call `on_change`, `after_delete` and `after_rename` here, which return at once for a
  DocType no source reads (the set of source DocTypes is cached, cleared when a source changes).
  File sources follow File inserts and deletes the same way. A record that no longer matches the
  source's filters, or is deleted, loses its document and chunks; a renamed one moves to a new
  document. The event's work runs in a savepoint: a failure is recorded on the source (Last Error)
  and never fails the user's save.
- A full sync (`sync_source`: the scheduler every 15 minutes for sources due by Sync Frequency, and
  Sync Now) is idempotent: every record, file or page is rendered, its hash compared with the one its
  document recorded, and only changed ones are written (so only they are embedded again); documents
  of records, files or pages that are gone are deleted. URL pages are fetched with If-None-Match /
  If-Modified-Since from their last answer: a 304 writes nothing.
- Each source document is named by a UUID derived from (source, DocType, record) and records in its
  metadata the source, the reference DocType and name, a link and the content hash.
- Permissions: a source document of a DocType or File source is readable only by users who may read
  its record (Frappe's rules: DocPerms, User Permissions, permission query conditions, shares):
  `lore_document_conditions` is Lore Document's permission query condition (so `frappe.get_list`,
  Desk's list and search's pre-filter, which is that list's SQL, all apply it) and
  `lore_document_permission` its has_permission.
"""

import json

import frappe
from frappe import _
from frappe.model import data_fieldtypes
from frappe.utils import now_datetime, strip_html_tags

from cauldron import db, params
from cauldron.lore import extract, sources
from cauldron.pg import CauldronDBError

SOURCE = "Lore Knowledge Source"
DOCUMENT = "Lore Document"
SOURCE_TYPE = "knowledge_source"  # Lore Document's source_type for documents made by a source
CACHE_KEY = "cauldron_lore_knowledge_sources"
SYNC_JOB = "cauldron.lore.sync.sync_source"
PAGE = 500
TITLE_CHARS = 140
MAX_ERRORS = 20
# DocTypes a DocType source may not read: Lore's own, and those written as a side effect of a write.
REFUSED_DOCTYPES = frozenset(
	(
		DOCUMENT,
		SOURCE,
		"Lore Document Chunk",
		"Version",
		"Deleted Document",
		"Error Log",
		"Scheduled Job Log",
		"Access Log",
		"Activity Log",
		"Route History",
		"DocShare",
	)
)
HTML_TYPES = frozenset(("Text Editor", "HTML Editor"))
LONG_TYPES = frozenset(("Small Text", "Text", "Long Text", "Code", "JSON"))
DEFAULT_TYPES = frozenset(
	("Data", "Select", "Small Text", "Text", "Long Text", "Text Editor", "Markdown Editor", "HTML Editor")
)
REFUSED_TYPES = frozenset(
	("Password", "Table", "Table MultiSelect", "Attach Image", "Signature", "Geolocation")
)
STANDARD_FIELDS = ("name", "owner", "creation", "modified", "modified_by", "docstatus", "idx")


class SourceConfigError(frappe.ValidationError):
	pass


# --- the sources, cached ------------------------------------------------------------------------------


def _load_index() -> dict:
	"""{"events": {doctype: [active source names]} ("File" for File sources), "gated": [DocTypes whose
	source documents are readable only with the record]}."""
	try:
		rows = frappe.get_all(
			SOURCE,
			filters={"source_type": ("in", [sources.DOCTYPE, sources.FILE])},
			fields=["name", "source_type", "connection_config", "is_active"],
			order_by="creation asc",
		)
	except Exception:  # the table is not there yet (install, migrate)
		return {"events": {}, "gated": []}
	events, gated = {}, set()
	for row in rows:
		key = sources.FILE
		if row.source_type == sources.DOCTYPE:
			key = (_json(row.connection_config).get("doctype") or "").strip()
			if not key:
				continue
		gated.add(key)
		if row.is_active:
			events.setdefault(key, []).append(row.name)
	return {"events": events, "gated": sorted(gated)}


def _index() -> dict:
	return frappe.cache().get_value(CACHE_KEY, generator=_load_index)


def clear_cache() -> None:
	"""Forget the cached sources now, and again when this transaction commits or rolls back: another
	process may cache what it read before the commit meanwhile."""
	frappe.cache().delete_value(CACHE_KEY)
	if not frappe.flags.cauldron_lore_clear_hooked:
		frappe.flags.cauldron_lore_clear_hooked = True

		def clear():
			frappe.flags.cauldron_lore_clear_hooked = False
			frappe.cache().delete_value(CACHE_KEY)

		frappe.db.after_commit.add(clear)
		frappe.db.after_rollback.add(clear)


def _json(value) -> dict:
	if value in (None, ""):
		return {}
	if isinstance(value, str):
		try:
			value = json.loads(value)
		except ValueError:
			return {}
	return value if isinstance(value, dict) else {}


# --- checking a source (its controller's validate) -----------------------------------------------------


def check_source(doc) -> dict | None:
	"""The source's checked config (None for a type Lore does not sync); SourceConfigError naming
	what is wrong, so nothing is saved: an unknown DocType, unknown or unusable fields, filters that
	do not parse or do not run, a folder that does not exist, a URL that is not http(s)."""
	if doc.source_type not in sources.TYPES:
		return None
	try:
		config = sources.config(doc.source_type, _json(doc.connection_config))
	except sources.SourceError as e:
		_refuse(str(e))
	if doc.source_type == sources.DOCTYPE:
		config = _check_doctype_config(config)
	elif doc.source_type == sources.FILE:
		if config["folder"] and not frappe.db.exists("File", {"name": config["folder"], "is_folder": 1}):
			_refuse(
				_("folder {0} does not exist (folders are named like Home/Attachments)").format(
					config["folder"]
				)
			)
		if config["attached_to_doctype"] and not frappe.db.exists("DocType", config["attached_to_doctype"]):
			_refuse(_("DocType {0} does not exist").format(config["attached_to_doctype"]))
	return config


def _refuse(message: str):
	frappe.throw(message, SourceConfigError, title=_("Invalid knowledge source"))


def _check_doctype_config(config: dict) -> dict:
	doctype = config["doctype"]
	if not frappe.db.exists("DocType", doctype):
		_refuse(_("DocType {0} does not exist").format(doctype))
	if doctype in REFUSED_DOCTYPES:
		_refuse(
			_("{0} cannot be a knowledge source: Lore writes it, or writing Lore Documents does").format(
				doctype
			)
		)
	if doctype == "File":
		_refuse(_("Files are read by a File source (by folder or by the DocType they are attached to)"))
	meta = frappe.get_meta(doctype)
	if meta.istable or meta.issingle or meta.get("is_virtual"):
		_refuse(
			_("{0} is a child table, a Single or virtual: its records cannot be a source").format(doctype)
		)
	fields = config["fields"] or default_fields(meta)
	for fieldname in fields:
		if fieldname in STANDARD_FIELDS:
			continue
		df = meta.get_field(fieldname)
		if df is None:
			_refuse(_("{0} has no field {1}").format(doctype, fieldname))
		if df.fieldtype in REFUSED_TYPES or df.fieldtype not in data_fieldtypes:
			_refuse(
				_("field {0} of {1} is a {2}: Lore reads text and values only").format(
					fieldname, doctype, df.fieldtype
				)
			)
		if (df.permlevel or 0) > 0:
			_refuse(
				_(
					"field {0} of {1} has permission level {2}: users who may read a record may not see it"
				).format(fieldname, doctype, df.permlevel)
			)
	filters = params.filters(config["filters"], "filters") if config["filters"] is not None else []
	columns = set(meta.get_valid_columns()) | set(STANDARD_FIELDS)
	for item in filters:
		if item.fieldname not in columns:
			_refuse(_("filters: {0} has no field {1}").format(doctype, item.fieldname))
	config["filters"] = [[f.fieldname, f.operator, f.value] for f in filters]
	frappe.db.savepoint("cauldron_lore_source_check")
	try:
		frappe.get_all(doctype, filters=config["filters"], limit=1, pluck="name")
	except Exception as e:
		frappe.db.rollback(save_point="cauldron_lore_source_check")
		frappe.clear_last_message()
		_refuse(_("filters do not run on {0}: {1}").format(doctype, str(e).splitlines()[0][:300]))
	frappe.db.release_savepoint("cauldron_lore_source_check")
	config["fields"] = fields
	return config


def default_fields(meta) -> list[str]:
	"""The fields a DocType source reads when it names none: the title and every text field a reader
	of the record sees (permission level 0, not hidden)."""
	found = [meta.title_field] if meta.title_field else []
	for df in meta.fields:
		if (
			df.fieldtype in DEFAULT_TYPES
			and not df.hidden
			and not (df.permlevel or 0)
			and df.fieldname not in found
		):
			found.append(df.fieldname)
	return found


def _source_config(name: str) -> tuple:
	"""(source doc, checked config) of a source, for the events and the sync."""
	source = frappe.get_cached_doc(SOURCE, name)
	return source, check_source(source)


# --- writing source documents ---------------------------------------------------------------------------


class _Syncing:
	"""Events fired while Lore writes source documents (Version rows, the Lore Document's own) are
	not source changes."""

	def __enter__(self):
		self.before = frappe.flags.cauldron_lore_syncing
		frappe.flags.cauldron_lore_syncing = True

	def __exit__(self, *exc):
		frappe.flags.cauldron_lore_syncing = self.before


def _stored(name: str):
	row = frappe.db.get_value(DOCUMENT, name, ["name", "metadata"], as_dict=True)
	return None if row is None else _json(row.metadata)


def write_document(name: str, title: str, content: str, url: str | None, metadata: dict) -> str:
	"""Make Lore Document `name` hold this title and content: "unchanged" (nothing written, when its
	metadata, content hash included, is the same), "updated" or "created". The save queues the document
	for embedding when its title or content changed (cauldron.api.lore.document_changed)."""
	stored = _stored(name)
	if stored == metadata:
		return "unchanged"
	content = content.strip() or title
	with _Syncing():
		if stored is None:
			doc = frappe.new_doc(DOCUMENT)
			doc.update(
				{
					"title": title,
					"content": content,
					"source_type": SOURCE_TYPE,
					"source_url": url,
					"metadata": json.dumps(metadata),
				}
			)
			doc.flags.ignore_permissions = True
			doc.insert(set_name=name)
			return "created"
		doc = frappe.get_doc(DOCUMENT, name)
		doc.update(
			{
				"title": title,
				"content": content,
				"source_type": SOURCE_TYPE,
				"source_url": url,
				"metadata": json.dumps(metadata),
			}
		)
		doc.flags.ignore_permissions = True
		doc.save()
		return "updated"


def drop_document(name: str) -> bool:
	"""Delete a source document (its chunks go with it); False when there was none."""
	if not frappe.db.exists(DOCUMENT, name):
		return False
	with _Syncing():
		frappe.delete_doc(DOCUMENT, name, ignore_permissions=True, force=True)
	return True


def source_documents(source: str) -> list[str]:
	"""Names of the Lore Documents a source made."""
	cur = db.cursor()
	cur.execute(
		"""SELECT name FROM "tabLore Document"
		WHERE source_type = %s AND (metadata::jsonb) ->> 'knowledge_source' = %s ORDER BY name""",
		(SOURCE_TYPE, source),
	)
	return [row[0] for row in cur.fetchall()]


def _record_url(doctype: str, name: str) -> str:
	from urllib.parse import quote

	return f"/app/{frappe.scrub(doctype).replace('_', '-')}/{quote(str(name), safe='')}"


def _kind(df) -> str:
	if df is None:
		return sources.SHORT
	if df.fieldtype in HTML_TYPES:
		return sources.HTML
	if df.fieldtype == "Markdown Editor":
		return sources.MARKDOWN
	if df.fieldtype in LONG_TYPES:
		return sources.TEXT
	return sources.SHORT


def write_record(source: str, config: dict, record) -> str:
	"""A record (a Document or a row with the source's fields) as its source document."""
	doctype, name = config["doctype"], record.get("name")
	meta = frappe.get_meta(doctype)
	title_field = meta.title_field if meta.title_field and meta.title_field in config["fields"] else None
	title = strip_html_tags(str(record.get(title_field) or "")) if title_field else ""
	title = " ".join((title or str(name)).split())
	if len(title) > TITLE_CHARS:
		title = title[: TITLE_CHARS - 1].rstrip() + "…"
	# a short title field is the heading; a long one (ToDo's description) is the body too
	short_title = title_field and _kind(meta.get_field(title_field)) == sources.SHORT
	values = []
	for fieldname in config["fields"]:
		if fieldname == title_field and short_title:
			continue
		df = meta.get_field(fieldname)
		label = _(df.label) if df and df.label else fieldname
		values.append(sources.FieldValue(label, record.get(fieldname), _kind(df)))
	text = sources.render_record(title, values)
	url = _record_url(doctype, name)
	metadata = {
		"knowledge_source": source,
		"source_kind": sources.DOCTYPE,
		"reference_doctype": doctype,
		"reference_name": str(name),
		"url": url,
		"content_hash": sources.content_hash(title, text),
	}
	return write_document(sources.document_name(source, doctype, str(name)), title, text, url, metadata)


def _matches(config: dict, name: str) -> bool:
	if not config["filters"]:
		return bool(frappe.db.exists(config["doctype"], name))
	return bool(
		frappe.get_all(
			config["doctype"], filters=[*config["filters"], ["name", "=", name]], limit=1, pluck="name"
		)
	)


def _file_matches(config: dict, file) -> bool:
	if file.get("is_folder"):
		return False
	return bool(
		(config["folder"] and file.get("folder") == config["folder"])
		or (
			config["attached_to_doctype"] and file.get("attached_to_doctype") == config["attached_to_doctype"]
		)
	)


def write_file(source: str, file) -> str:
	"""A File's text as its source document; SourceError when it cannot be read."""
	label = file.get("file_name") or file.get("file_url") or file.get("name")
	if (file.get("file_url") or "").startswith(("http://", "https://")):
		raise sources.SourceError(f"file {label} is a link to another site, not a file of this one")
	if file.get("file_size") and file.get("file_size") > extract.MAX_BYTES:
		raise sources.SourceError(
			f"file {label} is {file.file_size:,} bytes; Lore reads files up to {extract.MAX_BYTES:,}"
		)
	content = frappe.get_doc("File", file.get("name")).get_content()
	if isinstance(content, str):
		content = content.encode("utf-8", "surrogatepass")
	title = " ".join(str(file.get("file_name") or file.get("name")).split())[:500]
	digest = sources.content_hash(title, content)
	name = sources.document_name(source, "File", file.get("name"))
	stored = _stored(name)
	metadata = {
		"knowledge_source": source,
		"source_kind": sources.FILE,
		"reference_doctype": "File",
		"reference_name": file.get("name"),
		"url": file.get("file_url"),
		"attached_to_doctype": file.get("attached_to_doctype"),
		"attached_to_name": file.get("attached_to_name"),
		"content_hash": digest,
	}
	if stored == metadata:
		return "unchanged"  # the same bytes: not even extracted again
	try:
		found = extract.extract(content, file.get("file_name"))
	except extract.ExtractError as e:
		raise sources.SourceError(f"file {label}: {e}") from e
	metadata["kind"] = found.kind
	if stored == metadata:
		return "unchanged"
	return write_document(name, title, found.text, file.get("file_url"), metadata)


# --- events -----------------------------------------------------------------------------------------------


def _sources_of(doc) -> list[str]:
	if frappe.flags.cauldron_lore_syncing or frappe.flags.in_install or frappe.flags.in_migrate:
		return []
	return _index()["events"].get(doc.doctype) or []


def on_change(doc, method=None) -> None:
	"""hooks "*" on_change (insert, save, db_set): the record's document follows it."""
	if doc.flags.in_delete:
		return
	for source in _sources_of(doc):
		_in_savepoint(source, doc, lambda s, c: _follow(s, c, doc))


def after_delete(doc, method=None) -> None:
	for source in _sources_of(doc):
		_in_savepoint(source, doc, lambda s, c: drop_document(_item_name(s, c, doc.name)))


def after_rename(doc, method=None, old=None, new=None, merge=False) -> None:
	for source in _sources_of(doc):

		def move(s, c, old=old):
			drop_document(_item_name(s, c, old))
			_follow(s, c, doc)

		_in_savepoint(source, doc, move)


def _item_name(source: str, config: dict, name: str) -> str:
	return sources.document_name(source, config.get("doctype") or "File", str(name))


def _follow(source: str, config: dict, doc) -> None:
	if "doctype" in config:
		if _matches(config, doc.name):
			write_record(source, config, doc)
		else:
			drop_document(_item_name(source, config, doc.name))
	elif _file_matches(config, doc):
		write_file(source, doc)
	else:
		drop_document(_item_name(source, config, doc.name))


def _in_savepoint(source: str, doc, work) -> None:
	"""Run one source's work for one event; a failure is rolled back, recorded on the source, and
	leaves the user's save (and its messages) as they were."""
	savepoint = "cauldron_lore_source_event"
	messages = len(frappe.local.message_log or [])
	frappe.db.savepoint(savepoint)
	try:
		_, config = _source_config(source)
		if config is not None:
			work(source, config)
		frappe.db.release_savepoint(savepoint)
	except Exception as e:
		frappe.db.rollback(save_point=savepoint)
		frappe.local.message_log = (frappe.local.message_log or [])[:messages]
		_record_error(source, f"{doc.doctype} {doc.name}: {_message(e)}")


def _message(error: Exception) -> str:
	if isinstance(error, CauldronDBError | frappe.ValidationError):
		return str(error)
	return f"{type(error).__name__}: {error}"


def _record_error(source: str, message: str) -> None:
	if not frappe.db.exists(SOURCE, source):
		return
	frappe.db.set_value(
		SOURCE,
		source,
		{
			"last_error": f"{now_datetime():%Y-%m-%d %H:%M:%S} {message}"[:10000],
			"sync_status": "Synced with Errors",
		},
		update_modified=False,
	)


# --- full sync ------------------------------------------------------------------------------------------


def sync_source(source: str, commit: bool = False) -> dict:
	"""Sync one source whole (idempotent): {created, updated, unchanged, deleted, errors}. Its status
	(last synced, sync status, last error) is recorded on it; errors of single records, files or pages
	are listed there and the others are synced. A config that no longer checks fails the source.
	`commit` (background jobs): commit after every PAGE items, so a large source neither holds one
	long transaction nor keeps its documents from the embedding worker until the end."""
	counts = {"created": 0, "updated": 0, "unchanged": 0, "deleted": 0, "errors": []}
	if not frappe.db.exists(SOURCE, source):
		return counts  # deleted since its sync was queued
	doc = frappe.get_doc(SOURCE, source)
	try:
		config = check_source(doc)
	except frappe.ValidationError as e:
		frappe.clear_last_message()
		counts["errors"].append(str(e))
		_finish(source, counts, failed=True)
		return counts
	if config is None:
		raise sources.SourceError(f"source type {doc.source_type} is not synced by Lore")
	items = {
		sources.DOCTYPE: _doctype_items,
		sources.FILE: _file_items,
		sources.URL: _url_items,
	}[doc.source_type](doc, config)
	seen = set()
	messages = len(frappe.local.message_log or [])
	for n, (key, work) in enumerate(items, 1):
		seen.add(key)
		if commit and n % PAGE == 0:
			frappe.db.commit()
		savepoint = "cauldron_lore_source_item"
		frappe.db.savepoint(savepoint)
		try:
			counts[work()] += 1
			frappe.db.release_savepoint(savepoint)
		except Exception as e:
			frappe.db.rollback(save_point=savepoint)
			frappe.local.message_log = (frappe.local.message_log or [])[:messages]
			counts["errors"].append(_message(e))
	for name in source_documents(source):
		if name not in seen:
			counts["deleted"] += drop_document(name)
	_finish(
		source,
		counts,
		failed=bool(counts["errors"]) and not (counts["created"] + counts["updated"] + counts["unchanged"]),
	)
	return counts


def _finish(source: str, counts: dict, failed: bool) -> None:
	errors = counts["errors"]
	shown = errors[:MAX_ERRORS] + (
		[f"... and {len(errors) - MAX_ERRORS} more"] if len(errors) > MAX_ERRORS else []
	)
	now = now_datetime()
	values = {
		"sync_status": "Failed" if failed else ("Synced with Errors" if errors else "Synced"),
		"last_error": "\n".join(f"{now:%Y-%m-%d %H:%M:%S} {e}" for e in shown)[:10000] if errors else None,
	}
	if not failed:
		values["last_synced_at"] = now
	frappe.db.set_value(SOURCE, source, values, update_modified=False)


def _doctype_items(source, config):
	"""The source's records, in pages ordered by name (each page starts after the last name: commits
	between pages neither skip nor repeat records)."""
	doctype = config["doctype"]
	fields = ["name", *[f for f in config["fields"] if f != "name"]]
	last = None
	while True:
		after = [] if last is None else [["name", ">", last]]
		rows = frappe.get_all(
			doctype,
			filters=[*config["filters"], *after],
			fields=fields,
			order_by="name asc",
			limit_page_length=PAGE,
		)
		for row in rows:
			yield (
				sources.document_name(source.name, doctype, str(row.name)),
				lambda row=row: write_record(source.name, config, row),
			)
		if len(rows) < PAGE:
			return
		last = rows[-1].name


def _file_items(source, config):
	or_filters = {}
	if config["folder"]:
		or_filters["folder"] = config["folder"]
	if config["attached_to_doctype"]:
		or_filters["attached_to_doctype"] = config["attached_to_doctype"]
	files = frappe.get_all(
		"File",
		filters={"is_folder": 0},
		or_filters=or_filters,
		fields=[
			"name",
			"file_name",
			"file_url",
			"file_size",
			"folder",
			"attached_to_doctype",
			"attached_to_name",
			"is_folder",
		],
		order_by="name asc",
	)
	for file in files:
		yield (
			sources.document_name(source.name, "File", file.name),
			lambda file=file: write_file(source.name, file),
		)


def _url_items(source, config):
	headers = dict(config["headers"])
	secret = (
		source.get_password("connection_secret", raise_exception=False) if source.connection_secret else None
	)
	if secret:
		headers[config["auth_header"] or "Authorization"] = secret
	for url in config["urls"]:
		name = sources.document_name(source.name, sources.URL, url)
		yield name, lambda url=url, name=name: _write_page(source.name, name, url, headers, config["timeout"])


def _write_page(source: str, name: str, url: str, headers: dict, timeout: float) -> str:
	stored = _stored(name) or {}
	page = sources.fetch(
		url,
		etag=stored.get("etag"),
		last_modified=stored.get("last_modified"),
		headers=headers,
		timeout=timeout,
		allow_private=allowed_private_hosts(),
	)
	if page.not_modified and stored:
		return "unchanged"
	title, text, kind = sources.page_document(page)
	metadata = {
		"knowledge_source": source,
		"source_kind": sources.URL,
		"url": url,
		"etag": page.etag,
		"last_modified": page.last_modified,
		"kind": kind,
		"content_hash": sources.content_hash(title, text),
	}
	return write_document(name, title, text, url, metadata)


def allowed_private_hosts() -> bool | list[str]:
	"""Site config `lore_sources_allow_private_urls`: 1 lets URL sources fetch from private addresses
	(an intranet, loopback), a list of host names lets them fetch from those hosts only; by default
	only public addresses are fetched."""
	value = frappe.conf.get("lore_sources_allow_private_urls")
	if isinstance(value, list | tuple):
		return [str(h) for h in value]
	return value in (1, True, "1", "true")


def sync_due_sources() -> dict:
	"""The scheduler's job (every 15 minutes): every active DocType, File and URL source whose Sync
	Frequency says it is due, each in a transaction of its own."""
	now = now_datetime()
	done = {}
	for row in frappe.get_all(
		SOURCE,
		filters={"is_active": 1, "source_type": ("in", list(sources.TYPES))},
		fields=["name", "sync_frequency", "last_synced_at"],
		order_by="last_synced_at asc",
	):
		if not sources.due(row.sync_frequency, row.last_synced_at, now):
			continue
		try:
			done[row.name] = sync_source(row.name, commit=True)
			frappe.db.commit()
		except Exception as e:
			frappe.db.rollback()
			_record_error(row.name, _message(e))
			frappe.db.commit()
	return done


# --- the controller's hooks ----------------------------------------------------------------------------


def source_changed(doc) -> None:
	"""Lore Knowledge Source on_update: the cached set of source DocTypes is stale; a new or changed
	source is synced in the background after the commit."""
	clear_cache()
	frappe.clear_document_cache(SOURCE, doc.name)
	before = doc.get_doc_before_save()
	if before is not None and (
		before.source_type != doc.source_type
		or _json(before.connection_config).get("doctype") != _json(doc.connection_config).get("doctype")
	):
		# documents of records of another DocType: their permission would no longer be checked
		for name in source_documents(doc.name):
			drop_document(name)
	if doc.source_type in sources.TYPES and doc.is_active:
		if before is None or any(
			doc.has_value_changed(f)
			for f in ("source_type", "connection_config", "connection_secret", "is_active")
		):
			enqueue_sync(doc.name)


def source_deleted(doc) -> None:
	"""Lore Knowledge Source on_trash: its documents (and their chunks) go with it."""
	for name in source_documents(doc.name):
		drop_document(name)
	clear_cache()


def enqueue_sync(source: str) -> None:
	if frappe.flags.cauldron_lore_sync_in_foreground:
		return  # the caller runs sync_source itself (the tests do)
	try:
		frappe.enqueue(
			SYNC_JOB,
			queue="long",
			source=source,
			commit=True,
			job_id=f"cauldron-lore-source-{source}",
			deduplicate=True,
			enqueue_after_commit=True,
		)
	except Exception:
		frappe.log_error(title=f"Lore: could not queue the sync of knowledge source {source}")


# --- permissions of source documents --------------------------------------------------------------------


def lore_document_conditions(user: str | None = None, doctype: str | None = None) -> str:
	"""Lore Document's permission query condition: a document a DocType or File source made is
	readable only with its record (the SQL of frappe.get_list of that DocType for `user`); one whose
	DocType is no longer a source's, by nobody but Administrator. Nothing when no such source exists."""
	user = user or frappe.session.user
	gated = _index()["gated"]
	if user == "Administrator" or not gated:
		return ""
	table = "`tabLore Document`"
	reference = f"({table}.`metadata`->>'reference_doctype')"
	reference_name = f"({table}.`metadata`->>'reference_name')"
	allowed = [f"coalesce({table}.`source_type`, '') != '{SOURCE_TYPE}'", f"{reference} is null"]
	for doctype in gated:
		messages = len(frappe.local.message_log or [])
		try:
			records = frappe.get_list(
				doctype, fields=["name"], run=0, limit_page_length=0, order_by="", user=user
			)
		except frappe.PermissionError:
			frappe.local.message_log = (frappe.local.message_log or [])[:messages]
			continue  # no record of it is readable
		allowed.append(
			f"({reference} = {frappe.db.escape(doctype)} and {reference_name} in ({str(records).strip()}))"
		)
	return "(" + " or ".join(allowed) + ")"


def lore_document_permission(doc, ptype=None, user=None, debug=False):
	"""Lore Document's has_permission: a source document of a record is read with the record."""
	user = user or frappe.session.user
	if user == "Administrator" or doc.get("source_type") != SOURCE_TYPE:
		return None
	metadata = _json(doc.get("metadata"))
	doctype, name = metadata.get("reference_doctype"), metadata.get("reference_name")
	if not doctype:
		return None
	if doctype not in _index()["gated"] or not name or not frappe.db.exists(doctype, name):
		return False
	messages = len(frappe.local.message_log or [])
	allowed = frappe.has_permission(doctype, "read", doc=name, user=user)
	frappe.local.message_log = (frappe.local.message_log or [])[:messages]
	return bool(allowed)


# --- endpoints --------------------------------------------------------------------------------------------


def _readable_source(source: str, ptype: str = "read") -> None:
	"""Permission before existence: the same refusal for a source that does not exist."""
	if not frappe.db.exists(SOURCE, source) or not frappe.has_permission(SOURCE, ptype, doc=source):
		frappe.throw(
			_("Not permitted to {0} {1} {2}").format(ptype, _(SOURCE), source), frappe.PermissionError
		)


@frappe.whitelist(methods=["POST"])
@params.checked(names=("source",))
def sync_now(source) -> dict:
	"""Queue a full sync of the source (write permission on it); the form shows its progress."""
	_readable_source(source, "write")
	doc = frappe.get_doc(SOURCE, source)
	if doc.source_type not in sources.TYPES:
		frappe.throw(
			_("Lore syncs {0} sources; {1} is recorded for an external connector").format(
				", ".join(sources.TYPES), doc.source_type
			),
			params.InvalidParameter,
		)
	if not doc.is_active:
		frappe.throw(_("The source is not active"), params.InvalidParameter)
	enqueue_sync(source)
	return {"queued": True}


@frappe.whitelist()
@params.checked(names=("source",))
def source_status(source) -> dict:
	"""A source's documents, their chunks (of the active model), those waiting to be embedded and
	those parked as failed, with its sync status, last error and last sync."""
	_readable_source(source)
	cur = db.cursor()
	found = {"documents": 0, "chunks": None, "pending": 0, "failed": 0}
	cur.execute(
		"""
		WITH docs AS (
			SELECT name FROM "tabLore Document"
			WHERE source_type = %(type)s AND (metadata::jsonb) ->> 'knowledge_source' = %(source)s
		), latest AS (
			SELECT DISTINCT ON (key) key, status FROM command.work_queue
			WHERE queue = 'lore.embed' AND key IN (SELECT name FROM docs) ORDER BY key, id DESC
		)
		SELECT (SELECT count(*) FROM docs),
			(SELECT count(*) FROM latest WHERE status IN ('pending', 'running')),
			(SELECT count(*) FROM latest WHERE status = 'failed')
		""",
		{"type": SOURCE_TYPE, "source": source},
	)
	found["documents"], found["pending"], found["failed"] = cur.fetchone()
	try:
		from cauldron.lore import ingest

		model = ingest.active_model(cur)
		cur.execute(
			"""SELECT count(*) FROM lore.document_chunks WHERE model = %s AND document_id IN (
				SELECT name FROM "tabLore Document"
				WHERE source_type = %s AND (metadata::jsonb) ->> 'knowledge_source' = %s)""",
			(model, SOURCE_TYPE, source),
		)
		found["chunks"] = cur.fetchone()[0]
	except CauldronDBError:
		pass  # no vectors on this site: no chunks to count
	row = frappe.db.get_value(SOURCE, source, ["sync_status", "last_error", "last_synced_at"], as_dict=True)
	return {**found, **row}


def chunk_metadata(metadata) -> dict:
	"""What every chunk of a source document carries (search filters on `source` and `doctype`): the
	source, the record's DocType and name, the link. Empty for other documents."""
	metadata = _json(metadata)
	if not metadata.get("knowledge_source"):
		return {}
	found = {
		"source": metadata["knowledge_source"],
		"doctype": metadata.get("reference_doctype"),
		"reference_name": metadata.get("reference_name"),
		"url": metadata.get("url"),
	}
	return {k: v for k, v in found.items() if v}
