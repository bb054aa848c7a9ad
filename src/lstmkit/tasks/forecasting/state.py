"""`FittedState`: what a fit learnt about the data (columns, frequency, zone, window).

It is the ``data`` part of a saved forecaster's ``config.json`` and round-trips
JSON through `to_dict` / `from_dict`, which checks every field (a damaged file
gives one `LstmkitError` line). `check_scaler` and `check_context` check the
other two files of a model folder the same way.
"""

from __future__ import annotations

import warnings
import zoneinfo
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lstmkit.config import check_field_types, dataclass_from_dict
from lstmkit.data.scalers import SeriesScaler
from lstmkit.data.series import INDEX_TIME, SeriesData, times_from_strings, tz_from_name
from lstmkit.errors import LstmkitError


@dataclass
class FittedState:
    """The data a forecaster was fitted on, as far as predicting again needs it.

    target: the forecast column. time_col: the timestamp column (`INDEX_TIME` when
    the times came from an unnamed DatetimeIndex; None: rows are steps). id_col:
    the series id column (long format) or None. covariates: every extra input
    column, in the order of the value columns 1..; future_covariates: those also
    known over the horizon. freq: pandas frequency or None. window: input steps.
    tz: the timestamps' zone (`lstmkit.data.series.tz_name`) or None.
    calibration: the split-conformal shifts of the quantile bands, one row per horizon
    step and one value per quantile level, in the scaled space the network forecasts in
    (`lstmkit.tasks.forecasting.calibration`), or None (bands as trained).
    pad: series shorter than the window are left-padded (`data.last_windows`: NaN rows,
    which the network fills and masks), so a context may hold fewer rows than the window.
    nonnegative: the series whose forecasts (the point and every quantile) are clipped at
    0 (`nonnegative_series`): True every series, False none (as for models saved before
    the setting), or the ids of those clipped.
    static_cols: columns with one value per series; static_categories: the
    categories of each text column among them (embedded), static_stats: the mean
    and standard deviation over the series of each numeric one (scaled by them).
    """

    target: str
    time_col: str | None
    id_col: str | None
    covariates: list[str]
    freq: str | None
    window: int
    future_covariates: list[str] = field(default_factory=list)
    tz: str | None = None
    static_cols: list[str] = field(default_factory=list)
    static_categories: dict[str, list[str]] = field(default_factory=dict)
    static_stats: dict[str, list[float]] = field(default_factory=dict)
    calibration: list[list[float]] | None = None
    pad: bool = False
    nonnegative: bool | list[str] = False

    def __post_init__(self) -> None:
        check_field_types(self, "fitted data")
        if self.calibration is not None:
            rows = {len(r) for r in self.calibration}
            values = np.asarray(self.calibration, dtype=np.float64) if len(rows) == 1 else None
            if values is None or values.size == 0 or not np.isfinite(values).all():
                raise LstmkitError(
                    "calibration must be rows of finite numbers, one per horizon step, each "
                    "with one number per quantile level"
                )
        for col in self.static_cols:
            cats, stats = self.static_categories.get(col), self.static_stats.get(col)
            ok = (isinstance(cats, list) and len(cats) > 0 and stats is None) or (
                cats is None
                and isinstance(stats, list)
                and len(stats) == 2
                and all(isinstance(v, int | float) and np.isfinite(v) for v in stats)
                and stats[1] > 0
            )
            if not ok:
                raise LstmkitError(
                    f"static covariate {col!r} needs its categories or its mean and spread"
                )
        if self.window < 2:
            raise LstmkitError(f"window must be an integer of at least 2, got {self.window}")
        if self.freq is not None:
            try:
                with warnings.catch_warnings():  # pandas warns of old aliases ('H') first
                    warnings.simplefilter("ignore", FutureWarning)
                    pd.tseries.frequencies.to_offset(self.freq)
            except ValueError:
                raise LstmkitError(f"freq {self.freq!r} is not a pandas frequency") from None
        if self.tz is not None:
            try:
                pd.Timestamp("2000-01-01", tz=tz_from_name(self.tz))
            except (ValueError, TypeError, KeyError, zoneinfo.ZoneInfoNotFoundError):
                raise LstmkitError(f"tz {self.tz!r} is not a time zone") from None
        unknown = set(self.future_covariates) - set(self.covariates)
        if unknown:
            raise LstmkitError(f"future covariates {sorted(unknown)} are not covariates")

    def clip(self, ids: list[str], values: np.ndarray) -> np.ndarray:
        """``values`` (one leading row per id of ``ids``, in the data's units) with the rows
        of the series in `nonnegative` clipped at 0, in place. Every channel is clipped at
        the same bound, so ordered quantiles stay ordered; NaN stays NaN."""
        which = self.nonnegative
        if which is True:
            np.maximum(values, 0.0, out=values)
        elif which:
            keep = set(which)
            rows = np.fromiter((sid in keep for sid in ids), dtype=bool, count=len(ids))
            if rows.any():
                values[rows] = np.maximum(values[rows], 0.0)
        return values

    @property
    def n_features(self) -> int:
        """Value columns: the target plus the covariates."""
        return 1 + len(self.covariates)

    @property
    def future_columns(self) -> list[int]:
        """Value columns that hold known future covariates."""
        return [1 + self.covariates.index(c) for c in self.future_covariates]

    @property
    def past_columns(self) -> list[int]:
        """Value columns of the past-only covariates (observed up to the forecast origin,
        not known over the horizon): the ones a recursive forecaster forecasts itself."""
        known = set(self.future_covariates)
        return [1 + j for j, c in enumerate(self.covariates) if c not in known]

    @property
    def time_from_index(self) -> bool:
        """Whether the times came from an unnamed DatetimeIndex."""
        return self.time_col == INDEX_TIME

    @property
    def output_time_col(self) -> str:
        """Name of the time column in forecast tables."""
        if self.time_col is None:
            return "step"
        return "time" if self.time_from_index else self.time_col

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> FittedState:
        """Inverse of `to_dict`, checking every field; unknown keys are refused."""
        return dataclass_from_dict(cls, data, "fitted data")


def nonnegative_series(setting: bool | str, sd: SeriesData) -> bool | list[str]:
    """`FittedState.nonnegative` for the ``nonnegative`` setting and the training series
    ``sd``: the setting itself when it is true or false; for auto, each series on its own
    (in a panel of counts beside, say, net flows, the series that went below 0 keep their
    forecasts and the counts are still clipped): True when every series' target values
    are all 0 or more, else the ids of those whose are (False: none)."""
    if isinstance(setting, bool):
        return setting
    series = list(sd.series.values())
    lengths = np.array([len(s.values) for s in series], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    lowest = np.minimum.reduceat(np.concatenate([s.values[:, 0] for s in series]), starts)
    if (lowest >= 0).all():
        return True
    return [str(series[k].id) for k in np.flatnonzero(lowest >= 0)] or False


def check_scaler(scaler: SeriesScaler, n_columns: int) -> None:
    """Check the per-series shift and scale of a loaded scaler (``n_columns`` each). All
    series are checked as two arrays at once (100,000 series: 0.8 s one by one); only a
    damaged scaler is walked series by series, to name the first bad one."""
    params = list(scaler.params.values())
    try:
        shift, scale = (
            np.array([p[k] for p in params], dtype=np.float64) for k in ("shift", "scale")
        )
    except (TypeError, ValueError, KeyError):
        pass
    else:
        if (
            shift.shape == scale.shape == (len(params), n_columns)
            and np.isfinite(shift).all()
            and np.isfinite(scale).all()
            and (scale > 0).all()
        ):
            return
    for sid, p in scaler.params.items():
        for key in ("shift", "scale"):
            v = np.asarray(p[key], dtype=np.float64)
            if (
                v.shape != (n_columns,)
                or not np.isfinite(v).all()
                or (key == "scale" and not (v > 0).all())  # fitted scales are positive
            ):
                what = "positive numbers" if key == "scale" else "numbers"
                raise LstmkitError(
                    f"series {sid!r}: {key} must be {n_columns} finite {what}, got {p[key]!r}"
                )


def check_context(
    context: Any, state: FittedState, known: set[str], scaler: str = "scaler.json"
) -> dict[str, Any]:
    """A per-series context mapping (the last window of each series), checked: the
    context.json of a folder saved before `lstmkit.tasks.forecasting.contexts.Contexts`
    (since then context.safetensors, checked by `Contexts.from_bytes`) and the context of
    an ONNX export's export.json. ``known``: the series of the scaler, which ``scaler``
    names in the message for one without its scaling (a model folder's scaler.json, an
    export's scaler field)."""
    if not isinstance(context, dict) or not context:
        raise LstmkitError("expected an object with the last window of each series")
    window, n_features = state.window, state.n_features
    for sid, ctx in context.items():
        if sid not in known:
            raise LstmkitError(f"series {sid!r} has no scaling parameters in {scaler}")
        values = np.asarray(ctx["values"], dtype=np.float64)
        rows = len(values) if state.pad and values.ndim == 2 and len(values) >= 1 else window
        if values.shape != (rows, n_features) or not np.isfinite(values).all() or rows > window:
            raise LstmkitError(
                f"series {sid!r}: values must be {window} rows of {n_features} finite numbers"
                + (" (or fewer, at least 1)" if state.pad else "")
            )
        if not isinstance(ctx["times"], list) or len(ctx["times"]) != rows:
            raise LstmkitError(f"series {sid!r}: times must list {rows} timestamps")
        times = times_from_strings([str(t) for t in ctx["times"]], state.tz)
        if not times.is_monotonic_increasing or not times.is_unique:  # forecasts follow the last
            raise LstmkitError(f"series {sid!r}: times must increase")
    return context
