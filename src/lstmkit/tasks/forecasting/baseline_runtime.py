"""`BaselinePredictor`: an exported `BaselineForecaster` on onnxruntime (no PyTorch).

The export (`baseline_export`) holds the baseline's map as a graph, ``x`` (batch, window)
-> ``forecast`` (batch, horizon): naive and seasonal naive gather the last value or the
last season, NLinear subtracts the window's last value, applies its map and adds the value
back, DLinear splits the window into its moving-average trend and the remainder and maps
each. Everything around the graph is `BaselineForecaster`'s own code, run here on a
`Baselines` whose `Baselines.forecast` runs the graph (`_GraphBaselines`): reading a
history, the checks that make a series n/a with the reason, the standardisation of the
linear maps (each series' mean and spread from the fit, or from the history given for a
series the fit did not see) and the forecast table. So `BaselinePredictor.predict` gives
the table of `BaselineForecaster.predict`, within float32 rounding.

The class also describes the kind's export.json (``FIELDS``, ``FILES``, `check_export`,
`graph_spec`, `probe`; see `lstmkit.runtime.meta.ExportedKind`), and `baseline_info`
builds the ``info`` of both of its predictors (this one and
`baseline_serving.TorchBaselinePredictor`).
"""

from __future__ import annotations

import math
import numbers
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lstmkit.data.series import INDEX_TIME, times_from_strings, tz_from_name
from lstmkit.errors import LstmkitError
from lstmkit.runtime.meta import Damaged, GraphSpec, integer, json_object
from lstmkit.tasks.forecasting.baseline_model import KIND, BaselineForecaster
from lstmkit.tasks.forecasting.baselines import GRAPHED, LINEAR, Baselines, NotAvailable

#: the constructor settings a `BaselineForecaster` saves (export.json ``config``)
SETTINGS = ("baseline", "horizon", "window", "season", "val_size")
#: the fields of a fitted `BaselineForecaster`'s data description (export.json ``data``)
DATA_FIELDS = ("target", "time_col", "id_col", "freq", "tz", "last_times")


def graph_window(name: str, baselines: Baselines) -> int:
    """The steps baseline ``name``'s graph reads: 1 (naive), the season (snaive), the
    window (nlinear, dlinear)."""
    if name == "naive":
        return 1
    if name == "snaive":
        return int(baselines.season or 1)
    return int(baselines.window)


def baseline_info(model: BaselineForecaster, version: str, backend: str) -> dict[str, Any]:
    """The ``info`` of a predictor of the fitted ``model`` (what ``GET /model`` shows): kind,
    lstmkit_version, backend, config, baseline, horizon, window (the fewest rows a history
    needs per series), season, freq, tz, target, time_col, id_col, the series it was
    fitted on, and the forecaster's quantiles, covariates and future covariates (none)."""
    assert model.baselines is not None
    d, name = model.data, model.name
    if name in GRAPHED:
        window = graph_window(name, model.baselines)
    else:  # a statistical model: two seasons for a seasonal one, else four points
        m = model.season or 1
        window = 2 * m if m > 1 else 4
    tcol = d["time_col"]
    return {
        "kind": KIND,
        "lstmkit_version": version,
        "backend": backend,
        "config": model.settings(),
        "baseline": name,
        "horizon": model.horizon,
        "window": window,
        "season": model.season,
        "freq": d["freq"],
        "tz": d["tz"],
        "target": d["target"],
        "time_col": "step" if tcol is None else ("time" if tcol == INDEX_TIME else tcol),
        "time_from_index": tcol == INDEX_TIME,
        "id_col": d["id_col"],
        "series": list(d["last_times"]),
        "quantiles": [],
        "covariates": [],
        "future_covariates": [],
    }


class _GraphBaselines(Baselines):
    """`Baselines` whose one baseline's forecast runs the exported graph on
    `Baselines.graph_input` (everything else, the reasons for n/a included, is theirs)."""

    session: Any = None

    def forecast(self, name: str, sid: str, history: np.ndarray) -> np.ndarray:
        x, shift, scale = self.graph_input(name, sid, history)
        feeds = {"x": np.ascontiguousarray(x[None], dtype=np.float32)}
        out = self.session.run(["forecast"], feeds)[0][0].astype(np.float64) * scale + shift
        if not np.isfinite(out).all():
            raise NotAvailable("its forecast is not finite in float32 (values beyond 3.4e38)")
        return out


class BaselinePredictor:
    """Forecast with an exported baseline, as `BaselineForecaster.predict` does.

    Attributes: ``kind`` = "baseline_forecaster", ``backend`` = "onnx", ``info``
    (`baseline_info`), ``model`` (the `BaselineForecaster` whose baseline runs the graph).
    """

    kind = KIND
    backend = "onnx"
    #: the fields of a baseline's export.json besides the common ones
    FIELDS = ("baseline", "data", "window", "horizon", "season", "scale", "context")
    #: the files its export holds besides export.json and the graph: none
    FILES = ()

    def __init__(self, folder: Path, meta: dict[str, Any], session: Any) -> None:
        """``meta``: export.json as `lstmkit.runtime.meta.read_export` checked it."""
        self.folder = folder
        self.session = session
        name = meta["baseline"]
        model = BaselineForecaster(**meta["config"])
        baselines = _GraphBaselines(
            [name], int(meta["horizon"]), meta["season"], int(meta["window"]),
            scale={str(k): (float(v[0]), float(v[1])) for k, v in meta["scale"].items()},
            context={str(k): np.asarray(v, dtype=np.float64) for k, v in meta["context"].items()},
        )  # fmt: skip
        baselines.session = session
        model.baselines = baselines
        model.data = dict(meta["data"])
        self.model = model
        self.info = baseline_info(model, meta["lstmkit_version"], self.backend)

    def predict(self, data: Any = None, future: Any = None) -> pd.DataFrame:
        """The ``horizon`` steps after ``data`` (a table or CSV/Parquet path with the fitted
        data's columns; default: after the fitted data), with the columns of
        `BaselineForecaster.predict`: (id,) time, ``forecast`` (NaN for a series the
        baseline cannot forecast, the reasons in ``table.attrs["n/a"]``). ``future``: as
        `BaselineForecaster.predict`, refused."""
        return self.model.predict(data, future)

    # ------------------------------------------------------------ export.json
    @classmethod
    def check_export(cls, folder: Path, meta: dict[str, Any]) -> None:
        """Check the baseline's fields of export.json (`Damaged` for the first wrong one):
        the baseline and its settings (``config``), the window its graph reads, horizon
        and season, the data description, each series' scale and last values."""
        name = meta["baseline"]
        if name not in GRAPHED:
            raise Damaged(f"baseline must be one of {list(GRAPHED)}, got {name!r}"[:200])
        config = meta["config"]
        if sorted(config) != sorted(SETTINGS):
            raise Damaged(f"config must hold {list(SETTINGS)}, got {sorted(config)}"[:200])
        try:
            BaselineForecaster(**config)
        except LstmkitError as err:
            raise Damaged(f"config: {err}") from None
        horizon = integer(meta, "horizon", 1)
        window = integer(meta, "window", 1)
        season = meta["season"]
        if season is not None:
            season = integer(meta, "season", 2)
        if name == "naive" and window != 1:
            raise Damaged(f"window must be 1 for naive (its last value), got {window}")
        if name == "snaive" and (season is None or window != season):
            raise Damaged(f"window must be the season for snaive, got {window} and {season}")
        if name in LINEAR and window < 2:
            raise Damaged(f"window must be >= 2 for {name}, got {window}")
        for key, value in (("baseline", name), ("horizon", horizon)):
            if (type(config[key]), config[key]) != (type(value), value):
                raise Damaged(
                    f"config {key} {config[key]!r} differs from the {key} field {value!r}"
                )
        data = json_object(meta, "data")
        _check_data(data)
        scale = json_object(meta, "scale")
        for sid, pair in scale.items():
            ok = isinstance(pair, list) and len(pair) == 2 and all(_finite(v) for v in pair)
            if not ok or not pair[1] > 0:
                raise Damaged(
                    f"scale of series {sid!r} must be [mean, spread > 0], got {pair!r}"[:200]
                )
        if scale and name not in LINEAR:
            raise Damaged(f"{name} standardises nothing; its scale must be {{}}")
        context = json_object(meta, "context")
        for sid, values in context.items():
            ok = isinstance(values, list) and 1 <= len(values) <= window
            if not ok or not all(_finite(v) for v in values):
                raise Damaged(
                    f"context of series {sid!r} must be 1 to {window} finite numbers, got "
                    f"{values!r}"[:200]
                )
        if set(context) != set(data["last_times"]):
            raise Damaged("context and data last_times must name the same series")
        if name in LINEAR and set(scale) != set(context):
            raise Damaged(f"scale and context must name the same series for {name}")

    @classmethod
    def graph_spec(cls, meta: dict[str, Any]) -> tuple[GraphSpec, GraphSpec]:
        """Input ``x`` (batch, window) float32; output ``forecast`` (batch, horizon)."""
        return (
            {"x": ("tensor(float)", (None, meta["window"]))},
            {"forecast": ("tensor(float)", (None, meta["horizon"]))},
        )

    @classmethod
    def probe(cls, meta: dict[str, Any], inputs: GraphSpec) -> dict[str, np.ndarray]:
        """One all-zero window."""
        return {"x": np.zeros((1, meta["window"]), dtype=np.float32)}


# ---------------------------------------------------------------- export.json helpers
def _finite(value: Any) -> bool:
    """A finite JSON number (booleans are not numbers)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _check_data(data: dict[str, Any]) -> None:
    """``data``: the fitted data's description, as `BaselineForecaster.fit` writes it."""
    if sorted(data) != sorted(DATA_FIELDS):
        raise Damaged(f"data must hold {list(DATA_FIELDS)}, got {sorted(data)}"[:200])
    if not isinstance(data["target"], str) or not data["target"]:
        raise Damaged(f"data target must be a column name, got {data['target']!r}"[:200])
    for key in ("time_col", "id_col", "freq", "tz"):
        if data[key] is not None and not isinstance(data[key], str):
            raise Damaged(f"data {key} must be a name or null, got {data[key]!r}"[:200])
    if data["freq"] is not None:
        try:
            pd.tseries.frequencies.to_offset(data["freq"])
        except ValueError:
            raise Damaged(f"data freq {data['freq']!r} is not a pandas frequency") from None
    if data["tz"] is not None:
        try:
            pd.Timestamp("2000-01-01", tz=tz_from_name(data["tz"]))
        except (LstmkitError, ValueError, TypeError, KeyError):
            raise Damaged(f"data tz {data['tz']!r} is not a time zone"[:200]) from None
    last = data["last_times"]
    if not isinstance(last, dict) or not last:
        raise Damaged("data last_times must be an object of series")
    for sid, times in last.items():
        ok = isinstance(times, list) and 1 <= len(times) <= 2
        if not ok or not all(isinstance(t, str) for t in times):
            shown = repr(times)[:100]
            raise Damaged(f"data last_times of series {sid!r} must be 1 or 2 times, got {shown}")
        try:
            times_from_strings(times, data["tz"])
        except LstmkitError as err:
            raise Damaged(f"data last_times of series {sid!r}: {err}"[:200]) from None
