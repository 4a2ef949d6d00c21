"""Synapse endpoints (/api/method/cauldron.api.synapse.<name>).

`write` takes metrics as InfluxDB line protocol or a JSON batch (cauldron.synapse.ingest says what
each becomes in synapse.metrics, and the limits per request) and writes them in the request's
transaction with one COPY: a batch with a bad line writes nothing and answers 417 with each bad
line's number and why.

Telegraf's HTTP output posts line protocol as the raw body (text/plain), which Frappe does not put
into the request's parameters: `data` then comes from the body itself, and `precision` from the
query string (`...synapse.write?precision=s`). A JSON list posted as application/json arrives as
`data`; so does `{"data": [...], "precision": "s"}`.

Who may write: the roles in WRITER_ROLES, through Frappe's API keys (`Authorization: token
key:secret`) or a session; every other user, Guest included, is refused (403) before the body is
read. (Synapse Analyst, the Synapse area's role, rather than a role of its own: give an agent's user
that role and nothing else.)
"""

import frappe

from cauldron import db, params
from cauldron.synapse import ingest

WRITER_ROLES = ("Synapse Analyst", "System Manager")


@frappe.whitelist(methods=["POST"])
@params.checked()
def write(data=None, precision: str = "ns") -> int:
	"""Write the points of `data` (line protocol text or a JSON list of points; the request body
	when absent); returns how many points were written."""
	if set(WRITER_ROLES).isdisjoint(frappe.get_roles()):
		raise frappe.PermissionError(f"Writing metrics needs one of the roles {', '.join(WRITER_ROLES)}")
	if data is None:
		data = frappe.request.get_data() if frappe.request else b""
	with params.refused():
		return ingest.write(db.cursor(), data, precision or "ns")
