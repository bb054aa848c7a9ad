"""Forecaster: fit/predict/evaluate/backtest/save/load, strategies, normalisation, metrics."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lstmkit import Forecaster
from lstmkit.data.series import SeriesData, load_series
from lstmkit.errors import LstmkitError
from lstmkit.tasks import forecast_metrics as fm
from lstmkit.tasks.forecasting import ForecasterConfig, ForecastModule, ForecastNet, pinball_loss

FAST = {"hidden_size": 8, "max_epochs": 25, "lr": 1e-2, "progress": False}


def _series(n: int = 60, level: float = 50.0) -> pd.DataFrame:
    t = np.arange(n)
    return pd.DataFrame(
        {
            "month": pd.date_range("2000-01-01", periods=n, freq="MS"),
            "y": level + 0.5 * t + 10 * np.sin(2 * np.pi * t / 12),
        }
    )


@pytest.fixture(scope="module")
def fitted() -> tuple[Forecaster, pd.DataFrame]:
    df = _series()
    f = Forecaster(horizon=6, window=12, quantiles=[0.1, 0.5, 0.9], **FAST)
    return f.fit(df.iloc[:-6], target="y", time_col="month"), df


# ---------------------------------------------------------------- metrics and baselines
def test_metrics_against_hand_values() -> None:
    a, f = np.array([100.0, 200.0, 0.0]), np.array([110.0, 180.0, 5.0])
    assert fm.mae(a, f) == pytest.approx((10 + 20 + 5) / 3)
    assert fm.rmse(a, f) == pytest.approx(np.sqrt((100 + 400 + 25) / 3))
    assert fm.mape(a, f) == pytest.approx(100 * (0.1 + 0.1) / 2)  # zero actual skipped
    assert fm.smape(a, f) == pytest.approx(100 * (20 / 210 + 40 / 380 + 10 / 5) / 3)
    hist = np.array([1.0, 2.0, 4.0, 7.0])  # naive in-sample MAE = (1 + 2 + 3) / 3 = 2
    assert fm.mase(a, f, hist) == pytest.approx(fm.mae(a, f) / 2)
    assert fm.mase(a, f, hist, season=2) == pytest.approx(fm.mae(a, f) / ((3 + 5) / 2))
    with pytest.raises(ValueError, match="same shape"):
        fm.mae(a, f[:2])


def test_baselines() -> None:
    h = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert fm.naive_forecast(h, 3).tolist() == [5.0, 5.0, 5.0]
    assert fm.seasonal_naive_forecast(h, 5, season=2).tolist() == [4.0, 5.0, 4.0, 5.0, 4.0]


def test_pinball_loss_by_hand() -> None:
    pred = torch.tensor([[[1.0, 2.0]]])  # one step, quantiles 0.1 and 0.9
    y = torch.tensor([[1.5]])
    q = torch.tensor([0.1, 0.9])
    # q=0.1: y above pred by 0.5 -> 0.1*0.5; q=0.9: y below pred by 0.5 -> 0.1*0.5
    assert float(pinball_loss(pred, y, q)) == pytest.approx((0.05 + 0.05) / 2)


# ---------------------------------------------------------------- the model
def test_instance_norm_is_reversible_and_equivariant() -> None:
    torch.manual_seed(0)
    net = ForecastNet(1, window=10, steps=4, n_outputs=3, hidden_size=6)
    module = ForecastModule(net, instance_norm=True, quantiles=[0.1, 0.9]).eval()
    x = torch.randn(3, 10, 1)
    with torch.no_grad():
        base = module(x)
        shifted = module(5.0 * x + 7.0)
    # the network sees the same normalised window, so the forecast follows the window
    torch.testing.assert_close(shifted, 5.0 * base + 7.0, rtol=1e-4, atol=1e-4)

    # covariates (here feature 2 is also known over the horizon) are centred per window:
    # shifting a covariate's level over the window and horizon changes nothing
    net = ForecastNet(3, window=10, steps=4, n_outputs=1, hidden_size=6, n_future=1)
    module = ForecastModule(net, instance_norm=True, quantiles=None, future_columns=[2]).eval()
    x, fut = torch.randn(3, 10, 3), torch.randn(3, 4, 1)
    shift = torch.tensor([0.0, 4.0, -9.0])
    with torch.no_grad():
        torch.testing.assert_close(
            module(x + shift, fut - 9.0), module(x, fut), atol=1e-4, rtol=1e-4
        )


def test_fit_predict_evaluate(fitted) -> None:
    f, df = fitted
    assert f.fit_result is not None and f.fit_result.epochs_run >= 1
    pred = f.predict()
    assert list(pred.columns) == ["month", "forecast", "q10", "q50", "q90"]
    assert [str(t.date()) for t in pred["month"]] == [
        "2004-07-01", "2004-08-01", "2004-09-01", "2004-10-01", "2004-11-01", "2004-12-01",
    ]  # fmt: skip
    assert (pred["q10"] <= pred["q50"]).all() and (pred["q50"] <= pred["q90"]).all()

    ev = f.evaluate(df)
    assert list(ev.metrics.index) == ["lstmkit", "naive", "seasonal_naive"]
    assert ev.season == 12
    actual = df["y"].to_numpy()[-6:]
    hist = df["y"].to_numpy()[:-6]
    np.testing.assert_allclose(ev.forecasts["actual"], actual)
    # baselines and metrics recomputed independently
    naive_mae = np.mean(np.abs(actual - hist[-1]))
    snaive = hist[-12:][:6]
    assert ev.metrics.loc["naive", "MAE"] == pytest.approx(naive_mae)
    assert ev.metrics.loc["seasonal_naive", "MAPE"] == pytest.approx(
        100 * np.mean(np.abs(actual - snaive) / actual)
    )
    model_mae = np.mean(np.abs(actual - ev.forecasts["forecast"].to_numpy()))
    assert ev.metrics.loc["lstmkit", "MAE"] == pytest.approx(model_mae)
    assert ev.metrics.loc["lstmkit", "MAE"] < ev.metrics.loc["naive", "MAE"]
    inside = (ev.forecasts["q10"] <= actual) & (actual <= ev.forecasts["q90"])
    assert ev.coverage == pytest.approx(inside.mean())
    # the forecast from the data end equals predict() from the same history
    np.testing.assert_allclose(
        f.predict(df.iloc[:-6])["forecast"].to_numpy(), ev.forecasts["forecast"].to_numpy()
    )


def test_save_load_round_trip(fitted, tmp_path: Path) -> None:
    f, df = fitted
    path = f.save(tmp_path / "model")
    assert {p.name for p in path.iterdir()} >= {
        "config.json", "model.safetensors", "scaler.json", "context.json", "history.json",
    }  # fmt: skip
    g = Forecaster.load(path)
    assert g.config == f.config and g.state == f.state
    pd.testing.assert_frame_equal(g.predict(), f.predict())
    pd.testing.assert_frame_equal(g.predict(df), f.predict(df))
    assert g.fit_result is not None and g.fit_result.history == f.fit_result.history
    with pytest.raises(LstmkitError, match="expected a 'forecaster' model"):
        meta = json.loads((path / "config.json").read_text())
        meta["kind"] = "text_classifier"
        (path / "config.json").write_text(json.dumps(meta))
        Forecaster.load(path)


def test_a_folder_saved_with_the_old_names_loads(fitted, tmp_path: Path) -> None:
    """config.json written before the renames (``model`` for ``rnn``, ``progress_bar`` for
    ``progress``) loads, silently, into the new names."""
    import warnings

    f, _ = fitted
    path = f.save(tmp_path / "model")
    meta = json.loads((path / "config.json").read_text())
    saved = meta["config"]["forecaster"]
    saved["model"] = saved.pop("rnn")
    saved["train"]["progress_bar"] = saved["train"].pop("progress")
    (path / "config.json").write_text(json.dumps(meta))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = Forecaster.load(path)
    assert g.config.rnn == "lstm" and g.config.train.progress is False
    pd.testing.assert_frame_equal(g.predict(), f.predict())


def test_old_names_are_deprecated_aliases() -> None:
    with pytest.warns(FutureWarning, match="the setting model is deprecated; use rnn"):
        f = Forecaster(model="gru")
    assert f.config.rnn == "gru" and "model" not in f.config.to_dict()
    with pytest.warns(FutureWarning, match="progress_bar is deprecated; use progress"):
        assert Forecaster(progress_bar=False).config.train.progress is False
    with (
        pytest.raises(LstmkitError, match="model='gru' and rnn='lstm' name the same setting"),
        pytest.warns(FutureWarning),
    ):
        Forecaster(model="gru", rnn="lstm")
    with pytest.warns(FutureWarning, match="Forecaster.module is deprecated; use Forecaster.net"):
        assert Forecaster().module is None


def test_get_params_set_params_and_clone(fitted) -> None:
    f, _ = fitted
    params = f.get_params()
    assert params["horizon"] == 6 and params["window"] == 12 and params["hidden_size"] == 8
    assert params["max_epochs"] == 25 and params["lr"] == 1e-2 and params["rnn"] == "lstm"
    assert "train" not in params and params == f.get_params(deep=False)
    copy = f.clone()
    assert copy is not f and not copy.is_fitted and copy.fit_result is None
    assert copy.config == f.config and copy.get_params() == params
    assert Forecaster(**params).config == f.config  # the constructor takes them back
    copy.set_params(hidden_size=4, max_epochs=3)
    assert (copy.config.hidden_size, copy.config.train.max_epochs) == (4, 3)
    assert f.config.hidden_size == 8  # the original is untouched
    with pytest.raises(LstmkitError, match="hidden_size must be an integer >= 1, got 0"):
        copy.set_params(hidden_size=0)
    assert copy.config.hidden_size == 4


def test_set_context_moves_the_forecast_origin(fitted, tmp_path: Path) -> None:
    f, df = fitted
    g = Forecaster.load(f.save(tmp_path / "m"))
    g.set_context(df)
    assert str(g.predict()["month"].iloc[0].date()) == "2005-01-01"
    np.testing.assert_allclose(g.predict()["forecast"], f.predict(df)["forecast"])


def test_recursive_matches_manual_feedback() -> None:
    df = _series(48)
    f = Forecaster(horizon=4, window=8, method="recursive", **(FAST | {"max_epochs": 3}))
    f.fit(df, target="y", time_col="month")
    pred = f.predict()["forecast"].to_numpy()
    # feed the model one step at a time by hand, in float64 outside the model
    scaler = f.scaler
    window = list(scaler.transform("0", df["y"].to_numpy()[-8:]))
    manual = []
    with torch.no_grad():
        for _ in range(4):
            x = torch.tensor(window[-8:], dtype=torch.float32).view(1, 8, 1)
            step = float(f.net(x)[0, 0, 0])
            manual.append(step)
            window.append(step)
    np.testing.assert_allclose(pred, scaler.inverse_transform("0", np.array(manual)), rtol=1e-5)


def test_global_model_over_long_format_with_covariate() -> None:
    a = _series(48).assign(id="a", temp=np.linspace(0, 1, 48))
    b = _series(40, level=500.0).assign(id="b", temp=np.linspace(1, 0, 40))
    data = pd.concat([a, b], ignore_index=True)
    f = Forecaster(horizon=3, window=12, **(FAST | {"max_epochs": 3}))
    f.fit(data, target="y", time_col="month", id_col="id", covariates=["temp"])
    pred = f.predict()
    assert list(pred.columns) == ["id", "month", "forecast", "q10", "q50", "q90"]
    assert pred["id"].tolist() == ["a"] * 3 + ["b"] * 3
    assert str(pred["month"].iloc[3].date()) == "2003-05-01"
    assert pred.loc[pred.id == "b", "forecast"].mean() > 300  # scaled back per series
    with pytest.raises(LstmkitError, match="covariate column 'temp' not found"):
        f.predict(data.drop(columns="temp"))
    # recursive: the one-step network also forecasts temp (past-only) and feeds it back
    r = Forecaster(horizon=3, window=12, method="recursive", **(FAST | {"max_epochs": 3}))
    r.fit(data, target="y", time_col="month", id_col="id", covariates=["temp"])
    assert r.net.net.n_outputs == 1 + 3 + 1  # point, q10/q50/q90, temp's next value
    pred = r.predict()
    assert list(pred.columns) == ["id", "month", "forecast", "q10", "q50", "q90"]
    assert pred.loc[pred.id == "b", "forecast"].mean() > 300


def test_too_short_series_and_bad_settings() -> None:
    with pytest.raises(LstmkitError, match=r"has 20 rows, fewer than window \(24\) \+ horizon"):
        Forecaster(horizon=12, window=24, **FAST).fit(_series(20), target="y")
    with pytest.raises(LstmkitError, match="method must be"):
        Forecaster(method="sideways")
    with pytest.raises(LstmkitError, match="quantiles must be"):
        Forecaster(quantiles=[0.5, 1.5])
    with pytest.raises(LstmkitError, match=r"unknown forecaster setting 'hiden_size'; known: "):
        Forecaster(hiden_size=3)
    with pytest.raises(LstmkitError, match="not fitted"):
        Forecaster().predict()
    with pytest.raises(LstmkitError, match="batches_per_epoch"):
        Forecaster(batches_per_epoch=0)
    with pytest.raises(LstmkitError, match="val_size"):
        Forecaster(val_size=-1)


def _monthly(lengths: list[int]) -> SeriesData:
    """One monthly series (`_series`) per length, with an id column."""
    frames = [_series(n).assign(id=f"s{i}") for i, n in enumerate(lengths)]
    return load_series(pd.concat(frames), target="y", time_col="month", id_col="id")


def test_default_validation_grows_with_the_series_in_whole_horizons() -> None:
    from lstmkit.tasks.forecasting.data import validation_size

    cfg = Forecaster(horizon=12).config
    # several series: a tenth of the shortest, rounded down to whole horizons, 1 to 20
    assert validation_size(cfg, _monthly([144, 200])) == 12
    assert validation_size(cfg, _monthly([480, 500])) == 48
    assert validation_size(cfg, _monthly([2400, 2400])) == 240  # at most 20 horizons
    assert validation_size(Forecaster(horizon=12, val_size=5).config, _monthly([2400])) == 5


def test_a_single_series_validates_on_three_horizons_where_it_holds_them() -> None:
    from lstmkit.tasks.forecasting.data import ForecastData, validation_size

    cfg = Forecaster(horizon=12).config
    # AirPassengers less its test year (132 months) and the backtest folds' 96 months: three
    # horizons leave the window of 24, a horizon and 16 training windows or more
    assert validation_size(cfg, _monthly([132])) == 36
    assert validation_size(cfg, _monthly([96])) == 36
    assert validation_size(cfg, _monthly([87])) == 12  # 87 - 12 - 36 - 16 = 23 < 24
    assert validation_size(cfg, _monthly([480])) == 48  # a tenth is more than three
    assert validation_size(Forecaster(horizon=12, window=40).config, _monthly([96])) == 12
    assert validation_size(Forecaster(horizon=12, val_size=12).config, _monthly([132])) == 12
    # the split: 36 validation windows whose targets end in the last 36 months; training
    # windows' targets end before them (132 - 36 - 24 - 12 + 1 = 61)
    prepared = ForecastData(_monthly([132]), cfg)
    prepared.setup()
    assert (prepared.window, prepared.val) == (24, 36)
    assert (len(prepared.train_set), len(prepared.val_set)) == (61, 36)


def test_a_short_single_series_keeps_two_training_windows_per_input_step() -> None:
    from lstmkit.tasks.forecasting.data import ForecastData

    # 67 weeks, horizon 13, season 52: 67 - 13 - 13 (validation) = 41 rows before the
    # targets, so a window of 14 leaves 41 - 14 + 1 = 28 training windows, two per step
    # (the season's floor gave 52: 3 training windows and no validation stretch)
    cfg = Forecaster(horizon=13, season=52, pad=False).config
    prepared = ForecastData(_monthly([67]), cfg)
    prepared.setup()
    assert (prepared.window, prepared.val, len(prepared.train_set)) == (14, 13, 28)
    # several series of that length keep at least the season, as before
    several = ForecastData(_monthly([67, 67]), cfg)
    several.setup()
    assert several.window == 52
    # a long enough single series is not shortened: AirPassengers less 1960 keeps 24
    air = ForecastData(_monthly([132]), Forecaster(horizon=12).config)
    air.setup()
    assert air.window == 24


def test_long_series_draw_a_bounded_random_subset_each_epoch(monkeypatch) -> None:
    """Epochs of a long series are capped at batches_per_epoch random batches, all distinct."""
    import lstmkit.tasks.forecasting.estimator as forecasting

    seen: dict = {}
    real_fit = forecasting.fit

    def recording_fit(module, train_loader, val_loader, config, fingerprint=""):
        seen["batches"] = len(train_loader)
        seen["first_epoch"] = [list(iter(train_loader.sampler)) for _ in range(2)]
        seen["val_windows"] = len(val_loader.dataset)
        return real_fit(module, train_loader, val_loader, config, fingerprint)

    monkeypatch.setattr(forecasting, "fit", recording_fit)
    df = _series(600)
    f = Forecaster(
        horizon=6, window=12, batch_size=8, batches_per_epoch=5, **(FAST | {"max_epochs": 2})
    )
    f.fit(df, target="y", time_col="month")
    assert seen["batches"] == 5
    first, second = seen["first_epoch"]
    assert len(first) == len(set(first)) == 40  # 5 batches of 8 distinct windows
    assert first != second  # a fresh subset each epoch
    assert seen["val_windows"] == 60  # val_size 60 = 10 horizons (a tenth of 600 rows)
    assert len(f.fit_result.history) == 2
    # a short series keeps full epochs: every one of its 37 training windows, each epoch
    f = Forecaster(
        horizon=6, window=12, batch_size=8, batches_per_epoch=10, val_size=6,
        **(FAST | {"max_epochs": 1}),
    )  # fmt: skip
    f.fit(_series(60), target="y", time_col="month")
    assert seen["batches"] == 5
    assert sorted(seen["first_epoch"][0]) == list(range(37))


def test_config_json_round_trip() -> None:
    f = Forecaster(horizon=5, window=9, rnn="gru", quantiles=[0.9, 0.1], max_epochs=7, seed=3)
    d = json.loads(json.dumps(f.config.to_dict()))
    assert ForecasterConfig.from_dict(d) == f.config
    assert f.config.quantiles == [0.1, 0.9] and f.config.train.max_epochs == 7


def test_backtest_rolling_origin() -> None:
    df = _series(54)
    f = Forecaster(horizon=4, window=12, **(FAST | {"max_epochs": 2}))
    bt = f.backtest(df.set_index("month")["y"], folds=2, step=4)
    assert bt["fold"].tolist() == [1, 1, 1, 2, 2, 2]
    assert not f.is_fitted  # the folds trained clones
    assert bt["model"].tolist() == ["lstmkit", "naive", "seasonal_naive"] * 2
    origins = bt.drop_duplicates("fold")["origin"].tolist()
    assert [str(o.date()) for o in origins] == ["2003-10-01", "2004-02-01"]
    y = df["y"].to_numpy()
    for fold, end in ((1, 50), (2, 54)):  # naive MAE per fold, by hand
        hist, actual = y[: end - 4], y[end - 4 : end]
        row = bt[(bt.fold == fold) & (bt.model == "naive")].iloc[0]
        assert row["MAE"] == pytest.approx(np.mean(np.abs(actual - hist[-1])))


def test_known_future_covariates_are_used_over_the_horizon() -> None:
    rng = np.random.default_rng(0)
    n = 120
    t = np.arange(n)
    promo = (rng.random(n) < 0.3).astype(float)
    df = pd.DataFrame(
        {
            "month": pd.date_range("2000-01-01", periods=n, freq="MS"),
            "y": 100 + 10 * np.sin(2 * np.pi * t / 12) + 30 * promo,
            "promo": promo,
        }
    )
    maes = {}
    for future in ([], ["promo"]):
        f = Forecaster(horizon=6, window=12, **(FAST | {"max_epochs": 40}))
        f.fit(df.iloc[:-6], target="y", time_col="month", future_covariates=future)
        maes[bool(future)] = f.evaluate(df).metrics.loc["lstmkit", "MAE"]
    # promotions in the horizon are only predictable from their known future values
    assert maes[True] < 0.5 * maes[False]
    ev = f.evaluate(df)
    pred = f.predict(df.iloc[:-6], future=df.iloc[-6:])
    np.testing.assert_allclose(pred["forecast"], ev.forecasts["forecast"], rtol=1e-6)
    with pytest.raises(LstmkitError, match=r"known future values of \['promo'\]"):
        f.predict()
    with pytest.raises(LstmkitError, match=r"lacks .* at 2009-07-01"):
        f.predict(df.iloc[:-6], future=df.iloc[-4:])
    with pytest.raises(LstmkitError, match="future covariate column 'promo' not found"):
        f.predict(df.iloc[:-6], future=df.iloc[-6:].drop(columns="promo"))


def test_integer_time_column_round_trips(tmp_path: Path) -> None:
    t = np.arange(60)
    df = pd.DataFrame({"step": t * 2, "y": np.sin(t / 3) + t / 10})
    f = Forecaster(horizon=4, window=10, **(FAST | {"max_epochs": 2})).fit(df, target="y")
    assert f.state.time_col == "step" and f.season is None
    g = Forecaster.load(f.save(tmp_path / "m"))
    assert g.predict()["step"].tolist() == [120, 122, 124, 126]
    assert list(f.evaluate(df).metrics.index) == ["lstmkit", "naive"]  # no season, no snaive


def test_fitted_state_round_trips_json_and_is_checked(fitted) -> None:
    from lstmkit.tasks.forecasting import FittedState

    f, _ = fitted
    assert isinstance(f.state, FittedState)
    again = FittedState.from_dict(json.loads(json.dumps(f.state.to_dict())))
    assert again == f.state and again.window == 12 and again.output_time_col == "month"
    with pytest.raises(LstmkitError, match=r"unknown fitted data fields \['colour'\]"):
        FittedState.from_dict(f.state.to_dict() | {"colour": "red"})
    with pytest.raises(LstmkitError, match=r"lacks the fields \['window'\]"):
        FittedState.from_dict({k: v for k, v in f.state.to_dict().items() if k != "window"})


def test_forecast_run_holds_out_scores_and_writes(tmp_path: Path) -> None:
    from lstmkit.data.series import load_series
    from lstmkit.tasks.forecasting.run import forecast_run

    sd = load_series(_series(48), "y", time_col="month")
    run = forecast_run(sd, Forecaster(horizon=6, window=12, **(FAST | {"max_epochs": 2})),
                       name="demo")  # fmt: skip
    assert run.holdout == 6 and len(run.evaluation.forecasts) == 6
    assert run.forecaster.state.window == 12
    # trained without the held-out months: its context ends at the data's end after set_context
    assert str(run.ahead["month"].iloc[0].date()) == "2004-01-01"
    written = run.write(tmp_path)
    assert written == ["model/", "forecast.png", "training.png", "future.csv", "forecast.csv",
                       "metrics.csv"]  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(w.rstrip("/") for w in written)
    bare = forecast_run(sd, Forecaster(horizon=6, window=12, **(FAST | {"max_epochs": 2})),
                        holdout=0)  # fmt: skip
    assert bare.evaluation is None and len(bare.ahead) == 6
    with pytest.raises(LstmkitError, match="too few to hold out 47"):
        forecast_run(sd, Forecaster(horizon=6, window=12, **FAST), holdout=47)


def test_data_module_splits_scales_and_windows_the_series_in_time() -> None:
    from lstmkit.data.series import load_series
    from lstmkit.tasks.forecasting.data import ForecastData

    df = _series(60)
    sd = load_series(df, target="y", time_col="month")
    cfg = Forecaster(horizon=6, window=12, val_size=6, scaler="minmax", **FAST).config
    data = ForecastData(sd, cfg)
    data.setup("fit")
    data.setup("fit")  # a second call changes nothing
    # 60 rows: 43 windows of 12 + 6; those whose targets end by row 54 train, the 6 after
    # validate
    assert (data.window, data.val) == (12, 6)
    x, y = data.train_set.cut(range(len(data.train_set)))
    vx, vy = data.val_set.cut(range(len(data.val_set)))
    assert (x.shape, y.shape, vx.shape, vy.shape) == ((37, 12, 1), (37, 6), (6, 12, 1), (6, 6))
    # min-max scaling to [-1, 1] fitted on the 54 training rows only, by hand
    values = df["y"].to_numpy()
    lo, hi = values[:54].min(), values[:54].max()
    scaled = 2 * (values - lo) / (hi - lo) - 1
    np.testing.assert_allclose(x[0, :, 0].numpy(), scaled[:12], rtol=1e-5)
    np.testing.assert_allclose(y[-1].numpy(), scaled[48:54], rtol=1e-5)
    np.testing.assert_allclose(vy[-1].numpy(), scaled[54:60], rtol=1e-5)
    assert data.context["0"]["values"] == df[["y"]].to_numpy()[-12:].tolist()
    assert len(data.train_dataloader()) == 37 // 32 + 1 and len(data.val_dataloader()) == 1


def test_a_val_size_set_by_hand_that_leaves_no_training_window_is_refused() -> None:
    # it was dropped silently (as the default one is: a short series then trains without
    # validation), so the run trained on the stretch it was asked to keep apart
    with pytest.raises(LstmkitError, match=r"val_size 40 leaves the series \(48 rows\) no "):
        Forecaster(horizon=6, window=12, val_size=40, **FAST).fit(_series(48), target="y")
