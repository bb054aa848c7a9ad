"""Serving a baseline forecaster (``lstmkit serve``): `TorchBaselinePredictor` (a saved
`BaselineForecaster` folder, any baseline; an export runs on
`lstmkit.tasks.forecasting.baseline_runtime.BaselinePredictor`) and `BASELINE_SERVING`, the
kind's `lstmkit.serving.schema.KindServing`, with the forecaster's request and response
(`lstmkit.tasks.forecasting.serving`):

- ``POST /predict`` takes ``{"history": [record, ...]}`` (optional; an empty body forecasts
  after the fitted data) and returns ``{"horizon": h, "forecast": [{time, forecast}, ...]}``.
  A ``future`` is refused (422: a baseline reads the target alone), and so is a series the
  baseline cannot forecast (422 with the reason: a history shorter than its window or
  season, a series the fit did not see with no history given).
- ``GET /model`` has the forecaster's fields (quantiles, covariates and future covariates
  empty) plus ``baseline`` and ``season``.

No torch here: `TorchBaselinePredictor` imports the estimator when it is built.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from fastapi import Body, FastAPI
from pydantic import Field

from lstmkit.errors import LstmkitError
from lstmkit.io.model_dir import read_model_meta
from lstmkit.tasks.forecasting.serving import (
    ForecastModelInfo,
    ForecastRequest,
    ForecastResponse,
    ForecastServing,
    forecast_records,
)


class TorchBaselinePredictor:
    """A saved `BaselineForecaster` served from its folder: ``kind`` "baseline_forecaster",
    ``backend`` "torch" (the saved folder, as a forecaster's), ``model`` and ``info``
    (`baseline_runtime.baseline_info`)."""

    kind = "baseline_forecaster"
    backend = "torch"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        from lstmkit.tasks.forecasting.baseline_model import BaselineForecaster
        from lstmkit.tasks.forecasting.baseline_runtime import baseline_info

        self.path = Path(path)
        self.model = BaselineForecaster.load(path)
        version = read_model_meta(self.path)["lstmkit_version"]
        self.info = baseline_info(self.model, version, self.backend)

    def predict(self, data: pd.DataFrame | None = None, future: Any = None) -> pd.DataFrame:
        """The forecast after ``data`` (default: after the fitted data), as
        `BaselineForecaster.predict`."""
        return self.model.predict(data, future)


class BaselineModelInfo(ForecastModelInfo):
    """A baseline forecaster: the forecaster's fields, which baseline and its season."""

    baseline: str = Field(description="naive, snaive, nlinear, dlinear, ets, theta or arima")
    season: int | None = Field(description="the seasonal period it uses (None: none)")


def _history_frame(records: list[dict[str, Any]], info: Mapping[str, Any]) -> pd.DataFrame:
    """Request records -> the table `predict` reads (the time column as the index when the
    model was fitted on an unnamed DatetimeIndex)."""
    frame = pd.DataFrame.from_records(records)
    if info.get("time_from_index"):
        col = info["time_col"]
        if col not in frame.columns:
            raise LstmkitError(f"history records need a {col!r} column with the timestamps")
        try:
            frame = frame.set_index(pd.DatetimeIndex(pd.to_datetime(frame.pop(col))))
        except (ValueError, TypeError) as err:
            raise LstmkitError(f"history {col!r} holds values that are not dates ({err})") from None
        frame.index.name = None
    return frame


def min_rows(baseline: str, window: int, season: int | None) -> int:
    """The fewest history rows per series the baseline forecasts from (`Baselines`): one
    for naive, a season for snaive, the window for the linear maps, and for the statistical
    models at least 4 points and, with a season, two seasons."""
    if baseline == "naive":
        return 1
    if baseline == "snaive":
        return max(season or 1, 1)
    if baseline in ("nlinear", "dlinear"):
        return window
    return max(4, 2 * season if season and season > 1 else 0)


class BaselineServing(ForecastServing):
    """The baseline forecaster's `lstmkit.serving.schema.KindServing` (see the module
    docstring): the forecaster's, with its own ``GET /model`` fields (read from the
    predictor's info, not a fitted state) and a ``POST /predict`` without ``future``."""

    example = '{"history": [records]} (optional)'
    info_model = BaselineModelInfo

    def info(self, pred: Any, defaults: Mapping[str, Any]) -> dict[str, Any]:
        """What a history must hold and what a forecast gives."""
        i = pred.info
        times = [] if i["time_col"] == "step" else [i["time_col"]]
        ids = [] if i["id_col"] is None else [i["id_col"]]
        return {
            "horizon": int(i["horizon"]),
            "window": int(i["window"]),
            "min_rows": min_rows(i["baseline"], int(i["window"]), i["season"]),
            "freq": i["freq"],
            "tz": i["tz"],
            "quantiles": [],
            "target": i["target"],
            "time_col": i["time_col"],
            "id_col": i["id_col"],
            "covariates": [],
            "future_covariates": [],
            "history_columns": [*times, *ids, i["target"]],
            "future_columns": [],
            "baseline": i["baseline"],
            "season": i["season"],
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
            if request.future:
                raise LstmkitError(
                    f"the {info['baseline']} baseline reads the target alone; leave out 'future'"
                )
            data = _history_frame(request.history, info) if request.history else None
            with lock:
                table = pred.predict(data)
            missing = table.attrs.get("n/a") or {}
            if missing:
                sid, reason = next(iter(missing.items()))
                more = f" (and {len(missing) - 1} more series)" if len(missing) > 1 else ""
                raise LstmkitError(
                    f"{info['baseline']} cannot forecast series {sid!r}: {reason}{more}"
                )
            return ForecastResponse(horizon=int(info["horizon"]), forecast=forecast_records(table))


#: how ``lstmkit serve`` serves a baseline forecaster
BASELINE_SERVING = BaselineServing()
