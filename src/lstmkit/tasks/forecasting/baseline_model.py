"""`BaselineForecaster`: one baseline (`baselines.NAMES`) as a model of its own, with the
estimator contract of `Forecaster`: fit / predict / evaluate / backtest / save / load.

It forecasts the target alone (covariates are not read). NLinear and DLinear fit one global
map over every series' windows (ridge chosen on the last ``val_size`` steps of each
series); the statistical models fit each series on the history a forecast starts from. A
series a baseline cannot forecast gets NaN with the reason in ``table.attrs["n/a"]``
(predict) or `Evaluation.notes` (evaluate), never an error for the whole run. A saved
folder is of kind ``"baseline_forecaster"`` (`lstmkit.kinds`), loaded with
`lstmkit.kinds.of_model_folder(path).load(path)` or `BaselineForecaster.load`.

Naive, seasonal naive, NLinear and DLinear export to ONNX (`export_onnx`, ``lstmkit
export``: `baseline_export`), which `lstmkit.runtime` runs without torch
(`baseline_runtime.BaselinePredictor`, the same table as `predict`); AutoETS, AutoTheta and
AutoARIMA are a statistical fit per series, not a graph, and are refused in one line.
``lstmkit serve`` serves a saved folder of any baseline and the export of one
(`baseline_serving`), with the forecaster's requests and responses. No torch here but in
`save` and `export_onnx`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lstmkit.data.series import (
    SeriesData,
    future_times,
    load_series,
    season_from_freq,
    times_from_strings,
    truncate_series,
    tz_name,
)
from lstmkit.errors import LstmkitError
from lstmkit.tasks.forecasting.baselines import LABELS, Baselines, parse_names
from lstmkit.tasks.forecasting.evaluation import Evaluation

KIND = "baseline_forecaster"

DataLike = pd.DataFrame | pd.Series | str | os.PathLike[str] | SeriesData


class BaselineForecaster:
    """One baseline as a forecaster.

    Example::

        b = BaselineForecaster("nlinear", horizon=12).fit(df, "passengers", time_col="month")
        b.predict()          # the 12 months after the data
        b.evaluate(df_full)  # its score on the last 12 months of df_full

    Args:
        baseline: "naive", "snaive", "nlinear", "dlinear", "ets", "theta" or "arima".
        horizon: steps to forecast. window: the linear maps' input steps (None: two
            seasons or two horizons, at least 8, as short as the data needs). season:
            seasonal period (None: from the data's frequency). val_size: steps at the end
            of each series that choose the linear maps' ridge (None: about a tenth).
    """

    def __init__(
        self,
        baseline: str = "nlinear",
        horizon: int = 12,
        window: int | None = None,
        season: int | None = None,
        val_size: int | None = None,
    ) -> None:
        names = parse_names([baseline])
        if len(names) != 1:
            raise LstmkitError(f"name one baseline, got {baseline!r}")
        checks = [
            (isinstance(horizon, int) and horizon >= 1, f"horizon must be >= 1, got {horizon!r}"),
            (window is None or (isinstance(window, int) and window >= 2), "window must be >= 2"),
            (season is None or (isinstance(season, int) and season >= 1), "season must be >= 1"),
            (val_size is None or (isinstance(val_size, int) and val_size >= 0), "val_size >= 0"),
        ]
        for ok, msg in checks:
            if not ok:
                raise LstmkitError(f"invalid baseline setting: {msg}")
        self.name, self.horizon, self.window = names[0], horizon, window
        self.season_setting, self.val_size = season, val_size
        self.baselines: Baselines | None = None
        self.data: dict[str, Any] = {}

    @property
    def label(self) -> str:
        """Its name in tables (``seasonal_naive`` for snaive)."""
        return LABELS[self.name]

    @property
    def is_fitted(self) -> bool:
        """Whether `fit` (or `load`) has run."""
        return self.baselines is not None

    def require_fitted(self) -> None:
        """One `LstmkitError` line unless fitted."""
        if self.baselines is None:
            raise LstmkitError("the baseline is not fitted; call fit(data) or load a folder")

    def settings(self) -> dict[str, Any]:
        """The constructor's arguments (JSON)."""
        return {
            "baseline": self.name, "horizon": self.horizon, "window": self.window,
            "season": self.season_setting, "val_size": self.val_size,
        }  # fmt: skip

    # ------------------------------------------------------------------ fit / predict
    def _load(self, data: DataLike, **columns: Any) -> SeriesData:
        if isinstance(data, SeriesData):
            return data
        if self.data:
            d = self.data
            return load_series(data, d["target"], time_col=d["time_col"], id_col=d["id_col"])
        return load_series(data, **columns)

    def fit(
        self,
        data: DataLike,
        target: str | None = None,
        *,
        time_col: str | None = None,
        id_col: str | None = None,
        freq: str | None = None,
    ) -> BaselineForecaster:
        """Fit on every series of ``data`` (the target column only). Returns self."""
        self.data = {}
        sd = self._load(data, target=target, time_col=time_col, id_col=id_col, freq=freq)
        h = self.horizon
        season = self.season_setting or season_from_freq(sd.freq)
        shortest = min(len(s) for s in sd.series.values())
        window = self.window or int(
            max(min(max(2 * (season or 0), 2 * h, 8), shortest - 2 * h), 2)
        )  # fmt: skip
        val = self.val_size
        if val is None:
            val = h * min(max(shortest // (10 * h), 1), 20)
        if shortest - val < window + h:
            val = 0  # as the network's validation: only where every series keeps a window
        histories = {s.id: s.values[:, 0] for s in sd.series.values()}
        self.baselines = Baselines.fit([self.name], histories, h, season, window, val)
        first = next(iter(sd.series.values()))
        self.data = {
            "target": sd.target, "time_col": sd.time_col, "id_col": sd.id_col, "freq": sd.freq,
            "tz": tz_name(getattr(first.times, "tz", None)),
        }  # fmt: skip
        self._set_times(sd)
        return self

    def _set_times(self, sd: SeriesData) -> None:
        self.data["last_times"] = {s.id: [str(t) for t in s.times[-2:]] for s in sd.series.values()}

    def set_context(self, data: DataLike) -> BaselineForecaster:
        """Make `predict()` continue from the end of ``data`` without refitting."""
        self.require_fitted()
        assert self.baselines is not None
        sd = self._load(data)
        self.baselines.set_context({s.id: s.values[:, 0] for s in sd.series.values()})
        self._set_times(sd)
        return self

    @property
    def season(self) -> int | None:
        """The seasonal period in use."""
        return self.baselines.season if self.baselines else self.season_setting

    def _frame(self, sid: str, times: pd.Index, fc: np.ndarray | str) -> pd.DataFrame:
        cols: dict[str, Any] = {}
        if self.data["id_col"]:
            cols[self.data["id_col"]] = [sid] * len(times)
        tcol = self.data["time_col"]
        cols["step" if tcol is None else ("time" if tcol == "__time__" else tcol)] = times
        cols["forecast"] = np.full(len(times), np.nan) if isinstance(fc, str) else fc
        return pd.DataFrame(cols)

    def predict(
        self, data: DataLike | None = None, future: Any = None, baselines: bool = False
    ) -> pd.DataFrame:
        """The ``horizon`` steps after ``data`` (default: after the fitted data): (id,) time,
        ``forecast`` (NaN for a series the baseline cannot forecast; the reasons in
        ``table.attrs["n/a"]``, series id -> reason).

        ``future`` and ``baselines`` are those of `Forecaster.predict`, so that code that
        predicts with any forecasting model calls both alike: a baseline reads the target
        alone (a ``future`` is refused in one line) and has no other baselines beside it."""
        if future is not None:
            raise LstmkitError(
                f"the {self.name} baseline reads the target alone; it takes no future covariates"
            )
        self.require_fitted()
        assert self.baselines is not None
        h, freq = self.horizon, self.data["freq"]
        if data is None:
            items = [
                (sid, times_from_strings(t, self.data["tz"]), None)
                for sid, t in self.data["last_times"].items()
            ]
        else:
            sd = self._load(data)
            items = [(s.id, s.times, s.values[:, 0]) for s in sd.series.values()]
        frames, reasons = [], {}
        for sid, times, hist in items:
            fc = self.baselines.forecast_all(sid, hist)[self.name]
            if isinstance(fc, str):
                reasons[sid] = fc
            frames.append(self._frame(sid, future_times(times, freq, h), fc))
        table = pd.concat(frames, ignore_index=True)
        table.attrs["n/a"] = reasons
        return table

    # ------------------------------------------------------------------ evaluate / backtest
    def evaluate(self, data: DataLike) -> Evaluation:
        """Forecast the last ``horizon`` steps of each series of ``data`` from the steps
        before and score them (one row, this baseline; series it cannot forecast are left
        out of the means and named in ``notes``)."""
        from lstmkit.tasks.forecast_metrics import METRICS, all_metrics

        self.require_fitted()
        assert self.baselines is not None
        sd = self._load(data)
        h, season = self.horizon, self.season
        rows, frames, missing = [], [], []
        for s in sd.series.values():
            if len(s) <= h:
                raise LstmkitError(f"series {s.id!r} has {len(s)} rows; evaluation needs > {h}")
            hist, actual = s.values[:-h, 0], s.values[-h:, 0]
            fc = self.baselines.forecast_all(s.id, hist)[self.name]
            frame = self._frame(s.id, s.times[-h:], fc)
            frame.insert(int(frame.columns.get_loc("forecast")), "actual", actual)
            frames.append(frame)
            if isinstance(fc, str):
                missing.append(f"series {s.id!r}: {fc}")
                continue
            rows.append(all_metrics(actual, fc, hist, season))
        means = pd.DataFrame(rows).mean() if rows else pd.Series(dict.fromkeys(METRICS, np.nan))
        table = pd.DataFrame({self.label: means}).T[list(METRICS)]
        table.index.name = "model"
        notes = {}
        if missing:
            notes[self.label] = (
                f"{self.label} n/a for {len(missing)} of {len(sd.series)} series ({missing[0]})"
            )
        return Evaluation(table, pd.concat(frames, ignore_index=True), season, None, notes)

    def backtest(
        self, data: DataLike, folds: int = 3, step: int | None = None, refit: bool = True,
        **columns: Any,
    ) -> pd.DataFrame:  # fmt: skip
        """Rolling-origin backtest as `Forecaster.backtest`: one row per fold."""
        sd = self._load(data, **columns)
        if folds < 1:
            raise LstmkitError(f"folds must be at least 1, got {folds}")
        h = self.horizon
        step = step or h
        if not refit:
            self.require_fitted()
        rows = []
        for k in range(folds):
            part = truncate_series(sd, (folds - 1 - k) * step)
            if min(len(s) for s in part.series.values()) - h < 2:
                raise LstmkitError(f"backtest fold {k + 1} leaves too few rows; use fewer folds")
            model = BaselineForecaster(**self.settings()).fit(truncate_series(part, h)) if refit \
                else self  # fmt: skip
            ev = model.evaluate(part)
            origin = next(iter(part.series.values())).times[-h - 1]
            for name, metrics in ev.metrics.iterrows():
                rows.append({"fold": k + 1, "origin": origin, "model": name, **metrics.to_dict()})
        return pd.DataFrame(rows)

    # ------------------------------------------------------------------ save / load / export
    def export_onnx(self, out: str | os.PathLike[str]) -> Path:
        """Export to the ONNX folder ``out`` (`baseline_export.export_baseline`; naive,
        snaive, nlinear and dlinear only, the others are one `LstmkitError` line)."""
        from lstmkit.tasks.forecasting.baseline_export import export_baseline

        return export_baseline(self, out)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model folder (config.json, model.safetensors with the linear weights
        and each series' recent values, baselines.json) atomically."""
        import torch

        from lstmkit.io import save_model_dir

        self.require_fitted()
        assert self.baselines is not None
        meta, arrays = self.baselines.to_files()
        config = {"baseline": self.settings(), "data": self.data}
        tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}
        return save_model_dir(
            path, kind=KIND, config=config, state_dict=tensors,
            extras={"baselines.json": json.dumps(meta)},
        )  # fmt: skip

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> BaselineForecaster:
        """Read a folder written by `save` (one `LstmkitError` line for a damaged one)."""
        from lstmkit.io import load_model_dir

        saved = load_model_dir(path, KIND)
        try:
            self = cls(**saved.config["baseline"])
            data = dict(saved.config["data"])
            if not {"target", "time_col", "id_col", "freq", "tz", "last_times"} <= set(data):
                raise KeyError("data")
            arrays = {k: v.numpy() for k, v in saved.state_dict.items()}
            self.baselines = Baselines.from_files(
                json.loads(saved.read_text("baselines.json")), arrays
            )
            self.data = data
        except (LstmkitError, KeyError, TypeError, ValueError, AttributeError) as err:
            if isinstance(err, LstmkitError) and "model directory" in str(err):
                raise
            what = str(err) if isinstance(err, LstmkitError) else f"{type(err).__name__}: {err}"
            raise LstmkitError(f"{path} is damaged ({what[:200]}); save the model again") from None
        return self
