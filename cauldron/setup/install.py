"""Install, migrate and uninstall: the one place that provisions and removes Cauldron's schemas."""

import click
import frappe

from cauldron import db
from cauldron.events import DEFAULT_EXCLUDED
from cauldron.pg import provision


def before_install():
	db.ensure_postgres()


def after_install():
	provision_site()
	set_default_audit_exclusions()


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


def after_uninstall():
	dropped = provision.drop_schemas(db.cursor())
	frappe.db.commit()
	click.echo(f"Dropped Cauldron schemas: {', '.join(dropped) or 'none'}")
