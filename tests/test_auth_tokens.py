"""Bearer tokens: HS256 with a shared secret and RS256/ES256 from a JWKS served on loopback; every bad
token refused with its reason; rotated keys picked up, made-up key ids not fetched again and again."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from cauldron.auth import tokens
from cauldron.auth.tokens import TokenError, TokenPolicy

ISSUER = "https://project.supabase.co/auth/v1"
AUDIENCE = "authenticated"
SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"


class JWKS:
	"""A JWKS document served over HTTP on 127.0.0.1, counting its fetches."""

	def __init__(self):
		self.keys = {}
		self.fetches = 0
		owner = self

		class Handler(BaseHTTPRequestHandler):
			def do_GET(self):
				owner.fetches += 1
				body = json.dumps({"keys": list(owner.keys.values())}).encode()
				self.send_response(200)
				self.send_header("Content-Type", "application/json")
				self.send_header("Content-Length", str(len(body)))
				self.end_headers()
				self.wfile.write(body)

			def log_message(self, *args):
				pass

		self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
		threading.Thread(target=self.server.serve_forever, daemon=True).start()
		self.url = f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"

	def add_rsa(self, kid):
		private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
		jwk = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
		self.keys[kid] = {**jwk, "kid": kid, "alg": "RS256", "use": "sig"}
		return private

	def add_ec(self, kid):
		private = ec.generate_private_key(ec.SECP256R1())
		jwk = json.loads(ECAlgorithm.to_jwk(private.public_key()))
		self.keys[kid] = {**jwk, "kid": kid, "alg": "ES256", "use": "sig"}
		return private


@pytest.fixture
def jwks():
	server = JWKS()
	tokens.forget_keys()
	yield server
	server.server.shutdown()
	tokens.forget_keys()


def claims(**kw):
	now = int(time.time())
	base = {
		"sub": "8f0e4c2a-0000-4000-8000-000000000001",
		"iss": ISSUER,
		"aud": AUDIENCE,
		"exp": now + 600,
		"iat": now,
		"email": "ada@example.com",
		"email_verified": True,
	}
	base.update(kw)
	return {k: v for k, v in base.items() if v is not None}


def hs_policy(**kw):
	return TokenPolicy(issuer=ISSUER, audience=AUDIENCE, hs256_secret=SECRET, **kw)


def test_hs256_token_is_accepted():
	token = jwt.encode(claims(), SECRET, algorithm="HS256")
	got = tokens.verify(token, hs_policy())
	assert got["sub"] == "8f0e4c2a-0000-4000-8000-000000000001"
	assert tokens.verified_email(got) == "ada@example.com"


@pytest.mark.parametrize(
	"token_claims, key, reason",
	[
		(claims(exp=int(time.time()) - 3600), SECRET, "expired"),
		(claims(nbf=int(time.time()) + 3600), SECRET, "expired"),
		(claims(aud="someone-else"), SECRET, "audience"),
		(claims(iss="https://evil.example"), SECRET, "issuer"),
		(claims(), "another-secret-that-is-also-long-enough-1234", "signature"),
		(claims(exp=None), SECRET, "claims"),
		(claims(sub=None), SECRET, "claims"),
	],
)
def test_bad_hs256_tokens_are_refused(token_claims, key, reason):
	token = jwt.encode(token_claims, key, algorithm="HS256")
	with pytest.raises(TokenError) as caught:
		tokens.verify(token, hs_policy())
	assert caught.value.reason == reason


def test_clock_skew_is_allowed_up_to_the_leeway():
	token = jwt.encode(claims(exp=int(time.time()) - 30), SECRET, algorithm="HS256")
	assert tokens.verify(token, hs_policy(leeway=60))["sub"]
	with pytest.raises(TokenError, match="expired"):
		tokens.verify(token, hs_policy(leeway=0))


def test_alg_none_and_garbage_are_refused():
	unsigned = jwt.encode(claims(), None, algorithm="none")
	with pytest.raises(TokenError) as caught:
		tokens.verify(unsigned, hs_policy())
	assert caught.value.reason == "algorithm"
	for junk in ("", "not-a-jwt", "a.b.c", "x" * 20000):
		with pytest.raises(TokenError) as caught:
			tokens.verify(junk, hs_policy())
		assert caught.value.reason == "malformed"


def test_jwks_keys_verify_and_rotate(jwks):
	first = jwks.add_rsa("k1")
	policy = TokenPolicy(issuer=ISSUER, audience=AUDIENCE, jwks_url=jwks.url)
	token = jwt.encode(claims(), first, algorithm="RS256", headers={"kid": "k1"})
	assert tokens.verify(token, policy)["iss"] == ISSUER
	assert tokens.verify(token, policy)["iss"] == ISSUER
	assert jwks.fetches == 1  # cached
	# the issuer rotates: a token signed by the new key fetches the set again once
	second = jwks.add_ec("k2")
	token2 = jwt.encode(claims(), second, algorithm="ES256", headers={"kid": "k2"})
	assert tokens.verify(token2, policy)["sub"]
	assert jwks.fetches == 2


def test_unknown_kid_is_refused_without_hammering_the_issuer(jwks):
	jwks.add_rsa("k1")
	stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
	policy = TokenPolicy(issuer=ISSUER, audience=AUDIENCE, jwks_url=jwks.url)
	for i in range(5):
		token = jwt.encode(claims(), stranger, algorithm="RS256", headers={"kid": f"made-up-{i}"})
		with pytest.raises(TokenError) as caught:
			tokens.verify(token, policy)
		assert caught.value.reason == "key"
	assert jwks.fetches == 2  # the first load, then one refresh, not one a token


def test_a_token_signed_by_another_key_under_a_known_kid_is_refused(jwks):
	jwks.add_rsa("k1")
	forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
	policy = TokenPolicy(issuer=ISSUER, audience=AUDIENCE, jwks_url=jwks.url)
	token = jwt.encode(claims(), forger, algorithm="RS256", headers={"kid": "k1"})
	with pytest.raises(TokenError) as caught:
		tokens.verify(token, policy)
	assert caught.value.reason == "signature"


def test_no_key_confusion_between_secret_and_jwks(jwks):
	key = jwks.add_rsa("k1")
	jwks_only = TokenPolicy(issuer=ISSUER, audience=AUDIENCE, jwks_url=jwks.url)
	with pytest.raises(TokenError) as caught:
		tokens.verify(jwt.encode(claims(), SECRET, algorithm="HS256"), jwks_only)
	assert caught.value.reason == "algorithm"
	secret_only = hs_policy()
	with pytest.raises(TokenError) as caught:
		tokens.verify(jwt.encode(claims(), key, algorithm="RS256", headers={"kid": "k1"}), secret_only)
	assert caught.value.reason == "algorithm"


def test_an_unreachable_jwks_is_a_clear_error():
	policy = TokenPolicy(issuer=ISSUER, audience=AUDIENCE, jwks_url="http://127.0.0.1:9/jwks.json", timeout=2)
	key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
	token = jwt.encode(claims(), key, algorithm="RS256", headers={"kid": "k1"})
	with pytest.raises(TokenError) as caught:
		tokens.verify(token, policy)
	assert caught.value.reason == "unavailable"


def test_a_policy_needs_a_way_to_check_signatures():
	with pytest.raises(TokenError, match="shared secret or a JWKS URL"):
		TokenPolicy(issuer=ISSUER)


def test_unverified_emails_are_not_vouched_for():
	assert tokens.verified_email({"email": "a@example.com"}) is None
	assert tokens.verified_email({"email": "a@example.com", "email_verified": False}) is None
	assert tokens.verified_email({"email": "A@Example.com", "user_metadata": {"email_verified": True}}) == (
		"a@example.com"
	)
