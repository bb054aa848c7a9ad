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
from lstmkit.tasks.forecasting.predict import PassMemo

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


@pytest.mark.parametrize("last_fit", [2, 3])  # the last series fitted on part or all of it
def test_scaler_fit_many_equals_fitting_each_series(last_fit) -> None:
    """`fit_many` (and `fit_transform_many`, the log taken once) give each series the
    parameters and scaled values it gets alone, for every kind."""
    rng = np.random.default_rng(2)
    lengths, fit = np.array([5, 9, 3]), np.array([3, 9, last_fit])
    parts = [rng.normal(size=(n, 2)) * 10 for n in lengths]
    ids = ["x", "y", "z"]
    for kind in ("minmax", "standard", "none", "log"):
        if kind == "log":
            parts = [np.abs(p) + 0.5 for p in parts]
        one, many, both = SeriesScaler(kind), SeriesScaler(kind), SeriesScaler(kind)
        for sid, v, f in zip(ids, parts, fit, strict=True):
            one.fit_series(sid, v[:f])
        many.fit_many(ids, np.concatenate(parts), lengths, fit)
        scaled = both.fit_transform_many(ids, np.concatenate(parts), lengths, fit)
        assert both.params == many.params
        for sid in ids:
            for key in ("shift", "scale"):
                np.testing.assert_allclose(many.params[sid][key], one.params[sid][key], rtol=1e-12)
        alone = np.concatenate([one.transform(sid, v) for sid, v in zip(ids, parts, strict=True)])
        np.testing.assert_allclose(many.transform_many(ids, np.concatenate(parts), lengths), alone)
        np.testing.assert_array_equal(
            scaled, many.transform_many(ids, np.concatenate(parts), lengths)
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
    one, sort the quantiles, shift them by the calibration if any, scale back (and exp)."""
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
    if f.state.calibration is not None:  # the band's shifts (scaled space), sorted again
        out[:, 1:] = np.sort(out[:, 1:] + np.asarray(f.state.calibration), axis=-1)
    for k, level in enumerate(f.config.quantiles or [], start=1):  # the band holds the point
        if level != 0.5:
            out[:, k] = (np.minimum if level < 0.5 else np.maximum)(out[:, k], out[:, 0])
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


# ---------------------------------------------------------------- baselines of many series
def _histories() -> dict[str, np.ndarray]:
    """Series of four lengths (two alike), one too short for any window of 8 + 3."""
    rng = np.random.default_rng(5)
    lengths = {"a": 40, "b": 40, "c": 29, "d": 6, "e": 52}
    return {
        sid: 20 + 3 * k + np.sin(np.arange(n) / 2.0) * (k + 1) + rng.normal(0, 0.2, n)
        for k, (sid, n) in enumerate(lengths.items())
    }


@pytest.mark.parametrize(
    ("kind", "most", "stride"), [("nlinear", 10**6, 1), ("dlinear", 10**6, 1), ("nlinear", 41, 3)]
)
def test_linear_baselines_fitted_in_blocks_equal_one_fit_on_all_windows(
    kind, most, stride, monkeypatch
):  # fmt: skip
    """Series grouped by length, windows added a few at a time (blocks of 7 windows here),
    give the map that choose_ridge and fit_linear give on every window in one array; with
    more windows than MAX_WINDOWS (121 > 41 here), on every third window of each series,
    counted back from its last."""
    from lstmkit.tasks.forecasting import baselines as bl
    from lstmkit.tasks.forecasting.linear import choose_ridge, fit_linear

    monkeypatch.setattr(bl, "CHUNK", 7)
    monkeypatch.setattr(bl, "MAX_WINDOWS", most)
    hists, L, H, val = _histories(), 8, 3, 6
    got = bl.Baselines.fit([kind], hists, H, None, L, val)
    xs = {True: [], False: []}
    ys = {True: [], False: []}
    for sid, y in hists.items():
        mu, sd = y.mean(), y.std()
        assert got.scale[sid] == pytest.approx((mu, sd), rel=1e-12)
        z = (y - mu) / sd
        last = len(y) - L - H
        for start in range(last + 1):
            if (last - start) % stride:
                continue
            is_val = start + L + H > len(y) - val
            xs[is_val].append(z[start : start + L])
            ys[is_val].append(z[start + L : start + L + H])
    chosen = choose_ridge(np.array(xs[False]), np.array(ys[False]), np.array(xs[True]),
                          np.array(ys[True]), kind)  # fmt: skip
    n_all, n_tr = len(xs[False]) + len(xs[True]), len(xs[False])
    want = fit_linear(np.array(xs[False] + xs[True]), np.array(ys[False] + ys[True]), kind,
                      ridge=chosen.ridge * n_all / n_tr)  # fmt: skip
    assert got.linear[kind].ridge == pytest.approx(want.ridge, rel=1e-12)
    for name, w in want.weights.items():
        np.testing.assert_allclose(got.linear[kind].weights[name], w, rtol=1e-6, atol=1e-8)


def test_baselines_of_every_series_at_once_equal_one_series_at_a_time():
    """forecast_many gives each series what forecast gives it alone, NaN and the same
    reason where it cannot (empty, shorter than the season or the window), and for a series
    the maps were not fitted on it standardises by its own history."""
    from lstmkit.tasks.forecasting.baselines import NAMES, Baselines, NotAvailable

    hists = _histories()
    b = Baselines.fit(["naive", "snaive", "nlinear", "dlinear", "theta"], hists, 3, 7, 8, 6)
    ids = [*hists, "new", "empty"]
    given = [*hists.values(), np.linspace(5, 9, 12), np.zeros(0)]
    flat, lengths = np.concatenate(given), np.array([len(v) for v in given])
    for name in b.names:
        out, reasons = b.forecast_many(name, ids, flat, lengths)
        assert out.shape == (len(ids), 3)
        for k, (sid, y) in enumerate(zip(ids, given, strict=True)):
            try:
                want = b.forecast(name, sid, y)
            except NotAvailable as err:
                assert reasons[k] == str(err) and np.isnan(out[k]).all()
            else:
                assert k not in reasons
                np.testing.assert_allclose(out[k], want, rtol=1e-12, atol=1e-12)
    assert "shorter than its window (8)" in b.forecast_many("nlinear", ids, flat, lengths)[1][3]
    assert set(NAMES) >= set(b.names)


@pytest.mark.parametrize("rows", [1 << 17, 7])
def test_csv_writer_writes_what_pandas_writes(rows, tmp_path, monkeypatch):
    """The pyarrow CSV writer of the forecast tables gives pandas' to_csv text byte for
    byte, in one piece or 7 rows at a time: floats at every magnitude (exponents, whole
    numbers, NaN, infinities) and a column of none of those (the short path), dates on
    midnight and off it, zoned dates, integers and plain text; text that needs quotes
    (first or only further down) or a missing id is left to pandas."""
    from lstmkit.tasks.forecasting import run
    from lstmkit.tasks.forecasting.run import _column_text, write_csv

    monkeypatch.setattr(run, "CSV_ROWS", rows)

    rng = np.random.default_rng(0)
    v = rng.normal(0, 1, 400) * 10.0 ** rng.integers(-30, 30, 400)
    v[:16] = [432.0, 1e-7, 1e16, 1234567890123456.0, 1e-4, 9.99e-5, -0.0, 0.0, np.nan,
              np.inf, -np.inf, 5e-324, 1.7e308, 123456789012345678.0, 0.1, -2.5]  # fmt: skip
    days = pd.date_range("2020-01-01", periods=400, freq="D")
    hours = pd.date_range("2020-01-01", periods=400, freq="h", tz="Europe/Berlin")
    plain = pd.DataFrame({
        "id": [f"s{i % 7}" for i in range(400)], "day": days, "hour": hours,
        "step": np.arange(400), "forecast": v,
        "q10": np.float32(np.clip(v, -1e38, 1e38)).astype(float),
        # no whole number, nothing near an exponent: pyarrow's digits as they are
        "level": np.where(np.arange(400) == 5, np.nan, rng.uniform(-1, 1, 400))
        * 10.0 ** rng.integers(-3, 9, 400),
    })  # fmt: skip
    later = plain.assign(id=[f"s{i}" if i < 390 else f"s,{i}" for i in range(400)])
    frames = {
        "plain": plain, "later": later, "empty": plain.iloc[:0],
        "quoted": pd.DataFrame({"id": ["a,b", 'c"d'] * 200, "forecast": v}),
        "missing": pd.DataFrame({"id": ["a", None] * 200, "forecast": v}),
    }  # fmt: skip
    for name, df in frames.items():
        write_csv(df, tmp_path / f"{name}.csv")
        df.to_csv(tmp_path / f"{name}.pandas.csv", index=False)
        assert (tmp_path / f"{name}.csv").read_bytes() == (
            tmp_path / f"{name}.pandas.csv"
        ).read_bytes(), name
    # the plain table went through pyarrow, the quoted text to pandas
    assert all(_column_text(col) is not None for _, col in frames["plain"].items())
    assert _column_text(frames["quoted"]["id"]) is None
    assert _column_text(frames["missing"]["id"]) is None


@pytest.mark.parametrize("cap", [20_000, 9])
def test_validation_windows_cut_at_once_equal_series_by_series(cap, monkeypatch):
    """The calibration's validation windows (all of them, and a random subset of 9) are
    those the per-series code cut: each series scaled alone (log scaler), every window
    whose whole horizon lies in the last val steps, series by series, the same subset."""
    from lstmkit.tasks.forecasting import calibration

    monkeypatch.setattr(calibration, "MAX_WINDOWS", cap)
    sd = _sd(future=True)
    scaler = SeriesScaler("log")
    series = list(sd.series.values())
    lengths = np.array([len(s) for s in series])
    scaler.fit_many([s.id for s in series], np.concatenate([s.values for s in series]),
                    lengths, lengths - 8)  # fmt: skip
    x, fut, y, sid = calibration.validation_windows(sd, scaler, 10, 4, 8, [1], 3, with_ids=True)
    xs, fs, ys, ids = [], [], [], []
    for s in series:
        scaled = scaler.transform(s.id, s.values).astype(np.float32)
        for o in range(len(s) - 8 - 10, len(s) - 10 - 4 + 1):  # inputs from len - val - window
            xs.append(scaled[o : o + 10])
            ys.append(scaled[o + 10 : o + 14, 0])
            fs.append(scaled[o + 10 : o + 14, [1]])
            ids.append(s.id)
    assert len(xs) == 5 * 5
    pick = np.arange(len(xs))
    if cap < len(xs):
        pick = np.sort(np.random.default_rng(3).choice(len(xs), cap, replace=False))
    np.testing.assert_array_equal(x, np.array(xs)[pick])
    np.testing.assert_array_equal(y, np.array(ys)[pick])
    np.testing.assert_array_equal(fut, np.array(fs)[pick])
    assert list(sid) == [ids[i] for i in pick]


def test_an_epoch_of_more_series_than_the_cap_holds_sees_every_series_once(monkeypatch):
    """30 series, batches of 4, at most 5 batches (20 windows) an epoch: an epoch is one
    random window of each of the 30 series (8 batches), a fresh draw and order each
    epoch, and validation one window of each, the same every epoch; 5 series (fewer
    than 20) keep the capped random subset of windows and every validation window."""
    import lstmkit.tasks.forecasting.estimator as forecasting

    seen: dict = {}
    real_fit = forecasting.fit

    def recording_fit(module, train_loader, val_loader, config, fingerprint=""):
        data = train_loader.dataset
        seen["batches"] = len(train_loader)
        seen["epochs"] = [data.starts(list(iter(train_loader.sampler))) for _ in range(2)]
        seen["windows"] = len(data)
        seen["val"] = [list(val_loader.sampler) for _ in range(2)]
        seen["val_set"] = val_loader.dataset
        return real_fit(module, train_loader, val_loader, config, fingerprint)

    monkeypatch.setattr(forecasting, "fit", recording_fit)
    t = np.arange(50)
    many = pd.DataFrame({
        "id": np.repeat([f"s{k:02d}" for k in range(30)], 50), "t": np.tile(t, 30),
        "y": np.concatenate([10 + k + np.sin(t / 3) for k in range(30)]),
    })  # fmt: skip
    small = {**TINY, "max_epochs": 1}
    Forecaster(horizon=4, window=8, batch_size=4, batches_per_epoch=5, **small).fit(
        many, "y", time_col="t", id_col="id"
    )
    assert seen["batches"] == 8
    (series_a, rows_a), (series_b, rows_b) = seen["epochs"]
    assert sorted(series_a) == sorted(series_b) == list(range(30))  # each series once
    assert list(series_a) != list(series_b) and list(rows_a) != list(rows_b)
    # each window starts at a training origin of its series (0 .. 34 of 50 rows; 4 validate)
    assert ((rows_a - 50 * series_a >= 0) & (rows_a - 50 * series_a < 35)).all()
    # validation likewise: one window of every series (of the 4 each holds: targets that
    # end in its last 4 rows), the same in every epoch, chosen by the fit's seed
    val_a, val_b = seen["val"]
    series_v, rows_v = seen["val_set"].starts(val_a)
    assert val_a == val_b and sorted(series_v) == list(range(30))
    assert ((rows_v - 50 * series_v >= 35) & (rows_v - 50 * series_v < 39)).all()
    assert len(set((rows_v - 50 * series_v).tolist())) > 1  # not all the same origin
    Forecaster(horizon=4, window=8, batch_size=4, batches_per_epoch=5, **small).fit(
        many, "y", time_col="t", id_col="id"
    )
    assert seen["val"][0] == val_a
    Forecaster(horizon=4, window=8, batch_size=4, batches_per_epoch=5, **small | {"seed": 4}).fit(
        many, "y", time_col="t", id_col="id"
    )
    assert seen["val"][0] != val_a
    # fewer series than the cap holds: the capped random subset of windows, as before, and
    # every validation window
    Forecaster(horizon=4, window=8, batch_size=4, batches_per_epoch=5, **small).fit(
        many[many["id"] < "s05"], "y", time_col="t", id_col="id"
    )
    assert seen["batches"] == 5 and len(seen["epochs"][0][0]) == 20
    assert seen["val"][0] == list(range(len(seen["val_set"]))) == list(range(20))


def test_baselines_keep_only_the_points_they_read_unless_statistical():
    """Without a statistical model the baselines keep each series' last window or season
    (the longer: 8 and 7 here), and forecast after the data exactly as from the whole
    history; with one (theta), the last KEEP points."""
    from lstmkit.tasks.forecasting.baselines import KEEP, Baselines

    hists = {"long": 20 + np.sin(np.arange(700) / 2.0), "short": 10 + np.cos(np.arange(50))}
    cheap = Baselines.fit(["naive", "snaive", "nlinear", "dlinear"], hists, 3, 7, 8, 6)
    assert {sid: len(c) for sid, c in cheap.context.items()} == {"long": 8, "short": 8}
    for name in cheap.names:
        for sid, y in hists.items():
            np.testing.assert_array_equal(
                cheap.forecast_all(sid, None, [name])[name], cheap.forecast(name, sid, y)
            )
    weekly = Baselines.fit(["snaive"], hists, 3, 12, 8)
    assert len(weekly.context["long"]) == 12
    full = Baselines.fit(["naive", "theta"], hists, 3, 7, 8, 6)
    assert {sid: len(c) for sid, c in full.context.items()} == {"long": KEEP, "short": 50}


@pytest.mark.parametrize("zone", [None, "Europe/Berlin"])
def test_series_of_a_long_table_are_stretches_of_its_times_equal_to_their_own(zone) -> None:
    """The long reader keeps each series' times as its stretch of the table's sorted
    times; the times made from it, `tail_times` and `truncate_series` give what the series
    read alone gives, sliced series by series, with and without a zone."""
    from lstmkit.data.series import tail_times, truncate_series

    df = _long()
    if zone:
        df["day"] = df["day"].dt.tz_localize(zone)
    sd = load_series(df, "sales", time_col="day", id_col="store")
    alone = {
        sid: load_series(df[df["store"] == sid], "sales", time_col="day").series["0"].times
        for sid in LENGTHS
    }
    assert all(s.axis is not None for s in sd.series.values())
    for drop in (0, 3):
        part = truncate_series(sd, drop)
        series = list(part.series.values())
        assert all(s.axis is not None for s in series)
        for n, skip in ((1, 0), (7, 0), (4, 2)):
            want = pd.DatetimeIndex(np.concatenate([
                alone[s.id][: len(alone[s.id]) - drop][len(s) - skip - n : len(s) - skip]
                for s in series
            ]))  # fmt: skip
            got = tail_times(series, n, skip)
            assert got.equals(want) and str(got.tz) == str(zone), (drop, n, skip)
        for s in series:
            assert s.times.equals(alone[s.id][: len(alone[s.id]) - drop])


def test_fingerprint_hashes_the_series_as_one_series_at_a_time_did() -> None:
    """The checkpoint fingerprint's digest of the raw series (hashed a block of series at
    once) is the sha256 of each series' id, values, zone and times one after the other,
    so checkpoints of earlier runs still resume: a long table (stretches of its times),
    one series, integer times."""
    import hashlib
    import json

    from lstmkit.tasks.forecasting.data import ForecastData
    from lstmkit.tasks.forecasting.settings import ForecasterConfig

    def by_hand(sd) -> str:
        raw = hashlib.sha256()
        for s in sd.series.values():
            raw.update(s.id.encode() + np.ascontiguousarray(s.values).tobytes())
            if isinstance(s.times, pd.DatetimeIndex):
                raw.update(str(s.times.tz).encode() + s.times.asi8.tobytes())
            else:
                raw.update(np.asarray(s.times, dtype=np.int64).tobytes())
        return raw.hexdigest()

    df = _long()
    steps = df.assign(day=df.groupby("store").cumcount() * 2)
    for sd in (
        _sd(), load_series(df[df["store"] == "a"], "sales", time_col="day"),
        load_series(steps, "sales", time_col="day", id_col="store"),
    ):  # fmt: skip
        prepared = ForecastData(sd, ForecasterConfig(horizon=3, window=8))
        prepared.setup("fit")
        assert json.loads(prepared.fingerprint())["raw"] == by_hand(sd)


@pytest.mark.parametrize("layout", ["zoned, static", "integer steps, padded"])
def test_context_arrays_save_load_and_old_folders_forecast_alike(layout, tmp_path) -> None:
    """The contexts kept as arrays: the forecast after the data is the one from each
    series' own last window (`predict` on the history), before and after saving; a folder
    rewritten in the earlier per-series context.json (`old_format`) loads and forecasts the
    same; `set_context` from a later history moves every series on alike. Zoned dates
    with static covariates; integer steps with a padded short series."""
    from test_forecasting_hostile import old_format

    df = _with_static(_long(shuffle=False))
    if layout.startswith("zoned"):
        df["day"] = df["day"].dt.tz_localize("America/New_York")
        f = Forecaster(horizon=4, window=10, **TINY)
        cols = {"static_cols": ["region", "size"]}
    else:
        df["day"] = df.groupby("store").cumcount() * 5
        f = Forecaster(horizon=4, window=36, pad=True, residual=None, **TINY)
        cols = {}
    f.fit(df, "sales", time_col="day", id_col="store", **cols)
    ahead = f.predict()
    pd.testing.assert_frame_equal(ahead, f.predict(df))  # the same last windows
    if not layout.startswith("zoned"):
        assert f.state.pad and f.context["c"]["times"][0] == "0"  # all 33 rows of "c"
        assert len(f.context["c"]["values"]) == 33
    model = f.save(tmp_path / "model")
    pd.testing.assert_frame_equal(Forecaster.load(model).predict(), ahead)
    old_format(model)
    old = Forecaster.load(model)
    pd.testing.assert_frame_equal(old.predict(), ahead)
    later = df.groupby("store").head(-2)  # two steps fewer
    pd.testing.assert_frame_equal(old.set_context(later).predict(), f.set_context(later).predict())
    pd.testing.assert_frame_equal(f.predict(), f.predict(later))


def test_a_small_direct_network_forecasts_many_windows_per_call() -> None:
    """predict / evaluate run a small direct LSTM on as many windows per call as 1024
    windows of 96 steps of a 128-unit LSTM hold in activations (at most 16384), at least
    ``predict_batch_size``; a recursive model keeps ``predict_batch_size``. The forecasts
    are those of ``predict_batch_size`` windows a call."""
    sd = _sd()
    f = Forecaster(horizon=3, window=8, predict_batch_size=2, **TINY).fit(sd)
    assert f._predict_batch() == 16384  # 1024 * 96 * 128 // (8 * 4) is more
    real, calls = f._forecast_scaled, []

    def counted(x, *rest):  # the real network, its calls counted
        calls.append(len(x))
        return real(x, *rest)

    f._forecast_scaled = counted
    f._memo = PassMemo()  # no forecast kept from the fit's check (see the test below)
    many = f.predict()
    ev = f.evaluate(sd)
    assert calls == [5, 5]
    f._predict_batch = lambda: 2  # type: ignore[method-assign]
    calls.clear()
    f._memo = PassMemo()
    pd.testing.assert_frame_equal(f.predict(), many)
    f._memo = PassMemo()
    pd.testing.assert_frame_equal(f.evaluate(sd).forecasts, ev.forecasts)
    assert calls == [2, 2, 1, 2, 2, 1]
    del f._predict_batch
    f.set_params(hidden_size=4096, num_layers=2, bidirectional=True)
    assert f._predict_batch() == 1024 * 96 * 128 // (8 * 4096 * 2 * 2)
    assert f.set_params(method="recursive")._predict_batch() == 2


def test_the_evaluation_after_the_forecast_check_reuses_its_forecast_while_nothing_changed():
    """`check_forecast` forecasts the last ``horizon`` steps of every series from the window
    before them, and `evaluate` of the same data scores the same windows: it takes their
    forecast without running the network again (`lstmkit forecast`: one pass for both at
    100,000 series). A change to the network's weights, the band's shifts or the windows
    runs it again, and a copy of the forecaster keeps nothing."""
    import copy
    import pickle

    from lstmkit.data.series import truncate_series
    from lstmkit.tasks.forecasting.run import forecast_run

    sd = _sd()
    f = Forecaster(horizon=3, window=8, quantiles=[0.1, 0.5, 0.9], **TINY)
    f.fit(truncate_series(sd, 3), check_forecast=False)
    real, calls = f._forecast_scaled, []

    def counted(x, *rest):
        calls.append(len(x))
        return real(x, *rest)

    fresh = copy.deepcopy(f)  # the same network, nothing kept
    assert fresh._memo.out is None and pickle.loads(pickle.dumps(f._memo)).out is None
    f._forecast_scaled = counted
    f.check_forecast(sd)
    assert calls == [5]
    ev = f.evaluate(sd)
    assert calls == [5]  # the check's forecast
    pd.testing.assert_frame_equal(ev.forecasts, fresh.evaluate(sd).forecasts)
    pd.testing.assert_frame_equal(ev.metrics, fresh.evaluate(sd).metrics)
    f.evaluate(sd)
    assert calls == [5]
    with torch.no_grad():  # the weights changed in place: forecast again
        next(f.net.parameters()).mul_(3.0)
    moved = f.evaluate(sd)
    assert calls == [5, 5]
    assert not np.allclose(moved.forecasts["forecast"], ev.forecasts["forecast"])
    assert f.state is not None and f.state.calibration is not None
    f.state.calibration = (np.asarray(f.state.calibration) + 1.0).tolist()
    f.evaluate(sd)
    assert calls == [5, 5, 5]
    f.evaluate(truncate_series(sd, 1))  # other windows
    assert calls == [5, 5, 5, 5]
    with pytest.raises(LstmkitError, match="'c' has 10 rows; the forecast check needs window"):
        f.check_forecast(truncate_series(sd, 23))

    # the command's run: one check, of the whole data (not of the training part in fit),
    # one pass for it and the evaluation, one for the forecast after the data
    g = Forecaster(horizon=3, window=8, **TINY)
    real_fit, real_check, passes, checked = g.fit, g.check_forecast, [], []

    def fit_then_count(*args, **kw):
        real_fit(*args, **kw)
        net = g._forecast_scaled
        g._forecast_scaled = lambda x, *rest: (passes.append(len(x)), net(x, *rest))[1]
        return g

    def check(data):
        checked.append(sorted(len(s) for s in data.series.values()))
        real_check(data)

    g.fit, g.check_forecast = fit_then_count, check  # type: ignore[method-assign]
    run = forecast_run(sd, g)
    assert checked == [sorted(LENGTHS.values())]
    assert passes == [5, 5] and run.evaluation is not None and run.ahead is not None
