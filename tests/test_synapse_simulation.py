"""Synapse business simulations (cauldron.synapse.simulation): Monte Carlo over checked formulas."""

import numpy as np
import pytest

from cauldron.synapse import simulation
from cauldron.synapse.simulation import SimulationError

PRICING = {
	"variables": {
		"revenue": "price * units",
		"costs": "unit_cost * units + fixed",
		"profit": "revenue - costs",
		"margin": "profit / revenue if revenue != 0 else 0",
	},
	"outputs": ["profit", "margin"],
	"iterations": 20_000,
}
PARAMETERS = {
	"price": {"distribution": "normal", "mean": 10, "std": 1},
	"units": {"distribution": "triangular", "min": 800, "mode": 1000, "max": 1300},
	"unit_cost": {"distribution": "uniform", "min": 5, "max": 7},
	"fixed": 2000,
}


def test_percentiles_match_the_model():
	result = simulation.simulate(PRICING, PARAMETERS, seed=1)
	profit = result["results"]["base"]["profit"]
	# E[profit] = E[price - cost] * E[units] - fixed = 4 * 1033.3 - 2000
	assert profit["mean"] == pytest.approx(4 * 3100 / 3 - 2000, rel=0.02)
	assert profit["p5"] < profit["p25"] < profit["p50"] < profit["p75"] < profit["p95"]
	assert profit["min"] <= profit["p5"] and profit["p95"] <= profit["max"]
	assert sum(profit["histogram"]["counts"]) == 20_000
	assert len(profit["histogram"]["edges"]) == simulation.HISTOGRAM_BINS + 1
	assert result["outputs"] == ["profit", "margin"]
	assert result["scenarios"] == ["base"]
	assert result["iterations"] == 20_000 and result["seed"] == 1


def test_the_same_seed_gives_the_same_results_and_another_seed_others():
	first = simulation.simulate(PRICING, PARAMETERS, seed=7)
	assert simulation.simulate(PRICING, PARAMETERS, seed=7) == first
	other = simulation.simulate(PRICING, PARAMETERS, seed=8)
	assert other["results"]["base"]["profit"]["mean"] != first["results"]["base"]["profit"]["mean"]


def test_without_a_seed_one_is_chosen_and_reported_so_the_run_can_be_repeated():
	result = simulation.simulate(PRICING, PARAMETERS)
	assert isinstance(result["seed"], int)
	assert simulation.simulate(PRICING, PARAMETERS, seed=result["seed"]) == result
	# a seed in the model is used
	model = {**PRICING, "seed": 99}
	assert simulation.simulate(model, PARAMETERS)["seed"] == 99


def test_scenarios_override_parameters_and_share_the_draws_they_leave_alone():
	scenarios = {
		"premium": {"price": {"mean": 12}},  # only the mean: the std stays 1
		"cheap_supplier": {"unit_cost": 4.5},  # a number: fixed
	}
	result = simulation.simulate(PRICING, PARAMETERS, scenarios, seed=3)
	assert result["scenarios"] == ["base", "premium", "cheap_supplier"]
	base, premium, cheap = (result["results"][s]["profit"] for s in result["scenarios"])
	# +2 a unit on ~1033 units
	assert premium["mean"] - base["mean"] == pytest.approx(2 * 3100 / 3, rel=0.02)
	# the price's spread is kept: the premium's spread of profit is the base's
	assert premium["std"] == pytest.approx(base["std"], rel=0.1)
	assert cheap["mean"] - base["mean"] == pytest.approx(1.5 * 3100 / 3, rel=0.02)
	# common random numbers: units and cost drew the same in both, so the difference is exact
	model = simulation.parse_model(
		{"variables": {"p": "price"}, "outputs": ["p", "units"], "iterations": 1000},
		PARAMETERS,
		{"up": {"price": {"mean": 11}}},
	)
	out = simulation.run(model, seed=5)["results"]
	assert out["up"]["units"] == out["base"]["units"]
	assert out["up"]["p"]["mean"] - out["base"]["p"]["mean"] == pytest.approx(1.0)


@pytest.mark.parametrize(
	"spec, mean",
	[
		({"distribution": "fixed", "value": 3}, 3.0),
		({"distribution": "normal", "mean": 5, "sd": 2}, 5.0),
		({"distribution": "uniform", "min": 0, "max": 10}, 5.0),
		({"distribution": "triangular", "min": 0, "mode": 3, "max": 6}, 3.0),
		({"distribution": "lognormal", "mu": 0, "sigma": 0.5}, float(np.exp(0.125))),
		({"distribution": "exponential", "mean": 4}, 4.0),
		({"distribution": "poisson", "mean": 6}, 6.0),
		({"distribution": "beta", "alpha": 2, "beta": 6}, 0.25),
		({"distribution": "discrete", "values": [1, 10], "weights": [3, 1]}, 3.25),
		({"distribution": "normal", "mean": 0, "std": 1, "clip": [0, 5]}, float(1 / np.sqrt(2 * np.pi))),
	],
)
def test_distributions(spec, mean):
	result = simulation.simulate({"variables": {"y": "x * 1"}, "iterations": 100_000}, {"x": spec}, seed=11)[
		"results"
	]["base"]["y"]
	assert result["mean"] == pytest.approx(mean, rel=0.03, abs=0.01)


def test_functions_comparisons_and_logic():
	model = {
		"variables": {
			"a": "max(x, 0.5) + min(x, 0.25, 1)",
			"b": "sqrt(abs(x - 0.5)) + log(1 + x) + exp(0) + floor(x) + ceil(x) + round(x * 10) + clip(x, 0.2, 0.3)",
			"c": "1 if (x > 0.5 and not x > 0.9) or x < -1 else 0",
			"d": "x ** 2 // 1 + x % 0.5 - -x",
		},
		"iterations": 1000,
	}
	out = simulation.simulate(model, {"x": {"distribution": "uniform", "min": 0, "max": 1}}, seed=2)[
		"results"
	]["base"]
	assert out["c"]["mean"] == pytest.approx(0.4, abs=0.05)
	assert out["a"]["min"] >= 0.5
	assert all(np.isfinite(out[k]["mean"]) for k in "abcd")


def test_division_by_zero_is_named_with_how_often_and_where():
	model = {"variables": {"share": "sold / stock"}, "iterations": 1000}
	with pytest.raises(
		SimulationError,
		match=r"variable 'share' \('sold / stock'\) divides by zero \(/ stock\) in 1,000 of 1,000 draws \(scenario 'base'\)",
	):
		simulation.simulate(model, {"sold": 5, "stock": 0}, seed=1)
	# only in a scenario
	with pytest.raises(SimulationError, match="scenario 'empty'"):
		simulation.simulate(model, {"sold": 5, "stock": 10}, {"empty": {"stock": 0}}, seed=1)
	# some draws: counted
	with pytest.raises(SimulationError, match=r"in \d+ of 1,000 draws") as e:
		simulation.simulate(model, {"sold": 5, "stock": {"distribution": "poisson", "mean": 1}}, seed=1)
	count = int(str(e.value).split(" in ")[1].split(" of ")[0].replace(",", ""))
	assert 300 < count < 450  # P(poisson(1) = 0) = 0.37
	# a guard keeps the branch that would divide from the draws where it would
	guarded = {"variables": {"share": "sold / stock if stock > 0 else 0"}, "iterations": 1000}
	out = simulation.simulate(guarded, {"sold": 5, "stock": {"distribution": "poisson", "mean": 1}}, seed=1)
	assert out["results"]["base"]["share"]["min"] == 0


def test_functions_outside_their_domain_and_overflow_are_named():
	with pytest.raises(
		SimulationError, match=r"takes the logarithm of a number that is not positive \(log\(x - 1\)\)"
	):
		simulation.simulate({"variables": {"y": "log(x - 1)"}, "iterations": 10}, {"x": 1}, seed=1)
	with pytest.raises(SimulationError, match="square root of a negative"):
		simulation.simulate({"variables": {"y": "sqrt(x)"}, "iterations": 10}, {"x": -1}, seed=1)
	with pytest.raises(
		SimulationError, match=r"'y' \('10 \*\* x'\) is not a finite number \(overflow\) in 10 of 10"
	):
		simulation.simulate({"variables": {"y": "10 ** x"}, "iterations": 10}, {"x": 400}, seed=1)


def test_unknown_names_are_refused_before_anything_runs():
	with pytest.raises(
		SimulationError,
		match=r"variable 'revenue' \('price \* volume'\) names 'volume', which is neither a parameter nor a variable \(known: price, revenue\)",
	):
		simulation.parse_model({"variables": {"revenue": "price * volume"}}, {"price": 1})


def test_cycles_are_named():
	with pytest.raises(SimulationError, match="cycle: (a -> b -> c -> a|b -> c -> a -> b|c -> a -> b -> c)"):
		simulation.parse_model({"variables": {"a": "b + 1", "b": "c * 2", "c": "a - x"}}, {"x": 1})
	with pytest.raises(SimulationError, match="cycle: a -> a"):
		simulation.parse_model({"variables": {"a": "a + 1"}})


@pytest.mark.parametrize(
	"formula, message",
	[
		(
			"__import__('os').system('true')",
			r"__import__\('os'\).system\(\) is not a function formulas may call",
		),
		("__import__('os')", r"__import__\(\) is not a function formulas may call"),
		("x.__class__", "attribute is not allowed"),
		("x[0]", "subscript is not allowed"),
		("(lambda: 1)()", "is not a function formulas may call"),
		("y + (lambda: 1)", "lambda is not allowed"),
		("[x for x in y]", "listcomp is not allowed"),
		("'a' * 3", "'a' is not a number"),
		("True + 1", "True is not a number"),
		("x if x else", "is not a formula"),
		("x @ x", "operator MatMult is not allowed"),
		("x << 2", "operator LShift is not allowed"),
		("~x", "operator Invert is not allowed"),
		("x is 1", "only <, <=, >, >=, == and != compare"),
		("sqrt", "sqrt is a function: call it"),
		("max(x)", r"max\(\) takes 2 to 20 arguments, not 1"),
		("round(x, ndigits=2)", "takes plain arguments only"),
		("eval('1')", r"eval\(\) is not a function"),
		("x := 1", "is not a formula|namedexpr is not allowed"),
		("", "1 to 2000 characters"),
	],
)
def test_formulas_are_checked_on_their_syntax_tree(formula, message):
	with pytest.raises(SimulationError, match=message):
		simulation.parse_model({"variables": {"y": formula}}, {"x": 1})


@pytest.mark.parametrize(
	"definition, parameters, scenarios, message",
	[
		({}, {}, {}, "defines no variables"),
		({"variables": {"y": "1"}, "extra": 1}, {}, {}, "not extra"),
		({"variables": {"y": "x"}}, {"x": {"distribution": "gamma"}}, {}, "distribution must be one of"),
		({"variables": {"y": "x"}}, {"x": {"distribution": "normal", "mean": 1}}, {}, "needs std"),
		(
			{"variables": {"y": "x"}},
			{"x": {"distribution": "normal", "mean": 1, "std": -1}},
			{},
			"std must not be negative",
		),
		(
			{"variables": {"y": "x"}},
			{"x": {"distribution": "uniform", "min": 2, "max": 1}},
			{},
			"min must not be above max",
		),
		(
			{"variables": {"y": "x"}},
			{"x": {"distribution": "triangular", "min": 0, "mode": 5, "max": 1}},
			{},
			"min <= mode <= max",
		),
		(
			{"variables": {"y": "x"}},
			{"x": {"distribution": "normal", "mean": 1, "std": 1, "shape": 2}},
			{},
			"not shape",
		),
		({"variables": {"y": "x"}}, {"x": float("nan")}, {}, "finite number"),
		({"variables": {"y": "x"}}, {"x": "ten"}, {}, "finite number"),
		(
			{"variables": {"y": "x"}},
			{"x": 1},
			{"s": {"z": 1}},
			"scenario 's' overrides 'z', which is not a parameter",
		),
		(
			{"variables": {"y": "x"}},
			{"x": 1},
			{"s": {"x": {"distribution": "beta", "alpha": 0, "beta": 1}}},
			"scenario 's' parameter 'x': alpha and beta",
		),
		({"variables": {"y": "x"}, "outputs": ["z"]}, {"x": 1}, {}, "output 'z' is neither"),
		({"variables": {"y": "x"}, "iterations": 0}, {"x": 1}, {}, "iterations must be"),
		({"variables": {"y": "x"}, "iterations": 10**9}, {"x": 1}, {}, "iterations must be"),
		({"variables": {"y": "x"}, "seed": -1}, {"x": 1}, {}, "seed must be"),
		({"variables": {"x": "1"}}, {"x": 1}, {}, "both a parameter and a variable"),
		({"variables": {"if": "1"}}, {}, {}, "not a name formulas can use"),
		({"variables": {"log": "1"}}, {}, {}, "not a name formulas can use"),
		({"variables": "y = x"}, {}, {}, "variables must be an object"),
	],
)
def test_bad_models_are_named(definition, parameters, scenarios, message):
	with pytest.raises(SimulationError, match=message):
		simulation.parse_model(definition, parameters, scenarios)


def test_parameters_in_the_model_and_the_documents_field_combine():
	definition = {"variables": {"y": "a + b"}, "parameters": {"a": 1, "b": 2}, "iterations": 5}
	out = simulation.simulate(definition, {"b": 10}, seed=1)["results"]["base"]["y"]
	assert out["mean"] == 11
	assert out["histogram"] == {"edges": [11.0, 11.0], "counts": [5]}
