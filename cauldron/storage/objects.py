"""Storage buckets' rules, framework-free: object paths, signed URLs, content types and sizes.

Paths: an object's name is a relative path of segments joined by "/" (`invoices/2026/11/a.pdf`), like
Supabase Storage's. Refused: empty names, a leading "/" (absolute), empty segments ("a//b", a trailing
"/"), "." and ".." segments, backslashes, NUL and other control characters (C0, DEL, C1), a segment
longer than MAX_SEGMENT_BYTES or a name longer than MAX_PATH_BYTES of UTF-8. `path_tokens` are the
segments, as the seed's generated column has them.

Signed URLs: `sign(secret, bucket, path, expires_at)` is an HMAC-SHA256 over the bucket, the path and
the expiry (seconds since the epoch), keyed by a secret derived from the site's own; `check` compares
in constant time and refuses expired or altered URLs. Nothing else is needed to download: no session.

Content types are read from the content (the `filetype` library Frappe already ships, which knows
images, documents, archives, audio and video by their magic bytes), never from the name: text is
anything that decodes as UTF-8 without NUL bytes (text/plain, or the name's text type such as
text/csv, application/json, text/markdown when the name says so). A bucket's allowed types are exact
("application/pdf") or wildcards ("image/*"). A file whose name claims one type but whose content is
another is refused as disguised.
"""

import base64
import hashlib
import hmac
import mimetypes
import time
import unicodedata

import filetype

from cauldron.pg import CauldronDBError

MAX_PATH_BYTES = 1024
MAX_SEGMENT_BYTES = 255
MAX_SIGNED_SECONDS = 7 * 86400
TEXT_TYPES = {
	".txt": "text/plain",
	".csv": "text/csv",
	".md": "text/markdown",
	".json": "application/json",
	".html": "text/html",
	".htm": "text/html",
	".xml": "application/xml",
	".svg": "image/svg+xml",
	".yaml": "application/yaml",
	".yml": "application/yaml",
	".log": "text/plain",
}
SNIFF_BYTES = 8192


class StorageError(CauldronDBError):
	"""A refused storage request; `status` is the HTTP status it answers with."""

	def __init__(self, message: str, status: int = 400):
		self.status = status
		super().__init__(message)


def _bad_char(ch: str) -> bool:
	return unicodedata.category(ch) == "Cc"


def check_path(path) -> tuple[str, list[str]]:
	"""(path, path_tokens) for an object name, or StorageError saying what is wrong."""
	if not isinstance(path, str) or not path:
		raise StorageError("the object path must be non-empty text")
	if any(_bad_char(ch) for ch in path):
		raise StorageError("the object path holds NUL or another control character")
	if "\\" in path:
		raise StorageError("the object path must use / between folders, not \\")
	if path.startswith("/"):
		raise StorageError("the object path must be relative to its bucket (no leading /)")
	if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
		raise StorageError(f"the object path is longer than {MAX_PATH_BYTES} bytes")
	try:
		path.encode("utf-8")
	except UnicodeEncodeError:
		raise StorageError("the object path is not valid Unicode") from None
	tokens = path.split("/")
	for token in tokens:
		if token in ("", ".", ".."):
			raise StorageError(f"the object path {path!r} has an empty, '.' or '..' segment")
		if len(token.encode()) > MAX_SEGMENT_BYTES:
			raise StorageError(f"a segment of the object path is longer than {MAX_SEGMENT_BYTES} bytes")
	return path, tokens


def check_prefix(prefix) -> str:
	"""A listing prefix: "" or a path, optionally ending in "/"."""
	if prefix in (None, ""):
		return ""
	if not isinstance(prefix, str):
		raise StorageError("the prefix must be text")
	check_path(prefix.rstrip("/") or "x")
	return prefix


def _key(secret: str) -> bytes:
	# a key of its own, derived from the site's secret, so signed URLs cannot sign anything else
	return hmac.new(secret.encode(), b"cauldron storage signed url v1", hashlib.sha256).digest()


def _message(bucket: str, path: str, expires: int) -> bytes:
	return f"{bucket}\n{path}\n{expires}".encode()


def sign(secret: str, bucket: str, path: str, expires_in: int, now: float | None = None) -> tuple[int, str]:
	"""(expires, signature) for a download of bucket/path valid for `expires_in` seconds."""
	if (
		isinstance(expires_in, bool)
		or not isinstance(expires_in, int)
		or not 1 <= expires_in <= MAX_SIGNED_SECONDS
	):
		raise StorageError(f"expires_in must be a whole number of seconds from 1 to {MAX_SIGNED_SECONDS}")
	expires = int(now if now is not None else time.time()) + expires_in
	digest = hmac.new(_key(secret), _message(bucket, path, expires), hashlib.sha256).digest()
	return expires, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def check_signature(
	secret: str, bucket: str, path: str, expires, signature, now: float | None = None
) -> None:
	"""Nothing when the signed URL is genuine and unexpired; StorageError (403) otherwise."""
	try:
		expires = int(expires)
	except (TypeError, ValueError):
		raise StorageError("the signed URL is malformed", 403) from None
	if not isinstance(signature, str) or not signature:
		raise StorageError("the signed URL is malformed", 403)
	digest = hmac.new(_key(secret), _message(bucket, path, expires), hashlib.sha256).digest()
	expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
	if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
		raise StorageError("the signed URL's signature does not match", 403)
	if expires < (now if now is not None else time.time()):
		raise StorageError("the signed URL has expired", 403)


def _looks_like_text(head: bytes) -> bool:
	if b"\x00" in head:
		return False
	try:
		head.decode("utf-8")
	except UnicodeDecodeError as e:
		# a multi-byte character cut at the end of the sniffed bytes is still text
		return e.start >= len(head) - 3 and len(head) >= SNIFF_BYTES
	return True


def content_type(head: bytes, name: str) -> str:
	"""The MIME type of content from its first bytes; the name only picks among text types."""
	if not isinstance(head, bytes | bytearray):
		# filetype reads a str as a path to open: content is only ever bytes here
		raise StorageError("content must be bytes")
	kind = filetype.guess(head[:SNIFF_BYTES])
	if kind is not None:
		return kind.mime
	if _looks_like_text(head[:SNIFF_BYTES]):
		suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
		return TEXT_TYPES.get(suffix, "text/plain")
	return "application/octet-stream"


def check_content(head: bytes, name: str, size: int, allowed: list[str], max_bytes: int | None) -> str:
	"""The content's MIME type when a bucket takes it; StorageError (413 too large, 415 refused
	or disguised type) otherwise."""
	if max_bytes and size > max_bytes:
		raise StorageError(f"the file is {size} bytes; this bucket takes at most {max_bytes}", 413)
	mime = content_type(head, name)
	claimed = mimetypes.guess_type(name)[0]
	suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
	if claimed and claimed != mime and not (mime.startswith("text/") and suffix in TEXT_TYPES):
		if not _compatible(claimed, mime):
			raise StorageError(f"the file is named as {claimed} but its content is {mime}", 415)
	if allowed and not any(_allows(pattern, mime) for pattern in allowed):
		raise StorageError(f"this bucket does not take {mime} files (it takes {', '.join(allowed)})", 415)
	return mime


def _compatible(claimed: str, actual: str) -> bool:
	# the same format under two names (image/jpg vs image/jpeg, zip-based Office files, x- prefixes);
	# a name that claims only "some binary" (.bin) claims nothing
	if claimed == "application/octet-stream" or claimed.replace("/x-", "/") == actual.replace("/x-", "/"):
		return True
	office = ("application/vnd.openxmlformats", "application/vnd.oasis.opendocument", "application/epub")
	return actual == "application/zip" and claimed.startswith(office)


def _allows(pattern: str, mime: str) -> bool:
	pattern = pattern.strip().lower()
	if pattern.endswith("/*"):
		return mime.startswith(pattern[:-1])
	return pattern == mime
