"""What the server shares across model kinds: the ``/health`` and base ``/model`` bodies,
the text check every request field uses, and `KindServing`, what a kind's serving
adapter (``tasks/<task>/serving.py``, named by its `lstmkit.kinds` entry) gives
`lstmkit.serving.app.create_app`: its request and response models, its ``/model``
fields and its ``POST /predict`` route. No torch here.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, Protocol

from fastapi import FastAPI
from pydantic import BaseModel, Field


def unicode_text(text: str) -> str:
    """``text`` if it can be written as UTF-8; a `ValueError` (a 422 naming the field) for
    JSON's lone surrogates (``"\\ud800"``), which no model can read."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        bad = text[err.start : err.end].encode("unicode_escape").decode()
        raise ValueError(f"holds {bad}, which is not a Unicode character") from None
    return text


class Health(BaseModel):
    """Liveness: the server answers and has its model loaded."""

    status: str
    kind: str
    backend: str


class ModelInfo(BaseModel):
    """What the served model is and what a client needs to call it (not where it lies on
    disk, nor how it was trained); each kind adds its own fields."""

    kind: str = Field(description="the model kind, e.g. forecaster or text_classifier")
    backend: str = Field(description="torch or onnx")
    lstmkit_version: str = Field(description="the lstmkit version that saved the model")
    server_version: str = Field(description="the lstmkit version serving it")
    max_body_bytes: int = Field(description="the largest request body accepted (else 413)")


class KindServing(Protocol):
    """How one model kind is served (``ModelKind.serving``).

    Attributes:
        example: the shape of a ``POST /predict`` body, for error messages.
        info_model: the `ModelInfo` subclass ``GET /model`` answers with.
        request_defaults: the request fields whose default a server may set (``lstmkit
            serve --combined``); a request that gives one overrides it.
    """

    example: str
    info_model: type[ModelInfo]
    request_defaults: tuple[str, ...]

    def check_defaults(self, pred: Any, defaults: Mapping[str, Any]) -> dict[str, Any]:
        """The server's request defaults (only `request_defaults` names), checked against
        the model ``pred`` before serving; one `LstmkitError` line for a bad one."""
        ...

    def info(self, pred: Any, defaults: Mapping[str, Any]) -> dict[str, Any]:
        """The kind's fields of ``GET /model`` for the predictor ``pred``."""
        ...

    def add_routes(
        self, app: FastAPI, pred: Any, lock: threading.Lock, defaults: Mapping[str, Any]
    ) -> None:
        """Add ``POST /predict`` for ``pred`` to ``app``; predictions run under ``lock``."""
        ...
