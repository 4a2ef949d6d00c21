"""The seed's SQL surface on real Postgres: every seed table readable under its seed name with the
seed's columns and types, rows shown in the seed's shape, the views' lifecycle, and the read-only role.
"""

import uuid
from datetime import datetime, timezone

import pytest
import seed_schema
from frappe_tables import create_site_tables
from psycopg2 import errors, sql

from cauldron.pg import provision, tables, vectors, views

# Where a view's column type knowingly differs from the seed's.
VIEW_TYPE_EXCEPTIONS = {
	# the embedding dimension is a site setting (Cauldron Settings), 384 by default
	("lore.entities", "embedding"): "vector(384)",
}


@pytest.fixture
def site(timeseries_path, db, settings):
	"""(database, connection as the site role) with Frappe-shaped tables, provisioned on each
	time-series path, with views."""
	conn = db.connect()
	with conn.cursor() as cur:
		create_site_tables(cur)
		provision.provision(cur, settings)
		assert views.create_views(cur) == []
	conn.commit()
	return db, conn


def columns(cur, relation: str) -> list[tuple[str, str]]:
	cur.execute(
		"""
		SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
		WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
		""",
		(relation,),
	)
	return cur.fetchall()


def relkind(cur, relation: str) -> str | None:
	cur.execute(
		"SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
		" WHERE n.nspname = %s AND c.relname = %s",
		tuple(relation.split(".")),
	)
	row = cur.fetchone()
	return row[0] if row else None


def test_every_seed_table_is_readable_under_its_seed_name_with_its_columns(site):
	_db, conn = site
	cur = conn.cursor()
	seed = seed_schema.tables()
	assert len(seed) == 35
	for relation, table in seed.items():
		kind = relkind(cur, relation)
		assert kind is not None, f"{relation} is missing"
		actual = columns(cur, relation)
		if kind == "v":
			expected = [(c.name, VIEW_TYPE_EXCEPTIONS.get((relation, c.name), c.type)) for c in table.columns]
			assert actual == expected, relation
		else:
			assert relation in views.TABLES, f"{relation} is a table but not listed as one"
			assert set(table.names) <= {name for name, _type in actual}, relation
			assert list(views.TABLE_COLUMNS[relation]) == table.names, relation
	assert {v.relation for v in views.all_views(cur)} | set(views.TABLES) == set(seed)


def test_views_show_doctype_rows_in_the_seed_shape(site):
	_db, conn = site
	cur = conn.cursor()
	org = "0b7c1c2e-8f1e-4d5a-9c3b-111111111111"
	team = "0b7c1c2e-8f1e-4d5a-9c3b-222222222222"
	# Frappe keeps naive local time of the site's zone (America/New_York here, UTC-5 in January).
	cur.execute(
		"""INSERT INTO "tabCauldron Organization" (name, organization_name, domain, creation, modified)
		VALUES (%s, 'Acme', 'acme.test', '2026-01-15 10:00:00', '2026-01-15 11:30:00')""",
		(org,),
	)
	cur.execute(
		"""INSERT INTO "tabCauldron Team" (name, organization, team_name, creation, modified)
		VALUES (%s, %s, 'Ops', '2026-01-15 10:00:00', '2026-01-15 10:00:00')""",
		(team, org),
	)
	cur.execute(
		"""INSERT INTO "tabCauldron Team Member" (name, team, "user", is_team_admin, creation)
		VALUES (gen_random_uuid()::text, %s, 'ada@example.com', 1, now())""",
		(team,),
	)
	cur.execute(
		"""INSERT INTO "tabAegis Security Playbook" (name, playbook_name, steps, trigger_conditions)
		VALUES (gen_random_uuid()::text, 'Contain', '[{"run": "isolate"}]', '{}')"""
	)
	cur.execute("SELECT id, name, domain, created_at, updated_at FROM core.organizations")
	assert cur.fetchone() == (
		org,
		"Acme",
		"acme.test",
		datetime(2026, 1, 15, 15, 0, tzinfo=timezone.utc),
		datetime(2026, 1, 15, 16, 30, tzinfo=timezone.utc),
	)
	cur.execute(
		"""SELECT t.name, m.is_team_admin, m.user_id = md5('User:ada@example.com')::uuid
		FROM core.teams t JOIN core.team_members m ON m.team_id = t.id
		JOIN core.organizations o ON o.id = t.organization_id"""
	)
	assert cur.fetchone() == ("Ops", True, True)
	cur.execute("SELECT steps, jsonb_typeof(trigger_conditions) FROM aegis.security_playbooks")
	assert cur.fetchone() == ([{"run": "isolate"}], "object")


def test_identity_views_never_show_a_secret(site):
	_db, conn = site
	cur = conn.cursor()
	cur.execute(
		"""INSERT INTO "tabUser" (name, email, full_name, enabled, last_login, creation, modified)
		VALUES ('ada@example.com', 'ada@example.com', 'Ada', 1, '2026-07-01 09:00:00.5', now(), now())"""
	)
	cur.execute("""INSERT INTO "tabRole" (name, role_name) VALUES ('System Manager', 'System Manager')""")
	cur.execute(
		"""INSERT INTO "tabHas Role" (name, parent, parenttype, parentfield, role)
		VALUES ('hr1', 'ada@example.com', 'User', 'roles', 'System Manager')"""
	)
	cur.execute("SELECT username, password_hash, is_system_admin, last_login FROM core.users")
	# July: New York is UTC-4
	assert cur.fetchone() == (
		"ada@example.com",
		None,
		True,
		datetime(2026, 7, 1, 13, 0, 0, 500000, tzinfo=timezone.utc),
	)
	cur.execute(
		"SELECT encrypted_password, confirmation_token, recovery_token, raw_app_meta_data->'roles' FROM auth.users"
	)
	assert cur.fetchone() == (None, None, None, ["System Manager"])
	cur.execute(
		"SELECT u.email, r.name FROM core.user_roles ur JOIN core.users u ON u.id = ur.user_id"
		" JOIN core.roles r ON r.id = ur.role_id"
	)
	assert cur.fetchall() == [("ada@example.com", "System Manager")]


def test_custom_docperms_replace_the_standard_ones_as_in_frappe(site):
	_db, conn = site
	cur = conn.cursor()
	cur.execute(
		"""INSERT INTO "tabDocPerm" (name, parent, parenttype, parentfield, role, "read", "write")
		VALUES ('p1', 'Lore Document', 'DocType', 'permissions', 'Knowledge Editor', 1, 1),
			('p2', 'Aegis Threat', 'DocType', 'permissions', 'Security Analyst', 1, 1)"""
	)
	cur.execute(
		"""INSERT INTO "tabCustom DocPerm" (name, parent, role, "read") VALUES ('c1', 'Aegis Threat', 'Guest', 1)"""
	)
	cur.execute(
		"SELECT resource_type, role_id = md5('Role:' || %s)::uuid, can_read, can_write"
		" FROM core.permissions ORDER BY 1",
		("Guest",),
	)
	assert cur.fetchall() == [("Aegis Threat", True, True, False), ("Lore Document", False, True, True)]


def test_views_are_recreated_idempotently_and_dropped_cleanly(site):
	_db, conn = site
	cur = conn.cursor()
	cur.execute("CREATE VIEW lore.my_report AS SELECT 1 AS one")
	before = views.existing_views(cur)
	assert len(before) == len(views.all_views(cur))
	assert views.create_views(cur) == []
	assert views.existing_views(cur) == before
	assert views.drop_views(cur) == before
	assert views.existing_views(cur) == []
	assert relkind(cur, "lore.my_report") == "v", "a view Cauldron did not make is left alone"
	# With the views gone, Frappe's migrate may change the DocType tables again.
	cur.execute('ALTER TABLE "tabLore Document" ALTER COLUMN source_type TYPE varchar(60)')


def test_a_schema_cauldron_does_not_own_keeps_its_relations(db):
	"""Supabase keeps its own auth.users: the view is skipped and named, the rest are created."""
	with db.admin().cursor() as admin:
		admin.execute("CREATE SCHEMA auth")
		admin.execute("CREATE TABLE auth.users (id uuid PRIMARY KEY)")
		admin.execute("CREATE SCHEMA storage")  # owned by the superuser: no CREATE for the site
	conn = db.connect()
	cur = conn.cursor()
	create_site_tables(cur)
	provision.provision(cur)
	skipped = {s.relation: s.reason for s in views.create_views(cur)}
	conn.commit()
	assert skipped.keys() == {"auth.users", "storage.buckets", "storage.objects"}
	assert "is not Cauldron's" in skipped["auth.users"]
	assert "permission denied" in skipped["storage.buckets"]
	assert relkind(cur, "auth.users") == "r"
	assert relkind(cur, "core.users") == "v"


def test_the_reader_role_reads_the_seed_surface_and_nothing_else(site):
	db, conn = site
	role = views.reader_role_name(db.name)
	with db.admin().cursor() as admin:
		admin.execute(f"DROP ROLE IF EXISTS {role}")
		assert views.create_reader_role(admin, role)
		assert not views.create_reader_role(admin, role)
	try:
		cur = conn.cursor()
		assert views.grant_reader(cur, role) == []
		# A migrate drops and recreates the views: the recorded role gets them back.
		views.drop_views(cur)
		views.create_views(cur)
		conn.commit()

		reader = db.admin()
		rcur = reader.cursor()
		rcur.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
		for relation, table in seed_schema.tables().items():
			rcur.execute(
				sql.SQL("SELECT {} FROM {} LIMIT 1").format(
					sql.SQL(", ").join(map(sql.Identifier, table.names)),
					sql.Identifier(*relation.split(".")),
				)
			)
		for forbidden in (
			'SELECT * FROM "tabUser"',
			'SELECT * FROM "tabLore Knowledge Source"',
			"SELECT * FROM command.ddl_ledger",
			"SELECT * FROM lore.entity_embeddings",
			"SELECT pii_salt FROM core.audit_log",
			"SELECT * FROM core.audit_chain_head",
		):
			with pytest.raises(errors.InsufficientPrivilege):
				rcur.execute(forbidden)
			reader.rollback()
			rcur.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
		reader.rollback()
	finally:
		with db.admin().cursor() as admin:
			admin.execute(f"DROP OWNED BY {role}")
			admin.execute(f"DROP ROLE {role}")


def test_agent_interactions_are_written_in_one_batch_and_checked_first(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	instance = "7d0f2d4e-1c1b-4d7e-9a55-0123456789ab"
	session = "5f1e0c3a-2b2b-4c4c-8d8d-0123456789ab"
	ids = tables.write_agent_interactions(
		cur,
		[
			tables.AgentInteraction(session, instance, "user_message", {"text": "hello"}),
			tables.AgentInteraction(session, instance, "tool_call", ["search", {"q": "x"}], {"ms": 12}),
		],
	)
	assert len(ids) == 2
	cur.execute(
		"SELECT id::text, interaction_type, content, metadata FROM aether.agent_interactions ORDER BY created_at, id"
	)
	rows = {row[0]: row[1:] for row in cur.fetchall()}
	assert rows[ids[1]] == ("tool_call", ["search", {"q": "x"}], {"ms": 12})

	bad = [
		tables.AgentInteraction(session, instance, "agent_message", {"text": "ok"}),
		tables.AgentInteraction(session, "not-a-uuid", "agent_message", {"text": "lost?"}),
	]
	with pytest.raises(tables.CauldronDBError, match="agent_instance_id must be a UUID"):
		tables.write_agent_interactions(cur, bad)
	with pytest.raises(tables.CauldronDBError, match="interaction_type must be one of"):
		tables.write_agent_interactions(cur, [tables.AgentInteraction(session, instance, "shout", {})])
	with pytest.raises(tables.CauldronDBError, match="needs content"):
		tables.write_agent_interactions(cur, [tables.AgentInteraction(session, instance, "system", None)])
	cur.execute("SELECT count(*) FROM aether.agent_interactions")
	assert cur.fetchone()[0] == 2, "a failed batch writes nothing"


def test_entity_embeddings_show_through_lore_entities(site):
	_db, conn = site
	cur = conn.cursor()
	entity = str(uuid.uuid4())
	cur.execute(
		"""INSERT INTO "tabLore Entity" (name, entity_name, entity_type, metadata)
		VALUES (%s, 'Postgres', 'technology', '{"since": 1996}')""",
		(entity,),
	)
	vectors.set_entity_embedding(cur, entity, [0.5] * vectors.DEFAULT_DIMENSION)
	cur.execute("SELECT name, metadata->>'since', vector_dims(embedding) FROM lore.entities")
	assert cur.fetchone() == ("Postgres", "1996", vectors.DEFAULT_DIMENSION)
