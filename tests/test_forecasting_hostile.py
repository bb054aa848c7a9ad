"""Forecasting on hostile input: non-finite values, huge and constant series, bad settings
and damaged model folders give one clear `LstmkitError`, never a NaN or a traceback."""

import math

import numpy as np
import pandas as pd
import pytest

from lstmkit import Forecaster
from lstmkit.errors import LstmkitError
from lstmkit.tasks import forecast_metrics as fm

FAST = {"hidden_size": 8, "max_epochs": 3, "lr": 1e-2, "progress_bar": False}


def _series(n: int = 48, scale: float = 1.0, constant: bool = False) -> pd.DataFrame:
    t = np.arange(n)
    y = np.full(n, 5.0) if constant else scale * (100 + t + 10 * np.sin(2 * np.pi * t / 12))
    return pd.DataFrame({"month": pd.date_range("2000-01-01", periods=n, freq="MS"), "y": y})


# ------------------------------------------------------------------ defect 3: non-finite
def test_rmse_near_the_float_limit_is_finite() -> None:
    a, f = np.array([1e300, 2e300, -1e300]), np.zeros(3)
    assert fm.rmse(a, f) == pytest.approx(1e300 * math.sqrt((1 + 4 + 1) / 3), rel=1e-12)
    assert fm.rmse(np.array([1.7e308]), np.array([-1.7e308])) == pytest.approx(3.4e308)


@pytest.mark.parametrize("metric", [fm.mae, fm.rmse, fm.mape, fm.smape])
def test_metrics_refuse_non_finite_forecasts(metric) -> None:
    with pytest.raises(LstmkitError, match="include NaN or infinity"):
        metric(np.array([1.0, 2.0]), np.array([np.nan, 2.0]))  # sMAPE used to say 0.0 here


def test_huge_values_give_finite_metrics_with_scaling() -> None:
    df = _series(scale=1e298)
    f = Forecaster(horizon=6, window=12, **FAST).fit(df.iloc[:-6], target="y", time_col="month")
    ev = f.evaluate(df)
    assert np.isfinite(ev.metrics.to_numpy()).all()
    assert np.isfinite(ev.forecasts[["forecast", "q10", "q90"]].to_numpy()).all()


def test_huge_values_without_scaling_are_an_error() -> None:
    f = Forecaster(horizon=6, window=12, scaler="none", instance_norm=False, **FAST)
    with pytest.raises(LstmkitError, match="training diverged"):
        f.fit(_series(scale=1e28), target="y", time_col="month")
    with pytest.raises(LstmkitError, match="too large for the model's 32-bit arithmetic"):
        f.fit(_series(scale=1e298), target="y", time_col="month")


def test_non_finite_forecast_is_an_error_not_an_output() -> None:
    f = Forecaster(horizon=6, window=12, scaler="none", instance_norm=False, **FAST)
    f.fit(_series(), target="y", time_col="month")
    with pytest.raises(LstmkitError, match="forecast for series '0' is not finite"):
        f.predict_windows(np.full((1, 12, 1), 1e39))  # finite, but not in float32


def test_constant_series_forecasts_with_undefined_mase() -> None:
    df = _series(constant=True)
    f = Forecaster(horizon=6, window=12, **FAST).fit(df.iloc[:-6], target="y", time_col="month")
    ev = f.evaluate(df)
    assert np.allclose(ev.forecasts["forecast"], 5.0, atol=0.05)
    assert math.isnan(ev.metrics.loc["lstmkit", "MASE"])  # undefined: no naive error
    assert ev.metrics.loc["naive", "MAE"] == 0.0
