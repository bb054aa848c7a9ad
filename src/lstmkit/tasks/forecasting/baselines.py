"""The baselines every forecast is shown beside: naive, seasonal naive, NLinear, DLinear and
statsforecast's AutoETS, AutoTheta and AutoARIMA.

`Baselines` is the fitted set of them for one collection of series (no torch):

- ``naive`` repeats the last value, ``snaive`` the last season;
- ``nlinear`` / ``dlinear`` are one global closed-form ridge map (`linear`) over the
  windows of every series, each series standardised by the mean and spread of the history
  it was fitted on; the ridge is chosen on the last ``val`` steps of each series, then the
  map is refitted on every window;
- ``ets`` / ``theta`` / ``arima`` are fitted per series on the history each forecast
  starts from (statsforecast's ``AutoETS``, ``AutoTheta``, ``AutoARIMA``; statsforecast is
  imported only when one of them is asked for).

A baseline that cannot forecast a series (shorter than its season or window, a model that
does not converge, a non-finite forecast) is not available for that series: `forecast`
gives the reason instead of the numbers, and a run goes on without it. `Baselines` keeps
the last stretch of each series (`Baselines.context`) so that a saved model forecasts the
steps after its data with every baseline; it saves as JSON plus arrays (`to_files`).

Naive, seasonal naive, NLinear and DLinear are a fixed map of the series' last steps
(`Baselines.graph_input` gives those steps, standardised for the linear maps): what a
`BaselineForecaster`'s ONNX export computes (`baseline_export`). Nothing here imports torch.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from lstmkit.errors import LstmkitError
from lstmkit.tasks.forecasting.linear import (
    RIDGE_GRID,
    LinearMap,
    Moments,
    choose_ridge_moments,
    fit_moments,
)

#: every baseline, in display order
NAMES = ("naive", "snaive", "nlinear", "dlinear", "ets", "theta", "arima")
#: their names in tables (rows of metrics, columns of forecasts)
LABELS = {
    "naive": "naive", "snaive": "seasonal_naive", "nlinear": "nlinear", "dlinear": "dlinear",
    "ets": "ets", "theta": "theta", "arima": "arima",
}  # fmt: skip
#: the baselines a `Forecaster` shows unless told otherwise
DEFAULT = ("naive", "snaive")
STATISTICAL = ("ets", "theta", "arima")
LINEAR = ("nlinear", "dlinear")
#: the baselines that are a fixed map of the last steps (`Baselines.graph_input`): exported
GRAPHED = ("naive", "snaive", "nlinear", "dlinear")
#: points of each series kept to forecast from after the data (at least the window)
KEEP = 500
#: windows per moment update when fitting the linear maps (a few MB at a time)
CHUNK = 1 << 16
#: most windows the linear maps are fitted on (beyond: evenly thinned, see `Baselines.fit`)
MAX_WINDOWS = 500_000


def parse_names(names: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """Baseline names from "naive,snaive,..." or a list (None or "none": no baselines);
    an unknown name is one `LstmkitError` line listing the known ones."""
    if names is None:
        return []
    if isinstance(names, str):
        names = [] if names.strip().lower() == "none" else names.split(",")
    out = []
    for n in names:
        n = str(n).strip().lower()
        n = {"seasonal_naive": "snaive", "autoets": "ets", "autotheta": "theta"}.get(n, n)
        n = {"autoarima": "arima"}.get(n, n)
        if not n:
            continue
        if n not in NAMES:
            raise LstmkitError(f"unknown baseline {n!r}; lstmkit knows {', '.join(NAMES)}")
        if n not in out:
            out.append(n)
    return [n for n in NAMES if n in out]


class NotAvailable(Exception):
    """A baseline cannot forecast one series; ``str(err)`` is the reason."""


def _stat_model(name: str, season: int) -> Any:
    os.environ.setdefault("NIXTLA_ID_AS_COL", "1")
    from statsforecast.models import AutoARIMA, AutoETS, AutoTheta

    cls = {"ets": AutoETS, "theta": AutoTheta, "arima": AutoARIMA}[name]
    return cls(season_length=season)


def statistical_forecast(
    name: str, history: np.ndarray, horizon: int, season: int | None
) -> np.ndarray:
    """statsforecast's ``name`` ("ets" | "theta" | "arima") fitted on ``history`` (1-d),
    its mean forecast (horizon,); `NotAvailable` with the reason when it cannot."""
    m = season or 1
    if m > 1 and len(history) < 2 * m:
        raise NotAvailable(
            f"{len(history)} points, fewer than two seasons ({2 * m}) for a seasonal model"
        )
    if len(history) < 4:
        raise NotAvailable(f"{len(history)} points, too few to fit a model (at least 4)")
    import warnings

    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            out = _stat_model(name, m).forecast(y=np.asarray(history, float), h=horizon)
    except Exception as err:  # any failure of one model on one series
        first = (str(err).splitlines() or [type(err).__name__])[0][:120]
        raise NotAvailable(f"did not fit ({type(err).__name__}: {first})") from None
    fc = np.asarray(out["mean"], dtype=np.float64)
    if fc.shape != (horizon,) or not np.isfinite(fc).all():
        raise NotAvailable("its forecast is not finite (the fit did not converge)")
    return fc


def _standardise(history: np.ndarray) -> tuple[float, float]:
    mu, sd = float(np.mean(history)), float(np.std(history))
    return mu, sd if sd > 1e-12 else 1.0


def _standardise_rows(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`_standardise` of each row of ``block`` (series, length): (means, spreads)."""
    if not block.shape[1]:  # empty histories: nothing to scale by
        return np.zeros(len(block)), np.ones(len(block))
    mu, sd = block.mean(axis=1), block.std(axis=1)
    return mu, np.where(sd > 1e-12, sd, 1.0)


@dataclass
class Baselines:
    """A fitted set of baselines (see the module doc).

    names: which (`NAMES` order). horizon, season (None or 1: no season), window: the
    linear maps' input steps. linear: name -> fitted `LinearMap`. scale: series id ->
    (mean, std) of the history the linear maps saw. unfit: name -> why it could not be
    fitted at all (then it is n/a for every series). context: series id -> its last
    values (`KEEP` with a statistical model, else the window or a season, the longer),
    what a forecast after the data starts from.
    """

    names: list[str]
    horizon: int
    season: int | None
    window: int
    linear: dict[str, LinearMap] = field(default_factory=dict)
    scale: dict[str, tuple[float, float]] = field(default_factory=dict)
    unfit: dict[str, str] = field(default_factory=dict)
    context: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        """The table names of `names`."""
        return [LABELS[n] for n in self.names]

    @classmethod
    def fit(
        cls,
        names: list[str],
        histories: dict[str, np.ndarray],
        horizon: int,
        season: int | None,
        window: int,
        val: int = 0,
    ) -> Baselines:
        """Fit ``names`` on the target ``histories`` (series id -> 1-d values): the linear
        maps on every window of ``window`` + ``horizon`` steps (the ridge chosen on the
        windows whose targets end in the last ``val`` steps of each series; ``val`` 0: on
        the last fifth of each series' windows), added up a block of series of one length
        at a time (`linear.Moments`), so that all windows are never held at once; beyond
        `MAX_WINDOWS` windows in all, every k-th window of each series, counted back from
        its last (k: the windows over `MAX_WINDOWS`, rounded up). The others need no fit."""
        self = cls(list(names), int(horizon), season if season and season > 1 else None, window)
        self.set_context(histories)
        if not any(n in LINEAR for n in names):
            return self
        linear = [n for n in names if n in LINEAR]
        empty = Moments(0, np.zeros(0), np.zeros(0), np.zeros((0, 0)), np.zeros((0, 0)), 0.0)
        train = dict.fromkeys(linear, empty)
        val_m = dict.fromkeys(linear, empty)
        ids = list(histories)
        hists = [np.asarray(histories[sid], dtype=np.float64) for sid in ids]
        lengths = np.array([len(h) for h in hists], dtype=np.int64)
        mus, sds = np.zeros(len(ids)), np.ones(len(ids))
        # beyond `MAX_WINDOWS` windows every stride-th of each series, counted back from
        # its last: a map of a few dozen weights is settled long before, and the sums
        # cost seconds per million windows
        total = int(np.maximum(lengths - window - horizon + 1, 0).sum())
        stride = max(1, -(-total // MAX_WINDOWS))
        # series of one length at a time, their windows in blocks of about `CHUNK`: the
        # same moments as series by series (`Moments.__add__`), without a Python step per
        # series and window set
        # the tall blocks' products on one BLAS thread: threaded BLAS beside torch's own
        # threads was 25 times slower on a busy machine (4 s against 0.15 s for 65,536
        # windows), and einsum's loops, used instead before, 6 times slower than one thread
        with threadpool_limits(1, user_api="blas"):
            for length in np.unique(lengths):
                group = np.flatnonzero(lengths == length)
                n_win = int(length) - window - horizon + 1
                ends = np.arange(max(n_win, 0)) + window + horizon
                is_val = ends > length - val if val else np.arange(len(ends)) >= int(n_win * 0.8)
                used = (n_win - 1 - np.arange(len(ends))) % stride == 0
                per = max(1, CHUNK // max(int(used.sum()), 1))
                for i in range(0, len(group), per):
                    part = group[i : i + per]
                    block = (
                        np.stack([hists[k] for k in part]) if length else np.zeros((len(part), 0))
                    )
                    mu, sd = _standardise_rows(block)
                    mus[part], sds[part] = mu, sd
                    if n_win < 1:
                        continue
                    z = (block - mu[:, None]) / sd[:, None]
                    view = np.lib.stride_tricks.sliding_window_view(z, window + horizon, axis=1)
                    for into, mask in ((train, ~is_val & used), (val_m, is_val & used)):
                        if not mask.any():
                            continue
                        wins = view[:, mask].reshape(-1, window + horizon)
                        for name in linear:  # the block's windows are added and let go
                            into[name] = into[name] + Moments.of(
                                wins[:, :window], wins[:, window:], name
                            )
        self.scale = dict(zip(ids, zip(mus.tolist(), sds.tolist(), strict=True), strict=True))
        for name in linear:
            tr, va = train[name], val_m[name]
            both = tr + va
            if both.n < 2:
                self.unfit[name] = (
                    f"no series has window ({window}) + horizon ({horizon}) = "
                    f"{window + horizon} points to fit a linear map on"
                )
                continue
            if tr.n >= 2 and va.n >= 1:
                chosen = choose_ridge_moments(tr, va, name, window)
                # the chosen penalty per window, for the larger set
                m = fit_moments(both, name, window, ridge=chosen.ridge * both.n / tr.n)
                m.val_mse = chosen.val_mse
            else:  # too few windows to choose: a middle penalty of the grid
                scale = float(np.trace(both.ff)) / max(both.ff.shape[0], 1) or 1.0
                m = fit_moments(both, name, window, RIDGE_GRID[len(RIDGE_GRID) // 2] * scale)
            self.linear[name] = m
        return self

    def set_context(self, histories: dict[str, np.ndarray]) -> None:
        """Keep the last stretch of each series in ``histories`` to forecast from: `KEEP`
        points for the statistical models, else only what the others read (the linear
        maps' window, a season): 100,000 series keep 24 points apiece, not 500."""
        keep = max(self.window, self.season or 0, 1)
        if any(n in STATISTICAL for n in self.names):
            keep = max(KEEP, self.window, 2 * (self.season or 0) + 1)
        ids = list(histories)
        tails = [np.asarray(histories[sid], dtype=np.float64)[-keep:] for sid in ids]
        lengths = np.fromiter(map(len, tails), dtype=np.int64, count=len(tails))
        for length in np.unique(lengths):  # one copy per length, each series a row of it
            group = np.flatnonzero(lengths == length).tolist()
            block = np.stack([tails[k] for k in group]) if length else np.zeros((len(group), 0))
            self.context.update(zip([ids[k] for k in group], block, strict=True))

    def graph_input(
        self, name: str, sid: str, history: np.ndarray
    ) -> tuple[np.ndarray, float, float]:
        """(x, shift, scale) for a `GRAPHED` baseline: the steps ``x`` of the 1-d target
        ``history`` of series ``sid`` that its map reads (naive: the last value; snaive:
        the last season; nlinear / dlinear: the last ``window`` values standardised as the
        map was fitted), the forecast being ``map(x) * scale + shift``; `NotAvailable`
        with the reason when it cannot forecast the series."""
        m = self.season
        history = np.asarray(history, dtype=np.float64)
        if name in self.unfit:
            raise NotAvailable(self.unfit[name])
        if len(history) < 1:
            raise NotAvailable("the series is empty")
        if name == "naive":
            return history[-1:], 0.0, 1.0
        if name == "snaive":
            if not m:
                raise NotAvailable("no season (pass --season, or data with a frequency)")
            if len(history) < m:
                raise NotAvailable(f"{len(history)} points, shorter than its season ({m})")
            return history[-m:], 0.0, 1.0
        if name in LINEAR:
            L = self.window
            if len(history) < L:
                raise NotAvailable(f"{len(history)} points, shorter than its window ({L})")
            mu, sd = self.scale.get(sid) or _standardise(history)
            return (history[-L:] - mu) / sd, mu, sd
        raise NotAvailable(f"{name} is not a fixed map of the last steps")

    def forecast(self, name: str, sid: str, history: np.ndarray) -> np.ndarray:
        """Baseline ``name``'s forecast (horizon,) from the 1-d target ``history`` of series
        ``sid``; `NotAvailable` with the reason when it cannot."""
        from lstmkit.tasks.forecast_metrics import naive_forecast, seasonal_naive_forecast

        h, m = self.horizon, self.season
        history = np.asarray(history, dtype=np.float64)
        if name in GRAPHED:
            x, mu, sd = self.graph_input(name, sid, history)
            if name == "naive":
                return naive_forecast(x, h)
            if name == "snaive":
                return seasonal_naive_forecast(x, h, m or 1)
            return self.linear[name].predict(x[None])[0] * sd + mu
        if name in self.unfit:
            raise NotAvailable(self.unfit[name])
        if len(history) < 1:
            raise NotAvailable("the series is empty")
        if name in STATISTICAL:
            return statistical_forecast(name, history, h, m)
        raise NotAvailable(f"unknown baseline {name!r}")

    def forecast_many(
        self, name: str, ids: list[str], hist: np.ndarray, hist_len: np.ndarray
    ) -> tuple[np.ndarray, dict[int, str]]:
        """`forecast` of many series at once: ``hist`` their 1-d target histories one after
        the other, ``hist_len`` each. Returns (series, horizon), NaN rows where ``name``
        cannot forecast a series, and series number -> the reason. Naive, seasonal naive
        and the linear maps are array steps over every series; the statistical models go
        series by series."""
        h, m, n = self.horizon, self.season, len(ids)
        hist = np.asarray(hist, dtype=np.float64)
        hist_len = np.asarray(hist_len, dtype=np.int64)
        ends = np.cumsum(hist_len)
        out = np.full((n, h), np.nan)
        if name in self.unfit:
            return out, dict.fromkeys(range(n), self.unfit[name])
        reasons = dict.fromkeys(np.flatnonzero(hist_len < 1).tolist(), "the series is empty")
        if name == "naive":
            ok = hist_len >= 1
            out[ok] = hist[ends[ok] - 1][:, None]
        elif name in ("snaive", *LINEAR):
            need = self.window if name in LINEAR else m
            if not need:
                why = "no season (pass --season, or data with a frequency)"
                return out, reasons | {k: why for k in range(n) if k not in reasons}
            what = "its window" if name in LINEAR else "its season"
            for k in np.flatnonzero((hist_len >= 1) & (hist_len < need)).tolist():
                reasons[k] = f"{hist_len[k]} points, shorter than {what} ({need})"
            ok = np.flatnonzero(hist_len >= need)
            if name == "snaive":
                out[ok] = hist[ends[ok, None] - need + (np.arange(h) % need)[None, :]]
            elif len(ok):
                last = hist[ends[ok, None] - need + np.arange(need)[None, :]]  # (ok, window)
                got = [self.scale.get(ids[k]) for k in ok.tolist()]
                for i in [i for i, g in enumerate(got) if g is None]:
                    k = int(ok[i])
                    got[i] = _standardise(hist[ends[k] - hist_len[k] : ends[k]])
                mu, sd = np.array(got, dtype=np.float64).reshape(len(ok), 2).T
                z = (last - mu[:, None]) / sd[:, None]
                out[ok] = self.linear[name].predict(z) * sd[:, None] + mu[:, None]
        else:  # the statistical models (and an unknown name): one series at a time
            for k in range(n):
                if k in reasons:
                    continue
                try:
                    out[k] = self.forecast(name, ids[k], hist[ends[k] - hist_len[k] : ends[k]])
                except NotAvailable as err:
                    reasons[k] = str(err)
        return out, dict(sorted(reasons.items()))

    def forecast_all(
        self, sid: str, history: np.ndarray | None, names: list[str] | None = None
    ) -> dict[str, np.ndarray | str]:
        """Every baseline's (of ``names``, default all) forecast of series ``sid`` from
        ``history`` (None: from its stored context): name -> (horizon,) array, or the
        reason it is not available."""
        names = self.names if names is None else names
        if history is None:
            if sid not in self.context:
                return {n: f"series {sid!r} was not seen in training" for n in names}
            history = self.context[sid]
        out: dict[str, np.ndarray | str] = {}
        for name in names:
            if name not in self.names:
                out[name] = "not fitted with this model"
                continue
            try:
                out[name] = self.forecast(name, sid, history)
            except NotAvailable as err:
                out[name] = str(err)
        return out

    # ------------------------------------------------------------------ files
    def to_files(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON-serialisable description, float64 arrays for safetensors)."""
        arrays: dict[str, np.ndarray] = {}
        linear = {}
        for name, m in self.linear.items():
            d = m.to_dict()
            for k, v in d.pop("weights").items():
                arrays[f"{name}.{k}"] = v
            linear[name] = d
        ids = list(self.context)
        # every series' recent values in one array, cut at the offsets
        parts = [self.context[sid] for sid in ids]
        arrays["context.values"] = np.concatenate(parts) if parts else np.zeros(0)
        arrays["context.offsets"] = np.cumsum([0] + [len(p) for p in parts]).astype(np.float64)
        meta = {
            "names": self.names, "horizon": self.horizon, "season": self.season,
            "window": self.window, "linear": linear, "unfit": self.unfit,
            "scale": {k: list(v) for k, v in self.scale.items()}, "context_ids": ids,
        }  # fmt: skip
        return meta, arrays

    @classmethod
    def from_files(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Baselines:
        """Inverse of `to_files` (`LstmkitError` for anything missing or malformed)."""
        try:
            self = cls(
                parse_names(list(meta["names"])), int(meta["horizon"]),
                None if meta["season"] is None else int(meta["season"]), int(meta["window"]),
                unfit={str(k): str(v) for k, v in meta["unfit"].items()},
                scale={str(k): (float(v[0]), float(v[1])) for k, v in meta["scale"].items()},
            )  # fmt: skip
            for name, d in meta["linear"].items():
                weights = {
                    k.split(".", 1)[1]: np.asarray(v)
                    for k, v in arrays.items()
                    if k.startswith(f"{name}.")
                }
                self.linear[name] = LinearMap.from_dict(d | {"weights": weights})
            values = np.asarray(arrays["context.values"], dtype=np.float64)
            offsets = np.asarray(arrays["context.offsets"]).astype(np.int64)
            ids = list(meta["context_ids"])
            if len(offsets) != len(ids) + 1 or offsets[-1] != len(values):
                raise ValueError("the series' recent values do not match their ids")
            for i, sid in enumerate(ids):
                self.context[str(sid)] = values[offsets[i] : offsets[i + 1]].copy()
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as err:
            raise LstmkitError(f"{type(err).__name__}: {err}") from None
        missing = [n for n in self.names if n in LINEAR and n not in self.linear | self.unfit]
        if missing:
            raise LstmkitError(f"the weights of {missing} are missing")
        return self

    def to_bytes(self) -> tuple[str, bytes]:
        """(baselines.json text, baselines.safetensors bytes)."""
        from safetensors.numpy import save

        meta, arrays = self.to_files()
        return json.dumps(meta), save({k: np.ascontiguousarray(v) for k, v in arrays.items()})

    @classmethod
    def from_bytes(cls, meta_text: str, weights: bytes) -> Baselines:
        """Inverse of `to_bytes`."""
        from safetensors.numpy import load

        try:
            arrays = load(weights)
            meta = json.loads(meta_text)
        except Exception as err:  # a damaged file, said in one line
            raise LstmkitError(f"{type(err).__name__}: {str(err)[:120]}") from None
        return cls.from_files(meta, arrays)
