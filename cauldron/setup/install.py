"""Install, migrate and uninstall: the one place that provisions and removes Cauldron's schemas."""

import click
import frappe

from cauldron import db
from cauldron.events import DEFAULT_EXCLUDED
from cauldron.pg import provision, views


def before_install():
	db.ensure_postgres()


def after_install():
	provision_site()
	set_default_audit_exclusions()
	create_seed_views()


def before_migrate():
	drop_seed_views()


def after_migrate():
	# Every migrate, not only when a patch line says so: a step recorded in the ledger whose objects
	# are gone (a restore without pgvector, a table dropped by hand) is re-applied here.
	provision_site()
	create_seed_views()


def set_default_audit_exclusions():
	"""Frappe's own log DocTypes are not audited unless an administrator lists otherwise."""
	settings = frappe.get_single("Cauldron Settings")
	if not settings.audit_excluded_doctypes:
		settings.audit_excluded_doctypes = "\n".join(DEFAULT_EXCLUDED)
		settings.save()
		frappe.db.commit()


def provision_site() -> provision.Result:
	"""Create or complete Cauldron's schemas and tables; safe to run any number of times.

	Without pgvector or TimescaleDB the install still succeeds: what needs them is skipped or
	takes the native path, and the summary names the SQL a DBA runs.
	"""
	result = provision.provision(db.cursor(), db.settings())
	frappe.db.commit()
	click.echo(result.summary())
	if result.by_status("changed"):
		click.secho(
			"Some provisioning steps differ from what this site applied; see `bench --site "
			f"{frappe.local.site} cauldron doctor`.",
			fg="yellow",
		)
	return result


def create_seed_views() -> list[views.Skipped]:
	"""(Re)create the views that show every seed table under its seed name and columns, and give
	them back to this site's reader roles (revoking any reader that is not this site's own)."""
	skipped = views.create_views(db.cursor())
	frappe.db.commit()
	for view in skipped:
		click.secho(f"{view.relation}: {view.reason}", fg="yellow")
	return skipped


def drop_seed_views() -> list[str]:
	dropped = views.drop_views(db.cursor())
	frappe.db.commit()
	return dropped


def grant_sql_reader(role: str) -> list[views.Skipped]:
	"""Let the database role `role` read the seed views and tables, now and after every migrate."""
	skipped = views.grant_reader(db.cursor(), role)
	frappe.db.commit()
	for relation in skipped:
		click.secho(f"{role}: {relation.reason}", fg="yellow")
	return skipped


def before_uninstall():
	# Before Frappe drops the DocType tables: views over them would make those DROPs fail.
	drop_seed_views()
	dropped = provision.drop_schemas(db.cursor())
	frappe.db.commit()
	click.echo(f"Dropped Cauldron schemas: {', '.join(dropped) or 'none'}")
