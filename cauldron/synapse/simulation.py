"""Synapse business simulations: Monte Carlo over a model of formulas (framework-free).

A model (`model_definition`) names its formulas and, optionally, its outputs and run settings:

    {
      "variables": {"revenue": "price * units", "profit": "revenue - cost * units - fixed",
                    "margin": "profit / revenue if revenue != 0 else 0"},
      "outputs": ["profit", "margin"],          # default: every variable
      "parameters": {...},                      # optional; the document's `parameters` add to them
      "iterations": 10000, "seed": 42           # optional (default 10,000 draws; a seed is chosen)
    }

Parameters are numbers (fixed) or distributions: {"distribution": "normal", "mean": m, "std": s},
"uniform" (min, max), "triangular" (min, mode, max), "lognormal" (mu, sigma: of the underlying
normal), "exponential" (mean), "poisson" (mean), "beta" (alpha, beta), "discrete" (values, weights
optional) or "fixed" (value); any of them may add "clip": [low, high]. Scenarios
({"name": {parameter: override}}) override parameters: an override without "distribution"
changes only the fields it names (`{"price": {"mean": 12}}`), anything else replaces the
parameter. The scenario "base" (the parameters as given) is always run first.

Formulas are arithmetic expressions, checked on their syntax tree before anything runs and
evaluated on numpy arrays, one element per draw: numbers, names of parameters and variables,
+ - * / // % **, comparisons, `and`/`or`/`not`, `a if cond else b`, and the functions in
FUNCTIONS. No attribute, subscript, call of anything else, or Python evaluation: `eval` is never
used. Refused with a SimulationError that names the formula: syntax errors, unknown names,
formulas that refer to each other in a cycle, and at run time a division by zero (or a log,
sqrt, ... outside its domain) in a draw where that branch is taken, or a value that is not finite.

Each parameter draws from its own random stream, derived from the seed and its name, so one seed
gives the same results every time, and a parameter a scenario leaves alone has the same draws in
every scenario (common random numbers: the scenarios differ only by what they change).
Results: per scenario and output, mean, std, min, max, the percentiles p5, p25, p50, p75, p95 and
a histogram.
"""

import ast
import graphlib
import keyword
import math
import re
import zlib
from dataclasses import dataclass

import numpy as np

from cauldron.pg import CauldronDBError

DEFAULT_ITERATIONS = 10_000
MAX_ITERATIONS = 200_000
MAX_NAMES = 200
MAX_SCENARIOS = 50
MAX_FORMULA = 2000
MAX_NODES = 500
MAX_CELLS = 20_000_000  # draws x (parameters + variables) held at once
PERCENTILES = (5, 25, 50, 75, 95)
HISTOGRAM_BINS = 20
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


class SimulationError(CauldronDBError):
	"""A model, parameter or scenario that cannot be simulated; the message names it."""


def _min(*args):
	"""The smallest of the arguments, draw by draw."""
	return np.minimum.reduce(np.broadcast_arrays(*args))


def _max(*args):
	return np.maximum.reduce(np.broadcast_arrays(*args))


# name: (function, lowest arity, highest arity, domain check of the first argument or None)
FUNCTIONS = {
	"abs": (np.abs, 1, 1, None),
	"min": (_min, 2, 20, None),
	"max": (_max, 2, 20, None),
	"sqrt": (np.sqrt, 1, 1, (lambda x: x < 0, "the square root of a negative number")),
	"exp": (np.exp, 1, 1, None),
	"log": (np.log, 1, 1, (lambda x: x <= 0, "the logarithm of a number that is not positive")),
	"log10": (np.log10, 1, 1, (lambda x: x <= 0, "the logarithm of a number that is not positive")),
	"floor": (np.floor, 1, 1, None),
	"ceil": (np.ceil, 1, 1, None),
	"round": (lambda x, digits=0: np.round(x, int(np.max(digits))), 1, 2, None),
	"clip": (np.clip, 3, 3, None),
}

_BINARY = {
	ast.Add: np.add,
	ast.Sub: np.subtract,
	ast.Mult: np.multiply,
	ast.Div: np.divide,
	ast.FloorDiv: np.floor_divide,
	ast.Mod: np.mod,
	ast.Pow: np.power,
}
_COMPARE = {
	ast.Lt: np.less,
	ast.LtE: np.less_equal,
	ast.Gt: np.greater,
	ast.GtE: np.greater_equal,
	ast.Eq: np.equal,
	ast.NotEq: np.not_equal,
}
_SYMBOL = {ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%"}


def _shown(text: str) -> str:
	return text if len(text) <= 80 else text[:77] + "..."


@dataclass
class Formula:
	name: str
	text: str
	tree: ast.Expression
	names: set[str]


def parse_formula(name: str, text) -> Formula:
	"""The formula's syntax tree, every node checked against what formulas may hold."""
	if isinstance(text, bool) or not isinstance(text, str | int | float):
		raise SimulationError(f"variable {name!r}: a formula is text such as 'price * units', not {text!r}")
	text = str(text)
	if not text.strip() or len(text) > MAX_FORMULA:
		raise SimulationError(f"variable {name!r}: a formula has 1 to {MAX_FORMULA} characters")
	try:
		tree = ast.parse(text.strip(), mode="eval")
	except SyntaxError as e:
		raise SimulationError(f"variable {name!r}: {_shown(text)!r} is not a formula ({e.msg})") from None
	names: set[str] = set()
	count = 0
	for node in ast.walk(tree):
		count += 1
		if count > MAX_NODES:
			raise SimulationError(f"variable {name!r}: the formula is too long (over {MAX_NODES} parts)")
		_check_node(name, text, node, names)
	return Formula(name, text, tree, names)


def _check_node(name: str, text: str, node, names: set[str]) -> None:
	allowed = (
		ast.Expression,
		ast.BinOp,
		ast.UnaryOp,
		ast.BoolOp,
		ast.Compare,
		ast.IfExp,
		ast.Call,
		ast.Constant,
		ast.Name,
		ast.Load,
		ast.operator,
		ast.unaryop,
		ast.boolop,
		ast.cmpop,
	)
	what = f"variable {name!r} ({_shown(text)!r})"
	if not isinstance(node, allowed):
		raise SimulationError(f"{what}: {type(node).__name__.lower()} is not allowed in a formula")
	if isinstance(node, ast.BinOp) and type(node.op) not in _BINARY:
		raise SimulationError(f"{what}: operator {type(node.op).__name__} is not allowed in a formula")
	if isinstance(node, ast.UnaryOp) and not isinstance(node.op, ast.USub | ast.UAdd | ast.Not):
		raise SimulationError(f"{what}: operator {type(node.op).__name__} is not allowed in a formula")
	if isinstance(node, ast.Compare) and any(type(op) not in _COMPARE for op in node.ops):
		raise SimulationError(f"{what}: only <, <=, >, >=, == and != compare")
	if isinstance(node, ast.Constant) and (
		isinstance(node.value, bool) or not isinstance(node.value, int | float)
	):
		raise SimulationError(f"{what}: {node.value!r} is not a number")
	if isinstance(node, ast.Call):
		function = node.func.id if isinstance(node.func, ast.Name) else None
		if function not in FUNCTIONS:
			shown = function or ast.unparse(node.func)
			raise SimulationError(
				f"{what}: {shown}() is not a function formulas may call ({', '.join(sorted(FUNCTIONS))})"
			)
		if node.keywords or any(isinstance(arg, ast.Starred) for arg in node.args):
			raise SimulationError(f"{what}: {function}() takes plain arguments only")
		low, high = FUNCTIONS[function][1:3]
		if not low <= len(node.args) <= high:
			count = str(low) if low == high else f"{low} to {high}"
			raise SimulationError(f"{what}: {function}() takes {count} arguments, not {len(node.args)}")
	if isinstance(node, ast.Call):
		node.func.checked_call = True  # the name of a function called: not a parameter or variable
	if isinstance(node, ast.Name) and not getattr(node, "checked_call", False):
		if node.id in FUNCTIONS:
			raise SimulationError(f"{what}: {node.id} is a function: call it, as in {node.id}(x)")
		names.add(node.id)


class _Evaluator:
	"""Evaluates a checked formula over arrays of draws; `active` marks the draws whose branch is
	taken (a division by zero in a branch not taken is no error)."""

	def __init__(self, formula: Formula, env: dict, size: int, scenario: str):
		self.formula = formula
		self.env = env
		self.size = size
		self.scenario = scenario

	def fail(self, why: str, active: np.ndarray, bad: np.ndarray):
		count = int(np.count_nonzero(bad & active))
		raise SimulationError(
			f"variable {self.formula.name!r} ({_shown(self.formula.text)!r}) {why} in {count:,} of"
			f" {self.size:,} draws (scenario {self.scenario!r})"
		)

	def run(self, node, active):
		if isinstance(node, ast.Expression):
			return self.run(node.body, active)
		if isinstance(node, ast.Constant):
			return np.float64(node.value)
		if isinstance(node, ast.Name):
			return self.env[node.id]
		if isinstance(node, ast.UnaryOp):
			operand = self.run(node.operand, active)
			if isinstance(node.op, ast.Not):
				return np.logical_not(operand)
			return np.negative(operand) if isinstance(node.op, ast.USub) else operand
		if isinstance(node, ast.BinOp):
			left, right = self.run(node.left, active), self.run(node.right, active)
			if isinstance(node.op, ast.Div | ast.FloorDiv | ast.Mod):
				zero = np.broadcast_to(np.asarray(right) == 0, (self.size,))
				if np.any(zero & active):
					self.fail(
						f"divides by zero ({_SYMBOL[type(node.op)]} {ast.unparse(node.right)})", active, zero
					)
			return _BINARY[type(node.op)](np.asarray(left, dtype=float), right)
		if isinstance(node, ast.BoolOp):
			values = [self.run(value, active) for value in node.values]
			combine = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
			return combine.reduce(np.broadcast_arrays(*values))
		if isinstance(node, ast.Compare):
			left, result = self.run(node.left, active), None
			for op, comparator in zip(node.ops, node.comparators, strict=True):
				right = self.run(comparator, active)
				step = _COMPARE[type(op)](left, right)
				result = step if result is None else np.logical_and(result, step)
				left = right
			return result
		if isinstance(node, ast.IfExp):
			test = np.broadcast_to(np.asarray(self.run(node.test, active), dtype=bool), (self.size,))
			body = self.run(node.body, active & test)
			orelse = self.run(node.orelse, active & ~test)
			return np.where(test, body, orelse)
		if isinstance(node, ast.Call):
			function, _low, _high, domain = FUNCTIONS[node.func.id]
			args = [self.run(arg, active) for arg in node.args]
			if domain:
				check, message = domain
				bad = np.broadcast_to(check(np.asarray(args[0], dtype=float)), (self.size,))
				if np.any(bad & active):
					self.fail(f"takes {message} ({ast.unparse(node)})", active, bad)
			return function(*args)
		raise AssertionError(f"unchecked node {node!r}")  # parse_formula refused it


@dataclass
class Model:
	parameters: dict  # name -> checked spec
	formulas: dict  # name -> Formula
	order: list[str]  # variables in the order they are evaluated
	outputs: list[str]
	scenarios: dict  # name -> {parameter: checked spec}
	iterations: int
	seed: int | None


_DISTRIBUTIONS = {
	"fixed": ("value",),
	"normal": ("mean", "std"),
	"uniform": ("min", "max"),
	"triangular": ("min", "mode", "max"),
	"lognormal": ("mu", "sigma"),
	"exponential": ("mean",),
	"poisson": ("mean",),
	"beta": ("alpha", "beta"),
	"discrete": ("values",),
}
_ALIASES = {"sd": "std", "stddev": "std", "low": "min", "high": "max", "lambda": "mean", "scale": "mean"}


def _number(value, what: str) -> float:
	if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
		raise SimulationError(f"{what} must be a finite number, not {value!r}")
	return float(value)


def check_parameter(name: str, spec, where: str = "parameter") -> dict:
	"""A parameter's spec, normalized: {"distribution": ..., fields...}."""
	what = f"{where} {name!r}"
	if not isinstance(spec, dict):
		return {"distribution": "fixed", "value": _number(spec, what)}
	spec = {_ALIASES.get(key, key): value for key, value in spec.items()}
	kind = spec.get("distribution", "fixed" if "value" in spec else None)
	if kind not in _DISTRIBUTIONS:
		raise SimulationError(
			f"{what}: distribution must be one of {', '.join(_DISTRIBUTIONS)}, not {spec.get('distribution')!r}"
		)
	fields = _DISTRIBUTIONS[kind]
	unknown = set(spec) - {"distribution", "clip", "weights", *fields}
	if unknown:
		raise SimulationError(
			f"{what}: a {kind} distribution takes {', '.join(fields)}, not {', '.join(sorted(unknown))}"
		)
	missing = [f for f in fields if f not in spec]
	if missing:
		raise SimulationError(f"{what}: a {kind} distribution needs {', '.join(missing)}")
	result = {"distribution": kind}
	if kind == "discrete":
		options = spec["values"]
		if not isinstance(options, list) or not 1 <= len(options) <= 10_000:
			raise SimulationError(f"{what}: values must be a list of 1 to 10,000 numbers")
		result["values"] = [_number(v, f"{what} values") for v in options]
		if spec.get("weights") is not None:
			weights = spec["weights"]
			if not isinstance(weights, list) or len(weights) != len(options):
				raise SimulationError(f"{what}: weights must be a list as long as values")
			weights = [_number(w, f"{what} weights") for w in weights]
			if min(weights) < 0 or sum(weights) <= 0:
				raise SimulationError(f"{what}: weights must be non-negative with a positive sum")
			result["weights"] = weights
	else:
		if "weights" in spec:
			raise SimulationError(f"{what}: only a discrete distribution takes weights")
		for f in fields:
			result[f] = _number(spec[f], f"{what} {f}")
	_check_shape(what, kind, result)
	if spec.get("clip") is not None:
		clip = spec["clip"]
		if not isinstance(clip, list) or len(clip) != 2:
			raise SimulationError(f"{what}: clip must be [low, high]")
		low, high = (_number(v, f"{what} clip") for v in clip)
		if low > high:
			raise SimulationError(f"{what}: clip's low {low} is above its high {high}")
		result["clip"] = [low, high]
	return result


def _check_shape(what: str, kind: str, spec: dict) -> None:
	def need(condition, message):
		if not condition:
			raise SimulationError(f"{what}: {message}")

	if kind == "normal":
		need(spec["std"] >= 0, "std must not be negative")
	elif kind == "uniform":
		need(spec["min"] <= spec["max"], "min must not be above max")
	elif kind == "triangular":
		need(spec["min"] <= spec["mode"] <= spec["max"], "min <= mode <= max is required")
		need(spec["min"] < spec["max"], "min must be below max")
	elif kind == "lognormal":
		need(spec["sigma"] >= 0, "sigma must not be negative")
	elif kind in ("exponential", "poisson"):
		need(spec["mean"] > 0 if kind == "exponential" else spec["mean"] >= 0, "mean must be positive")
	elif kind == "beta":
		need(spec["alpha"] > 0 and spec["beta"] > 0, "alpha and beta must be positive")


def _check_name(name, what: str) -> str:
	if not isinstance(name, str) or not NAME.fullmatch(name) or keyword.iskeyword(name) or name in FUNCTIONS:
		raise SimulationError(
			f"{what} {name!r} is not a name formulas can use (letters, digits and _, not starting"
			" with a digit, not a Python keyword or a function name)"
		)
	return name


def _object(value, what: str) -> dict:
	if value in (None, ""):
		return {}
	if not isinstance(value, dict):
		raise SimulationError(f"{what} must be an object, not {type(value).__name__}")
	return value


def parse_model(definition, parameters=None, scenarios=None) -> Model:
	"""The model checked whole: names, distributions, formulas, references, cycles, scenarios."""
	definition = _object(definition, "the model definition")
	unknown = set(definition) - {"variables", "outputs", "parameters", "iterations", "seed", "description"}
	if unknown:
		raise SimulationError(
			f"the model definition takes variables, outputs, parameters, iterations and seed, not {', '.join(sorted(unknown))}"
		)
	variables = _object(definition.get("variables"), "variables")
	if not variables:
		raise SimulationError('the model defines no variables: give {"variables": {"name": "formula", ...}}')
	given = {
		**_object(definition.get("parameters"), "the model's parameters"),
		**_object(parameters, "parameters"),
	}
	if len(given) + len(variables) > MAX_NAMES:
		raise SimulationError(f"a model has at most {MAX_NAMES} parameters and variables")
	checked = {_check_name(n, "parameter"): check_parameter(n, spec) for n, spec in given.items()}
	formulas = {}
	for name, text in variables.items():
		_check_name(name, "variable")
		if name in checked:
			raise SimulationError(f"{name!r} is both a parameter and a variable")
		formulas[name] = parse_formula(name, text)
	graph = {}
	for name, formula in formulas.items():
		for used in sorted(formula.names):
			if used not in checked and used not in formulas:
				known = ", ".join(sorted([*checked, *formulas])) or "none"
				raise SimulationError(
					f"variable {name!r} ({_shown(formula.text)!r}) names {used!r}, which is neither a"
					f" parameter nor a variable (known: {known})"
				)
		graph[name] = {used for used in formula.names if used in formulas}
	try:
		order = list(graphlib.TopologicalSorter(graph).static_order())
	except graphlib.CycleError as e:
		cycle = e.args[1]
		raise SimulationError(
			f"formulas refer to each other in a cycle: {' -> '.join(reversed(cycle))}"
		) from None
	outputs = definition.get("outputs") or list(variables)
	if not isinstance(outputs, list) or not all(isinstance(o, str) for o in outputs):
		raise SimulationError("outputs must be a list of variable or parameter names")
	for output in outputs:
		if output not in formulas and output not in checked:
			raise SimulationError(f"output {output!r} is neither a variable nor a parameter of the model")
	scenario_specs = {"base": {}}
	scenarios = _object(scenarios, "scenarios")
	if len(scenarios) > MAX_SCENARIOS:
		raise SimulationError(f"at most {MAX_SCENARIOS} scenarios")
	for scenario, overrides in scenarios.items():
		if not isinstance(scenario, str) or not scenario.strip() or len(scenario) > 140:
			raise SimulationError(f"scenario names are text of 1 to 140 characters, not {scenario!r}")
		overrides = _object(overrides, f"scenario {scenario!r}")
		specs = {}
		for name, override in overrides.items():
			if name not in checked:
				raise SimulationError(
					f"scenario {scenario!r} overrides {name!r}, which is not a parameter of the model"
				)
			if (
				isinstance(override, dict)
				and "distribution" not in override
				and isinstance(given[name], dict)
			):
				override = {**given[name], **override}
			specs[name] = check_parameter(name, override, f"scenario {scenario!r} parameter")
		scenario_specs[scenario] = specs
	iterations = definition.get("iterations", DEFAULT_ITERATIONS)
	if (
		isinstance(iterations, bool)
		or not isinstance(iterations, int)
		or not 1 <= iterations <= MAX_ITERATIONS
	):
		raise SimulationError(
			f"iterations must be a whole number from 1 to {MAX_ITERATIONS:,}, not {iterations!r}"
		)
	if iterations * (len(checked) + len(formulas)) > MAX_CELLS:
		raise SimulationError(
			f"{iterations:,} draws of {len(checked) + len(formulas)} names is more than {MAX_CELLS:,} values:"
			" take fewer iterations"
		)
	seed = definition.get("seed")
	if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63):
		raise SimulationError(f"seed must be a whole number from 0 to 2**63 - 1, not {seed!r}")
	return Model(checked, formulas, order, outputs, scenario_specs, iterations, seed)


def _stream(seed: int, name: str) -> np.random.Generator:
	return np.random.default_rng([seed, zlib.crc32(name.encode())])


def sample(spec: dict, rng: np.random.Generator, size: int) -> np.ndarray:
	kind = spec["distribution"]
	if kind == "fixed":
		draws = np.full(size, spec["value"])
	elif kind == "normal":
		draws = rng.normal(spec["mean"], spec["std"], size)
	elif kind == "uniform":
		draws = rng.uniform(spec["min"], spec["max"], size)
	elif kind == "triangular":
		draws = rng.triangular(spec["min"], spec["mode"], spec["max"], size)
	elif kind == "lognormal":
		draws = rng.lognormal(spec["mu"], spec["sigma"], size)
	elif kind == "exponential":
		draws = rng.exponential(spec["mean"], size)
	elif kind == "poisson":
		draws = rng.poisson(spec["mean"], size).astype(float)
	elif kind == "beta":
		draws = rng.beta(spec["alpha"], spec["beta"], size)
	else:  # discrete
		weights = spec.get("weights")
		p = np.asarray(weights) / np.sum(weights) if weights else None
		draws = rng.choice(np.asarray(spec["values"]), size=size, p=p)
	if "clip" in spec:
		draws = np.clip(draws, *spec["clip"])
	if not np.all(np.isfinite(draws)):
		raise SimulationError(f"a {kind} parameter drew values that are not finite: narrow it")
	return draws


def summary(values: np.ndarray) -> dict:
	finite = values.astype(float)
	result = {
		"mean": float(np.mean(finite)),
		"std": float(np.std(finite)),
		"min": float(np.min(finite)),
		"max": float(np.max(finite)),
	}
	for p, value in zip(PERCENTILES, np.percentile(finite, PERCENTILES), strict=True):
		result[f"p{p}"] = float(value)
	low, high = result["min"], result["max"]
	if low == high:
		counts, edges = [len(finite)], [low, high]
	else:
		counts, edges = np.histogram(finite, bins=HISTOGRAM_BINS, range=(low, high))
	result["histogram"] = {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}
	return result


def run(model: Model, seed: int | None = None) -> dict:
	"""Every scenario's draws through the formulas; the summary of each output (see the module)."""
	if seed is None:
		seed = model.seed
	if seed is None:
		seed = int(np.random.SeedSequence().entropy % 2**63)
	size = model.iterations
	results = {}
	for scenario, overrides in model.scenarios.items():
		env = {}
		for name, spec in model.parameters.items():
			env[name] = sample(overrides.get(name, spec), _stream(seed, name), size)
		everywhere = np.ones(size, dtype=bool)
		with np.errstate(all="ignore"):
			for name in model.order:
				formula = model.formulas[name]
				value = _Evaluator(formula, env, size, scenario).run(formula.tree, everywhere)
				value = np.broadcast_to(np.asarray(value, dtype=float), (size,))
				bad = ~np.isfinite(value)
				if bad.any():
					raise SimulationError(
						f"variable {name!r} ({_shown(formula.text)!r}) is not a finite number (overflow) in"
						f" {int(bad.sum()):,} of {size:,} draws (scenario {scenario!r})"
					)
				env[name] = value
		results[scenario] = {output: summary(env[output]) for output in model.outputs}
	return {
		"seed": seed,
		"iterations": size,
		"outputs": list(model.outputs),
		"scenarios": list(model.scenarios),
		"percentiles": list(PERCENTILES),
		"results": results,
	}


def simulate(
	definition, parameters=None, scenarios=None, seed: int | None = None, iterations: int | None = None
) -> dict:
	"""parse_model and run in one call; `iterations` overrides the model's."""
	model = parse_model(definition, parameters, scenarios)
	if iterations is not None:
		model = parse_model({**definition, "iterations": iterations}, parameters, scenarios)
	return run(model, seed)
