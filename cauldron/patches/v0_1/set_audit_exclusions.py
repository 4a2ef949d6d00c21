from cauldron.setup.install import set_default_audit_exclusions


def execute():
	set_default_audit_exclusions()
