"""Bench tier: document events become audit rows and metric points, and the chain holds."""

import json
import threading

import frappe
from frappe.database.database import savepoint
from frappe.model.document import Document
from frappe.tests.test_api import FrappeAPITestCase
from frappe.tests.utils import FrappeTestCase

from cauldron import db, events
from cauldron.pg import audit, timeseries
from cauldron.tests.factories import resource, rest, user_with_roles

PARENT = "Cauldron Test Audited"
CHILD = "Cauldron Test Audited Row"
DB_SET = "Cauldron Test Db Set"
DB_SET_CHILD = "Cauldron Test Db Set Row"


def _ensure_doctype(name: str, fields: list[dict], **properties):
	if not frappe.db.exists("DocType", name):
		frappe.get_doc(
			{
				"doctype": "DocType",
				"name": name,
				"module": "Cauldron",
				"custom": 1,
				"fields": fields,
				**properties,
			}
		).insert()


def _submittable(name: str, fields: list[dict]):
	_ensure_doctype(
		name,
		fields,
		is_submittable=1,
		autoname="hash",
		permissions=[
			{
				"role": "System Manager",
				"read": 1,
				"write": 1,
				"create": 1,
				"delete": 1,
				"submit": 1,
				"cancel": 1,
			}
		],
	)


def ensure_test_doctypes():
	"""Submittable DocTypes with a child table, for the actions ToDo cannot take."""
	_ensure_doctype(CHILD, [{"fieldname": "item", "fieldtype": "Data", "label": "Item"}], istable=1)
	_submittable(
		PARENT,
		[
			{"fieldname": "title", "fieldtype": "Data", "label": "Title"},
			{"fieldname": "note", "fieldtype": "Data", "label": "Note", "allow_on_submit": 1},
			{"fieldname": "rows", "fieldtype": "Table", "label": "Rows", "options": CHILD},
		],
	)
	_ensure_doctype(
		DB_SET_CHILD,
		[
			{"fieldname": "item", "fieldtype": "Data", "label": "Item"},
			{"fieldname": "amount", "fieldtype": "Int", "label": "Amount", "allow_on_submit": 1},
		],
		istable=1,
	)
	_submittable(
		DB_SET,
		[
			{"fieldname": "title", "fieldtype": "Data", "label": "Title"},
			{"fieldname": "status", "fieldtype": "Data", "label": "Status", "allow_on_submit": 1},
			{"fieldname": "note", "fieldtype": "Data", "label": "Note", "allow_on_submit": 1},
			{"fieldname": "amended_from", "fieldtype": "Link", "label": "Amended From", "options": DB_SET},
			{"fieldname": "rows", "fieldtype": "Table", "label": "Rows", "options": DB_SET_CHILD},
		],
	)
	frappe.db.commit()


class StatusSetter(Document):
	"""A controller that writes with db_set while it validates, saves, submits and cancels, on itself
	and on its child rows, as ERPNext's Payment Entry, Sales Invoice and Sales Order do."""

	def validate(self):
		self.db_set("status", "Draft")

	def on_update(self):
		self.db_set("note", f"saved {self.title}")

	def on_submit(self):
		self.db_set("status", "Submitted")
		for row in self.rows:
			row.db_set("amount", (row.amount or 0) + 10)

	def on_cancel(self):
		self.db_set("status", "Cancelled")


def audit_rows(doctype, name):
	cur = db.cursor()
	cur.execute(
		"""
		SELECT action, user_id, old_values, new_values, ip_address, user_agent
		FROM core.audit_log WHERE resource_type = %s AND resource_id = %s ORDER BY created_at, action
		""",
		(doctype, name),
	)
	return cur.fetchall()


class TestDocumentEvents(FrappeTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		ensure_test_doctypes()

	def test_each_action_writes_exactly_one_row_with_the_changes(self):
		doc = frappe.get_doc({"doctype": PARENT, "title": "first", "rows": [{"item": "a"}]}).insert()
		doc.title = "second"
		doc.append("rows", {"item": "b"})
		doc.save()
		doc.save()  # nothing changed: no row
		doc.submit()
		doc.note = "after submit"
		doc.save()
		doc.cancel()
		name = doc.name
		frappe.db.commit()

		rows = audit_rows(PARENT, name)
		self.assertEqual(
			[r[0] for r in rows], ["insert", "update", "submit", "update_after_submit", "cancel"]
		)
		self.assertTrue(all(r[1] == "Administrator" for r in rows))
		insert, update, submit, after_submit, cancel = rows
		self.assertIsNone(insert[2])
		self.assertEqual(insert[3]["title"], "first")
		self.assertEqual([r["item"] for r in insert[3]["rows"]], ["a"])
		self.assertEqual(set(update[3]), {"title", "rows"})
		self.assertEqual(update[2]["title"], "first")
		self.assertEqual([r["item"] for r in update[3]["rows"]], ["a", "b"])
		self.assertEqual(submit[3]["docstatus"], 1)
		self.assertEqual(after_submit[3], {"note": "after submit"})
		self.assertEqual(cancel[3]["docstatus"], 2)

		frappe.delete_doc(PARENT, name)
		frappe.db.commit()
		rows = audit_rows(PARENT, name)
		self.assertEqual(
			[r[0] for r in rows], ["insert", "update", "submit", "update_after_submit", "cancel", "delete"]
		)
		deleted = rows[-1]
		self.assertEqual(deleted[2]["title"], "second")
		self.assertIsNone(deleted[3])

	def test_rename_writes_one_row_under_the_new_name(self):
		todo = frappe.get_doc({"doctype": "ToDo", "description": "rename me"}).insert()
		new_name = frappe.rename_doc("ToDo", todo.name, f"{todo.name}-renamed", force=True)
		frappe.db.commit()
		self.addCleanup(frappe.db.commit)
		self.addCleanup(frappe.delete_doc, "ToDo", new_name)
		rows = audit_rows("ToDo", new_name)
		self.assertEqual([r[0] for r in rows], ["rename"])
		self.assertEqual((rows[0][2], rows[0][3]["name"]), ({"name": todo.name}, new_name))

	def test_rollback_leaves_no_row_and_a_failed_insert_in_a_savepoint_none(self):
		todo = frappe.get_doc({"doctype": "ToDo", "description": "rolled back"}).insert()
		frappe.db.rollback()
		self.assertEqual(audit_rows("ToDo", todo.name), [])

		kept = frappe.get_doc({"doctype": "ToDo", "description": "kept"}).insert()
		with savepoint(catch=frappe.DuplicateEntryError):
			frappe.get_doc({"doctype": "ToDo", "name": kept.name, "description": "duplicate"}).insert()
		frappe.db.commit()
		try:
			rows = audit_rows("ToDo", kept.name)
			self.assertEqual([(r[0], r[3]["description"]) for r in rows], [("insert", "kept")])
		finally:
			frappe.delete_doc("ToDo", kept.name)
			frappe.db.commit()

	def test_excluded_doctypes_and_virtual_doctypes_write_nothing(self):
		self.assertIn("Error Log", events.excluded_doctypes())
		log = frappe.log_error("cauldron audit exclusion test")
		self.assertEqual(audit_rows("Error Log", log.name), [])

		settings = frappe.get_single("Cauldron Settings")
		original = settings.audit_excluded_doctypes
		settings.audit_excluded_doctypes = f"{original}\nToDo"
		try:
			settings.save()
			todo = frappe.get_doc({"doctype": "ToDo", "description": "not audited"}).insert()
			self.assertEqual(audit_rows("ToDo", todo.name), [])
		finally:
			settings.reload()
			settings.audit_excluded_doctypes = original
			settings.save()

	def test_committed_events_count_into_metrics_and_the_hourly_rollup(self):
		def inserts_counted(relation, column):
			cur = db.cursor()
			cur.execute(
				f"SELECT coalesce(sum({column}), 0) FROM {relation}"
				' WHERE metric_name = \'document.insert\' AND dimensions = \'{"doctype": "ToDo", "action": "insert"}\''
			)
			return cur.fetchone()[0]

		audit.seal(db.cursor())
		timeseries.refresh_rollups(db.cursor())
		before = (
			inserts_counted("synapse.metrics", "value"),
			inserts_counted("synapse.metrics_hourly", "sample_count"),
		)
		names = [frappe.get_doc({"doctype": "ToDo", "description": f"m{i}"}).insert().name for i in range(3)]
		frappe.db.commit()
		try:
			self.assertEqual(inserts_counted("synapse.metrics", "value"), before[0])  # not before sealing
			audit.seal(db.cursor())
			self.assertEqual(inserts_counted("synapse.metrics", "value"), before[0] + 3)
			timeseries.refresh_rollups(db.cursor())
			self.assertEqual(inserts_counted("synapse.metrics_hourly", "sample_count"), before[1] + 3)
		finally:
			for name in names:
				frappe.delete_doc("ToDo", name)
			frappe.db.commit()


class TestOneRowPerAction(FrappeTestCase):
	"""Each document action is one row with its net change, whatever db_set calls it made."""

	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		ensure_test_doctypes()

	def counted(self, action):
		cur = db.cursor()
		cur.execute(
			"SELECT coalesce(sum(value), 0) FROM synapse.metrics WHERE metric_name = %s"
			" AND dimensions @> jsonb_build_object('doctype', %s::text)",
			(f"document.{action}", DB_SET),
		)
		return cur.fetchone()[0]

	def test_db_set_inside_an_action_is_part_of_its_row(self):
		audit.seal(db.cursor())
		before = {action: self.counted(action) for action in ("insert", "submit", "cancel")}

		doc = StatusSetter({"doctype": DB_SET, "title": "first", "rows": [{"item": "a", "amount": 1}]})
		doc.insert()
		doc.title = "second"
		doc.save()
		doc.submit()
		doc.cancel()
		frappe.db.commit()

		rows = audit_rows(DB_SET, doc.name)
		self.assertEqual([r[0] for r in rows], ["insert", "update", "submit", "cancel"])
		insert, update, submit, cancel = rows
		self.assertEqual(
			(insert[3]["status"], insert[3]["note"], insert[3]["rows"][0]["amount"]),
			("Draft", "saved first", 1),
		)
		self.assertEqual(update[2], {"title": "first", "note": "saved first"})
		self.assertEqual(update[3], {"title": "second", "note": "saved second"})
		self.assertEqual((submit[2]["status"], submit[3]["status"]), ("Draft", "Submitted"))
		self.assertEqual(submit[3]["docstatus"], 1)
		self.assertEqual([r["amount"] for r in submit[3]["rows"]], [11])
		# cancelling changes the status, and the docstatus of the document and of its rows
		self.assertEqual(set(cancel[3]), {"docstatus", "status", "rows"})
		self.assertEqual((cancel[2]["status"], cancel[3]["status"]), ("Submitted", "Cancelled"))
		self.assertEqual([r["docstatus"] for r in cancel[3]["rows"]], [2])
		# a child row's change never stands on its own
		cur = db.cursor()
		cur.execute("SELECT count(*) FROM core.audit_log WHERE resource_type = %s", (DB_SET_CHILD,))
		self.assertEqual(cur.fetchone()[0], 0)

		audit.seal(db.cursor())
		for action, count in before.items():
			self.assertEqual(self.counted(action), count + 1, action)

	def test_db_set_outside_an_action_is_its_own_update_row(self):
		doc = StatusSetter({"doctype": DB_SET, "title": "job", "rows": [{"item": "a", "amount": 1}]}).insert()
		frappe.db.commit()
		# later, a job loads the document and sets a status, then a child row's amount
		later = frappe.get_doc(DB_SET, doc.name)
		later.db_set("status", "Overdue")
		later.rows[0].db_set("amount", 99)
		frappe.db.commit()

		rows = audit_rows(DB_SET, doc.name)
		self.assertEqual([r[0] for r in rows], ["insert", "update", "update"])
		self.assertEqual((rows[1][2], rows[1][3]), ({"status": "Draft"}, {"status": "Overdue"}))
		row = doc.rows[0].name
		self.assertEqual(rows[2][2], {"rows": [{"name": row, "amount": 1}]})
		self.assertEqual(rows[2][3], {"rows": [{"name": row, "amount": 99}]})

	def test_amend_and_delete_write_one_row_each(self):
		doc = StatusSetter({"doctype": DB_SET, "title": "to amend"}).insert()
		doc.submit()
		doc.cancel()
		amended = StatusSetter(frappe.copy_doc(doc).as_dict())
		amended.amended_from = doc.name
		amended.docstatus = 0
		amended.insert()
		frappe.db.commit()
		self.assertEqual([r[0] for r in audit_rows(DB_SET, amended.name)], ["insert"])

		frappe.delete_doc(DB_SET, amended.name)  # a draft
		frappe.delete_doc(DB_SET, doc.name)  # a cancelled document
		todo = frappe.get_doc({"doctype": "ToDo", "description": "deleted at once"}).insert()
		frappe.delete_doc("ToDo", todo.name)
		frappe.db.commit()
		self.assertEqual([r[0] for r in audit_rows(DB_SET, amended.name)], ["insert", "delete"])
		self.assertEqual(
			[r[0] for r in audit_rows(DB_SET, doc.name)], ["insert", "submit", "cancel", "delete"]
		)
		self.assertEqual([r[0] for r in audit_rows("ToDo", todo.name)], ["insert", "delete"])

	def test_rename_writes_nothing_under_the_old_name_but_its_insert(self):
		todo = frappe.get_doc({"doctype": "ToDo", "description": "renamed once"}).insert()
		new_name = frappe.rename_doc("ToDo", todo.name, f"{todo.name}-moved", force=True)
		frappe.db.commit()
		self.addCleanup(frappe.db.commit)
		self.addCleanup(frappe.delete_doc, "ToDo", new_name)
		self.assertEqual([r[0] for r in audit_rows("ToDo", todo.name)], ["insert"])
		self.assertEqual([r[0] for r in audit_rows("ToDo", new_name)], ["rename"])


class TestAuditChain(FrappeTestCase):
	def test_concurrent_writers_leave_a_verifiable_chain_and_tampering_is_named(self):
		site = frappe.local.site
		errors = []

		def writer(n):
			frappe.init(site=site)
			frappe.connect()
			try:
				for i in range(10):
					frappe.get_doc({"doctype": "ToDo", "description": f"writer {n} #{i}"}).insert()
					frappe.db.commit()
			except Exception as e:  # collected and asserted below
				errors.append(e)
			finally:
				frappe.destroy()

		threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
		for t in threads:
			t.start()
		for t in threads:
			t.join()
		self.assertEqual(errors, [])

		cur = db.cursor()
		audit.seal(cur)
		result = audit.verify(cur)
		self.assertTrue(result.ok, str(result))
		self.assertEqual(result.unsealed, 0)

		cur.execute("SELECT max(seq) - 5 FROM core.audit_log")
		target = cur.fetchone()[0]
		cur.execute(
			'UPDATE core.audit_log SET new_values = \'{"description": "forged"}\' WHERE seq = %s', (target,)
		)
		broken = audit.verify(cur)
		self.assertFalse(broken.ok)
		self.assertEqual(broken.broken_seq, target)
		frappe.db.rollback()
		frappe.db.delete("ToDo", {"description": ("like", "writer %")})
		frappe.db.commit()

	def test_user_erasure_anonymises_audit_rows_and_keeps_the_chain(self):
		email = "cauldron-erase@example.com"
		if not frappe.db.exists("User", email):
			frappe.get_doc(
				{"doctype": "User", "email": email, "first_name": "Erase", "send_welcome_email": 0}
			).insert()
		frappe.set_user(email)
		try:
			frappe.get_doc({"doctype": "ToDo", "description": "mine", "allocated_to": email}).insert(
				ignore_permissions=True
			)
		finally:
			frappe.set_user("Administrator")
		# Inserted without its after_insert, which mails a confirmation link (no mail account in tests);
		# the erasure itself is Frappe's own job, run as the queue would run it.
		request = frappe.get_doc(
			{"doctype": "Personal Data Deletion Request", "email": email, "status": "Pending Approval"}
		)
		request.set_new_name()
		request.db_insert()
		request._anonymize_data()

		cur = db.cursor()
		cur.execute(
			"SELECT count(*) FROM core.audit_log"
			" WHERE strpos(concat_ws(' ', user_id, resource_id, old_values::text, new_values::text), %s) > 0",
			(email,),
		)
		self.assertEqual(cur.fetchone()[0], 0)
		cur.execute("SELECT count(*) FROM core.audit_log WHERE user_id = %s", (request.name,))
		self.assertGreater(cur.fetchone()[0], 0)
		audit.seal(cur)
		result = audit.verify(cur)
		self.assertTrue(result.ok, str(result))


class TestRequestContext(FrappeAPITestCase):
	def test_rest_insert_records_ip_and_user_agent(self):
		response = self.post(
			self.resource("ToDo"),
			{"description": "via REST", "sid": self.sid},
			headers={"User-Agent": "cauldron-test-agent/1.0"},
		)
		self.assertEqual(response.status_code, 200, response.data)
		name = response.json["data"]["name"]
		rows = audit_rows("ToDo", name)
		self.assertEqual(len(rows), 1)
		self.assertEqual(rows[0][0], "insert")
		self.assertEqual(rows[0][5], "cauldron-test-agent/1.0")
		self.assertEqual(rows[0][4], "127.0.0.1")
		frappe.delete_doc("ToDo", name)
		frappe.db.commit()


class TestAuditorAccess(FrappeTestCase):
	"""core.audit_log through the Cauldron Audit Log virtual DocType: read-only, auditors only."""

	AUDITOR = "cauldron-auditor@example.com"
	PLAIN = "cauldron-audit-plain@example.com"

	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.auditor = user_with_roles(cls.AUDITOR, "Cauldron Auditor")
		cls.plain = user_with_roles(cls.PLAIN)
		cls.todo = frappe.get_doc({"doctype": "ToDo", "description": "audited for the auditor"}).insert().name
		frappe.db.commit()

	@classmethod
	def tearDownClass(cls):
		frappe.delete_doc("ToDo", cls.todo)
		frappe.db.commit()
		super().tearDownClass()

	def test_auditor_filters_by_user_doctype_name_action_and_time(self):
		filters = json.dumps(
			[
				["user_id", "=", "Administrator"],
				["resource_type", "=", "ToDo"],
				["resource_id", "=", self.todo],
				["action", "=", "insert"],
				["created_at", ">", "2000-01-01 00:00:00"],
			]
		)
		response = rest("get", f"{resource('Cauldron Audit Log')}?filters={filters}", self.auditor)
		self.assertEqual(response.status_code, 200, response.data)
		names = [row["name"] for row in response.json["data"]]
		self.assertEqual(len(names), 1)
		row = rest("get", resource("Cauldron Audit Log", names[0]), self.auditor).json["data"]
		self.assertEqual((row["action"], row["resource_id"]), ("insert", self.todo))

		wrong_action = filters.replace('"insert"', '"delete"')
		response = rest("get", f"{resource('Cauldron Audit Log')}?filters={wrong_action}", self.auditor)
		self.assertEqual(response.json["data"], [])

	def test_nobody_writes_and_others_do_not_read(self):
		self.assertEqual(rest("get", resource("Cauldron Audit Log"), self.plain).status_code, 403)
		self.assertEqual(rest("get", resource("Cauldron Audit Log")).status_code, 403)
		response = rest("post", resource("Cauldron Audit Log"), self.auditor, {"action": "forged"})
		self.assertIn(response.status_code, (403, 417))
