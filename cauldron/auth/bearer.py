"""Frappe's `auth_hooks`: sign-in with `Authorization: Bearer <JWT>` from Supabase or an OIDC provider.

Frappe runs its own checks first (OAuth bearer tokens it issued, API keys `token key:secret`); this
hook only looks at a bearer token nobody has signed in with yet, and only when Cauldron Settings
accept tokens. The token is verified by cauldron.auth.tokens; its `sub` is looked up in Cauldron Auth
User Mapping (a UUID sub as is, any other sub as the UUIDv5 of issuer and sub, so OIDC providers whose
subjects are not UUIDs map too). An unmapped token creates the User and the mapping when the settings
allow it (by the token's verified email; never for an email a User already has: an administrator
maps that one), and is refused otherwise. A refused token is a 401 saying why; the request runs as
the mapped User, with that User's roles and nothing more, for that request only (no session).
"""

import uuid

import frappe
from frappe import _

from cauldron.auth import tokens

MAPPING = "Cauldron Auth User Mapping"
BLOCKED_USERS = ("Administrator", "Guest")


def policy() -> tokens.TokenPolicy | None:
	"""The site's token policy, or None when tokens are not accepted."""
	settings = frappe.get_cached_doc("Cauldron Settings")
	if not settings.get("token_auth_enabled"):
		return None
	return tokens.TokenPolicy(
		issuer=settings.token_issuer or None,
		audience=settings.token_audience or None,
		hs256_secret=settings.get_password("token_jwt_secret", raise_exception=False) or None,
		jwks_url=settings.token_jwks_url or None,
		leeway=settings.token_leeway if settings.token_leeway is not None else 60,
	)


def auth_user_id(claims: dict, issuer: str | None) -> str:
	"""The mapping key of a token: its sub when that is a UUID (Supabase), else a UUIDv5 of issuer+sub."""
	sub = claims["sub"].strip()
	try:
		return str(uuid.UUID(sub))
	except ValueError:
		return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{issuer or claims.get('iss') or ''}#{sub}"))


def _refuse(message: str):
	frappe.throw(message, frappe.AuthenticationError, title=_("Token refused"))


def validate_bearer():
	header = frappe.get_request_header("Authorization", "") or ""
	parts = header.split(" ")
	if len(parts) != 2 or parts[0].lower() != "bearer":
		return
	if frappe.session.user not in ("", "Guest"):
		return  # Frappe's own OAuth token
	try:
		site_policy = policy()
	except tokens.TokenError as e:
		_refuse(_("Token sign-in is misconfigured: {0}").format(str(e)))
	if site_policy is None:
		return  # Frappe then answers 401 for an Authorization header nobody accepted
	try:
		claims = tokens.verify(parts[1], site_policy)
	except tokens.TokenError as e:
		_refuse(str(e))
	user = user_for(claims, site_policy)
	form_dict = frappe.local.form_dict
	frappe.set_user(user)
	frappe.local.form_dict = form_dict


def user_for(claims: dict, site_policy: tokens.TokenPolicy) -> str:
	key = auth_user_id(claims, site_policy.issuer)
	user = frappe.db.get_value(MAPPING, {"auth_user_id": key}, "user")
	if user:
		if user in BLOCKED_USERS:
			_refuse(_("This token maps to a user that cannot sign in with tokens."))
		if not frappe.db.get_value("User", user, "enabled"):
			_refuse(_("The user this token maps to is disabled."))
		return user
	settings = frappe.get_cached_doc("Cauldron Settings")
	if not settings.token_create_users:
		_refuse(_("No user is mapped to this token's subject; an administrator maps it first."))
	email = tokens.verified_email(claims)
	if not email:
		_refuse(_("This token carries no verified email, so no user can be created for it."))
	if frappe.db.exists("User", {"name": email}) or frappe.db.exists("User", {"email": email}):
		_refuse(
			_(
				"A user with the email {0} exists but is not mapped to this token; an administrator maps it."
			).format(email)
		)
	return _create_user(key, email, claims, settings)


def default_roles(settings) -> list[str]:
	roles = [r.strip() for r in (settings.token_default_roles or "").splitlines() if r.strip()]
	return [r for r in roles if r not in ("Administrator", "System Manager", "Guest", "All")]


def _create_user(key: str, email: str, claims: dict, settings) -> str:
	meta = claims.get("user_metadata") if isinstance(claims.get("user_metadata"), dict) else {}
	name = claims.get("name") or meta.get("full_name") or meta.get("name") or email.split("@")[0]
	first, _sep, last = str(name).strip().partition(" ")
	user = frappe.get_doc(
		{
			"doctype": "User",
			"email": email,
			"first_name": first[:140] or email.split("@")[0],
			"last_name": last[:140] or None,
			"send_welcome_email": 0,
			"user_type": "System User" if default_roles(settings) else "Website User",
			"roles": [{"role": r} for r in default_roles(settings) if frappe.db.exists("Role", r)],
		}
	)
	user.flags.ignore_permissions = True
	user.flags.no_welcome_mail = True
	user.insert()
	mapping = frappe.get_doc({"doctype": MAPPING, "auth_user_id": key, "user": user.name})
	mapping.flags.ignore_permissions = True
	mapping.insert()
	# the request itself may be a read: the new user and mapping must stay
	frappe.db.commit()  # nosemgrep
	return user.name
