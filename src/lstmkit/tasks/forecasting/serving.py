"""Serving a forecaster (``lstmkit serve``): `TorchForecastPredictor` (a saved folder on
PyTorch; an export runs on `lstmkit.tasks.forecasting.runtime.ForecastPredictor`) and
`SERVING`, the kind's `lstmkit.serving.schema.KindServing`:

- ``POST /predict`` takes ``{"history": [record, ...], "future": [record, ...]}`` (both
  optional; an empty body forecasts after the training data) and returns ``{"horizon": h,
  "forecast": [{time, forecast, q10, ...}, ...]}``. A record's values are finite numbers,
  strings or null.
- ``GET /model`` adds horizon, window, freq, tz, quantiles, target, the time and id
  columns, the covariates and the columns a history and a future record hold.

No torch here: `TorchForecastPredictor` imports the estimator when it is built.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from fastapi import Body, FastAPI
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator

from lstmkit.errors import LstmkitError
from lstmkit.io.model_dir import read_model_meta
from lstmkit.serving.schema import ModelInfo, unicode_text


class TorchForecastPredictor:
    """A saved `Forecaster` served with PyTorch: ``kind`` "forecaster", ``backend`` "torch",
    ``state`` (its `FittedState`) and ``info`` (kind, lstmkit_version, backend, config,
    horizon, quantiles, freq, target, time_col, id_col, covariates, future_covariates,
    window, combined_with: the baseline a combined model mixes in, else None)."""

    kind = "forecaster"
    backend = "torch"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        from lstmkit.tasks.forecasting.estimator import Forecaster

        self.path = Path(path)
        self.model = Forecaster.load(path)
        state, cfg = self.model.state, self.model.config
        assert state is not None
        self.state = state
        self.info: dict[str, Any] = {
            "kind": self.kind,
            "lstmkit_version": read_model_meta(self.path)["lstmkit_version"],
            "backend": self.backend,
            "config": cfg.to_dict(),
            "horizon": cfg.horizon,
            "quantiles": list(cfg.quantiles or []),
            "freq": state.freq,
            "target": state.target,
            "time_col": state.output_time_col,
            "id_col": state.id_col,
            "covariates": list(state.covariates),
            "future_covariates": list(state.future_covariates),
            "window": state.window,
            "combined_with": None if self.model.mixture is None else self.model.mixture.baseline,
        }

    def predict(
        self, data: pd.DataFrame | None = None, future: pd.DataFrame | None = None
    ) -> pd.DataFrame:
        """The forecast after ``data`` (default: after the training data): (id,) time,
        ``forecast`` and one ``q<percent>`` column per quantile, ``horizon`` rows a series."""
        return self.model.predict(data, future)


# ---------------------------------------------------------------------- request / response
def _check_cell(value: Any) -> Any:
    """A record's value: a finite number, a string or null (JSON true/false, lists and
    objects are refused)."""
    if value is None:
        return value
    if isinstance(value, str):
        return unicode_text(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        shown = json.dumps(value)[:40] if isinstance(value, (bool, list, dict)) else repr(value)
        raise ValueError(f"must be a number, a string or null, got {shown}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {value}")
    if isinstance(value, int):
        try:
            float(value)  # what the model computes with; an int beyond 1.8e308 overflows
        except OverflowError:
            sign = "-" if value < 0 else ""
            raise ValueError(
                f"must be a finite number, got an integer beyond {sign}1.8e308"
            ) from None
    return value


#: a record's value (`_check_cell`)
Cell = Annotated[
    int | float | str | None,
    PlainValidator(_check_cell, json_schema_input_type=int | float | str | None),
]
#: one row of a history, a future or a forecast: column -> value
Record = dict[Annotated[str, AfterValidator(unicode_text)], Cell]


class ForecastRequest(BaseModel):
    """The series to forecast from (records of time, target and covariate columns; omitted:
    the training data) and the known future covariates over the horizon (records)."""

    model_config = ConfigDict(extra="forbid")
    history: list[Record] | None = Field(
        default=None,
        min_length=1,
        examples=[[{"month": "1960-11-01", "passengers": 390}]],
    )
    future: list[Record] | None = Field(default=None, min_length=1)


class ForecastResponse(BaseModel):
    """``horizon`` forecast rows per series: (id,) time, forecast and one column a quantile."""

    horizon: int
    forecast: list[Record]


class ForecastModelInfo(ModelInfo):
    """A forecaster: what a history must hold and what a forecast gives."""

    horizon: int = Field(description="steps forecast after the history")
    window: int = Field(description="the input steps the network reads per series")
    min_rows: int = Field(
        description="the fewest rows a history needs per series: the window, or 1 for a "
        "model that left-pads shorter histories (pad)"
    )
    freq: str | None = Field(description="the pandas frequency of the time column")
    tz: str | None = Field(description="the time zone of the times, if they have one")
    quantiles: list[float] = Field(description="quantile levels forecast besides the mean")
    target: str
    time_col: str = Field(description="the time column of forecasts ('step': no times)")
    id_col: str | None = Field(description="the series id column (several series)")
    covariates: list[str]
    future_covariates: list[str] = Field(description="covariates 'future' must give")
    history_columns: list[str] = Field(description="the columns of each history record")
    future_columns: list[str] = Field(description="the columns of each future record")


# ---------------------------------------------------------------------- forecasts as JSON
def _cell(value: Any) -> Any:
    """A forecast table cell as JSON: times as text, numpy numbers as Python numbers."""
    if isinstance(value, pd.Timestamp):
        return (
            value.isoformat() if value != value.normalize() or value.tzinfo else str(value.date())
        )
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        raise LstmkitError("the model produced a non-finite forecast")
    return value


def forecast_records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of a forecast table as JSON records (times ISO 8601, date alone at midnight)."""
    return [{str(k): _cell(v) for k, v in row.items()} for row in table.to_dict("records")]


def _history_frame(records: list[dict[str, Any]], pred: Any) -> pd.DataFrame:
    """Request records -> the DataFrame `predict` takes (the time column as the index when
    the model learnt its times from an unnamed DatetimeIndex)."""
    frame = pd.DataFrame.from_records(records)
    if getattr(getattr(pred, "state", None), "time_from_index", False):
        col = pred.info.get("time_col") or "time"
        if col not in frame.columns:
            raise LstmkitError(f"history records need a {col!r} column with the timestamps")
        try:
            frame = frame.set_index(pd.DatetimeIndex(pd.to_datetime(frame.pop(col))))
        except (ValueError, TypeError) as err:
            raise LstmkitError(f"history {col!r} holds values that are not dates ({err})") from None
        frame.index.name = None
    return frame


class ForecastServing:
    """The forecaster's `lstmkit.serving.schema.KindServing` (see the module docstring)."""

    example = '{"history": [records], "future": [records]} (both optional)'
    info_model = ForecastModelInfo
    request_defaults: tuple[str, ...] = ()

    def check_defaults(self, pred: Any, defaults: Mapping[str, Any]) -> dict[str, Any]:
        """A forecaster's requests have no field a server sets a default for."""
        return {}

    def info(self, pred: Any, defaults: Mapping[str, Any]) -> dict[str, Any]:
        """What a history must hold and what a forecast gives."""
        st = pred.state
        times = [] if st.time_col is None else [st.output_time_col]
        ids = [] if st.id_col is None else [st.id_col]
        return {
            "horizon": int(pred.info["horizon"]),
            "window": st.window,
            "min_rows": 1 if getattr(st, "pad", False) else st.window,
            "freq": st.freq,
            "tz": getattr(st, "tz", None),
            "quantiles": [float(q) for q in pred.info.get("quantiles") or []],
            "target": st.target,
            "time_col": st.output_time_col,
            "id_col": st.id_col,
            "covariates": list(st.covariates),
            "future_covariates": list(st.future_covariates),
            "history_columns": [*times, *ids, st.target, *st.covariates],
            "future_columns": [*times, *ids, *st.future_covariates] if st.future_covariates else [],
        }

    def add_routes(
        self, app: FastAPI, pred: Any, lock: threading.Lock, defaults: Mapping[str, Any]
    ) -> None:
        """``POST /predict``: `ForecastRequest` (or no body) -> `ForecastResponse`."""
        info = dict(pred.info)

        @app.post("/predict", response_model=ForecastResponse, summary="Forecast a series")
        def predict_series(
            request: Annotated[ForecastRequest | None, Body()] = None,
        ) -> ForecastResponse:
            request = request or ForecastRequest()
            if request.future and info.get("future_covariates") == []:
                raise LstmkitError("this model uses no known future covariates; leave out 'future'")
            data = _history_frame(request.history, pred) if request.history else None
            future = pd.DataFrame.from_records(request.future) if request.future else None
            with lock:
                table = pred.predict(data, future)
            return ForecastResponse(
                horizon=int(info.get("horizon", 0)), forecast=forecast_records(table)
            )


#: how ``lstmkit serve`` serves a forecaster
SERVING = ForecastServing()
