"""``--tune``: an Optuna search on the validation stretch. The best trial's model is the one
kept (its score re-computed from the returned model), the search is reproducible under a
seed, failed trials are recorded and skipped, the budget is honoured, and bad requests are
one line with nothing written."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_cli_forecast import TINY, run

from lstmkit import Forecaster
from lstmkit.data.series import load_series
from lstmkit.errors import LstmkitError
from lstmkit.tasks.forecasting.tuning import tune, validation_score, window_choices

FAST = dict(max_epochs=2, progress=False, batches_per_epoch=5, quantiles=None)
SMALL = {"hidden_size": ("choice", [4, 8]), "lr": ("log", 1e-3, 1e-2)}


def _data(n: int = 72):
    t = np.arange(n)
    df = pd.DataFrame(
        {
            "month": pd.date_range("2001-01-01", periods=n, freq="MS"),
            "y": 100 + t + 10 * np.sin(2 * np.pi * t / 12),
        }
    )
    return load_series(df, "y", time_col="month")


def test_the_best_trial_is_kept_and_the_search_repeats_under_a_seed():
    sd = _data()
    result = tune(Forecaster(horizon=6, **FAST), sd, 3, space=SMALL)
    done = [r for r in result.trials if r["state"] == "complete"]
    assert len(result.trials) == 3 and len(done) == 3
    assert result.score == min(r["score"] for r in done)
    chosen = next(r for r in done if r["score"] == result.score)
    assert result.best == {"hidden_size": chosen["hidden_size"], "lr": chosen["lr"]}
    f = result.forecaster
    assert f.config.hidden_size == chosen["hidden_size"] and f.config.train.lr == chosen["lr"]
    # the score is the returned model's own, recomputed independently here
    assert validation_score(f, sd, f.config.val_size) == pytest.approx(result.score, rel=1e-6)
    assert f.predict()["forecast"].notna().all()
    again = tune(Forecaster(horizon=6, **FAST), sd, 3, space=SMALL)
    strip = [{k: r[k] for k in ("hidden_size", "lr")} for r in again.trials]
    assert strip == [{k: r[k] for k in ("hidden_size", "lr")} for r in result.trials]


def test_the_design_choices_are_searched_and_the_best_model_is_built_with_them():
    from lstmkit.tasks.forecasting.tuning import SPACE

    assert {"patch", "instance_norm", "residual", "skip"} <= set(SPACE)
    design = {k: SPACE[k] for k in ("patch", "instance_norm", "residual")}
    result = tune(Forecaster(horizon=6, window=12, **FAST), _data(), 6, space=design)
    tried = {(r["patch"], r["instance_norm"], r["residual"]) for r in result.trials}
    assert len(tried) > 1  # the search varies them
    net = result.forecaster.net
    assert net.net.patch == result.best["patch"]
    assert net.instance_norm == result.best["instance_norm"]
    assert net.net.residual == result.best["residual"]


def test_failed_trials_are_recorded_and_the_search_goes_on():
    sd = _data()
    space = {"window": ("choice", [8, 500])}  # 500: longer than the series
    result = tune(Forecaster(horizon=6, **FAST), sd, 6, space=space)
    states = {r["window"]: r["state"] for r in result.trials}
    assert states == {8: "complete", 500: "failed"}
    failed = next(r for r in result.trials if r["state"] == "failed")
    assert "fewer than window (500)" in failed["reason"] and failed["score"] is None
    assert result.best == {"window": 8}
    with pytest.raises(LstmkitError, match=r"no tuning trial could be trained \(2 failed\)"):
        tune(Forecaster(horizon=6, **FAST), sd, 2, space={"window": ("choice", [500])})


def test_the_budget_stops_the_search_after_the_running_trial():
    result = tune(Forecaster(horizon=6, **FAST), _data(), 50, minutes=1e-4, space=SMALL)
    assert len(result.trials) == 1


def test_windows_tried_fit_the_data():
    f = Forecaster(horizon=6, **FAST)
    # the default halved and doubled: 72 months keep 18 to validate, so 72 - 6 - 18 = 48
    # rows before the targets give a single series a window of (48 + 1) // 3 = 16
    assert window_choices(f, _data(72)) == [8, 16, 32]
    assert window_choices(f, _data(200)) == [12, 24, 48, 72]


@pytest.mark.parametrize(
    "trials, minutes, settings, match",
    [
        (0, None, {}, r"--tune needs 1 or more trials, got 0"),
        (True, None, {}, r"--tune needs 1 or more trials"),
        (2, 0, {}, r"--tune-minutes must be a positive number, got 0"),
        (2, math.nan, {}, r"--tune-minutes must be a positive number"),
        (2, None, {"val_size": 0}, r"validation stretch of at least one horizon"),
        # a stretch the series cannot spare was dropped: trials trained on it, scored on it
        (2, None, {"val_size": 66}, r"no tuning trial .*: val_size 66 leaves the series \(72 "),
    ],
)
def test_bad_requests_are_one_line(trials, minutes, settings, match):
    with pytest.raises(LstmkitError, match=match):
        tune(Forecaster(horizon=6, **(FAST | settings)), _data(), trials, minutes=minutes)


def _csv(path: Path, n: int = 72) -> Path:
    sd = _data(n)
    s = next(iter(sd.series.values()))
    pd.DataFrame({"date": s.times.strftime("%Y-%m-%d"), "sales": s.values[:, 0]}).to_csv(
        path, index=False
    )
    return path


def test_cli_tune_writes_the_trials_and_keeps_the_chosen_settings(tmp_path, capsys):
    data, out = _csv(tmp_path / "d.csv"), tmp_path / "out"
    code, stdout, stderr = run(
        ["forecast", str(data), "--horizon", "6", "--tune", "2", "--out", str(out), *TINY],
        capsys,
    )
    assert code == 0, stderr
    trials = pd.read_csv(out / "tuning.csv")
    assert len(trials) == 2 and set(trials["state"]) <= {"complete", "failed"}
    assert "trial 1:" in stdout and "tuned over 2 trials" in stdout
    best = trials.loc[trials["score"].idxmin()]
    cfg = json.loads((out / "model" / "config.json").read_text())["config"]["forecaster"]
    assert cfg["hidden_size"] == best["hidden_size"] and cfg["window"] == best["window"]
    assert "tuning.csv" in stdout


@pytest.mark.parametrize("args", [["--tune", "0"], ["--tune", "2", "--tune-minutes", "-1"]])
def test_cli_bad_tune_is_one_line_and_writes_nothing(tmp_path, capsys, args):
    data, out = _csv(tmp_path / "d.csv"), tmp_path / "out"
    code, _, stderr = run(["forecast", str(data), "--out", str(out), *args, *TINY], capsys)
    assert code == 2 and stderr.startswith("error: ") and stderr.count("\n") == 1, stderr
    assert not out.exists()


def test_trials_are_clones_of_the_tuned_forecaster(tmp_path):
    """Each trial is ``forecaster.clone()`` with the trial's choices: the class and every
    setting not searched carry over; the run's checkpoint and log folders do not."""

    class MyForecaster(Forecaster):
        pass

    base = MyForecaster(
        horizon=6, scaler="standard", baselines=["naive"], season=12,
        checkpoint_dir=str(tmp_path / "ckpt"), logger="csv", log_dir=str(tmp_path / "logs"),
        **FAST,
    )  # fmt: skip
    result = tune(base, _data(), 2, space={"hidden_size": ("choice", [4])})
    best = result.forecaster
    assert type(best) is MyForecaster and best is not base
    cfg = best.config
    assert (cfg.scaler, cfg.baselines, cfg.season, cfg.hidden_size) == (
        "standard", ["naive"], 12, 4
    )  # fmt: skip
    assert (cfg.checkpoint_dir, cfg.logger, cfg.log_dir, cfg.progress) == (None, None, None, False)
    assert not (tmp_path / "ckpt").exists() and not (tmp_path / "logs").exists()
    assert base.config.checkpoint_dir == str(tmp_path / "ckpt")  # the tuned one is unchanged


def test_a_model_with_static_inputs_and_the_design_options_is_tuned_and_scored():
    """Trials of a model that reads static inputs (a static column, the id embedding) are
    scored with each validation window's own static inputs, and the design options
    (patch, residual, loss) carry over to the trials; the trial's score is the mean
    absolute error of the returned model on the validation windows."""
    t = np.arange(72)
    one = pd.DataFrame({"month": pd.date_range("2001-01-01", periods=72, freq="MS"),
                        "y": 100 + t + 10 * np.sin(2 * np.pi * t / 12)})  # fmt: skip
    df = pd.concat([one.assign(id="a", kind="x"), one.assign(id="b", kind="y", y=one["y"] * 2)])
    sd = load_series(df, "y", time_col="month", id_col="id", static_cols=["kind"])
    base = Forecaster(horizon=6, window=12, id_embedding=2, patch=3, residual="nlinear",
                      loss="mae", **FAST)  # fmt: skip
    result = tune(base, sd, 1, space={"hidden_size": ("choice", [4])})
    best = result.forecaster
    cfg = best.config
    assert (cfg.patch, cfg.residual, cfg.loss, cfg.hidden_size) == (3, "nlinear", "mae", 4)
    assert best.net.net.static_spec and best.net.net.patch == 3
    from lstmkit.tasks.forecasting.data import validation_size

    score = validation_score(best, sd, validation_size(cfg, sd))
    assert math.isfinite(score) and result.score == pytest.approx(score)
