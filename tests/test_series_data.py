"""Series loading and validation, scalers, windowing and time-ordered splits."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lstmkit.data.air_passengers import AIR_PASSENGERS, load_air_passengers
from lstmkit.data.scalers import SeriesScaler
from lstmkit.data.series import (
    future_times,
    load_future,
    load_series,
    read_table,
    season_from_freq,
)
from lstmkit.data.windows import make_windows, time_split, window_target_ends
from lstmkit.errors import LstmkitError

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def _monthly(n: int = 30) -> pd.DataFrame:
    return pd.DataFrame(
        {"month": pd.date_range("2000-01-01", periods=n, freq="MS").strftime("%Y-%m"),
         "y": np.arange(n, dtype=float) + 1.0}
    )  # fmt: skip


def test_embedded_air_passengers() -> None:
    df = load_air_passengers()
    assert len(df) == 144 and list(df.columns) == ["month", "passengers"]
    assert df["passengers"].iloc[0] == 112 and df["passengers"].iloc[-1] == 432
    assert sum(AIR_PASSENGERS) == 40363  # total of the Box & Jenkins series
    assert str(df["month"].iloc[-1].date()) == "1960-12-01"


@pytest.mark.skipif(not (SHARED / "air_passengers.csv").exists(), reason="shared data absent")
def test_embedded_matches_reference_csv() -> None:
    ref = pd.read_csv(SHARED / "air_passengers.csv")
    assert ref["passengers"].tolist() == list(AIR_PASSENGERS)
    sd = load_series(SHARED / "air_passengers.csv")
    assert sd.target == "passengers" and sd.time_col == "month" and sd.freq == "MS"
    assert season_from_freq(sd.freq) == 12


def test_load_csv_parquet_dataframe_series(tmp_path: Path) -> None:
    df = _monthly()
    df.to_csv(tmp_path / "a.csv", index=False)
    df.to_parquet(tmp_path / "a.parquet")
    for src in (tmp_path / "a.csv", tmp_path / "a.parquet", df):
        sd = load_series(src, "y")
        s = sd.series["0"]
        assert sd.freq == "MS" and len(s) == 30
        np.testing.assert_array_equal(s.values[:, 0], np.arange(30) + 1.0)
    ser = pd.Series(np.arange(10.0), index=pd.date_range("2020", periods=10, freq="D"), name="v")
    sd = load_series(ser)
    assert sd.target == "v" and sd.freq == "D" and season_from_freq("D") == 7


def test_unsorted_rows_are_sorted_and_no_time_column_uses_steps() -> None:
    df = _monthly(12).iloc[::-1]
    s = load_series(df, "y").series["0"]
    np.testing.assert_array_equal(s.values[:, 0], np.arange(12) + 1.0)
    plain = pd.DataFrame({"y": [1.0, 2.0, 3.0, 4.0]})
    sd = load_series(plain)
    assert sd.time_col is None and sd.freq is None
    assert list(future_times(sd.series["0"].times, None, 2)) == [4, 5]


def test_long_format_and_covariates() -> None:
    a = _monthly(20).assign(id="a", x=np.linspace(0, 1, 20))
    b = _monthly(25).assign(id="b", x=np.linspace(1, 2, 25), y=lambda d: d["y"] * 10)
    sd = load_series(pd.concat([a, b]), "y", id_col="id", covariates=["x"])
    assert list(sd.series) == ["a", "b"] and sd.n_features == 2
    assert sd.series["b"].values.shape == (25, 2)
    assert sd.series["b"].values[0].tolist() == [10.0, 1.0]


def test_a_row_without_its_series_id_is_refused(tmp_path: Path) -> None:
    # the last row of series 'a' without an id was dropped unseen (a shorter series), and
    # a column of missing ids gave no series at all
    a, b = _monthly(20).assign(id="a"), _monthly(20).assign(id="b")
    df = pd.concat([a, b], ignore_index=True)
    df.loc[19, "id"] = None
    df.to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(LstmkitError, match=r"id column 'id' has a missing value at row 20 "
                       r"\(line 21 of d.csv\) \(1 in all\)"):  # fmt: skip
        load_series(tmp_path / "d.csv", "y", id_col="id")
    with pytest.raises(LstmkitError, match=r"id column 'id' has a missing value at row 1 "):
        load_series(df.assign(id=None), "y", id_col="id")


def test_two_ids_with_the_same_text_are_refused() -> None:
    # the series of id 1 replaced that of id "1" (both series '1'): 20 rows lost unseen
    df = pd.concat([_monthly(20).assign(id="1"), _monthly(20).assign(id=1)], ignore_index=True)
    with pytest.raises(LstmkitError, match=r"several ids written '1' \(of types int, str\)"):
        load_series(df, "y", id_col="id")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda d: d.assign(y=d["y"].astype(object).where(d.index != 4, "abc")),
            r"column 'y' must be numeric but has 'abc' at row 5 \(line 6 of d.csv\), time 2000-05",
        ),
        (
            lambda d: d.assign(y=d["y"].where(d.index != 7)),
            r"column 'y' has a missing value \(NaN\) at row 8 \(line 9 of d.csv\), time 2000-08",
        ),
        (
            lambda d: d.drop(index=[10]),
            r"timestamps are irregular: the step 2000-10-01 -> 2000-12-01",
        ),
        (lambda d: pd.concat([d, d.iloc[[3]]]), r"timestamp 2000-04-01 appears more"),
        (
            lambda d: d.assign(month=d["month"].where(d.index != 2, "notadate")),
            r"time column 'month' has 'notadate' at row 3",
        ),
    ],
)
def test_bad_values_say_where(tmp_path: Path, mutate, message: str) -> None:
    mutate(_monthly()).to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(LstmkitError, match=message) as info:
        load_series(tmp_path / "d.csv", "y")
    assert "\n" not in str(info.value)


def test_missing_file_column_and_ambiguous_target(tmp_path: Path) -> None:
    with pytest.raises(LstmkitError, match="does not exist"):
        load_series(tmp_path / "nope.csv", "y")
    _monthly().to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(LstmkitError, match=r"target column 'sales' not found .* month, y"):
        load_series(tmp_path / "d.csv", "sales")
    with pytest.raises(LstmkitError, match="time column 'when' not found"):
        load_series(tmp_path / "d.csv", "y", time_col="when")
    with pytest.raises(LstmkitError, match="pass --target"):
        load_series(_monthly().assign(z=1.0))
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(LstmkitError, match="is empty"):
        read_table(tmp_path / "empty.csv")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(LstmkitError, match=r"cannot read .*bad\.parquet as Parquet"):
        read_table(tmp_path / "bad.parquet")


def test_season_from_freq() -> None:
    cases = {"MS": 12, "ME": 12, "QS-OCT": 4, "W-SUN": 52, "D": 7, "B": 5, "h": 24,
             "2h": 12, "15min": 96, "YS-JAN": None, None: None, "5h": None}  # fmt: skip
    for freq, season in cases.items():
        assert season_from_freq(freq) == season, freq


def test_future_times_monthly() -> None:
    t = pd.date_range("1960-10-01", periods=3, freq="MS")
    assert [str(x.date()) for x in future_times(t, "MS", 2)] == ["1961-01-01", "1961-02-01"]
    # past pandas' last date (2262-04-11): one line, not OutOfBoundsDatetime (a 500 from
    # the server, a traceback from forecast and predict)
    end = pd.date_range(end="2262-04-10", periods=3, freq="D")
    assert str(future_times(end, "D", 1)[0].date()) == "2262-04-11"
    with pytest.raises(LstmkitError, match=r"the 2 steps after 2262-04-10 pass 2262-04-11, "):
        future_times(end, "D", 2)


def test_a_freq_given_must_be_the_timestamps_frequency() -> None:
    # daily data with freq "H" was forecast at 01:00, 02:00, ... after its last day
    df = _monthly(24)
    assert load_series(df, "y", freq="MS").freq == "MS"
    with pytest.raises(LstmkitError, match=r"timestamps have frequency MS, not the freq 'D' "):
        load_series(df, "y", freq="D")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one line, without pandas' FutureWarning before it
        with pytest.raises(LstmkitError, match=r"freq 'bogus' is not a pandas frequency"):
            load_series(df, "y", freq="bogus")


def test_scalers_against_hand_values() -> None:
    v = np.array([[2.0, 10.0], [4.0, 10.0], [6.0, 10.0]])
    mm = SeriesScaler("minmax")
    mm.fit_series("s", v)
    np.testing.assert_allclose(mm.transform("s", v)[:, 0], [-1.0, 0.0, 1.0])
    np.testing.assert_allclose(mm.transform("s", v)[:, 1], [0.0, 0.0, 0.0])  # constant column
    np.testing.assert_allclose(mm.inverse_transform("s", [-1.0, 1.0, 3.0]), [2.0, 6.0, 10.0])
    st = SeriesScaler("standard")
    st.fit_series("s", v)
    sd = np.sqrt(8 / 3)
    np.testing.assert_allclose(st.transform("s", v)[:, 0], [-2 / sd, 0.0, 2 / sd])
    again = SeriesScaler.from_json(json.loads(json.dumps(st.to_json())))
    np.testing.assert_allclose(again.transform("s", v), st.transform("s", v))
    with pytest.raises(LstmkitError, match="not seen in training"):
        st.transform("other", v)
    with pytest.raises(LstmkitError, match="scaler must be one of"):
        SeriesScaler("robust")


def test_make_windows_by_hand() -> None:
    v = np.stack([np.arange(8.0), np.arange(8.0) * 10], axis=1)
    x, y = make_windows(v, window=3, horizon=2)
    assert x.shape == (4, 3, 2) and y.shape == (4, 2)
    assert x[0, :, 0].tolist() == [0, 1, 2] and x[0, :, 1].tolist() == [0, 10, 20]
    assert y[0].tolist() == [3, 4] and y[-1].tolist() == [6, 7]
    assert window_target_ends(8, 3, 2).tolist() == [5, 6, 7, 8]
    x2, _ = make_windows(v, 3, 2, stride=2)
    assert [row[0] for row in x2[:, :, 0].tolist()] == [0, 2]
    empty_x, empty_y = make_windows(v[:4], 3, 2)
    assert empty_x.shape == (0, 3, 2) and empty_y.shape == (0, 2)


def test_time_split_is_ordered() -> None:
    tr, va, te = time_split(20, val_size=4, test_size=3)
    idx = np.arange(20)
    assert idx[tr].max() < idx[va].min() and idx[va].max() < idx[te].min()
    assert (len(idx[tr]), len(idx[va]), len(idx[te])) == (13, 4, 3)
    with pytest.raises(ValueError):
        time_split(5, 3, 2)


# ------------------------------------------------------------------ time zones (issue 8, 4)
def _berlin_daily(n: int = 40, end: str = "2021-04-05") -> pd.DataFrame:
    times = pd.date_range(end=end, periods=n, freq="D", tz="Europe/Berlin")
    return pd.DataFrame({"date": times, "y": np.arange(n, dtype=float)})


def test_csv_with_daylight_saving_offsets_keeps_its_zone(tmp_path: Path) -> None:
    path = tmp_path / "berlin.csv"
    _berlin_daily().to_csv(path, index=False)  # pandas writes +01:00 / +02:00 offsets
    assert "+01:00" in path.read_text() and "+02:00" in path.read_text()
    sd = load_series(path, "y")
    times = sd.series["0"].times
    assert sd.freq == "D"
    assert (times.hour == 0).all()  # local midnights, also across 2021-03-28 (23 hours)
    assert times.tz is not None and times[0].utcoffset() != times[-1].utcoffset()
    assert times.tz_convert("UTC")[-1] == pd.Timestamp("2021-04-04 22:00", tz="UTC")


def test_parquet_tz_aware_daily_is_regular_across_dst(tmp_path: Path) -> None:
    path = tmp_path / "berlin.parquet"
    _berlin_daily().to_parquet(path)
    sd = load_series(path, "y")
    assert sd.freq == "D" and str(sd.series["0"].times.tz) == "Europe/Berlin"
    # the next days are calendar days in the zone: midnight before and after the change
    ahead = future_times(load_series(_berlin_daily(end="2021-03-26"), "y").series["0"].times,
                         "D", 4)  # fmt: skip
    assert [str(t) for t in ahead] == [
        "2021-03-27 00:00:00+01:00", "2021-03-28 00:00:00+01:00",
        "2021-03-29 00:00:00+02:00", "2021-03-30 00:00:00+02:00",
    ]  # fmt: skip


def test_hourly_tz_aware_is_judged_in_absolute_time(tmp_path: Path) -> None:
    times = pd.date_range("2021-03-27", periods=72, freq="h", tz="Europe/Berlin")
    path = tmp_path / "hourly.csv"
    pd.DataFrame({"date": times, "y": np.arange(72.0)}).to_csv(path, index=False)
    sd = load_series(path, "y")
    assert sd.freq == "h"
    assert (sd.series["0"].times.tz_convert("UTC") == times.tz_convert("UTC")).all()


def test_one_fixed_offset_is_kept_and_unmatched_offsets_are_refused(tmp_path: Path) -> None:
    df = pd.DataFrame({"date": [f"2021-01-{d:02d}T00:00:00+05:30" for d in range(1, 11)],
                       "y": np.arange(10.0)})  # fmt: skip
    times = load_series(df, "y").series["0"].times
    assert str(times[0]) == "2021-01-01 00:00:00+05:30"
    df["date"] = [
        f"2021-01-{d:02d}T00:00:00{'+05:30' if d % 2 else '-07:00'}" for d in range(1, 11)
    ]
    with pytest.raises(LstmkitError, match=r"mixes UTC offsets .* that match no time zone"):
        load_series(df, "y")


def test_series_in_different_zones_are_refused(tmp_path: Path) -> None:
    # each series' text is read on its own (offsets that change): one in Berlin and one
    # in New York, or one without a zone, has no single time axis (was a TypeError)
    n = 20
    berlin = pd.date_range("2021-03-20", periods=n, freq="D", tz="Europe/Berlin")
    york = pd.date_range("2021-03-20", periods=n, freq="D", tz="America/New_York")
    a = pd.DataFrame({"id": "a", "date": [t.isoformat() for t in berlin], "y": np.arange(n)})
    for other, said in [(york, "in UTC-04:00"), (berlin.tz_localize(None), "without a zone")]:
        b = a.assign(id="b", date=[t.isoformat() for t in other])
        path = tmp_path / "two.csv"
        pd.concat([a, b]).to_csv(path, index=False)
        with pytest.raises(LstmkitError, match=f"series 'a' has times in .* and series 'b' "
                           f"times {said}; write every time in one zone"):  # fmt: skip
            load_series(path, "y", time_col="date", id_col="id")
    # the same zone in both series is one time axis
    pd.concat([a, a.assign(id="b")]).to_csv(path, index=False)
    assert load_series(path, "y", time_col="date", id_col="id").freq == "D"


BIG = 2**64 - 1  # 18446744073709551615: int64 read it as -1


def test_unsigned_steps_past_int64_are_refused_where_they_are(tmp_path: Path) -> None:
    """A uint64 time column (pandas reads 18446744073709551615 so) wrapped to negative
    steps: one series loaded with step -1 after 2, a long table's series was misordered."""
    (tmp_path / "one.csv").write_text(f"t,y\n1,2\n2,3\n{BIG},3\n")
    assert pd.read_csv(tmp_path / "one.csv")["t"].dtype == np.uint64
    with pytest.raises(LstmkitError) as err:
        load_series(tmp_path / "one.csv", "y", time_col="t")
    assert str(err.value) == (
        f"time column 't' has the step {BIG} at row 3 (line 4 of one.csv), past "
        "9223372036854775807 (2**63 - 1), the largest integer time lstmkit holds; number the "
        "steps from a smaller start"
    )
    rows = "".join(f"{sid},{t},1.5\n" for sid in "ab" for t in range(1, 6))
    (tmp_path / "long.csv").write_text(f"id,t,y\n{rows}b,{2**63},2\n")
    with pytest.raises(LstmkitError, match=rf"has the step {2**63} at row 11 \(line 12 of long"):
        load_series(tmp_path / "long.csv", "y", time_col="t", id_col="id")
    future = pd.DataFrame({"t": np.array([6, 2**63 + 6], dtype=np.uint64), "p": [0.0, 1.0]})
    with pytest.raises(LstmkitError, match=rf"has the step {2**63 + 6} at row 2, past"):
        load_future(future, ["p"], time_col="t", id_col=None)


def test_unsigned_steps_within_int64_load_exactly() -> None:
    start = 2**63 - 40
    df = pd.DataFrame({"t": np.arange(start, start + 30, dtype=np.uint64), "y": np.arange(30.0)})
    times = load_series(df, "y", time_col="t").series["0"].times
    assert times.dtype == np.int64 and [int(t) for t in times[[0, -1]]] == [start, start + 29]
    assert future_times(times, None, 10)[-1] == 2**63 - 1  # the last step int64 holds
    with pytest.raises(LstmkitError) as err:  # the eleventh step wrapped to -2**63
        future_times(times, None, 11)
    assert str(err.value) == (
        f"the 11 steps after {start + 29} pass 9223372036854775807 (2**63 - 1), the largest "
        "integer time lstmkit holds; number the steps from a smaller start"
    )


def test_a_missing_step_in_a_nullable_integer_time_column_is_one_line() -> None:
    """pandas' nullable Int64 column with a gap was a ValueError traceback."""
    df = pd.DataFrame({"t": pd.array([1, 2, None, 4], dtype="Int64"), "y": [1.0, 2.0, 3.0, 4.0]})
    for id_col in (None, "id"):
        with pytest.raises(LstmkitError) as err:
            load_series(df.assign(id="a"), "y", time_col="t", id_col=id_col)
        assert type(err.value) is LstmkitError
        assert str(err.value) == (
            "time column 't' has a missing step at row 3 (1 in all); give every row its time"
        )
