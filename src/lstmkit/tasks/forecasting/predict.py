"""The torch-free half of forecasting: from raw series to forecast tables around one network call.

`PredictCore` holds what a fitted forecaster knows about its data (`FittedState`, the
per-series `SeriesScaler`, the last window of each series) and a function that runs the
network on scaled windows. Around that function it does everything else `Forecaster.predict`
does: read new data like the training data, scale the windows and the known future
covariates, keep the quantiles ordered and around the point forecast, scale back, refuse
non-finite results, and lay the forecast out as a table. `Forecaster` passes its PyTorch
module, `lstmkit.runtime` an ONNX session, so both give the same tables by construction.
Nothing here imports torch.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from lstmkit.data.magnitudes import FORECAST, check_magnitudes
from lstmkit.data.scalers import SeriesScaler
from lstmkit.data.series import (
    Series,
    SeriesData,
    check_step_room,
    format_time,
    future_times,
    load_future,
    load_series,
    tail_times,
    tz_from_name,
    tz_name,
)
from lstmkit.errors import LstmkitError
from lstmkit.tasks.forecasting.calibration import apply_offsets
from lstmkit.tasks.forecasting.contexts import Contexts
from lstmkit.tasks.forecasting.evaluation import qname
from lstmkit.tasks.forecasting.state import FittedState

#: (batch, window, features) scaled float32 windows [, (batch, horizon, n_future) scaled
#: float32 known covariates] -> (batch, horizon, n_outputs) scaled forecasts
ForecastScaled = Callable[[np.ndarray, np.ndarray | None], np.ndarray]

DataLike = pd.DataFrame | pd.Series | str | os.PathLike[str] | SeriesData


def combine_members(outs: np.ndarray) -> np.ndarray:
    """The forecast of a seed ensemble from its networks' forecasts ``outs`` (networks,
    batch, steps, 1 + quantiles): the mean of the point forecasts, the median of each
    quantile level (a median keeps the band's shape where one network's band is off)."""
    combined = outs.mean(axis=0)
    combined[..., 1:] = np.median(outs[..., 1:], axis=0)
    return combined


def band_holds_point(out: np.ndarray, levels: list[float] | None) -> np.ndarray:
    """``out`` (..., 1 + levels) with each quantile of a level below 0.5 lowered to the
    point forecast (channel 0) where it lies above it, and each above 0.5 raised where it
    lies below: a band never leaves out its own forecast (a point trained with its own loss
    beside the pinball-trained quantiles, or averaged over an ensemble whose bands take the
    median, can fall outside; one M4 Weekly series did). The levels stay ordered, the
    point and a 0.5 quantile are unchanged; a NaN point changes nothing."""
    if not levels:
        return out
    lv = np.asarray(levels, dtype=np.float64)
    out = out.copy()
    point = out[..., :1]
    for side, bound in ((lv < 0.5, np.fmin), (lv > 0.5, np.fmax)):
        channels = np.flatnonzero(side) + 1
        if len(channels) == 0:
            continue
        if channels[-1] - channels[0] == len(channels) - 1:  # ascending levels: a slice
            part = out[..., channels[0] : channels[-1] + 1]
            bound(part, point, out=part)
        else:
            out[..., channels] = bound(out[..., channels], point)
    return out


def last_windows(histories: list[np.ndarray], window: int) -> np.ndarray:
    """The last ``window`` rows of each history (rows, features) as one (n, window,
    features) float64 array; a shorter history is left-padded with NaN rows, which a
    padded network (`ForecastNet` with ``mask``) fills with the first real row and marks."""
    first = np.asarray(histories[0]) if histories else np.zeros((0, 1))
    if histories and all(len(h) >= window for h in histories):  # no padding: one step
        return np.stack([np.asarray(h, dtype=np.float64)[len(h) - window :] for h in histories])
    out = np.full((len(histories), window, first.shape[-1]), np.nan)
    for k, h in enumerate(histories):
        tail = np.asarray(h, dtype=np.float64)[-window:]
        out[k, window - len(tail) :] = tail
    return out


def padded_rows(windows: np.ndarray) -> np.ndarray:
    """(n, window) bool: the leading rows of each window that are all NaN (padding)."""
    blank = np.isnan(windows).all(axis=2)
    return np.cumprod(blank, axis=1).astype(bool)


@dataclass(eq=False)
class PassMemo:
    """The last forecast `PredictCore.many` made without known future or static inputs, with
    what it was made from: the windows, their series and a token of everything else it
    depends on. The check for a diverged network (`Forecaster.check_forecast`) and the
    held-out evaluation of the same data forecast the same windows (`lstmkit forecast` runs
    both), so the network runs once for both (100,000 series: one pass of about a second).
    A copy starts empty."""

    token: tuple[Any, ...] = ()
    ids: list[str] = field(default_factory=list)
    windows: np.ndarray | None = None
    out: np.ndarray | None = None

    def get(self, token: tuple[Any, ...], ids: list[str], windows: np.ndarray) -> np.ndarray | None:
        """A copy of the stored forecast when ``token``, ``ids`` and ``windows`` are those it
        was made from, else None."""
        same = (
            self.out is not None and self.windows is not None
            and self.windows.shape == windows.shape and len(self.ids) == len(ids)
            and self.token == token and self.ids == list(ids)
            and np.array_equal(self.windows, windows, equal_nan=True)  # padded rows: NaN
        )  # fmt: skip
        return self.out.copy() if same and self.out is not None else None

    def put(
        self, token: tuple[Any, ...], ids: list[str], windows: np.ndarray, out: np.ndarray
    ) -> None:
        """Keep ``out``, the forecast of ``windows`` of series ``ids`` under ``token``."""
        self.token, self.ids, self.windows, self.out = token, list(ids), windows.copy(), out.copy()

    def __deepcopy__(self, memo: dict[int, Any]) -> PassMemo:
        return PassMemo()  # the copy's network may be changed on its own

    def __reduce__(self) -> tuple[Any, ...]:
        return (PassMemo, ())


@dataclass
class PredictCore:
    """A fitted forecaster's data knowledge plus its network as a function (see module doc).

    state: the fitted data description. scaler: per-series scaling. context: the last
    window of each series (`Contexts`, or the mapping of an ``export.json``, series id ->
    {"values": (window, features) raw, "times": window timestamps as text}, taken as one).
    horizon: forecast steps. quantiles: the quantile levels of output channels 1.. (or
    None). forecast_scaled: the network on scaled inputs (`ForecastScaled`).
    """

    state: FittedState
    scaler: SeriesScaler
    context: Contexts | dict[str, dict[str, Any]]
    horizon: int
    quantiles: list[float] | None
    forecast_scaled: ForecastScaled
    batch_size: int = 1024
    #: (ids, their static covariates or None for the stored ones) -> the network's static
    #: inputs (series, inputs); None for a model without static inputs
    static_inputs: Callable[[list[str], dict[str, list[Any]] | None], np.ndarray] | None = None
    #: the last forecast of `many` (a `PassMemo` kept by the `Forecaster` across its cores)
    #: and what the network's forecasts depend on now besides the windows (its parameters,
    #: scaling, band shifts, settings: compared by `PassMemo.get`); None: no memo
    memo: PassMemo | None = None
    memo_token: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        self.context = Contexts.from_dict(self.context, self.state.window, self.state.tz)

    @property
    def contexts(self) -> Contexts:
        """`context` as `Contexts` (a mapping was converted when the core was made)."""
        assert isinstance(self.context, Contexts)
        return self.context

    @cached_property
    def band_offsets(self) -> np.ndarray | None:
        """The conformal shifts of the quantile channels, (horizon, levels), or None; a
        saved shape that does not fit the horizon and levels is one `LstmkitError`."""
        cal = self.state.calibration
        if cal is None:
            return None
        offsets = np.asarray(cal, dtype=np.float64)
        want = (self.horizon, len(self.quantiles or []))
        if offsets.shape != want:
            raise LstmkitError(
                f"calibration must be {want[0]} rows of {want[1]} numbers (horizon x "
                f"quantile levels), got shape {offsets.shape}"
            )
        return offsets

    @cached_property
    def context_histories(self) -> list[tuple[str, pd.Index, np.ndarray]]:
        """(id, times, values (window, features)) of each stored series, parsed once (a
        `Forecaster` makes a new core per call, so `set_context` is always seen)."""
        c = self.contexts
        first = c.window - c.rows
        return [(sid, c.series_times(k), c.values[k, first[k] :]) for k, sid in enumerate(c.ids)]

    @cached_property
    def expected_times(self) -> pd.Index:
        """The times of the first stored series' context: the model's time axis."""
        return self.contexts.series_times(0)

    def _context_ends(self) -> tuple[list[str], np.ndarray, pd.Index, pd.Index | None]:
        """The stored context of every series in one piece: ids, values (series, window,
        features), the last time of each series and (integer times) the one before it.
        Short series (a padded model) are left-padded with NaN rows, as `last_windows`
        pads them."""
        c = self.contexts
        last, prev = c.ends()
        return list(c.ids), c.values, last, prev

    def load(self, data: DataLike, freq: str | None = None, what: str = "the data") -> SeriesData:
        """Read ``data`` with the columns of the training data and check that its times
        are on the model's time axis (`on_time_axis`) and that no value is of implausible
        magnitude for its series (`check_magnitudes`, as at fit: a fill code such as 1e30
        would put the forecast off by as many orders of magnitude); ``what`` names it in
        messages. Series already read (`SeriesData`) are only put on the axis."""
        if not isinstance(data, SeriesData):
            st = self.state
            data = load_series(
                data,
                st.target,
                time_col=None if st.time_from_index else st.time_col,
                id_col=st.id_col,
                covariates=st.covariates,
                freq=freq,
                future_covariates=st.future_covariates,
                **({"static_cols": st.static_cols} if st.static_cols else {}),
            )
            if data.series:
                values = np.concatenate([s.values for s in data.series.values()])
                check_magnitudes(data, values, consequence=FORECAST)
        return self.on_time_axis(data, what)

    def on_time_axis(self, sd: SeriesData, what: str = "the data") -> SeriesData:
        """``sd`` on the training data's time axis, or `LstmkitError` (one line naming the
        axis the model expects and the one ``what`` has).

        The axis is that of the stored context: dates or integers; for dates the
        frequency (every series must lie on its grid) and the zone (naive stays naive;
        times in another zone are taken only where they show the same local clock as the
        model's zone, and converted to it); for integers the step. A forecast from times
        on another axis would be stamped with times that mean something else.
        """
        st = self.state
        expected = self.expected_times
        model_dates = isinstance(expected, pd.DatetimeIndex)
        out = SeriesData(
            sd.target, sd.time_col, sd.id_col, sd.covariates, st.freq if model_dates else None,
            future_covariates=sd.future_covariates, static_cols=sd.static_cols, static=sd.static,
        )  # fmt: skip
        for sid, s in sd.series.items():
            times = s.times
            if isinstance(times, pd.DatetimeIndex) != model_dates:
                got = _axis_text(times, sd.freq)
                raise LstmkitError(
                    f"the model was trained on {_axis_text(expected, st.freq)}; {what} has "
                    f"{got}; pass times like those of the training data"
                )
            if model_dates:
                times = self._check_dates(times, expected, sd.freq, what)
            elif len(times) > 1 and len(expected) > 1:
                step, want = int(times[1] - times[0]), int(expected[1] - expected[0])
                if step != want:
                    raise LstmkitError(
                        f"the model was trained on integer times {want} apart; {what} has "
                        f"integer times {step} apart; pass times like those of the training data"
                    )
            out.series[sid] = s if times is s.times else Series(s.id, times, s.values)
        return out

    def _check_dates(
        self, times: pd.DatetimeIndex, expected: pd.DatetimeIndex, freq: str | None, what: str
    ) -> pd.DatetimeIndex:
        """The zone and frequency part of `on_time_axis` for one series' dates (``freq``:
        the one inferred from ``what``)."""
        st = self.state
        zone, want = tz_name(times.tz), st.tz
        if zone != want:
            if zone is None or want is None:
                has = f"times in zone {zone}" if zone else "times without a zone"
                trained = f"times in zone {want}" if want else "times without a zone"
                raise LstmkitError(
                    f"the model was trained on {trained}; {what} has {has}; write the times "
                    + (f"in zone {want}" if want else "without a zone")
                )
            local = times.tz_convert(tz_from_name(want))
            if not (local.tz_localize(None) == times.tz_localize(None)).all():
                raise LstmkitError(
                    f"the model was trained on times in zone {want}; {what} has times in zone "
                    f"{zone}, which shows another local time; convert the times to {want}"
                )
            times = local
        if st.freq and len(times) > 1:
            grid = pd.date_range(times[0], periods=len(times), freq=st.freq)
            if not grid.equals(times):
                raise LstmkitError(
                    f"the model was trained on {_axis_text(expected, st.freq)}; {what} has "
                    f"{_axis_text(times, freq)}; resample it to the model's frequency"
                )
        return times

    def windows(
        self,
        windows: np.ndarray,
        series_id: str | None = None,
        *,
        future: np.ndarray | None = None,
        batch_size: int | None = None,
    ) -> np.ndarray:
        """Forecasts for many raw input windows of one series (see `Forecaster.predict_windows`).

        windows (n, window, features) raw -> (n, horizon, outputs) in the data's units:
        the point forecast in ``[..., 0]``, then one channel per quantile (ordered).
        """
        sid = series_id if series_id is not None else next(iter(self.scaler.params))
        return self.many([sid] * len(np.asarray(windows)), windows, future, batch_size)

    def many(
        self,
        ids: list[str],
        windows: np.ndarray,
        future: np.ndarray | None = None,
        batch_size: int | None = None,
        *,
        finite: bool = True,
        static: dict[str, list[Any]] | None = None,
        clip: bool = True,
    ) -> np.ndarray:
        """Forecasts for raw input windows of many series, window ``i`` of series
        ``ids[i]``: (n, window, features) [+ known covariates (n, horizon, n_future)] ->
        (n, horizon, outputs) in the data's units, ``batch_size`` windows (default: the
        core's) per call of the network. Each window's forecast is the one it gets alone.
        A forecast that is not finite is refused (naming its series) unless ``finite`` is
        False, which returns it as it is. ``static``: each series' static covariates
        (None: those stored with the model), for a model that has them. The forecasts of
        the non-negative series (`FittedState.nonnegative`) are clipped at 0 unless
        ``clip`` is False."""
        st = self.state
        windows = np.asarray(windows, dtype=np.float64)
        # a padded model takes NaN rows before a short series' start (`last_windows`)
        blank = padded_rows(windows) if st.pad and windows.ndim == 3 else False
        if not (np.isfinite(windows) | np.asarray(blank)[..., None]).all() or (
            st.pad and windows.ndim == 3 and windows.shape[1] and blank[:, -1].any()
        ):
            raise LstmkitError(
                "windows hold NaN or infinite values; pass finite values only"
                + (" (or whole NaN rows before a short series' start)" if st.pad else "")
            )
        if windows.ndim != 3 or windows.shape[1] != st.window:
            raise LstmkitError(
                f"windows must have shape (n, {st.window}, features), got {windows.shape}"
            )
        fidx = st.future_columns
        if fidx and (future is None or np.shape(future)[:2] != (len(windows), self.horizon)):
            raise LstmkitError(
                f"this model needs the known future values of {st.future_covariates}"
                f" for the {self.horizon} forecast steps; pass them (future=...)"
            )
        if fidx and not np.isfinite(np.asarray(future, dtype=np.float64)).all():
            raise LstmkitError(
                f"the known future values of {st.future_covariates} hold NaN or infinite "
                "values; pass finite values for every forecast step"
            )
        memo = self.memo if not fidx and self.static_inputs is None else None
        out = None if memo is None else memo.get(self.memo_token, ids, windows)
        if out is None:
            out = self._forecast_units(ids, windows, future, static, batch_size)
            if memo is not None:
                memo.put(self.memo_token, ids, windows, out)
        if clip:
            out = st.clip(ids, out)
        ok = np.isfinite(out).all(axis=(1, 2))
        if finite and not ok.all():
            sid = ids[int(np.flatnonzero(~ok)[0])]
            raise LstmkitError(
                f"the model's forecast for series {sid!r} is not finite (NaN or infinity); "
                "the inputs are outside what it can handle: use scaler='minmax' or "
                "'standard' with instance normalisation, or rescale the data"
            )
        return out

    def _forecast_units(
        self,
        ids: list[str],
        windows: np.ndarray,
        future: np.ndarray | None,
        static: dict[str, list[Any]] | None,
        batch_size: int | None,
    ) -> np.ndarray:
        """`many`'s forecasts of checked windows, in the data's units, before clipping."""
        fidx = self.state.future_columns
        shift, scale = self.scaler.stacked(ids)  # (n, columns)
        windows = self.scaler.log_target(ids, windows)  # the log scaler's target
        inputs = None if self.static_inputs is None else self.static_inputs(ids, static)
        size = batch_size or self.batch_size
        outs = []
        for start in range(0, len(windows), size):
            part = slice(start, start + size)
            sh, sc = shift[part, None, :], scale[part, None, :]
            chunk = (windows[part] - sh) / sc
            fut = None
            if fidx:
                raw = np.asarray(future[part], dtype=np.float64)
                fut = ((raw - sh[..., fidx]) / sc[..., fidx]).astype(np.float32)
            with np.errstate(over="ignore", invalid="ignore"):  # `many` reports them
                if inputs is None:
                    outs.append(self.forecast_scaled(chunk.astype(np.float32), fut))
                else:
                    x32 = chunk.astype(np.float32)
                    outs.append(self.forecast_scaled(x32, fut, inputs[part]))  # type: ignore[call-arg]
        out = np.concatenate(outs) if outs else np.zeros((0, self.horizon, 1))
        out[..., 1:] = np.sort(out[..., 1:], axis=-1)  # keep quantiles ordered
        out = band_holds_point(apply_offsets(out, self.band_offsets), self.quantiles)
        out = np.asarray(out, dtype=np.float64) * scale[:, None, None, 0] + shift[:, None, None, 0]
        return self.scaler.exp_target(out)

    def series(self, sid: str, history: np.ndarray, future: np.ndarray | None = None) -> np.ndarray:
        """Forecast from the raw history (time, features) of one series (and the known
        covariates over the horizon, (horizon, n_future)): (horizon, n_outputs)."""
        window = self.state.window
        self.check_rows(sid, len(history))
        fut = None if future is None else np.asarray(future)[None]
        return self.windows(last_windows([np.asarray(history)], window), sid, future=fut)[0]

    def check_rows(self, sid: str, rows: int, extra: int = 0, what: str = "to forecast") -> None:
        """Refuse a series of ``rows`` rows too short for the window (a padded model: for
        one real row) plus ``extra``."""
        need = (1 if self.state.pad else self.state.window) + extra
        if rows < need:
            wanted = "one row" if self.state.pad else f"the last {self.state.window} (its window)"
            more = f" and {extra} more" if extra else ""
            raise LstmkitError(
                f"series {sid!r} has {rows} rows; the model needs {wanted}{more} {what}"
            )

    def frames(self, ids: list[str], times: pd.Index, fc: np.ndarray) -> pd.DataFrame:
        """The forecast table of many series in one piece: ``fc`` (series, steps, outputs)
        of the series ``ids``, ``times`` their steps' times one series after the other."""
        steps = fc.shape[1]
        cols: dict[str, Any] = {}
        if self.state.id_col:
            cols[self.state.id_col] = np.repeat(np.asarray(ids, dtype=object), steps)
        cols[self.state.output_time_col] = pd.Index(times)
        cols["forecast"] = fc[:, :, 0].ravel()
        for i, q in enumerate(self.quantiles or []):
            cols[qname(q)] = fc[:, :, 1 + i].ravel()
        return pd.DataFrame(cols)

    def predict(
        self,
        data: DataLike | None = None,
        future: pd.DataFrame | str | os.PathLike[str] | None = None,
    ) -> pd.DataFrame:
        """The ``horizon`` steps after ``data`` (default: after the stored context) as one
        table; see `Forecaster.predict`. The last windows of all series go through the
        network together, ``batch_size`` at a time."""
        info = self.state
        h, window = self.horizon, info.window
        static = None
        if data is None:
            ids, windows, last, prev = self._context_ends()
            freq = info.freq
        else:
            sd = self.load(data, what="the history")
            for s in sd.series.values():
                self.check_rows(s.id, len(s))
            series = list(sd.series.values())
            ids = [s.id for s in series]
            windows = last_windows([s.values for s in series], window)
            last = tail_times(series, 1)
            prev = None
            if not isinstance(last, pd.DatetimeIndex):
                prev = pd.Index([s.times[-2] if len(s) > 1 else s.times[-1] - 1 for s in series])
            freq = sd.freq
            static = sd.static
        known = None
        if future is not None and not info.future_covariates:
            raise LstmkitError(
                "this model uses no known future covariates, so a future table means nothing "
                "to it; leave it out (future=None, no --future)"
            )
        if info.future_covariates:
            if future is None:
                raise LstmkitError(
                    f"this model uses known future values of {info.future_covariates}; pass "
                    "them for the forecast steps (future=table, or --future FILE)"
                )
            known = load_future(
                future, info.future_covariates, time_col=info.time_col, id_col=info.id_col
            )
        times = steps_after(last, prev, freq, h)
        fut = None
        if known is not None:
            fut = np.stack([self._known(known, sid, times[k * h : (k + 1) * h])
                            for k, sid in enumerate(ids)])  # fmt: skip
        return self.frames(ids, times, self.many(ids, windows, fut, static=static))

    def _known(
        self, known: dict[str, tuple[pd.Index, np.ndarray]], sid: str, steps: pd.Index
    ) -> np.ndarray:
        """The known future covariates of series ``sid`` at the forecast ``steps``."""
        info = self.state
        ftimes, fvalues = known.get(sid, (pd.Index([]), np.zeros((0, 0))))
        pos = pd.Index(ftimes).get_indexer(steps)
        if (pos < 0).any():
            missing = format_time(steps[int(np.flatnonzero(pos < 0)[0])])
            raise LstmkitError(
                f"the future table lacks {info.future_covariates} for series {sid!r} "
                f"at {missing}; it needs the {len(steps)} steps after the data"
            )
        return fvalues[pos]


def steps_after(last: pd.Index, prev: pd.Index | None, freq: str | None, steps: int) -> pd.Index:
    """The ``steps`` times after each of ``last`` (one per series), one series after the
    other, as `lstmkit.data.series.future_times` gives them for each series: dates on
    ``freq`` (computed once per distinct last date), else integer steps of ``last -
    prev``."""
    if isinstance(last, pd.DatetimeIndex) and freq:
        _, first, inverse = np.unique(last.asi8, return_index=True, return_inverse=True)
        ranges = [future_times(last[k : k + 1], freq, steps) for k in first.tolist()]
        every = ranges[0].append(ranges[1:]) if len(ranges) > 1 else ranges[0]
        return every.take((inverse.reshape(-1)[:, None] * steps + np.arange(steps)).ravel())
    if isinstance(last, pd.DatetimeIndex):  # dates without a frequency
        parts = [future_times(last[k : k + 1], None, steps) for k in range(len(last))]
        return parts[0].append(parts[1:]) if len(parts) > 1 else parts[0]
    ends = np.asarray(last, dtype=np.int64)
    step = ends - np.asarray(prev, dtype=np.int64) if prev is not None else np.ones_like(ends)
    check_step_room(ends, step, steps)  # else the steps past 2**63 - 1 wrap to negative
    return pd.Index((ends[:, None] + np.arange(1, steps + 1) * step[:, None]).ravel())


# Words for pandas offsets: (adjective for one step, plural for several).
_FREQ_WORDS = {
    "Day": ("daily", "days"), "Hour": ("hourly", "hours"), "Minute": ("minutely", "minutes"),
    "Second": ("secondly", "seconds"), "BusinessDay": ("business-daily", "business days"),
    "Week": ("weekly", "weeks"), "MonthBegin": ("monthly", "months"),
    "MonthEnd": ("monthly", "months"), "QuarterBegin": ("quarterly", "quarters"),
    "QuarterEnd": ("quarterly", "quarters"), "YearBegin": ("yearly", "years"),
    "YearEnd": ("yearly", "years"),
}  # fmt: skip


def _axis_text(times: pd.Index, freq: str | None) -> str:
    """A time axis in words: "daily timestamps (freq D)", "integer times", ..."""
    if not isinstance(times, pd.DatetimeIndex):
        return "integer times"
    if freq:
        try:
            offset = pd.tseries.frequencies.to_offset(freq)
        except ValueError:
            return f"timestamps with freq {freq}"
        words = _FREQ_WORDS.get(type(offset).__name__)
        if words is None:
            return f"timestamps with freq {freq}"
        if offset.n == 1:
            return f"{words[0]} timestamps (freq {freq})"
        return f"timestamps every {offset.n} {words[1]} (freq {freq})"
    if len(times) > 1:
        return f"timestamps {times[1] - times[0]} apart"
    return "timestamps"
