"""Non-negative data gets non-negative forecasts (``nonnegative``: auto, true, false).

The data: two series of 60 integer steps, fitted on the first 54. ``pos`` falls by 2 a
step from 108 to 2 and then stays at 0 (a count that ran out); ``neg`` falls by 2 a step
from -92 to -210. The fixed NLinear map under the network continues the fall, so the
unclipped forecast of ``pos`` after its training steps is 0, -2, ..., -10 (and -2 ...
-12 from the end of its history): below zero for certain. Under ``auto`` ``pos`` is
clipped at 0 (every training value >= 0) and ``neg`` is not (it has negative history);
the test checks the clipped forecasts against the unclipped model's, clipped by hand,
wherever forecasts leave the package: predict, predict_windows, evaluate, backtest, the
combination with a baseline, save/load, the ONNX runtime, the server and the CLI.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lstmkit import Forecaster, runtime
from lstmkit.data.series import load_series
from lstmkit.errors import LstmkitError
from lstmkit.tasks.forecasting import ForecasterConfig
from lstmkit.tasks.forecasting.state import FittedState, nonnegative_series

sys.path.insert(0, str(Path(__file__).parent))
from test_cli_forecast import TINY, run

N, CUT, H = 60, 54, 6
BANDS = ["forecast", "q10", "q50", "q90"]


def panel() -> pd.DataFrame:
    t = np.arange(N)
    pos = np.where(t < CUT, 2.0 * (CUT - t), 0.0)
    neg = 2.0 * (CUT - t) - 200.0
    return pd.concat(
        [pd.DataFrame({"id": k, "step": t, "y": v}) for k, v in (("pos", pos), ("neg", neg))],
        ignore_index=True,
    )


COLUMNS = {"target": "y", "time_col": "step", "id_col": "id"}


def fit(nonnegative: bool | str = "auto", **settings) -> Forecaster:
    f = Forecaster(
        horizon=H, window=12, hidden_size=4, max_epochs=3, progress=False, seed=0,
        residual="nlinear-fixed", instance_norm="last", nonnegative=nonnegative, **settings,
    )  # fmt: skip
    df = panel()
    return f.fit(df[df["step"] < CUT], **COLUMNS)


@pytest.fixture(scope="module")
def models() -> dict[str, Forecaster]:
    return {"auto": fit("auto"), "false": fit(False), "true": fit(True)}


def rows(table: pd.DataFrame, sid: str) -> np.ndarray:
    return table.loc[table["id"] == sid, BANDS].to_numpy()


# ---------------------------------------------------------------- the parts, by hand
def test_clip_takes_the_listed_series_to_zero_and_keeps_quantiles_ordered() -> None:
    state = FittedState("y", None, "id", [], None, 4, nonnegative=["a"])
    # (series rows, steps, point + 3 ordered quantiles)
    values = np.array(
        [
            [[-1.0, -3.0, -1.0, 2.0], [5.0, 4.0, 5.0, 6.0]],  # a
            [[-1.0, -3.0, -1.0, 2.0], [np.nan, -2.0, -1.0, 0.5]],  # b: not listed
            [[-0.5, -9.0, -0.5, -0.1], [np.nan, 1.0, 2.0, 3.0]],  # a again
        ]
    )
    got = state.clip(["a", "b", "a"], values.copy())
    want = values.copy()
    want[0] = [[0.0, 0.0, 0.0, 2.0], [5.0, 4.0, 5.0, 6.0]]
    want[2] = [[0.0, 0.0, 0.0, 0.0], [np.nan, 1.0, 2.0, 3.0]]
    np.testing.assert_array_equal(got, want)
    assert (np.diff(got[..., 1:], axis=-1)[~np.isnan(got[..., 1:-1])] >= 0).all()
    every = FittedState("y", None, "id", [], None, 4, nonnegative=True)
    np.testing.assert_array_equal(every.clip(["b"], values[1:2].copy()),
                                  np.maximum(values[1:2], 0.0))  # fmt: skip
    none = FittedState("y", None, "id", [], None, 4)  # the default: as saved before
    np.testing.assert_array_equal(none.clip(["a"], values[:1].copy()), values[:1])


def test_auto_decides_series_by_series() -> None:
    df = panel()
    sd = load_series(df[df["step"] < CUT], **COLUMNS)
    assert nonnegative_series("auto", sd) == ["pos"]
    assert nonnegative_series(True, sd) is True and nonnegative_series(False, sd) is False
    only_pos = load_series(df[df["id"] == "pos"], **COLUMNS)  # zeros count as non-negative
    assert nonnegative_series("auto", only_pos) is True
    only_neg = load_series(df[df["id"] == "neg"], **COLUMNS)
    assert nonnegative_series("auto", only_neg) is False


def test_the_setting_is_checked() -> None:
    assert ForecasterConfig().nonnegative == "auto"
    with pytest.raises(LstmkitError, match="nonnegative"):
        ForecasterConfig(nonnegative="sometimes")


# ---------------------------------------------------------------- the forecaster
def test_predict_clips_the_non_negative_series_only(models) -> None:
    auto, off, on = (models[k] for k in ("auto", "false", "true"))
    assert auto.state.nonnegative == ["pos"] and off.state.nonnegative is False
    assert on.state.nonnegative is True
    want = off.predict()
    assert rows(want, "pos").min() < -5  # unclipped, the fall goes on below zero
    assert rows(want, "neg").max() < -150
    got = auto.predict()
    np.testing.assert_array_equal(rows(got, "pos"), np.maximum(rows(want, "pos"), 0.0))
    np.testing.assert_array_equal(rows(got, "neg"), rows(want, "neg"))  # negative history
    np.testing.assert_array_equal(rows(on.predict(), "neg"), 0.0)  # true: every series
    # from a history passed in, and for raw windows
    history = panel()[lambda d: d["step"] < 50]
    np.testing.assert_array_equal(
        rows(auto.predict(history), "pos"), np.maximum(rows(off.predict(history), "pos"), 0)
    )
    x = panel().query("id == 'pos'")["y"].to_numpy()[None, CUT - 12 : CUT, None]
    raw = off.predict_windows(x, "pos")
    assert raw.min() < -5
    np.testing.assert_array_equal(auto.predict_windows(x, "pos"), np.maximum(raw, 0.0))


def test_evaluate_and_backtest_score_the_clipped_forecast(models) -> None:
    auto, off = models["auto"], models["false"]
    ev, ev_off = auto.evaluate(panel()), off.evaluate(panel())
    assert rows(ev_off.forecasts, "pos").min() < -5
    np.testing.assert_array_equal(
        rows(ev.forecasts, "pos"), np.maximum(rows(ev_off.forecasts, "pos"), 0.0)
    )
    np.testing.assert_array_equal(rows(ev.forecasts, "neg"), rows(ev_off.forecasts, "neg"))
    # the actuals of pos are 0 there: the clipped forecast is exact, the unclipped is not
    fc = ev.forecasts
    mae = np.abs(fc["actual"] - fc["forecast"]).groupby(fc["id"]).mean().mean()
    assert ev.metrics.loc["lstmkit", "MAE"] == pytest.approx(mae)
    assert ev.metrics.loc["lstmkit", "MAE"] < ev_off.metrics.loc["lstmkit", "MAE"]
    bt = auto.backtest(panel(), folds=1, refit=False)
    assert bt.loc[bt["model"] == "lstmkit", "MAE"].item() == pytest.approx(mae)


def test_the_combination_is_clipped_after_mixing(models, tmp_path) -> None:
    """The NLinear baseline goes below zero with the fall; the mixture of the (clipped)
    network with it must be clipped again."""
    mixed = fit("auto", combine=True, baselines=["nlinear"])
    assert mixed.mixture is not None and mixed.mixture.baseline == "nlinear"
    table = mixed.predict(baselines=True)
    pos = table[table["id"] == "pos"]
    w = np.asarray(mixed.mixture.weights)
    unclipped = w * pos["lstmkit"].to_numpy() + (1 - w) * pos["nlinear"].to_numpy()
    assert unclipped.min() < -5  # without the clip after mixing, the test fails
    np.testing.assert_allclose(pos["forecast"], np.maximum(unclipped, 0.0), atol=1e-9)
    assert (pos[BANDS[1:]].to_numpy() >= 0).all()
    ev = mixed.evaluate(panel()).forecasts
    assert (rows(ev, "pos") >= 0).all() and ev.loc[ev["id"] == "pos", "nlinear"].min() < -5
    assert rows(ev, "neg").max() < -150
    # the exported combination mixes and clips alike
    from lstmkit import runtime

    got = runtime.load(mixed.export_onnx(tmp_path / "onnx")).predict()
    want = mixed.predict()
    assert (got.loc[got["id"] == "pos", "forecast"] >= 0).all()
    np.testing.assert_allclose(got["forecast"], want["forecast"], rtol=1e-5, atol=1e-4)


def test_save_and_load_keep_the_setting_and_old_models_stay_unclipped(models, tmp_path) -> None:
    auto = models["auto"]
    auto.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    saved = meta["config"]
    assert saved["forecaster"]["nonnegative"] == "auto"
    assert saved["data"]["nonnegative"] == ["pos"]
    back = Forecaster.load(tmp_path / "m")
    assert back.config.nonnegative == "auto" and back.state.nonnegative == ["pos"]
    pd.testing.assert_frame_equal(back.predict(), auto.predict())
    # a folder saved before the setting: it forecasts as it did then, unclipped
    del saved["forecaster"]["nonnegative"], saved["data"]["nonnegative"]
    (tmp_path / "m" / "config.json").write_text(json.dumps(meta))
    old = Forecaster.load(tmp_path / "m")
    assert old.config.nonnegative is False and old.state.nonnegative is False
    pd.testing.assert_frame_equal(old.predict(), models["false"].predict())


def test_the_onnx_runtime_clips_as_the_forecaster_does(models, tmp_path) -> None:
    auto = models["auto"]
    auto.export_onnx(tmp_path / "onnx")
    meta = json.loads((tmp_path / "onnx" / "export.json").read_text())
    assert meta["data"]["nonnegative"] == ["pos"]
    pred = runtime.load(tmp_path / "onnx")
    for data in (None, panel()[lambda d: d["step"] < 50]):
        want, got = auto.predict(data), pred.predict(data)
        np.testing.assert_allclose(got[BANDS], want[BANDS], rtol=1e-5, atol=1e-4)
        assert (rows(got, "pos") >= 0).all() and rows(got, "neg").max() < -150
        assert rows(models["false"].predict(data), "pos").min() < 0


def test_the_server_answers_clipped(models, tmp_path) -> None:
    from fastapi.testclient import TestClient

    from lstmkit.serving.app import create_app

    models["auto"].save(tmp_path / "m")
    with TestClient(create_app(tmp_path / "m")) as client:
        got = client.post("/predict")
        assert got.status_code == 200, got.text
    answer = pd.DataFrame(got.json()["forecast"])
    want = models["auto"].predict()
    np.testing.assert_allclose(answer[BANDS].to_numpy(), want[BANDS].to_numpy(), rtol=1e-6)
    assert (rows(answer, "pos") >= 0).all()


# ---------------------------------------------------------------- the command line
@pytest.mark.parametrize(("flag", "clipped"), [([], True), (["--nonnegative", "false"], False)])
def test_cli_option(tmp_path, capsys, flag, clipped) -> None:
    data = tmp_path / "pos.csv"
    panel().query("id == 'pos' and step < @CUT")[["step", "y"]].to_csv(data, index=False)
    out = tmp_path / "run"
    argv = ["forecast", str(data), "--target", "y", "--time-col", "step", "--horizon", str(H),
            "--window", "12", "--ensemble", "1", "--out", str(out), *TINY]  # fmt: skip
    code, _, err = run([*argv, *flag], capsys)
    assert code == 0, err
    future = pd.read_csv(out / "future.csv")[BANDS].to_numpy()
    config = json.loads((out / "model" / "config.json").read_text())["config"]
    assert config["forecaster"]["nonnegative"] == ("auto" if clipped else False)
    assert config["data"]["nonnegative"] is clipped
    if clipped:
        assert (future >= 0).all()
    else:
        assert future.min() < -5
    code, _, err = run([*argv, "--nonnegative", "sometimes"], capsys)
    assert code == 2 and "sometimes" in err
