"""Aegis detection rules: a playbook's `trigger_conditions` and a threat's `indicators` (framework-free).

A rule is a JSON object::

	{
		"match": {                                  # every condition must hold
			"event_type": "login_failed",               # a bare value: equals
			"severity": {"in": ["high", "critical"]},
			"source": {"regex": "^frappe"},
			"raw_data.user_agent": {"contains": "curl"},  # a path into raw_data, dots between keys
			"raw_data.ip": {"cidr": ["10.0.0.0/8", "2001:db8::/32"]},
			"raw_data.user": {"exists": true}
		},
		"any": [{"event_type": "a"}, {"event_type": "b"}],   # optional: at least one must hold
		"not": {"raw_data.user": "Administrator"},          # optional: must not hold
		"threshold": {"count": 5, "within": "10m", "group_by": "raw_data.user"},   # optional
		"severity": "high",                         # the incident's severity (default: the events')
		"title": "Repeated failed logins for {key}"  # the incident's title ({key}: the group's value)
	}

Fields are `event_type`, `source`, `severity`, `description` and `raw_data.<path>`. Operators:
`equals` (the default for a bare value), `in` (a list), `contains` (text contains, or a list holds),
`regex` (Python `re.search`), `cidr` (an IP address inside one of the networks), `exists`
(true/false), `gte` / `lte` (numbers). Text comparisons are case-sensitive except `contains` with
`"case": "insensitive"` beside it: `{"contains": "curl", "case": "insensitive"}`.

Without `threshold` every matching event is a detection. With it, the events matching the rule are
grouped by `group_by` (a field as above; events without it are not counted) and a group is detected
once it holds at least `count` events within `within` (s, m, h or d: "90s", "10m", "1h", "7d").

A threat's `indicators`: `{"ips": [...], "cidrs": [...], "domains": [...], "hashes": [...],
"user_agents": [...]}`; an event matches when an IP in it (`raw_data` keys ip, ip_address,
remote_addr, src_ip, source_ip, client_ip) is one of the IPs or in one of the networks, a domain
(keys domain, host, hostname, url's host; subdomains included) is named, a hash (keys hash, md5,
sha1, sha256, file_hash) is listed (case-insensitive), or its user agent contains a listed one.

`RuleError` says what is wrong with a rule and where, so a playbook with a bad rule can be refused
when it is saved.
"""

import ipaddress
import re
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlsplit

from cauldron.pg import CauldronDBError

FIELDS = ("event_type", "source", "severity", "description")
OPERATORS = ("equals", "in", "contains", "regex", "cidr", "exists", "gte", "lte")
SEVERITIES = ("info", "low", "medium", "high", "critical")
MAX_WINDOW = timedelta(days=30)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

IP_KEYS = ("ip", "ip_address", "remote_addr", "src_ip", "source_ip", "client_ip")
DOMAIN_KEYS = ("domain", "host", "hostname")
HASH_KEYS = ("hash", "md5", "sha1", "sha256", "file_hash")
UA_KEYS = ("user_agent", "useragent", "http_user_agent")
INDICATOR_KINDS = ("ips", "cidrs", "domains", "hashes", "user_agents")


class RuleError(CauldronDBError):
	"""A rule or indicator set that cannot be used, with where and why."""


def _where(path: str, message: str) -> RuleError:
	return RuleError(f"{path}: {message}" if path else message)


def field_value(event: dict, path: str):
	"""The value at `path` in an event (a dict with the columns of aegis.security_events), or None."""
	if path in FIELDS:
		return event.get(path)
	value = event.get("raw_data")
	for part in path.split(".")[1:]:
		if isinstance(value, dict):
			value = value.get(part)
		elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
			value = value[int(part)]
		else:
			return None
	return value


def _check_path(path, where: str) -> str:
	if not isinstance(path, str) or not path:
		raise _where(where, "a field must be non-empty text")
	if path in FIELDS:
		return path
	parts = path.split(".")
	if parts[0] != "raw_data" or len(parts) < 2 or not all(parts[1:]):
		raise _where(
			where,
			f"unknown field {path!r}: use one of {', '.join(FIELDS)} or raw_data.<key>[.<key>...]",
		)
	return path


def parse_window(text, where: str = "threshold.within") -> timedelta:
	if isinstance(text, int | float) and not isinstance(text, bool):
		seconds = float(text)
	elif isinstance(text, str) and re.fullmatch(r"\d+(\.\d+)?[smhd]", text.strip()):
		text = text.strip()
		seconds = float(text[:-1]) * _UNITS[text[-1]]
	else:
		raise _where(where, f"a window is seconds or text such as '90s', '10m', '1h', '7d', not {text!r}")
	if seconds <= 0 or seconds > MAX_WINDOW.total_seconds():
		raise _where(where, "a window must be longer than 0 and at most 30 days")
	return timedelta(seconds=seconds)


def _networks(value, where: str) -> list:
	items = value if isinstance(value, list) else [value]
	nets = []
	for item in items:
		try:
			nets.append(ipaddress.ip_network(str(item), strict=False))
		except ValueError:
			raise _where(where, f"{item!r} is not an IP network such as 10.0.0.0/8") from None
	return nets


def _ip(value):
	if not isinstance(value, str):
		return None
	try:
		return ipaddress.ip_address(value.strip())
	except ValueError:
		return None


def _number(value):
	if isinstance(value, bool):
		return None
	if isinstance(value, int | float):
		return value
	if isinstance(value, str):
		try:
			return float(value)
		except ValueError:
			return None
	return None


@dataclass(frozen=True)
class Condition:
	path: str
	op: str
	arg: object
	insensitive: bool = False

	def holds(self, event: dict) -> bool:
		value = field_value(event, self.path)
		op, arg = self.op, self.arg
		if op == "exists":
			return (value is not None) == arg
		if value is None:
			return False
		if op == "equals":
			return value == arg or (
				isinstance(value, int | float) and not isinstance(value, bool) and value == arg
			)
		if op == "in":
			return value in arg
		if op == "contains":
			if isinstance(value, list):
				return arg in value
			if not isinstance(value, str):
				return False
			return arg.lower() in value.lower() if self.insensitive else arg in value
		if op == "regex":
			return isinstance(value, str) and arg.search(value) is not None
		if op == "cidr":
			address = _ip(value)
			return address is not None and any(address in net for net in arg)
		number = _number(value)
		if number is None:
			return False
		return number >= arg if op == "gte" else number <= arg


def _condition(path: str, spec, where: str) -> Condition:
	path = _check_path(path, where)
	if not isinstance(spec, dict):
		if isinstance(spec, list):
			raise _where(where, 'a list needs an operator: {"in": [...]}')
		return Condition(path, "equals", spec)
	insensitive = False
	spec = dict(spec)
	case = spec.pop("case", None)
	if case is not None:
		if case not in ("sensitive", "insensitive"):
			raise _where(where, "case is 'sensitive' or 'insensitive'")
		insensitive = case == "insensitive"
	if len(spec) != 1:
		raise _where(where, f"one operator per field, one of {', '.join(OPERATORS)}")
	((op, arg),) = spec.items()
	if op not in OPERATORS:
		raise _where(where, f"unknown operator {op!r}: use one of {', '.join(OPERATORS)}")
	if op == "in":
		if not isinstance(arg, list):
			raise _where(where, "'in' takes a list")
	elif op == "contains":
		if not isinstance(arg, str | int | float) or isinstance(arg, bool):
			raise _where(where, "'contains' takes text or a number")
	elif op == "regex":
		if not isinstance(arg, str):
			raise _where(where, "'regex' takes text")
		try:
			arg = re.compile(arg, re.IGNORECASE if insensitive else 0)
		except re.error as e:
			raise _where(where, f"bad regular expression: {e}") from None
	elif op == "cidr":
		arg = _networks(arg, where)
	elif op == "exists":
		if not isinstance(arg, bool):
			raise _where(where, "'exists' takes true or false")
	elif op in ("gte", "lte"):
		if _number(arg) is None or isinstance(arg, str):
			raise _where(where, f"'{op}' takes a number")
	return Condition(path, op, arg, insensitive)


def _conditions(spec, where: str) -> tuple[Condition, ...]:
	if not isinstance(spec, dict) or not spec:
		raise _where(where, "must be an object of field: condition")
	return tuple(_condition(path, value, f"{where}.{path}") for path, value in spec.items())


@dataclass(frozen=True)
class Threshold:
	count: int
	within: timedelta
	group_by: str


@dataclass(frozen=True)
class Rule:
	name: str
	match: tuple[Condition, ...] = ()
	any: tuple[tuple[Condition, ...], ...] = ()
	none: tuple[Condition, ...] = ()
	threshold: Threshold | None = None
	severity: str | None = None
	title: str | None = None

	def matches(self, event: dict) -> bool:
		if not all(c.holds(event) for c in self.match):
			return False
		if self.any and not any(all(c.holds(event) for c in group) for group in self.any):
			return False
		if self.none and all(c.holds(event) for c in self.none):
			return False
		return True

	def key(self, event: dict) -> str | None:
		"""The group an event counts in: its group_by value as text ("" without a threshold)."""
		if self.threshold is None:
			return ""
		value = field_value(event, self.threshold.group_by)
		if value is None or value == "":
			return None
		return value if isinstance(value, str) else str(value)

	def incident_title(self, key: str) -> str:
		title = self.title or (f"{self.name}: {key}" if key else self.name)
		return title.replace("{key}", key or "")


def compile_rule(name: str, conditions) -> Rule:
	"""A Rule from a playbook's trigger_conditions (a dict), or RuleError."""
	if not isinstance(conditions, dict):
		raise RuleError("trigger_conditions must be a JSON object")
	known = {"match", "any", "not", "threshold", "severity", "title"}
	unknown = sorted(set(conditions) - known)
	if unknown:
		raise RuleError(f"unknown key {unknown[0]!r} in trigger_conditions: use {', '.join(sorted(known))}")
	if not conditions.get("match") and not conditions.get("any"):
		raise RuleError(
			"trigger_conditions needs 'match' (or 'any'): a rule without conditions matches everything"
		)
	match = _conditions(conditions["match"], "match") if conditions.get("match") else ()
	groups = ()
	if conditions.get("any") is not None:
		if not isinstance(conditions["any"], list) or not conditions["any"]:
			raise RuleError("any: must be a non-empty list of objects")
		groups = tuple(_conditions(g, f"any[{i}]") for i, g in enumerate(conditions["any"]))
	none = _conditions(conditions["not"], "not") if conditions.get("not") is not None else ()
	threshold = None
	if conditions.get("threshold") is not None:
		spec = conditions["threshold"]
		if not isinstance(spec, dict):
			raise RuleError("threshold: must be an object with count, within and group_by")
		count = spec.get("count")
		if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 1_000_000:
			raise RuleError("threshold.count: a whole number from 1 to 1,000,000")
		if "group_by" not in spec:
			raise RuleError("threshold.group_by: which field groups the events (e.g. raw_data.user)")
		threshold = Threshold(
			count, parse_window(spec.get("within")), _check_path(spec["group_by"], "threshold.group_by")
		)
	severity = conditions.get("severity")
	if severity is not None and severity not in SEVERITIES:
		raise RuleError(f"severity: one of {', '.join(SEVERITIES)}")
	title = conditions.get("title")
	if title is not None and (not isinstance(title, str) or len(title) > 200):
		raise RuleError("title: text of at most 200 characters")
	return Rule(name, match, groups, none, threshold, severity, title)


@dataclass(frozen=True)
class Indicators:
	"""A threat's indicators, compiled for matching."""

	name: str
	ips: frozenset = frozenset()
	networks: tuple = ()
	domains: frozenset = frozenset()
	hashes: frozenset = frozenset()
	user_agents: tuple = ()
	severity: str | None = None
	# (IP version, prefix length) -> {the network's address >> host bits: network}: an address is
	# looked up once per prefix length in use, not compared with every network
	by_prefix: tuple = ()

	def __post_init__(self):
		if self.networks and not self.by_prefix:
			groups: dict[tuple[int, int], dict[int, object]] = {}
			for net in self.networks:
				shift = net.max_prefixlen - net.prefixlen
				groups.setdefault((net.version, net.prefixlen), {}).setdefault(
					int(net.network_address) >> shift, net
				)
			object.__setattr__(self, "by_prefix", tuple(groups.items()))

	def _networks_of(self, address) -> list:
		found = []
		for (version, prefix), nets in self.by_prefix:
			if address.version == version:
				net = nets.get(int(address) >> (address.max_prefixlen - prefix))
				if net is not None:
					found.append(net)
		if len(found) > 1:
			found.sort(key=self.networks.index)  # as listed
		return found

	def __bool__(self) -> bool:
		return bool(self.ips or self.networks or self.domains or self.hashes or self.user_agents)

	def matches(self, event: dict) -> list[str]:
		"""The indicators this event carries, as 'kind:value' text (empty when none)."""
		raw = event.get("raw_data") if isinstance(event.get("raw_data"), dict) else {}
		found = []
		for key in IP_KEYS:
			address = _ip(raw.get(key))
			if address is None:
				continue
			if address in self.ips:
				found.append(f"ip:{address}")
			else:
				found.extend(f"cidr:{net}" for net in self._networks_of(address))
		if self.domains:
			hosts = [raw.get(k) for k in DOMAIN_KEYS if isinstance(raw.get(k), str)]
			if isinstance(raw.get("url"), str):
				hosts.append(urlsplit(raw["url"]).hostname or "")
			for host in hosts:
				host = host.lower().rstrip(".")
				parts = host.split(".")
				for i in range(len(parts) - 1):
					if ".".join(parts[i:]) in self.domains:
						found.append(f"domain:{'.'.join(parts[i:])}")
						break
		if self.hashes:
			for key in HASH_KEYS:
				value = raw.get(key)
				if isinstance(value, str) and value.lower() in self.hashes:
					found.append(f"hash:{value.lower()}")
		if self.user_agents:
			agents = [raw.get(k) for k in UA_KEYS if isinstance(raw.get(k), str)]
			for agent in agents:
				lowered = agent.lower()
				found.extend(f"user_agent:{ua}" for ua in self.user_agents if ua in lowered)
		return list(dict.fromkeys(found))


def _strings(value, where: str) -> list[str]:
	if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
		raise _where(where, "must be a list of non-empty text")
	return [v.strip() for v in value]


def compile_indicators(name: str, indicators, severity: str | None = None) -> Indicators:
	"""Indicators from a threat's `indicators` JSON (an empty object compiles to a falsy set)."""
	if indicators in (None, "", {}):
		return Indicators(name)
	if not isinstance(indicators, dict):
		raise RuleError("indicators must be a JSON object")
	unknown = sorted(set(indicators) - set(INDICATOR_KINDS))
	if unknown:
		raise RuleError(f"unknown indicator kind {unknown[0]!r}: use {', '.join(INDICATOR_KINDS)}")
	ips = set()
	for ip in _strings(indicators.get("ips", []), "indicators.ips"):
		address = _ip(ip)
		if address is None:
			raise RuleError(f"indicators.ips: {ip!r} is not an IP address")
		ips.add(address)
	networks = tuple(_networks(_strings(indicators.get("cidrs", []), "indicators.cidrs"), "indicators.cidrs"))
	domains = frozenset(
		d.lower().rstrip(".") for d in _strings(indicators.get("domains", []), "indicators.domains")
	)
	hashes = frozenset(h.lower() for h in _strings(indicators.get("hashes", []), "indicators.hashes"))
	agents = tuple(a.lower() for a in _strings(indicators.get("user_agents", []), "indicators.user_agents"))
	return Indicators(name, frozenset(ips), networks, domains, hashes, agents, severity)


@dataclass
class Detection:
	"""What a run found for one rule and group (or one threat): the events (ids with their times)
	that belong to the incident, oldest first."""

	rule: str
	key: str
	title: str
	severity: str
	events: list[tuple[str, object]] = field(default_factory=list)
	indicators: list[str] = field(default_factory=list)
	threat: str | None = None
