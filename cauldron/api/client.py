"""Frappe's generic endpoints where Cauldron's DocTypes need more than Frappe 15 gives them, routed
here by hooks.override_whitelisted_methods. Every other DocType goes to Frappe's own, as before.

frappe.client.get_count checks no permission at all (any logged-in user counts any DocType, with
filters that probe field contents), and counts a virtual DocType or a Single from a table that does
not exist. For Cauldron's DocTypes the count here obeys read permission and Cauldron's filters.
"""

import frappe
import frappe.client
from frappe import _
from frappe.model.base_document import get_controller
from psycopg2 import DataError

from cauldron import params


def cauldron_doctype(doctype: str):
	"""The DocType's meta when it is one of Cauldron's, else None."""
	module = frappe.db.get_value("DocType", doctype, "module")
	if module and frappe.local.module_app.get(frappe.scrub(module)) == "cauldron":
		return frappe.get_meta(doctype)
	return None


@frappe.whitelist()
@params.checked(names=("doctype",))
def get_count(doctype: str, filters=None, debug=False, cache=False) -> int:
	"""frappe.client.get_count, permission-aware for Cauldron's DocTypes."""
	if not frappe.db.exists("DocType", doctype):
		frappe.throw(_("DocType {0} not found").format(frappe.bold(doctype)), frappe.DoesNotExistError)
	meta = cauldron_doctype(doctype)
	if meta is None:
		return frappe.client.get_count(doctype, filters=filters, debug=debug, cache=cache)
	frappe.has_permission(doctype, "read", throw=True)
	conditions = params.filters(filters)
	if meta.issingle:
		if conditions:
			frappe.throw(
				_("{0} is a single document: it is not counted with filters").format(_(doctype)),
				params.InvalidParameter,
			)
		return 1
	if meta.is_virtual:
		return get_controller(doctype).get_count({"doctype": doctype, "filters": filters})
	for condition in conditions:
		if not (meta.has_field(condition.fieldname) or condition.fieldname in frappe.model.default_fields):
			frappe.throw(
				_("{0} has no field {1}").format(_(doctype), frappe.bold(condition.fieldname)),
				params.InvalidParameter,
			)
	frappe.db.savepoint("cauldron_count")
	try:
		(count,) = frappe.get_list(
			doctype,
			filters=[[doctype, c.fieldname, c.operator, c.value] for c in conditions],
			fields=["count(*) as count"],
			as_list=True,
		)[0]
	except DataError as e:  # a value that does not fit its column's type
		frappe.db.rollback(save_point="cauldron_count")
		frappe.throw(
			_("A filter value does not fit its field: {0}").format(str(e).splitlines()[0]),
			params.InvalidParameter,
		)
	return count
