"""The metrics of `lstmkit.tasks.forecast_metrics` and its naive baselines for many series
at once: one array operation over every series instead of one call per series.

``actual`` and ``forecast`` are (series, horizon) arrays; a training history of ragged
length per series is passed as its values one series after the other (``values``) with
their ``lengths``. Each function gives, per series, exactly what its one-series
counterpart gives (up to the order of floating-point sums).
"""

from __future__ import annotations

import numpy as np

from lstmkit.errors import LstmkitError
from lstmkit.tasks.forecast_metrics import METRICS


def history_scales(values: np.ndarray, lengths: np.ndarray, season: int | None) -> np.ndarray:
    """MASE's denominator per series: the mean absolute seasonal difference of its
    history (``season`` where the history is longer, else 1); NaN where the history is
    too short, as `forecast_metrics.mase` has it (a zero scale stays 0 here)."""
    values = np.asarray(values, dtype=np.float64)
    lengths = np.asarray(lengths, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    m = np.where(lengths > (season or 1), season or 1, 1) if season else np.ones_like(lengths)
    out = np.full(len(lengths), np.nan)
    for lag in np.unique(m).tolist():
        pick = (m == lag) & (lengths > lag)
        if not pick.any() or len(values) <= lag:
            continue
        # padded[t - lag] = |x[t] - x[t - lag]|, and a spare 0 at the end; in place
        padded = np.empty(len(values) - lag + 1)
        diff = padded[:-1]
        np.subtract(values[lag:], values[:-lag], out=diff)
        np.abs(diff, out=diff)
        padded[-1] = 0.0
        # series k's differences are t in [start + lag, start + length): rows start .. start
        # + length - lag of diff
        cuts = np.stack([starts[pick], starts[pick] + lengths[pick] - lag], axis=1).ravel()
        sums = np.add.reduceat(padded, cuts)[::2]
        out[pick] = sums / (lengths[pick] - lag)
    return out


def metrics_many(
    actual: np.ndarray, forecast: np.ndarray, scales: np.ndarray
) -> dict[str, np.ndarray]:
    """Every metric of `METRICS` per series: actual and forecast (series, horizon), the
    MASE denominators from `history_scales`. Non-finite values are refused."""
    a = np.asarray(actual, dtype=np.float64)
    f = np.asarray(forecast, dtype=np.float64)
    for name, v in (("actual", a), ("forecast", f)):
        if not np.isfinite(v).all():
            raise LstmkitError(
                f"cannot score a forecast: the {name} values include NaN or infinity; "
                "metrics need finite values"
            )
    err = np.abs(a - f)
    mae = err.mean(axis=1)
    half = np.abs(a / 2 - f / 2)  # halves: finite for any finite a and f
    top = half.max(axis=1)
    safe = np.where(top > 0, top, 1.0)
    rmse = np.where(top > 0, 2 * top * np.sqrt(np.mean((half / safe[:, None]) ** 2, axis=1)), 0.0)
    keep = a != 0
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(keep, np.abs((a - f) / np.where(keep, a, 1.0)), 0.0)
        count = keep.sum(axis=1)
        mape = np.where(count > 0, 100.0 * ratio.sum(axis=1) / np.maximum(count, 1), np.nan)
        den = np.abs(a) + np.abs(f)
        sym = np.divide(2.0 * err, den, out=np.zeros_like(den), where=den > 0)
        scales = np.asarray(scales, dtype=np.float64)
        mase = np.where(scales > 0, mae / np.where(scales > 0, scales, 1.0), np.nan)
    out = {"MAE": mae, "RMSE": rmse, "MAPE": mape, "sMAPE": 100.0 * sym.mean(axis=1), "MASE": mase}
    return {k: out[k] for k in METRICS}


def naive_many(values: np.ndarray, lengths: np.ndarray, horizon: int) -> np.ndarray:
    """The naive forecast of each history (its last value repeated): (series, horizon)."""
    ends = np.cumsum(np.asarray(lengths, dtype=np.int64)) - 1
    return np.repeat(np.asarray(values, dtype=np.float64)[ends][:, None], horizon, axis=1)


def seasonal_naive_many(
    values: np.ndarray, lengths: np.ndarray, horizon: int, season: int
) -> tuple[np.ndarray, np.ndarray]:
    """The seasonal naive forecast of each history (its last season repeated), (series,
    horizon), NaN for histories shorter than a season; and which series have one."""
    lengths = np.asarray(lengths, dtype=np.int64)
    ends = np.cumsum(lengths)
    has = lengths >= season
    pos = ends[:, None] - season + (np.arange(horizon) % season)[None, :]
    pos = np.where(has[:, None], pos, 0)
    out = np.asarray(values, dtype=np.float64)[pos]
    out[~has] = np.nan
    return out, has


def band_metrics_many(
    actual: np.ndarray, quantiles: np.ndarray, levels: list[float], scales: np.ndarray
) -> dict[str, np.ndarray]:
    """`forecast_metrics.band_metrics` per series: actual (series, horizon), quantiles
    (series, horizon, levels) in level order, the seasonal scales from `history_scales`.
    SQL, WQL, the share of actual values inside the outer band (coverage) and its mean
    width; SQL is NaN where the scale is 0 or unknown, WQL where every actual is 0."""
    a = np.asarray(actual, dtype=np.float64)
    q = np.asarray(quantiles, dtype=np.float64)
    if not np.isfinite(q).all():
        raise LstmkitError(
            "cannot score a forecast: the quantiles include NaN or infinity; metrics need "
            "finite values"
        )
    lv = np.asarray(levels, dtype=np.float64)
    err = a[:, :, None] - q
    loss = np.maximum(lv * err, (lv - 1.0) * err)  # (series, horizon, levels)
    scales = np.asarray(scales, dtype=np.float64)
    den = np.abs(a).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        sql = np.where(
            scales > 0, 2.0 * loss.mean(axis=(1, 2)) / np.where(scales > 0, scales, 1), np.nan
        )
        wql = np.where(
            den > 0,
            np.mean(2.0 * loss.sum(axis=1) / np.where(den > 0, den, 1)[:, None], axis=1),
            np.nan,
        )
    lo, hi = q[:, :, int(np.argmin(lv))], q[:, :, int(np.argmax(lv))]
    return {
        "SQL": sql,
        "WQL": wql,
        "coverage": ((a >= lo) & (a <= hi)).mean(axis=1),
        "width": (hi - lo).mean(axis=1),
    }
