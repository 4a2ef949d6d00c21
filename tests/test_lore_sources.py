"""Knowledge sources, the framework-free parts: URL pages fetched from a real HTTP server on loopback
with ETag / Last-Modified (a conditional GET answered 304 reads nothing), the refusals (non-http URLs,
credentials in URLs or headers, unreachable hosts, timeouts, HTTP errors, pages over the limit),
records written as Markdown, change detection and the sync schedule."""

import socket
import threading
import time
from datetime import datetime, timedelta
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cauldron.lore import sources
from cauldron.lore.sources import FieldValue, SourceError

PAGE = b"""<!doctype html><html><head><title>Kettle  guide</title><style>p{}</style></head>
<body><h1>Descaling</h1><p>Boil <b>vinegar</b> and water, then rinse.</p><script>x()</script></body></html>"""


class Site:
	"""Pages served by a real http.server: path -> dict(body, etag, last_modified, status, delay,
	content_type, location); every request's method, path and headers are recorded."""

	def __init__(self):
		self.pages = {}
		self.requests = []
		site = self

		class Handler(BaseHTTPRequestHandler):
			def log_message(self, *args):
				pass

			def do_GET(self):
				site.requests.append((self.path, dict(self.headers)))
				page = site.pages.get(self.path)
				if page is None:
					self.send_response(404)
					self.send_header("Content-Length", "0")
					self.end_headers()
					return
				time.sleep(page.get("delay", 0))
				if page.get("location"):
					self.send_response(302)
					self.send_header("Location", page["location"])
					self.send_header("Content-Length", "0")
					self.end_headers()
					return
				if (
					page.get("need_header")
					and self.headers.get(page["need_header"][0]) != page["need_header"][1]
				):
					self.send_response(401)
					self.send_header("Content-Length", "0")
					self.end_headers()
					return
				etag, modified = page.get("etag"), page.get("last_modified")
				if (etag and self.headers.get("If-None-Match") == etag) or (
					not etag and modified and self.headers.get("If-Modified-Since") == modified
				):
					self.send_response(304)
					self.send_header("ETag", etag or "")
					self.end_headers()
					return
				body = page["body"]
				self.send_response(page.get("status", 200))
				self.send_header("Content-Type", page.get("content_type", "text/html; charset=utf-8"))
				if etag:
					self.send_header("ETag", etag)
				if modified:
					self.send_header("Last-Modified", modified)
				if not page.get("chunked"):
					self.send_header("Content-Length", str(len(body)))
				self.end_headers()
				self.wfile.write(body)

		self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
		self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
		self.thread.start()
		self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

	def url(self, path: str) -> str:
		return self.base + path

	def close(self):
		self.server.shutdown()
		self.server.server_close()


def fetch(url, **kwargs):
	"""The loopback server is a private address: allowed here, refused by default (tested below)."""
	return sources.fetch(url, allow_private=True, **kwargs)


@pytest.fixture
def site():
	server = Site()
	yield server
	server.close()


def test_a_page_is_fetched_then_answered_304_by_its_etag(site):
	site.pages["/kettle.html"] = {"body": PAGE, "etag": '"v1"'}
	page = fetch(site.url("/kettle.html"))
	assert (page.status, page.not_modified, page.etag) == (200, False, '"v1"')
	assert page.content == PAGE
	title, text, kind = sources.page_document(page)
	assert (title, kind) == ("Kettle guide", "html")
	assert "# Descaling" in text and "**vinegar**" in text
	assert "x()" not in text and "p{}" not in text

	again = fetch(site.url("/kettle.html"), etag=page.etag)
	assert (again.status, again.not_modified, again.content, again.etag) == (304, True, b"", '"v1"')
	assert site.requests[-1][1]["If-None-Match"] == '"v1"'

	site.pages["/kettle.html"] = {"body": PAGE.replace(b"vinegar", b"citric acid"), "etag": '"v2"'}
	changed = fetch(site.url("/kettle.html"), etag='"v1"')
	assert (changed.status, changed.etag) == (200, '"v2"')
	assert b"citric acid" in changed.content


def test_last_modified_makes_the_get_conditional_without_an_etag(site):
	modified = formatdate(time.time() - 3600, usegmt=True)
	site.pages["/notes.txt"] = {
		"body": b"Plain notes.",
		"last_modified": modified,
		"content_type": "text/plain",
	}
	page = fetch(site.url("/notes.txt"))
	assert (page.status, page.etag, page.last_modified) == (200, None, modified)
	again = fetch(site.url("/notes.txt"), last_modified=page.last_modified)
	assert again.not_modified
	assert site.requests[-1][1]["If-Modified-Since"] == modified
	assert "If-None-Match" not in site.requests[-1][1]
	title, text, kind = sources.page_document(page)
	assert (title, text, kind) == (site.url("/notes.txt"), "Plain notes.", "text")


def test_headers_and_the_secret_header_are_sent(site):
	site.pages["/private"] = {"body": PAGE, "need_header": ("Authorization", "Bearer s3cret")}
	with pytest.raises(SourceError, match="HTTP 401"):
		fetch(site.url("/private"))
	page = fetch(site.url("/private"), headers={"Authorization": "Bearer s3cret", "X-Team": "ops"})
	assert page.status == 200
	assert site.requests[-1][1]["X-Team"] == "ops"
	assert site.requests[-1][1]["User-Agent"] == sources.USER_AGENT


def test_redirects_are_followed_and_http_errors_named(site):
	site.pages["/old"] = {"location": "/kettle.html", "body": b""}
	site.pages["/kettle.html"] = {"body": PAGE}
	page = fetch(site.url("/old"))
	assert page.final_url == site.url("/kettle.html")
	with pytest.raises(SourceError, match=r"/missing: HTTP 404"):
		fetch(site.url("/missing"))
	site.pages["/broken"] = {"body": b"oops", "status": 500}
	with pytest.raises(SourceError, match="HTTP 500"):
		fetch(site.url("/broken"))
	site.pages["/ftp"] = {"location": "ftp://example.com/x", "body": b""}
	with pytest.raises(SourceError, match="redirected to 'ftp://example.com/x', which is not http"):
		fetch(site.url("/ftp"))
	site.pages["/loop"] = {"location": "/loop", "body": b""}
	with pytest.raises(SourceError, match="more than 5 redirects"):
		fetch(site.url("/loop"))


def test_a_slow_server_times_out(site):
	site.pages["/slow"] = {"body": PAGE, "delay": 2}
	started = time.monotonic()
	with pytest.raises(SourceError, match=r"/slow: no answer within 0.5 s"):
		fetch(site.url("/slow"), timeout=0.5)
	assert time.monotonic() - started < 1.9


def test_an_unreachable_host_is_a_clear_error():
	with socket.socket() as s:
		s.bind(("127.0.0.1", 0))
		port = s.getsockname()[1]  # closed again: nothing listens there
	with pytest.raises(SourceError, match=rf"127.0.0.1:{port}/x: cannot connect: .*refused"):
		fetch(f"http://127.0.0.1:{port}/x", timeout=5)
	with pytest.raises(SourceError, match="cannot connect: no-such-host.invalid does not resolve"):
		fetch("http://no-such-host.invalid/", timeout=5)


def test_private_addresses_are_refused_unless_allowed(site):
	site.pages["/kettle.html"] = {"body": PAGE}
	for url in (
		site.url("/kettle.html"),
		"http://localhost:9/",
		"http://169.254.169.254/latest/meta-data/",
		"http://10.0.0.1/",
		"http://[::1]:9/",
	):
		with pytest.raises(SourceError, match="is a private address"):
			sources.fetch(url, timeout=2)
	assert site.requests == []  # refused before any request
	# allowed by name: that host only, checked again at every redirect
	site.pages["/hop"] = {"location": "http://169.254.169.254/latest/meta-data/", "body": b""}
	assert sources.fetch(site.url("/kettle.html"), allow_private=["127.0.0.1"]).status == 200
	with pytest.raises(SourceError, match="169.254.169.254 is a private address"):
		sources.fetch(site.url("/hop"), allow_private=["127.0.0.1"])
	assert [path for path, _ in site.requests] == ["/kettle.html", "/hop"]
	assert fetch(site.url("/kettle.html")).status == 200


def test_pages_over_the_limit_are_refused_declared_or_not(site):
	site.pages["/big"] = {"body": b"a" * 5000, "content_type": "text/plain"}
	with pytest.raises(SourceError, match="5,000 bytes; Lore reads pages up to 1,000"):
		fetch(site.url("/big"), max_bytes=1000)
	site.pages["/big-chunked"] = {"body": b"a" * 5000, "content_type": "text/plain", "chunked": True}
	with pytest.raises(SourceError, match="larger than 1,000 bytes"):
		fetch(site.url("/big-chunked"), max_bytes=1000)


def test_junk_pages_are_refused_by_the_extractor(site):
	site.pages["/blob"] = {"body": bytes(range(256)) * 20, "content_type": "application/octet-stream"}
	page = fetch(site.url("/blob"))
	with pytest.raises(SourceError, match="/blob: the document is binary data"):
		sources.page_document(page)
	site.pages["/empty"] = {"body": b"", "content_type": "text/plain"}
	with pytest.raises(SourceError, match="empty"):
		sources.page_document(fetch(site.url("/empty")))


@pytest.mark.parametrize(
	"url, message",
	[
		("ftp://example.com/file", "not an http"),
		("file:///etc/passwd", "not an http"),
		("javascript:alert(1)", "not an http"),
		("https://", "names no host"),
		("https://user:pw@example.com/x", "carries credentials"),
		("http://example.com:99999/", "not a valid URL"),
		("", "non-empty"),
		(None, "non-empty"),
	],
)
def test_urls_lore_does_not_fetch(url, message):
	with pytest.raises(SourceError, match=message):
		sources.check_url(url)


def test_url_config_is_checked_and_credentials_kept_out():
	checked = sources.url_config(
		{"urls": ["https://a.example/x", "https://a.example/x"], "url": "http://b.example", "timeout": 5}
	)
	assert checked["urls"] == ["http://b.example", "https://a.example/x"]
	assert (checked["timeout"], checked["auth_header"], checked["headers"]) == (5.0, None, {})
	for config, message in (
		({}, "needs"),
		({"urls": []}, "needs"),
		({"urls": "ftp://x"}, "not an http"),
		({"urls": [1]}, "list of non-empty texts"),
		({"urls": ["https://x.example"], "headers": {"Authorization": "Bearer t"}}, "Connection Secret"),
		({"urls": ["https://x.example"], "headers": {"cookie": "s=1"}}, "Connection Secret"),
		({"urls": ["https://x.example"], "headers": {"bad header": "1"}}, "not a valid HTTP header"),
		({"urls": ["https://x.example"], "timeout": 0}, "timeout"),
		({"urls": ["https://x.example"], "timeout": "5"}, "timeout"),
		({"urls": ["https://x.example"], "verify": False}, "unknown key verify"),
		(["https://x.example"], "must be a JSON object"),
	):
		with pytest.raises(SourceError, match=message):
			sources.url_config(config)


def test_doctype_and_file_configs():
	assert sources.config("DocType", {"doctype": " Note ", "fields": ["title", "title", "content"]}) == {
		"doctype": "Note",
		"fields": ["title", "content"],
		"filters": None,
	}
	assert sources.config("File", {"folder": "Home/Attachments"}) == {
		"folder": "Home/Attachments",
		"attached_to_doctype": None,
	}
	for source_type, config, message in (
		("DocType", {}, 'needs "doctype"'),
		("DocType", {"doctype": "Note", "fields": "title"}, None),
		("DocType", {"doctype": "Note", "fields": [""]}, "fields must be"),
		("DocType", {"doctype": "Note", "sort": "x"}, "unknown key sort"),
		("File", {}, 'needs "folder"'),
		("File", {"folder": 3}, "non-empty text"),
		("confluence", {}, "is not synced"),
	):
		if message is None:
			assert sources.config(source_type, config)["fields"] == ["title"]
			continue
		with pytest.raises(SourceError, match=message):
			sources.config(source_type, config)


def test_records_are_written_as_markdown():
	text = sources.render_record(
		"  Boiler\nmanual ",
		[
			FieldValue("Status", "Open"),
			FieldValue("Priority", None),
			FieldValue("Count", 3),
			FieldValue(
				"Description", "<p>Bleed the <b>radiators</b> first.</p><ul><li>then top up</li></ul>", "html"
			),
			FieldValue("Notes", "Line one\r\nLine two", "text"),
			FieldValue("Empty", "", "text"),
			FieldValue("Plain html field", "no tags here", "html"),
		],
	)
	assert text == (
		"# Boiler manual\n\nStatus: Open\nCount: 3\n\n## Description\n\nBleed the **radiators** first.\n\n"
		"- then top up\n\n## Notes\n\nLine one\nLine two\n\n## Plain html field\n\nno tags here"
	)
	assert sources.render_record("", []) == ""


def test_change_detection_and_document_names():
	a = sources.content_hash("Title", "Body")
	assert a == sources.content_hash("Title", "Body")
	assert a != sources.content_hash("TitleB", "ody")  # parts are delimited
	assert sources.content_hash(b"bytes") == sources.content_hash("bytes")
	name = sources.document_name("src", "Note", "n1")
	assert name == sources.document_name("src", "Note", "n1")
	assert (
		len({name, sources.document_name("src", "Note", "n2"), sources.document_name("src2", "Note", "n1")})
		== 3
	)


def test_sources_are_due_by_their_frequency():
	now = datetime(2026, 11, 26, 12, 0)
	assert sources.due("daily", None, now)
	assert not sources.due("daily", now - timedelta(hours=23), now)
	assert sources.due("daily", now - timedelta(hours=24), now)
	assert sources.due("hourly", now - timedelta(minutes=61), now)
	assert not sources.due("weekly", now - timedelta(days=6), now)
	assert sources.due("monthly", now - timedelta(days=31), now)
	assert not sources.due("manual", None, now)
	assert sources.due(None, None, now)
