from cauldron.setup.install import provision_site


def execute():
	provision_site()
