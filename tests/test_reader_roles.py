"""Reader roles on a server shared by several sites (one database each, as Frappe does it): each
site's reader is its own role, named from its database, holding privileges there only; doctor's
view of what a reader reaches; grants lost with an uninstall are reported and given back.
"""

import uuid

import psycopg2
import pytest
from conftest import _superuser, drop_database, make_database
from frappe_tables import create_site_tables
from psycopg2 import errors, sql

from cauldron.pg import provision, views


def make_site(server_dsn):
	database = make_database(server_dsn)
	database.create_extension("vector")
	conn = database.connect()
	with conn.cursor() as cur:
		create_site_tables(cur)
		provision.provision(cur)
		assert views.create_views(cur) == []
	conn.commit()
	return database, conn


@pytest.fixture
def two_sites(server_dsn):
	a, b = make_site(server_dsn), make_site(server_dsn)
	roles = []
	yield a, b, roles
	drop_database(a[0])
	drop_database(b[0])
	with _superuser(server_dsn) as admin, admin.cursor() as cur:
		for role in [views.reader_role_name(a[0].name), views.reader_role_name(b[0].name), *roles]:
			cur.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
	admin.close()


def make_reader(database, conn) -> str:
	"""What `cauldron provision` does: the superuser creates the role, the site's user grants it."""
	role = views.reader_role_name(database.name)
	with database.admin().cursor() as admin:
		views.create_reader_role(admin, role)
	with conn.cursor() as cur:
		assert views.grant_reader(cur, role) == []
	conn.commit()
	return role


def make_login(database, reader: str, roles: list) -> psycopg2.extensions.connection:
	login = f"bi_{uuid.uuid4().hex[:8]}"
	roles.append(login)
	with database.admin().cursor() as admin:
		admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'bi'").format(sql.Identifier(login)))
		admin.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(reader), sql.Identifier(login)))
	return login


def connect_as(database, login):
	return psycopg2.connect(
		psycopg2.extensions.make_dsn(database.server_dsn, dbname=database.name, user=login, password="bi")
	)


def test_reader_role_is_named_from_the_database():
	assert views.reader_role_name("_5e5899d8398b5f7b") == "cauldron_reader__5e5899d8398b5f7b"
	long_a, long_b = "x" * 60 + "a", "x" * 60 + "b"
	assert len(views.reader_role_name(long_a).encode()) <= 63
	assert views.reader_role_name(long_a) != views.reader_role_name(long_b)


def test_a_login_granted_one_sites_reader_cannot_read_another_site(two_sites):
	(a, a_conn), (b, b_conn), roles = two_sites
	reader_a, reader_b = make_reader(a, a_conn), make_reader(b, b_conn)
	assert reader_a != reader_b
	login = make_login(a, reader_a, roles)

	with connect_as(a, login) as conn, conn.cursor() as cur:
		cur.execute("SELECT count(*) FROM core.users")
		cur.execute("SELECT count(*) FROM core.audit_log")
	conn.close()
	# Site B's database: PUBLIC may connect (the DBA's business), but nothing there is readable.
	conn = connect_as(b, login)
	for query in ("SELECT count(*) FROM core.users", "SELECT id FROM core.audit_log"):
		with pytest.raises(errors.InsufficientPrivilege), conn.cursor() as cur:
			cur.execute(query)
		conn.rollback()
	conn.close()

	reach = views.reader_reach(a_conn.cursor(), reader_a)
	assert reach.exists and not reach.login
	assert reach.members == (login,)
	assert reach.databases == ()
	assert reach.readable == reach.surface > 30
	assert reach.other_relations == ()
	assert a.name in reach.connect
	assert reach.problems() == []


def test_another_sites_reader_is_refused(two_sites):
	(a, a_conn), (b, b_conn), _roles = two_sites
	reader_a = make_reader(a, a_conn)
	cur = b_conn.cursor()
	with pytest.raises(views.ReaderRoleError, match="not this site's reader role"):
		views.grant_reader(cur, reader_a)
	b_conn.rollback()
	# A role of any other name that already reads another database is refused too.
	custom = f"bi_reader_{uuid.uuid4().hex[:8]}"
	_roles.append(custom)
	with a.admin().cursor() as admin:
		views.create_reader_role(admin, custom)
	views.grant_reader(a_conn.cursor(), custom)
	a_conn.commit()
	with pytest.raises(views.ReaderRoleError, match=f"holds privileges in database {a.name}"):
		views.grant_reader(cur, custom)
	b_conn.rollback()
	assert views.reader_reach(cur, reader_a).readable == 0


def test_grants_restored_from_another_sites_dump_are_revoked(two_sites):
	(a, a_conn), (b, b_conn), roles = two_sites
	reader_a = make_reader(a, a_conn)
	login = make_login(a, reader_a, roles)
	# What psql does with site A's dump loaded into site B as B's user (the owner): A's GRANTs and
	# A's record of its readers come along.
	cur = b_conn.cursor()
	cur.execute(sql.SQL("GRANT USAGE ON SCHEMA core TO {}").format(sql.Identifier(reader_a)))
	cur.execute(sql.SQL("GRANT SELECT ON core.users TO {}").format(sql.Identifier(reader_a)))
	cur.execute(sql.SQL("GRANT SELECT (id, action) ON core.audit_log TO {}").format(sql.Identifier(reader_a)))
	cur.execute("INSERT INTO command.sql_readers (role) VALUES (%s)", (reader_a,))
	b_conn.commit()
	assert views.foreign_readers(cur) == [reader_a]
	b_conn.rollback()

	views.drop_views(cur)
	notes = views.create_views(cur)  # what every migrate does
	b_conn.commit()

	assert [n.relation for n in notes] == [reader_a]
	assert views.reader_roles(cur) == []
	assert views.foreign_readers(cur) == []
	conn = connect_as(b, login)
	with pytest.raises(errors.InsufficientPrivilege), conn.cursor() as rcur:
		rcur.execute("SELECT count(*) FROM core.users")
	conn.close()
	assert views.reader_reach(a_conn.cursor(), reader_a).problems() == []


def test_the_shared_reader_of_earlier_versions_is_revoked(two_sites):
	(a, a_conn), (b, b_conn), _roles = two_sites
	with a.admin().cursor() as admin:
		admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(views.SHARED_READER)))
		views.create_reader_role(admin, views.SHARED_READER)
	_roles.append(views.SHARED_READER)
	try:
		for conn in (a_conn, b_conn):
			cur = conn.cursor()
			# as earlier versions granted it, in every site
			cur.execute("INSERT INTO command.sql_readers (role) VALUES (%s)", (views.SHARED_READER,))
			cur.execute(
				sql.SQL("GRANT USAGE ON SCHEMA core TO {}").format(sql.Identifier(views.SHARED_READER))
			)
			cur.execute(
				sql.SQL("GRANT SELECT ON core.users TO {}").format(sql.Identifier(views.SHARED_READER))
			)
			conn.commit()
		reach = views.reader_reach(a_conn.cursor(), views.SHARED_READER)
		assert reach.databases == (b.name,)
		assert reach.problems()[:2] == [
			f"is not this site's reader role ({views.reader_role_name(a.name)}): the next migrate revokes it",
			f"holds privileges in other databases: {b.name}",
		]

		for conn in (a_conn, b_conn):
			notes = views.create_views(conn.cursor())
			conn.commit()
			assert [n.relation for n in notes] == [views.SHARED_READER]
		cur = a_conn.cursor()
		assert views.reader_reach(cur, views.SHARED_READER).databases == ()
		assert views.reader_reach(cur, views.SHARED_READER).readable == 0
	finally:
		a_conn.rollback()


def test_a_reader_left_without_grants_by_uninstall_is_reported_and_granted_again(two_sites):
	(a, a_conn), _b, _roles = two_sites
	reader = make_reader(a, a_conn)
	cur = a_conn.cursor()
	# uninstall-app, then install-app
	views.drop_views(cur)
	provision.drop_schemas(cur)
	provision.provision(cur)
	views.create_views(cur)
	a_conn.commit()

	assert views.site_readers(cur) == [reader]
	reach = views.reader_reach(cur, reader)
	assert reach.readable == 0
	assert any("holds no grants here" in p for p in reach.problems())
	assert "PROBLEM: holds no grants here" in str(reach)

	assert views.grant_reader(cur, reader) == []  # what `cauldron provision` does
	a_conn.commit()
	assert views.reader_reach(cur, reader).problems() == []


def test_doctor_reports_a_missing_reader_role(two_sites):
	(a, a_conn), _b, _roles = two_sites
	cur = a_conn.cursor()
	reach = views.reader_reach(cur, views.reader_role_name(a.name))
	assert not reach.exists
	assert str(reach).endswith("does not exist")


def test_an_extensions_own_views_are_not_counted_as_reach(two_sites):
	"""pg_stat_statements, on many DBAs' servers, lets PUBLIC read its views: the extension's design
	(other roles' statements are hidden from all but superusers), not a reader's reach."""
	(a, conn), _, _ = two_sites
	a.create_extension("pg_stat_statements")
	role = make_reader(a, conn)
	with conn.cursor() as cur:
		reach = views.reader_reach(cur, role)
		cur.execute("SELECT has_table_privilege(%s, 'public.pg_stat_statements', 'SELECT')", (role,))
		assert cur.fetchone()[0]
	assert reach.other_relations == () and reach.problems() == []
	with conn.cursor() as cur:
		cur.execute("CREATE TABLE public.stray (x int)")
		cur.execute(sql.SQL("GRANT SELECT ON public.stray TO {}").format(sql.Identifier(role)))
		assert views.reader_reach(cur, role).other_relations == ("public.stray",)
	conn.rollback()
