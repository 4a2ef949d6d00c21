"""Lore's splitter: token budgets in the local model's own tokens, structure first, overlap, headings."""

import pytest

from cauldron.lore.chunking import SplitError, headings, split
from cauldron.lore.providers import LocalProvider, local_tokenizer

GUIDE = "\n\n".join(
	[
		"# Guide",
		"Cauldron keeps a knowledge base inside Postgres.",
		"## Install",
		" ".join(f"Step {i} runs the installer and waits for the database." for i in range(40)),
		"### On Debian",
		"Use apt to install the packages.\n\n```\n# not a heading, a shell comment\napt install x\n```",
		"Setext Title\n============",
		"Closing words.",
	]
)


def test_chunks_fit_the_budget_in_model_tokens_and_cover_the_text():
	chunks = split(GUIDE, max_tokens=48, overlap=0)
	assert len(chunks) > 5
	for n, chunk in enumerate(chunks):
		meta = chunk.metadata
		assert meta["index"] == n and GUIDE[meta["start"] : meta["end"]] == chunk.content
		assert meta["tokens"] == LocalProvider.get().count_tokens(chunk.content) <= 48
	# Every sentence lands in some chunk; nothing is cut mid-word.
	for i in range(40):
		assert any(f"Step {i} runs the installer and waits for the database." in c.content for c in chunks)


def test_overlap_repeats_the_end_of_a_chunk_at_the_start_of_the_next():
	plain = split(GUIDE, max_tokens=48, overlap=0)
	overlapping = split(GUIDE, max_tokens=48, overlap=16)
	assert len(overlapping) > len(plain)
	shared = [
		a
		for a, b in zip(overlapping, overlapping[1:], strict=False)
		if b.metadata["start"] < a.metadata["end"]
	]
	assert shared, "no neighbouring chunks overlap"
	for a, b in zip(overlapping, overlapping[1:], strict=False):
		if b.metadata["start"] < a.metadata["end"]:
			assert GUIDE[b.metadata["start"] : a.metadata["end"]] in a.content
	assert not any(b.metadata["start"] < a.metadata["end"] for a, b in zip(plain, plain[1:], strict=False))


def test_headings_path_is_kept_and_code_fences_are_not_headings():
	assert [(level, title) for _, level, title in headings(GUIDE)] == [
		(1, "Guide"),
		(2, "Install"),
		(3, "On Debian"),
		(1, "Setext Title"),
	]
	chunks = split(GUIDE, max_tokens=48, overlap=0)
	by_text = {c.content: c.metadata["headings"] for c in chunks}
	steps = [h for text, h in by_text.items() if "Step 20 " in text]
	assert steps == [["Guide", "Install"]]
	[debian] = [c for c in chunks if "apt install x" in c.content]
	# That chunk starts in "Install" with its last step; "On Debian" begins inside it.
	assert debian.content.startswith("Step 39")
	assert (debian.metadata["headings"], debian.metadata["subheadings"]) == (
		["Guide", "Install"],
		["On Debian"],
	)
	assert [h for text, h in by_text.items() if "Closing words." in text] == [["Setext Title"]]
	# A heading too big a section for one chunk is not left alone as a chunk of its own.
	assert not any(c.content.strip() in ("## Install", "### On Debian") for c in chunks)


def test_structure_first_a_small_document_is_one_chunk_and_paragraphs_split_before_sentences():
	small = "# T\n\nOne paragraph.\n\nAnother paragraph."
	assert [c.content for c in split(small)] == [small]
	text = ("alpha " * 30).strip() + ".\n\n" + ("beta " * 30).strip() + "."
	chunks = split(text, fmt="text", max_tokens=40, overlap=0)
	assert [c.content.split()[0] for c in chunks] == ["alpha", "beta"]
	assert all(c.metadata["headings"] == [] for c in chunks)


def test_html_is_split_with_its_headings():
	html = "<html><head><style>p{}</style></head><body><h1>Top</h1><p>Intro.</p><h2>Part</h2><p>Body text.</p></body></html>"
	[whole] = split(html, fmt="html", max_tokens=64, overlap=0)
	assert whole.content == "# Top\n\nIntro.\n\n## Part\n\nBody text."
	assert (whole.metadata["headings"], whole.metadata["subheadings"]) == (["Top"], ["Part"])
	chunks = split(html, fmt="html", max_tokens=9, overlap=0)
	assert [c.metadata["headings"] for c in chunks if "Body text." in c.content] == [["Top", "Part"]]
	assert not any("p{}" in c.content for c in chunks)


def test_long_inputs_use_the_full_tokenizer_not_its_truncated_form():
	assert local_tokenizer().truncation is None
	text = "word " * 2000
	chunks = split(text, fmt="text", max_tokens=256, overlap=0)
	assert len(chunks) >= 7 and all(c.metadata["tokens"] <= 256 for c in chunks)


def test_empty_text_and_bad_settings():
	assert split("") == [] and split("  \n\n ") == []
	for kwargs, message in [
		({"fmt": "pdf"}, "unknown format"),
		({"max_tokens": 2}, "max_tokens must be"),
		({"max_tokens": 64, "overlap": 62}, "overlap must be"),
		({"overlap": -1}, "overlap must be"),
		({"max_tokens": 64.0}, "whole number"),
	]:
		with pytest.raises(SplitError, match=message):
			split("text", **kwargs)
	with pytest.raises(SplitError, match="must be a string"):
		split(b"bytes")
