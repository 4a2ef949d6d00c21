"""Lore's extractors on small files the tests build: PDF (pypdf writes it), DOCX (python-docx writes
it), HTML, Markdown, text; and the refusals: disguised, damaged, binary, oversized, empty."""

import io
import struct
import zipfile
import zlib

import pytest

from cauldron.lore.extract import ExtractError, detect, extract


def _pdf(pages: list[str], password: str | None = None) -> bytes:
	from pypdf import PdfWriter
	from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

	writer = PdfWriter()
	font = DictionaryObject(
		{
			NameObject("/Type"): NameObject("/Font"),
			NameObject("/Subtype"): NameObject("/Type1"),
			NameObject("/BaseFont"): NameObject("/Helvetica"),
		}
	)
	font_ref = writer._add_object(font)
	for text in pages:
		page = writer.add_blank_page(width=612, height=792)
		lines = [f"({line}) Tj 0 -16 Td" for line in text.split("\n")] if text else []
		stream = DecodedStreamObject()
		stream.set_data(("BT /F1 12 Tf 72 720 Td " + " ".join(lines) + " ET").encode("latin-1"))
		page[NameObject("/Contents")] = writer._add_object(stream)
		page[NameObject("/Resources")] = DictionaryObject(
			{NameObject("/Font"): DictionaryObject({NameObject("/F1"): font_ref})}
		)
	if password:
		writer.encrypt(password)
	out = io.BytesIO()
	writer.write(out)
	return out.getvalue()


def _docx() -> bytes:
	import docx

	document = docx.Document()
	document.add_heading("Quarterly Report", level=1)
	document.add_paragraph("Revenue grew in every region.")
	document.add_heading("Risks", level=2)
	document.add_paragraph("Supply chains", style="List Bullet")
	table = document.add_table(rows=2, cols=2)
	table.cell(0, 0).text, table.cell(0, 1).text = "Region", "Growth"
	table.cell(1, 0).text, table.cell(1, 1).text = "North", "12%"
	document.add_paragraph("Closing note.")
	out = io.BytesIO()
	document.save(out)
	return out.getvalue()


def _png() -> bytes:
	def chunk(kind, data):
		return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

	raw = zlib.compress(b"\x00\xff\x00\x00")
	return (
		b"\x89PNG\r\n\x1a\n"
		+ chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
		+ chunk(b"IDAT", raw)
		+ chunk(b"IEND", b"")
	)


def test_pdf_text_by_page():
	data = _pdf(["Invoices are due in thirty days.", "Second page about refunds."])
	result = extract(data, "terms.pdf")
	assert (result.kind, result.fmt, result.metadata["pages"]) == ("pdf", "text", 2)
	assert "Invoices are due in thirty days." in result.text and "Second page about refunds." in result.text
	second = result.metadata["page_starts"][1]
	assert result.text[second:].startswith("Second page")


def test_pdf_refusals_page_cap_password_no_text_damage():
	with pytest.raises(ExtractError, match="has 3 pages; the limit is 2"):
		extract(_pdf(["a", "b", "c"]), max_pages=2)
	with pytest.raises(ExtractError, match="password-protected"):
		extract(_pdf(["secret"], password="pw"))
	with pytest.raises(ExtractError, match="no text layer"):
		extract(_pdf(["", ""]))
	with pytest.raises(ExtractError, match="PDF cannot be read"):
		extract(b"%PDF-1.7\n" + b"garbage that is no PDF structure at all\n" * 20)


def test_docx_headings_lists_tables_in_order():
	result = extract(_docx(), "report.docx")
	assert (result.kind, result.fmt) == ("docx", "markdown")
	assert result.text == (
		"# Quarterly Report\n\nRevenue grew in every region.\n\n## Risks\n\n- Supply chains\n\n"
		"| Region | Growth |\n| --- | --- |\n| North | 12% |\n\nClosing note."
	)


def test_html_becomes_markdown_without_scripts():
	html = (
		b"<!DOCTYPE html><html><head><title>T</title><script>alert(1)</script></head><body>"
		b"<h1>Help</h1><div>Open the <a href='/x'>settings</a>.</div><h2>Billing</h2><ul><li>Card</li></ul></body></html>"
	)
	result = extract(html, "page.htm")
	assert (result.kind, result.fmt) == ("html", "markdown")
	assert result.text == "# Help\n\nOpen the [settings](/x).\n\n## Billing\n\n- Card"


def test_markdown_and_text_and_encodings():
	assert extract(b"# Title\n\nBody\r\n").kind == "markdown"
	assert extract(b"# Title\n\nBody\r\n").text == "# Title\n\nBody"
	assert extract(b"just words", "notes.txt").kind == "text"
	assert extract(b"# not really markdown", "notes.txt").fmt == "text"  # the name chooses between text kinds
	assert extract("caf\u00e9 \u00fcber".encode("utf-16")).text == "caf\u00e9 \u00fcber"
	assert extract("na\u00efve r\u00e9sum\u00e9".encode("cp1252")).text == "na\u00efve r\u00e9sum\u00e9"
	assert extract(b"\xef\xbb\xbfBOM text").text == "BOM text"


def test_disguised_junk_and_unsupported_files_are_refused():
	pdf = _pdf(["x"])
	with pytest.raises(ExtractError, match=r"'report.docx' is named as DOCX but its content is PDF"):
		extract(pdf, "report.docx")
	with pytest.raises(ExtractError, match="named as PDF but its content is TEXT"):
		extract(b"hello", "scan.pdf")
	with pytest.raises(ExtractError, match="image/png, which Lore does not read"):
		extract(_png(), "photo.txt")
	with pytest.raises(ExtractError, match="binary data"):
		extract(bytes(range(256)) * 40)
	with pytest.raises(ExtractError, match="binary data"):
		extract(b"\x01\x02\x03text\x04\x05\x06\x07\x08" * 50)
	archive = io.BytesIO()
	with zipfile.ZipFile(archive, "w") as z:
		z.writestr("readme.txt", "not a word document")
	with pytest.raises(ExtractError, match="ZIP archive, not a Word document"):
		extract(archive.getvalue())
	with pytest.raises(ExtractError, match="damaged"):
		extract(b"PK\x03\x04" + b"\x00" * 100)
	with pytest.raises(ExtractError, match=r"\.doc\) are not read"):
		detect(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 512)


def test_empty_and_oversized_input():
	with pytest.raises(ExtractError, match="empty"):
		extract(b"")
	with pytest.raises(ExtractError, match="holds no text"):
		extract(b"  \n\n ")
	with pytest.raises(ExtractError, match=r"is 50.0 MB; the limit is 20.0 MB"):
		extract(b"%PDF-1.7\n" + b" " * (50 * 1024 * 1024 - 9))
	with pytest.raises(ExtractError, match="must be bytes"):
		extract("a string")


def test_zip_bomb_word_document_is_refused(monkeypatch):
	from cauldron.lore import extract as module

	monkeypatch.setattr(module, "MAX_UNZIPPED_BYTES", 10_000)
	with pytest.raises(ExtractError, match="unpacks to"):
		extract(_docx())


def test_time_budget_stops_a_long_read():
	with pytest.raises(ExtractError, match="time budget"):
		extract(_pdf(["page"] * 3), time_budget=-1)
