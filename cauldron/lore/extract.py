"""Text out of Lore's documents: PDF, DOCX, HTML, Markdown and plain text, told apart by content.

Framework-free. `extract(data, filename=None)` looks at the bytes (magic numbers, the ZIP's parts,
then whether they decode as text), never trusts the name alone, and returns `Extracted(text, fmt,
kind, metadata)` where `fmt` is what the splitter takes ("markdown" or "text"). It refuses, with an
`ExtractError` that says why: empty input, input over the size cap, a PDF over the page cap or
password-protected or with no text layer, a ZIP that is not a Word document or unpacks too large,
binary junk, a type it does not read, and a file whose name claims another type than its content
(a disguised file). A time budget bounds the work on any one file.

Libraries: pypdf (Frappe 15 ships it), python-docx, BeautifulSoup + markdownify (Frappe ships both),
filetype (Frappe ships it) to name binary types it refuses.
"""

import io
import re
import time
import zipfile
from dataclasses import dataclass, field

from cauldron.pg import CauldronDBError

MAX_BYTES = 20 * 1024 * 1024
MAX_PDF_PAGES = 1000
MAX_UNZIPPED_BYTES = 100 * 1024 * 1024
MAX_TEXT_CHARS = 5_000_000
TIME_BUDGET_S = 60.0

KINDS = ("pdf", "docx", "html", "markdown", "text")
_EXTENSIONS = {
	"pdf": "pdf",
	"docx": "docx",
	"html": "html",
	"htm": "html",
	"xhtml": "html",
	"md": "markdown",
	"markdown": "markdown",
	"txt": "text",
	"text": "text",
}
_TEXT_KINDS = {"html", "markdown", "text"}
_HTML_START = re.compile(
	rb"^\s*(<!--.*?-->\s*)*<(!doctype\s+html|html[\s>]|head[\s>]|body[\s>])", re.I | re.S
)
_HTML_TAGS = re.compile(r"</(p|div|h[1-6]|li|ul|ol|table|tr|td|span|a|section|article|body)>", re.I)
_MARKDOWN = re.compile(r"^( {0,3}#{1,6} \S| {0,3}(```|~~~)| {0,3}[-*+] \S| {0,3}\d+\. \S| {0,3}> )", re.M)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


class ExtractError(CauldronDBError):
	"""A document Lore cannot read; the message says why."""


@dataclass
class Extracted:
	text: str
	fmt: str  # "markdown" or "text": what cauldron.lore.chunking.split takes
	kind: str  # pdf, docx, html, markdown or text: what the content is
	metadata: dict = field(default_factory=dict)


def detect(data: bytes) -> str:
	"""The kind of document the bytes are, from their content; ExtractError for what Lore cannot read."""
	if not data:
		raise ExtractError("the document is empty")
	head = data[:1024]
	if b"%PDF-" in head:
		return "pdf"
	if data.startswith(b"PK\x03\x04"):
		try:
			with zipfile.ZipFile(io.BytesIO(data)) as archive:
				names = set(archive.namelist())
		except (zipfile.BadZipFile, ValueError, OSError) as e:
			raise ExtractError(f"the document looks like a ZIP archive but is damaged: {e}") from e
		if "word/document.xml" in names:
			return "docx"
		if "content.xml" in names:
			raise ExtractError("OpenDocument files are not read; save it as DOCX or PDF")
		if any(n.startswith("xl/") for n in names) or any(n.startswith("ppt/") for n in names):
			raise ExtractError("spreadsheets and presentations are not read; save it as PDF")
		raise ExtractError("the document is a ZIP archive, not a Word document")
	if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
		raise ExtractError("old binary Office files (.doc) are not read; save it as DOCX or PDF")
	if not head.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
		import filetype

		guess = filetype.guess(head)
		if guess is not None:
			raise ExtractError(f"the document is {guess.mime}, which Lore does not read")
	text = _decode(data)
	if _HTML_START.match(data[:4096].lstrip(b"\xef\xbb\xbf")) or len(_HTML_TAGS.findall(text[:20000])) >= 3:
		return "html"
	if _MARKDOWN.search(text[:100000]):
		return "markdown"
	return "text"


def _decode(data: bytes) -> str:
	"""Text from UTF-8 (with or without BOM), UTF-16 with a BOM, else Windows-1252; junk is refused."""
	if data.startswith((b"\xff\xfe", b"\xfe\xff")):
		try:
			text = data.decode("utf-16")
		except UnicodeDecodeError as e:
			raise ExtractError("the document claims UTF-16 but does not decode as it") from e
	else:
		if b"\x00" in data[:65536]:
			raise ExtractError("the document is binary data, not text")
		try:
			text = data.decode("utf-8-sig")
		except UnicodeDecodeError:
			try:
				text = data.decode("cp1252")
			except UnicodeDecodeError as e:
				raise ExtractError("the document is neither UTF-8 nor Windows-1252 text") from e
	sample = text[:65536]
	if sample and len(_CONTROL.findall(sample)) > max(2, len(sample) // 200):
		raise ExtractError("the document is binary data, not text")
	return text


def extract(
	data: bytes,
	filename: str | None = None,
	*,
	max_bytes: int = MAX_BYTES,
	max_pages: int = MAX_PDF_PAGES,
	time_budget: float = TIME_BUDGET_S,
) -> Extracted:
	"""The document's text. `filename`, if given, must agree with the content (a .pdf must be a PDF);
	between the text kinds (.txt, .md, .html) it only chooses Markdown or plain text."""
	if not isinstance(data, (bytes, bytearray, memoryview)):
		raise ExtractError(f"a document must be bytes, got {type(data).__name__}")
	data = bytes(data)
	if len(data) > max_bytes:
		raise ExtractError(f"the document is {_size(len(data))}; the limit is {_size(max_bytes)}")
	kind = detect(data)
	claimed = _claimed(filename)
	if claimed and claimed != kind and not (claimed in _TEXT_KINDS and kind in _TEXT_KINDS):
		raise ExtractError(f"{filename!r} is named as {claimed.upper()} but its content is {kind.upper()}")
	if kind in ("markdown", "text") and claimed in ("markdown", "text"):
		kind = claimed
	deadline = time.monotonic() + time_budget
	if kind == "pdf":
		result = _pdf(data, max_pages, deadline)
	elif kind == "docx":
		result = _docx(data, deadline)
	elif kind == "html":
		result = Extracted(html_to_markdown(_decode(data)), "markdown", "html")
	else:
		text = _decode(data).replace("\r\n", "\n").replace("\r", "\n")
		result = Extracted(text, "markdown" if kind == "markdown" else "text", kind)
	result.text = result.text.strip()
	if not result.text:
		raise ExtractError(f"the {kind.upper()} document holds no text")
	if len(result.text) > MAX_TEXT_CHARS:
		raise ExtractError(
			f"the document's text is {len(result.text):,} characters; the limit is {MAX_TEXT_CHARS:,}"
		)
	result.metadata.setdefault("bytes", len(data))
	return result


def _claimed(filename: str | None) -> str | None:
	if not filename or "." not in filename:
		return None
	return _EXTENSIONS.get(filename.rsplit(".", 1)[1].lower())


def _size(n: int) -> str:
	return f"{n / 1024 / 1024:.1f} MB" if n >= 1024 * 1024 else f"{n:,} bytes"


def _check_time(deadline: float, what: str):
	if time.monotonic() > deadline:
		raise ExtractError(f"reading the {what} took longer than its time budget; it is refused")


def _pdf(data: bytes, max_pages: int, deadline: float) -> Extracted:
	import logging

	from pypdf import PdfReader
	from pypdf.errors import PdfReadError

	logging.getLogger("pypdf").setLevel(logging.ERROR)
	try:
		reader = PdfReader(io.BytesIO(data), strict=False)
		if reader.is_encrypted:
			try:
				opened = reader.decrypt("")
			except Exception as e:
				raise ExtractError("the PDF is encrypted in a way that cannot be opened") from e
			if not opened:
				raise ExtractError("the PDF is password-protected")
		count = len(reader.pages)
	except ExtractError:
		raise
	except Exception as e:  # pypdf raises many types on damaged files
		raise ExtractError(f"the PDF cannot be read: {_short(e)}") from e
	if count > max_pages:
		raise ExtractError(f"the PDF has {count:,} pages; the limit is {max_pages:,}")
	pages, starts, offset = [], [], 0
	for number in range(count):
		_check_time(deadline, "PDF")
		try:
			page_text = reader.pages[number].extract_text() or ""
		except (PdfReadError, Exception) as e:
			raise ExtractError(f"page {number + 1} of the PDF cannot be read: {_short(e)}") from e
		page_text = page_text.replace("\x00", "").strip()
		starts.append(offset)
		pages.append(page_text)
		offset += len(page_text) + 2
	text = "\n\n".join(pages)
	if count and not text.strip():
		raise ExtractError("the PDF has no text layer (scanned pages?); OCR is not done")
	return Extracted(text, "text", "pdf", {"pages": count, "page_starts": starts})


def _docx(data: bytes, deadline: float) -> Extracted:
	with zipfile.ZipFile(io.BytesIO(data)) as archive:
		unzipped = sum(info.file_size for info in archive.infolist())
	if unzipped > MAX_UNZIPPED_BYTES:
		raise ExtractError(
			f"the Word document unpacks to {_size(unzipped)}; the limit is {_size(MAX_UNZIPPED_BYTES)}"
		)
	import docx
	from docx.table import Table
	from docx.text.paragraph import Paragraph

	try:
		document = docx.Document(io.BytesIO(data))
	except Exception as e:
		raise ExtractError(f"the Word document cannot be read: {_short(e)}") from e
	lines: list[str] = []
	for block in document.iter_inner_content():
		_check_time(deadline, "Word document")
		if isinstance(block, Paragraph):
			text = block.text.strip()
			if not text:
				continue
			style = (block.style.name if block.style is not None else "") or ""
			level = _heading_level(style)
			if level:
				lines.append("#" * level + " " + " ".join(text.split()))
			elif style.startswith("List"):
				lines.append(("1. " if "Number" in style else "- ") + text)
			else:
				lines.append(text)
		elif isinstance(block, Table):
			rows = [
				[" ".join(cell.text.split()).replace("|", "\\|") for cell in row.cells] for row in block.rows
			]
			if rows:  # one Markdown table: its rows on consecutive lines
				table = ["| " + " | ".join(rows[0]) + " |", "|" + " --- |" * len(rows[0])]
				table.extend("| " + " | ".join(row) + " |" for row in rows[1:])
				lines.append("\n".join(table))
	return Extracted("\n\n".join(lines), "markdown", "docx")


def _heading_level(style: str) -> int:
	if style == "Title":
		return 1
	match = re.fullmatch(r"Heading (\d)", style)
	return min(int(match.group(1)), 6) if match else 0


def _short(error: Exception) -> str:
	text = " ".join(str(error).split()) or type(error).__name__
	return text[:200]


_BLOCKS = ("div", "section", "article", "main", "header", "footer", "aside", "nav")
_DROP = ("script", "style", "noscript", "template", "head", "svg", "iframe", "object", "canvas")


def html_to_markdown(html: str) -> str:
	"""HTML as Markdown: headings as ATX headings, lists, tables and links kept; scripts, styles and the
	head dropped."""
	from bs4 import BeautifulSoup
	from markdownify import MarkdownConverter

	soup = BeautifulSoup(html, "html.parser")
	for tag in soup.find_all(_DROP):
		tag.decompose()
	for tag in soup.find_all(_BLOCKS):  # markdownify 0.11 runs these into their neighbours
		tag.name = "p"
	markdown = MarkdownConverter(heading_style="ATX", bullets="-", strip=["img"]).convert_soup(soup)
	markdown = re.sub(r"[ \t]+\n", "\n", markdown)
	return re.sub(r"\n{3,}", "\n\n", markdown).strip()
