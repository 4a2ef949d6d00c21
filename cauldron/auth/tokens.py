"""Bearer tokens from Supabase or any OIDC provider, verified with PyJWT (framework-free).

A `TokenPolicy` says what a site accepts: its issuer, its audience, and how signatures are checked:
- HS256 with a shared secret (Supabase's legacy JWT secret);
- asymmetric keys (RS256/384/512, PS256/384/512, ES256/384/512, EdDSA) from the issuer's JWKS URL,
  fetched with PyJWT's PyJWKClient and cached for `jwks_lifespan` seconds; a token naming a key id
  the cache does not hold refreshes the set once (so rotated keys are picked up), but not more than
  once every MIN_REFRESH_SECONDS, so tokens with made-up key ids cannot make the site hammer the
  issuer.

The algorithm is the one the token's header names, but only from the algorithms the policy allows
for that kind of key: `none` is never accepted, an HS256 token is refused when no secret is set, and
an asymmetric token is refused when no JWKS URL is set (no key confusion either way). `exp` and
`sub` are required; `iss`, `aud`, `exp`, `nbf` and `iat` are checked with `leeway` seconds of clock
skew. Every refusal is a TokenError whose `reason` is one short word (expired, audience, issuer,
signature, algorithm, key, malformed, claims, unavailable) and whose message says what is wrong
without echoing the token.
"""

import threading
import time
from dataclasses import dataclass

import jwt
from jwt import PyJWKClient
from jwt.exceptions import PyJWKClientConnectionError, PyJWKClientError

from cauldron.pg import CauldronDBError

ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
SYMMETRIC = ("HS256",)
MIN_REFRESH_SECONDS = 30
MAX_TOKEN_BYTES = 16 * 1024


class TokenError(CauldronDBError):
	def __init__(self, reason: str, message: str):
		self.reason = reason
		super().__init__(message)


@dataclass(frozen=True)
class TokenPolicy:
	issuer: str | None = None
	audience: str | None = None
	hs256_secret: str | None = None
	jwks_url: str | None = None
	leeway: int = 60
	jwks_lifespan: int = 300
	timeout: float = 5.0

	def __post_init__(self):
		if not self.hs256_secret and not self.jwks_url:
			raise TokenError("unavailable", "token sign-in needs a shared secret or a JWKS URL")
		if self.jwks_url and not self.jwks_url.startswith(("https://", "http://")):
			raise TokenError("unavailable", "the JWKS URL must be an http(s) URL")


class _JWKS(PyJWKClient):
	"""PyJWKClient whose refresh for an unknown key id is rate-limited."""

	def __init__(self, uri: str, lifespan: int, timeout: float):
		super().__init__(uri, cache_jwk_set=True, lifespan=lifespan, timeout=timeout)
		self._last_refresh = 0.0
		self._lock = threading.Lock()

	def signing_key(self, kid: str | None):
		keys = self.get_signing_keys()
		key = self.match_kid(keys, kid) if kid else (keys[0] if len(keys) == 1 else None)
		if key is not None:
			return key
		with self._lock:
			if time.monotonic() - self._last_refresh < MIN_REFRESH_SECONDS:
				return None
			self._last_refresh = time.monotonic()
		keys = self.get_signing_keys(refresh=True)
		return self.match_kid(keys, kid) if kid else None


_clients: dict[tuple, _JWKS] = {}
_clients_lock = threading.Lock()


def _client(policy: TokenPolicy) -> _JWKS:
	key = (policy.jwks_url, policy.jwks_lifespan, policy.timeout)
	with _clients_lock:
		if key not in _clients:
			_clients[key] = _JWKS(policy.jwks_url, policy.jwks_lifespan, policy.timeout)
		return _clients[key]


def forget_keys() -> None:
	"""Drop every cached key set (settings changed)."""
	with _clients_lock:
		_clients.clear()


def _key(policy: TokenPolicy, header: dict):
	alg = header.get("alg")
	if alg in SYMMETRIC:
		if not policy.hs256_secret:
			raise TokenError("algorithm", f"{alg} tokens are not accepted here (no shared secret is set)")
		return policy.hs256_secret
	if alg in ASYMMETRIC:
		if not policy.jwks_url:
			raise TokenError("algorithm", f"{alg} tokens are not accepted here (no JWKS URL is set)")
		try:
			found = _client(policy).signing_key(header.get("kid"))
		except PyJWKClientConnectionError as e:
			raise TokenError("unavailable", f"the issuer's keys could not be fetched: {e}") from None
		except PyJWKClientError as e:
			raise TokenError("key", f"the issuer's key set is unusable: {e}") from None
		if found is None:
			raise TokenError("key", f"no key with id {header.get('kid')!r} in the issuer's key set")
		return found.key
	raise TokenError("algorithm", f"algorithm {alg!r} is not accepted")


def verify(token: str, policy: TokenPolicy) -> dict:
	"""The token's claims when it is valid under `policy`; TokenError otherwise."""
	if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_BYTES:
		raise TokenError("malformed", "the bearer token is empty or too long")
	try:
		header = jwt.get_unverified_header(token)
	except jwt.DecodeError:
		raise TokenError("malformed", "the bearer token is not a JWT") from None
	key = _key(policy, header)
	options = {
		"require": ["exp", "sub"] + (["iss"] if policy.issuer else []) + (["aud"] if policy.audience else [])
	}
	try:
		claims = jwt.decode(
			token,
			key,
			algorithms=[header["alg"]],
			audience=policy.audience,
			issuer=policy.issuer,
			leeway=policy.leeway,
			options=options,
		)
	except jwt.ExpiredSignatureError:
		raise TokenError("expired", "the token has expired") from None
	except jwt.ImmatureSignatureError:
		raise TokenError("expired", "the token is not valid yet (nbf or iat in the future)") from None
	except jwt.InvalidAudienceError:
		raise TokenError("audience", f"the token is not for this audience ({policy.audience})") from None
	except jwt.InvalidIssuerError:
		raise TokenError("issuer", f"the token was not issued by {policy.issuer}") from None
	except jwt.InvalidSignatureError:
		raise TokenError("signature", "the token's signature does not verify") from None
	except jwt.MissingRequiredClaimError as e:
		raise TokenError("claims", f"the token has no {e.claim} claim") from None
	except jwt.InvalidTokenError as e:
		raise TokenError("malformed", f"the token is invalid: {e}") from None
	if not isinstance(claims.get("sub"), str) or not claims["sub"].strip():
		raise TokenError("claims", "the token's sub claim is empty")
	return claims


def verified_email(claims: dict) -> str | None:
	"""The email a token vouches for: OIDC's email with email_verified true, or Supabase's email of an
	authenticated user whose user_metadata.email_verified (or email_confirmed_at) says so."""
	email = claims.get("email")
	if not isinstance(email, str) or "@" not in email:
		return None
	if claims.get("email_verified") is True:
		return email.strip().lower()
	meta = claims.get("user_metadata") if isinstance(claims.get("user_metadata"), dict) else {}
	if meta.get("email_verified") is True or claims.get("email_confirmed_at"):
		return email.strip().lower()
	return None
