"""The registry of model kinds: which code loads, predicts, exports and serves each kind.

A saved model folder records its ``kind`` in ``config.json``, an ONNX export in
``export.json``. `REGISTRY` maps each kind to its `ModelKind`, which lives in the kind's
own task package (``tasks/<task>/kind.py``) and names each part by import path
(``"package.module:name"``), imported on first use:

- ``estimator``: the class whose ``load(folder)`` reads a saved folder (PyTorch);
- ``exporter``: ``export(estimator, out)``, the ONNX export (PyTorch), or None;
- ``onnx_predictor``: the torch-free class that checks an export and predicts from it
  (`lstmkit.runtime.meta.ExportedKind`), or None;
- ``torch_predictor``: the class that serves a saved folder with PyTorch, or None;
- ``serving``: the request and response models, ``GET /model`` fields and ``POST /predict``
  route of the server (`lstmkit.serving.schema.KindServing`), or None;
- ``task``: the task whose commands predict with it (``"forecasting"``: ``lstmkit
  predict``, which calls ``predict(data, future=..., baselines=True)``), or "".

Export (`lstmkit.export.export_model`), the runtime (`lstmkit.runtime.load`), serving
(`lstmkit.serving`) and the CLI ask this registry and never branch on a kind's name. It
imports no task itself, so resolving a kind on a torch-free path (`lstmkit.runtime`,
serving an ONNX export) imports no torch. Adding a kind is its own package plus one line
in `REGISTRY`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

from lstmkit.errors import LstmkitError
from lstmkit.io.model_dir import CONFIG_FILE, read_model_meta

#: every kind lstmkit knows -> its `ModelKind`, as "module:name" (imported on first use)
REGISTRY: dict[str, str] = {
    "forecaster": "lstmkit.tasks.forecasting.kind:FORECASTER",
    "baseline_forecaster": "lstmkit.tasks.forecasting.kind:BASELINE_FORECASTER",
    "text_classifier": "lstmkit.tasks.text_classification.kind:TEXT_CLASSIFIER",
    "text_encoder": "lstmkit.tasks.text_classification.kind:TEXT_ENCODER",
}


def resolve(ref: str) -> Any:
    """The object an import path ``"package.module:name"`` names (the module is imported)."""
    module, _, name = ref.partition(":")
    return getattr(import_module(module), name)


@dataclass(frozen=True)
class ModelKind:
    """What one kind of model is and which code does what with it (see the module
    docstring); the parts are import paths, so that declaring a kind imports nothing.

    Attributes:
        name: the ``kind`` written into config.json and export.json.
        title: how messages name it ("text classifier").
        estimator: "module:Class" with ``load(folder)``, reading a saved folder.
        exporter: "module:function" ``(estimator, out) -> Path`` writing the ONNX export;
            None: this kind does not export.
        onnx_predictor: "module:Class", torch-free: checks an export's description and
            predicts from it (`lstmkit.runtime.meta.ExportedKind`); None with no exporter.
        torch_predictor: "module:Class" whose ``Class(folder)`` serves a saved folder with
            PyTorch; None: not served.
        serving: "module:name" of its `lstmkit.serving.schema.KindServing`; None: not
            served.
        instead: what to do with a model of this kind that cannot be exported or served
            (the end of that message).
        task: "forecasting" for the kinds ``lstmkit predict`` forecasts with; "" else.
    """

    name: str
    title: str
    estimator: str
    exporter: str | None = None
    onnx_predictor: str | None = None
    torch_predictor: str | None = None
    serving: str | None = None
    instead: str = ""
    task: str = ""

    def _part(self, ref: str | None, doing: str) -> Any:
        if ref is None:
            hint = f"; {self.instead}" if self.instead else ""
            raise LstmkitError(f"a {self.title} cannot be {doing}{hint}")
        return resolve(ref)

    def load(self, path: str | os.PathLike[str]) -> Any:
        """The estimator read from the saved folder ``path`` (imports its task)."""
        return resolve(self.estimator).load(path)

    @property
    def exportable(self) -> bool:
        """Whether a model of this kind exports to ONNX."""
        return self.exporter is not None

    def export(self, model: Any, out: str | os.PathLike[str]) -> Path:
        """Export the fitted estimator ``model`` to the folder ``out`` (`LstmkitError` for a
        kind that does not export)."""
        return self._part(self.exporter, "exported to ONNX")(model, out)

    def onnx_predictor_class(self) -> Any:
        """The torch-free class that checks and runs this kind's exports."""
        return self._part(self.onnx_predictor, "exported to ONNX")

    def torch_predictor_class(self) -> Any:
        """The class that serves a saved folder of this kind with PyTorch."""
        return self._part(self.torch_predictor, "served")

    def serving_adapter(self) -> Any:
        """This kind's `lstmkit.serving.schema.KindServing` (its request, response and
        ``/model`` fields)."""
        return self._part(self.serving, "served")


def names() -> tuple[str, ...]:
    """The kinds lstmkit knows, in `REGISTRY` order."""
    return tuple(REGISTRY)


def get(name: str) -> ModelKind:
    """The `ModelKind` registered as ``name``; an unknown name is one `LstmkitError` line
    listing the known ones."""
    ref = REGISTRY.get(name) if isinstance(name, str) else None
    if ref is None:
        raise LstmkitError(f"unknown model kind {name!r}; lstmkit knows {', '.join(REGISTRY)}")
    kind = resolve(ref)
    if not isinstance(kind, ModelKind) or kind.name != name:
        raise TypeError(f"REGISTRY[{name!r}] = {ref!r} is not the ModelKind {name!r}")
    return kind


def of_model_folder(path: str | os.PathLike[str]) -> ModelKind:
    """The `ModelKind` of the saved model folder ``path`` (its config.json, checked by
    `lstmkit.io.read_model_meta`); one `LstmkitError` line for a missing or damaged folder
    or a kind this lstmkit does not know."""
    name = read_model_meta(path)["kind"]
    if name not in REGISTRY:
        raise LstmkitError(
            f"{Path(path) / CONFIG_FILE}: unknown model kind {name!r}; lstmkit knows "
            f"{', '.join(REGISTRY)}"
        )
    return get(name)
