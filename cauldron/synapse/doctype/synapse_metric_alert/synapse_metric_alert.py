import frappe
from frappe import _

from cauldron.model import UUIDNamedDocument


class SynapseMetricAlert(UUIDNamedDocument):
	"""A change of alert state, recorded by cauldron.synapse.jobs (which sets flags.from_evaluation):
	history, so never made by hand nor changed afterwards (deleting old ones is allowed)."""

	def validate(self):
		if self.is_new() and not self.flags.from_evaluation:
			frappe.throw(_("Metric alerts are recorded by the evaluation of their metric, not by hand."))
		if not self.is_new():
			frappe.throw(_("A metric alert is a record of what happened and cannot be changed."))
