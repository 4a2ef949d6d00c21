"""Synapse Business Simulation: a Monte Carlo model (cauldron.synapse.simulation) checked on save
and run in the background (cauldron.synapse.background) by the form's Run button."""

from frappe import _

from cauldron import params
from cauldron.model import UUIDNamedDocument
from cauldron.synapse import background, simulation


class SynapseBusinessSimulation(UUIDNamedDocument):
	def validate(self):
		if not self.model_definition:
			return  # the mandatory check says so
		# Unknown names, cycles, bad distributions and formulas: refused before anything is saved.
		with params.refused(_("Invalid simulation model")):
			simulation.parse_model(
				background.json_value(self.model_definition),
				background.json_value(self.parameters),
				background.json_value(self.scenarios),
			)
