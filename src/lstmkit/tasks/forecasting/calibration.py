"""Split-conformal calibration of the quantile bands, per horizon step.

A network trained with the pinball loss gives quantiles that are often too narrow or too
wide on new data (early stopping, a small model, a loss that the point forecast dominates).
After training, `fit_offsets` looks at the forecasts of the validation windows (the last
``val_size`` steps of each series, which training did not fit) and, for every quantile
level q and horizon step h, finds the shift c[h, q] of that quantile such that a share q of
the validation actuals lies below it: the one-sided split-conformal quantile of the scores
``actual - forecast_q`` with the finite-sample rank ``ceil((n + 1) q)`` for q >= 0.5 and
``floor((n + 1) q)`` for q < 0.5, so both ends of a band err on the wide side (Romano et al.
2019, conformalised quantile regression, one level at a time). The shifts live in the
scaled space the network forecasts in (each series' scaling is affine and increasing, so a
series keeps its own band width), are saved with the model (`FittedState.calibration`) and
applied by `lstmkit.tasks.forecasting.predict.PredictCore` to every forecast: the API, the
torch-free runtime, the server and exports alike.

Validation windows overlap (their origins are one step apart) and were also used for early
stopping, so the guarantee is approximate; `MIN_WINDOWS` windows at least. With fewer (a
short single series keeps one horizon of validation), `in_sample_offsets` calibrates on the
training windows instead (the windows the networks were fitted on, whose errors are too
small, so the band is then widened by `IN_SAMPLE_STRETCH`); with fewer than `MIN_WINDOWS`
of those too the bands stay as trained and the reason is kept.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from lstmkit.data.scalers import SeriesScaler
from lstmkit.data.series import SeriesData, truncate_series

#: fewest validation windows that give per-step shifts (and fewest training windows that
#: give the in-sample shifts, used below that)
MIN_WINDOWS = 20
#: how far the band calibrated on training windows (`in_sample_offsets`) is widened: each
#: quantile's mean distance from the point forecast times this. Chosen on validation (each
#: series' last 13 training weeks; M4's test file not read) on a seeded half (20) of
#: benchmarks/m4_single.py's 40 M4 Weekly series of 80-300 weeks, most of 80 weeks with one
#: validation window: 1.2 covered .80 of those weeks with the 10-90% band (1.0: .69, 1.1:
#: .74, 1.3: .82; before, the band as trained: .70) at a scaled interval score of 5.68
#: (5.71, 5.65, 5.76; before 6.09); the other half .79 against .58, 5.92 against 6.48
IN_SAMPLE_STRETCH = 1.2
#: most training windows of a series used for the in-sample shifts: its latest (a bound on
#: the cost: the recursive method simulates 500 paths a window). On the 35 M4 Weekly series
#: above with 141-472 training windows (and 27-40 validation windows, so not calibrated
#: this way by default), the latest 200 covered .60 against .62 with all of them, at an
#: interval score of 21.1 against 21.3
IN_SAMPLE_WINDOWS = 200
#: most validation windows used (a random subset beyond it, for many series)
MAX_WINDOWS = 20_000


def validation_windows(
    sd: SeriesData,
    scaler: SeriesScaler,
    window: int,
    horizon: int,
    val: int,
    future_columns: list[int],
    seed: int = 0,
    with_ids: bool = False,
    pad: int = 0,
) -> tuple[np.ndarray, ...]:
    """The scaled validation windows of every series: inputs (n, window, features), known
    future covariates over the horizon (n, horizon, n_future) or None, and the actual
    target (n, horizon): the windows whose whole horizon lies in the last ``val`` steps.
    ``with_ids``: also the series id of each window (n,), for a network that reads each
    series' static inputs. ``pad``: a padded model's blank rows before each series (NaN,
    as it trains), so that an input needs only ``window - pad`` real rows and a series
    shorter than the window has validation windows too."""
    series = list(sd.series.values())
    lengths = np.array([len(s) for s in series], dtype=np.int64) + pad
    # series k has count[k] origins from lo[k] on: inputs from the last `val` steps' start
    # (or the series' start), the whole horizon inside them; in series order, then origin
    lo = np.maximum(lengths - val - window, 0)
    count = np.maximum(lengths - window - horizon - lo + 1, 0)
    if val < horizon:
        count[:] = 0
    total = int(count.sum())
    if not total:
        empty = np.zeros((0, window, 1), np.float32)
        none = (empty, None, np.zeros((0, horizon), np.float32))
        return (*none, np.zeros(0, dtype=object)) if with_ids else none
    index = np.arange(total)
    if total > MAX_WINDOWS:  # a random subset, cut alone (never every window of 100,000 series)
        index = np.sort(np.random.default_rng(seed).choice(total, MAX_WINDOWS, replace=False))
    ends = np.cumsum(count)
    k = np.searchsorted(ends, index, side="right")
    origin = lo[k] + index - (ends[k] - count[k])
    span = window + horizon
    values = [s.values for s in series]
    if pad:
        values = [np.concatenate([np.full((pad, v.shape[1]), np.nan), v]) for v in values]
    raw = np.stack([values[j][o : o + span] for j, o in zip(k.tolist(), origin.tolist(),
                                                            strict=True)])  # fmt: skip
    sid = np.array([series[j].id for j in k.tolist()], dtype=object)
    shift, scale = scaler.stacked(list(sid))
    raw = scaler.log_target(list(sid), raw)  # the log scaler's target, as `transform` does
    scaled = ((raw - shift[:, None, :]) / scale[:, None, :]).astype(np.float32)
    x, y = scaled[:, :window], scaled[:, window:, 0]
    fut = scaled[:, window:][:, :, future_columns] if future_columns else None
    return (x, fut, y, sid) if with_ids else (x, fut, y)


def training_windows(
    sd: SeriesData,
    scaler: SeriesScaler,
    window: int,
    horizon: int,
    val: int,
    future_columns: list[int],
    seed: int = 0,
    with_ids: bool = False,
    pad: int = 0,
) -> tuple[np.ndarray, ...]:
    """`validation_windows`' arrays for the windows whose whole horizon lies before the last
    ``val`` steps of each series (those the networks were trained on), the latest
    `IN_SAMPLE_WINDOWS` of each series."""
    span = horizon + IN_SAMPLE_WINDOWS - 1  # the steps the latest windows' horizons cover
    return validation_windows(
        truncate_series(sd, val), scaler, window, horizon, span, future_columns, seed, with_ids,
        pad,
    )  # fmt: skip


def conformal_offsets(forecasts: np.ndarray, actual: np.ndarray, levels: list[float]) -> np.ndarray:
    """Shifts (horizon, n_levels) that calibrate the quantile channels ``forecasts[..., 1:]``
    (n, horizon, 1 + n_levels) on ``actual`` (n, horizon): see the module doc."""
    n = len(actual)
    scores = np.sort(actual[:, :, None] - forecasts[:, :, 1:], axis=0)  # (n, h, levels)
    out = np.empty(scores.shape[1:], dtype=np.float64)
    for j, q in enumerate(levels):
        rank = math.ceil((n + 1) * q) if q >= 0.5 else math.floor((n + 1) * q)
        out[:, j] = scores[min(max(rank, 1), n) - 1, :, j]
    return out


def in_sample_offsets(
    forecasts: np.ndarray,
    actual: np.ndarray,
    levels: list[float],
    stretch: float = IN_SAMPLE_STRETCH,
) -> np.ndarray:
    """Shifts (horizon, n_levels) as `conformal_offsets` gives them, from windows the
    networks were trained on: per horizon step, each pair of levels q and 1 - q widens (or
    narrows) by the same c, the split-conformal quantile at level 1 - 2q (rank
    ``ceil((n + 1)(1 - 2q))``) of the scores ``max(forecast_q - actual, actual -
    forecast_(1-q))`` (Romano et al. 2019's symmetric score: the band is not moved, which
    these windows' small errors could not tell); a level without its partner takes
    `conformal_offsets`' one-sided shift, the median none. Then every quantile's mean
    distance from the point forecast (``forecasts[..., 0]``) over the windows, shift
    included, grows by ``stretch``: in-sample errors are smaller than a new window's."""
    n = len(actual)
    q = forecasts[:, :, 1:]
    base = conformal_offsets(forecasts, actual, levels)
    for j, lo in enumerate(levels):
        if lo == 0.5:
            base[:, j] = 0.0
        partner = [k for k, hi in enumerate(levels) if lo < 0.5 and math.isclose(lo + hi, 1.0)]
        if not partner:
            continue
        k = partner[0]
        score = np.sort(np.maximum(q[:, :, j] - actual, actual - q[:, :, k]), axis=0)
        c = score[min(max(math.ceil((n + 1) * (1 - 2 * lo)), 1), n) - 1]
        base[:, j], base[:, k] = -c, c
    distance = (q - forecasts[:, :, :1]).mean(axis=0) + base
    return base + (stretch - 1.0) * distance


def apply_offsets(out: np.ndarray, offsets: np.ndarray | None) -> np.ndarray:
    """``out`` (n, horizon, 1 + levels) with the quantile channels shifted by ``offsets``
    (horizon, levels) and kept ordered; unchanged without offsets."""
    if offsets is None:
        return out
    out = out.copy()
    out[..., 1:] = np.sort(out[..., 1:] + offsets[None].astype(out.dtype), axis=-1)
    return out


def fit_offsets(
    forecast_scaled: Callable[[np.ndarray, np.ndarray | None], np.ndarray],
    sd: SeriesData,
    scaler: SeriesScaler,
    window: int,
    horizon: int,
    val: int,
    levels: list[float],
    future_columns: list[int],
    seed: int = 0,
    batch_size: int = 1024,
    static_inputs: Callable[[list[str]], np.ndarray] | None = None,
    pad: int = 0,
) -> tuple[np.ndarray | None, str]:
    """The per-step shifts from the validation windows (`conformal_offsets`); with fewer
    than `MIN_WINDOWS` of them, those from the training windows (`in_sample_offsets`);
    with fewer of those too, None; and what was done. ``forecast_scaled`` runs the network
    on scaled windows (as `PredictCore` takes it), with the static inputs of each window's
    series from ``static_inputs`` (series ids -> inputs) when given; ``pad`` as
    `validation_windows` takes it (a padded model's windows of short series too)."""
    args = (sd, scaler, window, horizon, val, future_columns, seed)
    x, fut, y, sid = validation_windows(*args, with_ids=True, pad=pad)
    if len(x) >= MIN_WINDOWS:
        fc = _forecasts(forecast_scaled, x, fut, sid, batch_size, static_inputs)
        return conformal_offsets(fc, y.astype(np.float64), levels), (
            f"bands calibrated on {len(x)} validation windows"
        )
    few = (
        f"{len(x)} validation window{'' if len(x) == 1 else 's'} with a whole horizon, "
        f"fewer than {MIN_WINDOWS}"
    )
    x, fut, y, sid = training_windows(*args, with_ids=True, pad=pad)
    if len(x) < MIN_WINDOWS:
        return None, (
            f"bands not calibrated: {few}, and {len(x)} training "
            f"window{'' if len(x) == 1 else 's'} (a longer validation stretch or more series)"
        )
    fc = _forecasts(forecast_scaled, x, fut, sid, batch_size, static_inputs)
    return in_sample_offsets(fc, y.astype(np.float64), levels), (
        f"bands calibrated on {len(x)} training windows, widened by {IN_SAMPLE_STRETCH:g} "
        f"(in-sample errors; {few})"
    )


def _forecasts(
    forecast_scaled: Callable[..., np.ndarray],
    x: np.ndarray,
    fut: np.ndarray | None,
    sid: np.ndarray,
    batch_size: int,
    static_inputs: Callable[[list[str]], np.ndarray] | None,
) -> np.ndarray:
    """The network's scaled forecasts of windows ``x`` in batches, quantiles ordered."""
    outs = []
    for i in range(0, len(x), batch_size):
        f = None if fut is None else fut[i : i + batch_size]
        part = x[i : i + batch_size]
        if static_inputs is None:
            out = forecast_scaled(part, f)
        else:
            st = static_inputs(sid[i : i + batch_size].tolist())
            out = forecast_scaled(part, f, st)  # type: ignore[call-arg]
        outs.append(np.asarray(out, dtype=np.float64))
    fc = np.concatenate(outs)
    fc[..., 1:] = np.sort(fc[..., 1:], axis=-1)
    return fc
