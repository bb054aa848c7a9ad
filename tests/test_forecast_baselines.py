"""Baselines as forecasters, beside the network, mixed with it and in seed ensembles
(issue 17): `baselines`, `baseline_model`, `mixture`, `Forecaster(baselines=, combine=,
ensemble=)` and ``lstmkit forecast --baselines/--combine/--ensemble``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import forget_digests
from test_cli_forecast import run

from lstmkit import kinds
from lstmkit.errors import LstmkitError
from lstmkit.tasks.forecasting import Forecaster
from lstmkit.tasks.forecasting.baseline_model import BaselineForecaster
from lstmkit.tasks.forecasting.baselines import LABELS, parse_names
from lstmkit.tasks.forecasting.mixture import Mixture, step_weights

TINY = dict(hidden_size=4, max_epochs=2, progress=False, batches_per_epoch=4)


def _seasonal(n: int = 60, season: int = 12) -> pd.DataFrame:
    """A series that repeats every season exactly: seasonal naive is exact on it."""
    pattern = np.array([3.0, 5, 9, 4, 7, 1, 8, 2, 6, 10, 5, 3])[:season]
    return pd.DataFrame(
        {
            "date": pd.date_range("2001-01-01", periods=n, freq="MS"),
            "y": np.resize(pattern, n) + 50.0,
        }
    )


def _sine(n: int = 200) -> pd.DataFrame:
    """x_t = 2 cos(w) x_{t-1} - x_{t-2}: a linear recursion NLinear reproduces exactly."""
    t = np.arange(n)
    return pd.DataFrame({"step": t, "y": 20 + 5 * np.sin(0.3 * t + 0.4)})


# ---------------------------------------------------------------------- baseline models
def test_seasonal_naive_is_exact_on_a_seasonal_series():
    df = _seasonal()
    b = BaselineForecaster("snaive", horizon=12).fit(df.iloc[:-12], "y", time_col="date")
    ev = b.evaluate(df)
    assert list(ev.metrics.index) == ["seasonal_naive"]
    assert ev.metrics.loc["seasonal_naive", "MAE"] == 0.0
    ahead = b.predict()
    np.testing.assert_array_equal(ahead["forecast"], df["y"].iloc[-24:-12])
    assert ahead["date"].iloc[0] == pd.Timestamp("2005-01-01")


@pytest.mark.parametrize("kind", ["nlinear", "dlinear"])
def test_linear_baselines_recover_a_linear_process(kind):
    df = _sine()
    b = BaselineForecaster(kind, horizon=10, window=16).fit(df.iloc[:-10], "y", time_col="step")
    ev = b.evaluate(df)
    # the amplitude is 5: a map fitted in closed form is exact up to its small ridge
    assert ev.metrics.loc[kind, "MAE"] < 0.02
    naive = BaselineForecaster("naive", horizon=10).fit(df.iloc[:-10], "y", time_col="step")
    assert naive.evaluate(df).metrics.loc["naive", "MAE"] > 1.0


def test_global_linear_map_over_many_series():
    # three series of the same recursion at other levels and scales: one map forecasts all
    parts = []
    for i, (level, amp) in enumerate([(0, 1), (100, 10), (-5, 0.5)]):
        t = np.arange(150)
        parts.append(pd.DataFrame({"id": f"s{i}", "t": t, "y": level + amp * np.sin(0.2 * t)}))
    df = pd.concat(parts)
    head = df.groupby("id").head(140)
    b = BaselineForecaster("nlinear", horizon=10, window=12).fit(
        head, "y", time_col="t", id_col="id"
    )
    ev = b.evaluate(df)
    assert ev.metrics.loc["nlinear", "MASE"] < 0.01
    assert len(b.baselines.linear) == 1 and set(b.baselines.scale) == {"s0", "s1", "s2"}


def test_too_short_for_the_season_is_n_a_with_the_reason():
    df = _seasonal(n=20)
    b = BaselineForecaster("ets", horizon=4, season=12).fit(df.iloc[:-4], "y", time_col="date")
    ahead = b.predict()
    assert ahead["forecast"].isna().all()
    assert "fewer than two seasons (24)" in next(iter(ahead.attrs["n/a"].values()))
    ev = b.evaluate(df)
    assert ev.metrics.loc["ets"].isna().all()
    assert "ets n/a for 1 of 1 series" in ev.notes["ets"]
    # the same baselines beside a network: n/a rows with the reason, the run goes on
    f = Forecaster(horizon=4, window=6, baselines=["naive", "snaive", "theta"], season=12, **TINY)
    f.fit(_seasonal(n=16), "y", time_col="date")
    ev = f.evaluate(df.iloc[:14])  # 10 points of history before the last 4: < one season
    assert ev.metrics.loc["seasonal_naive"].isna().all() and ev.metrics.loc["theta"].isna().all()
    assert "shorter than its season (12)" in ev.notes["seasonal_naive"]
    assert np.isfinite(ev.metrics.loc["naive", "MAE"])


def test_a_fit_that_fails_on_one_series_is_n_a_for_that_series_only():
    t = np.arange(40)
    good = pd.DataFrame({"id": "good", "t": t, "y": 10 + np.sin(t / 3.0)})
    bad = pd.DataFrame({"id": "bad", "t": t, "y": np.r_[np.zeros(39), 1e300]})
    df = pd.concat([good, bad])
    b = BaselineForecaster("ets", horizon=3).fit(df, "y", time_col="t", id_col="id")
    ahead = b.predict()
    assert ahead.loc[ahead["id"] == "bad", "forecast"].isna().all()
    assert np.isfinite(ahead.loc[ahead["id"] == "good", "forecast"]).all()
    assert "did not fit" in ahead.attrs["n/a"]["bad"]
    ev = b.evaluate(pd.concat([good, bad.assign(y=np.r_[np.zeros(36), 1e300, 0, 0, 0])]))
    assert np.isfinite(ev.metrics.loc["ets", "MAE"])  # the good series alone
    assert ev.notes["ets"].startswith("ets n/a for 1 of 2 series (series 'bad': did not fit")


def test_statistical_baselines_forecast_a_seasonal_series():
    df = _seasonal(n=48)
    for name in ("theta", "ets"):
        b = BaselineForecaster(name, horizon=12).fit(df.iloc[:-12], "y", time_col="date")
        assert b.evaluate(df).metrics.loc[name, "MAPE"] < 10  # the pattern, not a flat line


def test_baseline_save_load_and_kind(tmp_path: Path):
    df = _sine()
    b = BaselineForecaster("dlinear", horizon=10, window=16).fit(df, "y", time_col="step")
    b.save(tmp_path / "m")
    loaded = kinds.of_model_folder(tmp_path / "m").load(tmp_path / "m")
    assert isinstance(loaded, BaselineForecaster)
    pd.testing.assert_frame_equal(loaded.predict(), b.predict())
    pd.testing.assert_frame_equal(loaded.predict(df.iloc[:100]), b.predict(df.iloc[:100]))
    kinds.get("baseline_forecaster").export(loaded, tmp_path / "x")  # test_baseline_export_serve
    assert (tmp_path / "x" / "export.json").is_file()
    with pytest.raises(LstmkitError, match="expected a 'forecaster' model"):
        Forecaster.load(tmp_path / "m")
    (tmp_path / "m" / "baselines.json").write_text("{")
    with pytest.raises(LstmkitError, match="damaged"):
        BaselineForecaster.load(tmp_path / "m")


def test_unknown_baseline_is_one_error():
    assert parse_names("arima, naive,SNAIVE") == ["naive", "snaive", "arima"]
    with pytest.raises(LstmkitError, match="unknown baseline 'prophet'; lstmkit knows naive"):
        parse_names("naive,prophet")
    with pytest.raises(LstmkitError, match="unknown baseline"):
        Forecaster(baselines=["lstm"])


# ---------------------------------------------------------------------- mixture, ensemble
def test_step_weights_by_hand():
    net = np.array([[1.0, 0.0], [3.0, 2.0]])
    base = np.array([[0.0, 0.0], [1.0, 4.0]])
    y = np.array([[0.5, 5.0], [2.0, 3.0]])
    # step 0: d = (1, 2), y - b = (0.5, 1): num 2.5, den 5; step 1: d = (0, -2),
    # y - b = (5, -1): num 2, den 4. Without a prior: 0.5 and 0.5
    np.testing.assert_allclose(step_weights(net, base, y, prior=0.0), [0.5, 0.5])
    # pooled w = 4.5 / 9 = 0.5, k = 9 / (2 rows * 2 steps) = 2.25: still 0.5
    np.testing.assert_allclose(step_weights(net, base, y), [0.5, 0.5])
    # a step of its own against the pooled weight: num (3, 0), den (1, 1), one row:
    # pooled 3 / 2 clipped to 1, k = 2 / 2 = 1: w = ((3 + 1) / 2, (0 + 1) / 2), clipped
    w = step_weights(np.array([[1.0, 1.0]]), np.zeros((1, 2)), np.array([[3.0, 0.0]]))
    np.testing.assert_allclose(w, [1.0, 0.5])
    assert step_weights(np.array([[1.0]]), np.array([[0.0]]), np.array([[3.0]]), 0.0)[0] == 1.0
    m = Mixture("naive", [0.25, 1.0])
    fc = np.array([[10.0, 8.0, 12.0], [20.0, 18.0, 22.0]])
    out = m.apply(fc, np.array([2.0, 0.0]))
    np.testing.assert_allclose(out[:, 0], [0.25 * 10 + 0.75 * 2, 20.0])
    np.testing.assert_allclose(out[:, 2] - out[:, 1], [4.0, 4.0])  # the band moves along
    # many series at once: each as alone, and one whose baseline is n/a keeps the network's
    both = m.apply(np.stack([fc, fc]), np.array([[2.0, 0.0], [np.nan, 0.0]]))
    np.testing.assert_allclose(both[0], out)
    np.testing.assert_allclose(both[1], fc)


@pytest.fixture(scope="module")
def combined(tmp_path_factory):
    df = _seasonal(n=72)
    df["y"] = df["y"] + np.arange(72) * 0.5
    f = Forecaster(
        horizon=6, window=12, baselines=["naive", "snaive", "nlinear"], combine=True,
        ensemble=2, residual=None, **TINY,  # the networks alone: members differ
    )  # fmt: skip
    f.fit(df.iloc[:-6], "y", time_col="date")
    return f, df


def test_combined_ensemble_reports_every_part_and_round_trips(combined, tmp_path: Path):
    f, df = combined
    assert f.mixture is not None and len(f.mixture.weights) == 6
    assert all(0 <= w <= 1 for w in f.mixture.weights)
    # the baseline with the lowest validation error is the one mixed in
    scores = f.mixture.scores
    assert f.mixture.baseline == min(["naive", "snaive", "nlinear"], key=scores.get)
    assert scores["naive"] > scores["nlinear"]  # a trend and a season: naive is far off
    ev = f.evaluate(df)
    assert list(ev.metrics.index) == ["lstmkit", "naive", "seasonal_naive", "nlinear", "combined"]
    fc = ev.forecasts
    w = np.asarray(f.mixture.weights)
    np.testing.assert_allclose(
        fc["forecast"], w * fc["lstmkit"] + (1 - w) * fc[LABELS[f.mixture.baseline]], atol=1e-9
    )
    # the ensemble averages its two networks
    x = df["y"].to_numpy()[None, -18:-6, None]
    members = [f._member_scaled(m, f.scaler.transform("0", x), None) for m in f.members]
    assert not np.allclose(members[0][..., 0], members[1][..., 0])
    ens = f.scaler.inverse_transform("0", np.mean([m[..., 0] for m in members], axis=0))
    np.testing.assert_allclose(f.predict_windows(x)[..., 0], ens, rtol=1e-5)
    f.save(tmp_path / "m")
    g = Forecaster.load(tmp_path / "m")
    assert len(g.members) == 2 and g.mixture == f.mixture
    pd.testing.assert_frame_equal(g.predict(baselines=True), f.predict(baselines=True))
    pd.testing.assert_frame_equal(g.evaluate(df).metrics, ev.metrics)


def test_a_combined_ensemble_exports_with_its_mixture(combined, tmp_path: Path):
    """The export runs the averaged networks in the graph and mixes the chosen baseline in
    as `Forecaster.predict` does: the stored contexts and a history given at predict time,
    in a process where torch cannot be imported; a damaged mixture or a missing baselines
    file is one line."""
    from lstmkit import runtime

    f, df = combined
    f.save(tmp_path / "m")
    out = Forecaster.load(tmp_path / "m").export_onnx(tmp_path / "onnx")
    p = runtime.load(out)
    assert p.info["combined_with"] == f.mixture.baseline
    history = df.iloc[:-12]  # another origin than the stored context's
    for got, want in ((p.predict(), f.predict()), (p.predict(history), f.predict(history))):
        assert list(got.columns) == list(want.columns) and "lstmkit" in got.columns
        assert not np.allclose(want["forecast"], want["lstmkit"])  # the mixture moves it
        for col in ("forecast", "q10", "q50", "q90", "lstmkit"):
            np.testing.assert_allclose(got[col], want[col], rtol=1e-5, atol=1e-5)
    script = (
        "import sys; sys.modules['torch'] = None\n"
        "from lstmkit import runtime\n"
        f"print(runtime.load({str(out)!r}).predict()['forecast'].tolist())\n"
    )
    src = str(Path(__file__).resolve().parents[1] / "src")
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": src},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    np.testing.assert_allclose(json.loads(done.stdout), f.predict()["forecast"], rtol=1e-5)
    meta = json.loads((out / "export.json").read_text())
    meta["mixture"]["weights"] = meta["mixture"]["weights"][:-1]  # one step short
    (out / "export.json").write_text(json.dumps(meta))
    with pytest.raises(LstmkitError, match=r"damaged .*mixture"):
        runtime.load(out)
    out = Forecaster.load(tmp_path / "m").export_onnx(tmp_path / "onnx2")
    (out / "baselines.safetensors").unlink()
    with pytest.raises(LstmkitError, match=r"baselines\.safetensors is missing"):
        runtime.load(out)


def test_a_combined_ensemble_is_served_with_its_mixture(combined, tmp_path: Path):
    from fastapi.testclient import TestClient

    from lstmkit.serving.app import create_app

    f = combined[0]
    f.save(tmp_path / "m")
    expected = f.predict()  # the mixture of the averaged networks with the chosen baseline
    assert not np.allclose(expected["forecast"], expected["lstmkit"])
    with TestClient(create_app(tmp_path / "m")) as client:
        got = client.post("/predict", json={})
        assert got.status_code == 200, got.text
        rows = got.json()["forecast"]
    np.testing.assert_allclose([r["forecast"] for r in rows], expected["forecast"], rtol=1e-6)
    from lstmkit.tasks.forecasting.serving import TorchForecastPredictor

    assert TorchForecastPredictor(tmp_path / "m").info["combined_with"] == f.mixture.baseline


def test_a_model_saved_without_baselines_still_shows_those_that_need_no_fit(tmp_path: Path):
    df = _seasonal(n=48)
    f = Forecaster(horizon=6, window=12, baselines=["naive", "snaive", "nlinear"], **TINY)
    forget_digests(f.fit(df.iloc[:-6], "y", time_col="date").save(tmp_path / "m"))
    for name in ("baselines.json", "baselines.safetensors"):  # as saved before issue 17
        (tmp_path / "m" / name).unlink()
    ev = Forecaster.load(tmp_path / "m").evaluate(df)
    assert ev.metrics.loc["seasonal_naive", "MAE"] == 0.0  # the pattern repeats exactly
    assert ev.metrics.loc["nlinear"].isna().all() and "not saved" in ev.notes["nlinear"]


def test_baselines_are_fitted_in_a_thread_beside_training(monkeypatch):
    import threading

    from lstmkit.tasks.forecasting.baselines import Baselines

    df, where, given = _seasonal(n=60), [], []
    fit_baselines = Baselines.fit.__func__

    def recorded(cls, *args, **kwargs):
        where.append(threading.current_thread().name)
        given.append((args, kwargs))
        return fit_baselines(cls, *args, **kwargs)

    monkeypatch.setattr(Baselines, "fit", classmethod(recorded))
    f = Forecaster(horizon=6, window=12, baselines=["naive", "nlinear"], **TINY)
    f.fit(df, "y", time_col="date")
    assert where == ["lstmkit-baselines"]
    # the same baselines as fitted on the same series in this thread
    ((args, kwargs),) = given
    meta, arrays = f.baselines.to_files()
    direct_meta, direct_arrays = fit_baselines(Baselines, *args, **kwargs).to_files()
    assert meta == direct_meta and arrays.keys() == direct_arrays.keys()
    for key, value in arrays.items():
        np.testing.assert_array_equal(value, direct_arrays[key])
    assert "nlinear" in f.baselines.labels and any(v.size for v in arrays.values())

    def failing(cls, *args, **kwargs):
        raise LstmkitError("baselines: cannot fit")

    monkeypatch.setattr(Baselines, "fit", classmethod(failing))
    with pytest.raises(LstmkitError, match="baselines: cannot fit"):
        Forecaster(horizon=6, window=12, **TINY).fit(df, "y", time_col="date")


def test_combine_without_validation_is_refused():
    with pytest.raises(LstmkitError, match="combine needs a validation stretch"):
        Forecaster(combine=True, val_size=0)
    with pytest.raises(LstmkitError, match="ensemble must be an integer >= 1"):
        Forecaster(ensemble=0)


# ---------------------------------------------------------------------- command line
def _csv(path: Path) -> Path:
    df = _seasonal(n=60)
    df["y"] = df["y"] + np.arange(60) * 0.3
    df.to_csv(path, index=False)
    return path


CLI_TINY = ["--max-epochs", "2", "--hidden-size", "4", "--no-progress", "--horizon", "6"]


def test_cli_baselines_combine_backtest_and_predict(tmp_path: Path, capsys):
    data, out = _csv(tmp_path / "s.csv"), tmp_path / "run"
    code, stdout, stderr = run(
        ["forecast", str(data), "--target", "y", "--out", str(out), *CLI_TINY,
         "--baselines", "naive,snaive,nlinear,dlinear", "--combine", "--backtest", "2",
         "--ensemble", "2"],
        capsys,
    )  # fmt: skip
    assert code == 0, stderr
    assert "combined: the model mixed with" in stdout
    metrics = pd.read_csv(out / "metrics.csv", index_col=0)
    best = metrics["MASE"].idxmin()
    assert f"{best} (best)" in stdout
    saved = Forecaster.load(out / "model")
    assert len(saved.members) == 2 and saved.mixture is not None
    assert list(metrics.index) == [
        "lstmkit", "naive", "seasonal_naive", "nlinear", "dlinear", "combined"
    ]  # fmt: skip
    fc = pd.read_csv(out / "forecast.csv")
    assert {"forecast", "lstmkit", "naive", "seasonal_naive", "nlinear", "dlinear"} <= set(fc)
    bt = pd.read_csv(out / "backtest.csv")
    assert set(bt["model"]) == set(metrics.index)
    future = pd.read_csv(out / "future.csv")
    assert {"forecast", "lstmkit", "nlinear", "dlinear", "seasonal_naive"} <= set(future)
    # snaive forecasts the last season again: independent of the model
    np.testing.assert_allclose(future["seasonal_naive"], pd.read_csv(data)["y"].iloc[-12:-6])
    code, stdout, stderr = run(
        ["predict", "--model", str(out / "model"), "--output", str(tmp_path / "p.csv")], capsys
    )
    assert code == 0, stderr
    assert "forecast from" in stdout
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "p.csv"), future)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--baselines", "naive,bogus"], "unknown baseline 'bogus'"),
        (["--combine", "--val-size", "0"], "combine needs a validation stretch"),
        (["--ensemble", "0"], "ensemble must be an integer >= 1"),
    ],
)
def test_cli_bad_baseline_settings_one_line_previous_output_intact(
    tmp_path: Path, capsys, extra, message
):
    data, out = _csv(tmp_path / "s.csv"), tmp_path / "run"
    out.mkdir()
    (out / "metrics.csv").write_text("previous")
    code, _, stderr = run(
        ["forecast", str(data), "--target", "y", "--out", str(out), *CLI_TINY, *extra], capsys
    )
    assert code == 2
    assert stderr.count("\n") == 1 and stderr.startswith("error: ") and message in stderr
    assert [p.name for p in out.iterdir()] == ["metrics.csv"]
    assert (out / "metrics.csv").read_text() == "previous"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
