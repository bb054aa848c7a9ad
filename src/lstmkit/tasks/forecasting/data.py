"""`ForecastData`: a forecaster's training data as a Lightning DataModule.

`setup` turns the series into what training reads: it checks they are long enough for
the window and horizon, splits each one in time (the last `validation_size` steps
validate, only where every series keeps a training window), fits the per-series scaler
on the training part, scales every series into one array and indexes the training and
validation windows as (series, origin) pairs (`WindowSet`: each window is cut from the
array when a batch asks for it, so thousands of series never hold all their windows in
memory), and keeps each series' last window as the context a forecast continues from.
With ``pad`` (`use_padding`) every series is preceded by NaN rows in that array, so a
training input needs only a horizon of real rows (the network fills and masks the rest),
and a short series' context holds all its rows; with ``recent`` only the training
windows whose targets start in each series' last ``recent`` horizons are indexed.
It records what it learnt about the data in a `FittedState`. ``train_dataloader``
shuffles the training windows (a fresh random subset each epoch when
``batches_per_epoch`` caps them; one window of every series when there are more series
than the cap holds windows, `OnePerSeries`), ``val_dataloader`` gives the validation windows in
batches of at most `VAL_BATCH` (None without a validation part; one fixed window of every
series where an epoch takes one of every series, `val_windows`), and `fingerprint` is
the digest a run's checkpoints must match.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler

from lstmkit.data.magnitudes import check_magnitudes
from lstmkit.data.scalers import SeriesScaler
from lstmkit.data.series import (
    Series,
    SeriesData,
    season_from_freq,
    tz_name,
)
from lstmkit.errors import LstmkitError
from lstmkit.tasks.forecasting.contexts import Contexts
from lstmkit.tasks.forecasting.network import output_steps
from lstmkit.tasks.forecasting.settings import ForecasterConfig
from lstmkit.tasks.forecasting.state import FittedState, nonnegative_series

#: validation windows per batch (one batch when there are fewer)
VAL_BATCH = 8192
#: a single series validates on at least this many horizons where it holds them
SINGLE_SERIES_VAL_HORIZONS = 3
#: a single series' default window leaves it at least this many training windows per
#: input step (`default_window`)
WINDOWS_PER_INPUT = 2
#: steps a series keeps for its training windows beyond its window, horizon and
#: validation part, or the default window is shortened (`window_room`)
ROOM_WINDOWS = 16


def validation_size(cfg: ForecasterConfig, sd: SeriesData) -> int:
    """Validation steps at the end of each series of ``sd``: ``val_size`` when set, else a
    tenth of the shortest in whole horizons (1 to 20); a single series takes at least
    `SINGLE_SERIES_VAL_HORIZONS` horizons where they leave room for its preferred window,
    a horizon and `ROOM_WINDOWS` training windows (else the tenth). Chosen on validation:
    on AirPassengers' rolling-origin years 1957-59 (1960 unseen) three horizons (36
    months) scored a median MAPE of 3.83% over seeds 0-4 (3.80-3.90, better in each year)
    against 4.85% with one horizon, 4.71% with two, 4.10% with four; its residual NLinear
    map, fitted on the windows before the validation part and its ridge chosen on 25
    validation windows instead of 12, scored 3.85% alone against 4.99%. The 25 windows
    also calibrate the band (20 needed): coverage of the 10-90% band .81 against .50."""
    if cfg.val_size is not None:
        return cfg.val_size
    h = cfg.horizon
    shortest = min(len(s) for s in sd.series.values())
    val = h * min(max(shortest // (10 * h), 1), 20)
    if len(sd.series) == 1:
        wide = SINGLE_SERIES_VAL_HORIZONS * h
        if shortest - h - wide - ROOM_WINDOWS >= preferred_window(cfg, sd):
            val = max(val, wide)
    return val


def preferred_window(cfg: ForecasterConfig, sd: SeriesData) -> int:
    """The window a forecaster would like: ``cfg.window``, else two seasons or two
    horizons (at least 8)."""
    season = cfg.season or season_from_freq(sd.freq)
    return cfg.window or max(2 * (season or 0), 2 * cfg.horizon, 8)


def window_room(cfg: ForecasterConfig, sd: SeriesData) -> int:
    """The longest window the shortest series holds beside its horizon, its validation
    part and a few dozen training windows."""
    shortest = min(len(s) for s in sd.series.values())
    return shortest - cfg.horizon - validation_size(cfg, sd) - ROOM_WINDOWS


def use_padding(cfg: ForecasterConfig, sd: SeriesData) -> bool:
    """Whether the windows of ``sd`` are left-padded (``cfg.pad``): ``auto`` pads several
    series (no residual map) when the shortest has no room for the default window (two
    seasons or horizons, `window_room`), so that the other series keep a long window, or,
    for a window set by hand, when the shortest cannot hold it, the horizon and its
    validation part; one series keeps a window it holds. Measured on validation
    (benchmarks/M4_DESIGN.md): on M4 Weekly padding to window 104 helps with recent windows
    and 2,500 steps of 256 (OWA .754 against .771 unpadded) but not with the default
    training (.900 against .799), so the default is off."""
    if cfg.pad != "auto":
        return bool(cfg.pad)
    if len(sd.series) < 2 or cfg.design(len(sd.series)).residual is not None:
        return False
    if cfg.window is None:
        return window_room(cfg, sd) < preferred_window(cfg, sd)
    shortest = min(len(s) for s in sd.series.values())
    return shortest - validation_size(cfg, sd) < cfg.window + cfg.horizon


def default_window(cfg: ForecasterConfig, sd: SeriesData) -> int:
    """The input window when ``cfg.window`` is None: two seasons or two horizons (at
    least 8), with padding (`use_padding`) as is, else shortened to leave room for
    validation and a few dozen windows; several series keep at least a season. A single
    series keeps at least `WINDOWS_PER_INPUT` training windows per input step instead (at
    least 4 steps): the NLinear map it corrects, fitted on fewer windows than twice its
    inputs, overfits. Chosen on validation (each series' last 13 training weeks; M4's test
    file not read): 40 M4 Weekly series of 80-300 weeks fitted one at a time scored a mean
    sMAPE of 16.87 (window 14 for the 80-week ones) against 17.01 with the season's floor
    (52: 3 training windows), beat naive on 22 against 15 and covered .64 of those weeks
    with the 10-90% band against .17; one window per input (window 21) scored 27.97; 30
    series of 301-700 weeks 6.13 against 6.15; AirPassengers keeps its 24."""
    season = cfg.season or season_from_freq(sd.freq)
    window = preferred_window(cfg, sd)
    if use_padding(cfg, sd):
        return window
    room = window_room(cfg, sd)
    if len(sd.series) == 1:  # at least WINDOWS_PER_INPUT training windows an input step
        rows = room + ROOM_WINDOWS  # the steps before the validation part's targets
        most = (rows + 1) // (WINDOWS_PER_INPUT + 1)
        return int(max(min(window, room, most), 4))
    return int(max(min(window, room), max(season or 0, 4)))


def min_real_rows(cfg: ForecasterConfig, window: int) -> int:
    """Fewest real rows in a padded training input: a horizon (at most the window)."""
    return min(max(cfg.horizon, 2), window)


def scaler_kind(setting: str, sd: SeriesData, values: np.ndarray | None = None) -> str:
    """The scaler a setting means for the series ``sd``: ``auto`` is ``log`` for several
    series whose target values are all positive (one global model then learns relative
    changes, comparable across series), else ``minmax``; any other setting is itself.
    Chosen on validation (benchmarks/FORECAST_DESIGN_LOG.md): on M4 Weekly's 359 series log lowered
    the OWA from .869 to .833; on AirPassengers alone it raised the MAPE (6.62 -> 6.88)."""
    if setting != "auto":
        return setting
    if len(sd.series) < 2:
        return "minmax"
    if values is None:  # (else: every series' values one after the other, already joined)
        values = np.concatenate([s.values for s in sd.series.values()])
    return "log" if values[:, 0].min() > 0 else "minmax"


def scaled_values(scaler: SeriesScaler, s: Series, precision: str) -> np.ndarray:
    """The scaled values of ``s`` in the training dtype: float64 under precision 64,
    else float32 (values beyond float32 become inf, reported by `ForecastData.setup`)."""
    dtype = np.float64 if precision in ("64", "64-true") else np.float32
    with np.errstate(over="ignore"):
        return scaler.transform(s.id, s.values).astype(dtype)


def contexts(sd: SeriesData, window: int) -> Contexts:
    """The last ``window`` steps of each series of ``sd`` and its static covariates
    (`ForecastData.context`), as arrays (`Contexts`)."""
    first = next(iter(sd.series.values()), None)
    tz = tz_name(getattr(first.times, "tz", None)) if first is not None else None
    return Contexts.from_series(sd, window, tz)


def static_encoding(sd: SeriesData) -> tuple[dict[str, list[str]], dict[str, list[float]]]:
    """What the static columns of ``sd`` become for the network: the sorted categories
    of each text column (embedded) and the mean and standard deviation over the series
    of each numeric one (a spread of 0 counts as 1)."""
    categories: dict[str, list[str]] = {}
    stats: dict[str, list[float]] = {}
    for j, col in enumerate(sd.static_cols):
        vals = [row[j] for row in sd.static.values()]
        if vals and isinstance(vals[0], str):
            categories[col] = sorted(set(vals))
        else:
            arr = np.asarray(vals, dtype=np.float64)
            std = float(arr.std())
            stats[col] = [float(arr.mean()), std if std > 1e-12 else 1.0]
    return categories, stats


def static_spec(state: FittedState, id_embedding: int, n_series: int) -> list[tuple[int, int]]:
    """(categories, embedding width) of each static input of the network: a text column
    (width about half its categories, at most 16), a numeric column (0, 1), and with
    ``id_embedding`` the series id (``n_series`` ids, width ``id_embedding``)."""
    spec = []
    for col in state.static_cols:
        cats = state.static_categories.get(col)
        spec.append((len(cats), min(16, (len(cats) + 1) // 2)) if cats else (0, 1))
    if id_embedding:
        spec.append((n_series, id_embedding))
    return spec


def static_matrix(
    state: FittedState,
    ids: list[str],
    values: dict[str, list[Any]],
    series_index: dict[str, int] | None,
) -> np.ndarray:
    """The static inputs of the series ``ids`` (n, inputs) float32: category numbers of the
    text columns, scaled numeric columns, then (``series_index``: the id embedding's
    numbering) each series' number. A series without its values, a category or a
    series unseen in training is refused."""
    out = np.zeros((len(ids), len(state.static_cols) + (series_index is not None)), np.float32)
    for j, col in enumerate(state.static_cols):
        cats = state.static_categories.get(col)
        lookup = {c: i for i, c in enumerate(cats)} if cats else None
        for k, sid in enumerate(ids):
            row = values.get(sid)
            if row is None:
                raise LstmkitError(
                    f"series {sid!r} has no value of the static covariate {col!r}; the model "
                    "needs it: pass the column with the data"
                )
            v = row[j]
            if lookup is not None:
                if str(v) not in lookup:
                    raise LstmkitError(
                        f"static covariate {col!r} of series {sid!r} is {v!r}, a category "
                        f"unseen in training (known: {', '.join(cats[:10])})"
                    )
                out[k, j] = lookup[str(v)]
            else:
                if isinstance(v, str):
                    raise LstmkitError(
                        f"static covariate {col!r} of series {sid!r} must be a number, got {v!r}"
                    )
                mean, std = state.static_stats[col]
                out[k, j] = (float(v) - mean) / std
    if series_index is not None:
        for k, sid in enumerate(ids):
            if sid not in series_index:
                raise LstmkitError(
                    f"series {sid!r} was not seen in training; a model with a series-id "
                    "embedding forecasts only the series it was trained on"
                )
            out[k, -1] = series_index[sid]
    return out


def _collate(batch: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """`WindowSet.__getitems__` already returns the batch: pass it on."""
    return batch


class WindowSet(Dataset):
    """Windows of many series indexed as (series, origin) pairs and cut on access.

    ``values`` (rows, features) holds every series' scaled values one after the other;
    series ``k`` contributes ``counts[k]`` windows whose inputs start at rows
    ``first[k]``, ``first[k] + 1``, ... Item ``i`` is (inputs (window, features),
    [future (steps, n_future)], [past (steps, n_past): the next values of the
    ``past_columns``, which a recursive forecaster learns to forecast], targets
    (steps,)), in the order the windows of
    `lstmkit.data.windows.make_windows` have series by series, so a sampler draws the
    same windows as from a table of them all. With ``static`` (series, inputs), items
    carry their series' static inputs before the targets. A batch of indices is cut in
    one step (``__getitems__``, which `torch.utils.data.DataLoader` calls; use
    `_collate`).
    """

    def __init__(
        self,
        values: np.ndarray,
        first: np.ndarray,
        counts: np.ndarray,
        window: int,
        steps: int,
        future_columns: list[int],
        static: np.ndarray | None = None,
        past_columns: list[int] | None = None,
    ) -> None:
        self.past_columns = list(past_columns or [])
        self.values = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))
        self.static = None if static is None else torch.from_numpy(np.asarray(static, np.float32))
        self.first = np.asarray(first, dtype=np.int64)
        self.ends = np.cumsum(np.asarray(counts, dtype=np.int64))
        self.window, self.steps, self.future_columns = window, steps, list(future_columns)
        self._in = torch.arange(window)
        self._out = torch.arange(window, window + steps)

    def __len__(self) -> int:
        return int(self.ends[-1]) if len(self.ends) else 0

    def starts(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The series of each window of ``index`` and the row of ``values`` it starts at."""
        index = np.asarray(index, dtype=np.int64)
        if len(index) and (index.min() < 0 or index.max() >= len(self)):
            raise IndexError(f"window index out of range 0..{len(self) - 1}")
        k = np.searchsorted(self.ends, index, side="right")
        before = np.where(k > 0, self.ends[np.maximum(k - 1, 0)], 0)
        return k, self.first[k] + index - before

    def __getitems__(self, index: list[int]) -> tuple[Tensor, ...]:
        return self.cut(index)

    def cut(self, index: Any) -> tuple[Tensor, ...]:
        """The windows ``index`` (a sequence of item numbers) as one batch of tensors."""
        series, rows = self.starts(np.asarray(list(index), dtype=np.int64))
        start = torch.from_numpy(rows)[:, None]
        x = self.values[start + self._in]  # (batch, window, features)
        ahead = self.values[start + self._out]  # (batch, steps, features)
        parts = [x]
        if self.future_columns:
            parts.append(ahead[:, :, self.future_columns])
        if self.past_columns:
            parts.append(ahead[:, :, self.past_columns])
        if self.static is not None:
            parts.append(self.static[torch.from_numpy(series)])
        parts.append(ahead[:, :, 0])
        return tuple(parts)

    def __getitem__(self, i: int) -> tuple[Tensor, ...]:
        return tuple(t[0] for t in self.__getitems__([int(i)]))


class OnePerSeries(Sampler[int]):
    """One random window of every series of a `WindowSet`, in random order, drawn afresh
    each epoch: the epoch of a global model over more series than ``batches_per_epoch``
    batches hold, so that an epoch sees every series once (and its length, like the
    validation pass after it, grows with the series)."""

    def __init__(self, data: WindowSet) -> None:
        counts = np.diff(data.ends, prepend=0)
        has = np.flatnonzero(counts > 0)
        self.first = torch.from_numpy((data.ends - counts)[has])  # each series' first window
        self.counts = torch.from_numpy(counts[has]).double()

    def __len__(self) -> int:
        return len(self.first)

    def __iter__(self):  # type: ignore[no-untyped-def]
        # seeded from torch's generator, as RandomSampler is (seed_everything fixes it)
        g = torch.Generator().manual_seed(int(torch.empty((), dtype=torch.int64).random_().item()))
        pick = (torch.rand(len(self.first), generator=g, dtype=torch.float64) * self.counts).long()
        order = torch.randperm(len(self.first), generator=g)
        yield from (self.first + pick)[order].tolist()


class ForecastData(L.LightningDataModule):
    """The windows a `Forecaster` trains on, from the series ``sd`` and settings ``cfg``.

    After `setup` (which runs once): ``window``, ``val`` (validation steps per series, 0
    without validation), ``state`` (`FittedState`), ``scaler``, ``context`` (each
    series' last window, `Contexts`) and the `WindowSet` datasets
    ``train_set`` / ``val_set`` of (inputs (window, features), [future (steps,
    n_future)], [past-only covariates ahead (recursive)], [static], targets (steps,))
    items.
    """

    def __init__(self, sd: SeriesData, cfg: ForecasterConfig) -> None:
        super().__init__()
        self.sd = sd
        self.cfg = cfg
        self.steps = output_steps(cfg)
        self.window = 0
        self.val = 0
        self.pad = False
        self.state: FittedState | None = None
        self.scaler: SeriesScaler | None = None
        self.context: Contexts | None = None
        self.train_set: WindowSet | None = None
        self.val_set: WindowSet | None = None
        self._val_windows: list[int] | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        self.pad = use_padding(self.cfg, self.sd)
        self.window, self.val = self._split()
        first = next(iter(self.sd.series.values()))
        self.state = FittedState(
            target=self.sd.target,
            time_col=self.sd.time_col,
            id_col=self.sd.id_col,
            covariates=list(self.sd.covariates),
            future_covariates=list(self.sd.future_covariates),
            freq=self.sd.freq,
            window=self.window,
            tz=tz_name(getattr(first.times, "tz", None)),
            static_cols=list(self.sd.static_cols),
            pad=self.pad,
            nonnegative=nonnegative_series(self.cfg.nonnegative, self.sd),
            **dict(zip(("static_categories", "static_stats"), static_encoding(self.sd),
                       strict=True)),
        )  # fmt: skip
        values = np.concatenate([s.values for s in self.sd.series.values()])
        check_magnitudes(self.sd, values)
        self.scaler = SeriesScaler(scaler_kind(self.cfg.scaler, self.sd, values))
        self._index(self._scaled(values))
        del values
        self.context = contexts(self.sd, self.window)

    def _split(self) -> tuple[int, int]:
        """The window and the validation steps per series; refuses series too short for
        the window and horizon."""
        cfg, sd = self.cfg, self.sd
        window = cfg.window or default_window(cfg, sd)
        h = cfg.horizon
        lengths = np.array([len(s) for s in sd.series.values()])
        val = validation_size(cfg, sd)
        if self.pad and cfg.design(len(sd.series)).residual is not None:
            raise LstmkitError(
                "pad and residual cannot go together (the residual's linear map needs whole "
                "windows); drop one of them"
            )
        # a padded input needs only a horizon of real rows
        need = (min_real_rows(cfg, window) if self.pad else window) + h
        if (lengths < need).any():
            s = list(sd.series.values())[int(np.flatnonzero(lengths < need)[0])]
            label = "the series" if sd.id_col is None else f"series {s.id!r}"
            raise LstmkitError(
                f"{label} has {len(s)} rows, fewer than window ({window}) + horizon ({h}) "
                f"= {need}; use a smaller --window/--horizon or more data"
                if not self.pad
                else f"has {len(s)} rows, fewer than the {need} a padded window needs "
                f"(a horizon of real inputs + horizon {h}); use a smaller --horizon or more data"
            )
        # Validation only where every series keeps at least one training window.
        short = lengths - val < need - h + self.steps
        if short.any() and cfg.val_size:  # asked for: not trained on, nor scored as unseen
            s = list(sd.series.values())[int(np.flatnonzero(short)[0])]
            label = "the series" if sd.id_col is None else f"series {s.id!r}"
            raise LstmkitError(
                f"val_size {val} leaves {label} ({len(s)} rows) no training window before "
                f"its validation stretch; use a smaller --val-size or --window"
            )
        if short.any():
            val = 0
        return window, val

    def _scaled(self, values: np.ndarray) -> np.ndarray:
        """Fit the scaler of every series on its training part and return all the scaled
        values (``values``: the series' values one after the other), series after series,
        as one (rows, features) array."""
        assert self.scaler is not None
        cfg, series = self.cfg, list(self.sd.series.values())
        lengths = np.array([len(s) for s in series])
        ids = [s.id for s in series]
        dtype = np.float64 if cfg.train.precision in ("64", "64-true") else np.float32
        with np.errstate(over="ignore"):
            scaled = self.scaler.fit_transform_many(ids, values, lengths, lengths - self.val)
            scaled = scaled.astype(dtype)
            # the network predicts in float32 in any case
            bad = ~np.isfinite(scaled.astype(np.float32, copy=False)).all(axis=1)
        if bad.any():
            k = int(np.searchsorted(np.cumsum(lengths), np.flatnonzero(bad)[0], side="right"))
            s = series[k]
            raise LstmkitError(
                f"series {s.id!r} has values too large for the model's 32-bit arithmetic "
                f"after scaler={cfg.scaler!r} (largest {np.abs(s.values).max():.3g}); use "
                "scaler='minmax' or 'standard', or rescale the data"
            )
        self._lengths = lengths
        if self.pad:  # every series after NaN rows: inputs with a horizon of real rows
            pad = self.window - min_real_rows(cfg, self.window)
            blank = np.full((pad, scaled.shape[1]), np.nan, dtype=scaled.dtype)
            cuts = np.cumsum(lengths)[:-1]
            scaled = np.concatenate([p for part in np.split(scaled, cuts) for p in (blank, part)])
            self._lengths = lengths + pad
        return scaled

    def _index(self, scaled: np.ndarray) -> None:
        """Index the training windows (targets within the training part) and, with
        validation, the windows whose horizon reaches into the validation part."""
        assert self.state is not None
        window, val, steps, h = self.window, self.val, self.steps, self.cfg.horizon
        lengths = self._lengths
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        fidx = self.state.future_columns
        # recursive: the one-step network also forecasts the past-only covariates
        pidx = self.state.past_columns if self.cfg.method == "recursive" else []
        static = None
        if self.state.static_cols or self.cfg.id_embedding:
            ids = list(self.sd.series)
            index = {sid: i for i, sid in enumerate(ids)} if self.cfg.id_embedding else None
            static = static_matrix(self.state, ids, self.sd.static, index)
        # training origins 0 .. len - val - window - steps; with ``recent``, only those
        # whose targets start within the last recent * horizon rows of the training part
        low = np.zeros_like(lengths)
        if self.cfg.recent is not None:
            low = np.maximum(lengths - val - self.cfg.recent * h - window, 0)
        self.train_set = WindowSet(
            scaled, offsets + low, lengths - val - window - steps + 1 - low, window, steps, fidx,
            static, pidx,
        )  # fmt: skip
        self.val_set = None
        if val:
            # origins whose h-step target ends inside the validation part (targets cut to
            # the steps the network forecasts)
            last = lengths - window - h  # the last origin with a full horizon
            low = np.maximum(lengths - val - window - h + 1, 0)
            self.val_set = WindowSet(
                scaled, offsets + low, last - low + 1, window, steps, fidx, static, pidx
            )

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None, "call setup() first"
        size, cap = self.cfg.batch_size, self.cfg.batches_per_epoch
        if self._one_per_series():
            # more series than the cap holds windows: one window of each series an epoch
            sampler = OnePerSeries(self.train_set)
            return DataLoader(self.train_set, batch_size=size, sampler=sampler, collate_fn=_collate)
        if cap is not None and len(self.train_set) > cap * size:
            # a fresh random subset of the windows each epoch (no repeats within one)
            sampler = RandomSampler(self.train_set, num_samples=cap * size)
            return DataLoader(self.train_set, batch_size=size, sampler=sampler, collate_fn=_collate)
        return DataLoader(self.train_set, batch_size=size, shuffle=True, collate_fn=_collate)

    def _one_per_series(self) -> bool:
        """Whether an epoch takes one window of every series (`OnePerSeries`): more
        series than ``batches_per_epoch`` batches hold windows."""
        assert self.train_set is not None, "call setup() first"
        size, cap = self.cfg.batch_size, self.cfg.batches_per_epoch
        return cap is not None and len(self.train_set.ends) > cap * size

    def val_windows(self) -> list[int] | None:
        """The validation windows every epoch scores: all of them (None), or, where an epoch
        takes one window of every series, one of every series, drawn once with the fit's
        seed (the same windows each epoch, so the losses compare). 100,000 series with a
        validation stretch of one horizon of 12 hold 1.2 million validation windows: a
        pass over them took 3.8 s on two threads beside a 10 s epoch of 100,000 training
        windows; one a series takes a twelfth of that."""
        if self.val_set is None or not self._one_per_series():
            return None
        if self._val_windows is None:
            counts = np.diff(self.val_set.ends, prepend=0)
            has = np.flatnonzero(counts > 0)
            rng = np.random.default_rng(self.cfg.train.seed)
            pick = (rng.random(len(has)) * counts[has]).astype(np.int64)
            self._val_windows = ((self.val_set.ends - counts)[has] + pick).tolist()
        return self._val_windows

    def val_dataloader(self) -> DataLoader | None:  # type: ignore[override]
        if self.val_set is None:
            return None
        windows = self.val_windows()
        size = min(max(len(self.val_set if windows is None else windows), 1), VAL_BATCH)
        return DataLoader(self.val_set, batch_size=size, sampler=windows, collate_fn=_collate)

    def fingerprint(self) -> str:
        """The digest a run's checkpoints must match: the settings (training's aside, which
        `lstmkit.training.fit` adds), the fitted state and the raw series (the scaled
        windows alone would hide a change of scale)."""
        assert self.state is not None, "call setup() first"
        settings = {k: v for k, v in self.cfg.to_dict().items() if k != "train"}
        raw = hashlib.sha256()
        series = list(self.sd.series.values())
        axes: dict[int, tuple[bytes, np.ndarray]] = {}  # a shared time axis, converted once
        for lo in range(0, len(series), 4096):  # the bytes of 4096 series, hashed at once
            parts: list[Any] = []  # bytes and buffers (joined without copies of their own)
            for s in series[lo : lo + 4096]:
                parts += [s.id.encode(), np.ascontiguousarray(s.values).data]
                if s.axis is not None:  # a stretch of a table's times (`Series`)
                    if id(s.axis) not in axes:
                        axes[id(s.axis)] = _time_bytes(s.axis)
                    zone, ints = axes[id(s.axis)]
                    parts += [zone, ints[s.start : s.start + len(s.values)].data]
                else:
                    zone, ints = _time_bytes(s.times)
                    parts += [zone, ints.data]
            raw.update(b"".join(parts))
        if self.sd.static:
            raw.update(json.dumps(self.sd.static, sort_keys=True).encode())
        return json.dumps(
            {"forecaster": settings, "data": self.state.to_dict(), "raw": raw.hexdigest()}
        )


def _time_bytes(times: pd.Index) -> tuple[bytes, np.ndarray]:
    """What `ForecastData.fingerprint` hashes of ``times``: the zone's name (dates only)
    and the times as int64."""
    if isinstance(times, pd.DatetimeIndex):
        return f"{tz_name(times.tz)}".encode(), np.ascontiguousarray(times.asi8)
    return b"", np.ascontiguousarray(times, dtype=np.int64)
