"""Left-padded windows with a mask input (``pad``) and training on the recent windows only
(``recent``): issue 17's M4 Weekly design, checked against windows built by hand."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lstmkit import Forecaster
from lstmkit.errors import LstmkitError
from lstmkit.tasks.forecasting import ForecastModule, ForecastNet
from lstmkit.tasks.forecasting.data import ForecastData, use_padding
from lstmkit.tasks.forecasting.module import _instance_stats, fill_padding
from lstmkit.tasks.forecasting.predict import last_windows
from lstmkit.tasks.forecasting.settings import ForecasterConfig

FAST = {"hidden_size": 8, "max_epochs": 2, "batches_per_epoch": 3, "progress": False}
LENGTHS = {"short": 14, "mid": 40, "long": 90}


def _panel(lengths: dict[str, int] = LENGTHS) -> pd.DataFrame:
    """Weekly positive series of the given lengths, each with its own level."""
    rng = np.random.default_rng(0)
    parts = []
    for k, (sid, n) in enumerate(lengths.items()):
        t = np.arange(n)
        y = 20 + 5 * k + np.sin(2 * np.pi * t / 6) + rng.normal(0, 0.1, n)
        weeks = pd.date_range("2000-01-03", periods=n, freq="W-MON")
        parts.append(pd.DataFrame({"id": sid, "week": weeks, "y": y}))
    return pd.concat(parts, ignore_index=True)


def _data(df: pd.DataFrame, **settings) -> ForecastData:
    from lstmkit.data.series import load_series

    sd = load_series(df, "y", time_col="week", id_col="id" if "id" in df else None)
    cfg = ForecasterConfig(**{"scaler": "none", **settings})
    data = ForecastData(sd, cfg)
    data.setup("fit")
    return data


# ---------------------------------------------------------------- the padded window
def test_last_windows_pad_short_histories_with_nan_rows() -> None:
    short = np.array([[1.0, 10.0], [2.0, 20.0]])
    long = np.arange(12.0).reshape(6, 2)
    got = last_windows([short, long], 4)
    want = np.array([
        [[np.nan, np.nan], [np.nan, np.nan], [1.0, 10.0], [2.0, 20.0]],
        long[-4:],
    ])  # fmt: skip
    np.testing.assert_array_equal(got, want)


def test_fill_padding_repeats_the_first_real_row_and_masks_exactly_the_real_rows() -> None:
    nan = float("nan")
    whole = [[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0], [5.0, 50.0]]
    x = torch.tensor([[[nan, nan], [nan, nan], *whole[2:]], whole])
    filled, mask = fill_padding(x)
    want = torch.tensor([[[3.0, 30.0], [3.0, 30.0], [3.0, 30.0], [4.0, 40.0], [5.0, 50.0]],
                         whole])  # fmt: skip
    torch.testing.assert_close(filled, want)
    torch.testing.assert_close(mask[..., 0], torch.tensor([[0.0, 0, 1, 1, 1], [1.0, 1, 1, 1, 1]]))


@pytest.mark.parametrize("how", ["mean", "last"])
def test_padded_window_normalises_and_forecasts_as_its_real_part(how: str) -> None:
    """A masked network's instance statistics ignore the padding: a padded window is
    normalised by the statistics of its real rows alone, and the network reads the
    filled window plus the mask column (recomputed here from its layers)."""
    torch.manual_seed(0)
    net = ForecastNet(1, window=6, steps=2, n_outputs=1, hidden_size=4, mask=True).eval()
    assert net.rnn.input_size == 2  # the target and the mask
    module = ForecastModule(net, how, None).eval()
    real = torch.tensor([5.0, 7.0, 6.0, 9.0])
    x = torch.cat([torch.full((2,), float("nan")), real]).view(1, 6, 1)
    centre, spread = _instance_stats(real.view(1, 4, 1), how)
    filled = torch.cat([real[:1].repeat(2), real]).view(1, 6, 1)
    xn = (filled - centre) / spread
    inputs = torch.cat([xn, torch.tensor([0.0, 0, 1, 1, 1, 1]).view(1, 6, 1)], dim=2)
    with torch.no_grad():
        want = net(inputs) * spread + centre
        torch.testing.assert_close(module(x), want)


# ---------------------------------------------------------------- training windows
def test_padded_training_windows_equal_hand_built_ones() -> None:
    """window 12 over a 14-row series: every training input keeps a horizon (3) of real
    rows, the rest padded; the windows are exactly those cut by hand from the series."""
    df = _panel()
    data = _data(df, horizon=3, window=12, val_size=3, pad=True)
    assert data.state.pad and data.window == 12 and data.val == 3
    ts = data.train_set
    y = df.loc[df["id"] == "short", "y"].to_numpy()
    n_train = 14 - 3
    # targets start at 3 .. n_train - 3 (at least 3 real inputs before them)
    cuts = list(range(3, n_train - 3 + 1))
    assert ts.ends[0] == len(cuts)
    x, target = ts.cut(range(len(cuts)))
    for k, c in enumerate(cuts):
        want = last_windows([y[:c, None]], 12)[0, :, 0]
        np.testing.assert_array_equal(x[k, :, 0].numpy(), want.astype(np.float32))
        np.testing.assert_array_equal(target[k].numpy(), y[c : c + 3].astype(np.float32))
        assert int((~np.isnan(x[k, :, 0].numpy())).sum()) == min(c, 12) >= 3


def test_recent_draws_only_targets_from_the_last_horizons_of_the_training_part() -> None:
    df = _panel()
    h, recent, val = 3, 2, 3
    every = _data(df, horizon=h, window=12, val_size=val, pad=True)
    data = _data(df, horizon=h, window=12, val_size=val, pad=True, recent=recent)
    counts = np.diff(np.concatenate([[0], data.train_set.ends]))
    # recent * h possible target starts, each with a whole horizon in the training part
    assert counts.tolist() == [recent * h - h + 1] * 3
    for k, sid in enumerate(LENGTHS):
        y = df.loc[df["id"] == sid, "y"].to_numpy()
        n_train = len(y) - val
        first = 0 if k == 0 else int(data.train_set.ends[k - 1])
        x, target = data.train_set.cut(range(first, int(data.train_set.ends[k])))
        starts = [n_train - recent * h + j for j in range(counts[k])]
        for row, c in enumerate(starts):
            np.testing.assert_array_equal(target[row].numpy(), y[c : c + h].astype(np.float32))
            np.testing.assert_array_equal(
                x[row, :, 0].numpy(), last_windows([y[:c, None]], 12)[0, :, 0].astype(np.float32)
            )
        assert starts[0] >= n_train - recent * h and starts[-1] + h == n_train
    # the recent windows are the last ones of the full set, series by series
    assert len(every.train_set) > len(data.train_set)
    # validation windows are not restricted
    assert len(every.val_set) == len(data.val_set)


def test_auto_padding_keys_on_the_data_and_one_series_keeps_its_window() -> None:
    from lstmkit.data.series import load_series

    panel = load_series(_panel(), "y", time_col="week", id_col="id")
    assert not use_padding(ForecasterConfig(horizon=3, season=12), panel)  # off by default
    cfg = ForecasterConfig(horizon=3, season=12, pad="auto")
    assert use_padding(cfg, panel)  # 14 rows cannot hold two seasons (24)
    assert _data(_panel(), horizon=3, season=12, pad="auto").window == 24
    # long enough for the preferred window: no padding
    roomy = load_series(_panel({"a": 90, "b": 100}), "y", time_col="week", id_col="id")
    assert not use_padding(cfg, roomy)
    # one series (AirPassengers' case) keeps the window it holds, unpadded
    one = load_series(_panel({"a": 40}).drop(columns="id"), "y", time_col="week")
    assert not use_padding(cfg, one)
    single = _data(_panel({"a": 40}).drop(columns="id"), horizon=3, season=12, pad="auto")
    # shortened to fit: two training windows per input step, (40 - 3 - 3 + 1) // 3
    assert not single.state.pad and single.window == 11
    # a window set by hand: padded only where the shortest cannot hold it, its horizon
    # and its validation part (14 - 3 < 10 + 3), not merely for want of many windows
    assert use_padding(ForecasterConfig(horizon=3, window=10, pad="auto"), panel)
    assert not use_padding(ForecasterConfig(horizon=3, window=8, pad="auto"), panel)  # 11 >= 11
    assert not use_padding(
        ForecasterConfig(horizon=3, season=12, residual="nlinear", pad="auto"), panel
    )
    assert not use_padding(ForecasterConfig(horizon=3, season=12, pad=False), panel)


def test_pad_false_refuses_a_series_too_short_for_the_window() -> None:
    with pytest.raises(LstmkitError, match="'short' has 14 rows"):
        _data(_panel(), horizon=3, window=24, pad=False)
    with pytest.raises(LstmkitError, match="pad and residual cannot go together"):
        ForecasterConfig(pad=True, residual="nlinear")


# ---------------------------------------------------------------- the fitted model
def test_padded_model_forecasts_saves_loads_and_exports(tmp_path: Path) -> None:
    from lstmkit import runtime

    df = _panel()
    f = Forecaster(horizon=3, season=12, recent=4, pad="auto", **FAST)
    f.fit(df, target="y", time_col="week", id_col="id")
    assert f.state.pad and f.state.window == 24
    assert len(f.context["short"]["values"]) == 14  # all its rows, unpadded
    pred = f.predict()
    # the stored context forecasts as the padded window built by hand
    y = df.loc[df["id"] == "short", ["y"]].to_numpy()
    by_hand = f.predict_windows(last_windows([y], 24), "short")[0]
    got = pred.loc[pred["id"] == "short", ["forecast", "q10", "q50", "q90"]].to_numpy()
    np.testing.assert_allclose(got, by_hand, rtol=1e-6)
    # a history shorter than the window forecasts too
    assert len(f.predict(df[df["id"] == "short"].iloc[:5])) == 3
    f.save(tmp_path / "m")
    g = Forecaster.load(tmp_path / "m")
    assert (g.config.pad, g.config.recent, g.state.pad) == ("auto", 4, True)
    np.testing.assert_allclose(g.predict()["forecast"], pred["forecast"], rtol=1e-6)
    f.export_onnx(tmp_path / "onnx")
    served = runtime.load(tmp_path / "onnx").predict()
    np.testing.assert_allclose(served["forecast"], pred["forecast"], rtol=1e-4)


def test_an_unpadded_model_still_refuses_short_histories() -> None:
    df = _panel({"a": 90, "b": 100})
    f = Forecaster(horizon=3, season=12, **FAST)
    f.fit(df, target="y", time_col="week", id_col="id")
    assert not f.state.pad
    with pytest.raises(LstmkitError, match="needs the last 24"):
        f.predict(df[df["id"] == "a"].iloc[:10])
    windows = last_windows([df[["y"]].to_numpy()[:10]], 24)
    with pytest.raises(LstmkitError, match="NaN"):
        f.predict_windows(windows, "a")


def test_cli_pad_and_recent_reach_the_saved_model(tmp_path: Path, capsys) -> None:
    from test_cli_forecast import run

    data = tmp_path / "weekly.csv"
    _panel().to_csv(data, index=False)
    out = tmp_path / "run"
    argv = ["forecast", str(data), "--target", "y", "--time-col", "week", "--id-col", "id",
            "--horizon", "3", "--season", "12", "--pad", "true", "--recent", "4",
            "--max-epochs", "1", "--hidden-size", "8", "--no-progress"]  # fmt: skip
    code, _, err = run([*argv, "--out", str(out)], capsys)
    assert code == 0, err
    saved = Forecaster.load(out / "model")
    assert (saved.config.pad, saved.config.recent, saved.state.pad) == (True, 4, True)
    code, _, err = run([*argv, "--out", str(tmp_path / "bad"), "--recent", "0"], capsys)
    assert code == 2 and "recent" in err
    assert not (tmp_path / "bad").exists()


def test_served_padded_model_takes_a_history_shorter_than_the_window(tmp_path: Path) -> None:
    """The server (torch and ONNX backends) tells a client a padded model needs one row and
    forecasts a 5-row history (window 24) as the model does."""
    from fastapi.testclient import TestClient

    from lstmkit.export import export_model
    from lstmkit.serving.app import create_app

    df = _panel()
    f = Forecaster(horizon=3, season=12, pad=True, **FAST)
    f.fit(df, target="y", time_col="week", id_col="id")
    f.save(tmp_path / "fc")
    export_model(tmp_path / "fc")
    history = df[df["id"] == "short"].iloc[:5]
    want = f.predict(history)
    records = [{**r, "week": str(r["week"].date())} for r in history.to_dict("records")]
    for backend in ("torch", "onnx"):
        with TestClient(create_app(tmp_path / "fc", backend=backend)) as client:
            info = client.get("/model").json()
            assert (info["window"], info["min_rows"]) == (24, 1)
            got = client.post("/predict", json={"history": records})
            assert got.status_code == 200, got.text
            rows = got.json()["forecast"]
            np.testing.assert_allclose([r["forecast"] for r in rows], want["forecast"], rtol=1e-4)


def test_padded_model_calibrates_on_the_validation_windows_of_short_series_too() -> None:
    """A padded model's calibration windows are padded as its training windows are: the
    14-row series, shorter than window 12 + the last 6 steps, has validation windows
    too, each the series' real rows left-padded with NaN as cut by hand."""
    from lstmkit.tasks.forecasting.calibration import validation_windows

    data = _data(_panel(), horizon=3, window=12, val_size=6, pad=True)
    args = (data.sd, data.scaler, 12, 3, 6, [])
    # whole windows only: 4 origins each for mid and long (horizons inside the last 6)
    _, _, _, ids = validation_windows(*args, with_ids=True)
    assert list(ids) == ["mid"] * 4 + ["long"] * 4
    x, fut, target, ids = validation_windows(*args, with_ids=True, pad=12 - 3)
    assert fut is None and list(ids) == ["short"] * 4 + ["mid"] * 4 + ["long"] * 4
    y = _panel().query("id == 'short'")["y"].to_numpy()
    for k, c in enumerate(range(8, 12)):  # forecast origins 8..11 of the 14 rows
        want = last_windows([y[:c, None]], 12)[0, :, 0]
        np.testing.assert_array_equal(x[k, :, 0], want.astype(np.float32))
        np.testing.assert_array_equal(target[k], y[c : c + 3].astype(np.float32))
    # the forecaster counts them (20 are needed to calibrate on them); with fewer it
    # calibrates on the padded training windows: rows before the last 6, padded by 9,
    # less window and horizon, + 1: short 8+9-15+1 = 3, mid 34+9-15+1 = 29, long 79
    f = Forecaster(horizon=3, window=12, val_size=6, pad=True, **FAST)
    f.fit(_panel(), target="y", time_col="week", id_col="id")
    assert f.calibration_note.startswith("bands calibrated on 111 training windows")
    assert "12 validation windows with a whole horizon" in f.calibration_note
