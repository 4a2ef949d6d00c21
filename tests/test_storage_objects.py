"""Storage buckets' rules: object paths, signed URLs, content types read from the content."""

import io
import zipfile

import pytest

from cauldron.storage import objects
from cauldron.storage.objects import StorageError

SECRET = "site-secret"
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452") + b"\x00" * 64
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"


def test_paths_and_their_tokens():
	assert objects.check_path("invoices/2026/a.pdf") == ("invoices/2026/a.pdf", ["invoices", "2026", "a.pdf"])
	assert objects.check_path("ünïcode/файл.txt")[1] == ["ünïcode", "файл.txt"]


@pytest.mark.parametrize(
	"path, message",
	[
		("", "non-empty"),
		(None, "non-empty"),
		("/etc/passwd", "relative"),
		("a/../b", r"'\.\.' segment"),
		("..", r"'\.\.' segment"),
		("./a", r"'\.' or"),
		("a//b", "empty"),
		("a/", "empty"),
		("a\x00b", "NUL or another control"),
		("a\nb", "control"),
		("a\x7fb", "control"),
		("a\\b", "not \\\\"),
		("x" * 256, "segment .* longer than 255"),
		("/".join(["abcdefgh"] * 120), "longer than 1024 bytes"),
		("a\ud800b", "not valid Unicode"),
	],
)
def test_bad_paths_are_refused(path, message):
	with pytest.raises(StorageError, match=message):
		objects.check_path(path)


def test_signed_urls():
	expires, signature = objects.sign(SECRET, "docs", "a/b.pdf", 60, now=1000)
	assert expires == 1060
	objects.check_signature(SECRET, "docs", "a/b.pdf", expires, signature, now=1059)
	for bucket, path, exp, sig, now, message in [
		("docs", "a/b.pdf", expires, signature, 1061, "expired"),
		("docs", "a/c.pdf", expires, signature, 1001, "does not match"),
		("other", "a/b.pdf", expires, signature, 1001, "does not match"),
		("docs", "a/b.pdf", expires + 3600, signature, 1001, "does not match"),
		(
			"docs",
			"a/b.pdf",
			expires,
			signature[:-1] + ("A" if signature[-1] != "A" else "B"),
			1001,
			"does not match",
		),
		("docs", "a/b.pdf", "soon", signature, 1001, "malformed"),
		("docs", "a/b.pdf", expires, "", 1001, "malformed"),
	]:
		with pytest.raises(StorageError, match=message) as caught:
			objects.check_signature(SECRET, bucket, path, exp, sig, now=now)
		assert caught.value.status == 403
	with pytest.raises(StorageError, match="does not match"):
		objects.check_signature("another-site", "docs", "a/b.pdf", expires, signature, now=1001)
	for bad in (0, -5, 8 * 86400, "60", True):
		with pytest.raises(StorageError, match="expires_in"):
			objects.sign(SECRET, "docs", "a", bad)


def docx_bytes() -> bytes:
	buffer = io.BytesIO()
	with zipfile.ZipFile(buffer, "w") as z:
		z.writestr("[Content_Types].xml", "<Types/>")
		z.writestr("word/document.xml", "<w:document/>")
	return buffer.getvalue()


def test_content_types_come_from_the_content():
	assert objects.content_type(PNG, "x.png") == "image/png"
	assert objects.content_type(PDF, "x.pdf") == "application/pdf"
	assert objects.content_type(b"a,b\n1,2\n", "x.csv") == "text/csv"
	assert objects.content_type(b"hello", "noext") == "text/plain"
	assert objects.content_type(b"\x00\x01\x02\xff", "blob") == "application/octet-stream"
	with pytest.raises(StorageError, match="bytes"):
		objects.content_type("/etc/passwd", "x.txt")  # a str is never read as a path


def test_bucket_checks():
	assert objects.check_content(PNG, "a.png", len(PNG), ["image/*"], 1000) == "image/png"
	assert objects.check_content(b"x,y\n", "a.csv", 4, ["text/csv", "image/*"], None) == "text/csv"
	with pytest.raises(StorageError, match="does not take application/pdf") as caught:
		objects.check_content(PDF, "a.pdf", len(PDF), ["image/*"], None)
	assert caught.value.status == 415
	with pytest.raises(StorageError, match="named as image/png but its content is application/pdf"):
		objects.check_content(PDF, "holiday.png", len(PDF), [], None)
	with pytest.raises(StorageError, match="named as application/pdf but its content is text/plain"):
		objects.check_content(b"not a pdf at all", "a.pdf", 16, [], None)
	# a .bin name claims only "binary": any content goes, as what it is
	assert objects.check_content(PDF, "blob.bin", len(PDF), [], None) == "application/pdf"
	with pytest.raises(StorageError, match="at most 10") as caught:
		objects.check_content(PNG, "a.png", 11, [], 10)
	assert caught.value.status == 413
	# a .docx is a zip underneath: accepted as what its name says only because the content is a zip
	assert objects.check_content(docx_bytes(), "a.docx", 100, [], None) in (
		"application/zip",
		"application/vnd.openxmlformats-officedocument.wordprocessingml.document",
	)
