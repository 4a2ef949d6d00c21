import frappe
from frappe import _
from frappe.model.document import Document

from cauldron import db
from cauldron.pg import CauldronDBError, timeseries, vectors


class CauldronSettings(Document):
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
		# from this document: the cached Cauldron Settings still holds the values before this save
		timeseries.apply_retention_policies(db.cursor(), db.settings(self).retention_days)
