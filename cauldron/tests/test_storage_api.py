"""Bench tier: storage buckets through real HTTP requests: upload (base64 and multipart), streamed
download, listing by folder with pagination, move, copy, remove, signed URLs without a session, who
may do what, and bad input that leaves no File behind."""

import base64
import io
import time
from urllib.parse import parse_qs, urlencode, urlsplit

import frappe
from frappe.tests.test_api import make_request
from frappe.tests.utils import FrappeTestCase

from cauldron.tests.factories import CLIENT, drop_user, user_with_roles

API = "/api/method/cauldron.api.storage."
OWNER = "cauldron-storage-owner@example.com"
READER = "cauldron-storage-reader@example.com"
STRANGER = "cauldron-storage-stranger@example.com"
READ_ROLE = "Cauldron Storage Test Reader"
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000") + b"\x00" * 40
PDF = b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"


def post(method: str, token: str | None, data: dict | None = None, files: dict | None = None):
	headers = {"Authorization": f"token {token}"} if token else {}
	kwargs = {"headers": headers}
	if files:
		kwargs["data"] = {**(data or {}), **{k: (io.BytesIO(v[1]), v[0]) for k, v in files.items()}}
		kwargs["content_type"] = "multipart/form-data"
	else:
		kwargs["json"] = data or {}
	return make_request(target=CLIENT.post, args=(API + method,), kwargs=kwargs)


def get(path: str, token: str | None = None):
	headers = {"Authorization": f"token {token}"} if token else {}
	return make_request(target=CLIENT.get, args=(path,), kwargs={"headers": headers})


def download_path(bucket: str, path: str) -> str:
	return API + "download?" + urlencode({"bucket": bucket, "path": path})


def b64(data: bytes) -> str:
	return base64.b64encode(data).decode()


class TestStorageApi(FrappeTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		if not frappe.db.exists("Role", READ_ROLE):
			frappe.get_doc({"doctype": "Role", "role_name": READ_ROLE, "desk_access": 1}).insert(
				ignore_permissions=True
			)
		cls.owner = user_with_roles(OWNER)
		cls.reader = user_with_roles(READER, READ_ROLE)
		cls.stranger = user_with_roles(STRANGER)
		cls.private = cls.bucket(
			"cauldron-test-private", public=0, roles=[{"role": READ_ROLE, "access": "read"}]
		)
		cls.public = cls.bucket("cauldron-test-public", public=1)
		cls.images = cls.bucket(
			"cauldron-test-images", public=0, allowed_mime_types="image/*", file_size_limit=1000
		)
		frappe.db.commit()

	@classmethod
	def bucket(cls, name, **values):
		if frappe.db.exists("Cauldron Storage Bucket", name):
			cls.empty(name)
			frappe.delete_doc("Cauldron Storage Bucket", name, ignore_permissions=True, force=True)
		doc = frappe.get_doc(
			{"doctype": "Cauldron Storage Bucket", "bucket_name": name, "bucket_owner": OWNER, **values}
		)
		doc.insert(ignore_permissions=True)
		return doc.name

	@classmethod
	def empty(cls, bucket):
		for name in frappe.get_all("Cauldron Storage Object", filters={"bucket": bucket}, pluck="name"):
			frappe.delete_doc("Cauldron Storage Object", name, ignore_permissions=True, force=True)

	@classmethod
	def tearDownClass(cls):
		for bucket in (cls.private, cls.public, cls.images):
			cls.empty(bucket)
			frappe.delete_doc("Cauldron Storage Bucket", bucket, ignore_permissions=True, force=True)
		for user in (OWNER, READER, STRANGER):
			drop_user(user)
		frappe.db.commit()
		super().tearDownClass()

	def setUp(self):
		for bucket in (self.private, self.public, self.images):
			self.empty(bucket)
		frappe.db.commit()

	def files_of(self, bucket):
		names = frappe.get_all("Cauldron Storage Object", filters={"bucket": bucket}, pluck="name")
		return frappe.get_all(
			"File",
			filters={
				"attached_to_doctype": "Cauldron Storage Object",
				"attached_to_name": ("in", names or [""]),
			},
			pluck="name",
		)

	def upload(self, path, content, token=None, bucket=None, **extra):
		return post(
			"upload",
			token or self.owner,
			{"bucket": bucket or self.private, "path": path, "content": b64(content), **extra},
		)

	def test_upload_download_round_trip_with_type_from_content(self):
		response = self.upload("reports/2026/q1.pdf", PDF, metadata={"quarter": 1})
		self.assertEqual(response.status_code, 200, response.json)
		obj = response.json["message"]
		self.assertEqual(
			(obj["mime_type"], obj["size"], obj["metadata"]), ("application/pdf", len(PDF), {"quarter": 1})
		)
		doc = frappe.get_doc("Cauldron Storage Object", obj["id"])
		self.assertEqual(doc.path_tokens.splitlines(), ["reports", "2026", "q1.pdf"])
		self.assertTrue(doc.file.startswith("/private/files/"))
		self.assertEqual(len(frappe.get_all("File", filters={"attached_to_name": obj["id"]})), 1)
		# last accessed two minutes ago: a download moves it to now (to the minute: a second
		# download within the minute writes nothing)
		before = frappe.utils.add_to_date(frappe.utils.now_datetime(), minutes=-2)
		frappe.db.set_value("Cauldron Storage Object", obj["id"], "last_accessed_at", before)
		frappe.db.commit()
		got = get(download_path(self.private, "reports/2026/q1.pdf"), self.owner)
		self.assertEqual(got.status_code, 200)
		self.assertEqual(got.data, PDF)
		self.assertEqual(got.headers["Content-Type"], "application/pdf")
		frappe.db.rollback()
		touched = frappe.db.get_value("Cauldron Storage Object", obj["id"], "last_accessed_at")
		self.assertGreater(touched, frappe.utils.add_to_date(before, minutes=1))
		get(download_path(self.private, "reports/2026/q1.pdf"), self.owner)
		frappe.db.rollback()
		self.assertEqual(
			frappe.db.get_value("Cauldron Storage Object", obj["id"], "last_accessed_at"), touched
		)

	def test_multipart_upload(self):
		response = post(
			"upload",
			self.owner,
			{"bucket": self.private, "path": "pics/dot.png"},
			files={"file": ("dot.png", PNG)},
		)
		self.assertEqual(response.status_code, 200, response.json)
		self.assertEqual(response.json["message"]["mime_type"], "image/png")
		self.assertEqual(get(download_path(self.private, "pics/dot.png"), self.owner).data, PNG)

	def test_listing_by_folder_with_pagination(self):
		for path in ("a.txt", "docs/x.txt", "docs/y.txt", "docs/deep/z.txt", "img/p.txt"):
			self.assertEqual(self.upload(path, b"hello " + path.encode()).status_code, 200)
		top = post("list_objects", self.owner, {"bucket": self.private}).json["message"]
		self.assertEqual(
			[(i["name"], i["folder"]) for i in top["items"]],
			[("docs", True), ("img", True), ("a.txt", False)],
		)
		docs = post("list_objects", self.owner, {"bucket": self.private, "prefix": "docs/", "limit": 2}).json[
			"message"
		]
		self.assertEqual([i["name"] for i in docs["items"]], ["deep", "x.txt"])
		self.assertEqual(docs["next_offset"], 2)
		rest = post(
			"list_objects", self.owner, {"bucket": self.private, "prefix": "docs", "limit": 2, "offset": 2}
		).json["message"]
		self.assertEqual(([i["name"] for i in rest["items"]], rest["next_offset"]), (["y.txt"], None))

	def test_move_copy_and_remove(self):
		self.upload("one.txt", b"first")
		moved = post(
			"move", self.owner, {"bucket": self.private, "from_path": "one.txt", "to_path": "archive/one.txt"}
		)
		self.assertEqual(moved.status_code, 200, moved.json)
		self.assertEqual(get(download_path(self.private, "one.txt"), self.owner).status_code, 404)
		copied = post(
			"copy", self.owner, {"bucket": self.private, "from_path": "archive/one.txt", "to_path": "two.txt"}
		)
		self.assertEqual(copied.status_code, 200, copied.json)
		self.assertEqual(get(download_path(self.private, "two.txt"), self.owner).data, b"first")
		clash = post(
			"copy", self.owner, {"bucket": self.private, "from_path": "two.txt", "to_path": "archive/one.txt"}
		)
		self.assertEqual(clash.status_code, 409)
		self.assertEqual(len(self.files_of(self.private)), 2)
		removed = post(
			"remove", self.owner, {"bucket": self.private, "paths": ["two.txt", "archive/one.txt"]}
		)
		self.assertEqual(removed.status_code, 200, removed.json)
		frappe.db.rollback()
		self.assertEqual(self.files_of(self.private), [])
		self.assertFalse(
			frappe.get_all(
				"File", filters={"attached_to_doctype": "Cauldron Storage Object", "file_name": "one.txt"}
			)
		)

	def test_signed_urls_need_no_session_and_refuse_tampering(self):
		self.upload("secret/plan.txt", b"the plan")
		signed = post(
			"create_signed_url",
			self.owner,
			{"bucket": self.private, "path": "secret/plan.txt", "expires_in": 60},
		)
		self.assertEqual(signed.status_code, 200, signed.json)
		url = urlsplit(signed.json["message"]["signed_url"])
		path = url.path + "?" + url.query
		got = get(path)  # Guest: no session, no key
		self.assertEqual((got.status_code, got.data), (200, b"the plan"))
		query = {k: v[0] for k, v in parse_qs(url.query).items()}
		for tampered in (
			{**query, "path": "secret/other.txt"},
			{**query, "expires": str(int(query["expires"]) + 3600)},
			{**query, "signature": query["signature"][::-1]},
		):
			self.assertEqual(get(url.path + "?" + urlencode(tampered)).status_code, 403)
		expired = post(
			"create_signed_url",
			self.owner,
			{"bucket": self.private, "path": "secret/plan.txt", "expires_in": 1},
		)
		time.sleep(2.1)
		url = urlsplit(expired.json["message"]["signed_url"])
		self.assertEqual(get(url.path + "?" + url.query).status_code, 403)

	def test_who_may_do_what(self):
		self.upload("shared.txt", b"shared")
		# a role with read access lists and downloads, but may not write
		self.assertEqual(get(download_path(self.private, "shared.txt"), self.reader).data, b"shared")
		self.assertEqual(self.upload("mine.txt", b"x", token=self.reader).status_code, 403)
		# a stranger is told the bucket does not exist, exactly as for a bucket that does not
		for token in (self.stranger, None):
			missing = get(download_path("no-such-bucket", "shared.txt"), token)
			hidden = get(download_path(self.private, "shared.txt"), token)
			self.assertEqual((hidden.status_code, missing.status_code), (404, 404))
			self.assertNotIn("shared", hidden.get_data(as_text=True).replace("cauldron-test-private", ""))
		self.assertEqual(post("list_objects", self.stranger, {"bucket": self.private}).status_code, 404)
		# a public bucket's objects download without a session; listing still needs access
		self.upload("logo.png", PNG, bucket=self.public)
		self.assertEqual(get(download_path(self.public, "logo.png")).data, PNG)
		self.assertEqual(post("list_objects", self.stranger, {"bucket": self.public}).status_code, 404)
		self.assertEqual(
			post("list_objects", None, {"bucket": self.public}).status_code, 403
		)  # sign in first

	def test_bad_input_is_a_4xx_and_leaves_no_file(self):
		files_before = frappe.db.count("File")
		cases = [
			("../escape.txt", b"x", self.private, 417),
			("/abs.txt", b"x", self.private, 417),
			("nul\x00.txt", b"x", self.private, 417),
			("ctl\x07.txt", b"x", self.private, 400),
			("x" * 300, b"x", self.private, 400),
			("holiday.png", PDF, self.private, 415),  # disguised
			("doc.pdf", PDF, self.images, 415),  # not an image
			("big.png", PNG + b"\x00" * 2000, self.images, 413),  # over the bucket's 1,000 bytes
		]
		for path, content, bucket, status in cases:
			with self.subTest(path=path[:20]):
				response = self.upload(path, content, bucket=bucket)
				self.assertGreaterEqual(response.status_code, 400, response.json)
				self.assertLess(response.status_code, 500, response.json)
				if status not in (417,):
					self.assertEqual(response.status_code, status, response.json)
		bad_base64 = post("upload", self.owner, {"bucket": self.private, "path": "a.txt", "content": "%%%"})
		self.assertEqual(bad_base64.status_code, 400)
		self.assertEqual(self.upload("twice.txt", b"1").status_code, 200)
		self.assertEqual(self.upload("twice.txt", b"2").status_code, 409)
		self.assertEqual(self.upload("twice.txt", b"3", upsert=1).status_code, 200)
		self.assertEqual(get(download_path(self.private, "twice.txt"), self.owner).data, b"3")
		frappe.db.rollback()
		self.assertEqual(frappe.db.count("File"), files_before + 1)

	def test_a_bucket_with_objects_cannot_be_deleted(self):
		self.upload("keep.txt", b"keep")
		frappe.db.rollback()
		with self.assertRaises(frappe.LinkExistsError):
			frappe.delete_doc("Cauldron Storage Bucket", self.private, ignore_permissions=True)
