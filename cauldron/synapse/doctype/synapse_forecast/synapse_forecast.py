"""Synapse Forecast: a model fitted on its metric's series (cauldron.synapse.background runs it,
cauldron.synapse.forecast fits it)."""

import frappe
from frappe import _

from cauldron import db, params
from cauldron.model import UUIDNamedDocument, check_range
from cauldron.synapse import background, forecast

# A change to one of these refits an active forecast.
FITTED_FROM = ("metric", "forecast_model", "forecast_horizon", "forecast_parameters", "is_active")


class SynapseForecast(UUIDNamedDocument):
	def before_validate(self):
		if not self.forecast_data:
			self.forecast_data = "{}"  # NOT NULL in the seed; the first fit fills it
		super().before_validate()

	def validate(self):
		check_range(self, "forecast_horizon", 1, forecast.MAX_HORIZON)
		with params.refused(_("Invalid forecast")):
			forecast.check_model(self.forecast_model)
			background.forecast_settings(self.forecast_parameters)
		if self.is_active:
			self.check_one_active()
		if self.is_active and self.refit_needed():
			self.status = "running"
			self.last_error = None

	def check_one_active(self):
		other = frappe.db.exists(
			"Synapse Forecast",
			{
				"metric": self.metric,
				"forecast_model": self.forecast_model,
				"is_active": 1,
				"name": ("!=", self.name),
			},
		)
		if other:
			frappe.throw(
				_(
					"Forecast {0} is already the active {1} forecast of this metric: deactivate it first."
				).format(frappe.bold(other), self.forecast_model),
				frappe.UniqueValidationError,
				title=_("One active forecast per metric and model"),
			)

	def refit_needed(self) -> bool:
		if self.flags.from_synapse_run:
			return False
		before = self.get_doc_before_save()
		return before is None or any(self.has_value_changed(f) for f in FITTED_FROM)

	def on_update(self):
		if self.is_active and self.status == "running" and self.refit_needed():
			background.request_run("forecast", self.name)


def on_doctype_update():
	# One active forecast per metric and model, settled in the database when two saves race.
	db.cursor().execute(
		'CREATE UNIQUE INDEX IF NOT EXISTS synapse_forecast_one_active_key ON "tabSynapse Forecast"'
		" (metric, forecast_model) WHERE is_active = 1"
	)
