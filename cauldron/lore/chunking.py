"""Lore's splitter: token-aware, recursive on structure, with overlap and each chunk's heading path.

Built on semantic-text-splitter (Rust; no Python dependencies): it splits on the largest structural
unit that fits (Markdown: sections by heading level, then blocks, paragraphs, lines; plain text:
paragraphs, lines), then sentences, then words, and measures every chunk in tokens of the local
model's own tokenizer, so a chunk fits the model's sequence length. HTML is turned into Markdown first
(cauldron.lore.extract.html_to_markdown), so its headings become Markdown headings.

`split(text, fmt=..., max_tokens=..., overlap=...)` returns `Chunk(content, metadata)` in document
order; metadata holds `index`, `start` and `end` (character offsets into the text that was split),
`tokens` (special tokens included) and `headings`: the Markdown heading path in force where the chunk
starts, outermost first (["Guide", "Install", "On Debian"]), and `subheadings`: the titles of the
headings that begin inside the chunk, after its start.
"""

import re
from dataclasses import dataclass, field

from cauldron.pg import CauldronDBError

FORMATS = ("markdown", "text", "html")
DEFAULT_MAX_TOKENS = 256  # all-MiniLM-L6-v2's sequence length
DEFAULT_OVERLAP = 32
_SPECIAL_TOKENS = 2  # [CLS] and [SEP], added by the model around every chunk

_ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")


class SplitError(CauldronDBError):
	"""Text the splitter cannot take, or settings it cannot honour."""


@dataclass
class Chunk:
	content: str
	metadata: dict = field(default_factory=dict)


_splitters: dict = {}


def _splitter(markdown: bool, capacity: int, overlap: int):
	key = (markdown, capacity, overlap)
	if key not in _splitters:
		from semantic_text_splitter import MarkdownSplitter, TextSplitter

		from cauldron.lore.providers import local_tokenizer

		cls = MarkdownSplitter if markdown else TextSplitter
		_splitters[key] = cls.from_huggingface_tokenizer(
			local_tokenizer(), capacity, overlap=overlap, trim=True
		)
	return _splitters[key]


def headings(text: str) -> list[tuple[int, int, str]]:
	"""(offset, level, title) of each Markdown heading (ATX and setext), outside fenced code blocks."""
	found = []
	fence = None
	offset = 0
	previous = None  # (offset, line) of the previous line, for setext headings
	for line in text.splitlines(keepends=True):
		stripped = line.rstrip("\r\n")
		match = _FENCE.match(stripped)
		if fence:
			if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence):
				fence = None
		elif match:
			fence = match.group(1)
		elif m := _ATX.match(stripped):
			found.append((offset, len(m.group(1)), m.group(2).strip()))
		elif previous and previous[1].strip() and _SETEXT.match(stripped) and not _ATX.match(previous[1]):
			if not (stripped.strip().startswith("-") and previous[1].lstrip().startswith(("-", "*", "+"))):
				found.append((previous[0], 1 if stripped.strip()[0] == "=" else 2, previous[1].strip()))
		previous = None if fence else (offset, stripped)
		offset += len(line)
	return found


def _only_headings(content: str, start: int, marks: list[tuple[int, int, str]]) -> bool:
	end = start + len(content)
	titles = [title for offset, _, title in marks if start <= offset < end]
	if not titles:
		return False
	rest = content
	for line in content.splitlines():
		if _ATX.match(line) or _SETEXT.match(line) or line.strip() in titles:
			rest = rest.replace(line, "", 1)
	return not rest.strip()


def _path_at(marks: list[tuple[int, int, str]], position: int) -> list[str]:
	path: list[tuple[int, str]] = []
	for offset, level, title in marks:
		if offset > position:
			break
		while path and path[-1][0] >= level:
			path.pop()
		path.append((level, title))
	return [title for _, title in path]


def split(
	text: str,
	*,
	fmt: str = "markdown",
	max_tokens: int = DEFAULT_MAX_TOKENS,
	overlap: int = DEFAULT_OVERLAP,
) -> list[Chunk]:
	"""Chunks of at most `max_tokens` model tokens (special tokens included), `overlap` tokens shared
	at most between neighbours. Empty or blank text gives no chunks."""
	if not isinstance(text, str):
		raise SplitError(f"text to split must be a string, got {type(text).__name__}")
	if fmt not in FORMATS:
		raise SplitError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
	for name, value in (("max_tokens", max_tokens), ("overlap", overlap)):
		if not isinstance(value, int) or isinstance(value, bool):
			raise SplitError(f"{name} must be a whole number, got {value!r}")
	if not _SPECIAL_TOKENS < max_tokens <= 8192:
		raise SplitError(f"max_tokens must be from {_SPECIAL_TOKENS + 1} to 8192, got {max_tokens}")
	capacity = max_tokens - _SPECIAL_TOKENS
	if not 0 <= overlap < capacity:
		raise SplitError(f"overlap must be from 0 to {capacity - 1} tokens, got {overlap}")
	if fmt == "html":
		from cauldron.lore.extract import html_to_markdown

		text, fmt = html_to_markdown(text), "markdown"
	text = text.replace("\r\n", "\n").replace("\r", "\n")
	if not text.strip():
		return []
	markdown = fmt == "markdown"
	marks = headings(text) if markdown else []
	from cauldron.lore.providers import local_tokenizer

	tokenizer = local_tokenizer()
	pieces = _splitter(markdown, capacity, overlap).chunk_indices(text)
	# A chunk of headings alone (a section too big for one chunk starts with it) carries nothing its
	# successors' heading paths do not: dropped, unless it is the document's last.
	pieces = [
		(start, content)
		for n, (start, content) in enumerate(pieces)
		if n == len(pieces) - 1 or not _only_headings(content, start, marks)
	]
	counts = [len(e.ids) for e in tokenizer.encode_batch([content for _, content in pieces])]
	return [
		Chunk(
			content=content,
			metadata={
				"index": index,
				"start": start,
				"end": start + len(content),
				"tokens": tokens,
				"headings": _path_at(marks, start),
				"subheadings": [title for offset, _, title in marks if start < offset < start + len(content)],
			},
		)
		for index, ((start, content), tokens) in enumerate(zip(pieces, counts, strict=True))
	]
