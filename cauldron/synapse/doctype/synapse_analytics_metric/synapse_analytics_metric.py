import frappe
from frappe import _

from cauldron.model import UUIDNamedDocument


class SynapseAnalyticsMetric(UUIDNamedDocument):
	def validate(self):
		if self.is_percentage and self.is_currency:
			frappe.throw(_("A metric is a percentage or a currency amount, not both."))
		if not self.is_currency:
			self.currency = None
		self.validate_evaluation()

	def validate_evaluation(self):
		"""The query definition parses (JSON or one SELECT) and the thresholds are in order; what
		only running it can tell (a table the reader may not read...) is the evaluation's Last Error."""
		from cauldron.synapse import jobs, metrics

		try:
			jobs.spec(self).thresholds.check()
			if (self.query_definition or "").strip():
				metrics.parse_definition(self.query_definition)
		except metrics.MetricError as e:
			frappe.throw(str(e), title=_("Invalid metric definition"))
		if self.has_value_changed("query_definition") and not self.is_new():
			self.last_error = None
