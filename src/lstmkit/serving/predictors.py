"""Predictors the server (and the serving benchmark) call: one interface, two backends.

A predictor wraps a trained model for inference only. Both kinds share the
attributes ``kind`` ("forecaster" | "text_classifier"), ``backend`` ("torch" |
"onnx") and ``info`` (a JSON-ready dict: kind, lstmkit_version, backend, config
and the task's own fields). A text predictor has ``labels``, ``tokenizer``,
``predict(texts)`` (n labels) and ``predict_proba(texts)`` ((n, classes) array,
columns in the order of ``labels``); a forecast predictor has ``state`` (the
`FittedState`) and ``predict(data=None, future=None)`` returning the table
`Forecaster.predict` returns.

Nothing here imports torch before a PyTorch backend is chosen: serving an ONNX
export runs without it.

This module holds the PyTorch adapters (`TorchForecastPredictor`,
`TorchTextPredictor`) and `load_predictor`, which picks the backend: an ONNX
export (``DIR/onnx/export.json``, or ``DIR`` itself being an export folder) is
served with `lstmkit.runtime.load`, a saved model folder with PyTorch.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd

from lstmkit import __version__
from lstmkit.errors import LstmkitError

EXPORT_FILE = "export.json"
EXPORT_FOLDER = "onnx"
Backend = Literal["auto", "onnx", "torch"]
BACKENDS = ("auto", "onnx", "torch")


class Predictor(Protocol):
    """What the server needs of a predictor (see the module docstring)."""

    kind: str
    backend: str
    info: dict[str, Any]


class TorchForecastPredictor:
    """A saved `Forecaster` served with PyTorch."""

    kind = "forecaster"
    backend = "torch"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        from lstmkit.tasks.forecasting import Forecaster

        self.path = Path(path)
        self.model = Forecaster.load(path)
        state, cfg = self.model.state, self.model.config
        assert state is not None
        self.state = state
        self.info: dict[str, Any] = {
            "kind": self.kind,
            "lstmkit_version": _saved_version(self.path),
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
        }

    def predict(
        self, data: pd.DataFrame | None = None, future: pd.DataFrame | None = None
    ) -> pd.DataFrame:
        """The forecast after ``data`` (default: after the training data): (id,) time,
        ``forecast`` and one ``q<percent>`` column per quantile, ``horizon`` rows a series."""
        return self.model.predict(data, future)


class TorchTextPredictor:
    """A saved `TextClassifier` served with PyTorch."""

    kind = "text_classifier"
    backend = "torch"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        from lstmkit.tasks.text_classification import TextClassifier

        self.path = Path(path)
        self.model = TextClassifier.load(path)
        self.labels: list[Any] = list(self.model.classes)
        self.tokenizer = self.model.tokenizer
        self.info: dict[str, Any] = {
            "kind": self.kind,
            "lstmkit_version": _saved_version(self.path),
            "backend": self.backend,
            "config": self.model.config.to_dict(),
            "labels": self.labels,
        }

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities (n, len(labels)), columns in the order of ``labels``."""
        return self.model.predict_proba(texts)

    def predict(self, texts: Sequence[str]) -> list[Any]:
        """The most probable label of each of the n texts."""
        return self.model.predict(texts)


def _saved_version(path: Path) -> str:
    """The lstmkit version recorded in a model folder's config.json (else this one)."""
    try:
        return str(json.loads((path / "config.json").read_text())["lstmkit_version"])
    except (OSError, ValueError, KeyError, TypeError):
        return __version__


def export_folder(path: str | os.PathLike[str]) -> Path | None:
    """The ONNX export folder for ``path``: ``path`` itself when it holds export.json,
    else ``path/onnx`` when that does; None when there is no export."""
    path = Path(path)
    if (path / EXPORT_FILE).is_file():
        return path
    if (path / EXPORT_FOLDER / EXPORT_FILE).is_file():
        return path / EXPORT_FOLDER
    return None


def _model_kind(path: Path) -> str:
    """The ``kind`` in ``path/config.json``; a missing or damaged folder raises `LstmkitError`."""
    if not path.exists():
        raise LstmkitError(
            f"model folder {path} does not exist; pass a folder written by lstmkit forecast, "
            "lstmkit classify train or lstmkit export"
        )
    if not path.is_dir():
        raise LstmkitError(f"--model {path} is a file; pass the model folder")
    config = path / "config.json"
    try:
        meta = json.loads(config.read_text())
    except FileNotFoundError:
        raise LstmkitError(
            f"{path} holds no config.json and no ONNX export; pass a folder written by "
            "lstmkit forecast (its model/ folder), lstmkit classify train or lstmkit export"
        ) from None
    except (OSError, ValueError) as err:
        raise LstmkitError(f"{config} is unreadable or not JSON ({err}); save again") from None
    kind = meta.get("kind") if isinstance(meta, dict) else None
    if kind not in ("forecaster", "text_classifier"):
        raise LstmkitError(
            f"{config} names no lstmkit model kind (got {kind!r}); expected 'forecaster' or "
            "'text_classifier'"
        )
    return str(kind)


def load_predictor(
    path: str | os.PathLike[str], backend: str = "auto", threads: int | None = None
) -> Predictor:
    """Load the model at ``path`` for inference.

    ``backend``: "auto" serves an ONNX export when there is one (``path`` is an export
    folder or holds ``onnx/export.json``) and PyTorch otherwise; "onnx" requires the
    export; "torch" requires the saved model folder. ``threads``: threads per
    prediction (onnxruntime's intra-op threads, or torch's for this process; None
    leaves the libraries' defaults). Anything missing or damaged raises `LstmkitError`
    in one line.
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
                f"{path} holds no ONNX export (onnx/export.json); run "
                f"`lstmkit export --model {path} --format onnx` or use --backend torch"
            )
        try:
            from lstmkit import runtime
        except ImportError as err:
            raise LstmkitError(
                f"the ONNX runtime of lstmkit cannot be imported ({err}); use --backend torch"
            ) from None
        return runtime.load(exported, threads=threads)
    if exported is not None and exported == path and not (path / "config.json").exists():
        raise LstmkitError(
            f"{path} is an ONNX export, which PyTorch cannot serve; use --backend onnx or "
            "pass the saved model folder"
        )
    kind = _model_kind(path)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    if kind == "forecaster":
        return TorchForecastPredictor(path)
    return TorchTextPredictor(path)
