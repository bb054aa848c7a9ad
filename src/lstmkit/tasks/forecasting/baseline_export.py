"""ONNX export of a fitted `BaselineForecaster` (``BaselineForecaster.export_onnx``,
``lstmkit export``); `lstmkit.tasks.forecasting.baseline_runtime.BaselinePredictor` runs
the result without torch.

The graph maps the last steps of one series to its forecast, ``x`` (batch, window) float32
-> ``forecast`` (batch, horizon), with the baseline's arithmetic inside it:

- ``naive``: x (batch, 1), the last value repeated (a Gather);
- ``snaive``: x (batch, season), the last season repeated (a Gather);
- ``nlinear``: x (batch, window) standardised; ``(x - last) @ W + b + last``, the last
  value subtracted and added back in the graph;
- ``dlinear``: x (batch, window) standardised; ``trend = x @ P`` (the moving average of
  `linear.moving_average_matrix`, DLinear's padding included),
  ``trend @ W_trend + (x - trend) @ W_remainder + b``.

export.json holds what the runtime needs around the graph: the baseline and its settings
(``config``), window, horizon and season, the fitted data's description, each series'
mean and spread (the linear maps' standardisation) and its last ``window`` values. AutoETS,
AutoTheta and AutoARIMA are a statistical fit per series, not a graph: refused in one line
that says what to do. The shared steps (the exporter, the check, the atomic write) are
`lstmkit.export.onnx`'s; the check compares onnxruntime with this module's graph in
PyTorch, and the tests compare the runtime's table with `BaselineForecaster.predict`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from lstmkit.errors import LstmkitError
from lstmkit.export.onnx import CHECK_BATCHES, Feeds, export_graph, verify, write_export
from lstmkit.runtime.session import GRAPH_FILE
from lstmkit.tasks.forecasting.baseline_runtime import BaselinePredictor, graph_window
from lstmkit.tasks.forecasting.baselines import GRAPHED, LINEAR, Baselines
from lstmkit.tasks.forecasting.linear import moving_average_matrix


def _f32(a: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


class _Repeat(nn.Module):
    """x (batch, window) -> x[:, index] (batch, horizon): naive and seasonal naive."""

    def __init__(self, index: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("index", torch.from_numpy(np.asarray(index, dtype=np.int64)))

    def forward(self, x: Tensor) -> Tensor:
        return x[:, self.index]


class _NLinear(nn.Module):
    """x (batch, window) -> (x - last) @ W + b + last."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("weight", _f32(weight))
        self.register_buffer("bias", _f32(bias))

    def forward(self, x: Tensor) -> Tensor:
        last = x[:, -1:]
        return (x - last) @ self.weight + self.bias + last


class _DLinear(nn.Module):
    """x (batch, window) -> trend @ W_trend + (x - trend) @ W_remainder + b, where
    trend = x @ P is the moving average."""

    def __init__(self, average: np.ndarray, trend: np.ndarray, rest: np.ndarray,
                 bias: np.ndarray) -> None:  # fmt: skip
        super().__init__()
        self.register_buffer("average", _f32(average))
        self.register_buffer("trend_weight", _f32(trend))
        self.register_buffer("remainder_weight", _f32(rest))
        self.register_buffer("bias", _f32(bias))

    def forward(self, x: Tensor) -> Tensor:
        trend = x @ self.average
        return trend @ self.trend_weight + (x - trend) @ self.remainder_weight + self.bias


def graph_module(name: str, baselines: Baselines) -> nn.Module:
    """The graph of baseline ``name`` (one of `GRAPHED`) of the fitted ``baselines``."""
    h = baselines.horizon
    if name == "naive":
        return _Repeat(np.zeros(h, dtype=np.int64)).eval()
    if name == "snaive":
        return _Repeat(np.arange(h) % graph_window(name, baselines)).eval()
    m = baselines.linear[name]
    w = m.weights
    if name == "nlinear":
        return _NLinear(w["weight"], w["bias"]).eval()
    P = moving_average_matrix(m.window, m.kernel)
    return _DLinear(P, w["trend_weight"], w["remainder_weight"], w["bias"]).eval()


def _refusal(model: Any) -> str | None:
    """Why ``model`` cannot be exported, or None."""
    b: Baselines = model.baselines
    name = model.name
    if name not in GRAPHED:
        return (
            f"{name} cannot be exported to ONNX: it is a statistical model fitted "
            "per series on the history each forecast starts from, not a graph; serve the "
            "saved folder instead (lstmkit serve --model DIR) or predict with it (lstmkit "
            "predict --model DIR)"
        )
    if name in b.unfit:
        return f"this {name} baseline was not fitted ({b.unfit[name]}); fit it on longer series"
    if name == "snaive" and not b.season:
        return (
            "this snaive baseline has no season (its data has no frequency); fit it with "
            "season=... to export it"
        )
    return None


def export_baseline(model: Any, out: str | os.PathLike[str]) -> Path:
    """Export a fitted `BaselineForecaster` (naive, snaive, nlinear or dlinear) to the folder
    ``out`` (see the module docstring); `LstmkitError` for the others, nothing written."""
    model.require_fitted()
    reason = _refusal(model)
    if reason:
        raise LstmkitError(reason)
    b: Baselines = model.baselines
    name = model.name
    graph = graph_module(name, b)
    window, horizon = graph_window(name, b), b.horizon
    rng = np.random.default_rng(0)
    cases: list[Feeds] = []
    windows = []
    for sid, values in b.context.items():
        if len(values) >= window:
            windows.append(b.graph_input(name, sid, values)[0])
    for batch in CHECK_BATCHES:
        x = rng.normal(size=(batch, window))
        if windows:
            x[0] = windows[batch % len(windows)]  # a real window beside random ones
        cases.append({"x": x.astype(np.float32)})

    @torch.inference_mode()
    def reference(feeds: Feeds) -> list[np.ndarray]:
        return [graph(torch.from_numpy(feeds["x"])).numpy()]

    def describe(feeds: Feeds) -> str:
        return f"batch {len(feeds['x'])}"

    def build(tmp: Path) -> tuple[dict[str, Any], dict[str, str]]:
        sample = (torch.from_numpy(cases[-1]["x"]),)
        axes = {"x": {0: "batch"}, "forecast": {0: "batch"}}
        export_graph(graph, sample, tmp / GRAPH_FILE, ("x",), ("forecast",), axes)
        check = verify(tmp / GRAPH_FILE, cases, reference, ("forecast",), describe)
        meta = {
            "inputs": ["x"],
            "outputs": ["forecast"],
            "config": model.settings(),
            "baseline": name,
            "data": model.data,
            "window": window,
            "horizon": horizon,
            "season": b.season,
            "scale": {sid: list(v) for sid, v in b.scale.items()} if name in LINEAR else {},
            "context": {sid: v[-window:].tolist() for sid, v in b.context.items()},
            "verification": check,
        }
        return meta, {}

    return write_export(out, BaselinePredictor.kind, build, BaselinePredictor.FILES)
