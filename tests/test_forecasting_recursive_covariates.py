"""Covariates in recursive forecasting (issue 17, item 7).

A recursive forecaster reads the known future covariates of each step it forecasts and
forecasts the past-only covariates one step ahead itself (extra output channels, trained
beside the target); when the window rolls on, its new row holds the forecast target, the
known values of that step and those covariate forecasts. Checked here: the model learns
to use a known covariate that determines the target, the rolled windows (point and sample
paths) equal hand-built ones, a tiny fixed network's roll equals a numpy computation of
it, save/load, evaluate, backtest, the ONNX runtime and the server agree with PyTorch, and
bad future values are one line with nothing written.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lstmkit import Forecaster, runtime
from lstmkit.errors import LstmkitError

sys.path.insert(0, str(Path(__file__).parent))
from test_cli_forecast import run  # the CLI entry point in-process: (code, stdout, stderr)
from test_export_onnx import make_series

TINY = {"hidden_size": 6, "max_epochs": 1, "progress": False}
BOTH = {"covariates": ["temp", "promo"], "future_covariates": ["promo"]}  # temp: past-only


def _fit(df: pd.DataFrame, **settings) -> Forecaster:
    columns = {k: settings.pop(k) for k in ("covariates", "future_covariates") if k in settings}
    settings = {"horizon": 4, "window": 8, "method": "recursive", **TINY, **settings}
    return Forecaster(**settings).fit(df, target="y", time_col="month", **columns)


def _scaled(f: Forecaster, raw: np.ndarray, column: int) -> np.ndarray:
    """Raw values of one value column scaled as the model scales them (minmax / standard:
    (value - shift) / scale, from the fitted parameters)."""
    p = f.scaler.params["0"]
    return (np.asarray(raw, float) - p["shift"][column]) / p["scale"][column]


# ---------------------------------------------------------------- learning
def test_a_known_future_covariate_that_determines_the_target_is_used() -> None:
    """y_t = 2 c_t with c known ahead and otherwise random: the recursive model with c
    forecasts held-out windows far better than the same model without it (close to
    exactly without instance normalisation, whose division by the target window's spread
    the network can only approximate)."""
    rng = np.random.default_rng(0)
    n = 320
    c = rng.uniform(0, 10, n)
    df = pd.DataFrame(
        {"month": pd.date_range("2000-01-01", periods=n, freq="D"), "y": 2 * c, "c": c}
    )
    settings = {"hidden_size": 16, "max_epochs": 40, "lr": 1e-2, "seed": 0, "quantiles": None}
    train, test = df.iloc[:260], df.iloc[260 - 8 :]
    raw = _fit(train, covariates=["c"], future_covariates=["c"], instance_norm=False, **settings)
    default = _fit(train, covariates=["c"], future_covariates=["c"], **settings)
    without = _fit(train[["month", "y"]], **settings)
    h, w = 4, 8
    starts = range(len(test) - w - h + 1)
    x = np.stack([test[["y", "c"]].to_numpy()[s : s + w] for s in starts])
    fut = np.stack([test[["c"]].to_numpy()[s + w : s + w + h] for s in starts])
    actual = np.stack([test["y"].to_numpy()[s + w : s + w + h] for s in starts])

    def mae(f: Forecaster, x: np.ndarray, fut: np.ndarray | None) -> float:
        return float(np.abs(f.predict_windows(x, future=fut)[..., 0] - actual).mean())

    base = mae(without, x[..., :1], None)
    assert base > 3.5  # without c the target is noise (mean absolute error about 5)
    assert mae(raw, x, fut) < 0.05 * base  # measured .017 against 5.14
    assert mae(default, x, fut) < 0.4 * base  # measured 1.07
    # the same through evaluate: the last 4 days from the 8 before, with c's actual values
    ev = raw.evaluate(df)
    assert ev.metrics.loc["lstmkit", "MAE"] < 0.05 * ev.metrics.loc["naive", "MAE"]


def test_a_past_only_covariate_is_forecast_and_fed_back() -> None:
    """x_t = sin(2 pi t / 7) + noise is observed only up to the origin and y_t = 2 x_{t-1}:
    the network's forecast of x (its extra output channel) follows the sine, far better
    than x's last value, and the recursive forecast of y over the horizon, which needs
    x's forecasts from step 2 on, stays close."""
    rng = np.random.default_rng(2)
    n = 320
    t = np.arange(n)
    x = np.sin(2 * np.pi * t / 7) + 0.05 * rng.normal(size=n)
    y = np.r_[0.0, 2 * x[:-1]] + 10
    df = pd.DataFrame({"month": pd.date_range("2000-01-01", periods=n, freq="D"), "y": y, "x": x})
    f = _fit(df.iloc[:260], covariates=["x"], hidden_size=16, max_epochs=40, lr=1e-2,
             quantiles=None, instance_norm=False)  # fmt: skip
    test = df.iloc[260 - 8 :]
    starts = range(len(test) - 8 - 4 + 1)
    windows = np.stack([test[["y", "x"]].to_numpy()[s : s + 8] for s in starts])
    actual = np.stack([test["y"].to_numpy()[s + 8 : s + 12] for s in starts])
    scaled = np.stack([f.scaler.transform("0", w) for w in windows]).astype(np.float32)
    with torch.no_grad():
        x_next = f.net(torch.from_numpy(scaled))[:, 0, 1].numpy()  # scaled x forecasts
    p = f.scaler.params["0"]
    x_next = x_next * p["scale"][1] + p["shift"][1]
    x_true = test["x"].to_numpy()[8 : 8 + len(windows)]
    last = np.abs(windows[:, -1, 1] - x_true).mean()
    assert np.abs(x_next - x_true).mean() < 0.25 * last
    fc = f.predict_windows(windows)[..., 0]
    naive = np.abs(windows[:, -1:, 0] - actual).mean()
    assert np.abs(fc - actual).mean() < 0.2 * naive


@pytest.mark.parametrize("loss", ["mse", "mae"])
def test_training_windows_carry_the_next_covariate_value_and_its_loss(loss: str) -> None:
    """A recursive training item holds the next scaled value of each past-only covariate
    (after the known one of that step), and the loss adds the error of the network's
    forecast of it to the target's."""
    from lstmkit.data.series import load_series
    from lstmkit.tasks.forecasting.data import ForecastData

    df = make_series(60)
    f = _fit(df, quantiles=None, loss=loss, **BOTH)
    sd = load_series(df, "y", time_col="month", **BOTH)
    prepared = ForecastData(sd, f.config)
    prepared.setup("fit")
    x, future, past, y = prepared.train_set.cut([5])
    scaled = f.scaler.transform("0", sd.series["0"].values)  # columns y, temp, promo
    np.testing.assert_allclose(x[0].numpy(), scaled[5:13], atol=1e-6)
    np.testing.assert_allclose(future[0].numpy(), scaled[13:14, [2]], atol=1e-6)
    np.testing.assert_allclose(past[0].numpy(), scaled[13:14, [1]], atol=1e-6)
    np.testing.assert_allclose(y[0].numpy(), scaled[13:14, 0], atol=1e-6)
    batch = prepared.train_set.cut(range(8))
    with torch.no_grad():
        got = float(f.net.step_metrics(batch)["loss"])
        pred = f.net(batch[0], batch[1]).double()
    err = pred[..., 0] - batch[-1].double()
    cov = pred[..., 1] - batch[2][..., 0].double()
    want = (
        (err**2).mean() + (cov**2).mean() if loss == "mse" else err.abs().mean() + cov.abs().mean()
    )
    assert got == pytest.approx(float(want), rel=1e-5)


# ---------------------------------------------------------------- the roll by hand
def _record(module: torch.nn.Module) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(x, future, output) of every call of ``module``, in order (a forward hook: the
    module itself runs unchanged)."""
    calls: list = []
    module.register_forward_hook(
        lambda mod, args, out: calls.append((args[0].clone(), args[1].clone(), out.clone()))
    )
    return calls


def test_the_rolled_window_equals_a_hand_built_one_at_each_step() -> None:
    """Point forecast and sample paths: each step's window is the previous one shifted by
    one row, whose target is the forecast (a path's draw), whose known covariate is the
    plan's value of that step and whose past-only covariate is the network's forecast of
    it; each step reads the plan's value of the step it forecasts."""
    df = make_series(80)
    f = _fit(df, quantiles=[0.1, 0.5, 0.9], **BOTH)
    assert f.net.net.n_outputs == 5  # point, three quantiles, temp's next value
    h, w = 4, 8
    plan = pd.DataFrame({"month": pd.date_range("2006-09-01", periods=h, freq="MS"),
                         "promo": [1.0, 0.0, 1.0, 1.0]})  # fmt: skip
    calls = _record(f.net)
    table = f.predict(future=plan)
    promo = _scaled(f, plan["promo"].to_numpy(), 2)  # value columns: y, temp, promo
    first = np.stack(
        [_scaled(f, df[c].to_numpy()[-w:], j) for j, c in enumerate(BOTH["covariates"], 1)]
    )
    window = np.column_stack([_scaled(f, df["y"].to_numpy()[-w:], 0), first.T])
    point, paths = calls[:h], calls[h:]
    assert len(paths) == h and all(len(c[0]) == 500 for c in paths)
    forecasts = []
    for t, (x, fut, out) in enumerate(point):
        np.testing.assert_allclose(x[0].numpy(), window, atol=1e-6)
        np.testing.assert_allclose(fut.numpy().ravel(), [promo[t]], atol=1e-6)
        y_next, temp_next = float(out[0, 0, 0]), float(out[0, 0, 4])
        forecasts.append(y_next)
        window = np.vstack([window[1:], [y_next, temp_next, promo[t]]])
    p = f.scaler.params["0"]
    want = np.asarray(forecasts) * p["scale"][0] + p["shift"][0]
    np.testing.assert_allclose(table["forecast"], want, rtol=1e-5)
    # sample paths: the same roll, path by path, with each path's draw as the target
    for t in range(h - 1):
        x, fut, out = paths[t]
        nxt = paths[t + 1][0]
        np.testing.assert_allclose(fut.numpy().ravel(), np.full(500, promo[t]), atol=1e-6)
        np.testing.assert_array_equal(nxt[:, :-1].numpy(), x[:, 1:].numpy())
        np.testing.assert_allclose(nxt[:, -1, 1].numpy(), out[:, 0, 4].numpy(), atol=1e-6)
        np.testing.assert_allclose(nxt[:, -1, 2].numpy(), np.full(500, promo[t]), atol=1e-6)
        drawn = nxt[:, -1, 0].numpy()  # a draw from the step's quantile function
        assert drawn.std() > 0 and np.isfinite(drawn).all()


def _lstm(x: np.ndarray, sd: dict[str, np.ndarray]) -> np.ndarray:
    """The last hidden state of a one-layer LSTM over x (window, inputs), in float64:
    gates i, f, g, o as in torch."""
    hidden = sd["weight_hh_l0"].shape[1]
    h, c = np.zeros(hidden), np.zeros(hidden)
    for row in x:
        z = sd["weight_ih_l0"] @ row + sd["bias_ih_l0"] + sd["weight_hh_l0"] @ h + sd["bias_hh_l0"]
        i, f, g, o = np.split(z, 4)
        sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
        c = sig(f) * c + sig(i) * np.tanh(g)
        h = sig(o) * np.tanh(c)
    return h


@pytest.mark.parametrize("instance_norm", [False, True], ids=["raw", "instance-norm"])
def test_past_only_covariate_feedback_equals_a_hand_computed_roll(instance_norm: bool) -> None:
    """A tiny network with fixed weights (LSTM of 2 units, head over its state and the
    target window) and one past-only covariate: its recursive forecast equals the roll
    computed in numpy, where each step's covariate forecast becomes the next row's input."""
    df = make_series(60)
    f = _fit(df, covariates=["temp"], hidden_size=2, window=4, horizon=3, quantiles=None,
             instance_norm=instance_norm, residual=None)  # fmt: skip
    net = f.net.net
    rng = np.random.default_rng(5)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.from_numpy(rng.normal(scale=0.6, size=p.shape)))
    sd = {k: v.double().numpy() for k, v in net.state_dict().items()}
    assert sd["head.weight"].shape == (2, 2 + 4)  # (target, temp) from (state, window)
    window = np.column_stack([_scaled(f, df["y"].to_numpy()[-4:], 0),
                              _scaled(f, df["temp"].to_numpy()[-4:], 1)])  # fmt: skip
    targets = []
    for _ in range(3):
        y, temp = window[:, 0], window[:, 1]
        if instance_norm:  # the window's mean and spread; the covariate centred only
            mean, std = y.mean(), np.sqrt(y.var() + 1e-5)
            xn = np.column_stack([(y - mean) / std, temp - temp.mean()])
        else:
            mean, std, xn = 0.0, 1.0, window
        state = _lstm(xn, {k[len("rnn.") :]: v for k, v in sd.items() if k.startswith("rnn.")})
        out = sd["head.weight"] @ np.concatenate([state, xn[:, 0]]) + sd["head.bias"]
        y_next = out[0] * std + mean
        temp_next = out[1] + (temp.mean() if instance_norm else 0.0)
        targets.append(y_next)
        window = np.vstack([window[1:], [y_next, temp_next]])
    p = f.scaler.params["0"]
    want = np.asarray(targets) * p["scale"][0] + p["shift"][0]
    np.testing.assert_allclose(f.predict(df)["forecast"], want, rtol=1e-5, atol=1e-4)
    # the covariate's forecast matters: with temp's channel silenced the forecast moves
    with torch.no_grad():
        net.head.weight[1].zero_()
        net.head.bias[1] = 0.0
    assert not np.allclose(f.predict(df)["forecast"], want, rtol=1e-3)


# ---------------------------------------------------------------- the API around it
def test_save_load_evaluate_backtest_and_calibration(tmp_path: Path) -> None:
    df = make_series(90)
    plan = df[["month", "promo"]].iloc[80:84]
    f = _fit(df.iloc[:80], quantiles=[0.1, 0.5, 0.9], val_size=36, **BOTH)
    assert f.state.calibration is not None  # the band calibrated on recursive forecasts
    want = f.predict(future=plan)
    assert np.isfinite(want.drop(columns="month").to_numpy()).all()
    assert (want["q10"] <= want["q90"]).all()
    g = Forecaster.load(f.save(tmp_path / "m"))
    pd.testing.assert_frame_equal(g.predict(future=plan), want)
    pd.testing.assert_frame_equal(
        g.predict(df.iloc[:84], future=df[["month", "promo"]].iloc[84:88]),
        f.predict(df.iloc[:84], future=df[["month", "promo"]].iloc[84:88]),
    )
    ev = g.evaluate(df.iloc[:84])  # the last 4 months, their promo values known
    assert ev.forecasts["forecast"].notna().all() and np.isfinite(ev.metrics.loc["lstmkit", "MAE"])
    bt = f.backtest(df, folds=2, refit=False)
    assert list(bt["fold"].unique()) == [1, 2] and bt["MAE"].notna().all()
    bt = Forecaster(horizon=4, window=8, method="recursive", **TINY).backtest(
        df, folds=2, target="y", time_col="month", **BOTH
    )
    assert bt.loc[bt.model == "lstmkit", "MAE"].notna().all()


def test_export_runtime_and_server_match_pytorch(tmp_path: Path) -> None:
    """The ONNX runtime's recursive loop (point and band) rolls the covariates as PyTorch
    does; the server passes the plan to either backend."""
    from fastapi.testclient import TestClient

    from lstmkit.serving.app import create_app

    df = make_series(100)
    f = _fit(df.iloc[:90], quantiles=[0.1, 0.5, 0.9], **BOTH)
    folder = f.save(tmp_path / "m")
    f.export_onnx(folder / "onnx")
    pred = runtime.load(folder / "onnx")
    assert pred.inputs == ["x", "future"]
    plan = df[["month", "promo"]].iloc[90:94]
    for data, future in ((None, plan), (df.iloc[:95], df[["month", "promo"]].iloc[95:99])):
        want = f.predict(data, future=future)
        got = pred.predict(data, future=future)
        numbers = [c for c in want.columns if c != "month"]
        assert (got["month"] == want["month"]).all()
        np.testing.assert_allclose(got[numbers], want[numbers], rtol=1e-5, atol=1e-4)
    text = df.assign(month=df["month"].dt.strftime("%Y-%m-%d"))
    body = {
        "history": text.iloc[:95].to_dict("records"),
        "future": text[["month", "promo"]].iloc[95:99].to_dict("records"),
    }
    want = f.predict(df.iloc[:95], future=df[["month", "promo"]].iloc[95:99])
    for backend in ("torch", "onnx"):
        with TestClient(create_app(folder, backend=backend)) as client:
            got = client.post("/predict", json=body)
            assert got.status_code == 200, got.text
            rows = got.json()["forecast"]
            np.testing.assert_allclose([r["forecast"] for r in rows], want["forecast"], rtol=1e-5)
            short = dict(body, future=body["future"][:3])
            got = client.post("/predict", json=short)
            assert got.status_code == 422 and "lacks" in got.json()["detail"]


def test_bad_future_values_are_one_line_and_nothing_is_written(tmp_path: Path, capsys) -> None:
    df = make_series(70)
    df["month"] = df["month"].dt.strftime("%Y-%m-%d")
    df.iloc[:60].to_csv(tmp_path / "hist.csv", index=False)
    plan = df[["month", "promo"]].iloc[60:64]
    plan.to_csv(tmp_path / "plan.csv", index=False)
    out = tmp_path / "run"
    args = ["forecast", str(tmp_path / "hist.csv"), "--target", "y", "--horizon", "4",
            "--window", "8", "--method", "recursive", "--covariates", "temp,promo",
            "--future-covariates", "promo", "--future", str(tmp_path / "plan.csv"),
            "--out", str(out), "--hidden-size", "4", "--max-epochs", "1"]  # fmt: skip
    code, _, stderr = run(args, capsys)
    assert code == 0, stderr
    ahead = pd.read_csv(out / "future.csv")
    assert ahead["month"].tolist() == plan["month"].tolist()
    model = str(out / "model")
    cases = {
        "short": (plan.iloc[:3], "lacks ['promo'] for series '0' at 2005-04-01"),
        "nan": (plan.assign(promo=[1.0, np.nan, 0.0, 1.0]), "column 'promo' has a missing value"),
    }
    for name, (table, message) in cases.items():
        table.to_csv(tmp_path / f"{name}.csv", index=False)
        target = tmp_path / f"{name}-out.csv"
        code, stdout, stderr = run(
            ["predict", "--model", model, "--future", str(tmp_path / f"{name}.csv"),
             "--output", str(target)], capsys,
        )  # fmt: skip
        assert code == 2 and stdout == ""
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
        assert not target.exists()
    code, _, stderr = run(["predict", "--model", model], capsys)
    assert code == 2 and "uses known future values of ['promo']" in stderr
    # the API: windows with NaN in their known future values are refused, not forecast
    f = Forecaster.load(model)
    x = df[["y", "temp", "promo"]].to_numpy()[None, -8:]
    with pytest.raises(LstmkitError, match=r"known future values of \['promo'\] hold NaN"):
        f.predict_windows(x, future=np.array([[[1.0], [np.nan], [0.0], [1.0]]]))
    with pytest.raises(LstmkitError, match="needs the known future values"):
        f.predict_windows(x, future=np.ones((1, 3, 1)))
