"""`ForecastData`: a forecaster's training data as a Lightning DataModule.

`setup` turns the series into what training reads: it checks they are long enough for
the window and horizon, splits each one in time (the last `validation_size` steps
validate, only where every series keeps a training window), fits the per-series scaler
on the training part, scales every series into one array and indexes the training and
validation windows as (series, origin) pairs (`WindowSet`: each window is cut from the
array when a batch asks for it, so thousands of series never hold all their windows in
memory), and keeps each series' last window as the context a forecast continues from.
It records what it learnt about the data in a `FittedState`. ``train_dataloader``
shuffles the training windows (a fresh random subset each epoch when
``batches_per_epoch`` caps them), ``val_dataloader`` gives the validation windows in
batches of at most `VAL_BATCH` (None without a validation part), and `fingerprint` is
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
from torch.utils.data import DataLoader, Dataset, RandomSampler

from lstmkit.data.scalers import SeriesScaler
from lstmkit.data.series import Series, SeriesData, season_from_freq, tail_times, tz_name
from lstmkit.errors import LstmkitError
from lstmkit.tasks.forecasting.config import ForecasterConfig
from lstmkit.tasks.forecasting.network import output_steps
from lstmkit.tasks.forecasting.state import FittedState

#: validation windows per batch (one batch when there are fewer)
VAL_BATCH = 8192


def validation_size(cfg: ForecasterConfig, shortest: int) -> int:
    """Validation steps at the end of each series (``shortest``: the shortest's length):
    ``val_size`` when set, else a tenth of the shortest in whole horizons (1 to 20)."""
    if cfg.val_size is not None:
        return cfg.val_size
    h = cfg.horizon
    return h * min(max(shortest // (10 * h), 1), 20)


def default_window(cfg: ForecasterConfig, sd: SeriesData) -> int:
    """The input window when ``cfg.window`` is None: two seasons or two horizons (at
    least 8), shortened to leave room for validation and a few dozen windows."""
    season = cfg.season or season_from_freq(sd.freq)
    h = cfg.horizon
    window = max(2 * (season or 0), 2 * h, 8)
    shortest = min(len(s) for s in sd.series.values())
    # leave room for the validation part and at least a few dozen windows
    room = shortest - h - validation_size(cfg, shortest) - 16
    return int(max(min(window, room), max(season or 0, 4)))


def scaled_values(scaler: SeriesScaler, s: Series, precision: str) -> np.ndarray:
    """The scaled values of ``s`` in the training dtype: float64 under precision 64,
    else float32 (values beyond float32 become inf, reported by `ForecastData.setup`)."""
    dtype = np.float64 if precision in ("64", "64-true") else np.float32
    with np.errstate(over="ignore"):
        return scaler.transform(s.id, s.values).astype(dtype)


def time_strings(times: pd.Index) -> list[str]:
    """``[str(t) for t in times]``, each distinct time formatted once: the contexts of
    100,000 series hold millions of times but mostly the same few hundred."""
    if not len(times):
        return []
    keys = times.asi8 if isinstance(times, pd.DatetimeIndex) else np.asarray(times)
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    text = np.array([str(times[i]) for i in first.tolist()], dtype=object)
    return text[inverse.reshape(-1)].tolist()


def contexts(sd: SeriesData, window: int) -> dict[str, dict[str, Any]]:
    """The last ``window`` steps of each series of ``sd``: {"values", "times"} as JSON
    lists (`ForecastData.context`)."""
    if not sd.series:
        return {}
    series = list(sd.series.values())
    text = time_strings(tail_times(series, window))
    values = np.stack([s.values[-window:] for s in series]).tolist()
    return {
        s.id: {"values": values[k], "times": text[k * window : (k + 1) * window]}
        for k, s in enumerate(series)
    }


def _collate(batch: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """`WindowSet.__getitems__` already returns the batch: pass it on."""
    return batch


class WindowSet(Dataset):
    """Windows of many series indexed as (series, origin) pairs and cut on access.

    ``values`` (rows, features) holds every series' scaled values one after the other;
    series ``k`` contributes ``counts[k]`` windows whose inputs start at rows
    ``first[k]``, ``first[k] + 1``, ... Item ``i`` is (inputs (window, features),
    [future (steps, n_future)], targets (steps,)), in the order the windows of
    `lstmkit.data.windows.make_windows` have series by series, so a sampler draws the
    same windows as from a table of them all. A batch of indices is cut in one step
    (``__getitems__``, which `torch.utils.data.DataLoader` calls; use `_collate`).
    """

    def __init__(
        self,
        values: np.ndarray,
        first: np.ndarray,
        counts: np.ndarray,
        window: int,
        steps: int,
        future_columns: list[int],
    ) -> None:
        self.values = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))
        self.first = np.asarray(first, dtype=np.int64)
        self.ends = np.cumsum(np.asarray(counts, dtype=np.int64))
        self.window, self.steps, self.future_columns = window, steps, list(future_columns)
        self._in = torch.arange(window)
        self._out = torch.arange(window, window + steps)

    def __len__(self) -> int:
        return int(self.ends[-1]) if len(self.ends) else 0

    def starts(self, index: np.ndarray) -> np.ndarray:
        """The row of ``values`` where each window of ``index`` starts."""
        index = np.asarray(index, dtype=np.int64)
        if len(index) and (index.min() < 0 or index.max() >= len(self)):
            raise IndexError(f"window index out of range 0..{len(self) - 1}")
        k = np.searchsorted(self.ends, index, side="right")
        before = np.where(k > 0, self.ends[np.maximum(k - 1, 0)], 0)
        return self.first[k] + index - before

    def __getitems__(self, index: list[int]) -> tuple[Tensor, ...]:
        return self.cut(index)

    def cut(self, index: Any) -> tuple[Tensor, ...]:
        """The windows ``index`` (a sequence of item numbers) as one batch of tensors."""
        start = torch.from_numpy(self.starts(np.asarray(list(index), dtype=np.int64)))[:, None]
        x = self.values[start + self._in]  # (batch, window, features)
        ahead = self.values[start + self._out]  # (batch, steps, features)
        parts = [x]
        if self.future_columns:
            parts.append(ahead[:, :, self.future_columns])
        parts.append(ahead[:, :, 0])
        return tuple(parts)

    def __getitem__(self, i: int) -> tuple[Tensor, ...]:
        return tuple(t[0] for t in self.__getitems__([int(i)]))


class ForecastData(L.LightningDataModule):
    """The windows a `Forecaster` trains on, from the series ``sd`` and settings ``cfg``.

    After `setup` (which runs once): ``window``, ``val`` (validation steps per series, 0
    without validation), ``state`` (`FittedState`), ``scaler``, ``context`` (each
    series' last window: {"values", "times"}) and the `WindowSet` datasets
    ``train_set`` / ``val_set`` of (inputs (window, features), [future (steps,
    n_future)], targets (steps,)) items.
    """

    def __init__(self, sd: SeriesData, cfg: ForecasterConfig) -> None:
        super().__init__()
        self.sd = sd
        self.cfg = cfg
        self.steps = output_steps(cfg)
        self.window = 0
        self.val = 0
        self.state: FittedState | None = None
        self.scaler: SeriesScaler | None = None
        self.context: dict[str, dict[str, Any]] = {}
        self.train_set: WindowSet | None = None
        self.val_set: WindowSet | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
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
        )
        self.scaler = SeriesScaler(self.cfg.scaler)
        self._index(self._scaled())
        self.context = contexts(self.sd, self.window)

    def _split(self) -> tuple[int, int]:
        """The window and the validation steps per series; refuses series too short for
        the window and horizon and a recursive forecaster with covariates."""
        cfg, sd = self.cfg, self.sd
        if cfg.method == "recursive" and sd.covariates:
            raise LstmkitError(
                "the recursive method cannot use covariates (their future values are "
                "unknown); use method='direct' or drop the covariates"
            )
        window = cfg.window or default_window(cfg, sd)
        h = cfg.horizon
        lengths = np.array([len(s) for s in sd.series.values()])
        val = validation_size(cfg, int(lengths.min()))
        need = window + h
        if (lengths < need).any():
            s = list(sd.series.values())[int(np.flatnonzero(lengths < need)[0])]
            label = "the series" if sd.id_col is None else f"series {s.id!r}"
            raise LstmkitError(
                f"{label} has {len(s)} rows, fewer than window ({window}) + horizon ({h}) "
                f"= {need}; use a smaller --window/--horizon or more data"
            )
        # Validation only where every series keeps at least one training window.
        if (lengths - val < window + self.steps).any():
            val = 0
        return window, val

    def _scaled(self) -> np.ndarray:
        """Fit the scaler of every series on its training part and return all the scaled
        values, series after series, as one (rows, features) array."""
        assert self.scaler is not None
        cfg, series = self.cfg, list(self.sd.series.values())
        values = np.concatenate([s.values for s in series])
        lengths = np.array([len(s) for s in series])
        ids = [s.id for s in series]
        self.scaler.fit_many(ids, values, lengths, lengths - self.val)
        dtype = np.float64 if cfg.train.precision in ("64", "64-true") else np.float32
        with np.errstate(over="ignore"):
            scaled = self.scaler.transform_many(ids, values, lengths).astype(dtype)
            # the network predicts in float32 in any case
            bad = ~np.isfinite(scaled.astype(np.float32)).all(axis=1)
        if bad.any():
            k = int(np.searchsorted(np.cumsum(lengths), np.flatnonzero(bad)[0], side="right"))
            s = series[k]
            raise LstmkitError(
                f"series {s.id!r} has values too large for the model's 32-bit arithmetic "
                f"after scaler={cfg.scaler!r} (largest {np.abs(s.values).max():.3g}); use "
                "scaler='minmax' or 'standard', or rescale the data"
            )
        self._lengths = lengths
        return scaled

    def _index(self, scaled: np.ndarray) -> None:
        """Index the training windows (targets within the training part) and, with
        validation, the windows whose horizon reaches into the validation part."""
        assert self.state is not None
        window, val, steps, h = self.window, self.val, self.steps, self.cfg.horizon
        lengths = self._lengths
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        fidx = self.state.future_columns
        # training origins 0 .. len - val - window - steps
        self.train_set = WindowSet(
            scaled, offsets, lengths - val - window - steps + 1, window, steps, fidx
        )
        self.val_set = None
        if val:
            # origins whose h-step target ends inside the validation part (targets cut to
            # the steps the network forecasts)
            last = lengths - window - h  # the last origin with a full horizon
            low = np.maximum(lengths - val - window - h + 1, 0)
            self.val_set = WindowSet(scaled, offsets + low, last - low + 1, window, steps, fidx)

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None, "call setup() first"
        size, cap = self.cfg.batch_size, self.cfg.batches_per_epoch
        if cap is not None and len(self.train_set) > cap * size:
            # a fresh random subset of the windows each epoch (no repeats within one)
            sampler = RandomSampler(self.train_set, num_samples=cap * size)
            return DataLoader(self.train_set, batch_size=size, sampler=sampler, collate_fn=_collate)
        return DataLoader(self.train_set, batch_size=size, shuffle=True, collate_fn=_collate)

    def val_dataloader(self) -> DataLoader | None:  # type: ignore[override]
        if self.val_set is None:
            return None
        size = min(max(len(self.val_set), 1), VAL_BATCH)
        return DataLoader(self.val_set, batch_size=size, collate_fn=_collate)

    def fingerprint(self) -> str:
        """The digest a run's checkpoints must match: the settings (training's aside, which
        `lstmkit.training.fit` adds), the fitted state and the raw series (the scaled
        windows alone would hide a change of scale)."""
        assert self.state is not None, "call setup() first"
        settings = {k: v for k, v in self.cfg.to_dict().items() if k != "train"}
        raw = hashlib.sha256()
        for s in self.sd.series.values():
            raw.update(s.id.encode() + np.ascontiguousarray(s.values).tobytes())
            times = s.times
            if isinstance(times, pd.DatetimeIndex):
                raw.update(f"{tz_name(times.tz)}".encode() + times.asi8.tobytes())
            else:
                raw.update(np.asarray(times, dtype=np.int64).tobytes())
        return json.dumps(
            {"forecaster": settings, "data": self.state.to_dict(), "raw": raw.hexdigest()}
        )
