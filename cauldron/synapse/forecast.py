"""Synapse forecasts: a model fitted on one series, its forecast with prediction intervals, and a
backtest that says how good it was (framework-free: takes values, or (time, value) pairs).

The models are Nixtla's statsforecast (AutoETS, AutoARIMA, AutoTheta, seasonal naive, naive): the
automatic ones choose their own form (ETS error/trend/season, ARIMA orders, Theta variant) by
information criterion, as R's forecast package does. The names are the forecast's `forecast_model`
(the seed's `arima` and `exponential_smoothing`, plus `theta`, `seasonal_naive` and `naive`).

`fit(series, model=..., horizon=..., season_length=...)`:
- `series` is a list of (time, value) pairs in time order, or values alone (a list or a numpy
  array). Missing values (None or NaN: a bucket with no point) are filled by linear interpolation
  between their neighbours; leading and trailing ones are dropped. A series with more missing
  than present values, or shorter than the model needs (`min_length`), is a SeriesTooShort
  error naming what it has and what it needs.
- the forecast is `horizon` steps past the last value, each with its mean and the lower and upper
  bounds of every prediction interval in `levels` (percent, default 80 and 95).
- the backtest holds out the last `backtest_horizon` values (the horizon, at most a quarter of
  the series and at least one season), fits the same model on the rest, and scores its forecast of
  them: MAPE and sMAPE (percent; MAPE leaves out actual zeros), MASE (mean absolute error over
  the training part's mean absolute seasonal-naive step, so below 1 beats the seasonal naive
  forecast in-sample), and the same scores of the seasonal naive forecast over the same window.
- future times, when the series has times, step by the series' own step (the most common gap
  between consecutive times; a month-long gap steps by calendar months) or by `step`.
"""

import math
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from cauldron.pg import CauldronDBError

MODELS = ("exponential_smoothing", "arima", "theta", "seasonal_naive", "naive")
DEFAULT_LEVELS = (80, 95)
MAX_HORIZON = 10_000
MAX_LENGTH = 100_000
MAX_SEASON = 1000


class ForecastError(CauldronDBError):
	"""A forecast that cannot be made; the message says why."""


class SeriesTooShort(ForecastError):
	"""Too few values for the model (or too many missing)."""


@dataclass
class Result:
	model: str
	method: str  # the form the model chose, e.g. "ETS(A,A,A)", "ARIMA(1,1,1)(0,1,1)[7]"
	horizon: int
	season_length: int
	levels: tuple[int, ...]
	mean: list[float]
	lower: dict[int, list[float]]
	upper: dict[int, list[float]]
	times: list[datetime] | None = None
	last_time: datetime | None = None
	history_length: int = 0
	filled: int = 0  # missing values filled by interpolation
	performance: dict = field(default_factory=dict)

	def as_dict(self) -> dict:
		"""`forecast_data`: one row per step (time when known, mean, lo_<level>, hi_<level>)."""
		points = []
		for i, mean in enumerate(self.mean):
			row = {"step": i + 1}
			if self.times:
				row["time"] = self.times[i].isoformat()
			row["mean"] = mean
			for level in self.levels:
				row[f"lo_{level}"] = self.lower[level][i]
				row[f"hi_{level}"] = self.upper[level][i]
			points.append(row)
		return {
			"model": self.model,
			"method": self.method,
			"horizon": self.horizon,
			"season_length": self.season_length,
			"levels": list(self.levels),
			"history_length": self.history_length,
			"filled_values": self.filled,
			"last_time": self.last_time.isoformat() if self.last_time else None,
			"points": points,
		}


def _statsforecast_model(model: str, season_length: int):
	with warnings.catch_warnings():
		warnings.simplefilter("ignore")
		from statsforecast import models
	if model == "exponential_smoothing":
		return models.AutoETS(season_length=season_length)
	if model == "arima":
		return models.AutoARIMA(season_length=season_length)
	if model == "theta":
		return models.AutoTheta(season_length=season_length)
	if model == "seasonal_naive":
		return models.SeasonalNaive(season_length=season_length)
	if model == "naive":
		return models.Naive()
	raise ForecastError(f"forecast model {model!r} is not one of {', '.join(MODELS)}")


def min_length(model: str, season_length: int) -> int:
	"""The fewest values `fit` takes for `model` (the backtest included): two full seasons plus a
	held-out season for seasonal data, 8 values otherwise."""
	check_model(model)
	if season_length > 1:
		return 3 * season_length if model != "naive" else season_length + 2
	return 8


def check_model(model) -> str:
	if model not in MODELS:
		raise ForecastError(f"forecast model {model!r} is not one of {', '.join(MODELS)}")
	return model


def _whole(value, what: str, low: int, high: int) -> int:
	if isinstance(value, bool) or not isinstance(value, int | np.integer) or not low <= value <= high:
		raise ForecastError(f"{what} must be a whole number from {low} to {high}, not {value!r}")
	return int(value)


def _split(series) -> tuple[list | None, np.ndarray]:
	"""(times or None, values as floats with NaN for missing)."""
	if isinstance(series, np.ndarray):
		if series.ndim != 1:
			raise ForecastError("a series given as an array must be one-dimensional")
		return None, series.astype(float)
	series = list(series)
	if series and isinstance(series[0], tuple | list):
		times = [point[0] for point in series]
		raw = [point[1] for point in series]
		for earlier, later in zip(times, times[1:], strict=False):
			if not later > earlier:
				raise ForecastError(f"the series' times must increase: {later} follows {earlier}")
	else:
		times, raw = None, series
	values = np.empty(len(raw))
	for i, value in enumerate(raw):
		if value is None:
			values[i] = np.nan
		elif isinstance(value, bool) or not isinstance(value, int | float | np.number):
			raise ForecastError(f"value {i + 1} of the series is not a number: {value!r}")
		else:
			values[i] = float(value)
	if np.isinf(values).any():
		raise ForecastError("the series holds an infinite value")
	return times, values


def _fill(times, values) -> tuple[list | None, np.ndarray, int]:
	"""Drop leading and trailing missing values, interpolate the ones inside."""
	present = np.flatnonzero(~np.isnan(values))
	if not len(present):
		return [], values[:0], 0
	first, last = present[0], present[-1] + 1
	values = values[first:last]
	times = times[first:last] if times is not None else None
	missing = np.isnan(values)
	filled = int(missing.sum())
	if filled * 2 > len(values):
		raise SeriesTooShort(
			f"the series has {len(values) - filled} values and {filled} missing between them:"
			" more missing than present, too few to forecast from"
		)
	if filled:
		index = np.arange(len(values))
		values = values.copy()
		values[missing] = np.interp(index[missing], index[~missing], values[~missing])
	return times, values, filled


def _add_months(moment: datetime, months: int) -> datetime:
	month = moment.month - 1 + months
	year, month = moment.year + month // 12, month % 12 + 1
	day = min(moment.day, [31, 29 if _leap(year) else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1])
	return moment.replace(year=year, month=month, day=day)


def _leap(year: int) -> bool:
	return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def future_times(times: Sequence[datetime], horizon: int, step=None) -> list[datetime]:
	"""`horizon` times after the last of `times`, `step` (a timedelta, or a function from one time to
	the next) apart; by default the series' most common gap (28 to 31 days: calendar months)."""
	last = times[-1]
	if step is None:
		gaps = Counter(b - a for a, b in zip(times, times[1:], strict=False))
		if not gaps:
			raise ForecastError("one time is not enough to tell the series' step: give `step`")
		gap = gaps.most_common(1)[0][0]
		if timedelta(days=28) <= gap <= timedelta(days=31):
			return [_add_months(last, k) for k in range(1, horizon + 1)]
		step = gap
	if isinstance(step, timedelta):
		return [last + step * k for k in range(1, horizon + 1)]
	if isinstance(step, Callable):
		result, moment = [], last
		for _ in range(horizon):
			moment = step(moment)
			result.append(moment)
		return result
	raise ForecastError(f"step must be a timedelta or a function, not {step!r}")


def _predict(model: str, season_length: int, y: np.ndarray, horizon: int, levels) -> tuple[dict, str]:
	estimator = _statsforecast_model(model, season_length)
	with warnings.catch_warnings(), np.errstate(all="ignore"):
		warnings.simplefilter("ignore")
		try:
			estimator = estimator.fit(y=y)
			out = estimator.predict(h=horizon, level=list(levels))
		except (ValueError, ZeroDivisionError, np.linalg.LinAlgError, FloatingPointError) as e:
			raise ForecastError(f"{model} could not be fitted to this series: {e}") from None
	return out, _method(model, estimator, season_length)


def _method(model: str, estimator, season_length: int) -> str:
	fitted = getattr(estimator, "model_", None)
	if isinstance(fitted, dict):
		if "method" in fitted:
			return str(fitted["method"])
		if model == "arima" and "arma" in fitted:
			p, q, sp, sq, m, d, sd = fitted["arma"][:7]
			seasonal = f"({sp},{sd},{sq})[{m}]" if m > 1 and (sp or sd or sq) else ""
			return f"ARIMA({p},{d},{q}){seasonal}"
		if model == "theta" and "modeltype" in fitted:
			return f"Theta({fitted['modeltype']})"
	if model == "seasonal_naive":
		return f"SeasonalNaive[{season_length}]"
	return {"naive": "Naive", "theta": "Theta", "arima": "ARIMA", "exponential_smoothing": "ETS"}[model]


def _finite(values) -> list[float]:
	result = []
	for value in np.asarray(values, dtype=float):
		if not math.isfinite(value):
			raise ForecastError("the model's forecast is not finite for this series (it diverged)")
		result.append(float(value))
	return result


def scores(actual: np.ndarray, predicted: np.ndarray, training: np.ndarray, season_length: int) -> dict:
	"""MAPE and sMAPE (percent) and MASE of `predicted` against `actual`; None where undefined."""
	actual, predicted = np.asarray(actual, float), np.asarray(predicted, float)
	error = np.abs(actual - predicted)
	nonzero = actual != 0
	mape = float(np.mean(error[nonzero] / np.abs(actual[nonzero])) * 100) if nonzero.any() else None
	denominator = np.abs(actual) + np.abs(predicted)
	with np.errstate(invalid="ignore", divide="ignore"):
		terms = np.where(denominator == 0, 0.0, 2 * error / denominator)
	smape = float(np.mean(terms) * 100)
	m = season_length if season_length > 1 and len(training) > season_length else 1
	scale = float(np.mean(np.abs(training[m:] - training[:-m]))) if len(training) > m else 0.0
	mase = float(np.mean(error) / scale) if scale > 0 else None
	return {"mape": _rounded(mape), "smape": _rounded(smape), "mase": _rounded(mase)}


def _rounded(value):
	return None if value is None else round(value, 6)


def backtest_horizon(length: int, horizon: int, season_length: int) -> int:
	return max(1, min(horizon, max(length // 4, season_length if season_length > 1 else 1)))


def backtest(model: str, values: np.ndarray, horizon: int, season_length: int) -> dict:
	"""Scores of `model` and of the seasonal naive forecast on the last values held out."""
	held = backtest_horizon(len(values), horizon, season_length)
	training, actual = values[:-held], values[-held:]
	predicted, _ = _predict(model, season_length, training, held, ())
	if season_length > 1 and len(training) >= season_length:
		baseline = np.resize(training[-season_length:], held)
	else:
		baseline = np.full(held, training[-1])
	result = {
		"window": held,
		"training_length": len(training),
		**scores(actual, predicted["mean"], training, season_length),
		"seasonal_naive": scores(actual, baseline, training, season_length),
	}
	mine, theirs = result["mase"], result["seasonal_naive"]["mase"]
	result["beats_seasonal_naive"] = None if mine is None or theirs is None else mine < theirs
	return result


def fit(
	series,
	*,
	model: str,
	horizon: int,
	season_length: int = 1,
	levels: Sequence[int] = DEFAULT_LEVELS,
	step: timedelta | Callable | None = None,
	run_backtest: bool = True,
) -> Result:
	"""Fit `model` on `series` and forecast `horizon` steps with intervals (see the module)."""
	check_model(model)
	horizon = _whole(horizon, "forecast horizon", 1, MAX_HORIZON)
	season_length = _whole(season_length, "season length", 1, MAX_SEASON)
	levels = tuple(sorted({_whole(level, "prediction interval level", 1, 99) for level in levels}))
	times, values = _split(series)
	if len(values) > MAX_LENGTH:
		raise ForecastError(f"the series has {len(values)} values; at most {MAX_LENGTH} are fitted")
	times, values, filled = _fill(times, values)
	needed = min_length(model, season_length)
	if len(values) < needed:
		seasonal = f" (season length {season_length})" if season_length > 1 else ""
		raise SeriesTooShort(
			f"the series has {len(values)} values; {model}{seasonal} needs at least {needed}"
			" to fit and backtest"
		)
	out, method = _predict(model, season_length, values, horizon, levels)
	mean = _finite(out["mean"])
	lower = {level: _finite(out[f"lo-{level}"]) for level in levels}
	upper = {level: _finite(out[f"hi-{level}"]) for level in levels}
	result = Result(
		model=model,
		method=method,
		horizon=horizon,
		season_length=season_length,
		levels=levels,
		mean=mean,
		lower=lower,
		upper=upper,
		history_length=len(values),
		filled=filled,
	)
	if times:
		result.last_time = times[-1]
		result.times = future_times(times, horizon, step)
	if run_backtest:
		result.performance = backtest(model, values, horizon, season_length)
	return result
