"""ONNX export of a fitted `Forecaster` (``Forecaster.export_onnx``, ``lstmkit export``);
`lstmkit.tasks.forecasting.runtime.ForecastPredictor` runs the result.

The folder holds ``model.onnx`` (`ForecastModule.forward`: scaled windows [and known
future covariates] -> the scaled forecast; dynamic batch; a direct seed ensemble's
networks all in the one graph, combined as `Forecaster` combines them; a recursive one's
networks too, each reading its own windows (the networks' axis first, ``members`` in
export.json), which the runtime rolls on and combines) and
``export.json`` (the fitted data description, scaler, the last window of each series,
window, horizon, method, quantiles and the recursive band's sample-path settings; for a
combined forecaster also its mixture, with the fitted baselines in ``baselines.json`` and
``baselines.safetensors``, the files of the saved model folder: the runtime mixes them
in with `lstmkit.tasks.forecasting.mixture.with_baselines`, as `Forecaster.predict`). A
layer with ``layer_norm``, ``zoneout`` or ``peepholes`` goes in as our reference loop
unrolled over the fixed window.
The shared steps (the exporter, the check against PyTorch, the atomic write) are
`lstmkit.export.onnx`'s.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from lstmkit.errors import LstmkitError
from lstmkit.export.onnx import (
    CHECK_BATCHES,
    Feeds,
    export_graph,
    exportable_rnn,
    verify,
    write_export,
)
from lstmkit.runtime.session import GRAPH_FILE
from lstmkit.tasks.forecasting.module import MAX_PATH_BATCH, SAMPLE_PATHS
from lstmkit.tasks.forecasting.predict import combine_members, last_windows
from lstmkit.tasks.forecasting.runtime import BASELINES_FILES, ForecastPredictor


class _ForecastGraph(nn.Module):
    """x (batch, window, features) scaled [, future (batch, steps, n_future) scaled] ->
    forecast (batch, steps, outputs) scaled: `ForecastModule.forward` (instance
    normalisation, encoder, head, de-normalisation) of each network of a seed ensemble,
    combined as `Forecaster._forecast_scaled` does: the mean of the point forecasts, the
    median of each quantile (the middle value of the sorted members, the mean of the two
    middle ones for an even count: numpy's median). One network: its forecast."""

    def __init__(self, modules: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(modules)

    def forward(self, x: Tensor, future: Tensor | None = None) -> Tensor:
        if len(self.members) == 1:
            return self.members[0](x, future)
        outs = torch.stack([m(x, future) for m in self.members])  # (k, batch, steps, outputs)
        point = outs[:, :, :, :1].mean(dim=0)
        if outs.shape[-1] == 1:
            return point
        ranked = torch.sort(outs[:, :, :, 1:], dim=0).values
        k = len(self.members)
        mid = ranked[k // 2] if k % 2 else (ranked[k // 2 - 1] + ranked[k // 2]) / 2
        return torch.cat([point, mid], dim=-1)


class _StackedGraph(nn.Module):
    """A recursive seed ensemble's one-step graph: x (networks, batch, window, features)
    [, future (networks, batch, 1, n_future)] -> (networks, batch, 1, outputs), network k
    reading its own windows ``x[k]``; the runtime rolls each network's windows on and
    combines the networks' forecasts as `Forecaster._forecast_scaled` does."""

    def __init__(self, modules: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(modules)

    def forward(self, x: Tensor, future: Tensor | None = None) -> Tensor:
        return torch.stack([
            m(x[k], None if future is None else future[k]) for k, m in enumerate(self.members)
        ])  # fmt: skip


def export_forecaster(fc: Any, out: str | os.PathLike[str]) -> Path:
    """Export a fitted `Forecaster` to the folder ``out`` (see the module docstring).

    Graph: ``x`` (batch, window, features) float32, scaled by the series' scaler, target
    in feature 0 [and ``future`` (batch, steps, n_future) float32, the scaled known
    covariates over the horizon] -> ``forecast`` (batch, steps, 1 + quantiles) scaled,
    where steps is the horizon (direct) or 1 (recursive: `lstmkit.runtime` feeds it back
    and simulates the band's sample paths as `Forecaster` does, same seed; ``future`` is
    then the known covariates of the one step, and ``forecast`` also holds the next
    values of any past-only covariates, which the runtime feeds back with the target).
    """
    fc.require_fitted()
    mixture = fc.mixture if fc.config.combine else None
    if fc.config.combine and (mixture is None or fc.baselines is None):
        raise LstmkitError(
            "this combined forecaster has no fitted mixture or baselines (a model saved "
            "before they were); fit it again to export it"
        )
    members = fc.members if len(fc.members) > 1 else [fc.net]
    # a recursive ensemble's networks each roll their own window: the graph takes one
    # window per network (stacked) and gives each one's step; the runtime combines them
    stacked = len(members) > 1 and fc.config.method == "recursive"
    module, cfg, state = members[0], fc.config, fc.state
    if state.static_cols or cfg.id_embedding:
        raise LstmkitError(
            "ONNX export does not cover static covariates or the series-id embedding yet; "
            "use the saved model folder (Forecaster.load, lstmkit predict) instead"
        )
    graph_members = []
    for member in members:
        member.eval()
        graph_member = copy.deepcopy(member)
        graph_member.net.rnn = exportable_rnn(member.net.rnn, fixed_time=True, what="forecaster")
        graph_members.append(graph_member)
    model = (_StackedGraph if stacked else _ForecastGraph)(graph_members).eval()
    lead = (len(members),) if stacked else ()  # the networks' axis of a stacked graph
    steps, n_future = module.net.steps, module.net.n_future
    window, n_features = state.window, state.n_features
    inputs = ("x", "future") if n_future else ("x",)
    outputs = ("forecast",)
    rng = np.random.default_rng(0)
    cases: list[Feeds] = []
    contexts = [  # a padded model's short contexts are left-padded (NaN rows)
        last_windows([fc.scaler.transform(sid, np.asarray(ctx["values"], np.float64))], window)[0]
        for sid, ctx in fc.context.items()
    ]
    for batch in CHECK_BATCHES:
        x = rng.normal(size=(*lead, batch, window, n_features))
        x[..., 0, :, :] = contexts[batch % len(contexts)]  # a real window beside random ones
        feeds = {"x": x.astype(np.float32)}
        if n_future:
            feeds["future"] = rng.normal(size=(*lead, batch, steps, n_future)).astype(np.float32)
        cases.append(feeds)

    @torch.inference_mode()
    def reference(feeds: Feeds) -> list[np.ndarray]:
        fut = torch.from_numpy(feeds["future"]) if n_future else None
        x = torch.from_numpy(feeds["x"])
        if stacked:  # each network's step from its own window
            return [np.stack([
                m(x[k], None if fut is None else fut[k]).numpy() for k, m in enumerate(members)
            ])]  # fmt: skip
        return [combine_members(np.stack([m(x, fut).numpy() for m in members]))]

    def describe(feeds: Feeds) -> str:
        return f"batch {feeds['x'].shape[len(lead)]}"

    def build(tmp: Path) -> tuple[dict[str, Any], dict[str, str]]:
        sample = cases[-1]
        args = tuple(torch.from_numpy(sample[name]) for name in inputs)
        axes = {name: {len(lead): "batch"} for name in (*inputs, *outputs)}
        export_graph(model, args, tmp / GRAPH_FILE, inputs, outputs, axes)
        check = verify(tmp / GRAPH_FILE, cases, reference, outputs, describe)
        settings = cfg.to_dict()
        for key in ("checkpoint_dir", "logger", "log_dir"):  # the run's folders, as save() drops
            settings["train"][key] = None
        meta = {
            "inputs": list(inputs),
            "outputs": list(outputs),
            "config": settings,
            "data": state.to_dict(),
            "window": window,
            "horizon": cfg.horizon,
            "steps": steps,
            "method": cfg.method,
            "quantiles": cfg.quantiles,
            "seed": cfg.train.seed,
            "sample_paths": SAMPLE_PATHS,
            "max_path_batch": MAX_PATH_BATCH,
            "scaler": fc.scaler.to_dict(),
            "context": dict(fc.context),  # `Contexts`: its per-series JSON mapping
            "verification": check,
        }
        if stacked:
            meta["members"] = len(members)
        if mixture is not None:  # the baselines beside the graph, mixed in by the runtime
            text, weights = fc.baselines.to_bytes()
            (tmp / BASELINES_FILES[0]).write_text(text, encoding="utf-8")
            (tmp / BASELINES_FILES[1]).write_bytes(weights)
            meta["mixture"] = mixture.to_dict()
        return meta, {}

    return write_export(out, ForecastPredictor.kind, build, ForecastPredictor.FILES)
