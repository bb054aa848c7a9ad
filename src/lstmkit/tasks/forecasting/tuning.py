"""`tune`: choose a forecaster's settings with Optuna on the validation stretch.

Each trial trains a fresh `Forecaster` whose settings are the given forecaster's with
the trial's choices from `SPACE` (input window, width, depth, learning rate, dropout and
the design choices of the network: the linear skip, patches, the instance normalisation
and the NLinear map it corrects), then scores it on the validation windows of the
training data: the windows whose whole horizon lies in the last ``val_size`` steps of
each series, the stretch early stopping watches and the test part never touches. The
score is the mean absolute error of the point forecast in the scaled units of each
series (its per-series scaler, fitted on the part before the validation stretch, is the
same in every trial), so every series counts alike. Optuna's TPE sampler is seeded, so a
run with the same data, settings and seed tries the same settings in the same order;
``minutes`` bounds the wall time (the trial running when it ends is completed). A trial
whose settings the data cannot serve (a window too long for the shortest series) or
whose training diverges is recorded as failed with its reason, and the search goes on.
The best trial's fitted forecaster is returned, ready to predict: nothing is refitted.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lstmkit.data.series import SeriesData
from lstmkit.errors import LstmkitError
from lstmkit.tasks.forecasting.calibration import validation_windows
from lstmkit.tasks.forecasting.data import default_window, validation_size, window_room
from lstmkit.tasks.forecasting.estimator import Forecaster
from lstmkit.training.settings import TrainConfig

#: the settings a search chooses, and how: ("int", choices) / ("log", low, high) /
#: ("choice", options)
SPACE: dict[str, tuple] = {
    "window": ("window",),  # multiples of the default window, within the data (see below)
    "hidden_size": ("choice", [16, 32, 64, 128]),
    "num_layers": ("choice", [1, 2]),
    "lr": ("log", 1e-3, 3e-2),
    "dropout": ("choice", [0.0, 0.1, 0.2, 0.3]),
    "skip": ("choice", [True, False]),
    # the network's design (issue 17): patches, the normalisation, the NLinear map it corrects
    "patch": ("choice", [1, 2, 4]),
    "instance_norm": ("choice", ["mean", "last"]),
    "residual": ("choice", [None, "nlinear-fixed", "nlinear"]),
}


@dataclass
class TuneResult:
    """What `tune` found. forecaster: the best trial's fitted model. best: its chosen
    settings. score: its validation MAE (scaled units). trials: one dict per trial
    (number, the settings, score or None, seconds, state "complete"/"failed", reason)."""

    forecaster: Forecaster
    best: dict[str, Any]
    score: float
    trials: list[dict[str, Any]] = field(default_factory=list)


def window_choices(forecaster: Forecaster, data: SeriesData) -> list[int]:
    """Input windows a search tries: half, once, twice and three times the default
    window (`default_window`: two seasons or two horizons), those the shortest series
    can serve with its validation stretch and a few dozen training windows."""
    cfg = forecaster.config
    base = cfg.window or default_window(cfg, data)
    room = window_room(cfg, data)
    out = sorted({w for w in (base // 2, base, 2 * base, 3 * base) if 4 <= w <= max(room, 4)})
    return out or [base]


def validation_score(forecaster: Forecaster, data: SeriesData, val: int) -> float:
    """Mean absolute error of ``forecaster``'s point forecast over the validation windows
    of ``data`` (last ``val`` steps of each series), in each series' scaled units."""
    assert forecaster.state is not None and forecaster.scaler is not None
    cfg = forecaster.config
    x, fut, y, ids = validation_windows(
        data, forecaster.scaler, forecaster.state.window, cfg.horizon, val,
        forecaster.state.future_columns, seed=cfg.train.seed, with_ids=True,
    )  # fmt: skip
    if not len(x):
        raise LstmkitError("no validation window with a whole horizon to score a trial on")
    static = None
    if forecaster._has_static():
        static = forecaster._static_inputs(ids.tolist(), data.static)
    fc = forecaster._forecast_scaled(x, fut, static)[..., 0]
    err = np.abs(fc.astype(np.float64) - y)
    return float(err.mean()) if np.isfinite(err).all() else math.inf


def tune(
    forecaster: Forecaster,
    data: SeriesData,
    trials: int,
    *,
    minutes: float | None = None,
    space: dict[str, tuple] | None = None,
    on_trial: Callable[[dict[str, Any]], None] | None = None,
) -> TuneResult:
    """Search ``trials`` settings (at most ``minutes`` of wall time) for ``forecaster``
    on ``data`` (the training data: hold the test part out first) and return the best
    trial's fitted forecaster; see the module doc. ``on_trial`` is called with each
    trial's record as it ends (the CLI prints it)."""
    import optuna

    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise LstmkitError(f"--tune needs 1 or more trials, got {trials!r}")
    if minutes is not None and not (isinstance(minutes, int | float) and minutes > 0):
        raise LstmkitError(f"--tune-minutes must be a positive number, got {minutes!r}")
    cfg = forecaster.config
    if cfg.refit:
        raise LstmkitError(
            "--tune scores each trial on the validation stretch, which refit trains on; "
            "tune without --refit"
        )
    val = validation_size(cfg, data)
    if val < cfg.horizon:
        raise LstmkitError(
            f"tuning scores each trial on a validation stretch of at least one horizon "
            f"({cfg.horizon} steps); val_size is {val}: leave it unset or raise it"
        )
    base = _trial_settings()
    base["val_size"] = val  # the same validation stretch in every trial
    space = dict(SPACE if space is None else space)
    windows = window_choices(forecaster, data)
    optuna.logging.set_verbosity(logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=cfg.train.seed)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    records: list[dict[str, Any]] = []
    best: dict[str, Any] = {"score": math.inf, "model": None, "params": None}

    def objective(trial: optuna.Trial) -> float:
        params = {name: _suggest(trial, name, spec, windows) for name, spec in space.items()}
        start = time.perf_counter()
        record: dict[str, Any] = {"trial": trial.number + 1, **params}
        try:
            model = forecaster.clone().set_params(**(base | params))
            model.fit(data)
            score = validation_score(model, data, val)
        except LstmkitError as err:
            record |= {"score": None, "state": "failed", "reason": str(err)}
            record["seconds"] = round(time.perf_counter() - start, 2)
            records.append(record)
            if on_trial:
                on_trial(record)
            raise optuna.TrialPruned(str(err)) from None
        record |= {"score": score, "state": "complete", "reason": ""}
        record["seconds"] = round(time.perf_counter() - start, 2)
        records.append(record)
        if score < best["score"]:
            best.update(score=score, model=model, params=params)
        if on_trial:
            on_trial(record)
        return score

    study.optimize(objective, n_trials=trials, timeout=None if minutes is None else minutes * 60)
    if best["model"] is None:
        reasons = sorted({r["reason"] for r in records if r["reason"]})
        raise LstmkitError(
            f"no tuning trial could be trained ({len(records)} failed): {'; '.join(reasons)}"
        )
    return TuneResult(best["model"], best["params"], best["score"], records)


def _suggest(trial: Any, name: str, spec: tuple, windows: list[int]) -> Any:
    if spec[0] == "window":
        return trial.suggest_categorical(name, windows)
    if spec[0] == "log":
        return trial.suggest_float(name, spec[1], spec[2], log=True)
    if spec[0] == "choice":
        return trial.suggest_categorical(name, list(spec[1]))
    raise ValueError(f"unknown search space entry {name}: {spec!r}")


def _trial_settings() -> dict[str, Any]:
    """What every trial changes on a `Forecaster.clone` of the one being tuned: no run
    checkpoint and log folders (trials never resume from or write them) and no progress
    bar (each trial is one line instead)."""
    return dict.fromkeys(TrainConfig.FOLDER_FIELDS) | {"progress": False}


__all__ = ["SPACE", "TuneResult", "tune", "validation_score", "window_choices"]
