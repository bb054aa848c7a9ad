"""Many series: lazily cut training windows, batched predict / evaluate / backtest, the
long-table reader and the per-series scaler, each against an independent computation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from lstmkit import Forecaster
from lstmkit.data.scalers import SeriesScaler
from lstmkit.data.series import load_series
from lstmkit.data.windows import make_windows
from lstmkit.errors import LstmkitError
from lstmkit.tasks.forecast_metrics import (
    BAND_METRICS,
    all_metrics,
    band_metrics,
    seasonal_naive_forecast,
)

TINY = {"hidden_size": 4, "max_epochs": 2, "lr": 1e-2, "progress": False, "seed": 3}
LENGTHS = {"a": 40, "b": 55, "c": 33, "d": 47, "e": 61}


def _long(future: bool = False, shuffle: bool = True) -> pd.DataFrame:
    """Daily series of different lengths (and a known-future covariate), rows shuffled."""
    rng = np.random.default_rng(0)
    parts = []
    for k, (sid, n) in enumerate(LENGTHS.items()):
        t = np.arange(n)
        promo = (t % 5 == 0).astype(float)
        y = 10 * (k + 1) + np.sin(2 * np.pi * t / 7) * (k + 2) + 3 * promo + rng.normal(0, 0.3, n)
        parts.append(pd.DataFrame({
            "store": sid, "day": pd.date_range("2021-03-01", periods=n, freq="D"),
            "sales": y, "promo": promo,
        }))  # fmt: skip
    df = pd.concat(parts, ignore_index=True)
    if not future:
        df = df.drop(columns="promo")
    return df.sample(frac=1.0, random_state=1).reset_index(drop=True) if shuffle else df


def _sd(future: bool = False):
    return load_series(
        _long(future), "sales", time_col="day", id_col="store",
        future_covariates=["promo"] if future else None,
    )  # fmt: skip


def test_long_reader_reads_each_series_as_if_read_alone() -> None:
    """The one-pass reader of a shuffled long table gives every series exactly what the
    table of that series alone gives (sorted times, values with the covariate)."""
    df = _long(future=True)
    sd = load_series(df, "sales", time_col="day", id_col="store", covariates=["promo"])
    assert list(sd.series) == list(dict.fromkeys(df["store"]))  # first appearance
    assert sd.freq == "D"
    for sid, s in sd.series.items():
        alone = load_series(df[df["store"] == sid], "sales", time_col="day", covariates=["promo"])
        assert s.times.equals(alone.series["0"].times)
        np.testing.assert_array_equal(s.values, alone.series["0"].values)


def test_long_reader_still_names_a_repeated_time_and_an_irregular_series() -> None:
    df = _long()
    dup = pd.concat([df, df[df["store"] == "c"].head(1)], ignore_index=True)
    with pytest.raises(LstmkitError, match=r"series 'c': timestamp .* appears more than once"):
        load_series(dup, "sales", time_col="day", id_col="store")
    gap = df.drop(index=df.index[(df["store"] == "d")][5])
    with pytest.raises(LstmkitError, match="series 'd': timestamps are irregular"):
        load_series(gap, "sales", time_col="day", id_col="store")


def test_scaler_fit_many_equals_fitting_each_series() -> None:
    rng = np.random.default_rng(2)
    lengths, fit = np.array([5, 9, 3]), np.array([3, 9, 2])
    parts = [rng.normal(size=(n, 2)) * 10 for n in lengths]
    ids = ["x", "y", "z"]
    for kind in ("minmax", "standard", "none"):
        one, many = SeriesScaler(kind), SeriesScaler(kind)
        for sid, v, f in zip(ids, parts, fit, strict=True):
            one.fit_series(sid, v[:f])
        many.fit_many(ids, np.concatenate(parts), lengths, fit)
        for sid in ids:
            for key in ("shift", "scale"):
                np.testing.assert_allclose(many.params[sid][key], one.params[sid][key], rtol=1e-12)
        np.testing.assert_allclose(
            many.transform_many(ids, np.concatenate(parts), lengths),
            np.concatenate([one.transform(sid, v) for sid, v in zip(ids, parts, strict=True)]),
        )


def test_lazy_windows_are_the_materialised_windows_in_the_same_order() -> None:
    """The (series, origin) index cuts the windows make_windows gives, series by series,
    and a seeded sampler draws the same batches from it as from a table of them all."""
    from lstmkit.tasks.forecasting.data import ForecastData

    sd = _sd(future=True)
    cfg = Forecaster(horizon=4, window=10, val_size=8, scaler="standard", **TINY).config
    data = ForecastData(sd, cfg)
    data.setup("fit")
    x, fut, y = data.train_set.cut(range(len(data.train_set)))
    vx, vfut, vy = data.val_set.cut(range(len(data.val_set)))
    want: dict[str, list[np.ndarray]] = {k: [] for k in ("x", "f", "y", "vx", "vf", "vy")}
    for s in sd.series.values():
        n = len(s)
        scaled = data.scaler.transform(s.id, s.values)  # fitted on the first n - 8 rows
        ref = SeriesScaler("standard")
        ref.fit_series(s.id, s.values[: n - 8])
        np.testing.assert_allclose(scaled, ref.transform(s.id, s.values), rtol=1e-10)
        wx, wy = make_windows(scaled, 10, 4)
        _, wf = make_windows(scaled[:, [1]], 10, 4)
        ends = np.arange(len(wx)) + 14
        train, val = ends <= n - 8, ends > n - 8
        for key, arr, keep in [("x", wx, train), ("f", wf, train), ("y", wy, train),
                               ("vx", wx, val), ("vf", wf, val), ("vy", wy, val)]:  # fmt: skip
            want[key].append(arr[keep])
    got = {"x": x, "f": fut[..., 0], "y": y, "vx": vx, "vf": vfut[..., 0], "vy": vy}
    for key, arr in got.items():
        np.testing.assert_allclose(arr.numpy(), np.concatenate(want[key]), rtol=1e-6)
    assert len(data.train_set) == sum(n - 8 - 14 + 1 for n in LENGTHS.values())

    table = TensorDataset(x, fut, y)
    torch.manual_seed(7)
    lazy = [b for b, _ in zip(data.train_dataloader(), range(3), strict=False)]
    torch.manual_seed(7)
    full = [b for b, _ in zip(DataLoader(table, batch_size=32, shuffle=True), range(3),
                              strict=False)]  # fmt: skip
    for a, b in zip(lazy, full, strict=True):
        for ta, tb in zip(a, b, strict=True):
            assert torch.equal(ta, tb)


def _one_by_one(f: Forecaster, sid: str, window: np.ndarray, future=None) -> np.ndarray:
    """The forecast of one raw window of one series, as the code before batching made
    it: scale with the series' own parameters (the log scaler, the default for several
    positive series, first takes the log of the target), run the network on a batch of
    one, sort the quantiles, scale back (and exp)."""
    shift = np.asarray(f.scaler.params[sid]["shift"])
    scale = np.asarray(f.scaler.params[sid]["scale"])
    log = f.scaler.kind == "log"
    if log:
        window = np.column_stack([np.log(window[:, 0]), window[:, 1:]])
    x = ((window - shift) / scale).astype(np.float32)[None]
    fut = None
    if future is not None:
        cols = f.state.future_columns
        fut = ((future - shift[cols]) / scale[cols]).astype(np.float32)[None]
    out = f._forecast_scaled(x, fut)[0].astype(np.float64)
    out[:, 1:] = np.sort(out[:, 1:], axis=-1)
    out = out * scale[0] + shift[0]
    return np.exp(out) if log else out


@pytest.mark.parametrize("method", ["direct", "recursive"])
def test_batched_predict_evaluate_and_backtest_equal_one_series_at_a_time(method: str) -> None:
    """Series of different lengths, quantiles and (direct) a known-future covariate, two
    series a network call: predict, evaluate and backtest give what one series at a
    time gives, within 1e-6."""
    future = method == "direct"
    sd = _sd(future=future)
    f = Forecaster(horizon=4, window=10, method=method, predict_batch_size=2,
                   quantiles=[0.1, 0.5, 0.9], **TINY).fit(sd)  # fmt: skip
    h, cols = 4, f.state.future_columns

    # predict after the data (future covariates: next 4 days, promo on odd days)
    fut_rows = []
    for sid, s in sd.series.items():
        days = pd.date_range(s.times[-1], periods=h + 1, freq="D")[1:]
        fut_rows.append(pd.DataFrame({"store": sid, "day": days, "promo": np.arange(h) % 2}))
    table = f.predict(future=pd.concat(fut_rows) if future else None)
    assert len(table) == h * len(LENGTHS)
    for sid, s in sd.series.items():
        mine = table[table["store"] == sid]
        fut = (np.arange(h) % 2.0)[:, None] if future else None
        want = _one_by_one(f, sid, s.values[-10:], fut)
        np.testing.assert_allclose(mine[["forecast", "q10", "q50", "q90"]], want, rtol=1e-6,
                                   atol=1e-6)  # fmt: skip
        days = pd.date_range(s.times[-1], periods=h + 1, freq="D")[1:]
        assert (pd.DatetimeIndex(mine["day"]) == days).all()

    # evaluate: the last 4 steps of each series from the 10 before them
    ev = f.evaluate(sd)
    rows = {"lstmkit": [], "naive": [], "seasonal_naive": []}
    for sid, s in sd.series.items():
        mine = ev.forecasts[ev.forecasts["store"] == sid]
        fut = s.values[-h:][:, cols] if future else None
        want = _one_by_one(f, sid, s.values[-(10 + h) : -h], fut)
        np.testing.assert_allclose(mine["forecast"], want[:, 0], rtol=1e-6, atol=1e-6)
        actual, hist = s.values[-h:, 0], s.values[:-h, 0]
        np.testing.assert_array_equal(mine["actual"], actual)
        band = band_metrics(actual, want[:, 1:], [0.1, 0.5, 0.9], hist, 7)
        rows["lstmkit"].append(all_metrics(actual, want[:, 0], hist, 7) | band)
        rows["naive"].append(all_metrics(actual, np.full(h, hist[-1]), hist, 7))
        rows["seasonal_naive"].append(
            all_metrics(actual, seasonal_naive_forecast(hist, h, 7), hist, 7)
        )
    for name, r in rows.items():  # the band's scores (SQL, WQL, coverage, width) too
        want = pd.DataFrame(r).mean()
        np.testing.assert_allclose(ev.metrics.loc[name, want.index], want, rtol=1e-6)
    assert ev.metrics.loc["naive", list(BAND_METRICS)].isna().all()

    # backtest without refits: each fold is an evaluation of the data cut at its origin
    bt = f.backtest(sd, folds=2, refit=False)
    again = f.evaluate(sd).metrics
    np.testing.assert_allclose(bt[(bt["fold"] == 2)].set_index("model")[again.columns], again,
                               rtol=1e-12)  # fmt: skip


def test_evaluate_leaves_seasonal_naive_out_for_series_shorter_than_a_season() -> None:
    """A season of 30: the two series with fewer than 30 steps of history have no
    seasonal naive forecast (NaN in the table, left out of its mean)."""
    sd = _sd()
    f = Forecaster(horizon=4, window=10, season=30, quantiles=None, **TINY).fit(sd)
    ev = f.evaluate(sd)
    short = {sid for sid, n in LENGTHS.items() if n - 4 < 30}
    assert short == {"c"}
    fc = ev.forecasts
    assert fc.loc[fc["store"].isin(short), "seasonal_naive"].isna().all()
    assert fc.loc[~fc["store"].isin(short), "seasonal_naive"].notna().all()
    want = []
    for sid, s in sd.series.items():
        if sid not in short:
            hist, actual = s.values[:-4, 0], s.values[-4:, 0]
            want.append(all_metrics(actual, seasonal_naive_forecast(hist, 4, 30), hist, 30))
    np.testing.assert_allclose(ev.metrics.loc["seasonal_naive"], pd.DataFrame(want).mean())


def _with_static(df: pd.DataFrame) -> pd.DataFrame:
    """Each store's region (text) and size (number), repeated on every row."""
    region = {"a": "north", "b": "south", "c": "north", "d": "east", "e": "south"}
    size = {"a": 120.0, "b": 80.0, "c": 200.0, "d": 50.0, "e": 150.0}
    return df.assign(region=df["store"].map(region), size=df["store"].map(size))


def test_static_covariates_and_id_embedding_are_learnt_saved_and_needed_again(
    tmp_path,
) -> None:
    from lstmkit.tasks.forecasting.data import static_matrix

    df = _with_static(_long())
    f = Forecaster(horizon=4, window=10, id_embedding=3, quantiles=None, **TINY)
    f.fit(df, "sales", time_col="day", id_col="store", static_cols=["region", "size"])
    st = f.state
    assert st.static_categories == {"region": ["east", "north", "south"]}
    sizes = np.array([120.0, 80.0, 200.0, 50.0, 150.0])
    np.testing.assert_allclose(st.static_stats["size"], [sizes.mean(), sizes.std()])
    # the inputs of store "d": east is category 0, its size scaled over the stores, and
    # its number among the series the model was trained on
    got = static_matrix(st, ["d"], {"d": ["east", 50.0]}, {s: i for i, s in enumerate("abcde")})
    np.testing.assert_allclose(got, [[0, (50 - sizes.mean()) / sizes.std(), 3]], rtol=1e-6)
    weights = f.net.net.state_dict()
    assert tuple(weights["embeddings.0.weight"].shape) == (3, 2)  # 3 regions, width 2
    assert tuple(weights["embeddings.1.weight"].shape) == (5, 3)  # 5 stores, width 3

    ahead = f.predict()
    f.save(tmp_path / "model")
    g = Forecaster.load(tmp_path / "model")
    pd.testing.assert_frame_equal(g.predict(), ahead)
    # new history: the static columns come with it, and they change the forecast
    pd.testing.assert_frame_equal(g.predict(df), ahead)
    moved = df.assign(region=df["region"].where(df["store"] != "a", "south"))
    a_moved = g.predict(moved).query("store == 'a'")["forecast"].to_numpy()
    assert not np.allclose(a_moved, ahead.query("store == 'a'")["forecast"].to_numpy())
    with pytest.raises(LstmkitError, match="static covariate column 'region' not found"):
        g.predict(df.drop(columns="region"))
    with pytest.raises(LstmkitError, match="'west', a category unseen in training"):
        g.predict(df.assign(region="west"))


def test_static_covariate_that_varies_within_a_series_is_one_error_line(tmp_path, capsys) -> None:
    import sys

    from lstmkit.cli import main

    df = _with_static(_long())
    df.loc[df.index[df["store"] == "b"][3], "region"] = "east"
    path = tmp_path / "stores.csv"
    df.to_csv(path, index=False)
    with pytest.raises(LstmkitError, match="static covariate 'region' varies within series 'b'"):
        load_series(path, "sales", time_col="day", id_col="store", static_cols=["region"])
    out = tmp_path / "out"
    old = sys.argv
    sys.argv = ["lstmkit", "forecast", str(path), "--id-col", "store", "--target", "sales",
                "--static-cols", "region,size", "--max-epochs", "1", "--no-progress",
                "--out", str(out)]  # fmt: skip
    try:
        with pytest.raises(SystemExit) as exc:
            main()
    finally:
        sys.argv = old
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert err.startswith("error: static covariate 'region' varies within series 'b'")
    assert err.count("\n") == 1
    assert not out.exists()
