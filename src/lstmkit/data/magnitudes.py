"""Values of implausible magnitude for their series: typos and fill codes (1e30, 9.97e36).

One such value sets a series' scale by itself: a network trained on it learns a
near-constant forecast, and a forecast from a window holding it is off by as many orders
of magnitude, both without an error. `check_magnitudes` refuses them when a model is fitted
(`lstmkit.tasks.forecasting.data`) and when a history is given to forecast from
(`lstmkit.tasks.forecasting.predict`: the API, the exported runtime and the server).
Nothing here imports torch.
"""

from __future__ import annotations

import numpy as np

from lstmkit.data.series import SeriesData, format_time
from lstmkit.errors import LstmkitError

#: a value more than this many times its series' typical magnitude is refused
#: (`check_magnitudes`)
MAGNITUDE_RATIO = 1e8
#: what such a value does to a fit and to a forecast (the end of `check_magnitudes`' message)
TRAINING = "training on it flattens the rest of the series to a near-constant forecast"
FORECAST = "a forecast from it is off by as many orders of magnitude"


def _chunks(lengths: np.ndarray, rows: int) -> list[tuple[int, int, int, int]]:
    """Runs of whole series of about ``rows`` rows (a longer series alone): (first series,
    series after the last, first row, row after the last)."""
    ends = np.cumsum(lengths)
    out, k0, a = [], 0, 0
    while k0 < len(lengths):
        k1 = max(k0 + 1, int(np.searchsorted(ends, a + rows, side="right")))
        b = int(ends[k1 - 1])
        out.append((k0, k1, a, b))
        k0, a = k1, b
    return out


def check_magnitudes(
    sd: SeriesData, values: np.ndarray, chunk: int = 1 << 20, consequence: str = TRAINING
) -> None:
    """Refuse a value of implausible magnitude for its series: more than `MAGNITUDE_RATIO`
    times the typical size of that series' column (the 90th percentile, rounded down,
    of the magnitudes of its non-zero values; for up to ten values, the second largest).
    One such value (a typo, a fill code such as 1e30 or 9.97e36) sets the series' scale
    by itself, every other value is flattened to nearly zero and the network learns a
    near-constant forecast without any error. A series of large but consistent values
    (around 1e12, or growing by orders of magnitude) is unaffected, and so is a spike
    short of eight orders of magnitude. ``values``: the series one after the other (rows,
    target then covariates); worked through in runs of about ``chunk`` rows of whole
    series, so no table-long temporary is made. One `LstmkitError` line naming the
    series, column, time and value, and what the value would do (``consequence``: to a
    fit, `TRAINING`; to a forecast, `FORECAST`)."""
    lengths = np.array([len(s) for s in sd.series.values()], dtype=np.int64)
    n, f = len(lengths), values.shape[1]
    top, low, count = np.empty((n, f)), np.empty((n, f)), np.empty((n, f), np.int64)
    runs = _chunks(lengths, chunk)
    for k0, k1, a, b in runs:  # the largest and smallest non-zero magnitude, the non-zeros
        part = np.abs(values[a:b])
        starts = np.concatenate([[0], np.cumsum(lengths[k0 : k1 - 1])])
        top[k0:k1] = np.maximum.reduceat(part, starts, axis=0)
        count[k0:k1] = np.add.reduceat(part > 0, starts, axis=0, dtype=np.int64)
        part[part == 0] = np.inf
        low[k0:k1] = np.minimum.reduceat(part, starts, axis=0)
    suspect = top > MAGNITUDE_RATIO * low  # spans eight orders of magnitude: look closer
    if not suspect.any():
        return
    below = np.zeros((n, f), np.int64)  # non-zero magnitudes below top / MAGNITUDE_RATIO
    limit = np.where(suspect, top / MAGNITUDE_RATIO, 0.0)
    for k0, k1, a, b in runs:
        if not suspect[k0:k1].any():
            continue
        part = np.abs(values[a:b])
        starts = np.concatenate([[0], np.cumsum(lengths[k0 : k1 - 1])])
        small = (part > 0) & (part < np.repeat(limit[k0:k1], lengths[k0:k1], axis=0))
        below[k0:k1] = np.add.reduceat(small, starts, axis=0, dtype=np.int64)
    # the typical magnitude (the sorted non-zero ones' entry (count - 1) * 9 // 10) is
    # below top / MAGNITUDE_RATIO when more of them than that index are
    outlier = below > (count - 1) * 9 // 10
    if not outlier.any():
        return
    k, col = (int(v[0]) for v in np.nonzero(outlier))
    s = list(sd.series.values())[k]
    mags = np.abs(s.values[:, col])
    nonzero = np.sort(mags[mags > 0])
    typical = nonzero[(len(nonzero) - 1) * 9 // 10]
    pos = int(np.flatnonzero(mags > MAGNITUDE_RATIO * typical)[0])
    name = [sd.target, *sd.covariates][col]
    label = "" if sd.id_col is None else f"series {s.id!r}: "
    when = f"time {format_time(s.times[pos])}" if sd.time_col else f"step {pos}"
    value = s.values[pos, col]
    raise LstmkitError(
        f"{label}column {name!r} has {value:.4g} at {when}, {abs(value) / typical:.2g} times "
        f"the size of the series' other values (typically {typical:.4g}): a value this far "
        f"out is a typo or a fill code, and {consequence}; fix or drop that value"
    )
