"""bench commands: `bench --site SITE cauldron doctor | provision | verify-audit`."""

import click
import frappe
from frappe.commands import get_site, pass_context


@click.group("cauldron")
def cauldron():
	"""Cauldron's Postgres data layer."""


@cauldron.command("doctor")
@pass_context
def doctor(context):
	"""Print the database's capabilities, what is degraded, and the state of every provisioning step."""
	from cauldron import db
	from cauldron.pg import provision, timeseries

	with _site(context):
		cur = db.cursor()
		result = provision.status(cur, db.settings())
		click.echo(result.summary())
		for outcome in result.outcomes:
			click.echo(f"  {outcome.status:<9} {outcome.step}")
		path = "TimescaleDB hypertables" if timeseries.uses_timescale(cur) else "native range partitions"
		click.echo(f"time-series path: {path}")
		if result.by_status("pending"):
			click.echo(f"pending steps are applied by: bench --site {frappe.local.site} migrate")


@cauldron.command("provision")
@click.option("--db-root-username", default="postgres", show_default=True, help="A superuser of the server")
@click.option("--db-root-password", prompt=True, hide_input=True, help="Its password")
@click.option(
	"--reader-role",
	default="cauldron_reader",
	show_default=True,
	help="A NOLOGIN role to create that may read the seed-shaped views and tables and nothing else"
	" (grant it to BI or psql users); pass '' for none",
)
@pass_context
def provision_command(context, db_root_username, db_root_password, reader_role):
	"""Create vector, timescaledb and pg_stat_statements where the server offers them, in the site's
	database (as a superuser), then provision.

	Also creates the read-only role for SQL consumers; the site's own database user then grants it
	the seed views, again after every migrate.
	"""
	import psycopg2

	from cauldron.pg import capabilities, views
	from cauldron.setup.install import create_seed_views, grant_sql_reader, provision_site

	with _site(context):
		conf = frappe.conf
		root = psycopg2.connect(
			host=conf.db_host or "127.0.0.1",
			port=conf.db_port or 5432,
			dbname=conf.db_name,
			user=db_root_username,
			password=db_root_password,
		)
		try:
			with root, root.cursor() as cur:
				created = capabilities.create_extensions(cur)
				if reader_role:
					views.create_reader_role(cur, reader_role)
		finally:
			root.close()
		click.echo(f"Extensions created in {conf.db_name}: {', '.join(created) or 'none needed'}")
		provision_site()
		create_seed_views()
		if reader_role:
			grant_sql_reader(reader_role)
			click.echo(
				f"{reader_role} may read the seed views and tables (GRANT {reader_role} TO a login role)."
			)


@cauldron.command("verify-audit")
@pass_context
def verify_audit(context):
	"""Seal what is committed, then verify core.audit_log's hash chain and name the first broken row."""
	from cauldron import db
	from cauldron.pg import audit

	with _site(context):
		cur = db.cursor()
		audit.seal(cur)
		frappe.db.commit()
		result = audit.verify(cur)
		click.echo(str(result))
		if not result.ok:
			raise SystemExit(1)


class _site:
	def __init__(self, context):
		self.site = get_site(context)

	def __enter__(self):
		frappe.init(site=self.site)
		frappe.connect()

	def __exit__(self, *exc):
		frappe.destroy()


commands = [cauldron]
