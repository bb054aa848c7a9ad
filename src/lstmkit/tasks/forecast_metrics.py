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


# ---------------------------------------------------------------- quantile forecasts
#: the metrics of a quantile forecast (a band and its levels), beside `METRICS`
BAND_METRICS = ("SQL", "WQL", "coverage", "width")


def _pinball(actual: np.ndarray, quantiles: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """rho_q(y, f) = max(q (y - f), (q - 1) (y - f)) for every step and level: (h, n_levels)."""
    err = actual[:, None] - quantiles
    return np.maximum(levels * err, (levels - 1.0) * err)


def _quantile_pair(
    actual: np.ndarray, quantiles: np.ndarray, levels: list[float] | np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a = np.asarray(actual, dtype=np.float64).reshape(-1)
    q = np.asarray(quantiles, dtype=np.float64).reshape(len(a), -1)
    lv = np.asarray(levels, dtype=np.float64)
    if q.shape[1] != len(lv):
        raise ValueError(f"{q.shape[1]} quantile columns for {len(lv)} levels")
    _pair(a, a)  # finite actual values
    if not np.isfinite(q).all():
        raise LstmkitError(
            "cannot score a forecast: the quantiles include NaN or infinity; metrics need "
            "finite values"
        )
    return a, q, lv


def scaled_quantile_loss(
    actual: np.ndarray,
    quantiles: np.ndarray,
    levels: list[float] | np.ndarray,
    history: np.ndarray,
    season: int = 1,
) -> float:
    """Scaled quantile loss (SQL, as fev and AutoGluon define it): twice the mean pinball
    loss over the steps and levels, divided by the in-sample MAE of the seasonal naive
    forecast on ``history`` (the scale of `mase`); NaN when the history never changes.
    ``quantiles`` is (steps, levels). With the single level 0.5 it equals MASE."""
    a, q, lv = _quantile_pair(actual, quantiles, levels)
    h = np.asarray(history, dtype=np.float64)
    m = season if season and len(h) > season else 1
    if len(h) <= m:
        return float("nan")
    scale = float(np.mean(np.abs(h[m:] - h[:-m])))
    if scale <= 0:
        return float("nan")
    return float(2.0 * np.mean(_pinball(a, q, lv)) / scale)


def weighted_quantile_loss(
    actual: np.ndarray, quantiles: np.ndarray, levels: list[float] | np.ndarray
) -> float:
    """Weighted quantile loss (WQL; GIFT-Eval's "CRPS" over a grid of levels): for each
    level, twice the summed pinball loss divided by the summed |actual|, averaged over the
    levels; NaN when every actual is 0."""
    a, q, lv = _quantile_pair(actual, quantiles, levels)
    den = float(np.sum(np.abs(a)))
    if den == 0:
        return float("nan")
    return float(np.mean(2.0 * _pinball(a, q, lv).sum(axis=0) / den))


def band_metrics(
    actual: np.ndarray,
    quantiles: np.ndarray,
    levels: list[float] | np.ndarray,
    history: np.ndarray,
    season: int | None,
) -> dict[str, float]:
    """`BAND_METRICS` of one quantile forecast: SQL, WQL, and the share of the actual
    values inside the band between the lowest and highest level (``coverage``) and that
    band's mean width (``width``, in the data's units)."""
    a, q, lv = _quantile_pair(actual, quantiles, levels)
    lo, hi = q[:, int(np.argmin(lv))], q[:, int(np.argmax(lv))]
    return {
        "SQL": scaled_quantile_loss(a, q, lv, history, season or 1),
        "WQL": weighted_quantile_loss(a, q, lv),
        "coverage": float(np.mean((a >= lo) & (a <= hi))) if len(a) else float("nan"),
        "width": float(np.mean(hi - lo)) if len(a) else float("nan"),
    }
