"""The tools Aether's MCP server lists for an agent: the task runtime's (`tasks.claim`,
`tasks.heartbeat`, `tasks.complete`, `tasks.fail`: every agent has them) and the Cauldron
capabilities its definition's allow-list grants (cauldron.aether.tools), with their input schemas
(JSON Schema). Over MCP each is named with `_` for `.` (`tasks_claim`, `lore_search`): hosts such as
the Anthropic and OpenAI APIs take only letters, digits, `_` and `-` in a tool's name. Framework-free: `specs(allowed)` names them; the Frappe glue (cauldron.api.mcp) binds
each to the whitelisted method that runs it, so MCP and REST share one path and one set of checks.
"""

from dataclasses import dataclass

from cauldron.aether import tasks, tools

_NAME = {"type": "string", "minLength": 1, "maxLength": 140}
_TASK = {**_NAME, "description": "the task's name (its id), as tasks.claim returned it"}
_LEASE = {
	"type": "integer",
	"minimum": 1,
	"maximum": int(tasks.MAX_LEASE_SECONDS),
	"description": f"seconds the lease lasts (default {int(tasks.DEFAULT_LEASE_SECONDS)})",
}


@dataclass(frozen=True)
class Spec:
	name: str
	description: str
	input_schema: dict
	read_only: bool = False
	destructive: bool = False

	@property
	def mcp_name(self) -> str:
		return mcp_name(self.name)


def mcp_name(name: str) -> str:
	"""A Cauldron tool's name over MCP."""
	return name.replace(".", "_")


def cauldron_name(name: str) -> str:
	"""The Cauldron tool an MCP tool name stands for (a name of no tool: itself)."""
	known = {mcp_name(n): n for n in (*tools.TOOLS, *(s.name for s in RUNTIME))}
	return known.get(name, name)


def _object(properties: dict, required: tuple = (), extra: bool = False) -> dict:
	schema = {"type": "object", "properties": properties, "additionalProperties": extra}
	if required:
		schema["required"] = list(required)
	return schema


RUNTIME = (
	Spec(
		"tasks.claim",
		"Claim up to `limit` ready tasks this agent may run (highest priority, then oldest), each leased"
		" to this agent instance: heartbeat to keep a lease, complete or fail to let the task go."
		" Returns the tasks claimed (none: nothing to do now).",
		_object(
			{
				"task_types": {
					"type": "array",
					"items": {"type": "string", "enum": list(tasks.TASK_TYPES)},
					"description": "only these task types (default: those the agent's definition runs)",
				},
				"limit": {"type": "integer", "minimum": 1, "maximum": tasks.MAX_CLAIM, "default": 1},
				"lease": _LEASE,
			}
		),
	),
	Spec(
		"tasks.heartbeat",
		"Say this agent instance is alive; with `task` (one it holds), extend that task's lease.",
		_object({"task": _TASK, "lease": _LEASE}),
	),
	Spec(
		"tasks.complete",
		"Finish a task this agent instance holds, with its result (any JSON, up to 256 KiB).",
		_object({"task": _TASK, "result": {"description": "the task's result, any JSON value"}}, ("task",)),
	),
	Spec(
		"tasks.fail",
		"Report that this attempt at a task it holds failed. With retry (the default) the task is tried"
		" again after a backoff while attempts remain; otherwise it fails for good.",
		_object(
			{
				"task": _TASK,
				"error": {"type": "string", "minLength": 1, "description": "what went wrong"},
				"retry": {"type": "boolean", "default": True},
			},
			("task", "error"),
		),
	),
)

# The allow-list's tools; the document tools get their DocTypes as an enum.
CAPABILITIES = {
	"lore.search": Spec(
		"lore.search",
		"Search Lore, the knowledge base: the passages best matching `query` among the documents this"
		" agent's user may read, best first, each naming its document.",
		_object(
			{
				"query": {"type": "string", "description": "what to look for, in words"},
				"limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 10},
				"mode": {"type": "string", "enum": ["hybrid", "vector", "keyword"]},
				"metadata_filter": {"type": "object"},
				"documents": {"type": "array", "items": _NAME},
				"sources": {"type": "array", "items": _NAME},
				"doctypes": {"type": "array", "items": _NAME},
				"since": {"type": "string", "description": "chunks created at or after (a date or datetime)"},
				"until": {"type": "string"},
			},
			("query",),
		),
		read_only=True,
	),
	"documents.read": Spec(
		"documents.read",
		"Read one document (its fields) of an allowed DocType.",
		_object({"doctype": {"type": "string"}, "name": _NAME}, ("doctype", "name")),
		read_only=True,
	),
	"documents.create": Spec(
		"documents.create",
		"Create a document of an allowed DocType from its fields; returns its name.",
		_object({"doctype": {"type": "string"}, "fields": {"type": "object"}}, ("doctype", "fields")),
	),
	"synapse.metrics": Spec(
		"synapse.metrics",
		"Query Synapse metric points (metric_name, value, dimensions, time) with Frappe filters,"
		' e.g. [["metric_name", "=", "cpu.usage"], ["time", ">", "2026-01-01"]].',
		_object(
			{
				"filters": {"type": ["array", "object"]},
				"fields": {"type": "array", "items": {"type": "string"}},
				"limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
			}
		),
		read_only=True,
	),
	"interactions.record": Spec(
		"interactions.record",
		"Record interactions of this agent (agent_instance_id, session_id, interaction_type, content,"
		" metadata each).",
		_object(
			{"interactions": {"type": "array", "items": {"type": "object"}, "minItems": 1}}, ("interactions",)
		),
	),
	"approvals.request": Spec(
		"approvals.request",
		"Ask a human to approve something about a task this agent instance holds; the task waits for"
		" the answer.",
		_object(
			{
				"task": _TASK,
				"approval_type": {
					"type": "string",
					"enum": list(tasks.APPROVAL_TYPES),
					"default": "tool_use",
				},
				"description": {"type": "string"},
				"details": {"description": "what the approver needs to decide, any JSON"},
			},
			("task",),
		),
	),
}
assert set(CAPABILITIES) == set(tools.TOOLS)


def specs(allowed: dict) -> list[Spec]:
	"""The tools of an agent whose definition allows `allowed` (from tools.allow_list): the runtime's,
	then each granted capability (the document tools limited to their DocTypes)."""
	found = list(RUNTIME)
	for name, spec in CAPABILITIES.items():
		granted = allowed.get(name)
		if not granted:
			continue
		if name in tools.DOCTYPE_TOOLS:
			schema = {**spec.input_schema, "properties": dict(spec.input_schema["properties"])}
			schema["properties"]["doctype"] = {"type": "string", "enum": list(granted)}
			spec = Spec(spec.name, spec.description, schema, spec.read_only, spec.destructive)
		found.append(spec)
	return found
