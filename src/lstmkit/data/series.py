"""Load and validate time series from table files (`lstmkit.data.tables`), DataFrames or Series.

`load_series` turns user data into `SeriesData`: one float64 array per series
(target first, then covariate columns) with its timestamps and the inferred
frequency. Everything a user can get wrong is refused with one line that says
where: a missing file or column, a non-numeric or missing value (with its row
and time), duplicate or irregular timestamps.

Time zones: tz-aware timestamps stay in their zone (a tz-aware column, as
Parquet stores it, keeps its zone; text with UTC offsets keeps a single offset,
and offsets that change with daylight saving are matched to the IANA zone that
has exactly those offsets). Regularity is judged by pandas on the zone's local
calendar for daily and longer steps (a daylight-saving day of 23 or 25 hours
is one day, not a gap) and in absolute time for hourly and shorter steps;
forecast timestamps are generated the same way and carry the zone.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import warnings
import zoneinfo
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lstmkit.data.tables import read_table
from lstmkit.errors import LstmkitError

# Name of the time column when the times come from an unnamed DatetimeIndex.
INDEX_TIME = "__time__"

TIME_NAMES = (
    "date", "datetime", "time", "timestamp", "ds", "month", "week", "day", "year", "period", "step",
)  # fmt: skip
#: the largest integer time step: steps are held as int64
MAX_STEP = int(np.iinfo(np.int64).max)


class Series:
    """One series: ``values`` (time, 1 + covariates) float64, target in column 0, and
    ``times``, its timestamps (a `pandas.Index`).

    A series read from a long table may hold its times as its stretch of the table's
    sorted times instead (``axis`` and ``start``: ``times`` is ``axis[start : start +
    len]``), made an `Index` only when asked for; `tail_times` and `truncate_series` work
    on the stretch, so 100,000 series need not be 100,000 small indexes (seconds)."""

    __slots__ = ("_times", "axis", "id", "start", "values")

    def __init__(
        self,
        id: str,
        times: pd.Index | None,
        values: np.ndarray,
        *,
        axis: pd.Index | None = None,
        start: int = 0,
    ) -> None:
        if times is None and axis is None:
            raise ValueError("a Series needs its times or the axis they are a stretch of")
        self.id, self.values, self._times = id, values, times
        self.axis, self.start = (None, 0) if times is not None else (axis, int(start))

    @property
    def times(self) -> pd.Index:
        if self._times is None:
            assert self.axis is not None
            self._times = self.axis[self.start : self.start + len(self.values)]
        return self._times

    @times.setter
    def times(self, value: pd.Index) -> None:
        self._times, self.axis, self.start = value, None, 0

    def __len__(self) -> int:
        return len(self.values)

    def __repr__(self) -> str:
        return f"Series(id={self.id!r}, times={self.times!r}, values={self.values!r})"


@dataclass
class SeriesData:
    """Validated series ready for scaling and windowing.

    ``covariates`` lists every extra input column in the order of ``values``
    columns 1..; ``future_covariates`` is the subset whose future values are
    known in advance (calendar, planned prices) and fed for the horizon too.
    ``static_cols`` are columns with one value per series (store type, region
    size); ``static`` holds each series' values of them (a number for a numeric
    column, else its text).
    """

    target: str
    time_col: str | None
    id_col: str | None
    covariates: list[str]
    freq: str | None
    series: dict[str, Series] = field(default_factory=dict)
    future_covariates: list[str] = field(default_factory=list)
    static_cols: list[str] = field(default_factory=list)
    static: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        """Target plus covariates."""
        return 1 + len(self.covariates)


def season_from_freq(freq: str | None) -> int | None:
    """Seasonal period implied by a pandas frequency: monthly 12, quarterly 4, weekly 52,
    daily 7, business-daily 5, hourly 24, k-hourly 24/k, k-minutely 1440/k; else None."""
    if not freq:
        return None
    m = re.fullmatch(r"(\d*)([A-Za-z]+)(-\w+)?", freq)
    if not m:
        return None
    mult = int(m.group(1) or 1)
    unit = m.group(2)
    per_unit = {
        "MS": 12, "ME": 12, "M": 12, "BMS": 12, "BME": 12, "SMS": 24, "SME": 24,
        "QS": 4, "QE": 4, "Q": 4, "BQS": 4, "BQE": 4,
        "W": 52, "D": 7, "B": 5, "h": 24, "H": 24, "min": 1440, "T": 1440,
    }  # fmt: skip
    if unit not in per_unit:
        return None
    base = per_unit[unit]
    if unit in ("h", "H", "min", "T"):
        return base // mult if base % mult == 0 and base // mult > 1 else None
    return base if mult == 1 else None


def format_time(t: object) -> str:
    """A timestamp as text: the date alone when it falls on midnight and has no zone."""
    if isinstance(t, pd.Timestamp) and t.tzinfo is None and t == t.normalize():
        return str(t.date())
    return str(t)


_FIXED = re.compile(r"UTC([+-])(\d\d):(\d\d)")


def tz_name(tz: dt.tzinfo | None) -> str | None:
    """A zone as text for JSON: an IANA name, ``"UTC"`` or a fixed offset ``"UTC+01:00"``."""
    if tz is None:
        return None
    name = str(tz)
    if isinstance(tz, dt.timezone) and tz is not dt.UTC:
        offset = tz.utcoffset(None)
        minutes = int(offset.total_seconds() // 60)
        sign = "+" if minutes >= 0 else "-"
        name = f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    return name


def tz_from_name(name: str | None) -> dt.tzinfo | str | None:
    """Inverse of `tz_name` (a zone pandas accepts)."""
    if name is None:
        return None
    m = _FIXED.fullmatch(name)
    if m:
        minutes = int(m.group(2)) * 60 + int(m.group(3))
        return dt.timezone(dt.timedelta(minutes=minutes if m.group(1) == "+" else -minutes))
    return name


def times_from_strings(times: list[str], tz: str | None) -> pd.Index:
    """Timestamps stored as text (``context.json``): integer steps, or date/times in
    zone ``tz`` (None: naive). Raises `LstmkitError` on text that is neither."""
    if all(str(t).lstrip("-").isdigit() for t in times):
        return pd.Index([int(t) for t in times])
    try:
        if tz is None:
            return pd.DatetimeIndex(pd.to_datetime(times, format="mixed"))
        return pd.DatetimeIndex(pd.to_datetime(times, utc=True, format="mixed")).tz_convert(
            tz_from_name(tz)
        )
    except (ValueError, TypeError, OverflowError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise LstmkitError(f"stored timestamps are not dates ({first[:100]})") from None


_OFFSET = re.compile(r"(Z|[+-]\d\d:?\d\d)$")


def _offset_minutes(text: str) -> int:
    m = _OFFSET.search(text.strip())
    if m is None or m.group(1) == "Z":
        return 0
    o = m.group(1).replace(":", "")
    return (1 if o[0] == "+" else -1) * (int(o[1:3]) * 60 + int(o[3:5]))


@lru_cache(maxsize=1)
def _zones() -> list[str]:
    """IANA zones, the most populous regions' first (Europe/, America/, Asia/, ...)."""
    regions = ("Europe/", "America/", "Asia/", "Australia/", "Africa/", "Pacific/")

    def key(name: str) -> tuple[int, str]:
        rank = next((i for i, r in enumerate(regions) if name.startswith(r)), len(regions))
        return rank, name

    return sorted(zoneinfo.available_timezones(), key=key)


def _zone_for_offsets(utc: pd.DatetimeIndex, offsets: np.ndarray) -> str | None:
    """An IANA zone whose UTC offset at each instant of ``utc`` is ``offsets`` (minutes)."""
    change = np.flatnonzero(np.diff(offsets) != 0)
    probe = sorted({0, *change.tolist(), *(change + 1).tolist()})
    for name in _zones():
        try:
            zone = zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            continue
        if all(
            utc[i].to_pydatetime().astimezone(zone).utcoffset()
            == dt.timedelta(minutes=int(offsets[i]))
            for i in probe
        ):
            local = utc.tz_convert(name)
            got = np.array([o.total_seconds() // 60 for o in local.map(lambda t: t.utcoffset())])
            if np.array_equal(got, offsets):
                return name
    return None


def _where(times: pd.Index | None, pos: int, source: str) -> str:
    where = f"row {pos + 1}"
    if source.lower().endswith((".csv", ".tsv", ".txt")):
        where += f" (line {pos + 2} of {Path(source).name})"
    if times is not None:
        where += f", time {format_time(times[pos])}"
    return where


def _numeric_column(df: pd.DataFrame, col: str, times: pd.Index | None, source: str) -> np.ndarray:
    raw = df[col]
    values = pd.to_numeric(raw, errors="coerce")
    bad = values.isna() & raw.notna()
    if bad.any():
        pos = int(np.flatnonzero(bad.to_numpy())[0])
        raise LstmkitError(
            f"column {col!r} must be numeric but has {raw.iloc[pos]!r} at "
            f"{_where(times, pos, source)}; fix or remove that value"
        )
    arr = values.to_numpy(dtype=np.float64, na_value=np.nan)
    missing = ~np.isfinite(arr)
    if missing.any():
        pos = int(np.flatnonzero(missing)[0])
        what = "a missing value (NaN)" if np.isnan(arr[pos]) else "an infinite value"
        raise LstmkitError(
            f"column {col!r} has {what} at {_where(times, pos, source)} "
            f"({int(missing.sum())} in all); fill or drop them first"
        )
    return arr


def _integer_times(raw: pd.Series, col: str, source: str) -> pd.Index:
    """An integer time column as the int64 steps lstmkit holds, or one `LstmkitError` line
    for a missing step (a nullable integer column) or an unsigned step of 2**63 or more,
    which int64 cannot hold (it wrapped to a negative step)."""
    missing = raw.isna().to_numpy()
    if missing.any():
        pos = int(np.flatnonzero(missing)[0])
        raise LstmkitError(
            f"time column {col!r} has a missing step at {_where(None, pos, source)} "
            f"({int(missing.sum())} in all); give every row its time"
        )
    if pd.api.types.is_unsigned_integer_dtype(raw):
        steps = raw.to_numpy(dtype=np.uint64)
        big = steps > np.uint64(MAX_STEP)
        if big.any():
            pos = int(np.flatnonzero(big)[0])
            raise LstmkitError(
                f"time column {col!r} has the step {int(steps[pos])} at "
                f"{_where(None, pos, source)}, past {MAX_STEP} (2**63 - 1), the largest "
                "integer time lstmkit holds; number the steps from a smaller start"
            )
    return pd.Index(raw.to_numpy(dtype=np.int64))


def _parse_times(df: pd.DataFrame, col: str, source: str) -> pd.Index:
    raw = df[col]
    if pd.api.types.is_datetime64_any_dtype(raw):
        parsed = pd.to_datetime(raw)
    elif pd.api.types.is_integer_dtype(raw):
        return _integer_times(raw, col, source)
    else:
        try:
            with warnings.catch_warnings():  # pandas 2 warns where pandas 3 raises (below)
                warnings.simplefilter("ignore", FutureWarning)
                parsed = pd.to_datetime(raw, errors="coerce", format="mixed")
        except ValueError:  # several UTC offsets (daylight saving): find their zone
            return _parse_mixed_offsets(raw, col, source)
        if not pd.api.types.is_datetime64_any_dtype(parsed):
            # pandas 2 returns objects for mixed offsets (or zoned with naive times)
            return _parse_mixed_offsets(raw, col, source)
    bad = parsed.isna()
    if bad.any():
        pos = int(np.flatnonzero(bad.to_numpy())[0])
        raise LstmkitError(
            f"time column {col!r} has {raw.iloc[pos]!r} at {_where(None, pos, source)}, "
            "which is not a date/time; fix it or pass the right --time-col"
        )
    return pd.DatetimeIndex(parsed)  # a zone, if any, is kept


def _parse_mixed_offsets(raw: pd.Series, col: str, source: str) -> pd.DatetimeIndex:
    """Date/times written with UTC offsets that change (daylight saving), in the IANA
    zone that has those offsets at those instants."""
    utc = pd.to_datetime(raw, errors="coerce", utc=True, format="mixed")
    bad = utc.isna()
    if bad.any():
        pos = int(np.flatnonzero(bad.to_numpy())[0])
        raise LstmkitError(
            f"time column {col!r} has {raw.iloc[pos]!r} at {_where(None, pos, source)}, "
            "which is not a date/time; fix it or pass the right --time-col"
        )
    # Times without a zone among zoned ones would be read as UTC: which zone is meant is
    # a guess, so the mix is refused like any other (``Z`` included).
    zoned = np.array([pd.Timestamp(t).tzinfo is not None for t in raw])
    if not zoned.all():
        with_zone, without = int(np.flatnonzero(zoned)[0]), int(np.flatnonzero(~zoned)[0])
        raise LstmkitError(
            f"time column {col!r} of {source} mixes times with a zone ({raw.iloc[with_zone]!r} "
            f"at {_where(None, with_zone, source)}) and times without one "
            f"({raw.iloc[without]!r} at {_where(None, without, source)}); write every time "
            "in its zone or none with a zone"
        )
    offsets = np.array([_offset_minutes(str(t)) for t in raw])
    utc_index = pd.DatetimeIndex(utc)
    zone = _zone_for_offsets(utc_index, offsets)
    if zone is None:
        shown = sorted({f"{o // 60:+03d}:{abs(o) % 60:02d}" for o in offsets.tolist()})
        raise LstmkitError(
            f"time column {col!r} of {source} mixes UTC offsets ({', '.join(shown[:4])}) that "
            "match no time zone; write the times in one zone or without offsets"
        )
    return utc_index.tz_convert(zone)


def _pandas_freq(times: pd.DatetimeIndex) -> str | None:
    """``pd.infer_freq`` as a string (None when irregular), without pandas' future warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        freq = pd.infer_freq(times)
    if freq is None:
        return None
    return freq if isinstance(freq, str) else freq.freqstr


def _infer_freq(times: pd.Index, label: str) -> str | None:
    """Frequency of sorted, unique ``times``; irregular spacing raises with its location."""
    if len(times) < 3:
        return None
    if not isinstance(times, pd.DatetimeIndex):
        steps = np.diff(times.to_numpy())
        if (steps != steps[0]).any():
            k = int(np.flatnonzero(steps != steps[0])[0])
            raise LstmkitError(
                f"{label}timestamps are irregular: step {times[k]} -> {times[k + 1]} differs "
                f"from the first step {steps[0]}; resample to a regular step first"
            )
        return None
    freq = _pandas_freq(times)
    if freq is not None:
        return freq
    # Binary search for the shortest prefix whose spacing is no longer regular.
    lo, hi = 3, len(times)
    if _pandas_freq(times[:3]) is None:
        hi = 3
    while lo < hi:
        mid = (lo + hi) // 2
        if _pandas_freq(times[:mid]) is None:
            hi = mid
        else:
            lo = mid + 1
    k = hi - 1
    raise LstmkitError(
        f"{label}timestamps are irregular: the step {format_time(times[k - 1])} -> "
        f"{format_time(times[k])} breaks the "
        f"spacing of the rows before it (row {k + 1}); resample the series to a regular "
        "frequency or fill the gaps first"
    )


def _guess_time_col(df: pd.DataFrame, exclude: set[str]) -> str | None:
    for col in df.columns:
        if col in exclude:
            continue
        if pd.api.types.is_datetime64_any_dtype(df[col]):
            return col
    for col in df.columns:
        if col not in exclude and str(col).lower() in TIME_NAMES:
            return col
    return None


def _check_column(df: pd.DataFrame, col: str, role: str, source: str) -> None:
    if col not in df.columns:
        cols = ", ".join(map(str, df.columns[:20]))
        raise LstmkitError(
            f"{role} column {col!r} not found in {source}; available columns: {cols}"
        )


def load_series(
    data: pd.DataFrame | pd.Series | str | os.PathLike[str],
    target: str | None = None,
    *,
    time_col: str | None = None,
    id_col: str | None = None,
    covariates: list[str] | None = None,
    freq: str | None = None,
    future_covariates: list[str] | None = None,
    format: str | None = None,
    start: str | None = None,
    static_cols: list[str] | None = None,
) -> SeriesData:
    """Validate ``data`` and split it into per-series arrays.

    Args:
        data: a CSV/Parquet path, a DataFrame (time column or DatetimeIndex,
            long format with ``id_col`` for several series) or a Series.
        target: the column to forecast; may be omitted when exactly one numeric
            column is left after the time/id/covariate columns.
        time_col: the timestamp column; guessed from a datetime column or a
            common name (date, time, month, ...), else the DatetimeIndex, else
            rows are taken as consecutive steps.
        id_col: series id column for long format (several series, one model).
        covariates: extra numeric input columns (their past values are inputs).
        freq: pandas frequency; inferred from the timestamps when omitted.
        future_covariates: extra input columns whose values over the forecast
            horizon are known in advance; appended after ``covariates``.
        format: "long" (the default: one row a time step) or "m4-wide" (one row a
            series, see `wide_series`); None: "m4-wide" where the columns are
            named ``V1, V2, ...`` as in the M4 competition's files and no column
            was named, else "long".
        start: "m4-wide" only: the first time of every series (a date, stepped by
            ``freq``); None: integer steps 0, 1, ...
        static_cols: columns with one value per series (static covariates); a
            column whose value changes within a series is refused, naming both.
    """
    if format not in (None, "long", "m4-wide"):
        raise LstmkitError(f"format must be 'long' or 'm4-wide', got {format!r}")
    future = list(future_covariates or [])
    covariates = list(covariates or [])
    covariates += [c for c in future if c not in covariates]
    df, source, target, time_col = _as_frame(data, target, time_col)
    static_cols = list(static_cols or [])
    named = target or time_col or id_col or covariates or static_cols
    if format == "m4-wide" or (format is None and not named and _m4_header(df)):
        if named:
            raise LstmkitError(
                "an m4-wide table has no columns to name: its first column is the series "
                "id and the rest are the values; drop --target/--time-col/--id-col/"
                "--covariates"
            )
        return wide_series(df, source, start=start, freq=freq)
    if start is not None:
        raise LstmkitError("start applies to the m4-wide format only; pass format='m4-wide'")
    for col in static_cols:
        _check_column(df, col, "static covariate", source)
    time_col, target = _pick_columns(
        df, source, target, time_col, id_col, [*covariates, *static_cols]
    )
    both = sorted(set(static_cols) & {target, time_col, id_col, *covariates})
    if both:
        raise LstmkitError(f"column {both[0]!r} cannot be both a static covariate and another role")
    if id_col is not None:  # a row without its series would be dropped unseen
        missing = df[id_col].isna().to_numpy()
        if missing.any():
            pos = int(np.flatnonzero(missing)[0])
            raise LstmkitError(
                f"id column {id_col!r} has a missing value at {_where(None, pos, source)} "
                f"({int(missing.sum())} in all); give every row its series id"
            )
    out = SeriesData(target, time_col, id_col, covariates, None, future_covariates=future,
                     static_cols=static_cols)  # fmt: skip
    freqs: set[str] = set()
    fast = _many_series(df, out, source) if id_col is not None else None
    if fast is not None:
        out.series, freqs = fast
    else:
        groups = [(None, df)] if id_col is None else list(df.groupby(id_col, sort=False))
        for key, part in groups:
            sid = "0" if key is None else str(key)
            if sid in out.series:  # e.g. 1 and "1": one would replace the other
                raise LstmkitError(
                    f"id column {id_col!r} holds several ids written {sid!r} (of types "
                    f"{', '.join(sorted({type(k).__name__ for k, _ in groups if str(k) == sid}))}"
                    "); give each series one id"
                )
            part_source = source if id_col is None else f"{source} ({id_col}={sid})"
            out.series[sid] = _one_series(sid, part, out, part_source)
            if time_col:
                label = "" if id_col is None else f"series {sid!r}: "
                f = _infer_freq(out.series[sid].times, label)
                if f is not None:
                    freqs.add(f)
        if time_col and id_col is not None:
            _check_one_zone(out.series)
    if freq is None and freqs:
        if len(freqs) > 1:
            raise LstmkitError(
                f"the series have different frequencies ({', '.join(sorted(freqs))}); "
                "resample them to one frequency"
            )
        freq = freqs.pop()
    elif freqs:  # a frequency given: the timestamps must be on it (else forecasts mis-dated)
        given = _offset(freq)
        other = sorted(f for f in freqs if _offset(f) != given)
        if other:
            raise LstmkitError(
                f"the timestamps have frequency {other[0]}, not the freq {freq!r} given; "
                "leave freq out to infer it, or resample the data"
            )
    out.freq = freq
    if static_cols:
        out.static = _static_values(df, out, source)
    return out


def _static_values(df: pd.DataFrame, sd: SeriesData, source: str) -> dict[str, list[Any]]:
    """Each series' values of the static columns of ``sd``: one per series (a number for
    a numeric column, else text); a missing value or one that changes within a series is
    refused, naming the column and the series."""
    if sd.id_col is None:
        codes = np.zeros(len(df), np.int64)
        names = ["0"]
    else:
        codes, uniques = pd.factorize(df[sd.id_col], sort=False)
        names = [str(u) for u in (uniques.tolist() if hasattr(uniques, "tolist") else uniques)]
    keep = codes >= 0
    columns = []
    for col in sd.static_cols:
        raw = df[col]
        numeric = pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw)
        if raw.isna().any():
            pos = int(np.flatnonzero(raw.isna().to_numpy())[0])
            sid = names[codes[pos]] if codes[pos] >= 0 else "?"
            raise LstmkitError(
                f"static covariate {col!r} is missing for series {sid!r} ({source}, row "
                f"{pos + 1}); give every row of a series its value"
            )
        vals = raw.to_numpy(dtype=np.float64) if numeric else raw.astype(str).to_numpy()
        vcodes, _ = pd.factorize(vals)
        per = pd.DataFrame({"s": codes[keep], "v": vcodes[keep]}).groupby("s")["v"]
        lo, hi = per.min().to_numpy(), per.max().to_numpy()
        if (lo != hi).any():
            k = int(np.flatnonzero(lo != hi)[0])
            rows = np.flatnonzero(codes == k)
            two = list(dict.fromkeys(vals[rows].tolist()))[:2]
            raise LstmkitError(
                f"static covariate {col!r} varies within series {names[k]!r} ({two[0]!r} and "
                f"{two[1]!r}); a static covariate has one value per series"
            )
        first = np.zeros(len(names), np.int64)
        first[codes[keep][::-1]] = np.flatnonzero(keep)[::-1]  # first row of each series
        got = vals[first]
        columns.append([float(v) for v in got] if numeric else [str(v) for v in got])
    return {sid: [c[k] for c in columns] for k, sid in enumerate(names) if sid in sd.series}


def _m4_header(df: pd.DataFrame) -> bool:
    """Whether the columns are ``V1, V2, ..., Vn`` (n >= 3), the M4 files' header."""
    return len(df.columns) >= 3 and list(df.columns) == [f"V{i + 1}" for i in range(df.shape[1])]


def wide_series(
    df: pd.DataFrame, source: str, *, start: str | None = None, freq: str | None = None
) -> SeriesData:
    """The series of a table in the M4 competition's wide format: one row a series, its
    id in the first column and its values in the others, in time order; shorter series
    end in empty cells. The series are named ``id``, their values ``value``; their times
    are integer steps 0, 1, ... or, with ``start``, dates from ``start`` every ``freq``.
    An empty cell before a value, a value that is not a number, or a series without
    values is refused (`LstmkitError`, naming the series and its row)."""
    if df.shape[1] < 2:
        raise LstmkitError(f"{source} has {df.shape[1]} column; an m4-wide table needs an id "
                           "column and at least one value column")  # fmt: skip
    ids = df.iloc[:, 0]
    cells = df.iloc[:, 1:]
    values = cells.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    empty = cells.isna().to_numpy()  # an empty cell ("" or nothing) is read as missing
    bad = np.isnan(values) & ~empty
    if bad.any():
        row, col = (int(v[0]) for v in np.nonzero(bad))
        raise LstmkitError(
            f"{source}: series {str(ids.iloc[row])!r} (row {row + 1}) has "
            f"{cells.iat[row, col]!r} in column {cells.columns[col]}, which is not a number"
        )
    if not np.isfinite(values[~empty]).all():
        row = int(np.nonzero(~np.isfinite(values) & ~empty)[0][0])
        raise LstmkitError(
            f"{source}: series {str(ids.iloc[row])!r} (row {row + 1}) has an infinite value"
        )
    counts = (~empty).sum(axis=1)
    first_empty = np.where(empty.any(axis=1), empty.argmax(axis=1), empty.shape[1])
    ragged = counts != first_empty
    if ragged.any():
        row = int(np.flatnonzero(ragged)[0])
        raise LstmkitError(
            f"{source}: series {str(ids.iloc[row])!r} (row {row + 1}) has an empty cell in "
            f"column {cells.columns[first_empty[row]]} before more values; in the m4-wide "
            "format only the cells after a series' last value may be empty"
        )
    if (counts == 0).any() or ids.isna().any():
        row = int(np.flatnonzero((counts == 0) | ids.isna().to_numpy())[0])
        raise LstmkitError(f"{source}: row {row + 1} has no series id or no values")
    names = [str(v) for v in ids.tolist()]
    if len(set(names)) < len(names):
        seen: set[str] = set()
        dup = next(n for n in names if n in seen or seen.add(n))  # type: ignore[func-returns-value]
        raise LstmkitError(f"{source}: series {dup!r} appears in more than one row")
    longest = int(counts.max())
    if start is not None:
        try:
            axis: pd.Index = pd.date_range(pd.Timestamp(start), periods=longest, freq=freq or "D")
        except (ValueError, TypeError) as err:
            raise LstmkitError(f"start {start!r} with freq {freq!r}: {err}") from None
        freq = freq or "D"
    else:
        axis = pd.RangeIndex(longest)
        freq = None
    out = SeriesData("value", "date" if start is not None else None, "id", [], freq)
    for k, sid in enumerate(names):
        n = int(counts[k])
        out.series[sid] = Series(sid, axis[:n], values[k, :n, None].copy())
    return out


def _as_frame(
    data: pd.DataFrame | pd.Series | str | os.PathLike[str],
    target: str | None,
    time_col: str | None,
) -> tuple[pd.DataFrame, str, str | None, str | None]:
    """``data`` as a DataFrame with string column names (a DatetimeIndex becomes the time
    column), with the source named in messages and the target / time column so far."""
    source = "the data"
    if isinstance(data, (str, os.PathLike)):
        source = str(data)
        df = read_table(data)
    elif isinstance(data, pd.Series):
        df = data.to_frame(name=data.name if data.name is not None else "value")
        if target is None:
            target = str(df.columns[0])
    elif isinstance(data, pd.DataFrame):
        df = data
    else:
        raise LstmkitError(
            f"data must be a path, pandas DataFrame or Series, got {type(data).__name__}"
        )
    if len(df) == 0:
        raise LstmkitError(f"{source} has no rows; pass a table with data")
    if time_col is None and isinstance(df.index, pd.DatetimeIndex):
        df = df.reset_index(names=INDEX_TIME if df.index.name is None else df.index.name)
        time_col = str(df.columns[0])
    df = df.copy(deep=False)  # new column names only: the data is read, never written
    df.columns = [str(c) for c in df.columns]
    return df, source, target, time_col


def _pick_columns(
    df: pd.DataFrame,
    source: str,
    target: str | None,
    time_col: str | None,
    id_col: str | None,
    covariates: list[str],
) -> tuple[str | None, str]:
    """Check the named columns exist and pick the time column and the target (the one
    numeric column left) when they are not given."""
    for col, role in [(time_col, "time"), (id_col, "id"), *((c, "covariate") for c in covariates)]:
        if col is not None:
            _check_column(df, col, role, source)
    if time_col is None:
        time_col = _guess_time_col(df, {id_col, *covariates} - {None})
    used = {time_col, id_col, *covariates} - {None}
    if target is None:
        numeric = [c for c in df.columns if c not in used and pd.api.types.is_numeric_dtype(df[c])]
        if len(numeric) != 1:
            raise LstmkitError(
                f"cannot tell which column of {source} to forecast ({len(numeric)} numeric "
                f"candidates: {', '.join(numeric[:10]) or 'none'}); pass --target COLUMN"
            )
        target = numeric[0]
    _check_column(df, target, "target", source)
    if target in used:
        raise LstmkitError(f"column {target!r} cannot be both the target and the time/id/covariate")
    return time_col, target


def _offset(freq: str) -> pd.DateOffset:
    """The pandas offset of the frequency text ``freq`` (old aliases such as ``H``
    accepted without their warning); `LstmkitError` for text that is none."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return pd.tseries.frequencies.to_offset(freq)
    except ValueError:
        raise LstmkitError(f"freq {freq!r} is not a pandas frequency") from None


def _check_one_zone(series: dict[str, Series]) -> None:
    """Refuse series read one by one (text with offsets) whose times are in different
    zones, or some in a zone and some without: a model has one time axis, and which zone
    is meant is a guess."""
    zones = {
        sid: tz_name(s.times.tz) if isinstance(s.times, pd.DatetimeIndex) else None
        for sid, s in series.items()
    }
    if not zones:
        return
    (first, zone), *rest = zones.items()
    other = next(((sid, z) for sid, z in rest if z != zone), None)
    if other is not None:
        where = {z: f"in {z}" if z else "without a zone" for z in (zone, other[1])}
        raise LstmkitError(
            f"series {first!r} has times {where[zone]} and series {other[0]!r} times "
            f"{where[other[1]]}; write every time in one zone or none with a zone"
        )


def _all_times(raw: pd.Series, col: str, source: str) -> pd.Index | None:
    """The time column of a long table parsed in one call, or None where the series
    must be read one by one (text in several zones or offsets, or anything unparsable:
    the per-series reader then says where); integer steps are checked here, naming the
    table's row (`_integer_times`)."""
    if pd.api.types.is_integer_dtype(raw):
        return _integer_times(raw, col, source)
    if pd.api.types.is_datetime64_any_dtype(raw):
        return pd.DatetimeIndex(raw)
    if raw.dtype != object or raw.isna().any():
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = pd.to_datetime(raw, format="mixed")
    except (ValueError, TypeError, OverflowError):
        return None
    if not pd.api.types.is_datetime64_any_dtype(parsed) or parsed.isna().any():
        return None
    return pd.DatetimeIndex(parsed)


def _many_series(
    df: pd.DataFrame, sd: SeriesData, source: str
) -> tuple[dict[str, Series], set[str]] | None:
    """The series of a long table (``sd.id_col``) and their frequencies, read with one
    parse, one sort and one check for the whole table instead of one per series; None
    where anything is wrong (a bad value, a repeated time, an irregular or unparsable
    series, several zones), which the per-series reader then reports exactly as ever."""
    time_col = sd.time_col
    codes, uniques = pd.factorize(df[sd.id_col], sort=False)
    if (codes < 0).any():  # missing ids: groupby drops them
        return None
    try:
        cols = [_numeric_column(df, c, None, "") for c in (sd.target, *sd.covariates)]
    except LstmkitError:
        return None
    values = np.stack(cols, axis=1)
    if time_col:
        times = _all_times(df[time_col], time_col, source)
        if times is None:
            return None
        keys = times.asi8 if isinstance(times, pd.DatetimeIndex) else times.to_numpy()
    else:  # rows are steps within each series
        keys = np.zeros(len(df), np.int64)
        order = np.argsort(codes, kind="stable")
        counts = np.bincount(codes)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        keys[order] = np.arange(len(df)) - np.repeat(starts, counts)
        times = pd.Index(keys)
    step = np.diff(keys)
    same = codes[1:] == codes[:-1]  # rows whose previous row is of the same series
    if not ((codes[1:] >= codes[:-1]).all() and ((step > 0) | ~same).all()):
        # a table already sorted by series and time is kept as it is
        order = np.lexsort((keys, codes))
        codes, keys, times, values = codes[order], keys[order], times[order], values[order]
        step = np.diff(keys)
        same = codes[1:] == codes[:-1]
    counts = np.bincount(codes, minlength=len(uniques))
    ends = np.cumsum(counts)
    starts = ends - counts
    if ((step == 0) & same).any():  # a repeated time
        return None
    series: dict[str, Series] = {}
    for k, u in enumerate(uniques.tolist() if hasattr(uniques, "tolist") else list(uniques)):
        sid = str(u)
        if sid in series:  # two ids with the same text: let the groupby reader decide
            return None
        part = values[starts[k] : ends[k]]
        if time_col:  # a stretch of the sorted times (`Series`)
            series[sid] = Series(sid, None, part, axis=times, start=starts[k])
        else:
            series[sid] = Series(sid, pd.RangeIndex(counts[k]), part)
    freqs: set[str] = set()
    if not time_col:
        return series, freqs
    # a series whose steps are all equal has the frequency of any other with that step
    # (and, for whole weeks, that weekday); only series of other steps are inferred one
    # by one (months, daylight saving)
    ref = np.full(len(counts), -1, np.int64)  # each series' first step (-1: one row)
    multi = counts > 1
    ref[multi] = step[starts[multi]]
    bad = same & (step != np.repeat(ref, counts)[1:])  # a step unlike its series' first
    del step
    constant = np.ones(len(uniques), bool)
    constant[np.unique(codes[1:][bad])] = False
    week = 7 * 86_400 * 10**9 if isinstance(times, pd.DatetimeIndex) else 0
    # each signature (step, and the weekday of whole weeks) is inferred once, the other
    # series one by one
    day = (keys[starts] // 86_400_000_000_000) % 7 if week else np.full(len(counts), -1)
    day = np.where((ref % week == 0) if week else False, day, -1)
    alike = constant & (counts >= 3)
    sigs = np.stack([ref, day], axis=1)
    _, pick = np.unique(sigs[alike], axis=0, return_index=True)
    ids = list(series)
    for k in [*np.flatnonzero(alike)[pick].tolist(), *np.flatnonzero(~alike).tolist()]:
        try:
            f = _infer_freq(series[ids[k]].times, f"series {ids[k]!r}: ")
        except LstmkitError:
            return None
        if f is not None:
            freqs.add(f)
    return series, freqs


def _one_series(sid: str, part: pd.DataFrame, sd: SeriesData, source: str) -> Series:
    """The rows of one series as a `Series` sorted by time (values: the target, then the
    covariates of ``sd``); a timestamp that appears twice is refused."""
    time_col, id_col = sd.time_col, sd.id_col
    label = "" if id_col is None else f"series {sid!r}: "
    part = part.reset_index(drop=True)
    times = _parse_times(part, time_col, source) if time_col else pd.RangeIndex(len(part))
    cols = [
        _numeric_column(part, c, times if time_col else None, source)
        for c in (sd.target, *sd.covariates)
    ]
    values = np.stack(cols, axis=1)
    keys = times.asi8 if isinstance(times, pd.DatetimeIndex) else times.to_numpy()
    order = np.argsort(keys, kind="stable")
    times, values = times[order], values[order]
    dup = times.duplicated()
    if dup.any():
        hint = "" if id_col else " (pass --id-col for several series)"
        when = format_time(times[np.flatnonzero(dup)[0]])
        raise LstmkitError(
            f"{label}timestamp {when} appears more than once; "
            f"each time may appear once per series{hint}"
        )
    return Series(sid, times, values)


def load_future(
    data: pd.DataFrame | str | os.PathLike[str],
    columns: list[str],
    *,
    time_col: str | None,
    id_col: str | None,
) -> dict[str, tuple[pd.Index, np.ndarray]]:
    """Read known future covariate values: series id -> (times, values (time, columns)).

    ``data`` is a CSV/Parquet path or DataFrame with the time column (and id
    column) and every column of ``columns``; the same checks as `load_series`.
    """
    source = str(data) if isinstance(data, (str, os.PathLike)) else "the future table"
    df = read_table(data) if isinstance(data, (str, os.PathLike)) else data
    if time_col == INDEX_TIME and isinstance(df.index, pd.DatetimeIndex):
        df = df.reset_index(names=INDEX_TIME)
    df = df.copy()
    df.columns = [str(c) for c in df.columns]
    for col, role in [
        (time_col, "time"),
        (id_col, "id"),
        *((c, "future covariate") for c in columns),
    ]:
        if col is not None:
            _check_column(df, col, role, source)
    groups = [(None, df)] if id_col is None else list(df.groupby(id_col, sort=False))
    out = {}
    for key, part in groups:
        part = part.reset_index(drop=True)
        times = _parse_times(part, time_col, source) if time_col else pd.RangeIndex(len(part))
        values = np.stack([_numeric_column(part, c, times, source) for c in columns], axis=1)
        out["0" if key is None else str(key)] = (times, values)
    return out


def future_times(times: pd.Index, freq: str | None, steps: int) -> pd.Index:
    """The ``steps`` timestamps after the last one of ``times`` (integers if no frequency)."""
    if isinstance(times, pd.DatetimeIndex) and freq:
        try:
            return pd.date_range(times[-1], periods=steps + 1, freq=freq)[1:]
        except (pd.errors.OutOfBoundsDatetime, OverflowError):
            raise LstmkitError(
                f"the {steps} steps after {format_time(times[-1])} pass {pd.Timestamp.max:%Y-%m-%d}"
                ", the last date pandas can hold; the data's dates are out of range"
            ) from None
    last = int(times[-1]) if len(times) else -1
    step = (
        int(times[-1] - times[-2])
        if len(times) > 1 and not isinstance(times, pd.DatetimeIndex)
        else 1
    )
    check_step_room(np.array([last]), np.array([step]), steps)
    return pd.Index(np.arange(1, steps + 1) * step + last)


def check_step_room(ends: np.ndarray, step: np.ndarray, steps: int) -> None:
    """Refuse integer times whose ``steps`` next steps (``ends + k * step``, one series an
    entry) pass `MAX_STEP`: in int64 they would wrap to negative times. Exact, without a
    per-series loop but for series within 2**62 of the limit."""
    near = ends.astype(np.float64) + steps * np.abs(step.astype(np.float64)) >= 2.0**62
    for k in np.flatnonzero(near).tolist():
        if int(ends[k]) + steps * int(step[k]) > MAX_STEP:
            raise LstmkitError(
                f"the {steps} steps after {int(ends[k])} pass {MAX_STEP} (2**63 - 1), the "
                "largest integer time lstmkit holds; number the steps from a smaller start"
            )


def tail_times(series: list[Series], n: int, skip: int = 0) -> pd.Index:
    """The ``n`` times before the last ``skip`` of every series, one series after the
    other (`concat_times` of ``s.times[len(s) - skip - n : len(s) - skip]``), sliced as
    integers rather than one `Index` per series."""
    axis = series[0].axis if series else None
    if axis is not None and all(s.axis is axis for s in series):  # stretches of one axis
        lengths = np.array([len(s) for s in series], dtype=np.int64)
        ends = np.array([s.start for s in series], dtype=np.int64) + lengths - skip
        if (lengths - skip >= n).all():
            return axis.take((ends[:, None] + np.arange(-n, 0)).ravel())
    first = series[0].times
    if isinstance(first, pd.DatetimeIndex) and all(
        isinstance(s.times, pd.DatetimeIndex) and s.times.dtype == first.dtype for s in series
    ):
        ints = np.concatenate([s.times.asi8[len(s) - skip - n : len(s) - skip] for s in series])
        out = pd.DatetimeIndex(ints.view(f"M8[{first.unit}]"))
        return out if first.tz is None else out.tz_localize("UTC").tz_convert(first.tz)
    return concat_times([s.times[len(s) - skip - n : len(s) - skip] for s in series])


def concat_times(parts: list[pd.Index]) -> pd.Index:
    """The indexes ``parts`` one after the other; timestamps of one zone and unit (as a
    loaded table's series have them) are joined as integers, without an `Index` step
    per part (`pd.Index.append` of 100,000 short indexes takes seconds)."""
    first = parts[0]
    if isinstance(first, pd.DatetimeIndex) and all(
        isinstance(p, pd.DatetimeIndex) and p.dtype == first.dtype for p in parts
    ):
        ints = np.concatenate([p.asi8 for p in parts])
        out = pd.DatetimeIndex(ints.view(f"M8[{first.unit}]"))
        return out if first.tz is None else out.tz_localize("UTC").tz_convert(first.tz)
    if all(not isinstance(p, pd.DatetimeIndex) for p in parts):
        try:
            return pd.Index(np.concatenate([np.asarray(p, dtype=np.int64) for p in parts]))
        except (TypeError, ValueError):
            pass
    return first.append(parts[1:]) if len(parts) > 1 else first


def truncate_series(sd: SeriesData, drop_last: int) -> SeriesData:
    """A copy of ``sd`` without the last ``drop_last`` steps of each series."""
    if drop_last == 0:
        return sd
    out = SeriesData(
        sd.target, sd.time_col, sd.id_col, sd.covariates, sd.freq,
        future_covariates=sd.future_covariates, static_cols=sd.static_cols, static=sd.static,
    )  # fmt: skip
    for sid, s in sd.series.items():
        values = s.values[:-drop_last]
        if s.axis is not None:  # the stretch, shorter
            out.series[sid] = Series(sid, None, values, axis=s.axis, start=s.start)
        else:
            out.series[sid] = Series(sid, s.times[:-drop_last], values)
    return out
