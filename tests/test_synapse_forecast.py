"""Synapse forecasts (cauldron.synapse.forecast): statsforecast's models on plain series."""

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from cauldron.synapse import forecast

START = datetime(2026, 1, 1, tzinfo=timezone.utc)


def weekly(n: int, seed: int = 0, noise: float = 1.0, trend: float = 0.5) -> np.ndarray:
	"""A daily series with a weekly pattern, a trend and noise."""
	rng = np.random.default_rng(seed)
	t = np.arange(n)
	return 200 + trend * t + 20 * np.sin(2 * np.pi * t / 7) + rng.normal(0, noise, n)


def daily_pairs(values) -> list[tuple[datetime, float]]:
	return [(START + timedelta(days=i), v) for i, v in enumerate(values)]


def test_the_forecast_follows_trend_and_season_with_nested_intervals():
	full = weekly(140 + 14)
	result = forecast.fit(daily_pairs(full[:140]), model="exponential_smoothing", horizon=14, season_length=7)
	assert result.method.startswith("ETS(")
	assert len(result.mean) == 14
	truth = full[140:]
	error = np.abs(np.array(result.mean) - truth) / truth
	assert error.max() < 0.03, error
	for i in range(14):
		assert (
			result.lower[95][i]
			< result.lower[80][i]
			< result.mean[i]
			< result.upper[80][i]
			< result.upper[95][i]
		)
	# the intervals widen with the horizon
	assert result.upper[95][-1] - result.lower[95][-1] > result.upper[95][0] - result.lower[95][0]
	# and hold most of what came next
	inside = (truth >= np.array(result.lower[95])) & (truth <= np.array(result.upper[95]))
	assert inside.sum() >= 12


def test_times_continue_the_series_step():
	result = forecast.fit(daily_pairs(weekly(60)), model="theta", horizon=3, season_length=7)
	assert result.last_time == START + timedelta(days=59)
	assert result.times == [START + timedelta(days=60 + k) for k in range(3)]
	data = result.as_dict()
	assert [p["time"] for p in data["points"]] == [t.isoformat() for t in result.times]
	assert set(data["points"][0]) == {"step", "time", "mean", "lo_80", "hi_80", "lo_95", "hi_95"}


def test_monthly_series_step_by_calendar_months():
	months = [datetime(2024 + (m // 12), m % 12 + 1, 1, tzinfo=timezone.utc) for m in range(36)]
	values = 50 + 5 * np.sin(2 * np.pi * np.arange(36) / 12)
	result = forecast.fit(
		list(zip(months, values, strict=True)), model="seasonal_naive", horizon=3, season_length=12
	)
	assert result.times == [
		datetime(2027, 1, 1, tzinfo=timezone.utc),
		datetime(2027, 2, 1, tzinfo=timezone.utc),
		datetime(2027, 3, 1, tzinfo=timezone.utc),
	]
	# seasonal naive repeats the last season
	assert result.mean == pytest.approx(list(values[24:27]))


@pytest.mark.parametrize("model", forecast.MODELS)
def test_every_model_forecasts_and_is_backtested(model):
	values = weekly(63, seed=3)
	result = forecast.fit(values, model=model, horizon=10, season_length=7, levels=[90])
	assert result.times is None
	assert len(result.mean) == len(result.lower[90]) == len(result.upper[90]) == 10
	assert all(np.isfinite(result.mean))
	perf = result.performance
	assert perf["window"] == 10 and perf["training_length"] == 53
	assert perf["smape"] >= 0 and perf["mape"] >= 0 and perf["mase"] > 0
	assert set(perf["seasonal_naive"]) == {"mape", "smape", "mase"}


def test_a_model_that_fits_beats_the_seasonal_naive_baseline_on_a_trend():
	# a strong trend: repeating last week is always a week behind
	result = forecast.fit(
		weekly(140, noise=0.5, trend=2.0), model="exponential_smoothing", horizon=14, season_length=7
	)
	perf = result.performance
	assert perf["mase"] < perf["seasonal_naive"]["mase"]
	assert perf["beats_seasonal_naive"] is True
	# MASE's scale is the in-sample seasonal naive step (2.0 a day * 7 days = 14); over 14 days held
	# out the baseline repeats the last week twice, so it is 14 behind, then 28: MASE ~1.5
	assert perf["seasonal_naive"]["mase"] == pytest.approx(1.5, abs=0.1)


def test_scores_by_hand():
	training = np.array([1.0, 2.0, 3.0, 4.0])  # naive steps of 1: the MASE scale is 1
	got = forecast.scores(np.array([10.0, 0.0]), np.array([8.0, 1.0]), training, 1)
	# MAPE leaves the actual zero out: |10-8|/10
	assert got["mape"] == pytest.approx(20.0)
	# sMAPE: (2*2/18 + 2*1/1) / 2
	assert got["smape"] == pytest.approx((4 / 18 + 2) / 2 * 100)
	assert got["mase"] == pytest.approx(1.5)
	flat = forecast.scores(np.array([0.0]), np.array([0.0]), np.array([5.0, 5.0]), 1)
	assert flat == {"mape": None, "smape": 0.0, "mase": None}


def test_a_series_too_short_says_what_it_has_and_needs():
	with pytest.raises(
		forecast.SeriesTooShort,
		match=r"has 20 values; exponential_smoothing \(season length 7\) needs at least 21",
	):
		forecast.fit(weekly(20), model="exponential_smoothing", horizon=5, season_length=7)
	with pytest.raises(forecast.SeriesTooShort, match="has 0 values"):
		forecast.fit([None, None], model="naive", horizon=1)
	assert forecast.min_length("arima", 1) == 8
	forecast.fit(weekly(21), model="exponential_smoothing", horizon=5, season_length=7)


def test_missing_values_inside_are_interpolated_and_counted_at_the_ends_dropped():
	values = list(weekly(40))
	values[10] = values[11] = None
	values = [None, None, *values, None]
	result = forecast.fit(daily_pairs(values), model="naive", horizon=1)
	assert result.filled == 2
	assert result.history_length == 40
	assert result.last_time == START + timedelta(days=41)
	# naive: the last value
	assert result.mean == pytest.approx([values[-2]])


def test_mostly_missing_is_refused():
	values = [1.0 if i % 3 == 0 else None for i in range(60)]
	with pytest.raises(forecast.SeriesTooShort, match="more missing than present"):
		forecast.fit(values, model="naive", horizon=1)


@pytest.mark.parametrize(
	"kwargs, message",
	[
		({"model": "prophet"}, "not one of exponential_smoothing, arima"),
		({"horizon": 0}, "forecast horizon must be a whole number from 1"),
		({"season_length": 0}, "season length must be"),
		({"levels": [100]}, "prediction interval level must be"),
		({"series": [1.0, "x"] * 10}, "value 2 of the series is not a number"),
		({"series": [1.0, float("inf")] * 10}, "infinite"),
		({"series": [(START, 1.0), (START, 2.0)]}, "times must increase"),
	],
)
def test_bad_arguments_are_named(kwargs, message):
	arguments = {"series": list(weekly(30)), "model": "naive", "horizon": 3, **kwargs}
	with pytest.raises(forecast.ForecastError, match=message):
		forecast.fit(**arguments)


def test_a_constant_series_forecasts_itself():
	result = forecast.fit([5.0] * 30, model="exponential_smoothing", horizon=4)
	assert result.mean == pytest.approx([5.0] * 4)
	assert result.performance["mape"] == pytest.approx(0.0, abs=1e-6)
