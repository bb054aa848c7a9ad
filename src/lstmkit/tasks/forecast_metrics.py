"""Forecast accuracy metrics and the baselines every forecast is compared with.

Metrics take ``actual`` and ``forecast`` arrays of the same shape and return a
float (MAPE and sMAPE in percent). MASE scales the MAE by the in-sample MAE of
the seasonal naive forecast on the training history (season 1 = naive).
Baselines: naive (repeat the last value) and seasonal naive (repeat the last
season).

Non-finite inputs are refused (`LstmkitError`), never scored: a NaN forecast
must not come out as sMAPE 0. Metrics that are undefined for the data are NaN
on purpose and documented per function (MAPE when every actual is 0, MASE when
the history never changes); RMSE is computed on rescaled errors so that values
near 1e300 do not overflow to ``inf``.

The metrics are computed with torchmetrics, as the text task's scores are, in float64:
MAE and MASE with ``mean_absolute_error``, RMSE with ``mean_squared_error`` (on the
rescaled errors), MAPE and sMAPE as torchmetrics means of the exact per-step ratios
(torchmetrics' own MAPE and sMAPE clamp the denominator at 1.17e-6, which would change
the scores of series of tiny magnitude), so the numbers are those of the plain formulas.
"""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics.functional.regression import mean_absolute_error, mean_squared_error

from lstmkit.errors import LstmkitError

METRICS = ("MAE", "RMSE", "MAPE", "sMAPE", "MASE")


def _pair(actual: np.ndarray, forecast: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(actual, dtype=np.float64)
    f = np.asarray(forecast, dtype=np.float64)
    if a.shape != f.shape:
        raise ValueError(f"actual {a.shape} and forecast {f.shape} must have the same shape")
    for name, v in (("actual", a), ("forecast", f)):
        if not np.isfinite(v).all():
            raise LstmkitError(
                f"cannot score a forecast: the {name} values include NaN or infinity; "
                "metrics need finite values"
            )
    return a, f


def _t(values: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float64))


def mae(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Mean absolute error."""
    a, f = _pair(actual, forecast)
    return float(mean_absolute_error(_t(f), _t(a)))


def rmse(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Root mean squared error (finite for any finite errors: they are divided by the
    largest one before squaring)."""
    a, f = _pair(actual, forecast)
    half = np.abs(a / 2 - f / 2)  # halves: finite for any finite a and f
    top = float(half.max()) if half.size else 0.0
    if top == 0.0:
        return 0.0
    scaled = _t(half / top)
    return float(2 * top * mean_squared_error(scaled, torch.zeros_like(scaled), squared=False))


def _mean(values: np.ndarray) -> float:
    """The mean of ``values`` through torchmetrics (the MAE of the values against 0)."""
    t = _t(values)
    return float(mean_absolute_error(t, torch.zeros_like(t)))


def mape(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Mean absolute percentage error, in percent, over the steps where actual != 0."""
    a, f = _pair(actual, forecast)
    keep = a != 0
    if not keep.any():
        return float("nan")
    # torchmetrics' mean_absolute_percentage_error clamps |actual| at 1.17e-6, which changes
    # the score of series of tiny magnitude: the exact ratios, averaged by torchmetrics
    return 100.0 * _mean((a[keep] - f[keep]) / a[keep])


def smape(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Symmetric MAPE in percent: mean of 200 |a - f| / (|a| + |f|) (0 where both are 0)."""
    a, f = _pair(actual, forecast)
    den = np.abs(a) + np.abs(f)
    # as for MAPE: symmetric_mean_absolute_percentage_error clamps the denominator
    ratio = np.divide(2.0 * np.abs(a - f), den, out=np.zeros_like(den), where=den > 0)
    return 100.0 * _mean(ratio) if ratio.size else float("nan")


def mase(actual: np.ndarray, forecast: np.ndarray, history: np.ndarray, season: int = 1) -> float:
    """MAE divided by the in-sample MAE of the seasonal naive forecast on ``history``."""
    h = np.asarray(history, dtype=np.float64)
    m = season if season and len(h) > season else 1
    if len(h) <= m:
        return float("nan")
    scale = float(mean_absolute_error(_t(h[m:]), _t(h[:-m])))
    return mae(actual, forecast) / scale if scale > 0 else float("nan")


def all_metrics(
    actual: np.ndarray, forecast: np.ndarray, history: np.ndarray, season: int | None
) -> dict[str, float]:
    """Every metric of `METRICS` for one forecast."""
    return {
        "MAE": mae(actual, forecast),
        "RMSE": rmse(actual, forecast),
        "MAPE": mape(actual, forecast),
        "sMAPE": smape(actual, forecast),
        "MASE": mase(actual, forecast, history, season or 1),
    }


def naive_forecast(history: np.ndarray, horizon: int) -> np.ndarray:
    """Repeat the last observed value ``horizon`` times; shape (horizon,)."""
    h = np.asarray(history, dtype=np.float64)
    return np.full(horizon, h[-1])


def seasonal_naive_forecast(history: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """Repeat the last full season: ``f[t] = history[len - season + (t mod season)]``."""
    h = np.asarray(history, dtype=np.float64)
    if season < 1 or len(h) < season:
        raise ValueError(f"seasonal naive needs at least one season ({season}) of history")
    last = h[-season:]
    return last[np.arange(horizon) % season]
