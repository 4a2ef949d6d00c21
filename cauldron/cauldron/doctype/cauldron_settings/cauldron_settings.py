import json

import frappe
from frappe import _
from frappe.model.document import Document

from cauldron import db
from cauldron.api import lore
from cauldron.lore import ingest, providers
from cauldron.pg import CauldronDBError, timeseries, vectors


class CauldronSettings(Document):
	def before_validate(self):
		# A mandatory field added by an upgrade has no value yet in an existing site's settings (a
		# Single gets its defaults only when first created): take its default, or no save succeeds.
		for df in self.meta.fields:
			if df.reqd and df.default and self.get(df.fieldname) in (None, ""):
				self.set(df.fieldname, df.default)

	def validate(self):
		try:
			vectors.check_dimension(self.embedding_dimension)
		except vectors.VectorDimensionError as e:
			frappe.throw(str(e), title=_("Invalid embedding dimension"))
		try:
			for table in timeseries.TABLES:
				timeseries.retention(db.settings(self).retention_days, table)
		except CauldronDBError as e:
			frappe.throw(str(e), title=_("Invalid retention"))
		try:
			current = vectors.table_dimension(db.cursor())
		except vectors.VectorsUnavailable:
			current = None
		if current is not None and current != self.embedding_dimension:
			frappe.throw(
				_(
					"The embedding dimension is fixed at {0} because Lore's vector tables exist. "
					"Re-embedding into another dimension is a migration of its own."
				).format(current),
				title=_("Embedding dimension is fixed"),
			)
		self.validate_embedding_provider(vectors_exist=current is not None)
		self.validate_token_sign_in()

	def validate_embedding_provider(self, vectors_exist: bool):
		"""The provider must be buildable from these values (URL, model, dimension, timeout, batch
		size: cauldron.lore.providers says what is wrong). When the model changes, the provider of the
		model search answers from is kept (its API key in a Password field) until the new one is built."""
		settings = lore.provider_settings(self, self.get_password("embedding_api_key", raise_exception=False))
		try:
			if settings["provider"] == "local":  # checked without loading the model into this process
				if settings["dimension"] != providers.LOCAL_DIMENSION:
					raise providers.ProviderError(
						f"the local model makes {providers.LOCAL_DIMENSION}-dimensional vectors, not"
						f" {settings['dimension']}; choose an HTTP provider for another dimension"
					)
				providers.local_model_files()
				self._embedding_model = providers.LOCAL_MODEL
			else:
				self._embedding_model = providers.provider_from_settings(settings).model
		except providers.ProviderError as e:
			frappe.throw(str(e), title=_("Invalid embedding provider"))
		before = self.get_doc_before_save()
		if not vectors_exist or before is None:
			return
		old = lore.provider_settings(before, lore._saved_password("embedding_api_key"))
		if lore.model_of(old) == self._embedding_model:
			return
		if lore.model_of(old) == ingest.active_model(db.cursor()):
			# the model search answers from: workers keep its vectors current until the switch completes
			self.embedding_previous_api_key = old.pop("api_key") or None
			self.embedding_previous_settings = json.dumps(old)

	def validate_token_sign_in(self):
		if not self.token_auth_enabled:
			return
		from cauldron.auth import tokens

		secret = self.get_password("token_jwt_secret", raise_exception=False)
		try:
			tokens.TokenPolicy(
				issuer=self.token_issuer, hs256_secret=secret or None, jwks_url=self.token_jwks_url or None
			)
		except tokens.TokenError as e:
			frappe.throw(str(e), title=_("Invalid token sign-in"))
		unknown = [
			r
			for r in (self.token_default_roles or "").splitlines()
			if r.strip() and not frappe.db.exists("Role", r.strip())
		]
		if unknown:
			frappe.throw(_("Unknown role {0} in Roles of New Users.").format(frappe.bold(unknown[0])))

	def on_update(self):
		from cauldron.auth import tokens

		tokens.forget_keys()
		# from this document: the cached Cauldron Settings still holds the values before this save
		timeseries.apply_retention_policies(db.cursor(), db.settings(self).retention_days)
		self.switch_embedding_model()

	def switch_embedding_model(self):
		"""A new model: every document is embedded again with it in the background; search answers
		from the old vectors until the new set is complete (cauldron.lore.ingest.switch_model)."""
		model = getattr(self, "_embedding_model", None)
		cur = db.cursor()
		try:
			active, building = ingest.active_model(cur), ingest.building_model(cur)
		except vectors.VectorsUnavailable:
			return
		if not model or model == building or (model == active and building is None):
			return
		queued = ingest.switch_model(cur, model, self.embedding_dimension)
		if not active:
			# the first model: every document needs its vectors, not only those with a caller's
			queued = lore.enqueue_documents(frappe.get_all(lore.DOCTYPE, pluck="name"))
		elif queued:
			lore.wake_worker()
		if model != active:
			frappe.msgprint(
				_(
					"{0} documents and entities will be embedded with {1} in the background; search"
					" answers from the current vectors until they are all done."
				).format(queued, model),
				title=_("Embedding model changed"),
				alert=True,
			)
