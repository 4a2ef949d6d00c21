"""Synapse forecasts: fit time for 1,000 daily series (cauldron.synapse.forecast on statsforecast).

Each series is a year of daily values (a weekly pattern, a trend, noise; seeded), forecast 14 days
ahead with 80 and 95% intervals, as the site's forecast job does: the fit alone, and the fit plus
its backtest (the model fitted again on all but the last 14 days). Per model: the total for all
series, the median per series and series/s. AutoARIMA is measured on fewer series (--arima-series)
and its total extrapolated, since it is ten times slower. Beside it, statsforecast's own batch path
(StatsForecast.forecast over one data frame of every series, n_jobs processes) for AutoETS: what
fitting every forecast in one process pool would give.

No database: the fits are pure CPU. Run from the repository root:

	python -m benchmarks.synapse_forecast [--series 1000] [--length 365] [--quick]
"""

import argparse
import os
import time

import numpy as np

from benchmarks._common import arguments, figure, heading, median
from cauldron.synapse import forecast

MODELS = ("exponential_smoothing", "theta", "seasonal_naive", "arima")


def make_series(count: int, length: int, seed: int = 0) -> list[np.ndarray]:
	rng = np.random.default_rng(seed)
	t = np.arange(length)
	result = []
	for _ in range(count):
		level = rng.uniform(50, 500)
		trend = rng.normal(0, 0.2)
		season = rng.uniform(0, 0.3) * level
		noise = rng.uniform(0.02, 0.1) * level
		result.append(
			level
			+ trend * t
			+ season * np.sin(2 * np.pi * t / 7 + rng.uniform(0, 6))
			+ rng.normal(0, noise, length)
		)
	return result


def measure(model: str, series: list[np.ndarray], horizon: int, backtest: bool) -> tuple[float, list[float]]:
	each = []
	started = time.perf_counter()
	for values in series:
		t = time.perf_counter()
		forecast.fit(values, model=model, horizon=horizon, season_length=7, run_backtest=backtest)
		each.append(time.perf_counter() - t)
	return time.perf_counter() - started, each


def batch_path(series: list[np.ndarray], horizon: int, jobs: int) -> float:
	import pandas as pd
	from statsforecast import StatsForecast
	from statsforecast.models import AutoETS

	frames = []
	for i, values in enumerate(series):
		frames.append(
			pd.DataFrame(
				{
					"unique_id": str(i),
					"ds": pd.date_range("2025-01-01", periods=len(values), freq="D"),
					"y": values,
				}
			)
		)
	df = pd.concat(frames, ignore_index=True)
	sf = StatsForecast(models=[AutoETS(season_length=7)], freq="D", n_jobs=jobs)
	started = time.perf_counter()
	sf.forecast(df=df, h=horizon, level=[80, 95])
	return time.perf_counter() - started


def main():
	parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
	parser.add_argument("--series", type=int)
	parser.add_argument("--length", type=int)
	parser.add_argument("--horizon", type=int, default=14)
	parser.add_argument("--arima-series", type=int)
	parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
	parser.add_argument("--models", default=",".join(MODELS))
	args = arguments(
		parser,
		{"series": 1000, "length": 365, "arima_series": 50},
		{"series": 50, "length": 180, "arima_series": 5},
	)
	import statsforecast

	heading(
		f"Synapse forecasts: {args.series} daily series of {args.length} values, horizon {args.horizon},"
		f" statsforecast {statsforecast.__version__}, {os.cpu_count()} CPUs"
	)
	series = make_series(args.series, args.length)
	# first call imports and warms statsforecast: not counted
	forecast.fit(series[0], model="exponential_smoothing", horizon=args.horizon, season_length=7)
	for model in args.models.split(","):
		subset = series[: args.arima_series] if model == "arima" else series
		for backtest in (False, True):
			total, each = measure(model, subset, args.horizon, backtest)
			scaled = total * len(series) / len(subset)
			what = "fit + backtest" if backtest else "fit"
			note = f" (measured on {len(subset)}, extrapolated)" if len(subset) != len(series) else ""
			figure(
				f"{model:22} {what:15}",
				f"{scaled:8.1f} s for {len(series)}{note}; median {median(each) * 1000:7.1f} ms/series;"
				f" {len(subset) / total:7.1f} series/s",
			)
	if "exponential_smoothing" in args.models:
		elapsed = batch_path(series, args.horizon, args.jobs)
		figure(
			f"statsforecast batch, AutoETS, n_jobs={args.jobs}",
			f"{elapsed:8.1f} s for {len(series)}; {len(series) / elapsed:7.1f} series/s",
		)


if __name__ == "__main__":
	main()
