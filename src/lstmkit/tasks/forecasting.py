"""Time-series forecasting: `Forecaster` (fit / predict / evaluate / backtest / save / load).

The model is an LSTM or GRU encoder from `lstmkit.nn` over an input window of
``window`` steps (target plus any covariate columns) and a dense head that
reads the encoder's last state together with the (normalised) input window
(plus any known future covariates over the horizon) and emits all ``horizon``
steps at once (``method="direct"``, default) or one step that is fed back
``horizon`` times (``method="recursive"``, seed 004's method). Preprocessing
lives with the model: per-series scaling (MinMax to [-1, 1] or standard,
fitted on the training part), reversible instance normalisation of each input
window (the target by the window's own mean and spread, undone on the
forecast; covariates centred on their window means), windowing and a strictly
time-ordered validation split.
With ``quantiles`` the head also predicts those quantiles, trained with the
pinball loss beside the point forecast's squared error (one extra output
channel per quantile), so the band comes with no loss of point accuracy.
"""

from __future__ import annotations

import copy
import json
import math
import os
import zoneinfo
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, RandomSampler, TensorDataset

from lstmkit.config import check_field_types, dataclass_from_dict
from lstmkit.data.scalers import SeriesScaler
from lstmkit.data.series import (
    Series,
    SeriesData,
    format_time,
    future_times,
    load_future,
    load_series,
    season_from_freq,
    times_from_strings,
    tz_from_name,
    tz_name,
)
from lstmkit.data.windows import make_windows, window_target_ends
from lstmkit.errors import LstmkitError
from lstmkit.io import load_model_dir, save_model_dir
from lstmkit.nn import GRU, LSTM, make_pool
from lstmkit.tasks.forecast_metrics import (
    METRICS,
    all_metrics,
    naive_forecast,
    seasonal_naive_forecast,
)
from lstmkit.training import FitResult, LstmkitModule, TrainConfig, fit

KIND = "forecaster"
EPS = 1e-5


@dataclass
class ForecasterConfig:
    """Everything that defines a forecaster; round-trips through JSON.

    horizon: steps to forecast. window: input steps (None: chosen from the
    season and horizon at fit time). model: "lstm" | "gru". method: "direct" |
    "recursive". instance_norm: per-window reversible normalisation. scaler:
    "minmax" | "standard" | "none" (per series, fitted on training data).
    quantiles: e.g. (0.1, 0.5, 0.9) for a pinball-loss band, or None for MSE.
    skip: the head also reads the normalised input window (a linear path
    beside the recurrent one). val_size: validation steps at the end of each
    series (None: about a tenth of the shortest series in whole horizons, 1 to
    20 of them; 0: no validation). batches_per_epoch: at most this many
    batches, drawn at random, between two validations (None: every window
    each epoch), so that long series get checked and early-stopped in steps of
    a bounded size rather than of one full pass. season: seasonal period for
    baselines and MASE (None: inferred from the frequency).
    """

    horizon: int = 12
    window: int | None = None
    model: str = "lstm"
    hidden_size: int = 64
    num_layers: int = 1
    dropout: float = 0.0
    bidirectional: bool = False
    method: str = "direct"
    instance_norm: bool = True
    scaler: str = "minmax"
    quantiles: list[float] | None = field(default_factory=lambda: [0.1, 0.5, 0.9])
    skip: bool = True
    batch_size: int = 32
    val_size: int | None = None
    batches_per_epoch: int | None = 100
    season: int | None = None
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(max_epochs=300, lr=1e-2, early_stopping_patience=20)
    )

    def __post_init__(self) -> None:
        if isinstance(self.train, dict):
            self.train = TrainConfig.from_dict(self.train)
        if not isinstance(self.train, TrainConfig):
            raise LstmkitError(
                f"forecaster setting train must be a TrainConfig or dict, got {self.train!r}"
            )
        check_field_types(self, "forecaster")
        if self.quantiles is not None:
            self.quantiles = sorted(float(q) for q in self.quantiles)
        checks = [
            (isinstance(self.horizon, int) and self.horizon >= 1, "horizon must be >= 1"),
            (self.window is None or self.window >= 2, "window must be >= 2"),
            (self.model in ("lstm", "gru"), "model must be 'lstm' or 'gru'"),
            (self.method in ("direct", "recursive"), "method must be 'direct' or 'recursive'"),
            (self.hidden_size >= 1 and self.num_layers >= 1, "hidden_size/num_layers >= 1"),
            (0.0 <= self.dropout < 1.0, "dropout must be in [0, 1)"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (
                self.batches_per_epoch is None or self.batches_per_epoch >= 1,
                "batches_per_epoch must be >= 1 or None",
            ),
            (self.val_size is None or self.val_size >= 0, "val_size must be >= 0"),
            (self.season is None or self.season >= 1, "season must be >= 1"),
            (
                self.quantiles is None
                or (
                    all(0 < q < 1 for q in self.quantiles)
                    and len(set(self.quantiles)) == len(self.quantiles)
                ),
                "quantiles must be distinct values strictly between 0 and 1",
            ),
        ]
        for ok, msg in checks:
            if not ok:
                raise LstmkitError(f"invalid forecaster setting: {msg}")
        if self.scaler not in ("minmax", "standard", "none"):
            raise LstmkitError(f"scaler must be minmax, standard or none, got {self.scaler!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (the train config nested)."""
        d = asdict(self)
        d["train"] = self.train.to_dict()
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ForecasterConfig:
        """Inverse of `to_dict`."""
        return dataclass_from_dict(cls, data, "ForecasterConfig")


class ForecastNet(nn.Module):
    """Recurrent encoder + dense head.

    Input (batch, window, features) with the target in feature 0; output
    (batch, steps, n_outputs) where steps is the horizon (direct) or 1 and the
    outputs are the point forecast followed by any quantiles.
    """

    def __init__(
        self,
        n_features: int,
        window: int,
        steps: int,
        n_outputs: int,
        model: str = "lstm",
        hidden_size: int = 64,
        num_layers: int = 1,
        dropout: float = 0.0,
        bidirectional: bool = False,
        skip: bool = True,
        n_future: int = 0,
    ) -> None:
        super().__init__()
        rnn_cls = LSTM if model == "lstm" else GRU
        self.rnn = rnn_cls(
            n_features,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
            bidirectional=bidirectional,
        )
        width = hidden_size * (2 if bidirectional else 1)
        self.pool = make_pool("last", width, bidirectional=bidirectional)
        self.dropout = nn.Dropout(dropout)
        self.steps, self.n_outputs = steps, n_outputs
        head_in = width + (window if skip else 0) + steps * n_future
        self.head = nn.Linear(head_in, steps * n_outputs)
        self.skip, self.n_future = skip, n_future

    def forward(self, x: Tensor, future: Tensor | None = None) -> Tensor:
        """x (batch, window, features), future (batch, steps, n_future) known covariates
        over the horizon -> (batch, steps, n_outputs)."""
        out, _ = self.rnn(x)
        parts = [self.dropout(self.pool(out))]
        if self.skip:
            parts.append(x[:, :, 0])
        if self.n_future:
            if future is None:
                raise ValueError("this model needs the future covariates over the horizon")
            parts.append(future.reshape(x.shape[0], -1))
        return self.head(torch.cat(parts, dim=1)).view(x.shape[0], self.steps, self.n_outputs)


def _instance_stats(x: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and standard deviation of the target (feature 0) of each window, (batch, 1)."""
    target = x[:, :, 0]
    mean = target.mean(dim=1, keepdim=True)
    std = torch.sqrt(target.var(dim=1, keepdim=True, unbiased=False) + EPS)
    return mean, std


def pinball_loss(pred: Tensor, y: Tensor, quantiles: Tensor) -> Tensor:
    """Mean pinball loss: pred (batch, steps, q), y (batch, steps), quantiles (q,)."""
    diff = y.unsqueeze(-1) - pred
    return torch.maximum(quantiles * diff, (quantiles - 1) * diff).mean()


class ForecastModule(LstmkitModule):
    """LightningModule wrapping `ForecastNet` with instance normalisation and the loss.

    Loss: MSE of the point forecast (output channel 0) plus, with quantiles, the
    pinball loss of channels 1.., computed on the per-series scaled values after
    undoing the instance normalisation.
    """

    def __init__(
        self,
        net: ForecastNet,
        instance_norm: bool,
        quantiles: list[float] | None,
        future_columns: list[int] | None = None,
    ):
        super().__init__()
        self.net = net
        # positions of the known-future covariates among the covariates (feature - 1)
        self.future_columns = [c - 1 for c in future_columns or []]
        self.instance_norm = instance_norm
        q = torch.tensor(quantiles or [], dtype=torch.float32)
        self.register_buffer("quantiles", q, persistent=False)

    def forward(self, x: Tensor, future: Tensor | None = None) -> Tensor:
        """x (batch, window, features) scaled [, future (batch, steps, n_future)] ->
        forecast (batch, steps, n_outputs) scaled."""
        if not self.instance_norm:
            return self.net(x, future)
        mean, std = _instance_stats(x)
        # covariates are centred on their window means (kept at their scale: a flag that
        # is 0 all window long must not be divided by a zero spread)
        cov_mean = x[:, :, 1:].mean(dim=1, keepdim=True)
        xn = torch.cat([(x[:, :, :1] - mean.unsqueeze(-1)) / std.unsqueeze(-1),
                        x[:, :, 1:] - cov_mean], dim=2)  # fmt: skip
        if future is not None:
            future = future - cov_mean[:, :, self.future_columns]
        out = self.net(xn, future)
        return out * std.unsqueeze(-1) + mean.unsqueeze(-1)

    def step_metrics(self, batch: tuple[Tensor, ...]) -> dict[str, Tensor]:
        """Batch (x, [future,] y) -> {"loss": MSE of the point forecast [+ pinball]}."""
        x, y = batch[0], batch[-1]
        pred = self(x, batch[1] if len(batch) == 3 else None)
        loss = torch.mean((pred[..., 0] - y) ** 2)
        if len(self.quantiles):
            loss = loss + pinball_loss(pred[..., 1:], y, self.quantiles)
        return {"loss": loss}


@dataclass
class Evaluation:
    """Result of `Forecaster.evaluate`.

    metrics: one row per model (``lstmkit``, ``naive``, ``seasonal_naive``),
    columns MAE, RMSE, MAPE, sMAPE, MASE (averaged over series).
    forecasts: long table with id, time, actual, forecast (and quantile
    columns), naive, seasonal_naive.
    coverage: with two or more quantiles, the share of actual values inside the
    band between the lowest and highest quantile (e.g. q10-q90), else None.
    """

    metrics: pd.DataFrame
    forecasts: pd.DataFrame
    season: int | None
    coverage: float | None = None


def _qname(q: float) -> str:
    return f"q{round(q * 100):g}"


class Forecaster:
    """Forecast one or many series with an LSTM/GRU encoder and a dense head.

    Example::

        f = Forecaster(horizon=12).fit(df, target="passengers", time_col="month")
        f.predict()                  # the 12 months after the data
        f.evaluate(df_with_actuals)  # model vs naive and seasonal naive

    Args:
        horizon, window, ...: see `ForecasterConfig`.
        **train: `TrainConfig` fields (max_epochs, lr, seed, accelerator,
            devices, strategy, num_nodes, progress_bar, checkpoint_dir, ...).
    """

    def __init__(self, horizon: int = 12, window: int | None = None, **kwargs: Any) -> None:
        cfg_names = {f.name for f in fields(ForecasterConfig)} - {"train"}
        train_names = {f.name for f in fields(TrainConfig)}
        train = kwargs.pop("train", None)
        train = TrainConfig.from_dict(train) if isinstance(train, dict) else train
        if train is None:
            train = ForecasterConfig().train
        train_kw = {k: kwargs.pop(k) for k in list(kwargs) if k in train_names}
        unknown = set(kwargs) - cfg_names
        if unknown:
            raise LstmkitError(
                f"unknown Forecaster arguments {sorted(unknown)}; "
                f"known: {sorted(cfg_names | train_names)}"
            )
        train = TrainConfig.from_dict(train.to_dict() | train_kw)
        self.config = ForecasterConfig(horizon=horizon, window=window, train=train, **kwargs)
        self.data_info: dict[str, Any] | None = None
        self.scaler: SeriesScaler | None = None
        self.module: ForecastModule | None = None
        self.context: dict[str, dict[str, Any]] = {}
        self.fit_result: FitResult | None = None

    # ------------------------------------------------------------------ data helpers
    @property
    def is_fitted(self) -> bool:
        """Whether `fit` (or `load`) has run."""
        return self.module is not None

    def _require_fitted(self) -> None:
        if self.module is None:
            raise LstmkitError("the forecaster is not fitted; call fit(data) or Forecaster.load")

    def _load(self, data: Any, **kw: Any) -> SeriesData:
        if isinstance(data, SeriesData):
            return data
        if self.data_info is not None:
            info = self.data_info
            return load_series(
                data,
                info["target"],
                time_col=info["time_col"] if info["time_col"] != "__time__" else None,
                id_col=info["id_col"],
                covariates=info["covariates"],
                freq=kw.get("freq") or info["freq"],
                future_covariates=info.get("future_covariates", []),
            )
        return load_series(data, **kw)

    @property
    def season(self) -> int | None:
        """Seasonal period used by the baselines and MASE."""
        if self.config.season:
            return self.config.season
        return season_from_freq(self.data_info["freq"]) if self.data_info else None

    def _steps(self) -> int:
        return self.config.horizon if self.config.method == "direct" else 1

    def _default_window(self, sd: SeriesData) -> int:
        season = self.config.season or season_from_freq(sd.freq)
        h = self.config.horizon
        window = max(2 * (season or 0), 2 * h, 8)
        shortest = min(len(s) for s in sd.series.values())
        # leave room for the validation part and at least a few dozen windows
        room = shortest - h - self._val_size(shortest) - 16
        return int(max(min(window, room), max(season or 0, 4)))

    def _future_columns(self) -> list[int]:
        """Columns of the series values that hold known future covariates."""
        info = self.data_info or {}
        covs = info.get("covariates", [])
        return [1 + covs.index(c) for c in info.get("future_covariates", [])]

    def _val_size(self, shortest: int) -> int:
        """Validation steps at the end of each series (``shortest``: the shortest's length)."""
        if self.config.val_size is not None:
            return self.config.val_size
        h = self.config.horizon
        return h * min(max(shortest // (10 * h), 1), 20)

    def _scaled(self, s: Series) -> np.ndarray:
        assert self.scaler is not None
        with np.errstate(over="ignore"):  # values beyond float32 become inf, reported by fit
            return self.scaler.transform(s.id, s.values).astype(np.float32)

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        data: pd.DataFrame | pd.Series | str | os.PathLike[str] | SeriesData,
        target: str | None = None,
        *,
        time_col: str | None = None,
        id_col: str | None = None,
        covariates: list[str] | None = None,
        freq: str | None = None,
        future_covariates: list[str] | None = None,
    ) -> Forecaster:
        """Train on ``data`` (all of it; the last ``val_size`` steps of each series
        validate for early stopping). Returns self; see `fit_result` for the history.

        ``covariates`` are extra input columns seen over the input window;
        ``future_covariates`` are also known over the horizon (calendar, planned
        prices) and `predict` then needs their next values (``future=``)."""
        self.data_info, self.context = None, {}
        sd = self._load(
            data, target=target, time_col=time_col, id_col=id_col,
            covariates=covariates, freq=freq, future_covariates=future_covariates,
        )  # fmt: skip
        cfg = self.config
        if cfg.method == "recursive" and sd.covariates:
            raise LstmkitError(
                "the recursive method cannot use covariates (their future values are "
                "unknown); use method='direct' or drop the covariates"
            )
        window = cfg.window or self._default_window(sd)
        h = cfg.horizon
        val = self._val_size(min(len(s) for s in sd.series.values()))
        steps = self._steps()
        for s in sd.series.values():
            need = window + h
            if len(s) < need:
                label = "the series" if sd.id_col is None else f"series {s.id!r}"
                raise LstmkitError(
                    f"{label} has {len(s)} rows, fewer than window ({window}) + horizon ({h}) "
                    f"= {need}; use a smaller --window/--horizon or more data"
                )
        # Validation only where every series keeps at least one training window.
        if any(len(s) - val < window + steps for s in sd.series.values()):
            val = 0
        self.data_info = {
            "target": sd.target,
            "time_col": sd.time_col,
            "id_col": sd.id_col,
            "covariates": sd.covariates,
            "future_covariates": sd.future_covariates,
            "freq": sd.freq,
            "window": window,
            "tz": tz_name(getattr(next(iter(sd.series.values())).times, "tz", None)),
        }
        self.scaler = SeriesScaler(cfg.scaler)
        fidx = self._future_columns()
        train_parts: list[list[np.ndarray]] = []
        val_parts: list[list[np.ndarray]] = []
        for s in sd.series.values():
            self.scaler.fit_series(s.id, s.values[: len(s) - val])
            scaled = self._scaled(s)
            if not np.isfinite(scaled).all():
                raise LstmkitError(
                    f"series {s.id!r} has values too large for the model's 32-bit arithmetic "
                    f"after scaler={cfg.scaler!r} (largest {np.abs(s.values).max():.3g}); use "
                    "scaler='minmax' or 'standard', or rescale the data"
                )
            x, y = make_windows(scaled, window, steps)
            fut = _future_windows(scaled, fidx, window, steps)
            keep = window_target_ends(len(s), window, steps) <= len(s) - val
            train_parts.append([a[keep] for a in (x, fut, y) if a is not None])
            if val:
                vx, vy = make_windows(scaled, window, h)
                vfut = _future_windows(scaled, fidx, window, h)
                keep = window_target_ends(len(s), window, h) > len(s) - val
                vy = vy[:, :steps] if cfg.method == "recursive" else vy
                val_parts.append([a[keep] for a in (vx, vfut, vy) if a is not None])
            self.context[s.id] = {
                "values": s.values[-window:].tolist(),
                "times": [str(t) for t in s.times[-window:]],
            }
        train_set = _tensors(train_parts)
        L.seed_everything(cfg.train.seed, verbose=False)
        self.module = self._build_module(sd.n_features, window)
        cap = cfg.batches_per_epoch
        if cap is not None and len(train_set) > cap * cfg.batch_size:
            # a fresh random subset of the windows each epoch (no repeats within one)
            sampler = RandomSampler(train_set, num_samples=cap * cfg.batch_size)
            train_loader = DataLoader(train_set, batch_size=cfg.batch_size, sampler=sampler)
        else:
            train_loader = DataLoader(train_set, batch_size=cfg.batch_size, shuffle=True)
        val_loader = None
        if val_parts:
            val_set = _tensors(val_parts)
            val_loader = DataLoader(val_set, batch_size=max(len(val_set), 1))
        settings = {k: v for k, v in cfg.to_dict().items() if k != "train"}
        digest = json.dumps({"forecaster": settings, "data": self.data_info}, default=str)
        self.fit_result = fit(self.module, train_loader, val_loader, cfg.train, digest)
        self.module.eval()
        return self

    def _build_module(self, n_features: int, window: int) -> ForecastModule:
        cfg = self.config
        check_model_size(
            estimate_parameters(cfg, n_features, window, len(self._future_columns())),
            "hidden_size / num_layers",
        )
        net = ForecastNet(
            n_features,
            window,
            self._steps(),
            1 + len(cfg.quantiles or []),
            model=cfg.model,
            hidden_size=cfg.hidden_size,
            num_layers=cfg.num_layers,
            dropout=cfg.dropout,
            bidirectional=cfg.bidirectional,
            skip=cfg.skip,
            n_future=len(self._future_columns()),
        )
        return ForecastModule(net, cfg.instance_norm, cfg.quantiles, self._future_columns())

    def set_context(
        self, data: pd.DataFrame | pd.Series | str | os.PathLike[str] | SeriesData
    ) -> Forecaster:
        """Make `predict()` (and a saved model) continue from the end of ``data``
        instead of the end of the training data, without retraining."""
        self._require_fitted()
        assert self.data_info is not None
        sd = self._load(data)
        window = self.data_info["window"]
        for s in sd.series.values():
            if len(s) < window:
                raise LstmkitError(
                    f"series {s.id!r} has {len(s)} rows; the model needs at least {window}"
                )
            if s.id not in self.scaler.params:  # type: ignore[union-attr]
                raise LstmkitError(
                    f"series {s.id!r} was not seen in training; the model knows "
                    f"{', '.join(list(self.context)[:10])}"
                )
            self.context[s.id] = {
                "values": s.values[-window:].tolist(),
                "times": [str(t) for t in s.times[-window:]],
            }
        return self

    # ------------------------------------------------------------------ predict
    @torch.no_grad()
    def _forecast_scaled(
        self, window_values: np.ndarray, future: np.ndarray | None = None
    ) -> np.ndarray:
        """(batch, window, features) scaled [+ future (batch, horizon, n_future) scaled]
        -> (batch, horizon, n_outputs) scaled."""
        assert self.module is not None
        self.module.eval()
        x = torch.as_tensor(window_values, dtype=torch.float32)
        if self.config.method == "direct":
            fut = None if future is None else torch.as_tensor(future, dtype=torch.float32)
            return self.module(x, fut).numpy()
        outs = []
        start = x
        for _ in range(self.config.horizon):
            step = self.module(x)  # (batch, 1, n_outputs)
            outs.append(step)
            x = torch.cat([x[:, 1:], step[:, :, :1]], dim=1)
        out = torch.cat(outs, dim=1)
        if len(self.config.quantiles or []) >= 2 and self.config.horizon > 1:
            # the one-step quantiles only hold for step 1; later steps take the quantiles
            # of simulated sample paths, so the band widens with the horizon
            out[:, 1:, 1:] = self._simulated_quantiles(start)[:, 1:]
        return out.numpy()

    def _simulated_quantiles(self, x: Tensor) -> Tensor:
        """Quantiles of ``SAMPLE_PATHS`` recursive sample paths from each window.

        Each path feeds back a draw from the model's predictive distribution at every
        step: its quantile function, linear between the predicted quantiles and
        extended linearly beyond the outer ones. Seeded by the training seed, so a
        forecast is reproducible. x (batch, window, 1) scaled -> (batch, horizon, q).
        """
        assert self.module is not None
        levels = torch.tensor(self.config.quantiles or [], dtype=torch.float32)
        gen = torch.Generator().manual_seed(self.config.train.seed)
        n, h = SAMPLE_PATHS, self.config.horizon
        chunk = max(1, MAX_PATH_BATCH // n)
        result = []
        for begin in range(0, len(x), chunk):
            xs = x[begin : begin + chunk].repeat_interleave(n, dim=0)
            draws = []
            for _ in range(h):
                q = torch.sort(self.module(xs)[:, 0, 1:], dim=-1).values  # (paths, q)
                u = torch.rand(len(xs), generator=gen)
                draw = _quantile_function(q, levels, u)
                draws.append(draw)
                xs = torch.cat([xs[:, 1:], draw.view(-1, 1, 1)], dim=1)
            paths = torch.stack(draws, dim=1).view(-1, n, h)  # (chunk, paths, horizon)
            result.append(torch.quantile(paths, levels, dim=1).permute(1, 2, 0))
        return torch.cat(result)

    def _forecast_series(
        self, sid: str, history: np.ndarray, future: np.ndarray | None = None
    ) -> np.ndarray:
        """Forecast from the raw history (time, features) of one series (and the known
        covariates over the horizon, (horizon, n_future)): (horizon, n_outputs)."""
        assert self.scaler is not None and self.data_info is not None
        window = self.data_info["window"]
        if len(history) < window:
            raise LstmkitError(
                f"series {sid!r} has {len(history)} rows; the model needs the last {window} "
                "(its window) to forecast"
            )
        fut = None if future is None else np.asarray(future)[None]
        return self.predict_windows(np.asarray(history)[None, -window:], sid, future=fut)[0]

    def predict_windows(
        self,
        windows: np.ndarray,
        series_id: str | None = None,
        batch_size: int = 1024,
        future: np.ndarray | None = None,
    ) -> np.ndarray:
        """Forecasts for many input windows of one series at once (backtests, benchmarks).

        Args:
            windows: raw values, shape (n, window, features) (target in feature 0).
            series_id: whose scaling to use (default: the only series).
            batch_size: windows per forward pass.
            future: raw known covariates over each horizon, (n, horizon, n_future);
                required when the model was fitted with ``future_covariates``.

        Returns:
            (n, horizon, outputs) in the data's units: the point forecast in
            ``[..., 0]``, then one channel per quantile.
        """
        self._require_fitted()
        assert self.scaler is not None and self.data_info is not None
        sid = series_id if series_id is not None else next(iter(self.scaler.params))
        windows = np.asarray(windows, dtype=np.float64)
        if windows.ndim != 3 or windows.shape[1] != self.data_info["window"]:
            raise LstmkitError(
                f"windows must have shape (n, {self.data_info['window']}, features), "
                f"got {windows.shape}"
            )
        fidx = self._future_columns()
        if fidx and (future is None or np.shape(future)[:2] != (len(windows), self.config.horizon)):
            raise LstmkitError(
                f"this model needs the known future values of {self.data_info['future_covariates']}"
                f" for the {self.config.horizon} forecast steps; pass them (future=...)"
            )
        outs = []
        for start in range(0, len(windows), batch_size):
            chunk = self.scaler.transform(sid, windows[start : start + batch_size])
            fut = None
            if fidx:
                fut = self.scaler.transform(sid, future[start : start + batch_size], columns=fidx)
                fut = fut.astype(np.float32)
            with np.errstate(over="ignore", invalid="ignore"):  # reported below
                outs.append(self._forecast_scaled(chunk.astype(np.float32), fut))
        out = np.concatenate(outs) if outs else np.zeros((0, self.config.horizon, 1))
        out[..., 1:] = np.sort(out[..., 1:], axis=-1)  # keep quantiles ordered
        out = self.scaler.inverse_transform(sid, out)
        if not np.isfinite(out).all():
            raise LstmkitError(
                f"the model's forecast for series {sid!r} is not finite (NaN or infinity); "
                "the inputs are outside what it can handle: use scaler='minmax' or "
                "'standard' with instance normalisation, or rescale the data"
            )
        return out

    def _frame(self, sid: str, times: pd.Index, fc: np.ndarray) -> pd.DataFrame:
        cfg = self.config
        cols: dict[str, Any] = {}
        if self.data_info and self.data_info["id_col"]:
            cols[self.data_info["id_col"]] = [sid] * len(times)
        tname = (self.data_info or {}).get("time_col") or "step"
        cols[tname if tname != "__time__" else "time"] = list(times)
        cols["forecast"] = fc[:, 0]
        for i, q in enumerate(cfg.quantiles or []):
            cols[_qname(q)] = fc[:, 1 + i]
        return pd.DataFrame(cols)

    def predict(
        self,
        data: pd.DataFrame | pd.Series | str | os.PathLike[str] | None = None,
        future: pd.DataFrame | str | os.PathLike[str] | None = None,
    ) -> pd.DataFrame:
        """Forecast the ``horizon`` steps after the end of ``data`` (default: after the
        data the model was fitted on, or the data given to `set_context`).

        ``future``: for a model fitted with ``future_covariates``, a table (or
        CSV/Parquet path) with the time (and id) column and those columns for at
        least the ``horizon`` steps after the data.

        Returns a DataFrame with (id,) time, ``forecast`` and, with quantiles,
        one ``q<percent>`` column per quantile.
        """
        self._require_fitted()
        info = self.data_info
        assert info is not None
        h = self.config.horizon
        if data is None:
            tz = info.get("tz")
            histories = [
                (sid, times_from_strings(ctx["times"], tz), np.asarray(ctx["values"], float))
                for sid, ctx in self.context.items()
            ]
            freq = info["freq"]
        else:
            sd = self._load(data)
            histories = [(s.id, s.times, s.values) for s in sd.series.values()]
            freq = sd.freq or info["freq"]
        known = None
        if info.get("future_covariates"):
            if future is None:
                raise LstmkitError(
                    f"this model uses known future values of {info['future_covariates']}; pass "
                    "them for the forecast steps (future=table, or --future FILE)"
                )
            known = load_future(
                future, info["future_covariates"], time_col=info["time_col"], id_col=info["id_col"]
            )
        frames = []
        for sid, times, values in histories:
            steps = future_times(times, freq, h)
            fut = None
            if known is not None:
                ftimes, fvalues = known.get(sid, (pd.Index([]), np.zeros((0, 0))))
                pos = pd.Index(ftimes).get_indexer(steps)
                if (pos < 0).any():
                    missing = format_time(steps[int(np.flatnonzero(pos < 0)[0])])
                    raise LstmkitError(
                        f"the future table lacks {info['future_covariates']} for series {sid!r} "
                        f"at {missing}; it needs the {h} steps after the data"
                    )
                fut = fvalues[pos]
            frames.append(self._frame(sid, steps, self._forecast_series(sid, values, fut)))
        return pd.concat(frames, ignore_index=True)

    # ------------------------------------------------------------------ evaluate
    def evaluate(
        self, data: pd.DataFrame | pd.Series | str | os.PathLike[str] | SeriesData
    ) -> Evaluation:
        """Hold out the last ``horizon`` steps of each series in ``data``, forecast them
        from the steps before, and score the model beside naive and seasonal naive."""
        self._require_fitted()
        sd = self._load(data)
        h = self.config.horizon
        season = self.season
        rows: dict[str, list[dict[str, float]]] = {"lstmkit": [], "naive": []}
        if season:
            rows["seasonal_naive"] = []
        frames = []
        window = self.data_info["window"]  # type: ignore[index]
        for s in sd.series.values():
            if len(s) < window + h:
                raise LstmkitError(
                    f"series {s.id!r} has {len(s)} rows; evaluation needs window ({window}) + "
                    f"horizon ({h}) = {window + h}"
                )
            hist, actual = s.values[:-h], s.values[-h:, 0]
            fidx = self._future_columns()
            fc = self._forecast_series(s.id, hist, s.values[-h:, fidx] if fidx else None)
            frame = self._frame(s.id, s.times[-h:], fc)
            frame.insert(int(frame.columns.get_loc("forecast")), "actual", actual)
            target_hist = hist[:, 0]
            baselines = {"naive": naive_forecast(target_hist, h)}
            if season and len(target_hist) >= season:
                baselines["seasonal_naive"] = seasonal_naive_forecast(target_hist, h, season)
            rows["lstmkit"].append(
                all_metrics(actual, frame["forecast"].to_numpy(), target_hist, season)
            )
            for name, b in baselines.items():
                rows[name].append(all_metrics(actual, b, target_hist, season))
                frame[name] = b
            frames.append(frame)
        table = pd.DataFrame({name: pd.DataFrame(r).mean() for name, r in rows.items() if r}).T[
            list(METRICS)
        ]
        table.index.name = "model"
        forecasts = pd.concat(frames, ignore_index=True)
        coverage = None
        qs = self.config.quantiles or []
        if len(qs) >= 2:
            coverage = quantile_coverage(
                forecasts["actual"].to_numpy(),
                forecasts[_qname(qs[0])].to_numpy(),
                forecasts[_qname(qs[-1])].to_numpy(),
            )
        return Evaluation(table, forecasts, season, coverage)

    def backtest(
        self,
        data: pd.DataFrame | pd.Series | str | os.PathLike[str],
        folds: int = 3,
        step: int | None = None,
        refit: bool = True,
        **columns: Any,
    ) -> pd.DataFrame:
        """Rolling-origin backtest: ``folds`` origins, ``step`` apart (default horizon),
        the last one ``horizon`` steps before the end. Each fold trains on the data
        before its origin (``refit=True``, a fresh model with this config) or reuses the
        fitted model, then scores the next ``horizon`` steps.

        ``columns`` (target, time_col, id_col, covariates) describe ``data`` when the
        forecaster has not been fitted yet.

        Returns one row per fold and model with the fold number, origin time and metrics.
        """
        sd = self._load(data) if self.data_info else load_series(data, **columns)
        if folds < 1:
            raise LstmkitError(f"folds must be at least 1, got {folds}")
        step = step or self.config.horizon
        h = self.config.horizon
        if not refit:
            self._require_fitted()
        rows = []
        for k in range(folds):
            cut = (folds - 1 - k) * step  # steps dropped from the end
            part = _truncate(sd, cut)
            shortest = min(len(s) for s in part.series.values())
            if shortest - h < 2:
                raise LstmkitError(
                    f"backtest fold {k + 1} leaves only {shortest} rows; use fewer folds"
                )
            model = self
            if refit:
                model = Forecaster.__new__(Forecaster)
                model.__init__(**_init_kwargs(self.config))  # type: ignore[misc]
                model.fit(_truncate(part, h))
            ev = model.evaluate(part)
            origin = next(iter(part.series.values())).times[-h - 1]
            for name, metrics in ev.metrics.iterrows():
                rows.append({"fold": k + 1, "origin": origin, "model": name, **metrics.to_dict()})
        return pd.DataFrame(rows)

    # ------------------------------------------------------------------ save / load
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model directory (config, weights, scaler, context) atomically."""
        self._require_fitted()
        assert self.module is not None and self.scaler is not None
        config = {"forecaster": self.config.to_dict(), "data": self.data_info}
        extras = {
            "scaler.json": self.scaler.to_json(),
            "context.json": json.dumps(self.context),
        }
        if self.fit_result is not None:
            extras["history.json"] = json.dumps(self.fit_result.to_dict())
        return save_model_dir(
            path, kind=KIND, config=config, state_dict=self.module.net.state_dict(), extras=extras
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Forecaster:
        """Read a model directory written by `save`; every file is checked, and a damaged
        one is reported in one `LstmkitError` line naming it."""
        saved = load_model_dir(path, KIND)
        root = Path(path)
        current = "config.json"
        try:
            cfg = ForecasterConfig.from_dict(copy.deepcopy(saved.config["forecaster"]))
            data_info = _checked_data_info(saved.config["data"])
            current = "scaler.json"
            scaler = SeriesScaler.from_json(saved.read_text("scaler.json"))
            _check_scaler(scaler, 1 + len(data_info["covariates"]))
            current = "context.json"
            context = _checked_context(
                json.loads(saved.read_text("context.json")), data_info, set(scaler.params)
            )
        except (LstmkitError, KeyError, TypeError, ValueError, AttributeError) as err:
            if isinstance(err, LstmkitError) and "model directory" in str(err):
                raise  # a missing file, already said in one line
            what = str(err) if isinstance(err, LstmkitError) else f"{type(err).__name__}: {err}"
            raise LstmkitError(
                f"{root / current} is damaged ({what[:200]}); save the model again"
            ) from None
        self = cls.__new__(cls)
        self.config, self.data_info, self.scaler, self.context = cfg, data_info, scaler, context
        self.fit_result = None
        try:
            history = json.loads(saved.read_text("history.json"))
            self.fit_result = FitResult(**history)
        except (LstmkitError, ValueError, TypeError):
            pass
        self.module = self._build_module(1 + len(data_info["covariates"]), data_info["window"])
        try:
            self.module.net.load_state_dict(saved.state_dict)
        except RuntimeError as err:
            first = str(err).splitlines()[0]
            raise LstmkitError(f"weights in {path} do not match its config: {first}") from None
        self.module.eval()
        return self


SAMPLE_PATHS = 500  # recursive forecasts: sample paths per window for the band
MAX_PATH_BATCH = 16384  # windows per forward pass while simulating them


def _quantile_function(values: Tensor, levels: Tensor, u: Tensor) -> Tensor:
    """Evaluate piecewise-linear quantile functions at ``u``.

    values (n, q) ascending quantile values at ``levels`` (q,) ascending, u (n,) in
    (0, 1) -> (n,): linear between neighbouring levels, and beyond the outer levels
    linear with the slope of the outer segments.
    """
    k = torch.searchsorted(levels, u.contiguous()).clamp(1, len(levels) - 1)  # right end
    lo_l, hi_l = levels[k - 1], levels[k]
    rows = torch.arange(len(u))
    lo_v, hi_v = values[rows, k - 1], values[rows, k]
    return lo_v + (hi_v - lo_v) * (u - lo_l) / (hi_l - lo_l)


def _checked_data_info(info: Any) -> dict[str, Any]:
    """The ``data`` part of a saved forecaster's config.json, checked field by field."""
    if not isinstance(info, dict):
        raise LstmkitError(f"'data' must be an object, got {type(info).__name__}")
    info = dict(info)
    info.setdefault("future_covariates", [])
    info.setdefault("tz", None)
    texts = {"target": False, "time_col": True, "id_col": True, "freq": True, "tz": True}
    for key, optional in texts.items():
        if key not in info:
            raise LstmkitError(f"data.{key} is missing")
        value = info[key]
        if not (isinstance(value, str) or (optional and value is None)):
            raise LstmkitError(f"data.{key} must be text, got {value!r}")
    for key in ("covariates", "future_covariates"):
        if not isinstance(info.get(key), list) or not all(isinstance(c, str) for c in info[key]):
            raise LstmkitError(f"data.{key} must be a list of column names")
    window = info.get("window")
    if not isinstance(window, int) or isinstance(window, bool) or window < 2:
        raise LstmkitError(f"data.window must be an integer of at least 2, got {window!r}")
    if info["freq"] is not None:
        try:
            pd.tseries.frequencies.to_offset(info["freq"])
        except ValueError:
            raise LstmkitError(f"data.freq {info['freq']!r} is not a pandas frequency") from None
    if info["tz"] is not None:
        try:
            pd.Timestamp("2000-01-01", tz=tz_from_name(info["tz"]))
        except (ValueError, TypeError, KeyError, zoneinfo.ZoneInfoNotFoundError):
            raise LstmkitError(f"data.tz {info['tz']!r} is not a time zone") from None
    return info


def _check_scaler(scaler: SeriesScaler, n_columns: int) -> None:
    for sid, p in scaler.params.items():
        for key in ("shift", "scale"):
            v = np.asarray(p[key], dtype=np.float64)
            if (
                v.shape != (n_columns,)
                or not np.isfinite(v).all()
                or (key == "scale" and (v == 0).any())
            ):
                raise LstmkitError(
                    f"series {sid!r}: {key} must be {n_columns} finite numbers, got {p[key]!r}"
                )


def _checked_context(context: Any, info: dict[str, Any], known: set[str]) -> dict[str, Any]:
    """A saved forecaster's context.json (the last window of each series), checked."""
    if not isinstance(context, dict) or not context:
        raise LstmkitError("expected an object with the last window of each series")
    window, n_features = info["window"], 1 + len(info["covariates"])
    for sid, ctx in context.items():
        if sid not in known:
            raise LstmkitError(f"series {sid!r} has no scaling parameters in scaler.json")
        values = np.asarray(ctx["values"], dtype=np.float64)
        if values.shape != (window, n_features) or not np.isfinite(values).all():
            raise LstmkitError(
                f"series {sid!r}: values must be {window} rows of {n_features} finite numbers"
            )
        if not isinstance(ctx["times"], list) or len(ctx["times"]) != window:
            raise LstmkitError(f"series {sid!r}: times must list {window} timestamps")
        times_from_strings([str(t) for t in ctx["times"]], info["tz"])
    return context


def estimate_parameters(cfg: ForecasterConfig, n_features: int, window: int, n_future: int) -> int:
    """Number of weights of the network `ForecastNet` would build for ``cfg`` (exact for
    the LSTM/GRU layers and the head; computed without allocating them)."""
    gates = 4 if cfg.model == "lstm" else 3
    dirs = 2 if cfg.bidirectional else 1
    h = cfg.hidden_size
    total = 0
    for layer in range(cfg.num_layers):
        inputs = n_features if layer == 0 else h * dirs
        total += dirs * gates * h * (inputs + h + 2)
    steps = cfg.horizon if cfg.method == "direct" else 1
    outputs = steps * (1 + len(cfg.quantiles or []))
    head_in = h * dirs + (window if cfg.skip else 0) + steps * n_future
    return total + (head_in + 1) * outputs


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_model_size(parameters: int, knobs: str) -> None:
    """Refuse a network whose training state cannot fit in this machine's memory.

    Training holds each float32 weight about four times (weights, gradients and
    Adam's two moments): 16 bytes per parameter, before any activations.
    """
    need = 16 * parameters
    have = _memory_bytes()
    if have is not None and need > have:
        raise LstmkitError(
            f"the model would have {parameters:,} parameters, about {need / 2**30:,.0f} GiB to "
            f"train (weights, gradients, optimiser state), more than this machine's "
            f"{have / 2**30:,.0f} GiB; use a smaller {knobs}"
        )


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


def _init_kwargs(cfg: ForecasterConfig) -> dict[str, Any]:
    d = cfg.to_dict()
    d["train"] = TrainConfig.from_dict(d["train"])
    return d


def _truncate(sd: SeriesData, drop_last: int) -> SeriesData:
    """A copy of ``sd`` without the last ``drop_last`` steps of each series."""
    if drop_last == 0:
        return sd
    out = SeriesData(
        sd.target, sd.time_col, sd.id_col, sd.covariates, sd.freq,
        future_covariates=sd.future_covariates,
    )  # fmt: skip
    for sid, s in sd.series.items():
        out.series[sid] = Series(sid, s.times[:-drop_last], s.values[:-drop_last])
    return out


def quantile_coverage(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """Share of ``actual`` values inside [lower, upper]."""
    a = np.asarray(actual)
    return float(np.mean((a >= lower) & (a <= upper))) if len(a) else math.nan
