"""`load_predictor`: the model at a path, ready for the server (and the serving benchmark).

A predictor wraps a trained model for inference only. Every kind's predictors share
the attributes ``kind`` (a `lstmkit.kinds` name), ``backend`` ("torch" | "onnx") and
``info`` (a JSON-ready dict: kind, lstmkit_version, backend, config and the kind's own
fields); what else they offer is the kind's (a text classifier's ``labels``,
``predict_proba``; a forecaster's ``state``, ``predict(data, future)``), and its serving
adapter (`lstmkit.serving.schema.KindServing`) is what calls it.

`load_predictor` picks the backend: an ONNX export (``DIR/onnx/export.json``, or ``DIR``
itself being an export folder: `lstmkit.runtime.export_folder`) is served with
`lstmkit.runtime.load`, a saved model folder with the kind's PyTorch predictor, which
`lstmkit.kinds` names. Nothing here imports torch before a PyTorch backend is chosen:
serving an ONNX export runs without it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

from lstmkit import kinds
from lstmkit.errors import LstmkitError
from lstmkit.io.model_dir import CONFIG_FILE
from lstmkit.runtime.session import DEFAULT_SUBFOLDER, EXPORT_FILE, export_folder

#: the backends `load_predictor` takes
BACKENDS = ("auto", "onnx", "torch")


class Predictor(Protocol):
    """What the server needs of every predictor (see the module docstring)."""

    kind: str
    backend: str
    info: dict[str, Any]


def load_predictor(
    path: str | os.PathLike[str], backend: str = "auto", threads: int | None = None
) -> Predictor:
    """Load the model at ``path`` for inference.

    ``backend``: "auto" serves an ONNX export when there is one (``path`` is an export
    folder or holds ``onnx/export.json``) and PyTorch otherwise; "onnx" requires the
    export; "torch" requires the saved model folder. ``threads``: threads per
    prediction (onnxruntime's intra-op threads, or torch's for this process; None
    leaves the libraries' defaults). Anything missing or damaged, or a kind that is
    not served, raises `LstmkitError` in one line.
    """
    if backend not in BACKENDS:
        raise LstmkitError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if threads is not None and (isinstance(threads, bool) or threads < 1):
        raise LstmkitError(f"threads must be a positive integer, got {threads!r}")
    path = Path(path)
    exported = export_folder(path) if path.is_dir() else None
    if backend == "onnx" or (backend == "auto" and exported is not None):
        if exported is None:
            raise LstmkitError(
                f"{path} holds no ONNX export ({DEFAULT_SUBFOLDER}/{EXPORT_FILE}); run "
                f"`lstmkit export --model {path} --format onnx` or use --backend torch"
            )
        try:
            from lstmkit import runtime
        except ImportError as err:
            raise LstmkitError(
                f"the ONNX runtime of lstmkit cannot be imported ({err}); use --backend torch"
            ) from None
        return runtime.load(exported, threads=threads)
    if path.is_dir() and not (path / CONFIG_FILE).exists():
        if exported is not None and exported == path:
            raise LstmkitError(
                f"{path} is an ONNX export, which PyTorch cannot serve; use --backend onnx or "
                "pass the saved model folder"
            )
        raise LstmkitError(
            f"{path} holds no {CONFIG_FILE} and no ONNX export; pass a folder written by "
            "lstmkit forecast (its model/ folder), lstmkit classify train or lstmkit export"
        )
    predictor = kinds.of_model_folder(path).torch_predictor_class()
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    return predictor(path)
