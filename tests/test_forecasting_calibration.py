"""Split-conformal calibration of the quantile bands and the band metrics (SQL, WQL,
coverage, width): each against a hand computation, and end to end on many series where
the coverage on windows the model never saw must land near the nominal level."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from lstmkit import Forecaster, runtime
from lstmkit.data.scalers import SeriesScaler
from lstmkit.data.series import load_series
from lstmkit.errors import LstmkitError
from lstmkit.tasks.forecast_metrics import (
    band_metrics,
    mase,
    scaled_quantile_loss,
    weighted_quantile_loss,
)
from lstmkit.tasks.forecasting.calibration import (
    IN_SAMPLE_STRETCH,
    IN_SAMPLE_WINDOWS,
    apply_offsets,
    conformal_offsets,
    in_sample_offsets,
    training_windows,
)


def test_offsets_are_the_conformal_order_statistics_by_hand():
    # 9 windows, 1 step, levels 0.1 / 0.5 / 0.9; forecasts 0 so the scores are the actuals
    actual = np.arange(1.0, 10.0)[:, None]  # scores 1..9
    fc = np.zeros((9, 1, 4))
    off = conformal_offsets(fc, actual, [0.1, 0.5, 0.9])
    # ranks: floor(10*0.1)=1 -> 1; ceil(10*0.5)=5 -> 5; ceil(10*0.9)=9 -> 9
    np.testing.assert_array_equal(off, [[1.0, 5.0, 9.0]])
    # a shifted forecast shifts the scores: offsets move the other way
    fc[..., 1:] = 2.0
    np.testing.assert_array_equal(conformal_offsets(fc, actual, [0.1, 0.5, 0.9]), [[-1, 3, 7]])
    # ranks outside 1..n are clipped to the extremes
    off = conformal_offsets(np.zeros((3, 1, 3)), np.array([[3.0], [1.0], [2.0]]), [0.05, 0.99])
    np.testing.assert_array_equal(off, [[1.0, 3.0]])


def test_offsets_are_per_step_and_keep_the_quantiles_ordered():
    rng = np.random.default_rng(0)
    actual = np.stack([rng.normal(0, 1, 400), rng.normal(0, 5, 400)], 1)  # step 2 wider
    fc = np.zeros((400, 2, 3))
    off = conformal_offsets(fc, actual, [0.1, 0.9])
    assert off.shape == (2, 2)
    assert off[1, 1] - off[1, 0] > 3 * (off[0, 1] - off[0, 0])  # the band follows the step
    out = apply_offsets(fc, np.array([[1.0, -1.0], [0.0, 0.0]]))  # crossing shifts
    assert (np.diff(out[..., 1:], axis=-1) >= 0).all()
    assert apply_offsets(fc, None) is fc


def test_band_metrics_by_hand():
    a = np.array([1.0, 2.0, 4.0])
    q = np.array([[0.0, 2.0], [1.0, 3.0], [1.0, 3.0]])  # levels 0.2, 0.8
    levels = [0.2, 0.8]
    # pinball: step 1: (0.2*1, (0.8-1)*(1-2)=0.2); step 2: (0.2*1, 0.2*1);
    # step 3: (0.2*3, 0.8*1)
    losses = np.array([[0.2, 0.2], [0.2, 0.2], [0.6, 0.8]])
    history = np.array([0.0, 1.0, 3.0, 4.0])  # naive in-sample MAE = (1+2+1)/3
    got = band_metrics(a, q, levels, history, 1)
    assert got["SQL"] == pytest.approx(2 * losses.mean() / (4 / 3))
    assert got["WQL"] == pytest.approx(np.mean(2 * losses.sum(0) / 7.0))
    assert got["coverage"] == pytest.approx(2 / 3) and got["width"] == pytest.approx(2.0)
    # with the single level 0.5, SQL is MASE and WQL is the weighted absolute error
    f = np.array([1.5, 2.5, 3.0])
    assert scaled_quantile_loss(a, f[:, None], [0.5], history) == pytest.approx(mase(a, f, history))
    assert weighted_quantile_loss(a, f[:, None], [0.5]) == pytest.approx(2.0 / 7.0)
    with pytest.raises(LstmkitError, match="quantiles include NaN"):
        band_metrics(a, np.full((3, 2), np.nan), levels, history, 1)
    assert math.isnan(scaled_quantile_loss(a, q, levels, np.ones(5)))  # constant history


def _noise_panel(n_series: int, length: int, seed: int, noise_seed: int | None = None):
    """White noise around a level per series, its scale varying by series (both drawn
    with ``seed``; the noise with ``noise_seed``, default ``seed``)."""
    rng = np.random.default_rng(seed)
    noise = np.random.default_rng(seed if noise_seed is None else noise_seed)
    frames = []
    for i in range(n_series):
        level, scale = rng.uniform(20, 80), rng.uniform(1, 4)
        frames.append(
            pd.DataFrame(
                {
                    "id": f"s{i}",
                    "day": pd.date_range("2024-01-01", periods=length, freq="D"),
                    "y": level + scale * noise.standard_normal(length),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def panel_models():
    """The same tiny network trained for a few batches only (its band far from 80%) with
    and without calibration, on 80 noise series whose last 12 days validate."""
    df = _noise_panel(80, 70, seed=1)
    kw = dict(
        window=8, hidden_size=8, quantiles=[0.1, 0.5, 0.9], val_size=12, max_epochs=1,
        lr=1e-3, batch_size=64, batches_per_epoch=3, progress=False, seed=0,
    )  # fmt: skip
    models = {}
    for calibrate in (True, False):
        fc = Forecaster(horizon=6, calibrate=calibrate, **kw)
        fc.fit(df, target="y", time_col="day", id_col="id")
        models[calibrate] = fc
    return models


def test_calibrated_band_covers_the_nominal_share_of_new_windows(panel_models):
    cal, raw = panel_models[True], panel_models[False]
    assert cal.state.calibration is not None and raw.state.calibration is None
    assert np.asarray(cal.state.calibration).shape == (6, 3)
    # every window whose 6 steps lie in the last 12 days: 7 a series
    assert "calibrated on 560 validation windows" in cal.calibration_note
    # fresh data from the same process (same series levels and scales, new noise)
    new = _noise_panel(80, 70, seed=1, noise_seed=99)
    ev_cal = cal.evaluate(new)
    ev_raw = raw.evaluate(new)
    got = ev_cal.metrics.loc["lstmkit", "coverage"]
    assert 0.72 <= got <= 0.88, got  # 480 values: a binomial sd of 1.8 points around 80%
    assert ev_cal.coverage == pytest.approx(got)
    # the raw band of the barely trained network is far off; calibrated, it holds
    assert abs(ev_raw.metrics.loc["lstmkit", "coverage"] - 0.8) > 0.15
    # band metrics only for the model with quantiles; the baselines show n/a (NaN)
    assert set(ev_cal.metrics.columns) >= {"SQL", "WQL", "coverage", "width"}
    assert ev_cal.metrics.loc["naive", ["SQL", "coverage"]].isna().all()


def test_calibration_round_trips_and_the_runtime_applies_it(panel_models, tmp_path):
    cal = panel_models[True]
    cal.save(tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert np.allclose(saved["config"]["data"]["calibration"], cal.state.calibration)
    back = Forecaster.load(tmp_path / "m")
    want = cal.predict()
    pd.testing.assert_frame_equal(back.predict(), want)
    cal.export_onnx(tmp_path / "onnx")
    got = runtime.load(tmp_path / "onnx").predict()
    numbers = ["forecast", "q10", "q50", "q90"]
    np.testing.assert_allclose(got[numbers], want[numbers], rtol=1e-5, atol=1e-4)
    # the calibration is what makes the difference: the same network without it differs
    back.state.calibration = None
    assert not np.allclose(back.predict()[["q10", "q90"]], want[["q10", "q90"]])


def test_a_damaged_calibration_is_one_line(panel_models, tmp_path):
    panel_models[True].save(tmp_path / "m")
    path = tmp_path / "m" / "config.json"
    cfg = json.loads(path.read_text())
    for bad in ([[1.0, float("nan"), 2.0]], [[1.0], [1.0, 2.0]], "x", [[1.0, 2.0]]):
        cfg["config"]["data"]["calibration"] = bad
        path.write_text(json.dumps(cfg))
        with pytest.raises(LstmkitError) as info:
            Forecaster.load(tmp_path / "m").predict()
        assert "calibration" in str(info.value) and "\n" not in str(info.value)


def test_in_sample_offsets_by_hand():
    # 4 windows, 1 step; point 0.5, quantiles -1 / 0 / 1 (levels 0.1 / 0.5 / 0.9)
    fc = np.tile([0.5, -1.0, 0.0, 1.0], (4, 1))[:, None, :]
    actual = np.array([0.0, 2.0, -3.0, 0.5])[:, None]
    # symmetric scores max(q10 - y, y - q90): -1, 1, 2, -0.5; the band's level 0.8 takes
    # rank ceil(5 * 0.8) = 4 of the sorted -1, -0.5, 1, 2: c = 2 on both ends
    got = in_sample_offsets(fc, actual, [0.1, 0.5, 0.9], stretch=1.0)
    np.testing.assert_allclose(got, [[-2.0, 0.0, 2.0]])
    # stretch 1.5: each level's distance from the point forecast (shift included) grows by
    # half: q10 -1 - 2 - 0.5 = -3.5 -> -2 - 1.75; q50 -0.5 -> -0.25; q90 2.5 -> 2 + 1.25
    got = in_sample_offsets(fc, actual, [0.1, 0.5, 0.9], stretch=1.5)
    np.testing.assert_allclose(got, [[-3.75, -0.25, 3.25]])
    # a level without its partner takes the one-sided conformal shift (0.8: rank
    # ceil(5 * 0.8) = 4 of the scores y - 1: -4, -1, -0.5, 1 -> 1); 0.1 pairs with nothing
    # either: floor(5 * 0.1) = 0, clipped to rank 1 of y + 1: -2, 1, 1.5, 3 -> -2
    got = in_sample_offsets(fc, actual, [0.1, 0.5, 0.8], stretch=1.0)
    np.testing.assert_allclose(got, [[-2.0, 0.0, 1.0]])
    assert IN_SAMPLE_STRETCH > 1.0  # the default widens: in-sample errors are too small


def _single(length: int, val_size: int) -> tuple[Forecaster, np.ndarray]:
    """A tiny one-network model of one noisy seasonal series (horizon 4, window 8) and
    the series."""
    rng = np.random.default_rng(5)
    t = np.arange(length)
    df = pd.DataFrame({"y": 50 + 5 * np.sin(t / 2) + rng.standard_normal(length)})
    f = Forecaster(
        horizon=4, window=8, val_size=val_size, hidden_size=4, max_epochs=2, ensemble=1,
        quantiles=[0.1, 0.5, 0.9], progress=False, seed=0,
    )  # fmt: skip
    f.fit(df)
    return f, df["y"].to_numpy()


def _cut_windows(
    f: Forecaster, values: np.ndarray, origins: range
) -> tuple[np.ndarray, np.ndarray]:
    """The scaled forecasts and actuals of the windows of ``values`` at ``origins``, cut
    by hand."""
    shift, scale = f.scaler.stacked(list(f.scaler.params))
    y = (values - shift[0, 0]) / scale[0, 0]
    x = np.stack([y[o : o + 8] for o in origins])[:, :, None].astype(np.float32)
    target = np.stack([y[o + 8 : o + 12] for o in origins])
    fc = np.asarray(f._forecast_scaled(x), dtype=np.float64)
    fc[..., 1:] = np.sort(fc[..., 1:], axis=-1)
    return fc, target


def test_a_single_series_calibrates_on_validation_or_training_windows_or_not_at_all():
    levels = [0.1, 0.5, 0.9]
    # 60 steps, the last 24 validate: origins 36 - 8 = 28 .. 60 - 12 = 48, 21 windows
    f, values = _single(60, val_size=24)
    assert f.calibration_note == "bands calibrated on 21 validation windows"
    fc, y = _cut_windows(f, values, range(28, 49))
    np.testing.assert_allclose(f.state.calibration, conformal_offsets(fc, y, levels), atol=1e-6)
    # 40 steps, the last 4 validate: one validation window; the training windows have
    # their horizon in the first 36 steps: origins 0 .. 24, 25 windows
    f, values = _single(40, val_size=4)
    assert f.calibration_note == (
        "bands calibrated on 25 training windows, widened by 1.2 (in-sample errors; "
        "1 validation window with a whole horizon, fewer than 20)"
    )
    fc, y = _cut_windows(f, values, range(0, 25))
    np.testing.assert_allclose(f.state.calibration, in_sample_offsets(fc, y, levels), atol=1e-6)
    lo, hi = np.asarray(f.state.calibration)[:, [0, 2]].T
    assert (lo < 0).all() and (hi > 0).all()  # widened at every step
    raw = f.predict()
    f.state.calibration = None
    plain = f.predict()
    assert ((raw["q90"] - raw["q10"]) > (plain["q90"] - plain["q10"])).all()
    # 30 steps: one validation window and 15 training windows, too few for either
    f, _ = _single(30, val_size=4)
    assert f.state.calibration is None
    assert f.calibration_note == (
        "bands not calibrated: 1 validation window with a whole horizon, fewer than 20, "
        "and 15 training windows (a longer validation stretch or more series)"
    )


def test_training_windows_are_the_latest_before_the_validation_part():
    # 300 steps, the last 4 validate, window 8, horizon 4: whole horizons before step 296
    # from origins 0 .. 284; the latest IN_SAMPLE_WINDOWS (200) of them, origins 85 .. 284
    values = np.arange(300.0) ** 1.5
    sd = load_series(pd.DataFrame({"y": values}))
    scaler = SeriesScaler("none")
    scaler.fit_series(next(iter(sd.series)), values[:, None])
    x, fut, y = training_windows(sd, scaler, 8, 4, 4, [])
    assert IN_SAMPLE_WINDOWS == 200 and fut is None and len(x) == 200
    want = np.stack([values[o : o + 12] for o in range(85, 285)]).astype(np.float32)
    np.testing.assert_array_equal(x[:, :, 0], want[:, :8])
    np.testing.assert_array_equal(y, want[:, 8:])
    # a short series gives every window it has: 30 steps less 4, origins 0 .. 14
    sd = load_series(pd.DataFrame({"y": values[:30]}))
    assert len(training_windows(sd, scaler, 8, 4, 4, [])[0]) == 15


def test_too_few_validation_windows_leave_the_band_as_trained():
    # 3 series of 20 days, the last 6 validate: 1 validation and 1 training window each
    df = _noise_panel(3, 20, seed=2)
    fc = Forecaster(horizon=6, window=8, hidden_size=4, val_size=6, max_epochs=1, progress=False)
    fc.fit(df, target="y", time_col="day", id_col="id")
    assert fc.state.calibration is None
    assert fc.calibration_note.startswith(
        "bands not calibrated: 3 validation windows with a whole horizon, fewer than 20, "
        "and 3 training windows"
    )
    # 70 days: 3 validation windows, but 3 x 51 training windows to calibrate on
    df = _noise_panel(3, 70, seed=2)
    fc = Forecaster(horizon=6, window=8, hidden_size=4, val_size=6, max_epochs=1, progress=False)
    fc.fit(df, target="y", time_col="day", id_col="id")
    assert np.asarray(fc.state.calibration).shape == (6, 3)
    assert fc.calibration_note.startswith("bands calibrated on 153 training windows")
    fc = Forecaster(horizon=6, window=8, hidden_size=4, val_size=0, max_epochs=1,
                    progress=False)  # fmt: skip
    fc.fit(df, target="y", time_col="day", id_col="id")
    assert "no validation stretch" in fc.calibration_note
    fc = Forecaster(horizon=6, window=8, hidden_size=4, quantiles=None, max_epochs=1,
                    progress=False)  # fmt: skip
    fc.fit(df, target="y", time_col="day", id_col="id")
    assert fc.calibration_note is None and fc.state.calibration is None


def test_refit_keeps_the_validation_shifts_with_networks_trained_on_every_step(tmp_path):
    # refit: the shifts of a fit with the validation stretch, the networks and scaling of
    # a fit without one (val_size 0), each checked against that fit made on its own
    df = _noise_panel(40, 70, seed=1)
    kw = dict(
        horizon=6, window=8, hidden_size=8, quantiles=[0.1, 0.5, 0.9], max_epochs=1, lr=1e-3,
        batch_size=64, batches_per_epoch=3, progress=False, seed=0, ensemble=2, val_size=12,
    )  # fmt: skip
    fits = {}
    for name, extra in {"refit": {"refit": True}, "val": {}, "all": {"val_size": 0}}.items():
        fits[name] = Forecaster(**(kw | extra))
        fits[name].fit(df, target="y", time_col="day", id_col="id")
    refit, val, full = fits["refit"], fits["val"], fits["all"]
    assert val.state.calibration is not None and full.state.calibration is None
    np.testing.assert_array_equal(refit.state.calibration, val.state.calibration)
    refitted = f"{val.calibration_note}; networks refitted on the whole series"
    assert refit.calibration_note == refitted
    assert refit.scaler.params == full.scaler.params != val.scaler.params
    assert refit.baselines.to_bytes() == full.baselines.to_bytes()  # fitted once, by that fit
    assert len(refit.members) == 2
    for got, want, other in zip(refit.members, full.members, val.members, strict=True):
        for key, weight in got.state_dict().items():
            torch.testing.assert_close(weight, want.state_dict()[key], rtol=0, atol=0)
        assert any(not torch.equal(w, other.state_dict()[k]) for k, w in got.state_dict().items())
    # forecasts: the fit on every step with the validation shifts applied
    full.state.calibration = val.state.calibration
    want = full.predict()
    pd.testing.assert_frame_equal(refit.predict(), want)
    refit.save(tmp_path / "m")
    back = Forecaster.load(tmp_path / "m")
    assert back.config.refit is True
    pd.testing.assert_frame_equal(back.predict(), want)


def test_refit_needs_a_validation_stretch_and_refuses_what_uses_it(tmp_path):
    for settings, message in (
        ({"val_size": 0}, "refit calibrates on the validation stretch before training again"),
        ({"combine": True}, "refit and combine cannot go together"),
        ({"checkpoint_dir": str(tmp_path / "ck")}, "refit cannot resume from a checkpoint"),
    ):
        with pytest.raises(LstmkitError, match=message) as info:
            Forecaster(horizon=6, refit=True, **settings)
        assert "\n" not in str(info.value)
    assert not (tmp_path / "ck").exists()
    df = _noise_panel(3, 70, seed=2)
    from lstmkit.data.series import load_series
    from lstmkit.tasks.forecasting.tuning import tune

    sd = load_series(df, "y", time_col="day", id_col="id")
    with pytest.raises(LstmkitError, match="tune without --refit"):
        tune(Forecaster(horizon=6, refit=True, progress=False), sd, 2)


def test_band_holds_point_by_hand():
    """Levels below 0.5 come down to the point, levels above go up to it, 0.5 stays."""
    from lstmkit.tasks.forecasting.predict import band_holds_point

    out = np.array([[[5.0, 6.0, 7.0, 8.0], [5.0, 1.0, 2.0, 3.0], [5.0, 4.0, 5.5, 6.0]]])
    got = band_holds_point(out, [0.1, 0.5, 0.9])
    want = [[[5.0, 5.0, 7.0, 8.0], [5.0, 1.0, 2.0, 5.0], [5.0, 4.0, 5.5, 6.0]]]
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(out[0, 0], [5.0, 6.0, 7.0, 8.0])  # not changed in place
    nan = np.array([[[np.nan, 1.0, 2.0, 3.0]]])
    np.testing.assert_array_equal(band_holds_point(nan, [0.1, 0.5, 0.9])[..., 1:], [[[1, 2, 3]]])
    assert band_holds_point(out, None) is out
    # levels in another order, and two on each side: each channel by its own level
    flipped = band_holds_point(out[..., [0, 3, 2, 1]], [0.9, 0.5, 0.1])
    np.testing.assert_array_equal(flipped[..., [0, 3, 2, 1]], want)
    four = band_holds_point(np.array([[[5.0, 6.0, 7.0, 1.0, 2.0]]]), [0.05, 0.1, 0.9, 0.95])
    np.testing.assert_array_equal(four, [[[5.0, 5.0, 5.0, 5.0, 5.0]]])


@pytest.mark.parametrize("shift", [-30.0, 30.0])
def test_a_point_forecast_outside_its_band_widens_the_band(shift: float, monkeypatch):
    """A network whose point channel lies far below (above) its quantiles: the forecast
    table's lower (upper) quantile is the point itself; the point and the other quantiles
    are the network's, as the table without the rule has them."""
    import lstmkit.tasks.forecasting.predict as predict

    f, _ = _single(120, 12)
    with torch.no_grad():
        f.net.net.head.bias.view(f.net.net.steps, -1)[:, 0] += shift
    fc = f.predict()
    assert (fc["q10"] <= fc["forecast"]).all() and (fc["forecast"] <= fc["q90"]).all()
    moved, kept = ("q10", "q90") if shift < 0 else ("q90", "q10")
    np.testing.assert_array_equal(fc[moved], fc["forecast"])
    monkeypatch.setattr(predict, "band_holds_point", lambda out, levels: out)
    f._memo = type(f._memo)()
    before = f.predict()
    assert ((before["forecast"] < before["q10"]) | (before["forecast"] > before["q90"])).all()
    for col in ("forecast", "q50", kept):
        np.testing.assert_allclose(fc[col], before[col], rtol=1e-12)
