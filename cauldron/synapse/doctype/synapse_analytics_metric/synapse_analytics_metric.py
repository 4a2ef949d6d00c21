import frappe
from frappe import _

from cauldron.model import UUIDNamedDocument


class SynapseAnalyticsMetric(UUIDNamedDocument):
	def validate(self):
		if self.is_percentage and self.is_currency:
			frappe.throw(_("A metric is a percentage or a currency amount, not both."))
		if not self.is_currency:
			self.currency = None
