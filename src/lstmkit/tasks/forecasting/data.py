"""`ForecastData`: a forecaster's training data as a Lightning DataModule.

`setup` turns the series into what training reads: it checks they are long enough for
the window and horizon, splits each one in time (the last `validation_size` steps
validate, only where every series keeps a training window), fits the per-series scaler
on the training part, cuts the scaled series into windows (inputs, known future
covariates, targets) and keeps each series' last window as the context a forecast
continues from. It records what it learnt about the data in a `FittedState`.
``train_dataloader`` shuffles the training windows (a fresh random subset each epoch
when ``batches_per_epoch`` caps them), ``val_dataloader`` is one batch of validation
windows (None without a validation part), and `fingerprint` is the digest a run's
checkpoints must match.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler, TensorDataset

from lstmkit.data.scalers import SeriesScaler
from lstmkit.data.series import Series, SeriesData, season_from_freq, tz_name
from lstmkit.data.windows import make_windows, window_target_ends
from lstmkit.errors import LstmkitError
from lstmkit.tasks.forecasting.network import output_steps
from lstmkit.tasks.forecasting.settings import ForecasterConfig
from lstmkit.tasks.forecasting.state import FittedState


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


def _future_windows(
    scaled: np.ndarray, columns: list[int], window: int, steps: int
) -> np.ndarray | None:
    """Known covariates over each window's horizon, (n, steps, len(columns)), or None."""
    if not columns:
        return None
    return np.stack([make_windows(scaled[:, [c]], window, steps)[1] for c in columns], axis=-1)


def _tensors(parts: list[list[np.ndarray]]) -> TensorDataset:
    """Concatenate per-series (inputs, [future], targets) arrays into one dataset."""
    return TensorDataset(*(torch.from_numpy(np.concatenate(a)) for a in zip(*parts, strict=True)))


class ForecastData(L.LightningDataModule):
    """The windows a `Forecaster` trains on, from the series ``sd`` and settings ``cfg``.

    After `setup` (which runs once): ``window``, ``val`` (validation steps per series, 0
    without validation), ``state`` (`FittedState`), ``scaler``, ``context`` (each
    series' last window: {"values", "times"}) and the datasets ``train_set`` /
    ``val_set`` of (inputs (n, window, features), [future (n, steps, n_future)],
    targets (n, steps)) tensors.
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
        self.train_set: TensorDataset | None = None
        self.val_set: TensorDataset | None = None

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
        train_parts: list[list[np.ndarray]] = []
        val_parts: list[list[np.ndarray]] = []
        for s in self.sd.series.values():
            train, val = self._windows(s)
            train_parts.append(train)
            if val is not None:
                val_parts.append(val)
            self.context[s.id] = {
                "values": s.values[-self.window :].tolist(),
                "times": [str(t) for t in s.times[-self.window :]],
            }
        self.train_set = _tensors(train_parts)
        self.val_set = _tensors(val_parts) if val_parts else None

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
        val = validation_size(cfg, min(len(s) for s in sd.series.values()))
        for s in sd.series.values():
            need = window + h
            if len(s) < need:
                label = "the series" if sd.id_col is None else f"series {s.id!r}"
                raise LstmkitError(
                    f"{label} has {len(s)} rows, fewer than window ({window}) + horizon ({h}) "
                    f"= {need}; use a smaller --window/--horizon or more data"
                )
        # Validation only where every series keeps at least one training window.
        if any(len(s) - val < window + self.steps for s in sd.series.values()):
            val = 0
        return window, val

    def _windows(self, s: Series) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
        """Fit the scaler of series ``s`` on its training part and cut its scaled values
        into training and (with validation) validation windows."""
        assert self.scaler is not None and self.state is not None
        cfg, window, val, steps, h = self.cfg, self.window, self.val, self.steps, self.cfg.horizon
        fidx = self.state.future_columns
        self.scaler.fit_series(s.id, s.values[: len(s) - val])
        scaled = scaled_values(self.scaler, s, cfg.train.precision)
        with np.errstate(over="ignore"):  # the network predicts in float32 in any case
            in_float32 = np.isfinite(scaled.astype(np.float32)).all()
        if not in_float32:
            raise LstmkitError(
                f"series {s.id!r} has values too large for the model's 32-bit arithmetic "
                f"after scaler={cfg.scaler!r} (largest {np.abs(s.values).max():.3g}); use "
                "scaler='minmax' or 'standard', or rescale the data"
            )
        x, y = make_windows(scaled, window, steps)
        fut = _future_windows(scaled, fidx, window, steps)
        keep = window_target_ends(len(s), window, steps) <= len(s) - val
        train = [a[keep] for a in (x, fut, y) if a is not None]
        if not val:
            return train, None
        vx, vy = make_windows(scaled, window, h)
        vfut = _future_windows(scaled, fidx, window, h)
        keep = window_target_ends(len(s), window, h) > len(s) - val
        vy = vy[:, :steps] if cfg.method == "recursive" else vy
        return train, [a[keep] for a in (vx, vfut, vy) if a is not None]

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None, "call setup() first"
        size, cap = self.cfg.batch_size, self.cfg.batches_per_epoch
        if cap is not None and len(self.train_set) > cap * size:
            # a fresh random subset of the windows each epoch (no repeats within one)
            sampler = RandomSampler(self.train_set, num_samples=cap * size)
            return DataLoader(self.train_set, batch_size=size, sampler=sampler)
        return DataLoader(self.train_set, batch_size=size, shuffle=True)

    def val_dataloader(self) -> DataLoader | None:  # type: ignore[override]
        if self.val_set is None:
            return None
        return DataLoader(self.val_set, batch_size=max(len(self.val_set), 1))

    def fingerprint(self) -> str:
        """The digest a run's checkpoints must match: the settings (training's aside, which
        `lstmkit.training.fit` adds), the fitted state and the raw series (the scaled
        windows alone would hide a change of scale)."""
        assert self.state is not None, "call setup() first"
        settings = {k: v for k, v in self.cfg.to_dict().items() if k != "train"}
        raw = hashlib.sha256()
        for s in self.sd.series.values():
            raw.update(s.id.encode() + np.ascontiguousarray(s.values).tobytes())
            raw.update(",".join(map(str, s.times)).encode())
        return json.dumps(
            {"forecaster": settings, "data": self.state.to_dict(), "raw": raw.hexdigest()}
        )
