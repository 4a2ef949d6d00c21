"""`bench --site SITE cauldron restore`: Frappe's restore, with Cauldron's step around the load.

Frappe restores a Postgres site by dropping and creating its database as the superuser, then
loading the dump with psql as the site's own user, which is no superuser and carries on past
errors: `CREATE EXTENSION vector` fails, and every table with a vector column is lost with its
rows. Here the superuser also creates the dump's extensions in the new, empty database before the
load (and runs TimescaleDB's documented `timescaledb_pre_restore()` / `timescaledb_post_restore()`
around it), then the site is provisioned and its seed views and reader grants are made again.
"""

from contextlib import contextmanager

import click
import frappe

from cauldron import db
from cauldron.pg import provision


@contextmanager
def extensions_before_load(username: str, password: str | None):
	"""While active, Frappe's Postgres bootstrap (the load of a dump into the database it has just
	created) is preceded by provision.prepare_restore and followed by provision.finish_restore."""
	import frappe.database.postgres.setup_db as setup_db

	original = setup_db.bootstrap_database

	def bootstrap_database(verbose=None, source_sql=None):
		if not source_sql:
			return original(verbose, source_sql)
		extensions = provision.dump_extensions(source_sql)
		with db.cursor_as(username, password) as cur:
			created = provision.prepare_restore(cur, extensions)
		click.echo(f"Created before the load, as {username}: {', '.join(created) or 'no extension needed'}")
		try:
			return original(verbose, source_sql)
		finally:
			with db.cursor_as(username, password) as cur:
				provision.finish_restore(cur)

	setup_db.bootstrap_database = bootstrap_database
	try:
		yield
	finally:
		setup_db.bootstrap_database = original


def restore(site: str, sql_file_path: str, db_root_username: str, db_root_password: str, **options):
	"""Restore `site` from a Frappe backup (Frappe's own restore, options as `bench restore`'s),
	keeping every Cauldron relation; then provision, seed views and reader grants."""
	from frappe.commands.site import _restore
	from frappe.utils.synchronization import filelock

	frappe.init(site=site)
	if frappe.conf.db_type != "postgres":
		raise click.ClickException(f"{site} is not a PostgreSQL site: use `bench --site {site} restore`")
	with filelock("site_restore", timeout=1), extensions_before_load(db_root_username, db_root_password):
		_restore(
			site=site,
			sql_file_path=sql_file_path,
			db_root_username=db_root_username,
			db_root_password=db_root_password,
			**options,
		)
	frappe.destroy()
	frappe.init(site=site)
	frappe.connect()
	try:
		from cauldron.setup.install import create_seed_views, provision_site

		if "cauldron" in frappe.get_installed_apps():
			provision_site()
			create_seed_views()
	finally:
		frappe.destroy()
