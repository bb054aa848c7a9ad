"""Forecasting on hostile input: non-finite values, huge and constant series, bad settings
and damaged model folders give one clear `LstmkitError`, never a NaN or a traceback."""

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import forget_digests

from lstmkit import Forecaster
from lstmkit.errors import LstmkitError
from lstmkit.tasks import forecast_metrics as fm
from lstmkit.tasks.forecast_metrics import METRICS

FAST = {"hidden_size": 8, "max_epochs": 3, "lr": 1e-2, "progress": False}


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
    assert np.isfinite(ev.metrics[list(METRICS)].to_numpy()).all()
    assert np.isfinite(ev.metrics.loc["lstmkit"].to_numpy()).all()  # its band's scores too
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
        ({"window": 14.5}, "window must be an integer >= 2 or None, got 14.5"),
        ({"hidden_size": "8"}, "hidden_size must be an integer >= 1, got '8'"),
        ({"lr": "fast"}, "lr must be a number > 0, got 'fast'"),
        ({"lr": -1.0}, "lr must be a number > 0, got -1.0"),
        ({"lr": float("nan")}, "lr must be a finite number"),
        ({"quantiles": "0.1,0.9"}, "quantiles must be a list of numbers in .0, 1. or None"),
        ({"instance_norm": "yes"}, "instance_norm must be true/false or one of mean, last, auto"),
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
        {"rnn": "gru", "num_layers": 2, "bidirectional": True},
        {"method": "recursive", "skip": False, "quantiles": None},
        {"hidden_size": 5, "num_layers": 3, "quantiles": [0.05, 0.5, 0.95]},
        {"layer_norm": True, "num_layers": 2},
        {"rnn": "gru", "layer_norm": True, "bidirectional": True},
        {"recurrent_dropout": 0.2, "zoneout": 0.1, "num_layers": 2, "dropout": 0.1},
    ],
)
def test_parameter_estimate_matches_the_network(settings: dict) -> None:
    from lstmkit.tasks.forecasting import ForecastNet, estimate_parameters

    f = Forecaster(horizon=6, window=12, **(FAST | settings))
    cfg = f.config.design(n_series=2)  # several series: no residual map
    steps = 6 if cfg.method == "direct" else 1
    # recursive: one more output for the past-only covariate (3 features, 1 known ahead)
    outputs = 1 + len(cfg.quantiles or []) + (cfg.method == "recursive")
    net = ForecastNet(3, 12, steps, outputs, model=cfg.rnn,
                      hidden_size=cfg.hidden_size, num_layers=cfg.num_layers,
                      bidirectional=cfg.bidirectional, skip=cfg.skip, n_future=1,
                      layer_norm=cfg.layer_norm, recurrent_dropout=cfg.recurrent_dropout,
                      zoneout=cfg.zoneout, dropout=cfg.dropout)  # fmt: skip
    assert estimate_parameters(cfg, 3, 12, 1) == sum(p.numel() for p in net.parameters())


def test_huge_network_is_refused_before_allocating_it() -> None:
    f = Forecaster(horizon=6, window=12, **(FAST | {"hidden_size": 10_000_000}))
    with pytest.raises(LstmkitError, match=r"would have 400,00\d,\d+,\d+,\d+ parameters"):
        f.fit(_series(), target="y", time_col="month")


# ------------------------------------------------------------------ damaged model folders
def old_format(model: Path) -> dict:
    """Rewrite the context of the model folder ``model`` as folders were saved before the
    arrays: context.json one object per series ({"values": rows, "times": text[,
    "static"]}), no context.safetensors; returns that object. Written here from the
    arrays by hand (times as `str` of each timestamp, as that format held them)."""
    forget_digests(model)  # folders of that format were saved before the digests
    from safetensors.numpy import load_file

    meta = json.loads((model / "context.json").read_text())
    arrays = load_file(str(model / "context.safetensors"))
    tz = json.loads((model / "config.json").read_text())["config"]["data"]["tz"]
    ctx = {}
    for k, sid in enumerate(meta["ids"]):
        rows = int(arrays["rows"][k])
        ints = arrays["times"][k, arrays["times"].shape[1] - rows :].tolist()
        if meta["times"] == "dates":
            stamps = [pd.Timestamp(v, tz="UTC") if tz else pd.Timestamp(v) for v in ints]
            times = [str(t.tz_convert(tz) if tz else t) for t in stamps]
        else:
            times = [str(v) for v in ints]
        ctx[sid] = {"values": arrays["values"][k, -rows:].tolist(), "times": times}
        if sid in meta.get("static", {}):
            ctx[sid]["static"] = meta["static"][sid]
    (model / "context.json").write_text(json.dumps(ctx))
    (model / "context.safetensors").unlink()
    return ctx


def _save_arrays(model: Path, **change) -> None:
    """Write context.safetensors again with the arrays of ``change`` replaced."""
    from safetensors.numpy import load_file, save_file

    arrays = load_file(str(model / "context.safetensors")) | change
    save_file(arrays, str(model / "context.safetensors"))


def _damage(model: Path, case: str) -> None:
    forget_digests(model)  # the file's own reader is under test, not the digests
    cfg = json.loads((model / "config.json").read_text())
    if case.startswith("old "):  # a folder saved before the arrays, damaged
        ctx, case = old_format(model), case[4:]
    else:
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
    elif case == "context times reversed":
        ctx["0"]["times"] = ctx["0"]["times"][::-1]
        (model / "context.json").write_text(json.dumps(ctx))
    elif case == "context missing key":
        del ctx["0"]["times"]
        (model / "context.json").write_text(json.dumps(ctx))
    elif case == "arrays not safetensors":
        (model / "context.safetensors").write_bytes(b"\x08\x00\x00\x00garbage")
    elif case == "arrays short":
        from safetensors.numpy import load_file

        _save_arrays(model, values=load_file(str(model / "context.safetensors"))["values"][:, :3])
    elif case == "arrays nan":
        from safetensors.numpy import load_file

        values = load_file(str(model / "context.safetensors"))["values"]
        values[0, -1, 0] = np.nan
        _save_arrays(model, values=values)
    elif case == "arrays rows":
        _save_arrays(model, rows=np.array([3], dtype=np.int64))
    elif case == "arrays float times":
        _save_arrays(model, times=np.zeros((1, 12)))
    elif case == "arrays times reversed":  # forecast dates would follow the first time
        from safetensors.numpy import load_file

        times = load_file(str(model / "context.safetensors"))["times"]
        _save_arrays(model, times=times[:, ::-1].copy())
    elif case == "context unknown series":
        (model / "context.json").write_text(json.dumps(ctx | {"ids": ["elsewhere"]}))
    elif case == "context no ids":
        (model / "context.json").write_text(json.dumps({"times": "dates"}))
    elif case == "context bad kind":
        (model / "context.json").write_text(json.dumps(ctx | {"times": "minutes"}))
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
    elif case == "scaler negative":  # its forecasts' band came out upside down
        scaler = json.loads((model / "scaler.json").read_text())
        scaler["params"]["0"]["scale"] = [-1.0]
        (model / "scaler.json").write_text(json.dumps(scaler))
    elif case in ("scaler nan", "scaler columns"):  # the series after the first
        scaler = json.loads((model / "scaler.json").read_text())
        bad = [float("nan")] if case == "scaler nan" else [0.0, 1.0]
        scaler["params"]["1"] = scaler["params"]["0"] | {"shift": bad}
        (model / "scaler.json").write_text(json.dumps(scaler))
    elif case == "scaler text":
        (model / "scaler.json").write_text('{"kind": "minmax", "params": {"0": {"shift": ["a"]}}}')


DAMAGES = ["context not json", "context not utf-8", "context unknown series", "context no ids",
           "context bad kind", "arrays not safetensors", "arrays short", "arrays nan",
           "arrays rows", "arrays float times", "arrays times reversed", "old context not json",
           "old context not utf-8", "old context bad time", "old context short",
           "old context missing key", "old context times reversed", "config no data",
           "config bad window", "config bad freq", "config bad setting", "scaler unknown key",
           "scaler text", "scaler negative", "scaler nan", "scaler columns"]  # fmt: skip


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    df = _series()
    f = Forecaster(horizon=6, window=12, **FAST).fit(df, target="y", time_col="month")
    return f.save(tmp_path_factory.mktemp("m") / "model")


@pytest.mark.parametrize("case", DAMAGES)
def test_damaged_model_folder_is_one_clear_error(saved: Path, tmp_path: Path, case: str) -> None:

    model = Path(shutil.copytree(saved, tmp_path / "model"))
    _damage(model, case)
    arrays = case.startswith("arrays")
    file = r"context\.safetensors" if arrays else r"(config|context|scaler)\.json"
    with pytest.raises(LstmkitError, match=file + " is damaged") as info:
        Forecaster.load(model).predict()
    assert "\n" not in str(info.value) and "save the model again" in str(info.value)


def test_a_missing_context_safetensors_is_named(saved: Path, tmp_path: Path) -> None:
    # was read as a folder saved before the arrays: "series 'ids' has no scaling parameters"
    model = Path(shutil.copytree(saved, tmp_path / "model"))
    (model / "context.safetensors").unlink()
    with pytest.raises(LstmkitError, match=r"has no context.safetensors; it is incomplete"):
        Forecaster.load(model)


def test_a_bad_saved_freq_is_one_line_without_a_warning() -> None:
    import warnings

    from lstmkit.tasks.forecasting.state import FittedState

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pandas' FutureWarning came on stderr before the line
        with pytest.raises(LstmkitError, match=r"freq 'bogus' is not a pandas frequency"):
            FittedState.from_dict({"target": "y", "time_col": None, "id_col": None,
                                   "covariates": [], "freq": "bogus", "window": 4})  # fmt: skip


def test_integer_weights_are_refused_not_copied_into_the_network(saved: Path, tmp_path) -> None:
    from safetensors.numpy import load_file, save_file

    model = forget_digests(Path(shutil.copytree(saved, tmp_path / "model")))
    weights = load_file(str(model / "model.safetensors"))
    weights["head.bias"] = weights["head.bias"].astype(np.int32)  # was cast back unseen
    save_file(weights, str(model / "model.safetensors"))
    with pytest.raises(LstmkitError, match=r"do not match its config: head.bias holds .*int32"):
        Forecaster.load(model)


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory) -> Path:
    model = tmp_path_factory.mktemp("ensemble") / "model"
    f = Forecaster(horizon=6, window=12, ensemble=3, **FAST)
    f.fit(_series(), target="y", time_col="month").save(model)
    return model


def _edited(ensemble: Path, tmp_path: Path, name: str, value: float) -> Path:
    """A copy of ``ensemble`` with the first entry of its weights ``name`` set to ``value``."""
    from safetensors.numpy import load_file, save_file

    model = forget_digests(Path(shutil.copytree(ensemble, tmp_path / "model")))
    weights = load_file(str(model / "model.safetensors"))
    weights[name].flat[0] = value
    save_file(weights, str(model / "model.safetensors"))
    return model


def test_a_network_off_by_orders_of_magnitude_is_refused_at_load(ensemble, tmp_path) -> None:
    """One head bias of 1e38 in the second of three networks moved the mean forecast to
    about 3e37 with no error (the median band hid it); the load now refuses it."""
    model = _edited(ensemble, tmp_path, "ensemble.1.head.bias", 1e38)
    with pytest.raises(LstmkitError) as err:
        Forecaster.load(model)
    message = str(err.value)
    assert message.startswith(f"{model / 'model.safetensors'} is damaged: network 2 of 3 "
                              "forecasts ")  # fmt: skip
    assert "for series '0', whose last window lies between" in message
    assert message.endswith("its weights were edited or corrupted, fit and save the model again")
    assert "\n" not in message


def test_non_finite_weights_are_refused_at_load(ensemble, tmp_path) -> None:
    model = _edited(ensemble, tmp_path, "ensemble.2.rnn.weight_hh_l0", math.nan)
    with pytest.raises(LstmkitError) as err:
        Forecaster.load(model)
    assert str(err.value) == (
        f"{model / 'model.safetensors'} is damaged (network 3 holds NaN or infinite weights); "
        "fit and save the model again"
    )


def test_weights_within_reason_still_load(ensemble, tmp_path) -> None:
    """The check catches weights off by orders of magnitude, not a retrained or slightly
    different network: an untouched copy forecasts as saved, and a head bias moved by one
    (a scaled unit: one training spread) loads and moves that network's forecast."""
    saved = Forecaster.load(ensemble).predict()["forecast"].to_numpy()
    copy = Path(shutil.copytree(ensemble, tmp_path / "copy"))
    assert np.array_equal(Forecaster.load(copy).predict()["forecast"].to_numpy(), saved)
    from safetensors.numpy import load_file

    bias = load_file(str(ensemble / "model.safetensors"))["ensemble.1.head.bias"].flat[0]
    moved = Forecaster.load(_edited(ensemble, tmp_path, "ensemble.1.head.bias", bias + 1.0))
    assert not np.allclose(moved.predict()["forecast"].to_numpy(), saved)


def test_a_folder_saved_before_the_context_arrays_loads_and_forecasts_alike(
    saved: Path, tmp_path: Path
) -> None:
    """A model folder of the earlier format (context.json one object per series, no
    context.safetensors) loads, forecasts what the same model saved now forecasts, and is
    saved again in the new format with the same context."""
    model = Path(shutil.copytree(saved, tmp_path / "model"))
    ctx = old_format(model)
    assert not (model / "context.safetensors").exists()
    old, new = Forecaster.load(model), Forecaster.load(saved)
    pd.testing.assert_frame_equal(old.predict(), new.predict())
    assert old.context.to_dict() == ctx == new.context.to_dict()
    again = old.save(tmp_path / "again")
    assert (again / "context.safetensors").exists()
    pd.testing.assert_frame_equal(Forecaster.load(again).predict(), new.predict())


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
    # the network's own band, not shifted by calibration (three validation horizons, the
    # single series' default, hold the 20 windows it needs)
    f = Forecaster(horizon=12, window=12, method="recursive", quantiles=[0.1, 0.5, 0.9],
                   instance_norm=False, calibrate=False, **(FAST | {"max_epochs": 30}))  # fmt: skip
    f.fit(df, target="y", time_col="month")
    fc = f.predict()
    width = (fc["q90"] - fc["q10"]).to_numpy()
    assert width[-1] > 1.5 * width[0]  # a random walk's band grows like sqrt(steps)
    # step 1 keeps the model's own one-step quantiles
    import torch

    x = torch.tensor(f.scaler.transform("0", df["y"].to_numpy()[-12:]), dtype=torch.float32)
    with torch.no_grad():
        one = f.scaler.inverse_transform("0", f.net(x.view(1, 12, 1))[0, 0].numpy())
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


# ------------------------------------------------------------------ issue 19: the time axis
def _daily(n: int = 40, tz: str | None = None, start: str = "2021-01-01") -> pd.DataFrame:
    t = np.arange(n)
    days = pd.date_range(start, periods=n, freq="D", tz=tz)
    return pd.DataFrame({"date": days, "y": 10 + 3 * np.sin(2 * np.pi * t / 7)})


@pytest.fixture(scope="module")
def daily() -> Forecaster:
    return Forecaster(horizon=4, window=8, **FAST).fit(_daily(), target="y", time_col="date")


def _history(times) -> pd.DataFrame:
    return pd.DataFrame({"date": times, "y": 10 + np.arange(len(times)) % 3})


@pytest.mark.parametrize(
    ("times", "message"),
    [
        (np.arange(20), "the history has integer times"),
        (np.arange(20) + 26, "the history has integer times"),
        (pd.date_range("2021-03-01", periods=20, freq="h"), "hourly timestamps \\(freq h\\)"),
        (pd.date_range("2021-03-01", periods=20, freq="MS"), "monthly timestamps \\(freq MS\\)"),
        (pd.date_range("2021-03-01", periods=20, freq="2D"), "every 2 days \\(freq 2D\\)"),
        (pd.date_range("2021-03-01", periods=20, freq="D", tz="UTC"), "times in zone UTC"),
    ],
)
def test_history_on_another_time_axis_is_refused(daily: Forecaster, times, message) -> None:
    """Such a history used to be forecast and stamped with daily times after its end."""
    with pytest.raises(LstmkitError, match=message) as info:
        daily.predict(_history(times))
    text = str(info.value)
    assert "\n" not in text
    trained = "times without a zone" if "zone" in message else "daily timestamps (freq D)"
    assert text.startswith(f"the model was trained on {trained}; the history has ")


def test_data_on_another_time_axis_is_refused_by_evaluate_and_set_context(daily) -> None:
    hourly = _history(pd.date_range("2021-03-01", periods=20, freq="h"))
    for call in (daily.evaluate, daily.set_context):
        with pytest.raises(LstmkitError, match=r"trained on daily .* the data has hourly"):
            call(hourly)
    good = _history(pd.date_range("2021-03-01", periods=20, freq="D"))
    fc = daily.predict(good)  # on the axis: still served, after its last day
    assert fc["date"].tolist() == list(pd.date_range("2021-03-21", periods=4, freq="D"))


def test_a_zone_is_checked_by_its_local_clock() -> None:
    """Times in another zone are taken where they show the model's local clock (converted
    to its zone) and refused where they do not; a naive history for a zoned model too."""
    berlin = _daily(tz="Europe/Berlin")  # January: UTC+01:00
    f = Forecaster(horizon=4, window=8, **FAST).fit(berlin, target="y", time_col="date")
    want = f.predict(berlin)
    assert str(want["date"].dt.tz) == "Europe/Berlin"
    as_text = berlin.assign(date=[t.strftime("%Y-%m-%dT%H:%M:%S+01:00") for t in berlin["date"]])
    got = f.predict(as_text)  # a fixed +01:00 zone, the same local midnights
    pd.testing.assert_frame_equal(got, want)
    with pytest.raises(LstmkitError, match="trained on times in zone Europe/Berlin; the history "
                       "has times in zone UTC, which shows another local time"):  # fmt: skip
        f.predict(berlin.assign(date=berlin["date"].dt.tz_convert("UTC")))
    with pytest.raises(LstmkitError, match="history has times without a zone"):
        f.predict(berlin.assign(date=berlin["date"].dt.tz_localize(None)))


def test_an_integer_time_model_checks_the_step() -> None:
    df = pd.DataFrame({"step": np.arange(40) * 7, "y": 10 + np.arange(40) % 5})
    f = Forecaster(horizon=4, window=8, **FAST).fit(df, target="y", time_col="step")
    assert f.predict(df.iloc[-10:])["step"].tolist() == [280, 287, 294, 301]
    with pytest.raises(LstmkitError, match="trained on integer times 7 apart; the history "
                       "has integer times 1 apart"):  # fmt: skip
        f.predict(df.assign(step=np.arange(40)))
    with pytest.raises(LstmkitError, match="trained on integer times; the history has daily"):
        f.predict(df.assign(step=pd.date_range("2021-01-01", periods=40, freq="D")))


def test_forecast_steps_past_the_largest_integer_time_are_refused() -> None:
    """Steps up to 2**63 - 1 fit; the steps after them wrapped to -2**63, -2**63 + 1, ..."""
    last = 2**63 - 1
    df = pd.DataFrame({"step": np.arange(last - 39, last + 1, dtype=np.uint64),
                       "y": 10 + np.arange(40) % 5})  # fmt: skip
    f = Forecaster(horizon=4, window=8, **FAST).fit(df, target="y", time_col="step")
    with pytest.raises(LstmkitError) as err:
        f.predict()
    assert str(err.value) == (
        f"the 4 steps after {last} pass {last} (2**63 - 1), the largest integer time lstmkit "
        "holds; number the steps from a smaller start"
    )
    early = df.iloc[:-4]  # a history ending 4 steps before the limit forecasts up to it
    assert f.predict(early)["step"].tolist() == [last - 3, last - 2, last - 1, last]


def test_the_server_refuses_a_history_on_another_time_axis(daily, tmp_path: Path) -> None:
    """``{"history": [{"date": 26, ...}]}`` used to be answered with 200 and a forecast."""
    from fastapi.testclient import TestClient

    from lstmkit.serving.app import create_app

    with TestClient(create_app(daily.save(tmp_path / "m"))) as client:
        history = [{"date": 26 + i, "y": 10.0 + i % 3} for i in range(12)]
        got = client.post("/predict", json={"history": history})
        assert 400 <= got.status_code < 500, got.text
        assert "trained on daily timestamps (freq D); the history has integer times" in got.text
        days = pd.date_range("2021-03-01", periods=12, freq="D")
        history = [{"date": str(d.date()), "y": 10.0 + i % 3} for i, d in enumerate(days)]
        got = client.post("/predict", json={"history": history})
        assert got.status_code == 200, got.text


# ------------------------------------------------------------------ issue 19: zones, future
ZONED = ["2021-01-01T00:00:00Z", "2021-01-01 00:00:00+00:00", "2021-01-01 00:00:00 UTC",
         "2021-01-01T00:00:00+01:00"]  # fmt: skip


@pytest.mark.parametrize("zoned", ZONED)
def test_times_with_and_without_a_zone_are_refused(zoned: str) -> None:
    """A ``Z`` among times without a zone used to make them all UTC (Europe/Belfast, in fact)."""
    times = [zoned] + [f"2021-01-{d:02d}" for d in range(2, 31)]
    df = pd.DataFrame({"date": times, "y": np.arange(30.0)})
    with pytest.raises(LstmkitError, match=r"mixes times with a zone \('.*' at row 1\) and "
                       r"times without one \('2021-01-02' at row 2\)"):  # fmt: skip
        Forecaster(horizon=4, window=8, **FAST).fit(df, target="y")


def test_a_future_table_for_a_model_without_future_covariates_is_refused(daily) -> None:
    future = _history(pd.date_range("2021-02-10", periods=4, freq="D"))
    with pytest.raises(LstmkitError, match="this model uses no known future covariates"):
        daily.predict(future=future)  # used to be ignored in silence


# ------------------------------------------------------------------ issue 19: divergence
def test_a_huge_learning_rate_is_reported_as_diverged(tmp_path: Path) -> None:
    """lr=1e6 used to train, and forecast about +-2.5e6 for a series between 7 and 13."""
    df = _daily(60)
    settings = FAST | {"lr": 1e6, "checkpoint_dir": str(tmp_path / "ckpt")}
    with pytest.raises(LstmkitError, match=r"training diverged: the training loss stayed over "
                       r"100 times its start \(lowest epoch mean .*, first batch .*\); lower the "
                       r"learning rate \(it is 1e\+06\)"):  # fmt: skip
        Forecaster(horizon=4, window=8, **settings).fit(df, target="y", time_col="date")
    # the finished run's checkpoint keeps its start: rerun, it is still diverged
    with pytest.raises(LstmkitError, match="training diverged"):
        Forecaster(horizon=4, window=8, **settings).fit(df, target="y", time_col="date")


def test_the_loss_rule_by_hand() -> None:
    from lstmkit.training import check_diverged

    with pytest.raises(LstmkitError, match="lowest epoch mean 150, first batch 1"):
        check_diverged(1.0, [{"train_loss": 400.0}, {"train_loss": 150.0}], 0.1)
    check_diverged(1.0, [{"train_loss": 400.0}, {"train_loss": 99.0}], 0.1)  # came back
    check_diverged(1e-4, [{"train_loss": 0.5}], 0.1)  # a rise, but a loss below 1
    check_diverged(1.0, [{"train_loss": 0.1, "val_loss": 1e6}], 0.1)  # validation unlike it
    check_diverged(None, [{"train_loss": 1e9}], 0.1)  # no start (an older checkpoint)


def test_a_level_shift_in_the_validation_part_is_not_divergence() -> None:
    """Validation far outside the training range gives a validation loss far above the
    training loss at any learning rate; only the training loss is judged."""
    rng = np.random.default_rng(0)
    y = np.r_[10 + 0.01 * rng.normal(size=72), np.full(8, 30.0)]
    df = pd.DataFrame({"date": pd.date_range("2000-01-01", periods=80, freq="D"), "y": y})
    f = Forecaster(horizon=4, window=8, val_size=8, **FAST).fit(df, target="y", time_col="date")
    history = f.fit_result.history
    assert min(r["val_loss"] for r in history) > 100 * history[0]["train_loss"]  # still fitted


def test_plausible_range_by_hand() -> None:
    from lstmkit.tasks.forecasting.estimator import plausible_range

    # range 6, margin 10 * 6 * (1 + 7 / 14) = 90
    assert plausible_range(np.array([7.0, 13.0, 10.0]), 7, 14) == (7 - 90, 13 + 90)
    assert plausible_range(np.full(5, -5.0), 4, 4) == (-5 - 100, -5 + 100)  # constant: |level|
    assert plausible_range(np.zeros(5), 4, 4) == (-20, 20)


def test_a_forecast_far_outside_the_data_is_reported_as_diverged(daily: Forecaster) -> None:
    """The forecast check on its own: the fitted network's head scaled up 1e4 times."""
    import copy

    import torch

    from lstmkit.data.series import load_series

    broken = copy.deepcopy(daily)
    with torch.no_grad():
        for name, p in broken.net.net.named_parameters():
            if name.startswith(("head", "linear")):  # the network and its NLinear start
                p.mul_(1e4)
    sd = load_series(_daily(), "y", time_col="date")
    daily.check_forecast(sd)  # the fitted model passes
    with pytest.raises(LstmkitError, match=r"training diverged: the forecast reaches .*, far "
                       r"outside the data's range \(7.08 to 12.9\)"):  # fmt: skip
        broken.check_forecast(sd)


def test_real_and_trending_data_do_not_trip_the_divergence_checks() -> None:
    from lstmkit.data.air_passengers import load_air_passengers

    air = load_air_passengers()
    f = Forecaster(horizon=12, **(FAST | {"max_epochs": 10}))
    f.fit(air, "passengers", time_col="month")
    assert np.isfinite(f.predict()["forecast"]).all()
    t = np.arange(120)
    trend = pd.DataFrame({"date": pd.date_range("2000-01-01", periods=120, freq="D"),
                          "y": 1e4 + 250.0 * t + 5 * np.sin(t)})  # fmt: skip
    # unscaled values around 1e4 (no scaler, no instance norm) train the network alone:
    # a residual map's near-perfect start would make its corrections count as divergence
    raw = {"scaler": "none", "instance_norm": False, "residual": None}
    for settings in ({}, raw, {"lr": 0.1}):
        Forecaster(horizon=14, window=14, **(FAST | settings)).fit(trend, "y", time_col="date")


# ------------------------------------------------------------------ implausible magnitudes
def _two_series(n: int = 60, scale: float = 1.0) -> pd.DataFrame:
    t = np.arange(n)
    y = scale * (100 + t + 10 * np.sin(2 * np.pi * t / 12))
    days = pd.date_range("2000-01-01", periods=n, freq="D")
    return pd.DataFrame({"id": np.repeat(["a", "b"], n), "day": np.tile(days, 2),
                         "y": np.concatenate([y, y[::-1]])})  # fmt: skip


def test_one_value_of_implausible_magnitude_is_refused_at_fit() -> None:
    """One 1e30 in series 'b' trained to a near-zero forecast of its other values (about
    100-170) without a word; it is refused before training, naming series, time and value."""
    df = _two_series()
    df.loc[(df["id"] == "b") & (df["day"] == "2000-01-21"), "y"] = 1e30
    f = Forecaster(horizon=7, window=14, **FAST)
    with pytest.raises(LstmkitError) as err:
        f.fit(df, target="y", time_col="day", id_col="id")
    others = df.loc[(df["id"] == "b") & (df["y"] < 1e30), "y"].abs().sort_values().to_numpy()
    typical = others[(len(others) - 1) * 9 // 10]  # what the message calls typical
    assert str(err.value) == (
        f"series 'b': column 'y' has 1e+30 at time 2000-01-21, {1e30 / typical:.2g} times the "
        f"size of the series' other values (typically {typical:.4g}): a value this far out is "
        "a typo or a fill code, and training on it flattens the rest of the series to a "
        "near-constant forecast; fix or drop that value"
    )
    assert not f.is_fitted


def test_a_history_given_to_forecast_from_is_checked_for_implausible_magnitudes(tmp_path):
    """A fill code in the history given to predict (or evaluate, or set_context) put the
    forecast off by as many orders of magnitude without a word (1e28 for AirPassengers-sized
    values); it is refused by the same rule as at fit, naming series, time and value, in
    the API and in the exported runtime alike. Large but consistent values still forecast."""
    from lstmkit import runtime

    f = Forecaster(horizon=7, window=14, **FAST).fit(
        _two_series(), target="y", time_col="day", id_col="id"
    )
    bad = _two_series()
    bad.loc[(bad["id"] == "a") & (bad["day"] == "2000-02-25"), "y"] = 1e30
    exported = runtime.load(f.export_onnx(tmp_path / "onnx"))
    for forecast in (f.predict, f.evaluate, f.set_context, exported.predict):
        with pytest.raises(LstmkitError) as err:
            forecast(bad)
        assert str(err.value).startswith("series 'a': column 'y' has 1e+30 at time 2000-02-25, ")
        assert str(err.value).endswith(
            "a value this far out is a typo or a fill code, and a forecast from it is off by "
            "as many orders of magnitude; fix or drop that value"
        )
    shifted = _two_series().assign(y=lambda d: d["y"] * 1e6)  # far from training: still data
    assert len(f.predict(shifted)) == len(exported.predict(shifted)) == 14


def test_large_consistent_magnitudes_and_spikes_still_fit() -> None:
    """The rule is relative to each series: values around 1e12 (and 1e-6), a series
    growing over ten orders of magnitude and an intermittent series with one spike 1e6
    times its usual size are data, not typos."""
    f = Forecaster(horizon=7, window=14, **FAST)
    big = _two_series(scale=1e10)  # about 1e12
    f.fit(big, target="y", time_col="day", id_col="id")
    fc = f.predict()
    assert ((fc["forecast"] > 1e11) & (fc["forecast"] < 1e13)).all()
    f.fit(_two_series(scale=1e-8), target="y", time_col="day", id_col="id")
    growth = _two_series().assign(y=lambda d: 10.0 ** np.tile(np.linspace(0, 10, 60), 2))
    f.fit(growth, target="y", time_col="day", id_col="id")
    spiky = _two_series().assign(y=lambda d: (np.arange(120) % 5 == 0) * 1.0)
    spiky.loc[33, "y"] = 1e6  # 1e6 times the other non-zero values, a spike short of 1e8
    f.fit(spiky, target="y", time_col="day", id_col="id")


def test_the_magnitude_rule_by_hand() -> None:
    """`check_magnitudes` against the rule worked by hand, in runs of a few rows (a run
    boundary inside neither series) as in one run: two series of ten values, the second
    with 100 * 1e8 + 1 at step 4 and the same values again at 100 * 1e8 - 1 (the typical
    size of ten values is the second largest: 100)."""
    from lstmkit.data.magnitudes import MAGNITUDE_RATIO, check_magnitudes
    from lstmkit.data.series import load_series

    assert MAGNITUDE_RATIO == 1e8
    a = [1.0, -2.0, 0.0, 50.0, 100.0, 0.0, 3.0, 4.0, 5.0, 6.0]
    for value, refused in ((100 * 1e8 + 1e3, True), (100 * 1e8 - 1e3, False)):
        b = [1.0, 100.0, 0.0, 2.0, value, 3.0, 0.0, 4.0, 5.0, 6.0]
        df = pd.DataFrame({"id": ["a"] * 10 + ["b"] * 10, "y": a + b})
        sd = load_series(df, "y", id_col="id")
        values = np.concatenate([s.values for s in sd.series.values()])
        for chunk in (3, 1 << 20):
            if refused:
                with pytest.raises(LstmkitError, match=r"^series 'b': column 'y' has 1e\+10 at "
                                   r"step 4, 1e\+08 times .* \(typically 100\)"):  # fmt: skip
                    check_magnitudes(sd, values, chunk)
            else:
                check_magnitudes(sd, values, chunk)


# ------------------------------------------------------------------ issue 19: precision 64
def test_precision_64_trains_in_float64_and_predicts_like_the_saved_model(tmp_path) -> None:
    """--precision 64 used to fail at the first forecast (get_mkldnn_dtype, or a Float /
    Double mismatch with layer norm)."""
    df = _daily()
    for settings in ({}, {"layer_norm": True}, {"method": "recursive", "quantiles": [0.1, 0.9]}):
        f = Forecaster(horizon=4, window=8, precision="64", **(FAST | settings))
        f.fit(df, target="y", time_col="date")
        fc = f.predict()
        assert np.isfinite(fc.drop(columns="date").to_numpy()).all()
        pd.testing.assert_frame_equal(Forecaster.load(f.save(tmp_path / "m")).predict(), fc)
    from lstmkit.tasks.forecasting.data import scaled_values

    series = next(iter(f._load(df).series.values()))
    assert scaled_values(f.scaler, series, f.config.train.precision).dtype == np.float64
