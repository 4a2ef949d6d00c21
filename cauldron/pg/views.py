"""The seed's SQL surface: every seed table readable under its seed name and columns, as a view over
the DocType tables and Frappe's own (or, for the high-volume tables, the real table itself).

How Frappe's storage becomes the seed's shape:
- ids are the DocType's name, a UUID (`name::uuid`). Where the name is not a UUID (Frappe's User,
  Role, Has Role and DocPerm; buckets, named by their bucket name) the id is the deterministic
  `md5('<DocType>:' || name)::uuid`, so every reference to a user reads `md5('User:' || user)::uuid`;
- Frappe keeps datetimes as naive local time of the site's time zone (System Settings); the views
  turn them into timestamptz in that zone, so `created_at` is the true instant;
- Check (0/1) becomes boolean, JSON becomes jsonb, Float/Int become the seed's double precision
  and integer; created_at/updated_at/modified_at are Frappe's creation/modified;
- the password and token columns of core.users and auth.users are always NULL.

Views are not ledger steps: Frappe's migrate ALTERs DocType tables and uninstall DROPs them
without CASCADE, either of which fails while a view depends on the table. They are dropped
before migrate and uninstall and created again after install and migrate (cauldron.setup.install).
Each view carries a comment starting with MARK: only views with it are ever replaced or dropped,
so a schema Cauldron did not create (Supabase's `auth`, `storage`) keeps its own relations.
"""

import hashlib
from dataclasses import dataclass

from psycopg2 import errors, sql

from cauldron.pg import CauldronDBError, provision

MARK = "Cauldron seed view:"

# Frappe falls back to this zone when System Settings has none (frappe.utils.get_system_timezone).
FRAPPE_DEFAULT_TIME_ZONE = "Asia/Kolkata"
SITE_TIME_ZONE = f"""(SELECT coalesce(
	(SELECT s.value FROM "tabSingles" s WHERE s.doctype = 'System Settings' AND s.field = 'time_zone'),
	'{FRAPPE_DEFAULT_TIME_ZONE}') AS time_zone) site"""

# The seed tables that are real tables (time-series, vectors, agent interactions), not views.
TABLES = (
	"core.audit_log",
	"synapse.metrics",
	"synapse.metrics_hourly",
	"aegis.security_events",
	"lore.document_chunks",
	"aether.agent_interactions",
)
# Their seed columns: the only columns a reader is granted (core.audit_log also holds the hash
# chain and the erasure salt, which are not the reader's business).
TABLE_COLUMNS = {
	"core.audit_log": (
		"id",
		"user_id",
		"action",
		"resource_type",
		"resource_id",
		"old_values",
		"new_values",
		"ip_address",
		"user_agent",
		"created_at",
	),
	"synapse.metrics": ("time", "metric_name", "value", "dimensions"),
	"synapse.metrics_hourly": (
		"bucket",
		"metric_name",
		"dimensions",
		"avg_value",
		"min_value",
		"max_value",
		"sample_count",
	),
	"aegis.security_events": (
		"id",
		"event_time",
		"event_type",
		"source",
		"severity",
		"description",
		"raw_data",
		"processed_data",
		"is_incident",
		"created_at",
	),
	"lore.document_chunks": (
		"id",
		"document_id",
		"chunk_index",
		"content",
		"metadata",
		"embedding",
		"created_at",
	),
	"aether.agent_interactions": (
		"id",
		"session_id",
		"agent_instance_id",
		"interaction_type",
		"content",
		"metadata",
		"created_at",
	),
}


# --- column expressions over a DocType table aliased `t` ---------------------------------------


def _col(source: str) -> str:
	return f't."{source}"'


def uuid(column: str, source: str) -> str:
	"""A Link or name holding a UUID."""
	return f"nullif({_col(source)}, '')::uuid AS {column}"


def key_uuid(column: str, doctype: str, source: str) -> str:
	"""A name that is not a UUID (a user, a bucket), mapped to one deterministically."""
	return f"md5('{doctype}:' || nullif({_col(source)}, ''))::uuid AS {column}"


def user(column: str, source: str | None = None) -> str:
	return key_uuid(column, "User", source or column)


def cast(column: str, sql_type: str, source: str | None = None) -> str:
	return f"{_col(source or column)}::{sql_type} AS {column}"


def boolean(column: str, source: str | None = None) -> str:
	return f"({_col(source or column)} <> 0) AS {column}"


def jsonb(column: str, source: str | None = None) -> str:
	return f"{_col(source or column)}::jsonb AS {column}"


def ts(column: str, source: str | None = None) -> str:
	return f"({_col(source or column)} AT TIME ZONE site.time_zone) AS {column}"


def created_at(column: str = "created_at") -> str:
	return ts(column, "creation")


def updated_at(column: str = "updated_at") -> str:
	return ts(column, "modified")


@dataclass(frozen=True)
class View:
	relation: str  # schema.name, as the seed names it
	select: str
	comment: str
	doctype: str | None = None  # the DocType whose table it shows, if it is one of Cauldron's
	columns: tuple[str, ...] = ()  # the select list of a DocType view, one `expression AS name` each

	@property
	def schema(self) -> str:
		return self.relation.split(".")[0]

	@property
	def name(self) -> str:
		return self.relation.split(".")[1]


def doctype_view(relation: str, doctype: str, *columns: str, joins: str = "", where: str = "") -> View:
	select = (
		"SELECT\n\t"
		+ ",\n\t".join(columns)
		+ f'\nFROM "tab{doctype}" t\nCROSS JOIN {SITE_TIME_ZONE}'
		+ (f"\n{joins}" if joins else "")
		+ (f"\nWHERE {where}" if where else "")
	)
	return View(relation, select, f"{MARK} {relation} over DocType {doctype}", doctype, columns)


def _frappe_view(relation: str, select: str, over: str) -> View:
	return View(relation, select.strip(), f"{MARK} {relation} over Frappe's {over}")


def has_entity_embeddings(cur) -> bool:
	"""lore.entity_embeddings, where lore.entities.embedding comes from, exists only with pgvector."""
	cur.execute("SELECT to_regclass('lore.entity_embeddings') IS NOT NULL")
	return cur.fetchone()[0]


def frappe_views() -> list[View]:
	"""core.users, roles, user_roles, permissions and auth.users over Frappe's own identity tables."""
	is_system_admin = """(u.name = 'Administrator' OR EXISTS (
		SELECT 1 FROM "tabHas Role" hr
		WHERE hr.parent = u.name AND hr.parenttype = 'User' AND hr.role = 'System Manager'))"""
	# last_login is a Read Only (varchar) field holding frappe.utils.now()
	last_login = (
		"CASE WHEN u.last_login ~ '^\\d{4}-\\d{2}-\\d{2}' "
		"THEN u.last_login::timestamp AT TIME ZONE site.time_zone END"
	)
	return [
		_frappe_view(
			"core.users",
			f"""
SELECT
	md5('User:' || u.name)::uuid AS id,
	coalesce(nullif(u.username, ''), u.name)::varchar(150) AS username,
	u.email::varchar(255) AS email,
	coalesce(nullif(u.full_name, ''), u.name)::varchar(255) AS full_name,
	NULL::varchar(255) AS password_hash,
	(u.enabled <> 0) AS is_active,
	{is_system_admin} AS is_system_admin,
	{last_login} AS last_login,
	(u.creation AT TIME ZONE site.time_zone) AS created_at,
	(u.modified AT TIME ZONE site.time_zone) AS updated_at
FROM "tabUser" u
CROSS JOIN {SITE_TIME_ZONE}
WHERE u.name <> 'Guest'""",
			"User (password_hash is always NULL)",
		),
		_frappe_view(
			"core.roles",
			f"""
SELECT
	md5('Role:' || r.name)::uuid AS id,
	r.role_name::varchar(100) AS name,
	NULL::text AS description,
	(r.is_custom = 0) AS is_system_role,
	(r.creation AT TIME ZONE site.time_zone) AS created_at,
	(r.modified AT TIME ZONE site.time_zone) AS updated_at
FROM "tabRole" r
CROSS JOIN {SITE_TIME_ZONE}""",
			"Role (is_system_role: shipped by an app rather than made on the site)",
		),
		_frappe_view(
			"core.user_roles",
			f"""
SELECT
	md5('Has Role:' || hr.name)::uuid AS id,
	md5('User:' || hr.parent)::uuid AS user_id,
	md5('Role:' || hr.role)::uuid AS role_id,
	(hr.creation AT TIME ZONE site.time_zone) AS created_at
FROM "tabHas Role" hr
CROSS JOIN {SITE_TIME_ZONE}
WHERE hr.parenttype = 'User' AND hr.parent <> 'Guest'""",
			"Has Role",
		),
		_frappe_view(
			"core.permissions",
			f"""
WITH rules AS (
	SELECT 'Custom DocPerm' AS source, c.name, c.parent, c.role, c.permlevel, c."read", c."write",
		c."create", c."delete", c."export", c."import", c."print", c."email", c."report",
		c.creation, c.modified
	FROM "tabCustom DocPerm" c
	UNION ALL
	-- Frappe's rule: a DocType's Custom DocPerms, once any exist, replace its standard ones.
	SELECT 'DocPerm', d.name, d.parent, d.role, d.permlevel, d."read", d."write",
		d."create", d."delete", d."export", d."import", d."print", d."email", d."report",
		d.creation, d.modified
	FROM "tabDocPerm" d
	WHERE d.parenttype = 'DocType'
		AND NOT EXISTS (SELECT 1 FROM "tabCustom DocPerm" c WHERE c.parent = d.parent)
)
SELECT
	md5(p.source || ':' || p.name)::uuid AS id,
	md5('Role:' || p.role)::uuid AS role_id,
	p.parent::varchar(100) AS resource_type,
	NULL::uuid AS resource_id,
	(p."read" <> 0) AS can_read,
	(p."write" <> 0) AS can_write,
	(p."create" <> 0) AS can_create,
	(p."delete" <> 0) AS can_delete,
	(p."export" <> 0) AS can_export,
	(p."import" <> 0) AS can_import,
	(p."print" <> 0) AS can_print,
	(p."email" <> 0) AS can_email,
	(p."report" <> 0) AS can_report,
	-- Frappe 15 has no per-DocType flag: a role sets user permissions if it may create them.
	EXISTS (
		SELECT 1 FROM rules u
		WHERE u.parent = 'User Permission' AND u.role = p.role AND u.permlevel = 0 AND u."create" <> 0
	) AS can_set_user_permissions,
	(p.creation AT TIME ZONE site.time_zone) AS created_at,
	(p.modified AT TIME ZONE site.time_zone) AS updated_at
FROM rules p
CROSS JOIN {SITE_TIME_ZONE}
-- Field-level rules (permlevel > 0) have no place in the seed's shape.
WHERE p.permlevel = 0""",
			"DocPerm and Custom DocPerm (document-level rules, permlevel 0)",
		),
		_frappe_view(
			"auth.users",
			f"""
SELECT
	md5('User:' || u.name)::uuid AS id,
	u.email::varchar(255) AS email,
	NULL::varchar(255) AS encrypted_password,
	NULL::timestamptz AS email_confirmed_at,
	NULL::varchar(255) AS confirmation_token,
	NULL::timestamptz AS confirmation_sent_at,
	NULL::varchar(255) AS recovery_token,
	(u.last_reset_password_key_generated_on AT TIME ZONE site.time_zone) AS recovery_sent_at,
	{last_login} AS last_sign_in_at,
	jsonb_build_object(
		'provider', 'frappe',
		'user_type', u.user_type,
		'roles', coalesce((
			SELECT jsonb_agg(hr.role ORDER BY hr.role) FROM "tabHas Role" hr
			WHERE hr.parent = u.name AND hr.parenttype = 'User'), '[]'::jsonb)
	) AS raw_app_meta_data,
	jsonb_strip_nulls(jsonb_build_object(
		'full_name', u.full_name, 'language', u.language, 'time_zone', u.time_zone
	)) AS raw_user_meta_data,
	(u.creation AT TIME ZONE site.time_zone) AS created_at,
	(u.modified AT TIME ZONE site.time_zone) AS updated_at
FROM "tabUser" u
CROSS JOIN {SITE_TIME_ZONE}
WHERE u.name <> 'Guest'""",
			"User (encrypted_password and tokens are always NULL)",
		),
	]


def doctype_views(entity_embeddings: bool = True) -> list[View]:
	if entity_embeddings:
		embedding = "e.embedding AS embedding"
		embedding_join = "LEFT JOIN lore.entity_embeddings e ON e.entity_id = t.name"
	else:
		embedding, embedding_join = "NULL::text AS embedding", ""
	return [
		doctype_view(
			"core.organizations",
			"Cauldron Organization",
			uuid("id", "name"),
			cast("name", "varchar(255)", "organization_name"),
			cast("domain", "varchar(255)"),
			cast("logo_url", "text"),
			cast("primary_contact_email", "varchar(255)"),
			cast("primary_contact_name", "varchar(255)"),
			created_at(),
			updated_at(),
		),
		doctype_view(
			"core.teams",
			"Cauldron Team",
			uuid("id", "name"),
			uuid("organization_id", "organization"),
			cast("name", "varchar(255)", "team_name"),
			cast("description", "text"),
			created_at(),
			updated_at(),
		),
		doctype_view(
			"core.team_members",
			"Cauldron Team Member",
			uuid("id", "name"),
			uuid("team_id", "team"),
			user("user_id", "user"),
			boolean("is_team_admin"),
			created_at(),
		),
		doctype_view(
			"core.auth_user_mapping",
			"Cauldron Auth User Mapping",
			uuid("id", "name"),
			uuid("auth_user_id", "auth_user_id"),
			user("core_user_id", "user"),
			created_at(),
		),
		doctype_view(
			"storage.buckets",
			"Cauldron Storage Bucket",
			key_uuid("id", "Cauldron Storage Bucket", "name"),
			cast("name", "text"),
			user("owner", "bucket_owner"),
			created_at(),
			updated_at(),
			boolean("public"),
		),
		doctype_view(
			"storage.objects",
			"Cauldron Storage Object",
			uuid("id", "name"),
			key_uuid("bucket_id", "Cauldron Storage Bucket", "bucket"),
			cast("name", "text", "object_name"),
			user("owner", "object_owner"),
			created_at(),
			updated_at(),
			ts("last_accessed_at"),
			jsonb("metadata"),
			"string_to_array(t.object_name, '/') AS path_tokens",
		),
		doctype_view(
			"lore.documents",
			"Lore Document",
			uuid("id", "name"),
			cast("title", "text"),
			cast("content", "text"),
			jsonb("metadata"),
			cast("source_url", "text"),
			cast("source_type", "varchar(50)"),
			user("created_by"),
			created_at(),
			updated_at("modified_at"),
			boolean("is_archived"),
		),
		doctype_view(
			"lore.entities",
			"Lore Entity",
			uuid("id", "name"),
			cast("name", "text", "entity_name"),
			cast("entity_type", "varchar(100)"),
			cast("description", "text"),
			jsonb("metadata"),
			embedding,
			created_at(),
			updated_at("modified_at"),
			joins=embedding_join,
		),
		doctype_view(
			"lore.relationships",
			"Lore Relationship",
			uuid("id", "name"),
			uuid("source_entity_id", "source_entity"),
			uuid("target_entity_id", "target_entity"),
			cast("relationship_type", "varchar(100)"),
			jsonb("metadata"),
			cast("confidence", "double precision"),
			created_at(),
			updated_at("modified_at"),
		),
		doctype_view(
			"lore.knowledge_sources",
			"Lore Knowledge Source",
			uuid("id", "name"),
			cast("name", "varchar(255)", "source_name"),
			cast("source_type", "varchar(50)"),
			jsonb("connection_config"),
			cast("sync_frequency", "varchar(50)"),
			ts("last_synced_at"),
			boolean("is_active"),
			created_at(),
			updated_at(),
		),
		doctype_view(
			"lore.skill_profiles",
			"Lore Skill Profile",
			uuid("id", "name"),
			user("user_id", "user"),
			jsonb("skills"),
			jsonb("expertise_areas"),
			jsonb("confidence_scores"),
			updated_at("last_updated"),
			created_at(),
		),
		doctype_view(
			"aegis.threats",
			"Aegis Threat",
			uuid("id", "name"),
			cast("threat_name", "varchar(255)"),
			cast("threat_type", "varchar(100)"),
			cast("severity", "varchar(20)"),
			cast("confidence", "double precision"),
			cast("description", "text"),
			jsonb("indicators"),
			jsonb("mitigations"),
			cast("status", "varchar(50)"),
			created_at(),
			updated_at(),
		),
		doctype_view(
			"aegis.vulnerabilities",
			"Aegis Vulnerability",
			uuid("id", "name"),
			cast("vulnerability_id", "varchar(50)"),
			cast("title", "varchar(255)"),
			cast("description", "text"),
			cast("severity", "varchar(20)"),
			cast("cvss_score", "double precision"),
			jsonb("affected_systems"),
			cast("remediation_steps", "text"),
			cast("status", "varchar(50)"),
			ts("discovered_at"),
			created_at(),
			updated_at(),
		),
		doctype_view(
			"aegis.security_playbooks",
			"Aegis Security Playbook",
			uuid("id", "name"),
			cast("name", "varchar(255)", "playbook_name"),
			cast("description", "text"),
			jsonb("trigger_conditions"),
			jsonb("steps"),
			boolean("is_automated"),
			boolean("requires_approval"),
			created_at(),
			updated_at(),
		),
		doctype_view(
			"aegis.security_incidents",
			"Aegis Security Incident",
			uuid("id", "name"),
			cast("title", "varchar(255)"),
			cast("description", "text"),
			cast("severity", "varchar(20)"),
			cast("status", "varchar(50)"),
			user("assigned_to"),
			jsonb("related_events"),
			jsonb("related_threats"),
			jsonb("timeline"),
			cast("resolution", "text"),
			cast("lessons_learned", "text"),
			created_at(),
			updated_at(),
			ts("resolved_at"),
		),
		doctype_view(
			"synapse.analytics_metrics",
			"Synapse Analytics Metric",
			uuid("id", "name"),
			cast("metric_name", "varchar(255)"),
			cast("description", "text"),
			cast("unit_of_measure", "varchar(50)"),
			boolean("is_percentage"),
			boolean("is_currency"),
			cast("currency", "varchar(3)"),
			cast("calculation_method", "text"),
			cast("data_source", "varchar(100)"),
			cast("query_definition", "text"),
			cast("target_value", "double precision"),
			cast("warning_threshold", "double precision"),
			cast("critical_threshold", "double precision"),
			created_at(),
			updated_at(),
		),
		doctype_view(
			"synapse.forecasts",
			"Synapse Forecast",
			uuid("id", "name"),
			cast("forecast_name", "varchar(255)"),
			uuid("metric_id", "metric"),
			cast("forecast_model", "varchar(100)"),
			jsonb("forecast_parameters"),
			ts("forecast_date"),
			cast("forecast_horizon", "integer"),
			jsonb("forecast_data"),
			jsonb("performance_metrics"),
			cast("status", "varchar(50)"),
			boolean("is_active"),
			created_at(),
			updated_at(),
		),
		doctype_view(
			"synapse.dashboards",
			"Synapse Dashboard",
			uuid("id", "name"),
			cast("dashboard_name", "varchar(255)"),
			cast("description", "text"),
			jsonb("layout"),
			boolean("is_public"),
			user("created_by"),
			created_at(),
			updated_at(),
			ts("last_viewed"),
		),
		doctype_view(
			"synapse.dashboard_components",
			"Synapse Dashboard Component",
			uuid("id", "name"),
			uuid("dashboard_id", "parent"),
			cast("component_type", "varchar(50)"),
			cast("title", "varchar(255)"),
			uuid("metric_id", "metric"),
			cast("chart_type", "varchar(50)"),
			cast("time_range", "varchar(20)"),
			cast("refresh_frequency", "varchar(20)"),
			cast("size", "varchar(20)"),
			jsonb("position"),
			boolean("is_active"),
			created_at(),
			updated_at(),
			where="t.parenttype = 'Synapse Dashboard'",
		),
		doctype_view(
			"synapse.business_simulations",
			"Synapse Business Simulation",
			uuid("id", "name"),
			cast("simulation_name", "varchar(255)"),
			cast("description", "text"),
			jsonb("model_definition"),
			jsonb("parameters"),
			jsonb("scenarios"),
			jsonb("results"),
			cast("status", "varchar(50)"),
			user("created_by"),
			created_at(),
			updated_at(),
			ts("last_run_at"),
		),
		doctype_view(
			"aether.agent_definitions",
			"Aether Agent Definition",
			uuid("id", "name"),
			cast("agent_name", "varchar(255)"),
			cast("agent_type", "varchar(100)"),
			cast("description", "text"),
			jsonb("capabilities"),
			jsonb("parameters"),
			jsonb("model_config"),
			jsonb("tools"),
			boolean("is_active"),
			created_at(),
			updated_at(),
		),
		doctype_view(
			"aether.agent_instances",
			"Aether Agent Instance",
			uuid("id", "name"),
			uuid("definition_id", "definition"),
			cast("instance_name", "varchar(255)"),
			cast("status", "varchar(50)"),
			uuid("current_task_id", "current_task"),
			jsonb("memory"),
			jsonb("state"),
			created_at(),
			updated_at(),
			ts("last_active_at"),
		),
		doctype_view(
			"aether.agent_tasks",
			"Aether Agent Task",
			uuid("id", "name"),
			cast("task_name", "varchar(255)"),
			cast("description", "text"),
			cast("task_type", "varchar(100)"),
			jsonb("parameters"),
			cast("status", "varchar(50)"),
			cast("priority", "integer"),
			uuid("assigned_to", "assigned_to"),
			user("created_by"),
			boolean("requires_approval"),
			user("approved_by"),
			ts("approved_at"),
			jsonb("result"),
			cast("error_message", "text"),
			created_at(),
			updated_at(),
			ts("started_at"),
			ts("completed_at"),
		),
		doctype_view(
			"aether.hitl_approvals",
			"Aether HITL Approval",
			uuid("id", "name"),
			uuid("task_id", "task"),
			cast("approval_type", "varchar(50)"),
			cast("description", "text"),
			jsonb("details"),
			cast("status", "varchar(50)"),
			created_at("requested_at"),
			ts("responded_at"),
			user("responded_by"),
			jsonb("response"),
			cast("notes", "text"),
		),
	]


def all_views(cur) -> list[View]:
	return [*frappe_views(), *doctype_views(has_entity_embeddings(cur))]


# --- lifecycle ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Skipped:
	relation: str
	reason: str


def _relation_kind(cur, relation: str) -> tuple[str | None, str | None]:
	"""(relkind, comment) of an existing relation, (None, None) when there is none. Looked up by
	name: to_regclass needs USAGE on a schema the site's user may not have (Supabase's auth)."""
	schema, name = relation.split(".")
	cur.execute(
		"""
		SELECT c.relkind, obj_description(c.oid, 'pg_class')
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = %s AND c.relname = %s
		""",
		(schema, name),
	)
	row = cur.fetchone()
	return row if row else (None, None)


def _ours(relkind, comment) -> bool:
	return relkind == "v" and (comment or "").startswith(MARK)


def create_views(cur) -> list[Skipped]:
	"""(Re)create every seed view, then give them back to the recorded reader roles.

	A view whose name is taken by something Cauldron did not make, or that the site's database
	user may not create (a schema another owner keeps), is skipped and returned with the reason;
	the rest are created regardless.
	"""
	skipped = []
	for view in all_views(cur):
		relkind, comment = _relation_kind(cur, view.relation)
		if relkind is not None and not _ours(relkind, comment):
			skipped.append(Skipped(view.relation, f"{view.relation} exists and is not Cauldron's"))
			continue
		cur.execute("SAVEPOINT cauldron_view")
		try:
			target = sql.Identifier(view.schema, view.name)
			cur.execute(sql.SQL("DROP VIEW IF EXISTS {}").format(target))
			cur.execute(sql.SQL("CREATE VIEW {} AS ").format(target) + sql.SQL(view.select))
			cur.execute(sql.SQL("COMMENT ON VIEW {} IS %s").format(target), (view.comment,))
		except errors.InsufficientPrivilege as e:
			cur.execute("ROLLBACK TO SAVEPOINT cauldron_view")
			skipped.append(Skipped(view.relation, str(e).strip().splitlines()[0]))
		else:
			cur.execute("RELEASE SAVEPOINT cauldron_view")
	skipped.extend(reconcile_readers(cur))
	return skipped


def existing_views(cur) -> list[str]:
	"""The seed views Cauldron made that exist now."""
	cur.execute(
		"""
		SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind = 'v' AND obj_description(c.oid, 'pg_class') LIKE %s
		ORDER BY 1
		""",
		(MARK + "%",),
	)
	return [row[0] for row in cur.fetchall()]


def drop_views(cur) -> list[str]:
	"""Drop every view Cauldron made (before migrate and uninstall); returns their names."""
	dropped = existing_views(cur)
	for relation in dropped:
		schema, name = relation.split(".")
		cur.execute(sql.SQL("DROP VIEW IF EXISTS {}").format(sql.Identifier(schema, name)))
	return dropped


# --- the read-only role ------------------------------------------------------------------------
#
# Every role is cluster-wide, and Frappe puts many sites (one database each) on one server: a reader
# role shared by the sites would let a login granted it for one site read every other. So each
# site's reader is its own role, named from its database, and holds privileges in that database
# only. pg_shdepend, a catalog shared by the whole server, records in which databases a role holds
# privileges; from any one database it tells whether a reader reaches another.

READER_PREFIX = "cauldron_reader_"
# The one reader role earlier versions made for every site; revoked wherever it is found.
SHARED_READER = "cauldron_reader"
MAX_ROLE_NAME = 63  # NAMEDATALEN - 1 bytes


def reader_role_name(database: str) -> str:
	"""The site's reader role: `cauldron_reader_<database>`, shortened with a digest of the database
	name when that would not fit a role name."""
	name = READER_PREFIX + database
	if len(name.encode()) <= MAX_ROLE_NAME:
		return name
	digest = hashlib.md5(database.encode(), usedforsecurity=False).hexdigest()[:12]
	head = name.encode()[: MAX_ROLE_NAME - len(digest) - 1].decode(errors="ignore")
	return f"{head}_{digest}"


def create_reader_role(cur, role: str) -> bool:
	"""As a role that may create roles: the NOLOGIN role SQL consumers are made members of."""
	cur.execute("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = %s)", (role,))
	if cur.fetchone()[0]:
		return False
	cur.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
	return True


def seed_relations(cur) -> list[str]:
	"""Every relation of the SQL surface: the views that exist and the real seed tables."""
	cur.execute("SELECT t FROM unnest(%s::text[]) t WHERE to_regclass(t) IS NOT NULL", (list(TABLES),))
	real_tables = [row[0] for row in cur.fetchall()]
	return sorted([*existing_views(cur), *real_tables])


def reader_roles(cur) -> list[str]:
	"""The roles recorded by grant_reader that still exist."""
	cur.execute("SELECT to_regclass('command.sql_readers') IS NOT NULL")
	if not cur.fetchone()[0]:
		return []
	cur.execute("SELECT r.role FROM command.sql_readers r JOIN pg_roles p ON p.rolname = r.role ORDER BY 1")
	return [row[0] for row in cur.fetchall()]


def other_databases(cur, role: str) -> list[str]:
	"""The databases other than this one in which `role` holds privileges or owns objects."""
	cur.execute(
		"""
		SELECT DISTINCT d.datname FROM pg_shdepend s
		JOIN pg_database d ON d.oid = s.dbid
		WHERE s.refclassid = 'pg_authid'::regclass
			AND s.refobjid = (SELECT oid FROM pg_roles WHERE rolname = %s)
			AND d.datname <> current_database()
		ORDER BY 1
		""",
		(role,),
	)
	return [row[0] for row in cur.fetchall()]


class ReaderRoleError(CauldronDBError):
	pass


def grant_reader(cur, role: str) -> list[Skipped]:
	"""Let `role` read the SQL surface and nothing else: USAGE on the schemas that hold it, SELECT
	on each view, and on each real seed table SELECT of its seed columns only.

	Refuses a role that holds privileges in another database (a reader serves one site), and
	another site's reader role. Records the role so that views recreated by a later migrate are
	granted again. Returns the relations the site's database user could not grant (a schema
	another owner keeps).
	"""
	cur.execute("SELECT current_database()")
	database = cur.fetchone()[0]
	if role == SHARED_READER or (role.startswith(READER_PREFIX) and role != reader_role_name(database)):
		raise ReaderRoleError(
			f"{role} is not this site's reader role; the reader of database {database} is"
			f" {reader_role_name(database)}"
		)
	elsewhere = other_databases(cur, role)
	if elsewhere:
		raise ReaderRoleError(
			f"{role} holds privileges in database {', '.join(elsewhere)}: a login granted it would read"
			f" that database too. Use a role of this site's own ({reader_role_name(database)})."
		)
	cur.execute(
		"INSERT INTO command.sql_readers (role) VALUES (%s) ON CONFLICT (role) DO NOTHING",
		(role,),
	)
	grantee = sql.Identifier(role)
	skipped = []
	relations = seed_relations(cur)
	for schema in sorted({relation.split(".")[0] for relation in relations}):
		_try(cur, sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema), grantee))
		cur.execute("SELECT has_schema_privilege(%s, %s, 'USAGE')", (role, schema))
		if not cur.fetchone()[0]:
			skipped.append(Skipped(schema, f"could not grant USAGE on schema {schema}"))
	for relation in relations:
		schema, name = relation.split(".")
		columns = TABLE_COLUMNS.get(relation)
		if columns:
			privilege = sql.SQL("SELECT ({})").format(sql.SQL(", ").join(map(sql.Identifier, columns)))
		else:
			privilege = sql.SQL("SELECT")
		_try(cur, sql.SQL("GRANT {} ON {} TO {}").format(privilege, sql.Identifier(schema, name), grantee))
		cur.execute("SELECT has_any_column_privilege(%s, %s, 'SELECT')", (role, relation))
		if not cur.fetchone()[0]:
			skipped.append(Skipped(relation, f"could not grant SELECT on {relation}"))
	return skipped


def revoke_reader(cur, role: str) -> list[str]:
	"""Take from `role` every privilege it holds in this database and forget it as a reader;
	returns the objects revoked (`schema x`, `relation y`)."""
	cur.execute(
		"""
		SELECT DISTINCT CASE s.classid
			WHEN 'pg_class'::regclass THEN 'relation ' || s.objid::regclass::text
			WHEN 'pg_namespace'::regclass THEN 'schema ' || quote_ident(n.nspname)
			END
		FROM pg_shdepend s
		LEFT JOIN pg_namespace n ON s.classid = 'pg_namespace'::regclass AND n.oid = s.objid
		WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
			AND s.refclassid = 'pg_authid'::regclass AND s.deptype = 'a'
			AND s.refobjid = (SELECT oid FROM pg_roles WHERE rolname = %s)
			AND s.classid IN ('pg_class'::regclass, 'pg_namespace'::regclass)
		ORDER BY 1
		""",
		(role,),
	)
	revoked = [row[0] for row in cur.fetchall()]
	grantee = sql.Identifier(role)
	for target in revoked:
		kind, name = target.split(" ", 1)
		keyword = sql.SQL("TABLE" if kind == "relation" else "SCHEMA")
		# already quoted by Postgres (regclass text, quote_ident)
		_try(cur, sql.SQL("REVOKE ALL ON {} {} FROM {}").format(keyword, sql.SQL(name), grantee))
	cur.execute("SELECT to_regclass('command.sql_readers') IS NOT NULL")
	if cur.fetchone()[0]:
		cur.execute("DELETE FROM command.sql_readers WHERE role = %s", (role,))
	return revoked


def foreign_readers(cur) -> list[str]:
	"""Reader roles that hold privileges in this database but are not its own: the shared role of
	earlier versions, another site's reader (a dump restored from that site carries its GRANTs),
	and a recorded role that also holds privileges in another database."""
	cur.execute("SELECT current_database()")
	own = reader_role_name(cur.fetchone()[0])
	cur.execute(
		"""
		SELECT DISTINCT r.rolname FROM pg_shdepend s JOIN pg_roles r ON r.oid = s.refobjid
		WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
			AND s.refclassid = 'pg_authid'::regclass AND s.deptype = 'a'
			AND (r.rolname = %s OR r.rolname LIKE %s)
		ORDER BY 1
		""",
		(SHARED_READER, READER_PREFIX.replace("_", r"\_") + "%"),
	)
	named = [row[0] for row in cur.fetchall() if row[0] != own]
	shared = [role for role in reader_roles(cur) if role not in named and other_databases(cur, role)]
	return sorted({*named, *shared})


def reconcile_readers(cur) -> list[Skipped]:
	"""After the views are (re)created: revoke every foreign reader (see foreign_readers), then
	grant the recorded readers again. Returns what was revoked or could not be granted."""
	cur.execute("SELECT current_database()")
	own = reader_role_name(cur.fetchone()[0])
	notes = []
	for role in foreign_readers(cur):
		revoke_reader(cur, role)
		notes.append(
			Skipped(
				role,
				f"revoked: {role} is not this database's own reader role (it is {own}, made by"
				" `cauldron provision`)",
			)
		)
	for role in reader_roles(cur):
		notes.extend(grant_reader(cur, role))
	return notes


@dataclass(frozen=True)
class ReaderReach:
	"""What a reader role can reach, as far as this database can see."""

	role: str
	exists: bool
	login: bool = False
	members: tuple[str, ...] = ()  # roles that read through it
	member_of: tuple[str, ...] = ()  # roles whose privileges it inherits
	readable: int = 0  # relations of this site's SQL surface it may SELECT from
	surface: int = 0
	other_relations: tuple[str, ...] = ()  # relations here outside the surface it may read
	databases: tuple[str, ...] = ()  # other databases where it holds privileges
	connect: tuple[str, ...] = ()  # databases it may connect to (PUBLIC's CONNECT included)
	own_role: str = ""  # this database's own reader role

	def problems(self) -> list[str]:
		if not self.exists:
			return ["does not exist"]
		found = []
		if self.role != self.own_role and (self.role == SHARED_READER or self.role.startswith(READER_PREFIX)):
			found.append(f"is not this site's reader role ({self.own_role}): the next migrate revokes it")
		if self.databases:
			found.append(f"holds privileges in other databases: {', '.join(self.databases)}")
		if self.member_of:
			found.append(f"inherits the privileges of {', '.join(self.member_of)}")
		if self.login:
			found.append("can log in itself (a reader role is NOLOGIN; grant it to logins)")
		if self.readable == 0:
			found.append("holds no grants here: `cauldron provision` grants them again")
		elif self.readable < self.surface:
			found.append(f"may read {self.readable} of the {self.surface} relations of the SQL surface")
		if self.other_relations:
			found.append(f"may read relations outside the SQL surface: {', '.join(self.other_relations)}")
		return found

	def __str__(self) -> str:
		if not self.exists:
			return f"{self.role}: does not exist"
		lines = [
			f"{self.role}: reads {self.readable} of {self.surface} SQL-surface relations here;"
			f" members: {', '.join(self.members) or 'none'}",
			f"  privileges in other databases: {', '.join(self.databases) or 'none'};"
			f" may connect to: {', '.join(self.connect) or 'none'}",
		]
		lines.extend(f"  PROBLEM: {problem}" for problem in self.problems())
		return "\n".join(lines)


def reader_reach(cur, role: str) -> ReaderReach:
	cur.execute("SELECT oid, rolcanlogin FROM pg_roles WHERE rolname = %s", (role,))
	row = cur.fetchone()
	if row is None:
		return ReaderReach(role, exists=False)
	oid, login = row
	cur.execute(
		"SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member"
		" WHERE m.roleid = %s ORDER BY 1",
		(oid,),
	)
	members = tuple(r[0] for r in cur.fetchall())
	cur.execute(
		"SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid"
		" WHERE m.member = %s ORDER BY 1",
		(oid,),
	)
	member_of = tuple(r[0] for r in cur.fetchall())
	surface = seed_relations(cur)
	cur.execute(
		"""
		SELECT count(*) FILTER (WHERE has_any_column_privilege(%(role)s, t::regclass, 'SELECT')),
			count(*)
		FROM unnest(%(surface)s::text[]) t
		""",
		{"role": role, "surface": surface},
	)
	readable, total = cur.fetchone()
	# Beyond the surface: in Cauldron's schemas and Frappe's public tables (not the catalogs, which
	# every role may read, nor an extension's own views such as pg_stat_statements, whose access is
	# the extension's: a DBA's server has them, and they show other roles' statements only to
	# superusers and pg_read_all_stats).
	cur.execute(
		"""
		SELECT format('%%I.%%I', n.nspname, c.relname) FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
			AND NOT c.relispartition
			AND has_schema_privilege(%(role)s, n.oid, 'USAGE')
			AND has_any_column_privilege(%(role)s, c.oid, 'SELECT')
			AND NOT (n.nspname || '.' || c.relname) = ANY(%(surface)s)
			AND NOT EXISTS (
				SELECT 1 FROM pg_depend d
				WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
			)
		ORDER BY 1
		""",
		{"role": role, "schemas": [*provision.SCHEMAS, "public"], "surface": surface},
	)
	other_relations = tuple(r[0] for r in cur.fetchall())
	cur.execute(
		"SELECT datname FROM pg_database WHERE datallowconn AND has_database_privilege(%s, oid, 'CONNECT')"
		" ORDER BY 1",
		(role,),
	)
	connect = tuple(r[0] for r in cur.fetchall())
	cur.execute("SELECT current_database()")
	own_role = reader_role_name(cur.fetchone()[0])
	return ReaderReach(
		role,
		True,
		login,
		members,
		member_of,
		readable,
		total,
		other_relations,
		tuple(other_databases(cur, role)),
		connect,
		own_role,
	)


def site_readers(cur) -> list[str]:
	"""The reader roles doctor reports: this site's own, the recorded ones, and foreign ones."""
	cur.execute("SELECT current_database()")
	own = reader_role_name(cur.fetchone()[0])
	return list(dict.fromkeys([own, *reader_roles(cur), *foreign_readers(cur)]))


def _try(cur, statement) -> None:
	"""Run a GRANT; lacking the privilege to grant is found by the caller's check, not raised.
	(Postgres only warns when a non-owner grants; an owner-less schema may also refuse outright.)"""
	cur.execute("SAVEPOINT cauldron_grant")
	try:
		cur.execute(statement)
	except errors.InsufficientPrivilege:
		cur.execute("ROLLBACK TO SAVEPOINT cauldron_grant")
	else:
		cur.execute("RELEASE SAVEPOINT cauldron_grant")
