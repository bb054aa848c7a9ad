"""Forecasting on hostile input: non-finite values, huge and constant series, bad settings
and damaged model folders give one clear `LstmkitError`, never a NaN or a traceback."""

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lstmkit import Forecaster
from lstmkit.errors import LstmkitError
from lstmkit.tasks import forecast_metrics as fm

FAST = {"hidden_size": 8, "max_epochs": 3, "lr": 1e-2, "progress_bar": False}


def _series(n: int = 48, scale: float = 1.0, constant: bool = False) -> pd.DataFrame:
    t = np.arange(n)
    y = np.full(n, 5.0) if constant else scale * (100 + t + 10 * np.sin(2 * np.pi * t / 12))
    return pd.DataFrame({"month": pd.date_range("2000-01-01", periods=n, freq="MS"), "y": y})


# ------------------------------------------------------------------ defect 3: non-finite
def test_rmse_near_the_float_limit_is_finite() -> None:
    a, f = np.array([1e300, 2e300, -1e300]), np.zeros(3)
    assert fm.rmse(a, f) == pytest.approx(1e300 * math.sqrt((1 + 4 + 1) / 3), rel=1e-12)
    assert fm.rmse(np.array([1.7e308]), np.array([-1.7e308])) == pytest.approx(3.4e308)


@pytest.mark.parametrize("metric", [fm.mae, fm.rmse, fm.mape, fm.smape])
def test_metrics_refuse_non_finite_forecasts(metric) -> None:
    with pytest.raises(LstmkitError, match="include NaN or infinity"):
        metric(np.array([1.0, 2.0]), np.array([np.nan, 2.0]))  # sMAPE used to say 0.0 here


def test_huge_values_give_finite_metrics_with_scaling() -> None:
    df = _series(scale=1e298)
    f = Forecaster(horizon=6, window=12, **FAST).fit(df.iloc[:-6], target="y", time_col="month")
    ev = f.evaluate(df)
    assert np.isfinite(ev.metrics.to_numpy()).all()
    assert np.isfinite(ev.forecasts[["forecast", "q10", "q90"]].to_numpy()).all()


def test_huge_values_without_scaling_are_an_error() -> None:
    f = Forecaster(horizon=6, window=12, scaler="none", instance_norm=False, **FAST)
    with pytest.raises(LstmkitError, match="training diverged"):
        f.fit(_series(scale=1e28), target="y", time_col="month")
    with pytest.raises(LstmkitError, match="too large for the model's 32-bit arithmetic"):
        f.fit(_series(scale=1e298), target="y", time_col="month")


def test_non_finite_forecast_is_an_error_not_an_output() -> None:
    f = Forecaster(horizon=6, window=12, scaler="none", instance_norm=False, **FAST)
    f.fit(_series(), target="y", time_col="month")
    with pytest.raises(LstmkitError, match="forecast for series '0' is not finite"):
        f.predict_windows(np.full((1, 12, 1), 1e39))  # finite, but not in float32
    with pytest.raises(LstmkitError, match="windows hold NaN or infinite values"):
        f.predict_windows(np.full((1, 12, 1), np.nan))


def test_constant_series_forecasts_with_undefined_mase() -> None:
    df = _series(constant=True)
    f = Forecaster(horizon=6, window=12, **FAST).fit(df.iloc[:-6], target="y", time_col="month")
    ev = f.evaluate(df)
    assert np.allclose(ev.forecasts["forecast"], 5.0, atol=0.05)
    assert math.isnan(ev.metrics.loc["lstmkit", "MASE"])  # undefined: no naive error
    assert ev.metrics.loc["naive", "MAE"] == 0.0


# ------------------------------------------------------------------ defect 5: bad settings
@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"window": 14.5}, "window must be an integer or None, got 14.5"),
        ({"hidden_size": "8"}, "hidden_size must be an integer, got '8'"),
        ({"lr": "fast"}, "lr must be a number, got 'fast'"),
        ({"lr": -1.0}, "lr .learning rate. must be a positive number"),
        ({"lr": float("nan")}, "lr must be a finite number"),
        ({"quantiles": "0.1,0.9"}, "quantiles must be a list of a number or None"),
        ({"instance_norm": "yes"}, "instance_norm must be true/false"),
        ({"precision": "bf17"}, "precision must be one of"),
    ],
)
def test_bad_api_settings_are_one_clear_error(settings: dict, message: str) -> None:
    with pytest.raises(LstmkitError, match=message) as info:
        Forecaster(horizon=6, **settings)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"model": "gru", "num_layers": 2, "bidirectional": True},
        {"method": "recursive", "skip": False, "quantiles": None},
        {"hidden_size": 5, "num_layers": 3, "quantiles": [0.05, 0.5, 0.95]},
        {"layer_norm": True, "num_layers": 2},
        {"model": "gru", "layer_norm": True, "bidirectional": True},
    ],
)
def test_parameter_estimate_matches_the_network(settings: dict) -> None:
    from lstmkit.tasks.forecasting import ForecastNet, estimate_parameters

    f = Forecaster(horizon=6, window=12, **(FAST | settings))
    cfg = f.config
    steps = 6 if cfg.method == "direct" else 1
    net = ForecastNet(3, 12, steps, 1 + len(cfg.quantiles or []), model=cfg.model,
                      hidden_size=cfg.hidden_size, num_layers=cfg.num_layers,
                      bidirectional=cfg.bidirectional, skip=cfg.skip, n_future=1,
                      layer_norm=cfg.layer_norm)  # fmt: skip
    assert estimate_parameters(cfg, 3, 12, 1) == sum(p.numel() for p in net.parameters())


def test_huge_network_is_refused_before_allocating_it() -> None:
    f = Forecaster(horizon=6, window=12, **(FAST | {"hidden_size": 10_000_000}))
    with pytest.raises(LstmkitError, match=r"would have 400,00\d,\d+,\d+,\d+ parameters"):
        f.fit(_series(), target="y", time_col="month")


# ------------------------------------------------------------------ damaged model folders
def _damage(model: Path, case: str) -> None:
    cfg = json.loads((model / "config.json").read_text())
    ctx = json.loads((model / "context.json").read_text())
    if case == "context not json":
        (model / "context.json").write_text("{not json")
    elif case == "context not utf-8":
        (model / "context.json").write_bytes(b"\xff\xfe\x00garbage")
    elif case == "context bad time":
        ctx["0"]["times"][-1] = "not a date"
        (model / "context.json").write_text(json.dumps(ctx))
    elif case == "context short":
        ctx["0"]["values"] = ctx["0"]["values"][:3]
        (model / "context.json").write_text(json.dumps(ctx))
    elif case == "context missing key":
        del ctx["0"]["times"]
        (model / "context.json").write_text(json.dumps(ctx))
    elif case == "config no data":
        del cfg["config"]["data"]
        (model / "config.json").write_text(json.dumps(cfg))
    elif case == "config bad window":
        cfg["config"]["data"]["window"] = "twelve"
        (model / "config.json").write_text(json.dumps(cfg))
    elif case == "config bad freq":
        cfg["config"]["data"]["freq"] = "fortnightly"
        (model / "config.json").write_text(json.dumps(cfg))
    elif case == "config bad setting":
        cfg["config"]["forecaster"]["hidden_size"] = "8"
        (model / "config.json").write_text(json.dumps(cfg))
    elif case == "scaler unknown key":
        scaler = json.loads((model / "scaler.json").read_text())
        (model / "scaler.json").write_text(json.dumps(scaler | {"offset": 3}))
    elif case == "scaler text":
        (model / "scaler.json").write_text('{"kind": "minmax", "params": {"0": {"shift": ["a"]}}}')


DAMAGES = ["context not json", "context not utf-8", "context bad time", "context short",
           "context missing key", "config no data", "config bad window", "config bad freq",
           "config bad setting", "scaler unknown key", "scaler text"]  # fmt: skip


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    df = _series()
    f = Forecaster(horizon=6, window=12, **FAST).fit(df, target="y", time_col="month")
    return f.save(tmp_path_factory.mktemp("m") / "model")


@pytest.mark.parametrize("case", DAMAGES)
def test_damaged_model_folder_is_one_clear_error(saved: Path, tmp_path: Path, case: str) -> None:

    model = Path(shutil.copytree(saved, tmp_path / "model"))
    _damage(model, case)
    with pytest.raises(LstmkitError, match=r"(config|context|scaler)\.json is damaged") as info:
        Forecaster.load(model).predict()
    assert "\n" not in str(info.value) and "save the model again" in str(info.value)


# ------------------------------------------------------------------ recursive band (defect 6)
def test_quantile_function_by_hand() -> None:
    import torch

    from lstmkit.tasks.forecasting.module import _quantile_function

    levels = torch.tensor([0.1, 0.5, 0.9])
    values = torch.tensor([[1.0, 2.0, 4.0]]).repeat(5, 1)
    u = torch.tensor([0.1, 0.3, 0.7, 0.0, 1.0])
    # inside: linear between levels; outside: the outer segments' slopes (2.5 and 5 per unit)
    expected = [1.0, 1.5, 3.0, 1.0 - 0.1 * 2.5, 4.0 + 0.1 * 5.0]
    np.testing.assert_allclose(_quantile_function(values, levels, u).numpy(), expected, rtol=1e-6)


def test_recursive_band_widens_with_the_horizon() -> None:
    rng = np.random.default_rng(0)
    n = 200
    df = pd.DataFrame({"month": pd.date_range("2000-01-01", periods=n, freq="MS"),
                       "y": 100 + np.cumsum(rng.normal(0, 1, n))})  # fmt: skip
    f = Forecaster(horizon=12, window=12, method="recursive", quantiles=[0.1, 0.5, 0.9],
                   instance_norm=False, **(FAST | {"max_epochs": 30}))  # fmt: skip
    f.fit(df, target="y", time_col="month")
    fc = f.predict()
    width = (fc["q90"] - fc["q10"]).to_numpy()
    assert width[-1] > 1.5 * width[0]  # a random walk's band grows like sqrt(steps)
    # step 1 keeps the model's own one-step quantiles
    import torch

    x = torch.tensor(f.scaler.transform("0", df["y"].to_numpy()[-12:]), dtype=torch.float32)
    with torch.no_grad():
        one = f.scaler.inverse_transform("0", f.module(x.view(1, 12, 1))[0, 0].numpy())
    np.testing.assert_allclose(fc[["q10", "q50", "q90"]].iloc[0], np.sort(one[1:]), rtol=1e-5)
    pd.testing.assert_frame_equal(f.predict(), fc)  # seeded: reproducible


# ------------------------------------------------------------------ defect 1: stale checkpoints
def test_checkpoint_of_another_network_size_or_series_is_refused(tmp_path: Path) -> None:
    ckpt = str(tmp_path / "ckpt")
    df = _series()
    Forecaster(horizon=6, window=12, checkpoint_dir=ckpt, **FAST).fit(df, target="y")
    bigger = Forecaster(horizon=6, window=12, checkpoint_dir=ckpt, **(FAST | {"hidden_size": 16}))
    with pytest.raises(LstmkitError, match="belongs to a run with other data or settings"):
        bigger.fit(df, target="y")  # was a traceback (size mismatch on load)
    other = Forecaster(horizon=6, window=12, checkpoint_dir=ckpt, **FAST)
    with pytest.raises(LstmkitError, match="belongs to a run with other data or settings"):
        other.fit(_series(scale=2.0), target="y")  # was silently the old model
    same = Forecaster(horizon=6, window=12, checkpoint_dir=ckpt, **FAST).fit(df, target="y")
    assert same.fit_result.resumed_from_epoch == FAST["max_epochs"] - 1
