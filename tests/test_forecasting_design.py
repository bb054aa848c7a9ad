"""The recurrent forecaster's design options (issue 17): patching, the residual NLinear
map the network corrects, the "last" instance normalisation and the mae/mase losses."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lstmkit import Forecaster
from lstmkit.errors import LstmkitError
from lstmkit.tasks.forecasting import ForecastModule, ForecastNet
from lstmkit.tasks.forecasting.network import patch_length
from lstmkit.tasks.forecasting.settings import ForecasterConfig

FAST = {"hidden_size": 8, "max_epochs": 3, "lr": 1e-2, "progress": False}


def _series(n: int = 80) -> pd.DataFrame:
    t = np.arange(n)
    y = 100 + t + 10 * np.sin(2 * np.pi * t / 12) + np.random.default_rng(0).normal(0, 1, n)
    return pd.DataFrame({"month": pd.date_range("2000-01-01", periods=n, freq="MS"), "y": y})


def _zero_all_but_linear(net: ForecastNet) -> None:
    with torch.no_grad():
        for name, p in net.named_parameters():
            if not name.startswith("linear."):
                p.zero_()


# ---------------------------------------------------------------- patching
def test_patch_one_is_the_step_by_step_network() -> None:
    """patch=1 builds and computes exactly today's network: encoder over every step, head on
    the last state and the window (recomputed here from the layers themselves)."""
    torch.manual_seed(0)
    net = ForecastNet(2, window=10, steps=3, n_outputs=2, hidden_size=5, patch=1).eval()
    x = torch.randn(4, 10, 2)
    assert net.rnn.input_size == 2
    with torch.no_grad():
        out, _ = net.rnn(x)
        want = net.head(torch.cat([out[:, -1], x[:, :, 0]], dim=1)).view(4, 3, 2)
        torch.testing.assert_close(net(x), want)
    torch.manual_seed(0)
    today = ForecastNet(2, window=10, steps=3, n_outputs=2, hidden_size=5).eval()
    assert net.state_dict().keys() == today.state_dict().keys()
    with torch.no_grad():
        torch.testing.assert_close(net(x), today(x))


def test_patches_are_recurrent_steps_and_the_oldest_remainder_is_left_to_the_skip() -> None:
    torch.manual_seed(0)
    net = ForecastNet(2, window=11, steps=4, n_outputs=1, hidden_size=6, patch=4).eval()
    assert net.rnn.input_size == 8  # patch * features
    x = torch.randn(3, 11, 2)
    with torch.no_grad():
        y = net(x)
        assert y.shape == (3, 4, 1)
        # two patches of 4 steps from the newest 8: (t3..t6), (t7..t10), features interleaved
        seq = x[:, 3:].reshape(3, 2, 8)
        torch.testing.assert_close(seq[0, 1, :2], x[0, 7])
        out, _ = net.rnn(seq)
        want = net.head(torch.cat([out[:, -1], x[:, :, 0]], dim=1)).view(3, 4, 1)
        torch.testing.assert_close(y, want)
        # without the skip the oldest 3 steps are not read at all
        net.skip = False
        net.head = torch.nn.Linear(6, 4)
        changed = x.clone()
        changed[:, :3] += 100.0
        torch.testing.assert_close(net(changed), net(x))


def test_automatic_patch_length_follows_the_window() -> None:
    cfg = ForecasterConfig(patch=None)
    assert [patch_length(cfg, w) for w in (12, 47, 48, 336, 720)] == [1, 1, 4, 4, 4]
    assert patch_length(ForecasterConfig(patch=8), 336) == 8
    assert patch_length(ForecasterConfig(patch=50), 12) == 12  # cut to the window
    # settings saved before the option existed read step by step, as they were built
    old = ForecasterConfig().to_dict()
    del old["patch"]
    assert ForecasterConfig.from_dict(old).patch == 1
    with pytest.raises(ValueError, match="patch must be between 1 and the window"):
        ForecastNet(1, window=6, steps=1, n_outputs=1, patch=7)


# ---------------------------------------------------------------- residual NLinear
@pytest.mark.parametrize("norm", [True, "last", False])
def test_fixed_residual_alone_is_the_nlinear_map(norm) -> None:
    """With the recurrent part and the head zeroed, the module forecasts exactly
    last + W (x - last) + b on the un-normalised window, whatever the normalisation."""
    torch.manual_seed(0)
    net = ForecastNet(2, window=9, steps=3, n_outputs=3, hidden_size=4, residual="nlinear-fixed")
    module = ForecastModule(net, instance_norm=norm, quantiles=[0.1, 0.9]).eval()
    assert not any(p.requires_grad for p in net.linear.parameters())
    assert net.head.weight.abs().sum() == 0  # an untrained network is the linear map
    W = np.random.default_rng(1).normal(size=(9, 3))
    b = np.array([0.5, -1.0, 2.0])
    with torch.no_grad():
        net.linear.weight.copy_(torch.tensor(W.T))
        net.linear.bias.copy_(torch.tensor(b))
    _zero_all_but_linear(net)
    x = np.random.default_rng(2).normal(3.0, 2.0, size=(5, 9, 2))
    last = x[:, -1:, 0]
    want = last + (x[:, :, 0] - last) @ W + b
    with torch.no_grad():
        got = module(torch.tensor(x, dtype=torch.float32)).double().numpy()
    for channel in range(3):  # the point and both quantiles start at the map
        np.testing.assert_allclose(got[..., channel], want, rtol=1e-5, atol=1e-4)


def _ridge_by_hand(x: np.ndarray, y: np.ndarray, ridge: float) -> tuple[np.ndarray, np.ndarray]:
    """NLinear by ridge on centred features (unpenalised intercept), by the normal equations."""
    last = x[:, -1:]
    F, T = x - last, y - last
    fm, tm = F.mean(0), T.mean(0)
    Fc, Tc = F - fm, T - tm
    W = np.linalg.solve(Fc.T @ Fc + ridge * np.eye(F.shape[1]), Fc.T @ Tc)
    return W, tm - fm @ W


def test_fit_sets_the_residual_to_the_ridge_nlinear_and_fixed_keeps_it() -> None:
    df = _series()
    f = Forecaster(horizon=4, window=12, residual="nlinear-fixed", quantiles=None,
                   scaler="none", val_size=8, **FAST)  # fmt: skip
    f.fit(df, target="y", time_col="month")
    v = df["y"].to_numpy()
    train = v[: len(v) - 8]
    n = len(train) - 12 - 4 + 1
    x = np.stack([train[i : i + 12] for i in range(n)])
    y = np.stack([train[i + 12 : i + 16] for i in range(n)])
    from lstmkit.tasks.forecasting.linear import RIDGE_GRID

    # the chosen penalty is one of the grid's; the map is the ridge solution for it
    linear = f.net.net.linear
    W = linear.weight.detach().double().numpy().T
    b = linear.bias.detach().double().numpy()
    Fc = x - x[:, -1:]
    scale = np.trace((Fc - Fc.mean(0)).T @ (Fc - Fc.mean(0))) / 12
    errors = [np.abs(_ridge_by_hand(x, y, r * scale)[0] - W).max() for r in RIDGE_GRID]
    best = int(np.argmin(errors))
    Wh, bh = _ridge_by_hand(x, y, RIDGE_GRID[best] * scale)
    np.testing.assert_allclose(W, Wh, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(b, bh, rtol=1e-4, atol=1e-3)


def test_residual_lookback_fits_the_map_on_the_newest_steps_only() -> None:
    """residual_lookback=6 in a 12-step window: the map's six oldest weights are zero and
    the rest is the ridge NLinear of the newest six steps; the network still reads all 12."""
    df = _series()
    f = Forecaster(horizon=4, window=12, residual="nlinear-fixed", residual_lookback=6,
                   quantiles=None, scaler="none", val_size=8, patch=1, **FAST)  # fmt: skip
    f.fit(df, target="y", time_col="month")
    v = df["y"].to_numpy()
    train = v[: len(v) - 8]
    n = len(train) - 12 - 4 + 1
    x = np.stack([train[i + 6 : i + 12] for i in range(n)])  # the newest 6 of each window
    y = np.stack([train[i + 12 : i + 16] for i in range(n)])
    from lstmkit.tasks.forecasting.linear import RIDGE_GRID

    linear = f.net.net.linear
    W = linear.weight.detach().double().numpy().T  # (window, steps)
    assert W.shape == (12, 4) and not W[:6].any()
    Fc = x - x[:, -1:]
    scale = np.trace((Fc - Fc.mean(0)).T @ (Fc - Fc.mean(0))) / 6
    errors = [np.abs(_ridge_by_hand(x, y, r * scale)[0] - W[6:]).max() for r in RIDGE_GRID]
    Wh, bh = _ridge_by_hand(x, y, RIDGE_GRID[int(np.argmin(errors))] * scale)
    np.testing.assert_allclose(W[6:], Wh, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(linear.bias.detach().double().numpy(), bh, rtol=1e-4, atol=1e-3)
    assert f.net.net.rnn.input_size == 1 and f.state.window == 12  # the LSTM reads 12 steps
    # longer than the window: the whole window, as without the setting
    g = Forecaster(horizon=4, window=12, residual="nlinear-fixed", residual_lookback=50,
                   quantiles=None, scaler="none", val_size=8, **FAST)  # fmt: skip
    g.fit(df, target="y", time_col="month")
    h = Forecaster(horizon=4, window=12, residual="nlinear-fixed", quantiles=None,
                   scaler="none", val_size=8, **FAST)  # fmt: skip
    h.fit(df, target="y", time_col="month")
    torch.testing.assert_close(g.net.net.linear.weight, h.net.net.linear.weight)
    assert g.net.net.linear.weight[:, :6].abs().sum() > 0


def test_trainable_residual_moves_from_the_ridge_start() -> None:
    # mean normalisation: under last (the single-series default) this tiny run keeps its start,
    # as it does on the single series' default validation of three horizons (val_size 8 here)
    f = Forecaster(horizon=4, window=12, residual="nlinear", instance_norm="mean",
                   quantiles=None, val_size=8, **FAST)  # fmt: skip
    df = _series()
    f.fit(df, target="y", time_col="month")
    assert all(p.requires_grad for p in f.net.net.linear.parameters())
    start = Forecaster(horizon=4, window=12, residual="nlinear", instance_norm="mean",
                       quantiles=None, val_size=8,
                       **(FAST | {"max_epochs": 1, "lr": 1e-9}))  # fmt: skip
    start.fit(df, target="y", time_col="month")
    moved = (f.net.net.linear.weight - start.net.net.linear.weight).abs().max().detach()
    assert float(moved) > 1e-4


def test_save_load_round_trip_with_patch_and_residual(tmp_path: Path) -> None:
    df = _series()
    f = Forecaster(horizon=4, window=12, patch=3, residual="nlinear", instance_norm="last",
                   loss="mase", **FAST)  # fmt: skip
    f.fit(df, target="y", time_col="month")
    g = Forecaster.load(f.save(tmp_path / "model"))
    assert g.config == f.config
    assert g.net.net.patch == 3 and g.net.net.residual == "nlinear"
    torch.testing.assert_close(g.net.net.linear.weight, f.net.net.linear.weight)
    pd.testing.assert_frame_equal(g.predict(), f.predict())
    pd.testing.assert_frame_equal(g.predict(df.iloc[:-5]), f.predict(df.iloc[:-5]))


# ---------------------------------------------------------------- normalisation and losses
def test_last_value_normalisation_by_hand_and_equivariant() -> None:
    from lstmkit.tasks.forecasting.module import _instance_stats

    x = torch.tensor([[1.0, 3.0, 2.0, 6.0]]).unsqueeze(-1)
    centre, scale = _instance_stats(x, "last")
    assert float(centre) == 6.0
    assert float(scale) == pytest.approx((2 + 1 + 4) / 3, abs=1e-4)
    torch.manual_seed(0)
    net = ForecastNet(1, window=10, steps=4, n_outputs=1, hidden_size=6)
    module = ForecastModule(net, instance_norm="last", quantiles=None).eval()
    x = torch.randn(3, 10, 1)
    with torch.no_grad():
        torch.testing.assert_close(module(4.0 * x - 2.0), 4.0 * module(x) - 2.0,
                                   rtol=1e-4, atol=1e-4)  # fmt: skip


@pytest.mark.parametrize("loss", ["mse", "mae", "mase"])
def test_losses_by_hand(loss: str) -> None:
    torch.manual_seed(0)
    net = ForecastNet(1, window=4, steps=2, n_outputs=1, hidden_size=3)
    module = ForecastModule(net, instance_norm=False, quantiles=None, loss=loss).eval()
    x = torch.tensor([[0.0, 2.0, 1.0, 4.0], [1.0, 1.0, 1.0, 2.0]]).unsqueeze(-1)
    y = torch.tensor([[5.0, 3.0], [2.0, 0.0]])
    with torch.no_grad():
        err = (module(x)[..., 0] - y).numpy()
        got = float(module.step_metrics((x, y))["loss"])
    change = np.array([[(2 + 1 + 3) / 3 + 1e-3], [1 / 3 + 1e-3]])
    want = {"mse": (err**2).mean(), "mae": np.abs(err).mean(),
            "mase": (np.abs(err) / change).mean()}[loss]  # fmt: skip
    assert got == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"patch": 0}, "patch must be an integer >= 1 or None, got 0"),
        ({"patch": 2.0}, "patch must be an integer >= 1 or None, got 2.0"),
        ({"residual": "dlinear"}, "residual must be one of nlinear, nlinear-fixed, auto or None"),
        ({"loss": "huber"}, "loss must be one of auto, mse, mae, mase, got 'huber'"),
        ({"instance_norm": "median"}, "must be true/false or one of mean, last, auto"),
        ({"scaler": "lg"}, "scaler must be one of minmax, standard, none, log, auto"),
    ],
)
def test_bad_design_settings_are_one_clear_error(settings: dict, message: str) -> None:
    with pytest.raises(LstmkitError, match=message):
        Forecaster(horizon=6, **settings)


def test_cli_design_options_reach_the_saved_model(tmp_path: Path, capsys) -> None:
    import sys

    from lstmkit.cli import main

    data = tmp_path / "shop.csv"
    _series().to_csv(data, index=False)
    out = tmp_path / "run"
    argv = ["lstmkit", "forecast", str(data), "--target", "y", "--time-col", "month",
            "--horizon", "4", "--window", "12", "--patch", "3", "--residual", "nlinear-fixed",
            "--loss", "mae", "--max-epochs", "2", "--hidden-size", "8", "--no-progress",
            "--out", str(out)]  # fmt: skip
    old, sys.argv = sys.argv, argv
    try:
        main()
    except SystemExit as exc:
        assert not exc.code, capsys.readouterr().err
    finally:
        sys.argv = old
    saved = Forecaster.load(out / "model")
    assert (saved.config.patch, saved.config.residual, saved.config.loss) == (
        3, "nlinear-fixed", "mae",
    )  # fmt: skip
    assert saved.net.net.rnn.input_size == 3
    sys.argv = [*argv[:-1], str(tmp_path / "bad"), "--loss", "huber"]
    try:
        with pytest.raises(SystemExit) as info:
            main()
    finally:
        sys.argv = old
    assert info.value.code == 2
    assert "'huber' is not one of 'auto', 'mse', 'mae', 'mase'" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_training_that_never_beats_the_linear_start_keeps_it() -> None:
    """A learning rate far too large spoils every epoch: the fit keeps the network it
    started from (head at zero: the ridge map alone), best epoch 0 (before training)."""
    df = _series()
    f = Forecaster(horizon=4, window=12, residual="nlinear-fixed", quantiles=None,
                   scaler="none", val_size=8, **(FAST | {"lr": 0.05, "max_epochs": 2}))  # fmt: skip
    f.fit(df, target="y", time_col="month")
    assert f.fit_result.best_epoch == -1
    assert float(f.net.net.head.weight.detach().abs().sum()) == 0.0
    W = f.net.net.linear.weight.detach().double().numpy().T
    b = f.net.net.linear.bias.detach().double().numpy()
    x = df["y"].to_numpy()[-12:]
    want = x[-1] + (x - x[-1]) @ W + b
    np.testing.assert_allclose(f.predict()["forecast"].to_numpy(), want, rtol=1e-5)


def test_log_scaler_by_hand_and_refuses_non_positive_targets() -> None:
    from lstmkit.data.scalers import SeriesScaler

    e = np.e
    scaler = SeriesScaler("log")
    values = np.array([[1.0, -5.0], [e, 0.0], [e**2, 5.0]])  # target, covariate
    scaler.fit_series("a", values)
    # log target [0, 1, 2] -> minmax to [-1, 1]; the covariate only minmax-scaled
    np.testing.assert_allclose(scaler.transform("a", values), [[-1, -1], [0, 0], [1, 1]])
    np.testing.assert_allclose(scaler.transform("a", values[:, 0]), [-1, 0, 1])
    np.testing.assert_allclose(scaler.transform("a", values[:, 1:], columns=[1]), [[-1], [0], [1]])
    np.testing.assert_allclose(scaler.inverse_transform("a", np.array([-1.0, 0.5])), [1, e**1.5])
    assert SeriesScaler.from_json(scaler.to_json()) == scaler
    with pytest.raises(LstmkitError, match="scaler='log' needs positive target values"):
        scaler.fit_series("b", np.array([[3.0], [0.0]]))
    with pytest.raises(LstmkitError, match="series 'a' has -2"):
        scaler.transform("a", np.array([[-2.0, 1.0]]))


def test_log_scaled_forecaster_round_trips(tmp_path: Path) -> None:
    df = _series()
    f = Forecaster(horizon=4, window=12, scaler="log", **FAST)
    f.fit(df, target="y", time_col="month")
    pred = f.predict()
    assert (pred["forecast"] > 0).all()
    assert (pred["q10"] <= pred["q90"]).all()
    g = Forecaster.load(f.save(tmp_path / "model"))
    pd.testing.assert_frame_equal(g.predict(), pred)
    with pytest.raises(LstmkitError, match="needs positive target values"):
        Forecaster(horizon=4, window=12, scaler="log", **FAST).fit(
            df.assign(y=df["y"] - 150), target="y", time_col="month"
        )


def test_a_folder_saved_before_patching_loads_step_by_step(tmp_path: Path) -> None:
    """A per-step model with a long window saved before ``patch`` existed (no key in its
    config) loads as patch 1, not as today's automatic patch 4, and forecasts the same."""
    import json

    df = _series(120)
    f = Forecaster(horizon=4, window=48, patch=1, **FAST).fit(df, target="y", time_col="month")
    path = f.save(tmp_path / "old")
    meta = json.loads((path / "config.json").read_text())
    del meta["config"]["forecaster"]["patch"]
    (path / "config.json").write_text(json.dumps(meta))
    g = Forecaster.load(path)
    assert g.config.patch == 1 and g.net.net.rnn.input_size == 1
    pd.testing.assert_frame_equal(g.predict(), f.predict())
    assert (
        Forecaster(horizon=4, window=48, **FAST).fit(df, target="y", time_col="month").net.net.patch
        == 4
    )  # today's default for such a window


def test_auto_scaler_is_log_for_several_positive_series_only() -> None:
    from lstmkit.data.series import load_series
    from lstmkit.tasks.forecasting.data import scaler_kind

    one = _series()
    two = pd.concat([one.assign(id="a"), one.assign(id="b", y=one["y"] * 3)])
    assert ForecasterConfig().scaler == "auto"
    assert scaler_kind("auto", load_series(one, "y", time_col="month")) == "minmax"
    assert scaler_kind("auto", load_series(two, "y", time_col="month", id_col="id")) == "log"
    zero = two.assign(y=np.where(np.arange(len(two)) == 7, 0.0, two["y"]))
    assert scaler_kind("auto", load_series(zero, "y", time_col="month", id_col="id")) == "minmax"
    assert scaler_kind("standard", load_series(two, "y", time_col="month", id_col="id")) == (
        "standard"
    )
    f = Forecaster(horizon=4, window=12, **FAST).fit(two, target="y", time_col="month", id_col="id")
    assert f.scaler.kind == "log" and f.config.scaler == "auto"
    # the automatic loss follows the scaler: MAE of log values, MSE of minmax ones
    assert (f.config.loss, f.net.loss) == ("auto", "mae")
    g = Forecaster(horizon=4, window=12, **FAST).fit(one, target="y", time_col="month")
    assert (g.scaler.kind, g.net.loss) == ("minmax", "mse")


def test_residual_with_one_validation_window_chooses_the_ridge_on_training_windows() -> None:
    """Horizon 1 with one validation step leaves one validation window, too few to choose a
    penalty on: the fit chooses it on held-out training windows instead of failing."""
    f = Forecaster(horizon=1, window=12, residual="nlinear", val_size=1, quantiles=None, **FAST)
    f.fit(_series(), target="y", time_col="month")
    assert float(f.net.net.linear.weight.detach().abs().sum()) > 0
    assert np.isfinite(f.predict()["forecast"]).all()


# ---------------------------------------------------------------- with main's scale work
def _two_series(n: int = 120) -> pd.DataFrame:
    one = _series(n)
    return pd.concat([one.assign(id="a", kind="small"),
                      one.assign(id="b", kind="big", y=one["y"] * 3 + 50)])  # fmt: skip


def test_log_scaler_fits_and_transforms_many_series_as_one_by_one() -> None:
    """fit_many / transform_many (all series in one array step) take the log of the target
    as fit_series / transform do series by series; a value <= 0 names its series."""
    from lstmkit.data.scalers import SeriesScaler

    rng = np.random.default_rng(1)
    parts = [np.column_stack([rng.uniform(1, 50, n), rng.normal(0, 3, n)]) for n in (7, 5, 9)]
    ids, lengths = ["a", "b", "c"], np.array([7, 5, 9])
    values = np.concatenate(parts)
    many, alone = SeriesScaler("log"), SeriesScaler("log")
    many.fit_many(ids, values, lengths, lengths - 2)
    for sid, part in zip(ids, parts, strict=True):
        alone.fit_series(sid, part[:-2])
    assert many.params.keys() == alone.params.keys()
    for sid in ids:
        np.testing.assert_allclose(many.params[sid]["shift"], alone.params[sid]["shift"])
        np.testing.assert_allclose(many.params[sid]["scale"], alone.params[sid]["scale"])
    by_hand = np.concatenate([alone.transform(s, p) for s, p in zip(ids, parts, strict=True)])
    np.testing.assert_allclose(many.transform_many(ids, values, lengths), by_hand)
    # log target, then minmax of the training part: -1 at its lowest, 1 at its highest
    a = many.transform_many(ids, values, lengths)[: 7 - 2, 0]
    assert (a.min(), a.max()) == pytest.approx((-1.0, 1.0))
    bad = values.copy()
    bad[7 + 3, 0] = 0.0  # series "b"
    with pytest.raises(LstmkitError, match="series 'b' has 0"):
        SeriesScaler("log").fit_many(ids, bad, lengths, lengths)


def test_log_scaled_batched_forecast_is_exp_of_the_network_and_the_runtime_agrees(
    tmp_path: Path,
) -> None:
    """Several positive series: auto picks the log scaler; the batched forecast of every
    series is exp(network output scaled back) of its log-scaled last window, by hand, and
    the ONNX runtime forecasts the same."""
    from lstmkit import runtime

    df = _two_series()
    f = Forecaster(horizon=4, window=12, patch=3, **FAST)
    f.fit(df.drop(columns="kind"), target="y", time_col="month", id_col="id")
    assert f.scaler.kind == "log"
    pred = f.predict()
    for sid in ("a", "b"):
        last = df.loc[df["id"] == sid, "y"].to_numpy()[-12:]
        p = f.scaler.params[sid]
        x = (np.log(last) - p["shift"][0]) / p["scale"][0]
        with torch.inference_mode():
            out = f.net(torch.tensor(x, dtype=torch.float32)[None, :, None]).double().numpy()[0]
        want = np.exp(out * p["scale"][0] + p["shift"][0])
        got = pred.loc[pred["id"] == sid, ["forecast", "q10", "q50", "q90"]].to_numpy()
        # the calibration shifts only the quantiles
        np.testing.assert_allclose(got[:, 0], want[:, 0], rtol=1e-5)
        assert (got > 0).all()
    f.export_onnx(tmp_path / "onnx")
    served = runtime.load(tmp_path / "onnx").predict()
    np.testing.assert_allclose(
        served[["forecast", "q10", "q50", "q90"]].to_numpy(),
        pred[["forecast", "q10", "q50", "q90"]].to_numpy(), rtol=1e-4,
    )  # fmt: skip


def test_residual_with_static_inputs_an_ensemble_and_calibration() -> None:
    """A fixed residual in a model with a static column and an id embedding, trained as an
    ensemble of 2 with calibrated bands: every member holds the ridge NLinear of the
    training windows of both series (by hand) and the bands are calibrated."""
    from lstmkit.tasks.forecasting.linear import RIDGE_GRID

    df = _two_series()
    f = Forecaster(horizon=4, window=12, residual="nlinear-fixed", scaler="none", val_size=28,
                   id_embedding=2, ensemble=2, **FAST)  # fmt: skip
    f.fit(df, target="y", time_col="month", id_col="id", static_cols=["kind"])
    assert len(f.members) == 2 and f.members[0] is f.net
    assert f.net.net.static_spec and f.state.calibration is not None
    xs, ys = [], []
    for sid in ("a", "b"):
        train = df.loc[df["id"] == sid, "y"].to_numpy()[:-28]
        n = len(train) - 12 - 4 + 1
        xs.append(np.stack([train[i : i + 12] for i in range(n)]))
        ys.append(np.stack([train[i + 12 : i + 16] for i in range(n)]))
    x, y = np.concatenate(xs), np.concatenate(ys)
    Fc = x - x[:, -1:]
    scale = np.trace((Fc - Fc.mean(0)).T @ (Fc - Fc.mean(0))) / 12
    for member in f.members:
        linear = member.net.linear
        assert not any(p.requires_grad for p in linear.parameters())
        W = linear.weight.detach().double().numpy().T
        errors = [np.abs(_ridge_by_hand(x, y, r * scale)[0] - W).max() for r in RIDGE_GRID]
        Wh, bh = _ridge_by_hand(x, y, RIDGE_GRID[int(np.argmin(errors))] * scale)
        np.testing.assert_allclose(W, Wh, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(linear.bias.detach().double().numpy(), bh, atol=1e-3)
    assert not torch.equal(f.members[0].net.head.weight, f.members[1].net.head.weight)
    pred = f.predict()
    assert np.isfinite(pred[["forecast", "q10", "q90"]].to_numpy()).all()


# ---------------------------------------------------------------- the auto design
def test_auto_design_is_last_and_a_fixed_map_for_one_series_only() -> None:
    cfg = ForecasterConfig()
    assert (cfg.instance_norm, cfg.residual) == ("auto", "auto")
    one, many = cfg.design(1), cfg.design(2)
    assert (one.instance_norm, one.residual) == ("last", "nlinear-fixed")
    assert (many.instance_norm, many.residual) == ("mean", None)
    chosen = ForecasterConfig(
        instance_norm=False, residual="nlinear", ensemble=2, log_profile=False
    )
    assert chosen.design(1) == chosen.design(5) == chosen  # explicit settings stay


def test_auto_ensemble_is_three_networks_for_one_series_forecast_directly(tmp_path) -> None:
    cfg = ForecasterConfig()
    assert cfg.ensemble == "auto"
    assert (cfg.design(1).ensemble, cfg.design(2).ensemble) == (3, 1)
    assert ForecasterConfig(method="recursive").design(1).ensemble == 1
    assert ForecasterConfig(checkpoint_dir=str(tmp_path)).design(1).ensemble == 1


@pytest.mark.parametrize("keep", ["best", "last"])
def test_a_network_worse_than_its_map_keeps_the_map_unless_asked_for_the_last_epoch(keep):
    # lr 0.2: three epochs never reach the fixed NLinear map's validation loss
    df = _series()
    f = Forecaster(horizon=4, window=12, ensemble=1, hidden_size=8, max_epochs=3, lr=0.2,
                   val_size=8, progress=False, keep_weights=keep)  # fmt: skip
    f.fit(df, "y", time_col="month")
    history = [row["val_loss"] for row in f.fit_result.history]
    assert min(history) > f.fit_result.best_val_loss or keep == "last"
    if keep == "best":  # the start: the map alone (the head's weights at zero)
        assert f.fit_result.best_epoch == -1
        assert float(f.net.net.head.weight.detach().abs().max()) == 0.0
        _band_of_the_maps_errors(f, df, val=8)
    else:  # the final epoch's weights and loss, as keep_weights promises
        assert f.fit_result.best_epoch == 2 and f.fit_result.best_val_loss == history[-1]
        assert float(f.net.net.head.weight.detach().abs().max()) > 0.0


def _band_of_the_maps_errors(f: Forecaster, df: pd.DataFrame, val: int) -> None:
    """A network kept at its start has a band: around the map's forecast (the 0.5 level
    on it), each quantile the map's errors on its training windows (each over the window's
    instance-norm scale: mean absolute change for "last", spread for "mean", none without)
    at that level less their median, per step, computed here by hand from the scaled
    series."""
    table = f.predict()
    assert (table["q10"] < table["forecast"]).all() and (table["forecast"] < table["q90"]).all()
    np.testing.assert_allclose(table["q50"], table["forecast"], rtol=1e-5)
    y = f.scaler.transform("0", df[["y"]].to_numpy(dtype=np.float64))[:, 0]
    w, h = f.state.window, f.config.horizon
    starts = range(len(y) - val - w - h + 1)  # targets before the validation part
    x = np.stack([y[i : i + w] for i in starts])
    target = np.stack([y[i + w : i + w + h] for i in starts])
    weight = f.net.net.linear.weight.detach().double().numpy()
    bias = f.net.net.linear.bias.detach().double().numpy()
    err = target - (x[:, -1:] + (x - x[:, -1:]) @ weight.T + bias)
    if f.net.instance_norm == "last":
        err /= np.abs(np.diff(x, axis=1)).mean(axis=1, keepdims=True) + 1e-5
    elif f.net.instance_norm:
        err /= np.sqrt(x.var(axis=1, keepdims=True) + 1e-5)
    want = np.quantile(err, [0.1, 0.5, 0.9], axis=0) - np.median(err, axis=0)
    got = f.net.net.head.bias.detach().double().numpy().reshape(h, -1)[:, 1:4].T
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("norm", ["mean", False])
def test_a_map_kept_under_another_instance_norm_has_its_band_too(norm) -> None:
    df = _series()
    f = Forecaster(horizon=4, window=12, ensemble=1, hidden_size=8, max_epochs=3, lr=0.2,
                   val_size=8, progress=False, instance_norm=norm)  # fmt: skip
    f.fit(df, "y", time_col="month")
    assert f.fit_result.best_epoch == -1 and f.net.instance_norm == norm
    _band_of_the_maps_errors(f, df, val=8)


def test_auto_design_builds_per_data_and_survives_save_load(tmp_path: Path) -> None:
    df = _series()
    f = Forecaster(horizon=4, window=12, **FAST).fit(df, target="y", time_col="month")
    assert f.config.residual == "auto" and f.net.net.residual == "nlinear-fixed"
    assert f.net.instance_norm == "last"
    g = Forecaster.load(f.save(tmp_path / "one"))
    assert g.net.net.residual == "nlinear-fixed" and g.net.instance_norm == "last"
    pd.testing.assert_frame_equal(g.predict(), f.predict())
    two = pd.concat([df.assign(id="a"), df.assign(id="b", y=df["y"] * 2)])
    m = Forecaster(horizon=4, window=12, **FAST).fit(two, "y", time_col="month", id_col="id")
    assert m.net.net.residual is None and m.net.instance_norm == "mean"
    h = Forecaster.load(m.save(tmp_path / "two"))
    assert h.net.net.residual is None
    pd.testing.assert_frame_equal(h.predict(), m.predict())


def test_settings_saved_before_the_auto_design_build_the_old_network() -> None:
    old = ForecasterConfig().to_dict()
    del old["residual"], old["instance_norm"], old["ensemble"]
    cfg = ForecasterConfig.from_dict(old)
    assert cfg.residual is None and cfg.instance_norm is True and cfg.ensemble == 1


def test_an_auto_ensemble_saves_its_networks_and_a_damaged_count_is_one_line(tmp_path) -> None:
    df = _series()
    f = Forecaster(horizon=4, window=12, **FAST).fit(df, target="y", time_col="month")
    assert len(f.members) == len(f.member_results) == 3
    assert len({r.fit_seconds for r in f.member_results}) == 3  # three trainings
    folder = f.save(tmp_path / "m")
    meta = json.loads((folder / "config.json").read_text())
    config = meta["config"]
    assert config["forecaster"]["ensemble"] == "auto" and config["networks"] == 3
    g = Forecaster.load(folder)
    assert g.config == f.config and len(g.members) == 3
    pd.testing.assert_frame_equal(g.predict(), f.predict())
    for bad in (2, 0, "3", True):
        config["networks"] = bad
        (folder / "config.json").write_text(json.dumps(meta))
        with pytest.raises(LstmkitError, match="do not match its config") as err:
            Forecaster.load(folder)
        assert "\n" not in str(err.value)
    del config["networks"]  # written by hand without it: "auto" resolved for one series
    (folder / "config.json").write_text(json.dumps(meta))
    assert len(Forecaster.load(folder).members) == 3
    # a checkpoint folder holds one run: auto is then one network
    c = Forecaster(horizon=4, window=12, checkpoint_dir=str(tmp_path / "ck"), **FAST)
    c.fit(df, target="y", time_col="month")
    assert len(c.members) == 1


def test_auto_map_with_too_few_windows_is_the_zero_map() -> None:
    """One training window cannot fit a ridge map: the auto design trains the network alone
    (a zero map) where the explicit setting says why it cannot."""
    df = _series(n=16)  # window 12 + horizon 4: one training window, no validation
    f = Forecaster(horizon=4, window=12, val_size=0, **FAST).fit(df, "y", time_col="month")
    assert f.net.net.residual == "nlinear-fixed"
    assert float(f.net.net.linear.weight.abs().max()) == 0.0
    assert float(f.net.net.linear.bias.abs().max()) == 0.0
    with pytest.raises(LstmkitError, match="needs at least 2 windows"):
        Forecaster(horizon=4, window=12, val_size=0, residual="nlinear-fixed", **FAST).fit(
            df, "y", time_col="month"
        )


def test_cli_instance_norm_and_residual_choices(tmp_path: Path, capsys) -> None:
    import json

    from test_cli_forecast import _csv, run

    data = _csv(tmp_path / "d.csv", n=120)
    common = ["forecast", str(data), "--target", "sales", "--hidden-size", "4", "--max-epochs",
              "1", "--no-progress"]  # fmt: skip
    for flags, norm, residual in (
        (["--instance-norm", "off", "--residual", "none"], False, None),
        (["--no-instance-norm"], False, "auto"),
        (["--instance-norm", "last", "--residual", "nlinear"], "last", "nlinear"),
    ):
        out = tmp_path / f"run{len(flags)}"
        code, _, err = run([*common, *flags, "--out", str(out)], capsys)
        assert code == 0, err
        cfg = json.loads((out / "model" / "config.json").read_text())["config"]["forecaster"]
        assert (cfg["instance_norm"], cfg["residual"]) == (norm, residual)
    code, _, err = run([*common, "--no-instance-norm", "--instance-norm", "last", "--out",
                        str(tmp_path / "bad")], capsys)  # fmt: skip
    assert code == 2 and err.count("\n") == 1 and "contradicts" in err
    assert not (tmp_path / "bad").exists()


def test_auto_map_gives_way_to_padding() -> None:
    """pad=True has no whole window for the map: auto resolves to no map (an explicit map
    with pad is refused); several series under pad=auto may pad since auto is no map there."""
    cfg = ForecasterConfig(pad=True)
    assert cfg.design(1).residual is None and cfg.design(3).residual is None
    with pytest.raises(LstmkitError, match="pad and residual cannot go together"):
        ForecasterConfig(pad=True, residual="nlinear-fixed")
    from lstmkit.data.series import load_series
    from lstmkit.tasks.forecasting.data import use_padding

    short = pd.concat([_series(40).assign(id="a"), _series(200).assign(id="b")])
    sd = load_series(short, "y", time_col="month", id_col="id")
    assert use_padding(ForecasterConfig(horizon=4, window=48, pad="auto"), sd)
    assert not use_padding(ForecasterConfig(horizon=4, window=48, residual="nlinear"), sd)


def test_cli_batch_options_reach_the_model(tmp_path: Path, capsys) -> None:
    """The M4 design's settings are all CLI options (README's command)."""
    import json

    from test_cli_forecast import _csv, run

    out = tmp_path / "run"
    code, _, err = run(["forecast", str(_csv(tmp_path / "d.csv", n=120)), "--target", "sales",
                        "--hidden-size", "4", "--max-epochs", "1", "--no-progress",
                        "--batch-size", "16", "--batches-per-epoch", "3", "--out", str(out)],
                       capsys)  # fmt: skip
    assert code == 0, err
    cfg = json.loads((out / "model" / "config.json").read_text())["config"]["forecaster"]
    assert (cfg["batch_size"], cfg["batches_per_epoch"]) == (16, 3)
    code, _, err = run(["forecast", "--batch-size", "0", "--out", str(tmp_path / "bad")], capsys)
    assert code == 2 and err.count("\n") == 1 and "batch_size" in err
    assert not (tmp_path / "bad").exists()


def test_the_forecast_command_leaves_the_garbage_collector_as_it_was(tmp_path: Path, capsys):
    """`lstmkit forecast` freezes the start-up's objects and collects rarely while it runs
    (thousands of series); a process that runs it in-process gets its collector back."""
    import gc

    from test_cli_forecast import _csv, run

    before = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    code, _, err = run(["forecast", str(_csv(tmp_path / "d.csv", n=60)), "--target", "sales",
                        "--hidden-size", "4", "--max-epochs", "1", "--no-progress", "--out",
                        str(tmp_path / "run")], capsys)  # fmt: skip
    assert code == 0, err
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    code, _, _ = run(["forecast", "--patch", "0", "--out", str(tmp_path / "bad")], capsys)
    assert code == 2 and gc.get_threshold() == before and gc.get_freeze_count() == 0
