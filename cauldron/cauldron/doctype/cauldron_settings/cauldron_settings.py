import frappe
from frappe import _
from frappe.model.document import Document

from cauldron import db
from cauldron.pg import timeseries, vectors


class CauldronSettings(Document):
	def validate(self):
		try:
			vectors.check_dimension(self.embedding_dimension)
		except vectors.VectorDimensionError as e:
			frappe.throw(str(e), title=_("Invalid embedding dimension"))
		try:
			current = vectors.table_dimension(db.cursor())
		except vectors.VectorsUnavailable:
			return
		if current != self.embedding_dimension:
			frappe.throw(
				_(
					"The embedding dimension is fixed at {0} because Lore's vector tables exist. "
					"Re-embedding into another dimension is a migration of its own."
				).format(current),
				title=_("Embedding dimension is fixed"),
			)

	def on_update(self):
		timeseries.apply_retention_policies(db.cursor(), db.settings().retention_days)
