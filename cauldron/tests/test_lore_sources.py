"""Bench tier: Lore knowledge sources inside Frappe. A DocType source's records (Note, ToDo, Email
Group) follow insert, update, rename and delete into Lore Documents and through the queue to chunks;
a full sync is idempotent; a File source reads attachments; a URL source fetches pages from a real
HTTP server on loopback with ETag / Last-Modified; search gives a user only chunks of source records
they may read; bad configs are refused whole, and sync errors land on the source."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from unittest.mock import patch
from urllib.parse import quote

import frappe
from frappe.tests.utils import FrappeTestCase
from frappe.utils import add_to_date, now_datetime

from cauldron import db, tasks
from cauldron.lore import ingest, providers, sources, sync
from cauldron.pg import vectors
from cauldron.tests.factories import delete_created_since, drop_user, rest, user_with_roles

EDITOR = "cauldron-sources-editor@example.com"
OTHER = "cauldron-sources-other@example.com"
MANAGER = "cauldron-sources-manager@example.com"
SOURCE = "Lore Knowledge Source"


def queued(name: str) -> list[str]:
	cur = db.cursor()
	cur.execute(
		"SELECT status FROM command.work_queue WHERE queue = %s AND key = %s ORDER BY id",
		(ingest.QUEUE, name),
	)
	return [row[0] for row in cur.fetchall()]


def chunks(name: str) -> list[tuple]:
	cur = db.cursor()
	cur.execute(
		"SELECT content, metadata FROM lore.document_chunks WHERE document_id = %s ORDER BY model, chunk_index",
		(name,),
	)
	return cur.fetchall()


def work():
	"""The embedding worker, as the scheduler runs it (it commits)."""
	return tasks.embed_lore_documents(seconds=120)


def source(source_type: str, config: dict, **fields):
	return frappe.get_doc(
		{
			"doctype": SOURCE,
			"source_name": f"{source_type} source {frappe.generate_hash(length=6)}",
			"source_type": source_type,
			"connection_config": json.dumps(config),
			"sync_frequency": "daily",
			**fields,
		}
	).insert()


class Pages:
	"""A real HTTP server on loopback: path -> (body, etag); counts requests and 304s."""

	def __init__(self):
		self.pages, self.hits, self.not_modified = {}, [], 0
		pages = self

		class Handler(BaseHTTPRequestHandler):
			def log_message(self, *args):
				pass

			def do_GET(self):
				pages.hits.append((self.path, self.headers.get("Authorization")))
				if self.path not in pages.pages:
					self.send_response(404)
					self.send_header("Content-Length", "0")
					self.end_headers()
					return
				body, etag = pages.pages[self.path]
				if self.headers.get("If-None-Match") == etag:
					pages.not_modified += 1
					self.send_response(304)
					self.end_headers()
					return
				self.send_response(200)
				self.send_header("Content-Type", "text/html; charset=utf-8")
				self.send_header("ETag", etag)
				self.send_header("Content-Length", str(len(body)))
				self.end_headers()
				self.wfile.write(body)

		self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
		threading.Thread(target=self.server.serve_forever, daemon=True).start()
		self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

	def close(self):
		if self.server is not None:
			self.server.shutdown()
			self.server.server_close()
			self.server = None


class TestLoreSources(FrappeTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.started = now_datetime()
		try:
			vectors.table_dimension(db.cursor())
		except vectors.VectorsUnavailable:
			raise cls.skipTest(cls, "pgvector is not installed in this site's database") from None
		frappe.flags.cauldron_lore_sync_in_foreground = True
		settings = frappe.get_single("Cauldron Settings")
		if (settings.embedding_provider or "Local") != "Local":
			settings.embedding_provider = "Local"
			settings.save()
		cls.editor = user_with_roles(EDITOR, "Knowledge Editor")
		cls.other = user_with_roles(OTHER, "Knowledge Editor")
		cls.manager = user_with_roles(MANAGER, "Knowledge Editor", "Newsletter Manager")
		frappe.db.commit()
		work()
		assert ingest.active_model(db.cursor()) == providers.LOCAL_MODEL

	@classmethod
	def tearDownClass(cls):
		frappe.set_user("Administrator")
		for doctype in ("Note", "ToDo", "Email Group", "File"):
			for name in frappe.get_all(doctype, filters={"creation": (">=", cls.started)}, pluck="name"):
				if doctype != "File" or not frappe.db.get_value("File", name, "is_folder"):
					frappe.delete_doc(doctype, name, force=True, ignore_permissions=True, ignore_missing=True)
		delete_created_since(cls.started)
		for email in (EDITOR, OTHER, MANAGER):
			drop_user(email)
		frappe.db.commit()
		work()
		frappe.flags.cauldron_lore_sync_in_foreground = False
		super().tearDownClass()

	def tearDown(self):
		frappe.set_user("Administrator")
		frappe.db.rollback()
		# sources a test committed stop following records for the next one
		for name in frappe.get_all(SOURCE, filters={"creation": (">=", self.started)}, pluck="name"):
			frappe.delete_doc(SOURCE, name, force=True, ignore_permissions=True)
		frappe.db.commit()

	def search(self, token, **args):
		response = rest("post", "/api/method/cauldron.api.lore.search", token, args)
		self.assertEqual(response.status_code, 200, response.data[:2000])
		return response.json["message"]

	def document_of(self, src, doctype, name):
		return sources.document_name(src.name, doctype, name)

	# --- DocType sources ------------------------------------------------------------------------

	def test_a_doctype_source_follows_insert_update_rename_and_delete_to_chunks(self):
		src = source("DocType", {"doctype": "Note", "fields": ["title", "content"], "filters": {"public": 1}})
		note = frappe.get_doc(
			{
				"doctype": "Note",
				"title": "Descaling the kettle",
				"public": 1,
				"content": "<p>Boil <b>vinegar</b> and water, then rinse twice.</p>",
			}
		).insert()
		private = frappe.get_doc(
			{"doctype": "Note", "title": "Diary", "public": 0, "content": "secret"}
		).insert()
		name = self.document_of(src, "Note", note.name)
		doc = frappe.get_doc("Lore Document", name)
		self.assertEqual(doc.source_type, "knowledge_source")
		self.assertEqual(doc.title, "Descaling the kettle")
		self.assertIn("Boil **vinegar** and water", doc.content)
		self.assertEqual(doc.source_url, f"/app/note/{note.name}")
		meta = json.loads(doc.metadata) if isinstance(doc.metadata, str) else doc.metadata
		self.assertEqual(
			(meta["knowledge_source"], meta["reference_doctype"], meta["reference_name"]),
			(src.name, "Note", note.name),
		)
		self.assertFalse(frappe.db.exists("Lore Document", self.document_of(src, "Note", private.name)))
		self.assertEqual(queued(name), ["pending"])  # in the record's own transaction
		frappe.db.commit()
		self.assertEqual(work().errors, {})
		((content, metadata),) = chunks(name)
		self.assertIn("vinegar", content)
		self.assertEqual((metadata["source"], metadata["doctype"]), (src.name, "Note"))
		self.assertEqual(metadata["reference_name"], note.name)

		note.reload()
		note.notify_on_login = 1  # a field the source does not read: nothing written, nothing queued
		note.save()
		self.assertEqual(queued(name), ["done"])
		note.content = "<p>Use citric acid instead: it leaves no smell.</p>"
		note.save()
		frappe.db.commit()
		work()
		((content, _),) = chunks(name)
		self.assertIn("citric acid", content)
		self.assertNotIn("vinegar", content)

		# out of the filter: the document and its chunks go
		note.db_set("public", 0)
		self.assertFalse(frappe.db.exists("Lore Document", name))
		self.assertEqual(chunks(name), [])
		note.db_set("public", 1)
		self.assertTrue(frappe.db.exists("Lore Document", name))
		frappe.db.commit()
		work()

		new_name = frappe.rename_doc("Note", note.name, f"renamed-{note.name}", force=True)
		moved = self.document_of(src, "Note", new_name)
		self.assertFalse(frappe.db.exists("Lore Document", name))
		self.assertEqual(chunks(name), [])
		self.assertEqual(frappe.db.get_value("Lore Document", moved, "source_url"), f"/app/note/{new_name}")
		frappe.db.commit()
		work()
		self.assertIn("citric acid", chunks(moved)[0][0])

		frappe.delete_doc("Note", new_name)
		self.assertFalse(frappe.db.exists("Lore Document", moved))
		self.assertEqual(chunks(moved), [])
		frappe.db.commit()
		self.assertEqual(sync.source_status(src.name)["documents"], 0)

	def test_a_full_sync_is_idempotent_catches_up_and_removes_what_is_gone(self):
		tag = f"tapes-{frappe.generate_hash(length=8)}"
		todos = [
			frappe.get_doc(
				{"doctype": "ToDo", "description": f"<p>Rotate the backup {tag}, batch {n}</p>"}
			).insert()
			for n in range(3)
		]
		src = source(
			"DocType",
			{
				"doctype": "ToDo",
				"fields": ["description", "status"],
				"filters": [["status", "=", "Open"], ["description", "like", f"%{tag}%"]],
			},
		)
		names = [self.document_of(src, "ToDo", t.name) for t in todos]
		self.assertFalse(any(frappe.db.exists("Lore Document", n) for n in names))  # older than the source
		with patch.object(sync, "PAGE", 2):  # pages of two records, committed between them
			counts = sync.sync_source(src.name, commit=True)
		self.assertEqual((counts["created"], counts["errors"]), (3, []))
		self.assertTrue(all(frappe.db.exists("Lore Document", n) for n in names))
		# ToDo's title field is its description (HTML): the title is its text, the body holds it too
		first = frappe.db.get_value("Lore Document", names[0], ["title", "content"], as_dict=True)
		self.assertEqual(first.title, f"Rotate the backup {tag}, batch 0")
		self.assertEqual(
			first.content,
			f"# Rotate the backup {tag}, batch 0\n\nStatus: Open\n\n## Description\n\nRotate the backup {tag}, batch 0",
		)
		status = frappe.db.get_value(
			SOURCE, src.name, ["sync_status", "last_synced_at", "last_error"], as_dict=True
		)
		self.assertEqual((status.sync_status, status.last_error), ("Synced", None))
		self.assertIsNotNone(status.last_synced_at)
		frappe.db.commit()
		work()
		before = {n: queued(n) for n in names}

		again = sync.sync_source(src.name)
		self.assertEqual((again["created"], again["updated"], again["deleted"]), (0, 0, 0))
		self.assertEqual(again["unchanged"], 3)
		self.assertEqual({n: queued(n) for n in names}, before)  # nothing queued: nothing embedded again

		# changes no event saw (raw SQL): the sync catches them up
		frappe.db.sql(
			'UPDATE "tabToDo" SET description = %s WHERE name = %s',
			(f"<p>Label the {tag}</p>", todos[0].name),
		)
		frappe.db.sql('UPDATE "tabToDo" SET status = %s WHERE name = %s', ("Closed", todos[1].name))
		counts = sync.sync_source(src.name)
		self.assertEqual((counts["updated"], counts["deleted"]), (1, 1))
		self.assertIn(f"Label the {tag}", frappe.db.get_value("Lore Document", names[0], "content"))
		self.assertFalse(frappe.db.exists("Lore Document", names[1]))
		self.assertEqual(queued(names[0])[-1], "pending")
		frappe.db.commit()
		work()
		status = sync.source_status(src.name)
		self.assertEqual((status["documents"], status["pending"], status["failed"]), (2, 0, 0))
		self.assertGreaterEqual(status["chunks"], 2)

		# a deleted source takes its documents and their chunks with it
		frappe.delete_doc(SOURCE, src.name)
		self.assertFalse(any(frappe.db.exists("Lore Document", n) for n in names))
		self.assertEqual(chunks(names[0]), [])

	def test_search_returns_only_chunks_of_source_records_the_user_may_read(self):
		src = source("DocType", {"doctype": "ToDo", "fields": ["description"]})
		mine = frappe.get_doc(
			{"doctype": "ToDo", "description": "Calibrate the spectrometer laser", "allocated_to": EDITOR}
		).insert()
		theirs = frappe.get_doc(
			{"doctype": "ToDo", "description": "Calibrate the spectrometer mirrors", "allocated_to": OTHER}
		).insert()
		groups = source("DocType", {"doctype": "Email Group", "fields": ["title"]})
		group = frappe.get_doc(
			{
				"doctype": "Email Group",
				"title": f"Spectrometer calibration list {frappe.generate_hash(length=4)}",
			}
		).insert()
		frappe.db.commit()
		work()
		docs = {
			"mine": self.document_of(src, "ToDo", mine.name),
			"theirs": self.document_of(src, "ToDo", theirs.name),
			"group": self.document_of(groups, "Email Group", group.name),
		}
		for mode in ("keyword", "hybrid", "vector"):
			with self.subTest(mode=mode):
				found = {
					h["document"]
					for h in self.search(self.editor, query="spectrometer calibrate", mode=mode, limit=20)
				}
				# ToDo's own rule (allocated to or assigned by the user); no read on Email Group at all
				self.assertIn(docs["mine"], found)
				self.assertNotIn(docs["theirs"], found)
				self.assertNotIn(docs["group"], found)
				found = {
					h["document"]
					for h in self.search(self.manager, query="spectrometer calibrate", mode=mode, limit=20)
				}
				self.assertIn(docs["group"], found)
				self.assertNotIn(docs["mine"], found)
		# top-k stays full: the one readable chunk comes back even with limit 1
		(hit,) = self.search(self.editor, query="spectrometer", mode="keyword", limit=1)
		self.assertEqual(hit["document"], docs["mine"])
		self.assertEqual((hit["metadata"]["source"], hit["metadata"]["doctype"]), (src.name, "ToDo"))
		self.assertEqual(hit["source_url"], f"/app/todo/{mine.name}")  # the hit opens its record
		hits = self.search(
			self.manager, query="spectrometer", mode="keyword", limit=5, doctypes=["Email Group"]
		)
		self.assertEqual({h["document"] for h in hits}, {docs["group"]})
		hits = self.search(self.editor, query="spectrometer", mode="keyword", limit=5, sources=[groups.name])
		self.assertEqual(hits, [])

		# the documents themselves, in Desk and over REST, follow the record too
		response = rest("get", f"/api/resource/Lore Document/{docs['theirs']}", self.editor)
		self.assertEqual(response.status_code, 403, response.data[:500])
		response = rest("get", f"/api/resource/Lore Document/{docs['mine']}", self.editor)
		self.assertEqual(response.status_code, 200, response.data[:500])
		response = rest(
			"get",
			"/api/resource/Lore Document?limit_page_length=0&filters="
			+ quote(json.dumps([["source_type", "=", "knowledge_source"]])),
			self.editor,
		)
		self.assertEqual(response.status_code, 200, response.data[:500])
		listed = {row["name"] for row in response.json["data"]}
		self.assertIn(docs["mine"], listed)
		self.assertFalse({docs["theirs"], docs["group"]} & listed)

	def test_event_errors_go_on_the_source_and_never_fail_the_save(self):
		src = source("DocType", {"doctype": "Note", "fields": ["title", "content"]})
		note = frappe.get_doc({"doctype": "Note", "title": "Boiler log", "content": "fine"}).insert()
		name = self.document_of(src, "Note", note.name)
		# the source's config went bad behind Desk's back (its field was dropped, say): the note still
		# saves, its document stays as it was, and the source says why
		frappe.db.set_value(
			SOURCE, src.name, "connection_config", json.dumps({"doctype": "Note", "fields": ["nope"]})
		)
		frappe.clear_document_cache(SOURCE, src.name)
		messages = len(frappe.local.message_log)
		note.content = "changed"
		note.save()
		self.assertEqual(frappe.db.get_value("Note", note.name, "content"), "changed")
		self.assertEqual(len(frappe.local.message_log), messages)
		error = frappe.db.get_value(SOURCE, src.name, "last_error")
		self.assertIn(f"Note {note.name}: Note has no field nope", error)
		self.assertEqual(frappe.db.get_value(SOURCE, src.name, "sync_status"), "Synced with Errors")
		self.assertIn("fine", frappe.db.get_value("Lore Document", name, "content"))
		# a full sync of a source that no longer checks fails it whole and writes nothing
		counts = sync.sync_source(src.name)
		self.assertEqual((counts["created"], counts["updated"], counts["deleted"]), (0, 0, 0))
		self.assertEqual(frappe.db.get_value(SOURCE, src.name, "sync_status"), "Failed")
		self.assertTrue(frappe.db.exists("Lore Document", name))

	def test_the_scheduler_syncs_sources_when_their_frequency_says_so(self):
		hourly = source("DocType", {"doctype": "Note", "fields": ["title"]}, sync_frequency="hourly")
		manual = source("DocType", {"doctype": "Note", "fields": ["title"]}, sync_frequency="manual")
		frappe.db.commit()
		done = sync.sync_due_sources()
		self.assertIn(hourly.name, done)
		self.assertNotIn(manual.name, done)
		self.assertIsNotNone(frappe.db.get_value(SOURCE, hourly.name, "last_synced_at"))
		self.assertNotIn(hourly.name, sync.sync_due_sources())  # synced a moment ago
		frappe.db.set_value(SOURCE, hourly.name, "last_synced_at", add_to_date(None, hours=-2))
		frappe.db.commit()
		self.assertIn(hourly.name, sync.sync_due_sources())

	def test_the_cached_set_of_source_doctypes_follows_commit_and_rollback(self):
		self.assertNotIn("Email Group", sync._index()["events"])
		source("DocType", {"doctype": "Email Group", "fields": ["title"]})
		self.assertIn("Email Group", sync._index()["events"])  # this transaction sees its own source
		frappe.db.rollback()
		# a rolled-back source follows nothing (its cached entry, read before the rollback, is gone)
		self.assertNotIn("Email Group", sync._index()["events"])
		self.assertEqual(sync.lore_document_conditions(EDITOR), "")

	# --- File sources ---------------------------------------------------------------------------

	def test_a_file_source_reads_attachments_of_a_doctype(self):
		src = source("File", {"attached_to_doctype": "ToDo"})
		todo = frappe.get_doc({"doctype": "ToDo", "description": "Boiler service"}).insert()

		def attach(name, content):
			return frappe.get_doc(
				{
					"doctype": "File",
					"file_name": name,
					"attached_to_doctype": "ToDo",
					"attached_to_name": todo.name,
					"content": content,
					"is_private": 1,
				}
			).insert(ignore_permissions=True)

		manual = attach("boiler.md", b"# Pressure\n\nThe boiler pressure should read 1.5 bar when cold.\n")
		junk = attach("scan.txt", bytes(range(256)) * 8)
		name = self.document_of(src, "File", manual.name)
		doc = frappe.get_doc("Lore Document", name)
		self.assertEqual((doc.title, doc.source_url), ("boiler.md", manual.file_url))
		self.assertIn("1.5 bar", doc.content)
		self.assertFalse(frappe.db.exists("Lore Document", self.document_of(src, "File", junk.name)))
		self.assertIn(
			"scan.txt: the document is binary data", frappe.db.get_value(SOURCE, src.name, "last_error")
		)
		frappe.db.commit()
		work()
		self.assertIn("1.5 bar", chunks(name)[0][0])
		self.assertEqual(chunks(name)[0][1]["doctype"], "File")

		counts = sync.sync_source(src.name)
		self.assertEqual((counts["unchanged"], counts["created"], len(counts["errors"])), (1, 0, 1))
		self.assertEqual(frappe.db.get_value(SOURCE, src.name, "sync_status"), "Synced with Errors")

		frappe.delete_doc("File", manual.name, ignore_permissions=True)
		self.assertFalse(frappe.db.exists("Lore Document", name))
		self.assertEqual(chunks(name), [])

	def test_file_source_documents_are_read_with_the_file(self):
		src = source("File", {"attached_to_doctype": "Email Group"})
		group = frappe.get_doc(
			{"doctype": "Email Group", "title": f"Vendors {frappe.generate_hash(length=6)}"}
		).insert()
		word = f"zanzibarite{frappe.generate_hash(length=6)}"
		file = frappe.get_doc(
			{
				"doctype": "File",
				"file_name": "vendors.txt",
				"attached_to_doctype": "Email Group",
				"attached_to_name": group.name,
				"content": f"Vendor list: {word} supplies the valves.".encode(),
				"is_private": 1,
			}
		).insert(ignore_permissions=True)
		name = self.document_of(src, "File", file.name)
		frappe.db.commit()
		work()
		# a private file attached to an Email Group: Frappe lets readers of Email Groups read it
		hits = self.search(self.manager, query=word, mode="keyword", limit=5)
		self.assertEqual([h["document"] for h in hits], [name])
		self.assertEqual(self.search(self.editor, query=word, mode="keyword", limit=5), [])

	# --- URL sources ----------------------------------------------------------------------------

	def test_a_url_source_fetches_pages_conditionally(self):
		pages = Pages()
		self.addCleanup(pages.close)
		# loopback is a private address: refused unless the site config names it
		src = source("URL", {"urls": [f"{pages.base}/kettle"]})
		counts = sync.sync_source(src.name)
		self.assertEqual((counts["created"], pages.hits), (0, []))
		self.assertIn("is a private address", counts["errors"][0])
		self.assertEqual(frappe.db.get_value(SOURCE, src.name, "sync_status"), "Failed")
		frappe.local.conf["lore_sources_allow_private_urls"] = ["127.0.0.1"]
		self.addCleanup(frappe.local.conf.pop, "lore_sources_allow_private_urls", None)

		pages.pages["/kettle"] = (
			b"<html><head><title>Kettle</title></head><body><p>Boil vinegar.</p></body></html>",
			'"k1"',
		)
		pages.pages["/boiler"] = (b"<html><body><h1>Boiler</h1><p>1.5 bar cold.</p></body></html>", '"b1"')
		src = source(
			"URL",
			{"urls": [f"{pages.base}/kettle", f"{pages.base}/boiler"], "auth_header": "Authorization"},
			connection_secret="Bearer s3cret",
		)
		self.assertNotIn("s3cret", json.dumps(frappe.db.get_value(SOURCE, src.name, "connection_config")))
		counts = sync.sync_source(src.name)
		self.assertEqual((counts["created"], counts["errors"]), (2, []))
		self.assertEqual({auth for _, auth in pages.hits}, {"Bearer s3cret"})
		kettle = self.document_of(src, "URL", f"{pages.base}/kettle")
		doc = frappe.get_doc("Lore Document", kettle)
		self.assertEqual((doc.title, doc.source_url), ("Kettle", f"{pages.base}/kettle"))
		frappe.db.commit()
		work()
		items = queued(kettle)

		counts = sync.sync_source(src.name)  # both answer 304: nothing read, written or queued
		self.assertEqual((counts["unchanged"], counts["updated"], pages.not_modified), (2, 0, 2))
		self.assertEqual(queued(kettle), items)

		pages.pages["/kettle"] = (
			b"<html><head><title>Kettle</title></head><body><p>Use citric acid.</p></body></html>",
			'"k2"',
		)
		counts = sync.sync_source(src.name)
		self.assertEqual((counts["updated"], counts["unchanged"]), (1, 1))
		self.assertIn("citric acid", frappe.db.get_value("Lore Document", kettle, "content"))
		frappe.db.commit()
		work()
		self.assertIn("citric acid", chunks(kettle)[0][0])

		# the server goes away: the error is on the source, the documents stay as they were
		pages.close()
		src.reload()
		src.connection_config = json.dumps({"urls": [f"{pages.base}/kettle"], "timeout": 3})
		src.save()
		counts = sync.sync_source(src.name)
		self.assertEqual(counts["deleted"], 1)  # the page no longer listed
		status = frappe.db.get_value(SOURCE, src.name, ["sync_status", "last_error"], as_dict=True)
		self.assertEqual(status.sync_status, "Failed")
		self.assertIn(f"{pages.base}/kettle: cannot connect", status.last_error)
		self.assertIn("citric acid", frappe.db.get_value("Lore Document", kettle, "content"))

	# --- bad input --------------------------------------------------------------------------------

	def test_bad_configs_are_refused_whole(self):
		count = frappe.db.count(SOURCE)
		for source_type, config, message in (
			("DocType", {"doctype": "No Such Thing"}, "does not exist"),
			("DocType", {"doctype": "Note", "fields": ["title", "nope"]}, "has no field nope"),
			("DocType", {"doctype": "Note", "fields": ["notify_on_login"]}, "permission level"),
			("DocType", {"doctype": "User", "fields": ["new_password"]}, "Password"),
			("DocType", {"doctype": "Note", "filters": {"nope": 1}}, "has no field nope"),
			("DocType", {"doctype": "Note", "filters": "{not json"}, "filters"),
			("DocType", {"doctype": "Note", "filters": [["title", "~~", "x"]]}, "operator"),
			("DocType", {"doctype": "Lore Document"}, "cannot be a knowledge source"),
			("DocType", {"doctype": "Has Role"}, "child table"),
			("File", {"folder": "Home/No Such Folder"}, "does not exist"),
			("File", {}, "needs"),
			("URL", {"urls": ["ftp://example.com/x"]}, "not an http"),
			(
				"URL",
				{"urls": ["https://example.com"], "headers": {"Authorization": "Bearer x"}},
				"Connection Secret",
			),
		):
			with self.subTest(config=config), self.assertRaisesRegex(frappe.ValidationError, message):
				source(source_type, config)
		self.assertEqual(frappe.db.count(SOURCE), count)

	def test_endpoints_check_permission_before_existence(self):
		src = source("DocType", {"doctype": "Note"})
		frappe.db.commit()
		plain = user_with_roles("cauldron-sources-plain@example.com")
		self.addCleanup(drop_user, "cauldron-sources-plain@example.com")
		frappe.db.commit()
		for name in (src.name, "00000000-0000-0000-0000-000000000000"):
			response = rest("post", "/api/method/cauldron.lore.sync.sync_now", plain, {"source": name})
			self.assertEqual(response.status_code, 403, response.data[:500])
		response = rest("post", "/api/method/cauldron.lore.sync.sync_now", self.editor, {"source": src.name})
		self.assertEqual((response.status_code, response.json["message"]), (200, {"queued": True}))
		response = rest("get", f"/api/method/cauldron.lore.sync.source_status?source={src.name}", self.editor)
		self.assertEqual(response.status_code, 200, response.data[:500])
		self.assertEqual(
			{k: response.json["message"][k] for k in ("documents", "pending", "failed", "sync_status")},
			{"documents": 0, "pending": 0, "failed": 0, "sync_status": "Never Synced"},
		)
