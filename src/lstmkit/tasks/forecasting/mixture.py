"""The mixture of a forecaster's network with its best baseline (``combine=True``).

On the validation stretch (the last ``val`` steps of each training series, the part the
network early-stops on) both forecast from up to `MAX_ORIGINS` origins per series; the
baselines there are fitted on the data before the stretch only. The baseline with the
lowest validation MSE (each series standardised by its history's spread) is kept, and one
weight per horizon step, ``w[t]`` in [0, 1], minimises the squared error of
``w[t] * network + (1 - w[t]) * baseline`` over those origins (closed form, clipped; shrunk
towards the one weight of all steps by a prior worth one origin, `step_weights`, since a
short validation stretch gives a step few origins): a weight of 1 is the network alone.
The quantile band moves with the point forecast. Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lstmkit.errors import LstmkitError
from lstmkit.tasks.forecasting.baselines import (
    LABELS,
    NAMES,
    STATISTICAL,
    Baselines,
    NotAvailable,
)
from lstmkit.tasks.forecasting.evaluation import qname

if TYPE_CHECKING:
    from lstmkit.data.series import SeriesData
    from lstmkit.tasks.forecasting.estimator import Forecaster

#: most validation origins per series (evenly spaced, the last one included); with a
#: statistical baseline, which fits once per origin, `MAX_ORIGINS_STATISTICAL`
MAX_ORIGINS = 16
MAX_ORIGINS_STATISTICAL = 4


@dataclass
class Mixture:
    """baseline: the mixed baseline's name. weights: the network's weight per horizon
    step. scores: validation MSE (standardised) of the network and of every baseline."""

    baseline: str
    weights: list[float]
    scores: dict[str, float] = field(default_factory=dict)

    def apply(self, fc: np.ndarray, baseline: np.ndarray) -> np.ndarray:
        """The mixed forecast from the network's ``fc`` ([series,] horizon, outputs) and
        the baseline's ([series,] horizon): the point mixed, every quantile shifted with
        it; a series whose baseline is not finite at every step keeps the network's."""
        w = np.asarray(self.weights, dtype=np.float64)
        out = np.array(fc, dtype=np.float64, copy=True)
        b = np.asarray(baseline, dtype=np.float64)
        ok = np.isfinite(b).all(axis=-1, keepdims=True)
        shift = np.where(ok, (1.0 - w) * (b - out[..., 0]), 0.0)
        return out + shift[..., None]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict."""
        return {"baseline": self.baseline, "weights": list(self.weights), "scores": self.scores}

    @classmethod
    def from_dict(cls, data: Any, horizon: int) -> Mixture:
        """Inverse of `to_dict`, checked (`LstmkitError` for a damaged mixture)."""
        try:
            m = cls(str(data["baseline"]), [float(w) for w in data["weights"]],
                    {str(k): float(v) for k, v in data.get("scores", {}).items()})  # fmt: skip
        except (KeyError, TypeError, ValueError) as err:
            raise LstmkitError(f"not a mixture: {type(err).__name__}: {err}") from None
        ok = m.baseline in NAMES and len(m.weights) == horizon
        if not ok or not all(0.0 <= w <= 1.0 for w in m.weights):
            raise LstmkitError(f"a mixture needs a known baseline and {horizon} weights in [0, 1]")
        return m


def step_weights(
    net: np.ndarray, base: np.ndarray, actual: np.ndarray, prior: float = 1.0
) -> np.ndarray:
    """Per step t, the w in [0, 1] minimising sum((w a + (1 - w) b - y)^2) over the rows
    (origins), shrunk towards the one weight of all steps pooled by a prior worth ``prior``
    rows: w = (sum((a - b)(y - b)) + k w_all) / (sum((a - b)^2) + k) (w_all: the pooled
    weight, clipped), k = ``prior`` times
    the mean per-row sum((a - b)^2), then clipped (0.5 where a == b throughout). With one
    validation origin a step's weight is half its own and half the pooled one; with many,
    nearly its own."""
    d = net - base
    num, den = (d * (actual - base)).sum(axis=0), (d * d).sum(axis=0)
    total = float(den.sum())
    pooled = min(max(float(num.sum()) / total, 0.0), 1.0) if total > 1e-300 else 0.5
    k = prior * total / (len(d) * len(den)) if len(d) else 0.0
    w = np.divide(num + k * pooled, den + k, out=np.full(num.shape, 0.5), where=den + k > 1e-300)
    return np.clip(w, 0.0, 1.0)


def fit_mixture(f: Forecaster, sd: SeriesData, val: int) -> Mixture:
    """The mixture of ``f``'s network (already fitted) with its best baseline on the last
    ``val`` steps of the series of ``sd`` (see the module doc)."""
    assert f.state is not None
    h, window = f.config.horizon, f.state.window
    names = list(f.config.baselines or [])
    fidx = f._future_columns()
    before = {s.id: s.values[: len(s) - val, 0] for s in sd.series.values()}
    pre = Baselines.fit(names, before, h, f.season, window, 0)
    net, act = [], []
    base: dict[str, list[np.ndarray]] = {n: [] for n in names}
    usable = set(names)
    most = MAX_ORIGINS_STATISTICAL if set(names) & set(STATISTICAL) else MAX_ORIGINS
    for s in sd.series.values():
        n = len(s)
        origins = np.arange(max(n - val, window), n - h + 1)
        if not len(origins):
            continue
        if len(origins) > most:
            origins = origins[np.linspace(0, len(origins) - 1, most).round().astype(int)]
        y = s.values[:, 0]
        sd_y = float(np.std(y[: n - val])) or 1.0
        x = np.stack([s.values[o - window : o] for o in origins])
        fut = np.stack([s.values[o : o + h][:, fidx] for o in origins]) if fidx else None
        net.append(f.predict_windows(x, s.id, future=fut)[..., 0] / sd_y)
        act.append(np.stack([y[o : o + h] for o in origins]) / sd_y)
        for name in names:
            if name not in usable:
                continue
            try:
                fcs = [pre.forecast(name, s.id, y[:o]) / sd_y for o in origins]
            except NotAvailable:
                usable.discard(name)
                continue
            base[name].append(np.stack(fcs))
    if not net:
        raise LstmkitError(
            f"combine: no series has a validation origin (window {window} + horizon {h} "
            f"within its last {val} steps and history); use a smaller window or more data"
        )
    if not usable:
        raise LstmkitError(
            "combine: no baseline forecasts every series on the validation stretch; "
            "name one that does (naive always can)"
        )
    a, y = np.concatenate(net), np.concatenate(act)
    scores = {"lstmkit": float(np.mean((a - y) ** 2))}
    for name in names:
        if name in usable:
            scores[name] = float(np.mean((np.concatenate(base[name]) - y) ** 2))
    best = min((n for n in names if n in usable), key=lambda n: scores[n])
    w = step_weights(a, np.concatenate(base[best]), y)
    return Mixture(best, [float(v) for v in w], scores)


def with_baselines(
    table: pd.DataFrame,
    histories: dict[str, np.ndarray | None],
    horizon: int,
    quantiles: list[float] | None,
    baselines: Baselines | None,
    mixture: Mixture | None,
    names: list[str],
    clip: Callable[[list[str], np.ndarray], Any] | None = None,
) -> pd.DataFrame:
    """A forecast ``table`` (one block of ``horizon`` rows per series, in ``histories``
    order; columns ``forecast`` and one per quantile) with the ``mixture`` applied (the
    network alone then in column ``lstmkit``; unchanged for a series whose baseline is
    n/a) and one column per baseline of ``names``, every series at once
    (`Baselines.forecast_many`). ``histories``: each series' target history, or None for
    the one ``baselines`` stored. ``clip(ids, values)``: what bounds the mixed forecast
    in place (`FittedState.clip`: a baseline may go below 0 where the network was clipped
    at it). The reasons a shown baseline is n/a, its first series each, are in
    ``table.attrs["n/a"]``. `Forecaster.predict` and the exported
    forecaster's runtime both give their tables this way."""
    h, qcols = horizon, [qname(q) for q in quantiles or []]
    cols = ["forecast", *qcols]
    wanted = list(names) or ([mixture.baseline] if mixture else [])
    ids = list(histories)
    parts, unseen = [], {}
    for k, (sid, hist) in enumerate(histories.items()):
        if hist is None:  # from the stored context
            hist = None if baselines is None else baselines.context.get(sid)
            if hist is None:
                unseen[k] = f"series {sid!r} was not seen in training"
                hist = np.zeros(0)
        parts.append(np.asarray(hist, dtype=np.float64))
    hist_len = np.array([len(v) for v in parts], dtype=np.int64)
    flat = np.concatenate(parts) if parts else np.zeros(0)
    base: dict[str, np.ndarray] = {}
    first: list[tuple[int, int, str, str]] = []  # the first series each is n/a for
    for n in wanted:
        b, why = np.full((len(ids), h), np.nan), {}
        if baselines is None:
            why = dict.fromkeys(range(len(ids)), "not saved with this model (fit it again)")
        elif n not in baselines.names:
            why = dict.fromkeys(range(len(ids)), "not fitted with this model")
        else:
            b, why = baselines.forecast_many(n, ids, flat, hist_len)
            why |= unseen
            b[list(unseen)] = np.nan
        if why and n in names:
            k = min(why)
            first.append((k, len(first), LABELS[n], f"series {ids[k]!r}: {why[k]}"))
        base[n] = b
    network = table["forecast"].to_numpy().copy()
    values = table[cols].to_numpy()
    if mixture is not None:
        v = mixture.apply(values.reshape(len(ids), h, len(cols)), base[mixture.baseline])
        values = v if clip is None else clip(ids, v)
        values = values.reshape(-1, len(cols))
    table = table.copy()
    table[cols] = values
    if mixture is not None:
        table["lstmkit"] = network
    for n in names:
        table[LABELS[n]] = base[n].ravel()
    table.attrs["n/a"] = {label: text for _, _, label, text in sorted(first)}
    return table
