"""Serving a text classifier (``lstmkit serve``): `TorchTextPredictor` (a saved folder on
PyTorch; an export runs on `lstmkit.tasks.text_classification.runtime.TextPredictor`) and
`SERVING`, the kind's `lstmkit.serving.schema.KindServing`:

- ``POST /predict`` takes ``{"texts": [str, ...], "combined": bool}`` and returns
  ``{"classes": [...], "labels": [...], "probabilities": [[...], ...], "combined": bool}``.
  ``combined`` (optional) asks for the model's mixture with its bag-of-words baseline, as
  ``TextClassifier.predict_proba(..., combined=True)``; left out, the server's default
  (``lstmkit serve --combined``; else the network alone) applies. A model without a
  mixture refuses ``combined: true`` with the estimator's one line (422).
- ``GET /model`` adds labels, max_length, truncation, mixture_weight (None: no mixture)
  and combined (the server's default).

No torch here: `TorchTextPredictor` imports the estimator when it is built.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import FastAPI
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from lstmkit.errors import LstmkitError
from lstmkit.io.model_dir import read_model_meta
from lstmkit.serving.schema import ModelInfo, unicode_text
from lstmkit.tasks.text_classification.baseline import NO_MIXTURE

#: a class label in JSON: a string or an integer, as the model was trained with
Label = StrictStr | StrictInt


class TorchTextPredictor:
    """A saved `TextClassifier` served with PyTorch: ``kind`` "text_classifier", ``backend``
    "torch", ``labels``, ``tokenizer``, ``mixture_weight`` (None: no mixture) and ``info``
    (kind, lstmkit_version, backend, config, labels, mixture_weight)."""

    kind = "text_classifier"
    backend = "torch"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        from lstmkit.tasks.text_classification.estimator import TextClassifier

        self.path = Path(path)
        self.model = TextClassifier.load(path)
        self.labels: list[Any] = list(self.model.classes)
        self.tokenizer = self.model.tokenizer
        baseline = self.model.baseline
        self.mixture_weight = None if baseline is None else baseline.network_weight
        self.info: dict[str, Any] = {
            "kind": self.kind,
            "lstmkit_version": read_model_meta(self.path)["lstmkit_version"],
            "backend": self.backend,
            "config": self.model.config.to_dict(),
            "labels": self.labels,
            "mixture_weight": self.mixture_weight,
        }

    def predict_proba(self, texts: Sequence[str], *, combined: bool = False) -> np.ndarray:
        """Class probabilities (n, len(labels)), columns in the order of ``labels``;
        ``combined`` as in `TextClassifier.predict_proba`."""
        return self.model.predict_proba(texts, combined=combined)

    def predict(self, texts: Sequence[str], *, combined: bool = False) -> list[Any]:
        """The most probable label of each of the n texts."""
        return self.model.predict(texts, combined=combined)


# ---------------------------------------------------------------------- request / response
def _non_empty(text: str) -> str:
    unicode_text(text)
    if not text.strip():
        raise ValueError("empty text; every text needs at least one word")
    return text


class TextRequest(BaseModel):
    """Texts to classify (at least one, none empty) and, optionally, whether to predict
    with the model's mixture with its bag-of-words baseline."""

    model_config = ConfigDict(extra="forbid")
    texts: list[Annotated[StrictStr, AfterValidator(_non_empty)]] = Field(
        min_length=1, examples=[["A wonderful, moving film."]]
    )
    combined: StrictBool | None = Field(
        default=None,
        description="predict with the mixture of the network and its bag-of-words baseline "
        "(default: the server's, see GET /model)",
    )


class TextResponse(BaseModel):
    """One label per text, the probabilities of ``classes`` (n rows, classes columns) and
    whether they are the mixture's."""

    classes: list[Label]
    labels: list[Label]
    probabilities: list[list[float]]
    combined: bool


class TextModelInfo(ModelInfo):
    """A text classifier: its labels, how long a text may be before it is cut, and its
    mixture with the bag-of-words baseline."""

    labels: list[Label] = Field(description="the classes, in the order of probabilities")
    max_length: int = Field(description="tokens a text is cut to (0: no limit)")
    truncation: str = Field(description="which part of a longer text is kept: head, tail, ...")
    mixture_weight: float | None = Field(
        description="the network's weight in its mixture with the baseline (null: no mixture, "
        "'combined' cannot be asked for)"
    )
    combined: bool = Field(description="whether a request without 'combined' gets the mixture")


class TextServing:
    """The text classifier's `lstmkit.serving.schema.KindServing` (see the module
    docstring)."""

    example = '{"texts": ["some text", ...], "combined": false}'
    info_model = TextModelInfo
    request_defaults = ("combined",)

    def check_defaults(self, pred: Any, defaults: Mapping[str, Any]) -> dict[str, Any]:
        """``combined``: true or false; true only for a model with a mixture."""
        combined = defaults.get("combined", False)
        if not isinstance(combined, bool):
            raise LstmkitError(f"the combined default must be true or false, got {combined!r}")
        if combined and pred.mixture_weight is None:
            raise LstmkitError(f"--combined: {NO_MIXTURE}")
        return {"combined": combined}

    def info(self, pred: Any, defaults: Mapping[str, Any]) -> dict[str, Any]:
        """labels, max_length, truncation, mixture_weight and the combined default."""
        tokens = pred.tokenizer.config
        return {
            "labels": list(pred.labels),
            "max_length": tokens.max_length,
            "truncation": tokens.keep,
            "mixture_weight": pred.mixture_weight,
            "combined": defaults["combined"],
        }

    def add_routes(
        self, app: FastAPI, pred: Any, lock: threading.Lock, defaults: Mapping[str, Any]
    ) -> None:
        """``POST /predict``: `TextRequest` -> `TextResponse`."""
        classes = list(pred.labels)
        default = defaults["combined"]

        @app.post("/predict", response_model=TextResponse, summary="Classify texts")
        def predict_texts(request: TextRequest) -> TextResponse:
            combined = default if request.combined is None else request.combined
            with lock:
                proba = pred.predict_proba(request.texts, combined=combined)
            labels = [classes[int(i)] for i in proba.argmax(axis=1)]
            return TextResponse(
                classes=classes,
                labels=labels,
                probabilities=proba.astype(float).tolist(),
                combined=combined,
            )


#: how ``lstmkit serve`` serves a text classifier
SERVING = TextServing()
