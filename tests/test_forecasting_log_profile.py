"""The log profile (``log_profile``): a single positive series' point forecast takes the
profile over the horizon of a ridge NLinear map of the log target, at the network's level."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lstmkit import Forecaster
from lstmkit.errors import LstmkitError
from lstmkit.tasks.forecasting import ForecastModule, ForecastNet
from lstmkit.tasks.forecasting.linear import RIDGE_GRID
from lstmkit.tasks.forecasting.settings import ForecasterConfig

FAST = {"hidden_size": 8, "max_epochs": 3, "lr": 1e-2, "progress": False}


def _series(n: int = 80, level: float = 100.0, period: int = 12) -> pd.DataFrame:
    """A growing monthly series whose seasonal swing (of ``period`` steps) grows with its
    level."""
    t = np.arange(n)
    noise = np.random.default_rng(0).normal(0, 0.01, n)
    y = level * np.exp(0.01 * t + 0.2 * np.sin(2 * np.pi * t / period) + noise)
    return pd.DataFrame({"month": pd.date_range("2000-01-01", periods=n, freq="MS"), "y": y})


def _profile_by_hand(raw, point, W, b):
    """The point forecasts (n, steps) given the log map's profile at their level."""
    logs = np.log(raw)
    last = logs[:, -1:]
    curve = np.exp(last + (logs - last) @ W + b)
    return curve * point.mean(axis=1, keepdims=True) / curve.mean(axis=1, keepdims=True)


def test_the_profile_by_hand_in_eval_mode_only() -> None:
    """In eval mode the point forecast is the log map's curve scaled to the network's mean
    over the horizon (in the target's own units), the quantiles move with it; training mode,
    the profile switched off and a window holding a value at or below 0 keep the network's."""
    torch.manual_seed(0)
    net = ForecastNet(1, window=6, steps=4, n_outputs=3, hidden_size=4,
                      residual="nlinear-fixed", log_profile=True)  # fmt: skip
    module = ForecastModule(net, instance_norm="last", quantiles=[0.1, 0.9])
    assert not any(p.requires_grad for p in net.log_linear.parameters())
    rng = np.random.default_rng(1)
    W, b = rng.normal(0, 0.2, size=(6, 4)), np.array([0.1, -0.2, 0.3, 0.0])
    shift, scale = 50.0, 20.0
    with torch.no_grad():
        net.log_linear.weight.copy_(torch.tensor(W.T))
        net.log_linear.bias.copy_(torch.tensor(b))
        for p in net.head.parameters():  # a network whose forecast is not the map's
            p.copy_(torch.randn_like(p) * 0.3)
    x = rng.uniform(-1, 1, size=(5, 6, 1))
    x[4, 2, 0] = -2.6  # 50 - 2.6 * 20 < 0: this window keeps the network's forecast
    xt = torch.tensor(x, dtype=torch.float32)
    with torch.no_grad():
        module.eval()
        plain = module(xt).double().numpy()  # the profile is off until fitted
        net.profile.copy_(torch.tensor([shift, scale, 1.0]))
        got = module(xt).double().numpy()
        module.train()
        trained = module(xt).double().numpy()
    np.testing.assert_allclose(trained, plain, rtol=1e-6)
    point = plain[..., 0] * scale + shift
    want = (_profile_by_hand(x[:4, :, 0] * scale + shift, point[:4], W, b) - shift) / scale
    np.testing.assert_allclose(got[:4, :, 0], want, rtol=1e-4, atol=1e-4)
    moved = want - plain[:4, :, 0]
    for q in (1, 2):
        np.testing.assert_allclose(got[:4, :, q], plain[:4, :, q] + moved, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got[4], plain[4], rtol=1e-6)
    assert np.abs(moved).max() > 0.05  # the profile did change those forecasts


def _ridge_by_hand(x: np.ndarray, y: np.ndarray, ridge: float) -> np.ndarray:
    """The NLinear weights by ridge on centred features (unpenalised intercept)."""
    last = x[:, -1:]
    F, T = x - last, y - last
    Fc, Tc = F - F.mean(0), T - T.mean(0)
    return np.linalg.solve(Fc.T @ Fc + ridge * np.eye(F.shape[1]), Fc.T @ Tc)


def test_fit_sets_the_log_nlinear_and_the_forecast_takes_its_profile(tmp_path: Path) -> None:
    """A single positive series: the profile's map is the ridge NLinear of the log of the
    training windows, its scaling the series' own; the forecast (each network of the
    ensemble) is that map's profile at the networks' level, the same after saving, loading
    and in the ONNX runtime."""
    from lstmkit import runtime

    df = _series()
    f = Forecaster(horizon=4, window=12, val_size=8, log_profile=True, **FAST)
    f.fit(df, target="y", time_col="month")
    assert f.design.log_profile is True and len(f.members) == 3
    net = f.net.net
    params = f.scaler.params[next(iter(f.scaler.params))]
    np.testing.assert_allclose(
        net.profile.numpy(), [params["shift"][0], params["scale"][0], 1.0], rtol=1e-6
    )
    logs = np.log(df["y"].to_numpy())[: len(df) - 8]
    n = len(logs) - 12 - 4 + 1
    x = np.stack([logs[i : i + 12] for i in range(n)])
    y = np.stack([logs[i + 12 : i + 16] for i in range(n)])
    W = net.log_linear.weight.detach().double().numpy().T
    Fc = x - x[:, -1:]
    size = np.trace((Fc - Fc.mean(0)).T @ (Fc - Fc.mean(0))) / 12
    errors = [np.abs(_ridge_by_hand(x, y, r * size) - W).max() for r in RIDGE_GRID]
    assert min(errors) < 1e-3  # the ridge solution for one of the grid's penalties
    # the forecast: the networks' forecast with the profile off, then given the profile
    pred = f.predict()
    for member in f.members:
        member.net.profile[2] = 0.0
    plain = f.predict()
    for member in f.members:
        member.net.profile[2] = 1.0
    b = net.log_linear.bias.detach().double().numpy()
    raw = df["y"].to_numpy()[-12:][None]
    want = _profile_by_hand(raw, plain["forecast"].to_numpy()[None], W, b)[0]
    np.testing.assert_allclose(pred["forecast"].to_numpy(), want, rtol=1e-4)
    assert np.abs(pred["forecast"].to_numpy() - plain["forecast"].to_numpy()).max() > 1e-3
    loaded = Forecaster.load(f.save(tmp_path / "model")).predict()
    np.testing.assert_allclose(
        loaded["forecast"].to_numpy(), pred["forecast"].to_numpy(), rtol=1e-5
    )
    f.export_onnx(tmp_path / "onnx")
    served = runtime.load(tmp_path / "onnx").predict()
    np.testing.assert_allclose(
        served[["forecast", "q10", "q50", "q90"]].to_numpy(),
        pred[["forecast", "q10", "q50", "q90"]].to_numpy(), rtol=1e-4,
    )  # fmt: skip


def _switch(settings: dict, df: pd.DataFrame) -> float:
    """The profile's switch after a fit without validation."""
    f = Forecaster(horizon=4, window=12, val_size=0, ensemble=1, **settings, **FAST)
    return f.fit(df, target="y", time_col="month").net.net.profile[2].item()


def test_the_profile_is_off_where_the_log_cannot_apply() -> None:
    """auto: on where the horizon holds a whole season (4 steps of a season of 4, not of
    12, the monthly default) and the swing grows with the level; a series with a
    value at or below 0, or one scaled by its log, keeps the network's forecast even when
    asked (the profile's switch is off); several series have no profile, and asking for
    one there is one line."""
    df = _series()
    assert _switch({"season": 4}, _series(period=4)) == 1.0
    assert _switch({}, _series(period=4)) == 0.0  # 4 months of a 12-month season
    assert _switch({"log_profile": True}, df) == 1.0
    below = _series(level=1.0)
    below["y"] = below["y"] - 1.2  # some values below 0
    assert _switch({"log_profile": True}, below) == 0.0
    assert _switch({"log_profile": True, "scaler": "log"}, df) == 0.0
    two = pd.concat([_series().assign(id="a"), _series(level=50.0).assign(id="b")])
    f = Forecaster(horizon=4, window=12, **FAST).fit(two, target="y", time_col="month", id_col="id")
    assert f.design.log_profile is False and not hasattr(f.net.net, "log_linear")
    with pytest.raises(LstmkitError, match="log_profile needs a single series") as err:
        Forecaster(horizon=4, window=12, log_profile=True, **FAST).fit(
            two, target="y", time_col="month", id_col="id"
        )
    assert "\n" not in str(err.value)


def _additive(n: int = 96) -> pd.DataFrame:
    """A trend with a seasonal swing that does not grow with it."""
    t = np.arange(n)
    y = 60 + 3 * t + 40 * np.sin(2 * np.pi * t / 12) + np.random.default_rng(3).normal(0, 1, n)
    return pd.DataFrame({"month": pd.date_range("2000-01-01", periods=n, freq="MS"), "y": y})


def _guerrero(y: np.ndarray, season: int, at: float | None = None) -> float:
    """Guerrero's Box-Cox lambda by hand (float64, a grid of step 0.001 on [-1, 2]): the
    lambda that minimises the coefficient of variation of sd / mean ** (1 - lambda) over
    the whole seasons (the newest ones); with ``at``, that criterion at lambda ``at``."""
    whole = len(y) // season * season
    seasons = y[len(y) - whole :].reshape(-1, season)
    mean, sd = seasons.mean(axis=1), seasons.std(axis=1, ddof=1)
    grid = np.array([at]) if at is not None else np.linspace(-1.0, 2.0, 3001)
    ratio = sd[None, :] / mean[None, :] ** (1.0 - grid[:, None])
    cv = ratio.std(axis=1, ddof=1) / ratio.mean(axis=1)
    return float(cv[0]) if at is not None else float(grid[np.argmin(cv)])


def _flat(n: int = 96) -> pd.DataFrame:
    """A constant swing around a constant level."""
    t = np.arange(n)
    y = 300 + 40 * np.sin(2 * np.pi * t / 12) + np.random.default_rng(4).normal(0, 8, n)
    return pd.DataFrame({"month": pd.date_range("2000-01-01", periods=n, freq="MS"), "y": y})


def test_swing_grows_agrees_with_guerreros_lambda() -> None:
    """Where the level moves, the gate agrees with Guerrero's lambda found by hand (below
    0.5: the swing grows with the level): AirPassengers, whatever year it ends, and a
    multiplicative series on; a trend beside a constant swing off. A flat level leaves
    lambda arbitrary (the criterion within 5% from -1 to 2): off. Too few seasons, a value
    at or below 0, NaN or no change within the seasons: off."""
    from lstmkit.data.air_passengers import load_air_passengers
    from lstmkit.tasks.forecasting.estimator import swing_grows

    air = load_air_passengers()["passengers"].to_numpy(dtype=float)
    cases = [(air[:n], True) for n in (72, 96, 120, 132)]
    cases += [(_series(96)["y"].to_numpy(), True), (_additive()["y"].to_numpy(), False)]
    for y, grows in cases:
        lam = _guerrero(y, 12)
        assert abs(lam - 0.5) > 0.4, lam  # far from the line
        assert (lam < 0.5) is grows
        assert swing_grows(y, 12) is grows
    assert _guerrero(air[:132], 12) == pytest.approx(-0.3, abs=0.05)
    flat = _flat()["y"].to_numpy()
    cv = [_guerrero(flat, 12, at=lam) for lam in (-1.0, 0.0, 1.0, 2.0)]
    assert max(cv) / min(cv) < 1.1
    assert swing_grows(flat, 12) is False
    y = _series(96)["y"].to_numpy()
    assert swing_grows(y[:23], 12) is False  # one whole season
    assert swing_grows(np.r_[y[:-1], 0.0], 12) is False
    assert swing_grows(np.r_[y[:-1], np.nan], 12) is False
    assert swing_grows(np.repeat([1.0, 2.0, 4.0, 8.0], 12), 12) is False  # steps


@pytest.mark.parametrize("shape", ["additive", "multiplicative", "flat"])
def test_auto_keeps_the_profile_only_where_the_swing_grows(shape) -> None:
    """auto: the networks keep the profile where the seasonal swing grows with the level
    (multiplicative), not beside a constant swing (additive, flat), with or without a
    validation stretch; true keeps it everywhere."""
    df = {"additive": _additive, "multiplicative": _series, "flat": _flat}[shape](96)
    for val in (24, 0):
        settings = {"horizon": 12, "window": 24, "val_size": val, **FAST, "max_epochs": 2}
        f = Forecaster(**settings).fit(df, target="y", time_col="month")
        on = float(shape == "multiplicative")
        assert [m.net.profile[2].item() for m in f.members] == [on] * 3
    forced = Forecaster(**settings, log_profile=True).fit(df, target="y", time_col="month")
    assert forced.net.net.profile[2].item() == 1.0


def test_auto_profile_and_settings_saved_before_it() -> None:
    cfg = ForecasterConfig()
    assert cfg.log_profile == "auto"
    assert (cfg.design(1).log_profile, cfg.design(2).log_profile) == (True, False)
    assert ForecasterConfig(method="recursive").design(1).log_profile is False
    assert ForecasterConfig(log_profile=False).design(1).log_profile is False
    old = cfg.to_dict()
    del old["log_profile"]
    assert ForecasterConfig.from_dict(old).log_profile is False


def test_cli_log_profile_reaches_the_saved_model(tmp_path: Path, capsys) -> None:
    """--log-profile true applies it (a horizon shorter than the season), false leaves the
    network without it; a bad value is one line and writes nothing."""
    from test_cli_forecast import run

    data = tmp_path / "shop.csv"
    _series().to_csv(data, index=False)
    base = ["forecast", str(data), "--target", "y", "--time-col", "month", "--horizon", "4",
            "--window", "12", "--max-epochs", "2", "--hidden-size", "8", "--ensemble", "1",
            "--no-progress"]  # fmt: skip
    for choice, on in (("true", True), ("false", False)):
        code, _, err = run(
            [*base, "--log-profile", choice, "--out", str(tmp_path / choice)], capsys
        )
        assert code == 0, err
        saved = Forecaster.load(tmp_path / choice / "model")
        assert saved.config.log_profile is on
        net = saved.net.net
        if on:  # 4 months of a 12-month season: auto would leave it off
            assert net.profile[2].item() == 1.0
        else:
            assert not hasattr(net, "log_linear")
    code, _, err = run([*base, "--log-profile", "maybe", "--out", str(tmp_path / "bad")], capsys)
    assert code == 2
    assert "'maybe' is not one of 'auto', 'true', 'false'" in err
    assert not (tmp_path / "bad").exists()


def test_the_profile_switch_holds_after_refit() -> None:
    """refit trains again without the validation stretch: the switch the first fit chose
    (off beside a constant swing, on where it grows) holds for the refitted networks."""
    settings = {"horizon": 12, "window": 24, "val_size": 24, **FAST, "max_epochs": 2}
    f = Forecaster(**settings, refit=True).fit(_additive(), target="y", time_col="month")
    assert f.design.log_profile is True and "refitted" in f.calibration_note
    assert [m.net.profile[2].item() for m in f.members] == [0.0] * 3
    kept = Forecaster(**settings, refit=True).fit(_series(96), target="y", time_col="month")
    assert [m.net.profile[2].item() for m in kept.members] == [1.0] * 3
