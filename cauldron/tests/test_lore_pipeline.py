"""Bench tier: Lore's pipeline inside Frappe. A Lore Document's save queues it in the save's own
transaction, the worker (run here directly, as the scheduler and the woken RQ job run it) embeds its
content and attachments with the local model; search by text finds it, for the users who may read
it only, with top-k full; an unreadable attachment parks the document, Retry brings it back."""

import json
import secrets

import frappe
from frappe.tests.utils import FrappeTestCase
from frappe.utils import now_datetime

from cauldron import db, tasks
from cauldron.lore import ingest, providers
from cauldron.pg import vectors
from cauldron.tests.factories import delete_created_since, drop_user, rest, user_with_roles

EDITOR = "cauldron-pipeline-editor@example.com"
RESTRICTED = "cauldron-pipeline-restricted@example.com"
PLAIN = "cauldron-pipeline-plain@example.com"


def queued(name: str) -> list[tuple]:
	cur = db.cursor()
	cur.execute(
		"SELECT status, attempts, last_error FROM command.work_queue WHERE queue = %s AND key = %s ORDER BY id",
		(ingest.QUEUE, name),
	)
	return cur.fetchall()


def chunks(name: str) -> list[tuple]:
	cur = db.cursor()
	cur.execute(
		"""SELECT model, chunk_index, content, metadata FROM lore.document_chunks
		WHERE document_id = %s ORDER BY model, chunk_index""",
		(name,),
	)
	return cur.fetchall()


def work():
	"""The worker, as the scheduler runs it (it commits)."""
	return tasks.embed_lore_documents(seconds=120)


def attach(document: str, file_name: str, content: bytes):
	return frappe.get_doc(
		{
			"doctype": "File",
			"file_name": file_name,
			"attached_to_doctype": "Lore Document",
			"attached_to_name": document,
			"content": content,
			"is_private": 1,
		}
	).insert(ignore_permissions=True)


class TestLorePipeline(FrappeTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.started = now_datetime()
		try:
			vectors.table_dimension(db.cursor())
		except vectors.VectorsUnavailable:
			raise cls.skipTest(cls, "pgvector is not installed in this site's database") from None
		settings = frappe.get_single("Cauldron Settings")
		if (settings.embedding_provider or "Local") != "Local":
			settings.embedding_provider = "Local"
			settings.save()
		cls.editor = user_with_roles(EDITOR, "Knowledge Editor")
		cls.restricted = user_with_roles(RESTRICTED, "Knowledge Editor")
		cls.plain = user_with_roles(PLAIN)
		frappe.db.commit()
		work()  # whatever other tests left queued; the local model becomes the active one
		assert ingest.active_model(db.cursor()) == providers.LOCAL_MODEL

	@classmethod
	def tearDownClass(cls):
		frappe.set_user("Administrator")
		delete_created_since(cls.started)
		frappe.db.delete("User Permission", {"user": RESTRICTED})
		for email in (EDITOR, RESTRICTED, PLAIN):
			drop_user(email)
		frappe.db.commit()
		work()  # the deleted documents' queue items
		super().tearDownClass()

	def tearDown(self):
		frappe.set_user("Administrator")

	def document(self, title: str, content: str, **fields):
		return frappe.get_doc(
			{"doctype": "Lore Document", "title": title, "content": content, **fields}
		).insert()

	def search(self, token, **args):
		response = rest("post", "/api/method/cauldron.api.lore.search", token, args)
		self.assertEqual(response.status_code, 200, response.data[:2000])
		return response.json["message"]

	def test_a_save_queues_its_document_in_its_own_transaction(self):
		doc = self.document("Rolled back", "Never committed.")
		self.assertEqual([row[0] for row in queued(doc.name)], ["pending"])
		frappe.db.rollback()
		self.assertEqual(queued(doc.name), [])
		self.assertFalse(frappe.db.exists("Lore Document", doc.name))

	def test_events_to_queue_to_chunks(self):
		doc = self.document("Kettle descaling", "Fill the kettle with vinegar and water, boil, rinse twice.")
		frappe.db.commit()
		result = work()
		self.assertEqual(result.errors, {})
		self.assertEqual([row[0] for row in queued(doc.name)], ["done"])
		((model, index, content, metadata),) = chunks(doc.name)
		self.assertEqual((model, index), (providers.LOCAL_MODEL, 0))
		self.assertIn("vinegar", content)
		self.assertEqual((metadata["part"], metadata["headings"]), ("content", ["Kettle descaling"]))

		doc.reload()
		doc.save()  # nothing changed: nothing queued
		self.assertEqual([row[0] for row in queued(doc.name)], ["done"])
		doc.content = "Use citric acid instead: it leaves no smell."
		doc.save()
		frappe.db.commit()
		work()
		((_, _, content, _),) = chunks(doc.name)
		self.assertIn("citric acid", content)
		self.assertNotIn("vinegar", content)

		frappe.delete_doc("Lore Document", doc.name)
		frappe.db.commit()
		work()
		self.assertEqual(chunks(doc.name), [])

	def test_attachments_are_part_of_the_document(self):
		doc = self.document("Boiler manual", "See the attached manual.")
		file = attach(
			doc.name, "boiler.md", b"# Pressure\n\nThe boiler pressure should read 1.5 bar when cold.\n"
		)
		frappe.db.commit()
		work()
		found = {(m["part"], m.get("file")): content for _, _, content, m in chunks(doc.name)}
		self.assertIn(("attachment", "boiler.md"), found)
		self.assertIn("1.5 bar", found[("attachment", "boiler.md")])
		hits = self.search(self.editor, query="boiler pressure when cold", limit=3)
		self.assertEqual(hits[0]["document"], doc.name)
		self.assertEqual(hits[0]["metadata"]["part"], "attachment")

		frappe.delete_doc("File", file.name, ignore_permissions=True)
		frappe.db.commit()
		work()
		self.assertEqual({m["part"] for _, _, _, m in chunks(doc.name)}, {"content"})

	def test_an_unreadable_attachment_parks_the_document_and_retry_brings_it_back(self):
		doc = self.document("Scanned form", "The form is attached.")
		junk = attach(doc.name, "form.txt", secrets.token_bytes(4096))
		frappe.db.commit()
		result = work()
		self.assertEqual(result.parked, 1, result)
		((status, attempts, error),) = queued(doc.name)
		# trying again cannot help until the file changes: parked at once, with the reason
		self.assertEqual((status, attempts), ("failed", 1))
		self.assertIn("attachment form.txt: the document is binary data", error)
		self.assertEqual(chunks(doc.name), [])

		response = rest("get", "/api/method/cauldron.api.lore.pipeline_status", self.editor)
		self.assertEqual(response.status_code, 200, response.data[:2000])
		(parked,) = [f for f in response.json["message"]["failed"] if f["key"] == doc.name]
		self.assertEqual(parked["title"], "Scanned form")
		self.assertEqual(
			rest(
				"post", "/api/method/cauldron.api.lore.retry", self.plain, {"ids": [parked["id"]]}
			).status_code,
			403,
		)

		# the file is replaced by a readable one, then the item retried from Desk
		with open(junk.get_full_path(), "wb") as f:
			f.write(b"Form 12: name, address, signature.")
		response = rest("post", "/api/method/cauldron.api.lore.retry", self.editor, {"ids": [parked["id"]]})
		self.assertEqual((response.status_code, response.json["message"]), (200, 1), response.data[:2000])
		self.assertEqual(queued(doc.name)[0][:2], ("pending", 0))
		result = work()
		self.assertEqual(result.errors, {})
		self.assertEqual([row[0] for row in queued(doc.name)], ["done"])
		self.assertIn("Form 12", " ".join(content for _, _, content, _ in chunks(doc.name)))

	def test_search_gives_full_top_k_of_readable_documents_only(self):
		# the readable documents mention the subject once; the others are all about it
		readable = [
			self.document(
				f"Minutes {n}", f"Meeting minutes {n}. Among other things, the greenhouse was mentioned."
			)
			for n in range(3)
		]
		for n in range(8):
			self.document(
				f"Greenhouse {n}",
				f"Greenhouse watering schedule {n}: water the greenhouse tomatoes in the greenhouse at dawn.",
			)
		for doc in readable:
			frappe.get_doc(
				{
					"doctype": "User Permission",
					"user": RESTRICTED,
					"allow": "Lore Document",
					"for_value": doc.name,
				}
			).insert(ignore_permissions=True)
		frappe.db.commit()
		work()
		readable_names = {d.name for d in readable}
		for mode in ("hybrid", "vector", "keyword"):
			with self.subTest(mode=mode):
				everyone = self.search(self.editor, query="greenhouse watering", mode=mode, limit=3)
				# the best three overall are not readable by the restricted user: a post-filter gives nothing
				self.assertFalse(readable_names & {h["document"] for h in everyone}, everyone)
				hits = self.search(self.restricted, query="greenhouse watering", mode=mode, limit=3)
				self.assertEqual(len(hits), 3, hits)
				self.assertEqual({h["document"] for h in hits}, readable_names)
				self.assertTrue(all(h["title"].startswith("Minutes") for h in hits))
				self.assertTrue(all(h["url"] == f"/app/lore-document/{h['document']}" for h in hits))
		hits = self.search(self.restricted, query="greenhouse", limit=50)
		self.assertEqual({h["document"] for h in hits}, readable_names)
		self.assertEqual(
			rest(
				"post", "/api/method/cauldron.api.lore.search", self.plain, {"query": "greenhouse"}
			).status_code,
			403,
		)

	def test_a_text_query_is_embedded_with_the_local_model(self):
		target = self.document(
			"Resetting a password", "Forgot your password? Use the reset link on the login page."
		)
		self.document("Holiday rota", "Staff holidays are booked in the rota before the end of March.")
		frappe.db.commit()
		work()
		# no word in common with the document: only the vector leg can find it
		hits = self.search(
			self.editor, query="I cannot sign in, my credentials are lost", mode="vector", limit=5
		)
		self.assertEqual(hits[0]["document"], target.name, [h["title"] for h in hits])
		self.assertIsNone(hits[0]["keyword_rank"])
		self.assertIsNotNone(hits[0]["vector_distance"])

		# the caller's own vector: the same answer
		vector = providers.LocalProvider.get().embed(["I cannot sign in, my credentials are lost"])[0]
		by_vector = self.search(self.editor, embedding=json.dumps(vector), limit=1)
		self.assertEqual(by_vector[0]["document"], target.name)

	def test_settings_refuse_an_unusable_provider(self):
		http = {"embedding_provider": "OpenAI-compatible", "embedding_model": "m"}
		for values, message in (
			({**http, "embedding_base_url": "ftp://x"}, "must start with http"),
			(
				{**http, "embedding_base_url": "http://127.0.0.1:9/v1", "embedding_batch_size": 5000},
				"batch size",
			),
			({**http, "embedding_base_url": "http://127.0.0.1:9/v1", "embedding_timeout": 601}, "timeout"),
		):
			with self.subTest(message):
				settings = frappe.get_single("Cauldron Settings")
				settings.update(values)
				self.assertRaisesRegex(frappe.ValidationError, message, settings.save)
				frappe.db.rollback()
		self.assertEqual(
			frappe.db.get_single_value("Cauldron Settings", "embedding_provider") or "Local", "Local"
		)
