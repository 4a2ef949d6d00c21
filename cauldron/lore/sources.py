"""Lore's knowledge sources, the framework-free parts: what a source's config says, fetching URL pages
with a conditional GET, turning a record or a page into a document's title and text, and telling
whether that text changed.

Three types of source (Lore Knowledge Source > Source Type); cauldron.lore.sync is the Frappe glue.

- `DocType`: records of one DocType become documents. Config: {"doctype": "Note", "fields":
  ["title", "content"], "filters": {"public": 1}} ("fields" and "filters" optional).
  `render_record` writes a record as Markdown: its title as the heading, short fields as
  "Label: value" lines, long ones (text, HTML, Markdown) as sections under their label.
- `File`: Frappe File attachments. Config: {"folder": "Home/Attachments"} and/or
  {"attached_to_doctype": "ToDo"}. Their text comes from cauldron.lore.extract.
- `URL`: HTTP(S) pages. Config: {"urls": ["https://..."], "headers": {...}, "auth_header":
  "Authorization", "timeout": 20}. The credential is never in the config: the source's Password
  field holds it, and `auth_header` names the header it is sent in. `fetch` sends If-None-Match /
  If-Modified-Since from the page's last answer; a 304 is `Page.not_modified` and nothing is read.

Change detection: a document records `content_hash` (SHA-256 of its title and text, or of a file's
bytes); the same hash means nothing is written, so nothing is embedded again.
"""

import hashlib
import ipaddress
import re
import socket
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import unquote, urljoin, urlsplit

from cauldron.lore import extract
from cauldron.pg import CauldronDBError

DOCTYPE, FILE, URL = "DocType", "File", "URL"
TYPES = (DOCTYPE, FILE, URL)
FREQUENCIES = {
	"hourly": timedelta(hours=1),
	"daily": timedelta(days=1),
	"weekly": timedelta(days=7),
	"monthly": timedelta(days=30),
}
DEFAULT_TIMEOUT = 20.0
MAX_TIMEOUT = 120.0
MAX_URLS = 1000
MAX_PAGE_BYTES = extract.MAX_BYTES
MAX_REDIRECTS = 5
USER_AGENT = "Cauldron-Lore/1 (+knowledge source sync)"
# Headers that carry credentials: they belong in the source's Password field, not in the config.
SECRET_HEADERS = frozenset(("authorization", "proxy-authorization", "cookie", "x-api-key", "api-key"))
NAMESPACE = uuid.UUID("5b0e4f6c-1c57-4a8e-9a3e-2f1d7c0b9e41")


class SourceError(CauldronDBError):
	"""A source's config, a page or a record Lore cannot use; the message says which and why."""


# --- config --------------------------------------------------------------------------------------


def _text_list(value, what: str, limit: int = 500) -> list[str]:
	if isinstance(value, str):
		value = [value]
	if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
		raise SourceError(f"{what} must be a list of non-empty texts")
	if len(value) > limit:
		raise SourceError(f"{what} names {len(value)} items; at most {limit}")
	return [v.strip() for v in value]


def check_url(url) -> str:
	"""The URL, if Lore may fetch it: http or https, a host, no credentials in it."""
	if not isinstance(url, str) or not url.strip():
		raise SourceError("a URL must be a non-empty text")
	url = url.strip()
	try:
		parts = urlsplit(url)
		port = parts.port
	except ValueError as e:
		raise SourceError(f"{url!r} is not a valid URL: {e}") from e
	if parts.scheme.lower() not in ("http", "https"):
		raise SourceError(f"{url!r} is not an http(s) URL: Lore fetches http:// and https:// pages only")
	if not parts.hostname:
		raise SourceError(f"{url!r} names no host")
	if parts.username or parts.password:
		raise SourceError(
			f"{parts.scheme}://{parts.hostname}{'' if port is None else f':{port}'}... carries credentials"
			" in the URL; put the credential in Connection Secret and name its header in auth_header"
		)
	if any(c.isspace() for c in url):
		raise SourceError(f"{url!r} contains whitespace")
	return url


def _timeout(value) -> float:
	if value is None:
		return DEFAULT_TIMEOUT
	if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= MAX_TIMEOUT:
		raise SourceError(f"timeout must be a number of seconds above 0 and at most {MAX_TIMEOUT:g}")
	return float(value)


def url_config(config: dict) -> dict:
	"""A URL source's config, checked: {urls, headers, auth_header, timeout}."""
	_known(config, ("url", "urls", "headers", "auth_header", "timeout"), URL)
	urls = []
	if config.get("url") is not None:
		urls += _text_list(config["url"], "url", MAX_URLS)
	if config.get("urls") is not None:
		urls += _text_list(config["urls"], "urls", MAX_URLS)
	if not urls:
		raise SourceError('a URL source needs "urls": a list of http(s) URLs to fetch')
	urls = list(dict.fromkeys(check_url(u) for u in urls))
	headers = config.get("headers") or {}
	if not isinstance(headers, dict) or not all(
		isinstance(k, str) and k.strip() and isinstance(v, str) for k, v in headers.items()
	):
		raise SourceError('"headers" must be an object of header names to text values')
	for name in headers:
		if name.strip().lower() in SECRET_HEADERS:
			raise SourceError(
				f"header {name} carries a credential: put its value in Connection Secret and set"
				f' "auth_header": "{name}"'
			)
		_header_name(name)
	auth_header = config.get("auth_header")
	if auth_header is not None:
		if not isinstance(auth_header, str):
			raise SourceError('"auth_header" must be a header name')
		_header_name(auth_header)
	return {
		"urls": urls,
		"headers": {k.strip(): v for k, v in headers.items()},
		"auth_header": auth_header.strip() if auth_header else None,
		"timeout": _timeout(config.get("timeout")),
	}


def _header_name(name: str) -> None:
	if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name.strip()):
		raise SourceError(f"{name!r} is not a valid HTTP header name")


def doctype_config(config: dict) -> dict:
	"""A DocType source's config, checked for shape (which DocType and fields exist is Frappe's):
	{doctype, fields (None: the DocType's text fields), filters (as given)}."""
	_known(config, ("doctype", "fields", "filters"), DOCTYPE)
	doctype = config.get("doctype")
	if not isinstance(doctype, str) or not doctype.strip():
		raise SourceError('a DocType source needs "doctype": the name of the DocType whose records to read')
	fields = config.get("fields")
	if fields is not None:
		fields = list(dict.fromkeys(_text_list(fields, "fields", 100)))
	return {"doctype": doctype.strip(), "fields": fields or None, "filters": config.get("filters")}


def file_config(config: dict) -> dict:
	"""A File source's config, checked for shape: {folder, attached_to_doctype} (at least one)."""
	_known(config, ("folder", "attached_to_doctype"), FILE)
	found = {}
	for key in ("folder", "attached_to_doctype"):
		value = config.get(key)
		if value is not None and (not isinstance(value, str) or not value.strip()):
			raise SourceError(f'"{key}" must be a non-empty text')
		found[key] = value.strip() if value else None
	if not any(found.values()):
		raise SourceError(
			'a File source needs "folder" (e.g. "Home/Attachments") or "attached_to_doctype" (e.g. "ToDo")'
		)
	return found


def _known(config, keys, source_type) -> None:
	if not isinstance(config, dict):
		raise SourceError(f"the connection config of a {source_type} source must be a JSON object")
	unknown = sorted(set(config) - set(keys))
	if unknown:
		raise SourceError(
			f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} in the connection config of"
			f" a {source_type} source (it takes {', '.join(keys)})"
		)


def config(source_type: str, value: dict) -> dict:
	"""The checked config of a source of `source_type` (SourceError for any other type)."""
	if source_type == DOCTYPE:
		return doctype_config(value)
	if source_type == FILE:
		return file_config(value)
	if source_type == URL:
		return url_config(value)
	raise SourceError(f"source type {source_type!r} is not synced: Lore syncs {', '.join(TYPES)} sources")


def due(frequency: str | None, last_synced_at: datetime | None, now: datetime) -> bool:
	"""Whether a source synced at `last_synced_at` is due at `now` (never for `manual`)."""
	period = FREQUENCIES.get(frequency or "daily")
	if period is None:
		return False
	return last_synced_at is None or now - last_synced_at >= period


def document_name(source: str, *parts: str) -> str:
	"""The Lore Document name of one item of a source (a record, a file, a page): a UUID derived from
	them, so an event finds the item's document without a search."""
	return str(uuid.uuid5(NAMESPACE, "\x1f".join((source, *parts))))


def content_hash(*parts: str | bytes) -> str:
	digest = hashlib.sha256()
	for part in parts:
		digest.update(part if isinstance(part, bytes) else part.encode("utf-8", "surrogatepass"))
		digest.update(b"\x1f")
	return digest.hexdigest()


# --- records ---------------------------------------------------------------------------------------

# How a field's value is written: a line of its own, or a section (long text, HTML, Markdown).
SHORT, TEXT, HTML, MARKDOWN = "short", "text", "html", "markdown"


@dataclass(frozen=True)
class FieldValue:
	label: str
	value: object
	kind: str = SHORT


def render_record(title: str, values: list[FieldValue]) -> str:
	"""A record as Markdown: `# title`, "Label: value" lines, then each long field as a section.
	Empty values are left out."""
	title = " ".join(str(title or "").split())
	lines, sections = [], []
	for item in values:
		value = item.value
		if value is None or value == "" or (isinstance(value, list | dict) and not value):
			continue
		if item.kind == SHORT:
			text = " ".join(str(value).split())
			if text:
				lines.append(f"{item.label}: {text}")
			continue
		text = str(value)
		if item.kind == HTML:
			text = extract.html_to_markdown(text) if "<" in text else text
		text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
		if text:
			sections.append(f"## {item.label}\n\n{text}")
	parts = [f"# {title}"] if title else []
	if lines:
		parts.append("\n".join(lines))
	parts += sections
	return "\n\n".join(parts).strip()


# --- pages -----------------------------------------------------------------------------------------


@dataclass
class Page:
	url: str
	status: int
	not_modified: bool = False
	content: bytes = b""
	content_type: str = ""
	etag: str | None = None
	last_modified: str | None = None
	final_url: str | None = None
	headers: dict = field(default_factory=dict)


def fetch(
	url: str,
	etag: str | None = None,
	last_modified: str | None = None,
	headers: dict | None = None,
	timeout: float = DEFAULT_TIMEOUT,
	max_bytes: int = MAX_PAGE_BYTES,
	session=None,
	allow_private: bool | Iterable[str] = False,
) -> Page:
	"""GET the page, conditionally when the last answer's ETag / Last-Modified are given (a 304 is a
	Page with not_modified and no content). SourceError, naming the URL, for anything else but a
	200: an unreachable host, a timeout, an HTTP error, a page over `max_bytes`, a redirect to a
	scheme other than http(s), more than MAX_REDIRECTS redirects.

	The host of the URL and of every redirect must resolve to public addresses only, unless
	`allow_private` is True or names that host (loopback, private networks, link-local such as a
	cloud's metadata service): a source must not turn the site into a proxy to what only the server
	can reach."""
	import requests

	url = check_url(url)
	request_headers = {"User-Agent": USER_AGENT, "Accept": "text/html, text/*;q=0.9, */*;q=0.5"}
	request_headers.update(headers or {})
	if etag:
		request_headers["If-None-Match"] = etag
	if last_modified:
		request_headers["If-Modified-Since"] = last_modified
	getter = session or requests
	current = url
	for _hop in range(MAX_REDIRECTS + 1):
		check_address(current, allow_private)
		try:
			response = getter.get(
				current, headers=request_headers, timeout=timeout, stream=True, allow_redirects=False
			)
		except requests.exceptions.Timeout as e:
			raise SourceError(f"{url}: no answer within {timeout:g} s ({type(e).__name__})") from e
		except requests.exceptions.ConnectionError as e:
			raise SourceError(f"{url}: cannot connect: {_reason(e)}") from e
		except requests.exceptions.RequestException as e:
			raise SourceError(f"{url}: {type(e).__name__}: {e}") from e
		if response.status_code not in (301, 302, 303, 307, 308) or not response.headers.get("Location"):
			break
		response.close()
		target = urljoin(current, response.headers["Location"])
		try:
			current = check_url(target)
		except SourceError as e:
			raise SourceError(f"{url}: redirected to {target!r}, which is not http(s): {e}") from e
	else:
		raise SourceError(f"{url}: more than {MAX_REDIRECTS} redirects")
	with response:
		final = current
		if response.status_code == 304:
			return Page(
				url,
				304,
				not_modified=True,
				etag=response.headers.get("ETag") or etag,
				last_modified=response.headers.get("Last-Modified") or last_modified,
				final_url=final,
			)
		if response.status_code != 200:
			raise SourceError(f"{url}: HTTP {response.status_code} {response.reason or ''}".rstrip())
		declared = response.headers.get("Content-Length")
		if declared and declared.isdigit() and int(declared) > max_bytes:
			raise SourceError(
				f"{url}: the page is {int(declared):,} bytes; Lore reads pages up to {max_bytes:,}"
			)
		body = bytearray()
		try:
			for piece in response.iter_content(65536):
				body += piece
				if len(body) > max_bytes:
					raise SourceError(f"{url}: the page is larger than {max_bytes:,} bytes, the limit")
		except requests.exceptions.RequestException as e:
			raise SourceError(f"{url}: the answer broke off: {_reason(e)}") from e
		return Page(
			url,
			200,
			content=bytes(body),
			content_type=response.headers.get("Content-Type", ""),
			etag=response.headers.get("ETag"),
			last_modified=response.headers.get("Last-Modified"),
			final_url=final,
			headers=dict(response.headers),
		)


def check_address(url: str, allow_private: bool | Iterable[str] = False) -> None:
	"""SourceError when the URL's host does not resolve, or resolves to an address that is not
	public, unless `allow_private` is True or a list of host names that holds this one."""
	parts = urlsplit(url)
	host = parts.hostname
	try:
		infos = socket.getaddrinfo(
			host, parts.port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM
		)
	except (socket.gaierror, UnicodeError) as e:
		reason = getattr(e, "strerror", None) or e
		raise SourceError(f"{url}: cannot connect: {host} does not resolve ({reason})") from e
	if allow_private is True or (
		not isinstance(allow_private, bool) and host.lower() in {h.lower() for h in allow_private}
	):
		return
	for info in infos:
		address = ipaddress.ip_address(info[4][0].split("%")[0])
		if not address.is_global:
			raise SourceError(
				f"{url}: {host} is a private address ({address}); Lore fetches public addresses only unless"
				" the site allows private ones (site config lore_sources_allow_private_urls: 1, or a list"
				" of host names)"
			)


def _reason(error: Exception) -> str:
	"""The innermost reason of a requests error (refused, name not known...), not its whole chain."""
	reason = error
	while True:
		inner = getattr(reason, "reason", None) or (reason.args[0] if reason.args else None)
		if isinstance(inner, Exception) and inner is not reason:
			reason = inner
		else:
			break
	text = str(reason)
	return re.sub(r"^<[^>]+>: ", "", text)[:300]


def page_document(page: Page) -> tuple[str, str, str]:
	"""(title, text, kind) of a fetched page: its text through cauldron.lore.extract (HTML as
	Markdown), its title from <title>, the first heading, or the URL."""
	name = _file_name(page.final_url or page.url)
	claimed = name if name and "." in name and _content_kind(page.content_type) is None else None
	try:
		found = extract.extract(page.content, claimed, max_bytes=MAX_PAGE_BYTES)
	except extract.ExtractError as e:
		raise SourceError(f"{page.url}: {e}") from e
	title = None
	if found.kind == "html":
		title = html_title(page.content)
	if not title:
		heading = re.search(r"^#{1,6} +(.+)$", found.text, re.M)
		title = heading.group(1).strip() if heading else None
	return (title or page.url)[:500], found.text, found.kind


def _content_kind(content_type: str) -> str | None:
	kind = (content_type or "").split(";")[0].strip().lower()
	return {"text/html": "html", "application/xhtml+xml": "html", "application/pdf": "pdf"}.get(kind)


def _file_name(url: str) -> str | None:
	path = urlsplit(url).path
	return unquote(path.rsplit("/", 1)[-1]) or None


def html_title(content: bytes) -> str | None:
	from bs4 import BeautifulSoup

	soup = BeautifulSoup(content[:200_000], "html.parser")
	if soup.title and soup.title.get_text(strip=True):
		return " ".join(soup.title.get_text().split())
	return None
