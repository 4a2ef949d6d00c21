"""bench commands: `bench --site SITE cauldron doctor | provision | restore | verify-audit`."""

import click
import frappe
from frappe.commands import get_site, pass_context


@click.group("cauldron")
def cauldron():
	"""Cauldron's Postgres data layer."""


@cauldron.command("doctor")
@pass_context
def doctor(context):
	"""Print the database's capabilities, what is degraded, the state of every provisioning step (and
	whether its objects exist), what each reader role can reach, and whether `bench backup` can work."""
	from cauldron import db
	from cauldron.pg import capabilities, provision, timeseries, views

	with _site(context):
		cur = db.cursor()
		result = provision.status(cur, db.settings())
		click.echo(result.summary())
		for outcome in result.outcomes:
			click.echo(f"  {outcome.status:<9} {outcome.step}")
		path = "TimescaleDB hypertables" if timeseries.uses_timescale(cur) else "native range partitions"
		click.echo(f"time-series path: {path}")
		if result.by_status("pending") or result.by_status("missing"):
			click.echo(f"pending and missing steps are applied by: bench --site {frappe.local.site} migrate")
		click.echo("reader roles:")
		for role in views.site_readers(cur):
			click.echo("  " + str(views.reader_reach(cur, role)).replace("\n", "\n  "))
		warning = capabilities.pg_dump_warning(cur)
		click.echo(f"backup: {'WARNING: ' + warning if warning else 'pg_dump on PATH matches the server'}")


@cauldron.command("provision")
@click.option("--db-root-username", default="postgres", show_default=True, help="A superuser of the server")
@click.option("--db-root-password", prompt=True, hide_input=True, help="Its password")
@click.option(
	"--reader-role",
	default=None,
	help="The NOLOGIN role to create that may read the seed-shaped views and tables of this site and"
	" nothing else (grant it to BI or psql users); default cauldron_reader_<database name>, one per"
	" site; pass '' for none",
)
@pass_context
def provision_command(context, db_root_username, db_root_password, reader_role):
	"""Create vector, timescaledb and pg_stat_statements where the server offers them, in the site's
	database (as a superuser), then provision.

	Also creates the read-only role for SQL consumers; the site's own database user then grants it
	the seed views, again after every migrate.
	"""
	from cauldron import db
	from cauldron.pg import capabilities, views
	from cauldron.setup.install import create_seed_views, grant_sql_reader, provision_site

	with _site(context):
		conf = frappe.conf
		if reader_role is None:
			reader_role = views.reader_role_name(conf.db_name)
		with db.cursor_as(db_root_username, db_root_password) as cur:
			created = capabilities.create_extensions(cur)
			if reader_role:
				views.create_reader_role(cur, reader_role)
		click.echo(f"Extensions created in {conf.db_name}: {', '.join(created) or 'none needed'}")
		provision_site()
		create_seed_views()
		if reader_role:
			try:
				grant_sql_reader(reader_role)
			except views.ReaderRoleError as e:
				raise click.ClickException(str(e)) from None
			click.echo(
				f"{reader_role} may read the seed views and tables of {conf.db_name}"
				f" (GRANT {reader_role} TO a login role)."
			)


@cauldron.command("restore")
@click.argument("sql-file-path")
@click.option("--db-root-username", help="A superuser of the server (default: root_login, or postgres)")
@click.option("--db-root-password", help="Its password (default: root_password, or prompted)")
@click.option("--admin-password", help="Administrator password of the restored site")
@click.option("--with-public-files", help="The public files' tar of the backup")
@click.option("--with-private-files", help="The private files' tar of the backup")
@click.option("--encryption-key", help="The backup's encryption key")
@click.option("--force", is_flag=True, default=False, help="As bench restore's --force")
@pass_context
def restore_command(context, sql_file_path, db_root_username, db_root_password, **options):
	"""Frappe's `bench restore` keeping every Cauldron relation: the dump's extensions (pgvector,
	TimescaleDB) are created by the superuser before the load, TimescaleDB's pre/post restore steps run
	around it, then the site is provisioned and its seed views and reader grants are made again."""
	from cauldron.setup import restore

	site = get_site(context)
	frappe.init(site=site)
	db_root_username = db_root_username or frappe.conf.root_login or "postgres"
	db_root_password = db_root_password or frappe.conf.root_password
	frappe.destroy()
	if db_root_password is None:
		db_root_password = click.prompt(f"{db_root_username}'s password", hide_input=True)
	restore.restore(
		site,
		sql_file_path,
		db_root_username,
		db_root_password,
		verbose=context.verbose,
		install_app=(),
		**options,
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
		frappe.db.rollback()
		frappe.get_attr("cauldron.aegis.signals.audit_verified")(result)  # broken: a security event
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
