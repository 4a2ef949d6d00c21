"""Cauldron's DocTypes as Frappe 15 would create their tables on Postgres, and minimal versions of the
Frappe tables the seed views read, so the views can be built and queried without Frappe."""

import json
from pathlib import Path

from psycopg2 import sql

APP = Path(__file__).resolve().parent.parent / "cauldron"
MODULES = {"Cauldron": "cauldron", "Lore": "lore", "Synapse": "synapse", "Aegis": "aegis", "Aether": "aether"}

# frappe/database/postgres/database.py, setup_type_map (version-15), for the types Cauldron uses.
TYPE_MAP = {
	"Data": "varchar({length})",
	"Link": "varchar({length})",
	"Dynamic Link": "varchar({length})",
	"Select": "varchar({length})",
	"Check": "smallint NOT NULL DEFAULT 0",
	"Int": "bigint NOT NULL DEFAULT 0",
	"Float": "numeric(21,9) NOT NULL DEFAULT 0",
	"Datetime": "timestamp(6)",
	"JSON": "json",
	"Small Text": "text",
	"Text": "text",
	"Long Text": "text",
	"Code": "text",
	"Password": "text",
	"Attach": "text",
	"Attach Image": "text",
}
# Frappe 15's no_value_fields (frappe/model/__init__.py): fields with no column of their own
NO_COLUMN = {
	"Section Break",
	"Column Break",
	"Tab Break",
	"HTML",
	"Table",
	"Table MultiSelect",
	"Button",
	"Image",
	"Fold",
	"Heading",
}

STANDARD_COLUMNS = """
	name varchar(140) PRIMARY KEY,
	creation timestamp(6),
	modified timestamp(6),
	modified_by varchar(140),
	owner varchar(140),
	docstatus smallint NOT NULL DEFAULT 0,
	idx bigint NOT NULL DEFAULT 0"""
CHILD_COLUMNS = """,
	parent varchar(140),
	parentfield varchar(140),
	parenttype varchar(140)"""

# The columns of Frappe's own tables that the views read.
FRAPPE_TABLES = """
CREATE TABLE "tabSingles" (doctype varchar(140), field varchar(140), value text);
CREATE TABLE "tabUser" ({standard},
	email varchar(140), username varchar(140), full_name varchar(140), enabled smallint NOT NULL DEFAULT 1,
	user_type varchar(140), language varchar(140), time_zone varchar(140),
	last_login varchar(140), last_reset_password_key_generated_on timestamp(6));
CREATE TABLE "tabRole" ({standard}, role_name varchar(140), is_custom smallint NOT NULL DEFAULT 0);
CREATE TABLE "tabHas Role" ({standard}{child}, role varchar(140));
CREATE TABLE "tabDocPerm" ({standard}{child}, {perms});
CREATE TABLE "tabCustom DocPerm" ({standard}, parent varchar(140), {perms});
""".format(
	standard=STANDARD_COLUMNS,
	child=CHILD_COLUMNS,
	perms=", ".join(
		f'"{p}" smallint NOT NULL DEFAULT 0'
		for p in ("read", "write", "create", "delete", "export", "import", "print", "email", "report")
	)
	+ ", role varchar(140), permlevel bigint NOT NULL DEFAULT 0, if_owner smallint NOT NULL DEFAULT 0",
)


def doctype_files() -> list[Path]:
	return sorted(APP.glob("*/doctype/*/*.json"))


def doctypes() -> dict[str, dict]:
	"""Every DocType JSON of the app by DocType name."""
	result = {}
	for path in doctype_files():
		doc = json.loads(path.read_text())
		if doc.get("doctype") == "DocType":
			result[doc["name"]] = doc
	return result


def column_type(df: dict) -> str:
	return TYPE_MAP[df["fieldtype"]].format(length=df.get("length") or 140)


def create_doctype_table(cur, doctype: dict) -> None:
	columns = [
		sql.SQL("{} {}").format(sql.Identifier(df["fieldname"]), sql.SQL(column_type(df)))
		for df in doctype["fields"]
		if df["fieldtype"] not in NO_COLUMN
	]
	head = sql.SQL(STANDARD_COLUMNS + (CHILD_COLUMNS if doctype.get("istable") else ""))
	cur.execute(
		sql.SQL("CREATE TABLE {} ({}, {})").format(
			sql.Identifier("tab" + doctype["name"]), head, sql.SQL(", ").join(columns)
		)
	)


def create_site_tables(cur, time_zone: str = "America/New_York") -> None:
	"""Frappe's own tables the views read, and every non-virtual Cauldron DocType's table."""
	cur.execute(FRAPPE_TABLES)
	cur.execute(
		"""INSERT INTO "tabSingles" VALUES ('System Settings', 'time_zone', %s)""",
		(time_zone,),
	)
	for doctype in doctypes().values():
		if not doctype.get("is_virtual"):
			create_doctype_table(cur, doctype)
