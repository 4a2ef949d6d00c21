# A module, so Frappe does not take it for a hook; it imports no Frappe.
from cauldron import relations

app_name = "cauldron"
app_title = "Cauldron"
app_publisher = "Cauldron"
app_description = "Postgres-first data layer for Frappe and ERPNext: schemas, time-series, vectors and audit"
app_email = "dev@cauldron.invalid"
app_license = "mit"

# Installation
# ------------
# Cauldron is Postgres-only: before_install refuses any other database before anything is created.
before_install = "cauldron.setup.install.before_install"
after_install = "cauldron.setup.install.after_install"
# The seed-shaped views depend on DocType tables, which migrate ALTERs and uninstall DROPs.
before_migrate = "cauldron.setup.install.before_migrate"
after_migrate = "cauldron.setup.install.after_migrate"
before_uninstall = "cauldron.setup.install.before_uninstall"

# One role per area; DocPerms grant each only its own module's DocTypes.
fixtures = [
	{
		"dt": "Role",
		"filters": [
			[
				"role_name",
				"in",
				[
					"Cauldron Manager",
					"Knowledge Editor",
					"Synapse Analyst",
					"Synapse Writer",
					"Security Analyst",
					"Agent Operator",
					"Cauldron Auditor",
				],
			]
		],
	}
]

# Frappe 15's frappe.client.get_count checks no permission and fails on virtual DocTypes and
# Singles: Cauldron's DocTypes are counted by cauldron.api.client (every other one by Frappe's own).
override_whitelisted_methods = {"frappe.client.get_count": "cauldron.api.client.get_count"}

# Requests
# --------
# Bad paths and list parameters of Cauldron's DocTypes are a 417 before any query (cauldron.params).
before_request = ["cauldron.params.check_request"]
# Authorization: Bearer <JWT> from Supabase or an OIDC provider, when Cauldron Settings accept tokens
# (cauldron.auth.bearer); Frappe's sessions, API keys and OAuth tokens come first.
auth_hooks = ["cauldron.auth.bearer.validate_bearer"]
# 403 answers, exports and password updates become Aegis security events (cauldron.aegis.signals).
after_request = ["cauldron.aegis.signals.after_request"]

# Scheduled Tasks
# ---------------
scheduler_events = {
	# seal the audit rows committed in the last minute into the hash chain
	# and rescue agent tasks whose lease ran out, expire unanswered approvals (cauldron.aether.jobs)
	# and embed the Lore Documents queued in command.work_queue (also woken after each commit)
	"cron": {
		# Synapse analytics metrics due for evaluation (cauldron.synapse.jobs)
		"*/5 * * * *": ["cauldron.synapse.jobs.evaluate_due_metrics"],
		"* * * * *": [
			"cauldron.tasks.seal_audit",
			"cauldron.aether.jobs.maintain_tasks",
			"cauldron.tasks.embed_lore_documents",
			# evaluate new security events: incidents and playbooks (cauldron.aegis.jobs)
			"cauldron.aegis.jobs.detect",
		],
		# Lore knowledge sources due by their Sync Frequency: a full, idempotent sync (cauldron.lore.sync)
		"*/15 * * * *": ["cauldron.lore.sync.sync_due_sources"],
	},
	# refit the active Synapse Forecasts whose series completed a new interval (cauldron.synapse.background)
	"hourly": ["cauldron.tasks.refresh_rollups", "cauldron.synapse.background.refresh_forecasts"],
	# forecast fits and simulation runs whose RQ job was lost (woken after each commit otherwise)
	"all": ["cauldron.synapse.background.work"],
	"daily": ["cauldron.tasks.maintain_partitions", "cauldron.tasks.purge_work_queue"],
	# a broken audit chain is a critical security event (cauldron.aegis.jobs)
	"daily_long": ["cauldron.aegis.jobs.verify_audit_chain"],
}

# Document Events
# ---------------
# Every DocType's actions go to core.audit_log and synapse.metrics, one row each (cauldron.events).
doc_events = {
	"*": {
		"before_insert": "cauldron.events.before_insert",
		"before_change": ["cauldron.events.before_change", "cauldron.aegis.signals.before_change"],
		# logins, password, API key, role, permission and two-factor changes become security events,
		# and an answer to a playbook step's approval runs or skips it (cauldron.aegis.signals)
		"before_validate": "cauldron.aegis.signals.before_validate",
		"on_update": "cauldron.aegis.signals.on_update",
		"on_trash": "cauldron.aegis.signals.on_trash",
		# ... and the records and files Lore knowledge sources read follow into their Lore Documents
		# (cauldron.lore.sync; a DocType no source reads returns at once)
		"on_change": ["cauldron.events.on_change", "cauldron.lore.sync.on_change"],
		"after_delete": [
			"cauldron.events.after_delete",
			"cauldron.api.lore.file_changed",
			"cauldron.lore.sync.after_delete",
		],
		"after_rename": ["cauldron.events.after_rename", "cauldron.lore.sync.after_rename"],
		# a File attached to a Lore Document is part of its text: a new or deleted one re-embeds it
		"after_insert": ["cauldron.api.lore.file_changed", "cauldron.aegis.signals.after_insert"],
	},
	# The seed's ON DELETE CASCADE / SET NULL for the Links into these DocTypes (cauldron.relations).
	**{doctype: {"on_trash": "cauldron.relations.on_trash"} for doctype in relations.TARGETS},
}

# Permissions
# -----------
# A Lore Document a knowledge source made from a record (or File) is readable only with that record:
# in Frappe's list SQL (so in Desk and in search's pre-filter) and for a single document.
permission_query_conditions = {
	"Lore Document": "cauldron.lore.sync.lore_document_conditions",
	# a Synapse Dashboard is its owner's, and everyone's who may read dashboards once public
	"Synapse Dashboard": "cauldron.synapse.doctype.synapse_dashboard.synapse_dashboard.query_conditions",
}
has_permission = {
	"Lore Document": "cauldron.lore.sync.lore_document_permission",
	"Synapse Dashboard": "cauldron.synapse.doctype.synapse_dashboard.synapse_dashboard.has_permission",
}

# User Data Protection
# --------------------
# Personal data in Cauldron's DocTypes, for Frappe's personal data download and deletion requests.
# Links to a User follow the User's anonymising rename (Team Member and Skill Profile hold nothing
# else of the user's); core.audit_log is erased by cauldron.events.
user_data_fields = [
	{
		"doctype": "Cauldron Organization",
		"filter_by": "primary_contact_email",
		"redact_fields": ["primary_contact_name", "primary_contact_email"],
	},
	{"doctype": "Cauldron Auth User Mapping", "filter_by": "user"},
	{"doctype": "Cauldron Storage Bucket", "filter_by": "bucket_owner"},
	{"doctype": "Cauldron Storage Object", "filter_by": "object_owner"},
]
