"""Aegis playbook steps: the documented set of actions, checked when a playbook is saved (framework-free).

A playbook's `steps` is a JSON list; each step names an action and its parameters::

	[
		{"action": "add_note", "note": "Brute force against {key}"},
		{"action": "disable_user", "user": "{key}"},
		{"action": "revoke_access", "user": "{key}"},
		{"action": "notify_role", "role": "System Manager", "message": "{title}"},
		{"action": "open_agent_task", "agent_definition": "Triage", "task_type": "triage",
			"title": "Investigate {title}", "priority": 8}
	]

Actions:
- `disable_user` (user): sets the User disabled (never Administrator or Guest);
- `revoke_access` (user): clears the user's API secret and ends all their sessions;
- `notify_role` (role, message): a Notification Log for every enabled user with that role;
- `add_note` (note): a line in the incident's timeline;
- `open_agent_task` (agent_definition, task_type, title, priority 1-10 optional): an Aether Agent Task
  for the incident, with the incident in its input.

Text parameters may hold placeholders filled from the incident: `{key}` (the detection's group, e.g.
the user of a brute force), `{title}`, `{severity}`, `{incident}` (its name), `{rule}`. Any other
`{...}` is refused when the playbook is saved, so nothing is filled in wrongly at run time.
"""

import re
from dataclasses import dataclass

from cauldron.aegis.rules import RuleError

ACTIONS = {
	"disable_user": {"required": ("user",), "optional": ()},
	"revoke_access": {"required": ("user",), "optional": ()},
	"notify_role": {"required": ("role", "message"), "optional": ()},
	"add_note": {"required": ("note",), "optional": ()},
	"open_agent_task": {"required": ("agent_definition", "task_type", "title"), "optional": ("priority",)},
}
PLACEHOLDERS = ("key", "title", "severity", "incident", "rule")
MAX_STEPS = 20
MAX_TEXT = 1000
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


@dataclass(frozen=True)
class PlaybookStep:
	index: int  # 0-based position in the playbook
	action: str
	params: dict

	def render(self, context: dict) -> dict:
		"""The parameters with placeholders filled from `context` (key, title, severity, incident, rule)."""
		return {
			name: _PLACEHOLDER.sub(lambda m: str(context.get(m.group(1)) or ""), value)
			if isinstance(value, str)
			else value
			for name, value in self.params.items()
		}

	def describe(self, context: dict | None = None) -> str:
		params = self.render(context or {})
		shown = ", ".join(f"{k}={v}" for k, v in params.items())
		return f"{self.action}({shown})"


def compile_steps(steps) -> list[PlaybookStep]:
	"""The steps of a playbook, checked; RuleError says which step is wrong and why."""
	if not isinstance(steps, list) or not steps:
		raise RuleError('steps must be a non-empty JSON list of {"action": ...} objects')
	if len(steps) > MAX_STEPS:
		raise RuleError(f"at most {MAX_STEPS} steps a playbook")
	compiled = []
	for index, step in enumerate(steps):
		where = f"steps[{index}]"
		if not isinstance(step, dict) or "action" not in step:
			raise RuleError(f"{where}: an object with an action, one of {', '.join(ACTIONS)}")
		action = step["action"]
		if action not in ACTIONS:
			raise RuleError(f"{where}: unknown action {action!r}: use one of {', '.join(ACTIONS)}")
		spec = ACTIONS[action]
		params = {k: v for k, v in step.items() if k != "action"}
		unknown = sorted(set(params) - set(spec["required"]) - set(spec["optional"]))
		if unknown:
			raise RuleError(f"{where}: {action} takes no {unknown[0]!r}")
		for name in spec["required"]:
			if not isinstance(params.get(name), str) or not params[name].strip():
				raise RuleError(f"{where}: {action} needs {name} (text)")
		for name, value in params.items():
			if name == "priority":
				if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10:
					raise RuleError(f"{where}: priority is a whole number from 1 to 10")
				continue
			if len(value) > MAX_TEXT:
				raise RuleError(f"{where}: {name} is longer than {MAX_TEXT} characters")
			for placeholder in _PLACEHOLDER.findall(value):
				if placeholder not in PLACEHOLDERS:
					raise RuleError(
						f"{where}: unknown placeholder {{{placeholder}}} in {name}: use "
						+ ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
					)
		compiled.append(PlaybookStep(index, action, params))
	return compiled
