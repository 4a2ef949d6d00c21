"""The tools an agent may call: an agent definition's `tools` is an allow-list of Cauldron capabilities.

    {
      "lore.search": true,                          Lore semantic search
      "documents.read": ["Lore Document", ...],     read documents of these DocTypes
      "documents.create": ["Aegis Security Incident"],  create documents of these DocTypes
      "synapse.metrics": true,                      query Synapse metrics
      "interactions.record": true,                  record interactions
      "approvals.request": true                     ask a human to approve something
    }

A tool left out, false, or a DocType not listed is refused; `{}` (the seed's default) allows nothing.
The allow-list narrows what the agent's Frappe user may do: Frappe's permissions still apply to every
call. Framework-free; cauldron.api.aether.call_tool records every call, refused ones included.
"""

from cauldron.pg import CauldronDBError, values

TOOLS = {
	"lore.search": "Lore semantic search",
	"documents.read": "read documents of the DocTypes listed",
	"documents.create": "create documents of the DocTypes listed",
	"synapse.metrics": "query Synapse metrics",
	"interactions.record": "record agent interactions",
	"approvals.request": "request a human approval for the task it holds",
}
# Tools that name the DocTypes they reach.
DOCTYPE_TOOLS = frozenset({"documents.read", "documents.create"})
MAX_DOCTYPES = 200


class ToolError(CauldronDBError):
	pass


class ToolRefused(ToolError):
	pass


def allow_list(tools) -> dict:
	"""The allow-list of a definition's `tools` (a parsed JSON object), checked: known tools only, true
	or false for plain tools, a list of DocType names for the document tools."""
	if tools in (None, ""):
		return {}
	if not isinstance(tools, dict):
		raise ToolError("tools must be an object of tool names (see cauldron.aether.tools)")
	result = {}
	for tool, value in tools.items():
		if tool not in TOOLS:
			raise ToolError(f"unknown tool {values.shown(tool)}; known: {', '.join(TOOLS)}")
		if tool in DOCTYPE_TOOLS:
			if not isinstance(value, list) or len(value) > MAX_DOCTYPES:
				raise ToolError(f"{tool} takes a list of DocType names, not {values.shown(value)}")
			for doctype in value:
				values.name(doctype, f"{tool} DocType")
			result[tool] = sorted(set(value))
		elif isinstance(value, bool):
			result[tool] = value
		else:
			raise ToolError(f"{tool} is true or false, not {values.shown(value)}")
	return result


def check(allowed: dict, tool, doctype: str | None = None) -> None:
	"""Raise ToolRefused unless `allowed` (from `allow_list`) lets the agent call `tool` (on `doctype`)."""
	if not isinstance(tool, str) or tool not in TOOLS:
		raise ToolRefused(f"unknown tool {values.shown(tool)}; known: {', '.join(TOOLS)}")
	granted = allowed.get(tool)
	if tool in DOCTYPE_TOOLS:
		if not isinstance(doctype, str) or not granted or doctype not in granted:
			raise ToolRefused(f"{tool} is not allowed on {values.shown(doctype)} for this agent")
	elif granted is not True:
		raise ToolRefused(f"{tool} is not in this agent's tools")
