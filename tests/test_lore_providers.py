"""Lore's embedding providers for real: the bundled local model, and the OpenAI-compatible provider
against a real HTTP server on loopback that speaks /v1/embeddings."""

import json
import math
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cauldron.lore import providers
from cauldron.lore.providers import (
	LOCAL_DIMENSION,
	LocalProvider,
	OpenAICompatibleProvider,
	ProviderError,
	provider_from_settings,
)
from cauldron.pg import CauldronDBError


def _cos(a, b):
	return sum(x * y for x, y in zip(a, b, strict=True))


@pytest.fixture(scope="module")
def local():
	return LocalProvider.get()


def test_local_model_is_offline_normalised_and_ranks_meaning(local, monkeypatch):
	monkeypatch.setenv("HF_HUB_OFFLINE", "1")
	texts = [
		"How do I reset my password?",
		"Steps to recover a forgotten login password",
		"Quarterly revenue grew by twelve percent",
		"",
	]
	vectors = local.embed(texts)
	assert len(vectors) == 4 and all(len(v) == LOCAL_DIMENSION == local.dimension for v in vectors)
	assert all(abs(math.sqrt(sum(x * x for x in v)) - 1) < 1e-5 for v in vectors)
	assert _cos(vectors[0], vectors[1]) > 0.6 > _cos(vectors[0], vectors[2]) + 0.3
	assert local.model == "all-MiniLM-L6-v2/onnx-int8"
	assert local.embed([]) == []


def test_local_vectors_do_not_depend_on_batching_or_order(local):
	texts = [
		"short",
		"a much longer sentence about invoices, payments and the ledger " * 5,
		"medium text here",
	]
	together = local.embed(texts)
	alone = [local.embed([t])[0] for t in reversed(texts)][::-1]
	for a, b in zip(together, alone, strict=True):
		assert _cos(a, b) > 0.99999


def test_local_threads_sleep_when_idle_and_spinning_changes_no_vector(local):
	"""Spinning threads would take CPU from the bench's other workers; either way the vectors agree."""
	options = local._session.get_session_options()
	assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
	spinning = LocalProvider(threads=2, spinning=True)
	assert (
		spinning._session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning")
		== "1"
	)
	texts = ["Sales invoices are posted to the ledger.", "Stir the sauce slowly."]
	for a, b in zip(local.embed(texts), spinning.embed(texts), strict=True):
		assert sum(x * y for x, y in zip(a, b, strict=True)) > 0.99999


def test_local_truncates_past_the_sequence_length(local):
	head = "Cauldron keeps the knowledge base in Postgres. " * 40  # past 256 tokens already
	assert local.count_tokens(head) > providers.LOCAL_MAX_TOKENS
	a, b = local.embed([head, head + " Completely different tail about volcanoes. " * 20])
	assert _cos(a, b) > 0.99999


def test_local_refuses_what_is_not_a_list_of_strings(local):
	with pytest.raises(ProviderError, match="list of strings"):
		local.embed("one string")
	with pytest.raises(ProviderError, match="text 1 .* not a string"):
		local.embed(["ok", 3])
	assert issubclass(ProviderError, CauldronDBError)


# --- a real OpenAI-compatible server on loopback --------------------------------------------------


class _Api(BaseHTTPRequestHandler):
	dimension = 8
	behaviour = "ok"
	requests: list = []

	def log_message(self, *args):
		pass

	def _send(self, status, body, content_type="application/json"):
		data = body if isinstance(body, bytes) else json.dumps(body).encode()
		self.send_response(status)
		self.send_header("Content-Type", content_type)
		self.send_header("Content-Length", str(len(data)))
		self.end_headers()
		self.wfile.write(data)

	def do_POST(self):
		length = int(self.headers.get("Content-Length", 0))
		body = json.loads(self.rfile.read(length))
		server = self.server
		server.seen.append({"path": self.path, "headers": dict(self.headers), "body": body})
		behaviour = server.behaviour
		if behaviour == "slow":
			time.sleep(2)
		if behaviour == "401" or self.headers.get("Authorization") not in (None, "Bearer sk-good"):
			return self._send(
				401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}
			)
		if behaviour == "500":
			return self._send(500, b"upstream exploded", "text/plain")
		if behaviour == "html":
			return self._send(200, b"<html>proxy login</html>", "text/html")
		texts = body["input"]
		dimension = server.dimension + (1 if behaviour == "wrong-dimension" else 0)
		data = []
		for i, text in enumerate(texts):
			vector = [float(len(text) + 1)] + [float((hash(text) >> k) % 7) for k in range(dimension - 1)]
			data.append({"object": "embedding", "index": i, "embedding": vector})
		if behaviour == "wrong-count":
			data = data[:-1]
		if behaviour == "shuffled":
			data = data[::-1]
		if behaviour == "nan":
			data[0]["embedding"][0] = "NaN"
		self._send(
			200, {"object": "list", "data": data, "model": body["model"], "usage": {"prompt_tokens": 1}}
		)


@pytest.fixture
def api():
	server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
	server.daemon_threads = True
	server.seen = []
	server.behaviour = "ok"
	server.dimension = 8
	thread = threading.Thread(target=server.serve_forever, daemon=True)
	thread.start()
	server.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
	yield server
	server.shutdown()
	server.server_close()


def _provider(api, **kw):
	args = {
		"base_url": api.url,
		"model": "text-embedding-test",
		"dimension": 8,
		"api_key": "sk-good",
		"timeout": 5,
	}
	args.update(kw)
	return OpenAICompatibleProvider(**args)


def test_http_provider_embeds_in_batches_in_order_normalised(api):
	provider = _provider(api, batch_size=2)
	texts = ["alpha", "beta", "gamma", "delta", "epsilon"]
	vectors = provider.embed(texts)
	assert len(vectors) == 5 and all(abs(sum(x * x for x in v) - 1) < 1e-9 for v in vectors)
	assert [len(r["body"]["input"]) for r in api.seen] == [2, 2, 1]
	first = api.seen[0]
	assert first["path"] == "/v1/embeddings" and first["headers"]["Authorization"] == "Bearer sk-good"
	assert first["body"]["model"] == "text-embedding-test" and "dimensions" not in first["body"]
	api.behaviour = "shuffled"  # items come back in another order: their index puts them right
	assert _provider(api, batch_size=2).embed(texts) == vectors
	assert provider.model == "text-embedding-test" and provider.dimension == 8
	assert "sk-good" not in repr(provider)


def test_http_provider_azure_key_header_and_api_version(api):
	provider = provider_from_settings(
		{
			"provider": "azure",
			"base_url": api.url.replace("/v1", "/openai/deployments/emb"),
			"model": "emb",
			"dimension": 8,
			"api_key": "az-key",
			"api_version": "2024-02-01",
			"send_dimensions": 1,
		}
	)
	assert len(provider.embed(["x"])) == 1
	seen = api.seen[-1]
	assert seen["path"] == "/openai/deployments/emb/embeddings?api-version=2024-02-01"
	assert seen["headers"]["api-key"] == "az-key" and "Authorization" not in seen["headers"]
	assert seen["body"]["dimensions"] == 8


def test_http_provider_times_out_on_a_slow_server(api):
	api.behaviour = "slow"
	started = time.monotonic()
	with pytest.raises(ProviderError, match=r"did not answer within 0.5 s") as caught:
		_provider(api, timeout=0.5).embed(["x"])
	assert caught.value.retryable and time.monotonic() - started < 1.9


@pytest.mark.parametrize(
	"behaviour, message, retryable",
	[
		("401", r"refused the API key \(HTTP 401\): Incorrect API key provided", False),
		("500", r"answered HTTP 500: upstream exploded", True),
		("html", r"something other than JSON: <html>proxy login</html>", False),
		("wrong-dimension", r"embedding 0 .* has 9 dimensions; the provider is configured for 8", False),
		("wrong-count", r"returned 2 embeddings for 3 texts", False),
		("nan", r"other than finite numbers", False),
	],
)
def test_http_provider_bad_answers_are_clear_errors(api, behaviour, message, retryable):
	api.behaviour = behaviour
	with pytest.raises(ProviderError, match=message) as caught:
		_provider(api).embed(["one", "two", "three"])
	assert caught.value.retryable is retryable
	assert "sk-good" not in str(caught.value)


def test_http_provider_wrong_key_and_no_server(api):
	with pytest.raises(ProviderError, match="refused the API key"):
		_provider(api, api_key="sk-bad").embed(["x"])
	with socket.socket() as s:
		s.bind(("127.0.0.1", 0))
		port = s.getsockname()[1]
	with pytest.raises(ProviderError, match="could not connect") as caught:
		_provider(api, base_url=f"http://127.0.0.1:{port}/v1").embed(["x"])
	assert caught.value.retryable


def test_settings_make_providers_and_refuse_bad_ones(api):
	assert provider_from_settings({}) is LocalProvider.get()
	assert provider_from_settings({"provider": "local", "dimension": 384}).dimension == 384
	p = provider_from_settings(
		{
			"provider": "openai",
			"base_url": api.url + "/",
			"model": "m",
			"dimension": "8",
			"timeout": "2.5",
			"batch_size": 3,
		}
	)
	assert (p.url, p.dimension, p.timeout, p.batch_size) == (api.url + "/embeddings", 8, 2.5, 3)
	for settings, message in [
		({"provider": "local", "dimension": 768}, "384-dimensional"),
		({"provider": "cohere"}, "unknown embedding provider"),
		({"provider": "openai", "base_url": "ftp://x", "model": "m", "dimension": 8}, "http:// or https://"),
		({"provider": "openai", "base_url": api.url, "model": "", "dimension": 8}, "needs a model"),
		({"provider": "openai", "base_url": api.url, "model": "m", "dimension": True}, "whole number"),
		(
			{"provider": "openai", "base_url": api.url, "model": "m", "dimension": 8, "timeout": "soon"},
			"number",
		),
		({"provider": "azure", "base_url": api.url, "model": "m", "dimension": 8}, "api_version"),
	]:
		with pytest.raises(ProviderError, match=message):
			provider_from_settings(settings)
