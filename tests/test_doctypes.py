"""Static checks of the app's DocTypes, workspaces and number cards (no Frappe, no database): valid
JSON Frappe can load, names that cannot collide, every seed column carried, the seed's foreign keys
as Links with their ON DELETE behaviour, and least-privilege permissions."""

import json
import re
from pathlib import Path

import pytest
import seed_schema
from frappe_tables import APP, MODULES, NO_COLUMN, TYPE_MAP, doctype_files, doctypes

from cauldron import hooks, relations
from cauldron.pg import tables, views

HERE = Path(__file__).resolve().parent
FRAPPE_DOCTYPES = {
	line.strip()
	for line in (HERE / "data" / "frappe_v15_doctypes.txt").read_text().splitlines()
	if line.strip() and not line.startswith("#")
}
# ERPNext version-15's modules (erpnext/modules.txt): a DocType name starts with one of ours instead.
ERPNEXT_MODULES = {
	"Accounts",
	"CRM",
	"Buying",
	"Projects",
	"Selling",
	"Setup",
	"Manufacturing",
	"Stock",
	"Support",
	"Utilities",
	"Assets",
	"Portal",
	"Maintenance",
	"Regional",
	"ERPNext Integrations",
	"Quality Management",
	"Communication",
	"Telephony",
	"Bulk Transaction",
	"Subcontracting",
	"EDI",
}
FRAPPE_MODULES = {
	"Core",
	"Website",
	"Workflow",
	"Email",
	"Custom",
	"Geo",
	"Desk",
	"Integrations",
	"Printing",
	"Contacts",
	"Social",
	"Automation",
}
RESERVED_FIELDNAMES = {
	"name",
	"owner",
	"creation",
	"modified",
	"modified_by",
	"docstatus",
	"idx",
	"parent",
	"parentfield",
	"parenttype",
	"doctype",
	"meta",
	"flags",
}
AREA_ROLES = {"Cauldron Manager", "Knowledge Editor", "Synapse Analyst", "Security Analyst", "Agent Operator"}
AREA_ROLES |= {"Cauldron Auditor"}  # reads core.audit_log (Cauldron Audit Log) and nothing else
# Roles of API callers, in no DocPerm: Synapse Writer writes metrics (cauldron.api.synapse.write) only.
API_ROLES = {"Synapse Writer"}
NOBODY = {"Guest", "All", "Desk User"}
CAULDRON = {name: doc for name, doc in doctypes().items() if name != "Cauldron Settings"}
# Links whose seed foreign key has no ON DELETE (deleting the target is refused), or none at all.
# Links whose target cannot be deleted while they point at it (Frappe's own check); a role named on
# a storage bucket is taken off the bucket before the role can go.
BLOCKING_LINKS = {
	("Cauldron Storage Object", "bucket"),
	("Synapse Analytics Metric", "currency"),
	("Cauldron Storage Bucket Role", "role"),
}


def fields(doc, fieldtype=None):
	return [df for df in doc["fields"] if fieldtype is None or df["fieldtype"] == fieldtype]


def view_sources(view: views.View) -> dict[str, set[str]]:
	"""seed column -> the DocType table columns its expression reads."""
	result = {}
	for column in view.columns:
		name = re.search(r"\bAS (\w+)$", column).group(1)
		result[name] = set(re.findall(r't\."(\w+)"', column)) | set(re.findall(r"\bt\.(\w+)", column))
	return result


def test_every_doctype_folder_has_json_controller_form_script_test_and_init():
	for path in doctype_files():
		folder, name = path.parent, path.stem
		doc = json.loads(path.read_text())
		expected = [f"{name}.json", f"{name}.py", f"test_{name}.py", "__init__.py"]
		# Frappe never loads a child table's own form script (its parent's script handles its rows).
		if not doc.get("istable"):
			expected.append(f"{name}.js")
		for filename in expected:
			assert (folder / filename).exists(), f"{folder.name}/{filename} is missing"


def test_doctype_json_is_what_frappe_loads():
	for path in doctype_files():
		doc = json.loads(path.read_text())
		name = doc["name"]
		assert doc["doctype"] == "DocType"
		assert path.stem == name.lower().replace(" ", "_"), name
		assert MODULES[doc["module"]] == path.parent.parent.parent.name, name
		assert doc.get("description"), f"{name} says what it is"
		names = [df["fieldname"] for df in doc["fields"]]
		assert doc["field_order"] == names, name
		assert len(set(names)) == len(names), name
		assert not set(names) & RESERVED_FIELDNAMES, name
		for df in doc["fields"]:
			assert df["fieldtype"] in TYPE_MAP or df["fieldtype"] in NO_COLUMN, (name, df)
			if df["fieldtype"] == "Select":
				options = df["options"].split("\n")
				assert options and len(set(options)) == len(options), (name, df["fieldname"])
				if "default" in df:
					assert df["default"] in options, (name, df["fieldname"])
			if df["fieldtype"] in ("Link", "Table"):
				assert df["options"] in doctypes() or df["options"] in FRAPPE_DOCTYPES, (name, df)
			assert 1 <= df.get("length", 140) <= 1000, (name, df["fieldname"])
		for key in ("title_field", "sort_field"):
			if doc.get(key) and doc[key] not in ("modified", "creation"):
				assert doc[key] in names, (name, key)
		for fieldname in filter(None, (doc.get("search_fields") or "").split(",")):
			assert fieldname.strip() in names, (name, fieldname)


def test_names_cannot_collide_with_frappe_or_erpnext():
	assert not set(MODULES) & (FRAPPE_MODULES | ERPNEXT_MODULES)
	for name, doc in doctypes().items():
		assert name.startswith(doc["module"] + " "), f"{name} does not start with its module"
		assert name not in FRAPPE_DOCTYPES, name
	for path in APP.glob("*/number_card/*/*.json"):
		card = json.loads(path.read_text())
		assert card["name"].startswith(card["module"] + " "), card["name"]


def test_every_seed_table_is_a_doctype_a_view_over_frappe_or_a_real_table():
	seed = seed_schema.tables()
	doctype_views = {v.relation: v for v in views.doctype_views()}
	frappe_views = {v.relation for v in views.frappe_views()}
	assert set(doctype_views) | frappe_views | set(views.TABLES) == set(seed)
	assert not set(doctype_views) & frappe_views and not frappe_views & set(views.TABLES)
	for relation, view in doctype_views.items():
		assert view.doctype in CAULDRON, relation
		table_columns = {
			df["fieldname"] for df in fields(CAULDRON[view.doctype]) if df["fieldtype"] not in NO_COLUMN
		}
		standard = {"name", "creation", "modified", "parent"}
		for column, sources in view_sources(view).items():
			if (relation, column) == ("lore.entities", "embedding"):
				continue  # from lore.entity_embeddings, the vector table keyed by the entity's name
			assert sources, f"{relation}.{column} reads no field"
			assert sources <= table_columns | standard, (relation, column, sources)
		assert list(view_sources(view)) == seed[relation].names, relation


def test_seed_foreign_keys_are_links_with_the_seeds_on_delete():
	seed = seed_schema.tables()
	doctype_of = {v.relation: v.doctype for v in views.doctype_views()}
	doctype_of["core.users"] = "User"
	references = {(r.doctype, r.fieldname): r for r in relations.REFERENCES}
	table_references = {(r.table, r.column): r for r in relations.TABLE_REFERENCES}
	checked = 0
	for relation, table in seed.items():
		for column in table.columns:
			if not column.references or relation in ("core.user_roles", "core.permissions"):
				continue  # Frappe's own Has Role and DocPerm keep these
			checked += 1
			target = doctype_of[column.references]
			if relation in views.TABLES:
				if relation == "core.audit_log":
					continue  # history outlives users: the audit log keeps the name (see erase_user)
				ref = table_references[(relation, column.name)]
				assert ref.target == target and column.on_delete == "cascade", (relation, column)
				continue
			view = next(v for v in views.doctype_views() if v.relation == relation)
			(source,) = view_sources(view)[column.name]
			doc = CAULDRON[view.doctype]
			if source == "parent":
				assert doc.get("istable") and column.on_delete == "cascade", (relation, column)
				continue
			df = next(df for df in doc["fields"] if df["fieldname"] == source)
			assert df["fieldtype"] == "Link" and df["options"] == target, (relation, column.name)
			ref = references.get((view.doctype, source))
			if column.on_delete is None:
				assert ref is None and (view.doctype, source) in BLOCKING_LINKS, (relation, column.name)
			else:
				assert ref is not None and ref.on_delete == column.on_delete, (relation, column.name)
				assert ref.target == target
	assert checked == 24


def test_every_link_of_a_seed_doctype_has_a_delete_rule():
	for name, doc in CAULDRON.items():
		if doc.get("is_virtual"):
			continue
		for df in fields(doc, "Link"):
			key = (name, df["fieldname"])
			rule = next((r for r in relations.REFERENCES if (r.doctype, r.fieldname) == key), None)
			assert rule or key in BLOCKING_LINKS, key
			if rule:
				assert rule.target == df["options"], key


def test_delete_rules_are_hooked_on_every_target():
	targets = {dt for dt in hooks.doc_events if dt != "*"}
	assert targets == set(relations.TARGETS)
	for target in targets:
		assert hooks.doc_events[target] == {"on_trash": "cauldron.relations.on_trash"}


@pytest.mark.parametrize("name", sorted(CAULDRON))
def test_permissions_are_least_privilege(name):
	doc = CAULDRON[name]
	perms = doc["permissions"]
	if doc.get("istable"):
		assert perms == []
		return
	roles = {p["role"] for p in perms}
	assert not roles & NOBODY, name
	assert roles - {"System Manager"} <= AREA_ROLES and roles - {"System Manager"}, name
	area = {"Cauldron": "Cauldron Manager", "Lore": "Knowledge Editor", "Synapse": "Synapse Analyst"}
	area |= {"Aegis": "Security Analyst", "Aether": "Agent Operator"}
	assert area[doc["module"]] in roles, name
	for perm in perms:
		if doc.get("is_virtual"):
			assert {k for k, v in perm.items() if v == 1} == {"read", "report"}, name
		else:
			assert perm.get("read") and perm.get("write") and perm.get("create") and perm.get("delete")
			assert not perm.get("submit") and not perm.get("permlevel"), name


def test_roles_are_fixtures_and_used():
	fixture_roles = {r["role_name"] for r in json.loads((APP / "fixtures" / "role.json").read_text())}
	(hook,) = hooks.fixtures
	assert set(hook["filters"][0][2]) == fixture_roles == AREA_ROLES | API_ROLES
	used = {p["role"] for doc in CAULDRON.values() for p in doc["permissions"]}
	assert AREA_ROLES <= used and not API_ROLES & used


def test_uuid_named_doctypes_are_named_by_their_controller():
	for name, doc in CAULDRON.items():
		if doc.get("is_virtual"):
			continue
		controller = (APP / MODULES[doc["module"]] / "doctype" / name.lower().replace(" ", "_")).with_suffix(
			""
		)
		source = (controller / (controller.name + ".py")).read_text()
		if doc.get("autoname"):
			assert doc["autoname"] == "field:bucket_name" and "(SeedDocument)" in source, name
		else:
			assert doc["naming_rule"] == "By script" and "(UUIDNamedDocument)" in source, name


def test_secrets_are_password_fields():
	for name, json_field, secret_field in (
		("Lore Knowledge Source", "connection_config", "connection_secret"),
		("Aether Agent Definition", "model_config", "model_api_key"),
	):
		types = {df["fieldname"]: df["fieldtype"] for df in CAULDRON[name]["fields"]}
		assert types[json_field] == "JSON" and types[secret_field] == "Password", name


def test_agent_interaction_types_match_the_writer():
	doc = CAULDRON["Aether Agent Interaction"]
	(df,) = [df for df in doc["fields"] if df["fieldname"] == "interaction_type"]
	assert tuple(df["options"].split("\n")) == tables.AGENT_INTERACTION_TYPES


def test_workspaces_and_number_cards_point_at_real_doctypes():
	cards = {}
	for path in APP.glob("*/number_card/*/*.json"):
		card = json.loads(path.read_text())
		assert path.stem == card["name"].lower().replace(" ", "_")
		assert card["document_type"] in CAULDRON and not CAULDRON[card["document_type"]].get("is_virtual")
		field_names = {df["fieldname"] for df in CAULDRON[card["document_type"]]["fields"]}
		for doctype, fieldname, _operator, _value in json.loads(card["filters_json"]):
			assert doctype == card["document_type"] and fieldname in field_names, card["name"]
		cards[card["name"]] = card
	workspaces = list(APP.glob("*/workspace/*/*.json"))
	assert {json.loads(p.read_text())["module"] for p in workspaces} == set(MODULES)
	for path in workspaces:
		ws = json.loads(path.read_text())
		assert {r["role"] for r in ws["roles"]} & AREA_ROLES and not {r["role"] for r in ws["roles"]} & NOBODY
		links = [link["link_to"] for link in ws["links"] if link["type"] == "Link"]
		assert set(links) <= set(doctypes()), ws["name"]
		blocks = json.loads(ws["content"])
		for block in blocks:
			if block["type"] == "number_card":
				assert block["data"]["number_card_name"] in cards
			if block["type"] == "shortcut":
				assert block["data"]["shortcut_name"] in {s["label"] for s in ws["shortcuts"]}
			if block["type"] == "card":
				assert block["data"]["card_name"] in {link["label"] for link in ws["links"]}
		module_doctypes = {
			n for n, d in CAULDRON.items() if d["module"] == ws["module"] and not d.get("istable")
		}
		assert module_doctypes <= set(links), f"{ws['name']} lists every DocType of its module"


def test_seed_coverage():
	"""How much of the seed is carried: every table, every column."""
	seed = seed_schema.tables()
	assert (len(seed), sum(len(t.columns) for t in seed.values())) == (35, 332)
