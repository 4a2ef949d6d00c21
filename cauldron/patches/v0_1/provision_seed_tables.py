from cauldron.setup.install import provision_site


def execute():
	# aether.agent_interactions and command.sql_readers (cauldron.pg.tables)
	provision_site()
