"""`ForecastPredictor`: an exported forecaster on onnxruntime (no PyTorch).

Everything around the network is `lstmkit.tasks.forecasting.predict.PredictCore`, the
code `Forecaster.predict` itself runs (reading data like the training data, scaling,
ordering quantiles, scaling back, the table), so the tables match column for column. The
network call differs only for ``method="recursive"``: the one-step graph is fed back
``horizon`` times (each step reads its known future covariates, and the window rolls on
with the forecast target, those values and the graph's forecasts of the past-only
covariates, as `lstmkit.tasks.forecasting.module.roll` does), and with two or more
quantiles the band of steps 2.. comes from the same
simulated sample paths as `lstmkit.tasks.forecasting.module.simulate_quantiles`, drawn in
numpy from the same random numbers: torch's CPU generator is the 32-bit Mersenne Twister
seeded as numpy's legacy `RandomState`, and `torch.rand` turns each 32-bit draw into a
float32 from its low 24 bits, which `_torch_rand` does too (checked against torch in
tests/test_runtime.py). Results then differ from PyTorch's only by float32 rounding.

The class also describes the kind's export.json (``FIELDS``, ``FILES``, `check_export`,
`graph_spec`, `probe`; see `lstmkit.runtime.meta.ExportedKind`).
"""

from __future__ import annotations

import itertools
import numbers
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lstmkit.data.scalers import SeriesScaler
from lstmkit.errors import LstmkitError
from lstmkit.runtime.meta import Damaged, GraphSpec, integer, json_object
from lstmkit.tasks.forecasting.baselines import Baselines
from lstmkit.tasks.forecasting.mixture import Mixture, with_baselines
from lstmkit.tasks.forecasting.predict import DataLike, PredictCore, combine_members
from lstmkit.tasks.forecasting.state import FittedState, check_context, check_scaler

#: the forecasting methods an export may describe
METHODS = ("direct", "recursive")
#: a combined forecaster's fitted baselines, as its saved model folder holds them
BASELINES_FILES = ("baselines.json", "baselines.safetensors")
#: the most windows one recursive sample-path call may hold (the export writes 16384)
PATH_BATCH_LIMIT = 1 << 20


def _torch_rand(rng: np.random.RandomState, n: int) -> np.ndarray:
    """``torch.rand(n, generator=g)`` (float32) for a generator seeded like ``rng``."""
    raw = rng.randint(0, 2**32, size=n, dtype=np.uint32)
    return (raw & 0xFFFFFF).astype(np.float32) * np.float32(2.0**-24)


def _quantile_function(values: np.ndarray, levels: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Piecewise-linear quantile functions at ``u``: values (n, q) at ascending ``levels``
    (q,), u (n,) -> (n,), extended linearly beyond the outer levels (as in `module`)."""
    k = np.clip(np.searchsorted(levels, u), 1, len(levels) - 1)
    lo_l, hi_l = levels[k - 1], levels[k]
    rows = np.arange(len(u))
    lo_v, hi_v = values[rows, k - 1], values[rows, k]
    return lo_v + (hi_v - lo_v) * (u - lo_l) / (hi_l - lo_l)


class ForecastPredictor:
    """Forecast with an exported forecaster, as `Forecaster.predict` does.

    Attributes: ``kind`` = "forecaster", ``backend`` = "onnx", ``info`` (kind,
    lstmkit_version, backend, config, horizon, quantiles, freq, target, time_col, id_col,
    covariates, future_covariates, window, input_size, method, series, combined_with),
    ``state`` (the `FittedState`), ``scaler``, ``context`` (the last window of each
    series), and for a combined forecaster ``mixture`` and ``baselines``.
    """

    kind = "forecaster"
    backend = "onnx"
    #: the fields of a forecaster's export.json besides the common ones
    FIELDS = ("data", "window", "horizon", "steps", "method", "quantiles", "seed",
              "sample_paths", "max_path_batch", "scaler", "context")  # fmt: skip
    #: export.json's fields of some forecasters only: a combined one's mixture, and the
    #: networks of a recursive seed ensemble (its graph takes one window per network)
    OPTIONAL_FIELDS = ("mixture", "members")
    #: the files its export may hold besides export.json and the graph: a combined
    #: forecaster's fitted baselines
    FILES = BASELINES_FILES

    def __init__(self, folder: Path, meta: dict[str, Any], session: Any) -> None:
        """``meta``: export.json as `lstmkit.runtime.meta.read_export` checked it."""
        self.folder = folder
        self.session = session
        self.config: dict[str, Any] = dict(meta["config"])
        self.state = FittedState.from_dict(meta["data"])
        self.scaler = SeriesScaler.from_dict(meta["scaler"])
        check_scaler(self.scaler, self.state.n_features)
        self.context = check_context(
            meta["context"], self.state, set(self.scaler.params), "the export's scaler field"
        )
        self.horizon = int(meta["horizon"])
        self.quantiles: list[float] | None = meta["quantiles"]
        self.method = str(meta["method"])
        self.seed = int(meta["seed"])
        self.sample_paths = int(meta["sample_paths"])
        self.max_path_batch = int(meta["max_path_batch"])
        self.inputs = list(meta["inputs"])
        self.members = int(meta.get("members", 1))
        self.mixture: Mixture | None = None
        self.baselines: Baselines | None = None
        if meta.get("mixture") is not None:  # checked by check_export
            self.mixture = Mixture.from_dict(meta["mixture"], self.horizon)
            text, weights = (folder / BASELINES_FILES[0]), (folder / BASELINES_FILES[1])
            try:
                self.baselines = Baselines.from_bytes(
                    text.read_text(encoding="utf-8"), weights.read_bytes()
                )
            except (LstmkitError, OSError, UnicodeDecodeError) as err:
                raise LstmkitError(
                    f"{folder} holds damaged baselines ({str(err)[:200]}); export the model again"
                ) from None
            if self.mixture.baseline not in self.baselines.names:
                raise LstmkitError(
                    f"{folder / BASELINES_FILES[0]} lacks the mixed baseline "
                    f"{self.mixture.baseline!r}; export the model again"
                )
        self.core = PredictCore(
            self.state,
            self.scaler,
            self.context,
            self.horizon,
            self.quantiles,
            self._forecast_scaled,
        )
        st = self.state
        self.info: dict[str, Any] = {
            "kind": self.kind,
            "lstmkit_version": meta["lstmkit_version"],
            "backend": self.backend,
            "config": self.config,
            "horizon": self.horizon,
            "quantiles": self.quantiles,
            "freq": st.freq,
            "target": st.target,
            "time_col": st.output_time_col,
            "id_col": st.id_col,
            "covariates": list(st.covariates),
            "future_covariates": list(st.future_covariates),
            "window": st.window,
            "input_size": st.n_features,
            "method": self.method,
            "series": list(self.context),
            "combined_with": None if self.mixture is None else self.mixture.baseline,
        }

    # ------------------------------------------------------------ export.json
    @classmethod
    def check_export(cls, folder: Path, meta: dict[str, Any]) -> None:
        """Check the forecaster's fields of export.json (`Damaged` for the first wrong
        one): the data description, scaler and context (their shapes), window, horizon,
        steps and method, quantiles, the sample-path settings, and their agreement with
        ``config``."""
        config = meta["config"]
        try:
            state = FittedState.from_dict(json_object(meta, "data"))
        except Damaged:
            raise
        except LstmkitError as err:
            raise Damaged(f"data: {err}") from None
        _series_parts(meta, "scaler", ("shift", "scale"))
        _series_parts(meta, "context", ("values", "times"))
        window = integer(meta, "window", 2)
        if state.window != window:
            raise Damaged(f"window {window} differs from the data's window {state.window}")
        horizon = integer(meta, "horizon", 1)
        method = meta["method"]
        if method not in METHODS:
            raise Damaged(f"method must be one of {list(METHODS)}, got {method!r}")
        steps = integer(meta, "steps", 1)
        want = horizon if method == "direct" else 1
        if steps != want:
            raise Damaged(
                f"steps must be {want} for the {method} method with horizon {horizon}, got {steps}"
            )
        quantiles = _quantiles(meta["quantiles"])
        if "members" in meta:
            integer(meta, "members", 2)
            if method != "recursive":
                raise Damaged("members is a recursive ensemble's field; this one is direct")
        if meta.get("mixture") is not None:
            try:
                Mixture.from_dict(meta["mixture"], horizon)
            except LstmkitError as err:
                raise Damaged(f"mixture: {err}") from None
            for name in BASELINES_FILES:
                if not (folder / name).is_file():
                    raise Damaged(f"the combined forecaster's {name} is missing")
        integer(meta, "seed", 0, 2**32 - 1)  # numpy's RandomState takes 32 bits
        batch = integer(meta, "max_path_batch", 1, PATH_BATCH_LIMIT)
        integer(meta, "sample_paths", 1, batch)
        for key, value in (("horizon", horizon), ("method", method), ("window", window)):
            given = config.get(key, value)
            same = (type(given), given) == (type(value), value)
            if (key != "window" or given is not None) and not same:
                raise Damaged(f"config {key} {given!r} differs from the {key} field {value!r}")
        if "quantiles" in config:
            try:
                same = _quantiles(config["quantiles"]) == quantiles
            except Damaged:
                same = False
            if not same:
                raise Damaged(
                    f"config quantiles {config['quantiles']!r} differ from the quantiles field "
                    f"{meta['quantiles']!r}"
                )

    @classmethod
    def graph_spec(cls, meta: dict[str, Any]) -> tuple[GraphSpec, GraphSpec]:
        """Inputs ``x`` (batch, window, 1 + covariates) [and, with known future
        covariates, ``future`` (batch, steps, future covariates)] float32; output
        ``forecast`` (batch, steps, 1 + quantiles [+ past-only covariates: a recursive
        forecaster forecasts them too]); a recursive seed ensemble's each with the
        networks' axis first (``members``, batch, ...)."""
        data, steps = meta["data"], meta["steps"]
        future = data.get("future_covariates") or []
        lead = (meta["members"], None) if "members" in meta else (None,)
        inputs: GraphSpec = {
            "x": ("tensor(float)", (*lead, meta["window"], 1 + len(data["covariates"])))
        }
        if future:
            inputs["future"] = ("tensor(float)", (*lead, steps, len(future)))
        channels = 1 + len(meta["quantiles"] or [])
        if meta["method"] == "recursive":
            channels += len(data["covariates"]) - len(future)
        outputs: GraphSpec = {"forecast": ("tensor(float)", (*lead, steps, channels))}
        return inputs, outputs

    @classmethod
    def probe(cls, meta: dict[str, Any], inputs: GraphSpec) -> dict[str, np.ndarray]:
        """One all-zero window (and future)."""
        return {
            name: np.zeros([1 if d is None else d for d in dims], dtype=np.float32)
            for name, (_, dims) in inputs.items()
        }

    def predict(
        self,
        data: DataLike | None = None,
        future: pd.DataFrame | str | os.PathLike[str] | None = None,
    ) -> pd.DataFrame:
        """The ``horizon`` steps after ``data`` (default: after the training data, as
        ``lstmkit predict --model`` does), with the columns of `Forecaster.predict`:
        (id,) time, ``forecast`` and one ``q<percent>`` column per quantile; a combined
        forecaster's mixture applied (the network alone in column ``lstmkit``).

        ``data``: a table (or CSV/Parquet path) with the training data's columns and at
        least ``window`` rows per series. ``future``: the known future covariates over the
        horizon, for a model fitted with ``future_covariates``.
        """
        if self.mixture is None:
            return self.core.predict(data, future)
        if data is None:
            histories: dict[str, np.ndarray | None] = dict.fromkeys(self.context)
        else:  # read once: the network and the baselines forecast from the same history
            data = self.core.load(data, what="the history")
            histories = {s.id: s.values[:, 0] for s in data.series.values()}
        return with_baselines(
            self.core.predict(data, future), histories, self.horizon, self.quantiles,
            self.baselines, self.mixture, [], self.state.clip,
        )  # fmt: skip

    # ------------------------------------------------------------ the network
    def _run(self, x: np.ndarray, future: np.ndarray | None = None) -> np.ndarray:
        """The graph on windows ``x`` (batch, window, features) [and ``future``]; a
        recursive ensemble's graph on (members x batch, ...) rows, network by network
        (network k's windows the k-th block), its output in the same rows."""
        k = self.members

        def fold(a: np.ndarray) -> np.ndarray:  # (k * b, ...) <-> (k, b, ...)
            return a.reshape(k, -1, *a.shape[1:]) if k > 1 else a

        feeds = {"x": np.ascontiguousarray(fold(x), dtype=np.float32)}
        if "future" in self.inputs:
            feeds["future"] = np.ascontiguousarray(fold(future), dtype=np.float32)
        out = self.session.run(["forecast"], feeds)[0]
        return out.reshape(-1, *out.shape[2:]) if k > 1 else out

    def _roll(
        self, x: np.ndarray, target: np.ndarray, out: np.ndarray, future: np.ndarray | None
    ) -> np.ndarray:
        """`lstmkit.tasks.forecasting.module.roll` in numpy: the window (batch, window,
        features) one step on, its new row ``target`` (batch, 1), the step's known future
        covariates ``future`` (batch, 1, n_future) and the graph's forecasts of the
        past-only ones (``out[..., 1 + quantiles:]``)."""
        st = self.state
        row = np.zeros_like(x[:, -1:])
        row[:, :, 0] = target
        if st.future_columns:
            row[:, :, st.future_columns] = future
        if st.past_columns:
            row[:, :, st.past_columns] = out[:, :, 1 + len(self.quantiles or []) :]
        return np.concatenate([x[:, 1:], row], axis=1)

    def _forecast_scaled(self, x: np.ndarray, future: np.ndarray | None) -> np.ndarray:
        """Scaled windows (batch, window, features) [and known future covariates (batch,
        horizon, n_future)] -> (batch, horizon, outputs) scaled, as
        `Forecaster._forecast_scaled` computes it."""
        if self.method == "direct":
            return self._run(x, future)
        m = self.members
        if m > 1:  # each network rolls its own copy of the windows (`_run`'s blocks)
            x = np.concatenate([x] * m)
            future = None if future is None else np.concatenate([future] * m)
        start, outs, k = x, [], 1 + len(self.quantiles or [])
        for t in range(self.horizon):
            ft = None if future is None else future[:, t : t + 1]
            step = self._run(x, ft)  # (batch, 1, outputs)
            outs.append(step[:, :, :k])
            x = self._roll(x, step[:, :, 0], step, ft)
        out = np.concatenate(outs, axis=1)
        if len(self.quantiles or []) >= 2 and self.horizon > 1:
            out[:, 1:, 1:] = self._simulate_quantiles(start, future)[:, 1:]
        return combine_members(out.reshape(m, -1, *out.shape[1:])) if m > 1 else out

    def _simulate_quantiles(self, x: np.ndarray, future: np.ndarray | None = None) -> np.ndarray:
        """Quantiles (batch, horizon, q) of the recursive sample paths from each window
        (batch, window, features) [and its known future covariates (batch, horizon,
        n_future)]: `module.simulate_quantiles` in numpy, same draws. A recursive
        ensemble's rows are its networks' blocks (`_run`); each network simulates its own
        paths from its block, with the same draws as every other."""
        levels = np.asarray(self.quantiles, dtype=np.float32)
        n, m = self.sample_paths, self.members
        x = x.reshape(m, -1, *x.shape[1:])  # (networks, batch, ...)
        future = None if future is None else future.reshape(m, -1, *future.shape[1:])
        chunk = max(1, self.max_path_batch // (n * m))
        result = []
        for begin in range(0, x.shape[1], chunk):
            xs = np.repeat(x[:, begin : begin + chunk], n, axis=1).reshape(-1, *x.shape[2:])
            fs = None
            if future is not None:
                fs = np.repeat(future[:, begin : begin + chunk], n, axis=1)
                fs = fs.reshape(-1, *future.shape[2:])
            rng = np.random.RandomState(self.seed)  # the same draws for every window
            draws = []
            for t in range(self.horizon):
                ft = None if fs is None else fs[:, t : t + 1]
                out = self._run(xs, ft)
                q = np.sort(out[:, 0, 1 : 1 + len(levels)], axis=-1)
                draw = _quantile_function(q, levels, np.tile(_torch_rand(rng, n), len(xs) // n))
                draws.append(draw)
                xs = self._roll(xs, draw.reshape(-1, 1), out, ft)
            paths = np.stack(draws, axis=1).reshape(-1, n, self.horizon)
            got = np.quantile(paths, levels, axis=1).transpose(1, 2, 0)  # (networks x c, h, q)
            result.append(got.reshape(m, -1, *got.shape[1:]))
        return (
            np.concatenate(result, axis=1).reshape(-1, self.horizon, len(levels)).astype(np.float32)
        )


# ---------------------------------------------------------------- export.json helpers
def _quantiles(value: Any) -> list[float] | None:
    """``quantiles`` of export.json (or its config): null or ascending numbers in (0, 1)."""
    if value is None:
        return None
    ok = isinstance(value, list) and all(
        isinstance(q, numbers.Real) and not isinstance(q, bool) for q in value
    )
    if not ok:
        raise Damaged(f"quantiles must be null or a list of numbers, got {value!r}")
    levels = [float(q) for q in value]
    if not all(0.0 < q < 1.0 for q in levels):  # NaN fails too
        raise Damaged(f"quantiles must lie strictly between 0 and 1, got {value!r}")
    if any(b <= a for a, b in itertools.pairwise(levels)):
        raise Damaged(f"quantiles must be distinct and ascending, got {value!r}")
    return levels


def _all_numbers(value: Any) -> bool:
    """Whether ``value`` is a number or a (nested) list of numbers; booleans are not."""
    if isinstance(value, list):
        return all(_all_numbers(v) for v in value)
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _series_parts(meta: dict[str, Any], key: str, parts: tuple[str, str]) -> None:
    """``scaler`` (its ``params``) or ``context``: an object of series, each an object whose
    ``parts`` are lists, of numbers but for the context's times (their sizes and
    finiteness are checked by `check_scaler` / `check_context` when the predictor is built)."""
    value = json_object(meta, key)
    series = value.get("params") if key == "scaler" else value
    if not isinstance(series, dict):
        raise Damaged(f"{key} params must be an object of series, got {series!r}"[:200])
    for sid, entry in series.items():
        ok = isinstance(entry, dict) and all(isinstance(entry.get(part), list) for part in parts)
        if ok and not all(_all_numbers(entry[part]) for part in parts if part != "times"):
            ok = False
        if not ok:
            raise Damaged(
                f"{key} of series {sid!r} must be an object with the lists {list(parts)} (of "
                f"numbers), got {entry!r}"[:200]
            )
