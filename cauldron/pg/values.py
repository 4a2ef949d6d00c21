"""Checks of incoming values, before any of them reaches PostgreSQL or a JSON response.

Every Cauldron endpoint takes its parameters through these checks (with cauldron.params as the
Frappe glue), and the Postgres layer repeats the ones its own writes depend on, so a bad value is a
CauldronDBError with a readable message and never a database error halfway through a write:

- text: PostgreSQL cannot store NUL (U+0000) in text or jsonb, and a lone surrogate (U+D800 to
  U+DFFF, which JSON's \\ud800 escape can carry) is no Unicode at all: both are refused, in keys too;
- numbers: NaN and ±Infinity are refused (they are no JSON, and a response holding one is invalid);
  whole numbers in JSON must fit in 64 bits; a bool is never a whole number (`True` passes Python's
  isinstance(x, int));
- structure: JSON nested deeper than MAX_DEPTH is refused, and so is JSON text that does not parse;
- size: one chunk or interaction at most MAX_ITEM_BYTES, one call's parameters at most MAX_CALL_BYTES.

Sizes count the UTF-8 bytes of strings and keys and the digits of numbers: close to the JSON text.
"""

import datetime
import json
import math
import re

from cauldron.pg import CauldronDBError

INT4_MAX = 2**31 - 1
INT8_MAX = 2**63 - 1
MAX_DEPTH = 64
# One chunk (content and metadata) or one agent interaction (content and metadata).
MAX_ITEM_BYTES = 256 * 1024
# All the parameters of one call together.
MAX_CALL_BYTES = 16 * 1024 * 1024
MAX_NAME_LENGTH = 140  # Frappe's names are varchar(140)
_DIGITS = re.compile(r"\s*[+-]?[0-9]{1,20}\s*\Z")


class InvalidValue(CauldronDBError):
	"""A value no Cauldron table or response can hold; the message names it and says why."""


def _path(node) -> str:
	"""`what`, then [index] and .key steps down to the value, from a chain of (parent, step)."""
	steps = []
	while node is not None:
		node, step = node
		steps.append(step)
	return "".join(reversed(steps))


def _step(key) -> str:
	if isinstance(key, int):
		return f"[{key}]"
	return f"[{json.dumps(key, ensure_ascii=True)}]" if not str(key).isidentifier() else f".{key}"


def text(value: str, what: str) -> int:
	"""Refuse NUL and lone surrogates in `value`; returns its UTF-8 length."""
	if "\x00" in value:
		raise InvalidValue(f"{what} contains a NUL character (\\u0000), which PostgreSQL cannot store")
	try:
		return len(value.encode("utf-8"))
	except UnicodeEncodeError as e:
		raise InvalidValue(
			f"{what} contains a lone surrogate (\\u{ord(value[e.start]):04x}), which is not valid Unicode"
		) from None


def check(value, what: str, max_bytes: int | None = None) -> int:
	"""Check that `value` is JSON a PostgreSQL text or jsonb column and a JSON response can carry
	(see the module's doc); returns its size in bytes, refused above `max_bytes`. Iterative, so no
	depth of nesting can exhaust the stack."""
	size = 0
	pending = [(value, (None, what), 0)]
	while pending:
		item, node, depth = pending.pop()
		if isinstance(item, str):
			size += text(item, _path(node) if "\x00" in item or not item.isascii() else what) + 2
		elif item is None or isinstance(item, bool):
			size += 5
		elif isinstance(item, int):
			if item.bit_length() > 63:
				raise InvalidValue(f"{_path(node)} is a whole number beyond 64 bits: {shown(item)}")
			size += 20
		elif isinstance(item, float):
			if not math.isfinite(item):
				raise InvalidValue(f"{_path(node)} is {item}, which is not a number JSON can carry")
			size += 24
		elif isinstance(item, datetime.date | datetime.time):  # from server code, never from JSON
			size += 32
		elif isinstance(item, dict | list | tuple):
			if depth >= MAX_DEPTH:
				raise InvalidValue(f"{what} is nested deeper than {MAX_DEPTH} levels")
			size += 2
			if isinstance(item, dict):
				for key, member in item.items():
					if not isinstance(key, str):
						raise InvalidValue(f"{_path(node)} has a key that is not text: {shown(key)}")
					size += text(key, f"a key of {_path(node)}") + 3
					pending.append((member, (node, _step(key)), depth + 1))
			else:
				pending.extend((member, (node, _step(i)), depth + 1) for i, member in enumerate(item))
		else:
			raise InvalidValue(f"{_path(node)} is a {type(item).__name__}, not a JSON value")
		if max_bytes is not None and size > max_bytes:
			raise InvalidValue(f"{what} is larger than {_bytes(max_bytes)}")
	return size


def parse_json(value, what: str, max_bytes: int = MAX_CALL_BYTES):
	"""A parameter that holds JSON: JSON text parsed (strictly: no NaN or Infinity), or a value
	already parsed (a JSON request body), checked either way."""
	if isinstance(value, bytes | bytearray):
		try:
			value = value.decode("utf-8")
		except UnicodeDecodeError:
			raise InvalidValue(f"{what} is not UTF-8 text") from None
	if isinstance(value, str):
		if len(value) > max_bytes:
			raise InvalidValue(f"{what} is larger than {_bytes(max_bytes)}")
		text(value, what)
		try:
			value = json.loads(value, parse_constant=_no_constant)
		except RecursionError:
			raise InvalidValue(f"{what} is nested deeper than {MAX_DEPTH} levels") from None
		except ValueError as e:
			raise InvalidValue(f"{what} is not valid JSON: {e}") from None
	check(value, what, max_bytes)
	return value


def _no_constant(name: str):
	raise ValueError(f"{name} is not a number JSON can carry")


def whole_number(value, what: str, low: int = 0, high: int = INT4_MAX, text_allowed: bool = False) -> int:
	"""A whole number from `low` to `high`. Never a bool; numeric text only when `text_allowed` (a
	form parameter arrives as text)."""
	if text_allowed and isinstance(value, str) and _DIGITS.match(value):
		value = int(value)
	if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
		return value
	raise InvalidValue(f"{what} must be a whole number from {low} to {high}, not {shown(value)}")


def name(value, what: str) -> str:
	"""A document name given as a parameter: text of 1 to 140 characters, no NUL or surrogate."""
	if not isinstance(value, str) or not value:
		raise InvalidValue(f"{what} must be a document name (text), not {shown(value)}")
	text(value, what)
	if len(value) > MAX_NAME_LENGTH:
		raise InvalidValue(f"{what} is longer than {MAX_NAME_LENGTH} characters")
	return value


def scalar(value, what: str):
	"""One plain value (text, number, bool or null), checked: a filter value, for instance."""
	if isinstance(value, dict | list | tuple):
		raise InvalidValue(f"{what} must be a single value, not {shown(value)}")
	check(value, what)
	return value


def shown(value) -> str:
	try:
		text = repr(value)
	except ValueError:  # an int too long for repr
		return f"a {type(value).__name__}"
	return text if len(text) <= 60 else text[:57] + "..."


def _bytes(count: int) -> str:
	return f"{count // (1024 * 1024)} MiB" if count >= 1024 * 1024 else f"{count // 1024} KiB"
