"""The torch-free half of forecasting: from raw series to forecast tables around one network call.

`PredictCore` holds what a fitted forecaster knows about its data (`FittedState`, the
per-series `SeriesScaler`, the last window of each series) and a function that runs the
network on scaled windows. Around that function it does everything else `Forecaster.predict`
does: read new data like the training data, scale the windows and the known future
covariates, keep the quantiles ordered, scale back, refuse non-finite results, and lay the
forecast out as a table. `Forecaster` passes its PyTorch module, `lstmkit.runtime` an ONNX
session, so both give the same tables by construction. Nothing here imports torch.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from lstmkit.data.scalers import SeriesScaler
from lstmkit.data.series import (
    SeriesData,
    format_time,
    future_times,
    load_future,
    load_series,
    times_from_strings,
)
from lstmkit.errors import LstmkitError
from lstmkit.tasks.forecasting.evaluation import qname
from lstmkit.tasks.forecasting.state import FittedState

#: (batch, window, features) scaled float32 windows [, (batch, horizon, n_future) scaled
#: float32 known covariates] -> (batch, horizon, n_outputs) scaled forecasts
ForecastScaled = Callable[[np.ndarray, np.ndarray | None], np.ndarray]

DataLike = pd.DataFrame | pd.Series | str | os.PathLike[str] | SeriesData


@dataclass
class PredictCore:
    """A fitted forecaster's data knowledge plus its network as a function (see module doc).

    state: the fitted data description. scaler: per-series scaling. context: series id ->
    {"values": (window, features) raw, "times": window timestamps as strings}.
    horizon: forecast steps. quantiles: the quantile levels of output channels 1.. (or
    None). forecast_scaled: the network on scaled inputs (`ForecastScaled`).
    """

    state: FittedState
    scaler: SeriesScaler
    context: dict[str, dict[str, Any]]
    horizon: int
    quantiles: list[float] | None
    forecast_scaled: ForecastScaled

    @cached_property
    def context_histories(self) -> list[tuple[str, pd.Index, np.ndarray]]:
        """(id, times, values (window, features)) of each stored series, parsed once (a
        `Forecaster` makes a new core per call, so `set_context` is always seen)."""
        return [
            (sid, times_from_strings(ctx["times"], self.state.tz), np.asarray(ctx["values"], float))
            for sid, ctx in self.context.items()
        ]

    def load(self, data: DataLike, freq: str | None = None) -> SeriesData:
        """Read ``data`` with the columns, frequency and zone of the training data."""
        if isinstance(data, SeriesData):
            return data
        st = self.state
        return load_series(
            data,
            st.target,
            time_col=None if st.time_from_index else st.time_col,
            id_col=st.id_col,
            covariates=st.covariates,
            freq=freq or st.freq,
            future_covariates=st.future_covariates,
        )

    def windows(
        self,
        windows: np.ndarray,
        series_id: str | None = None,
        *,
        future: np.ndarray | None = None,
        batch_size: int = 1024,
    ) -> np.ndarray:
        """Forecasts for many raw input windows of one series (see `Forecaster.predict_windows`).

        windows (n, window, features) raw -> (n, horizon, outputs) in the data's units:
        the point forecast in ``[..., 0]``, then one channel per quantile (ordered).
        """
        st, scaler = self.state, self.scaler
        sid = series_id if series_id is not None else next(iter(scaler.params))
        windows = np.asarray(windows, dtype=np.float64)
        if not np.isfinite(windows).all():
            raise LstmkitError("windows hold NaN or infinite values; pass finite values only")
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
        outs = []
        for start in range(0, len(windows), batch_size):
            chunk = scaler.transform(sid, windows[start : start + batch_size])
            fut = None
            if fidx:
                fut = scaler.transform(sid, future[start : start + batch_size], columns=fidx)
                fut = fut.astype(np.float32)
            with np.errstate(over="ignore", invalid="ignore"):  # reported below
                outs.append(self.forecast_scaled(chunk.astype(np.float32), fut))
        out = np.concatenate(outs) if outs else np.zeros((0, self.horizon, 1))
        out[..., 1:] = np.sort(out[..., 1:], axis=-1)  # keep quantiles ordered
        out = scaler.inverse_transform(sid, out)
        if not np.isfinite(out).all():
            raise LstmkitError(
                f"the model's forecast for series {sid!r} is not finite (NaN or infinity); "
                "the inputs are outside what it can handle: use scaler='minmax' or "
                "'standard' with instance normalisation, or rescale the data"
            )
        return out

    def series(self, sid: str, history: np.ndarray, future: np.ndarray | None = None) -> np.ndarray:
        """Forecast from the raw history (time, features) of one series (and the known
        covariates over the horizon, (horizon, n_future)): (horizon, n_outputs)."""
        window = self.state.window
        if len(history) < window:
            raise LstmkitError(
                f"series {sid!r} has {len(history)} rows; the model needs the last {window} "
                "(its window) to forecast"
            )
        fut = None if future is None else np.asarray(future)[None]
        return self.windows(np.asarray(history)[None, -window:], sid, future=fut)[0]

    def frame(self, sid: str, times: pd.Index, fc: np.ndarray) -> pd.DataFrame:
        """The forecast table of one series: (id,) time, ``forecast``, ``q<percent>``..."""
        cols: dict[str, Any] = {}
        if self.state.id_col:
            cols[self.state.id_col] = [sid] * len(times)
        cols[self.state.output_time_col] = pd.Index(times)  # the values, not a list: faster
        cols["forecast"] = fc[:, 0]
        for i, q in enumerate(self.quantiles or []):
            cols[qname(q)] = fc[:, 1 + i]
        return pd.DataFrame(cols)

    def predict(
        self,
        data: DataLike | None = None,
        future: pd.DataFrame | str | os.PathLike[str] | None = None,
    ) -> pd.DataFrame:
        """The ``horizon`` steps after ``data`` (default: after the stored context) as one
        table; see `Forecaster.predict`."""
        info = self.state
        h = self.horizon
        if data is None:
            histories = self.context_histories
            freq = info.freq
        else:
            sd = self.load(data)
            histories = [(s.id, s.times, s.values) for s in sd.series.values()]
            freq = sd.freq or info.freq
        known = None
        if info.future_covariates:
            if future is None:
                raise LstmkitError(
                    f"this model uses known future values of {info.future_covariates}; pass "
                    "them for the forecast steps (future=table, or --future FILE)"
                )
            known = load_future(
                future, info.future_covariates, time_col=info.time_col, id_col=info.id_col
            )
        frames = []
        for sid, times, values in histories:
            steps = future_times(times, freq, h)
            fut = None
            if known is not None:
                ftimes, fvalues = known.get(sid, (pd.Index([]), np.zeros((0, 0))))
                pos = pd.Index(ftimes).get_indexer(steps)
                if (pos < 0).any():
                    missing = format_time(steps[int(np.flatnonzero(pos < 0)[0])])
                    raise LstmkitError(
                        f"the future table lacks {info.future_covariates} for series {sid!r} "
                        f"at {missing}; it needs the {h} steps after the data"
                    )
                fut = fvalues[pos]
            frames.append(self.frame(sid, steps, self.series(sid, values, fut)))
        return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
