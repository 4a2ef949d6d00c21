"""Cauldron's Postgres layer.

Framework-free: every function takes a psycopg2 connection or cursor, so the same code runs from an
install hook, a patch, a bench command, a scheduled job and a pytest test. Inside Frappe the cursor
comes from the site's own connection (same transaction); see cauldron.setup.install.
"""


class CauldronDBError(Exception):
	"""An error a user or DBA can act on; the message says what to do."""
