"""Bench tier: cauldron.api.synapse.write over real HTTP with API keys: line protocol as Telegraf's
HTTP output sends it (text/plain body, precision in the query string) and JSON batches; a bad batch
writes nothing and names its bad lines; only the writer roles may write."""

import uuid
from datetime import datetime, timezone

import frappe
from frappe.tests.test_api import make_request
from frappe.tests.utils import FrappeTestCase

from cauldron import db
from cauldron.tests.factories import CLIENT, drop_user, rest, user_with_roles

WRITER = "cauldron-synapse-writer@example.com"
AGENT = "cauldron-synapse-agent@example.com"
PLAIN = "cauldron-synapse-plain@example.com"
PATH = "/api/method/cauldron.api.synapse.write"
T = 1_772_366_400  # 2026-03-01 12:00:00 UTC


def post_text(token, body, query=""):
	headers = {"Authorization": f"token {token}"} if token else {}
	kwargs = {"headers": headers, "data": body, "content_type": "text/plain; charset=utf-8"}
	return make_request(target=CLIENT.post, args=(PATH + query,), kwargs=kwargs)


class TestSynapseWrite(FrappeTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.writer = user_with_roles(WRITER, "Synapse Analyst")
		cls.plain = user_with_roles(PLAIN)
		cls.agent = user_with_roles(AGENT, "Synapse Writer")
		frappe.db.commit()

	@classmethod
	def tearDownClass(cls):
		drop_user(WRITER)
		drop_user(PLAIN)
		drop_user(AGENT)
		frappe.db.commit()
		super().tearDownClass()

	def setUp(self):
		self.measurement = f"m{uuid.uuid4().hex[:8]}"

	def tearDown(self):
		cur = db.cursor()
		cur.execute("DELETE FROM synapse.metrics WHERE metric_name LIKE %s", (self.measurement + ".%",))
		frappe.db.commit()

	def stored(self):
		frappe.db.rollback()  # see what the request committed
		cur = db.cursor()
		cur.execute(
			"SELECT time, metric_name, value, dimensions FROM synapse.metrics WHERE metric_name LIKE %s"
			" ORDER BY metric_name",
			(self.measurement + ".%",),
		)
		return cur.fetchall()

	def test_line_protocol_as_telegraf_sends_it(self):
		m = self.measurement
		body = f'{m},host=web\\ 1 load1=0.5,procs=12i,up=true,uptime_format="1 day" {T}\n{m},host=db idle=99.5 {T}\n'
		response = post_text(self.writer, body.encode(), "?precision=s")
		self.assertEqual(response.status_code, 200, response.data)
		self.assertEqual(response.json["message"], 4)
		at = datetime.fromtimestamp(T, timezone.utc)
		self.assertEqual(
			self.stored(),
			[
				(at, f"{m}.idle", 99.5, {"host": "db"}),
				(at, f"{m}.load1", 0.5, {"host": "web 1", "uptime_format": "1 day"}),
				(at, f"{m}.procs", 12.0, {"host": "web 1", "uptime_format": "1 day"}),
				(at, f"{m}.up", 1.0, {"host": "web 1", "uptime_format": "1 day"}),
			],
		)

	def test_json_batch(self):
		batch = [
			{"measurement": self.measurement, "tags": {"host": "a"}, "fields": {"v": 2}, "time": T * 1000}
		]
		response = rest("post", PATH, self.writer, {"data": batch, "precision": "ms"})
		self.assertEqual(response.status_code, 200, response.data)
		self.assertEqual(response.json["message"], 1)
		((time, name, value, dimensions),) = self.stored()
		self.assertEqual((time.timestamp(), value, dimensions), (T, 2.0, {"host": "a"}))

	def test_a_bad_batch_writes_nothing_and_names_its_lines(self):
		m = self.measurement
		body = f"{m} v=1 {T}\n{m} v= {T}\n{m} v=2 {T}\n{m},host= v=3 {T}\n"
		response = post_text(self.writer, body, "?precision=s")
		self.assertEqual(response.status_code, 417, response.data)
		text = response.data.decode()
		self.assertIn("2 bad lines, nothing written", text)
		self.assertIn("line 2: Failed to parse value of field", text)
		self.assertIn("line 4: Failed to parse value of tag", text)
		self.assertEqual(self.stored(), [])

	def test_only_writers_may_write(self):
		body = f"{self.measurement} v=1 {T}"
		for token in (self.plain, None):
			response = post_text(token, body, "?precision=s")
			self.assertEqual(response.status_code, 403, response.data)
		self.assertEqual(self.stored(), [])

	def test_the_synapse_writer_role_writes_metrics_and_reads_nothing(self):
		self.assertEqual(frappe.db.get_value("Role", "Synapse Writer", "desk_access"), 0)
		response = post_text(self.agent, f"{self.measurement} v=1 {T}", "?precision=s")
		self.assertEqual(response.status_code, 200, response.data)
		self.assertEqual(len(self.stored()), 1)
		for path in (
			f"/api/method/cauldron.api.synapse.series?metric={self.measurement}.v",
			"/api/resource/Synapse Metric",
			"/api/resource/Synapse Analytics Metric",
		):
			self.assertEqual(rest("get", path, self.agent).status_code, 403, path)

	def test_unknown_precision_is_refused(self):
		response = post_text(self.writer, f"{self.measurement} v=1 {T}", "?precision=h")
		self.assertEqual(response.status_code, 417, response.data)
		self.assertIn("precision must be one of", response.data.decode())
		self.assertEqual(self.stored(), [])

	def test_parameters_of_the_wrong_kind_are_refused(self):
		for arguments in (
			{"data": f"{self.measurement} v=1", "precision": ["s"]},
			{"data": 5},
			{"data": {"measurement": self.measurement, "fields": {"v": 1}}},
			{"precision": "s"},  # no data: the JSON body itself is no line protocol
		):
			response = rest("post", PATH, self.writer, arguments)
			self.assertEqual(response.status_code, 417, (arguments, response.data))
		self.assertEqual(self.stored(), [])
