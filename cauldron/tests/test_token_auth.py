"""Bench tier: REST and RPC accept `Authorization: Bearer <JWT>` from Supabase (HS256 secret) or an OIDC
provider (JWKS on a loopback HTTP server); bad tokens are 401s saying why; a mapped token acts as its
User with that User's roles only; a first sign-in creates the User when the settings allow it."""

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import frappe
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from frappe.tests.test_api import make_request
from frappe.tests.utils import FrappeTestCase
from jwt.algorithms import RSAAlgorithm

from cauldron.auth import tokens
from cauldron.tests.factories import CLIENT, drop_user, user_with_roles

ISSUER = "https://project.supabase.co/auth/v1"
SECRET = "bench-tier-jwt-secret-of-at-least-thirty-two-characters"
MAPPED = "cauldron-token-user@example.com"
NEW = "cauldron-token-newcomer@example.com"
WHOAMI = "/api/method/frappe.auth.get_logged_user"


def call(path: str, token: str | None = None, scheme: str = "Bearer"):
	headers = {"Authorization": f"{scheme} {token}"} if token else {}
	return make_request(target=CLIENT.get, args=(path,), kwargs={"headers": headers})


class KeyServer:
	def __init__(self):
		self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
		jwk = {**json.loads(RSAAlgorithm.to_jwk(self.private.public_key())), "kid": "bench-1", "alg": "RS256"}
		body = json.dumps({"keys": [jwk]}).encode()

		class Handler(BaseHTTPRequestHandler):
			def do_GET(self):
				self.send_response(200)
				self.send_header("Content-Type", "application/json")
				self.send_header("Content-Length", str(len(body)))
				self.end_headers()
				self.wfile.write(body)

			def log_message(self, *args):
				pass

		self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
		threading.Thread(target=self.server.serve_forever, daemon=True).start()
		self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"


class TestTokenAuth(FrappeTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.keys = KeyServer()
		cls.sub = str(uuid.uuid4())
		user_with_roles(MAPPED, "Lore Reader") if frappe.db.exists(
			"Role", "Lore Reader"
		) else user_with_roles(MAPPED)
		frappe.get_doc(
			{"doctype": "Cauldron Auth User Mapping", "auth_user_id": cls.sub, "user": MAPPED}
		).insert(ignore_permissions=True)
		cls.configure(create_users=0)

	@classmethod
	def configure(cls, create_users: int):
		settings = frappe.get_doc("Cauldron Settings")
		settings.update(
			{
				"token_auth_enabled": 1,
				"token_issuer": ISSUER,
				"token_audience": "authenticated",
				"token_jwks_url": cls.keys.url,
				"token_jwt_secret": SECRET,
				"token_leeway": 30,
				"token_create_users": create_users,
				"token_default_roles": "",
			}
		)
		settings.save(ignore_permissions=True)
		frappe.db.commit()
		tokens.forget_keys()

	@classmethod
	def tearDownClass(cls):
		settings = frappe.get_doc("Cauldron Settings")
		settings.token_auth_enabled = 0
		settings.token_create_users = 0
		settings.save(ignore_permissions=True)
		for mapping in frappe.get_all(
			"Cauldron Auth User Mapping", filters={"user": ("in", [MAPPED, NEW])}, pluck="name"
		):
			frappe.delete_doc("Cauldron Auth User Mapping", mapping, ignore_permissions=True, force=True)
		drop_user(MAPPED)
		drop_user(NEW)
		frappe.db.commit()
		cls.keys.server.shutdown()
		super().tearDownClass()

	def claims(self, **kw):
		now = int(time.time())
		base = {"sub": self.sub, "iss": ISSUER, "aud": "authenticated", "exp": now + 300, "iat": now}
		base.update(kw)
		return {k: v for k, v in base.items() if v is not None}

	def hs(self, **kw):
		return jwt.encode(self.claims(**kw), SECRET, algorithm="HS256")

	def rs(self, **kw):
		return jwt.encode(self.claims(**kw), self.keys.private, algorithm="RS256", headers={"kid": "bench-1"})

	def test_hs256_and_jwks_tokens_sign_in_as_the_mapped_user(self):
		for token in (self.hs(), self.rs()):
			response = call(WHOAMI, token)
			self.assertEqual(response.status_code, 200, response.json)
			self.assertEqual(response.json["message"], MAPPED)

	def test_a_token_grants_only_its_users_roles(self):
		response = call("/api/resource/Cauldron Settings/Cauldron Settings", self.hs())
		self.assertEqual(response.status_code, 403)

	def test_bad_tokens_are_401s_saying_why(self):
		stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
		cases = {
			"expired": self.hs(exp=int(time.time()) - 3600),
			"audience": self.hs(aud="another-project"),
			"issuer": self.hs(iss="https://evil.example/auth/v1"),
			"signature": jwt.encode(
				self.claims(), "a-different-secret-of-at-least-thirty-two-chars", algorithm="HS256"
			),
			"algorithm": jwt.encode(self.claims(), None, algorithm="none"),
			"key": jwt.encode(self.claims(), stranger, algorithm="RS256", headers={"kid": "unknown-kid"}),
		}
		for reason, token in cases.items():
			with self.subTest(reason):
				response = call(WHOAMI, token)
				self.assertEqual(response.status_code, 401, response.json)
				self.assertNotIn(MAPPED, json.dumps(response.json))

	def test_an_unmapped_token_is_refused_unless_sign_up_is_allowed(self):
		sub = str(uuid.uuid4())
		token = self.hs(sub=sub, email=NEW, email_verified=True)
		refused = call(WHOAMI, token)
		self.assertEqual(refused.status_code, 401)
		self.assertIn("No user is mapped", json.dumps(refused.json))
		self.assertFalse(frappe.db.exists("User", NEW))
		self.configure(create_users=1)
		try:
			unverified = call(WHOAMI, self.hs(sub=str(uuid.uuid4()), email="x-" + NEW))
			self.assertEqual(unverified.status_code, 401)
			created = call(WHOAMI, token)
			self.assertEqual(created.status_code, 200, created.json)
			self.assertEqual(created.json["message"], NEW)
			frappe.db.rollback()
			self.assertEqual(
				frappe.db.get_value("Cauldron Auth User Mapping", {"auth_user_id": sub}, "user"), NEW
			)
			self.assertEqual(call(WHOAMI, token).json["message"], NEW)  # the second time, by the mapping
		finally:
			self.configure(create_users=0)

	def test_frappe_api_keys_and_guests_still_work(self):
		key = user_with_roles("cauldron-token-apikey@example.com")
		frappe.db.commit()
		try:
			response = call(WHOAMI, key, scheme="token")
			self.assertEqual(response.json["message"], "cauldron-token-apikey@example.com")
			# no Authorization header: a Guest, whom get_logged_user does not answer
			self.assertEqual(call(WHOAMI).status_code, 403)
		finally:
			drop_user("cauldron-token-apikey@example.com")
			frappe.db.commit()

	def test_a_disabled_users_token_is_refused(self):
		frappe.db.set_value("User", MAPPED, "enabled", 0)
		frappe.db.commit()
		try:
			response = call(WHOAMI, self.hs())
			self.assertEqual(response.status_code, 401)
		finally:
			frappe.db.set_value("User", MAPPED, "enabled", 1)
			frappe.db.commit()
