"""Fitted state of a text classifier, as typed dataclasses that round-trip JSON.

`ModelState` is what ``config.json`` holds for a text model (its settings, the classes in
output order, the vocabulary size) and `TrainingRecord` what ``training.json`` holds
(the per-epoch history and a `FitInfo`). Every ``from_dict`` checks types and refuses
unknown keys through the one mechanism, `lstmkit.config.dataclass_from_dict`; a damaged
file gives one `LstmkitError` line naming the file and what to do.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from lstmkit.config import dataclass_from_dict
from lstmkit.data.text import Label
from lstmkit.errors import LstmkitError
from lstmkit.tasks.text_classification.settings import TextClassifierConfig


@dataclass
class ModelState:
    """The saved description of a fitted model (``config.json``'s ``config``).

    model: the settings; classes: the labels in output order (at least two, distinct,
    all strings or all integers); vocab_size: tokens in the tokenizer (rows of the
    embedding).
    """

    model: TextClassifierConfig
    classes: list[Label]
    vocab_size: int

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict."""
        return {
            "model": self.model.to_dict(),
            "classes": list(self.classes),
            "vocab_size": self.vocab_size,
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "config.json") -> ModelState:
        """Inverse of `to_dict`, refusing anything a damaged or foreign file could hold."""
        if not isinstance(data, dict) or not {"model", "classes", "vocab_size"} <= data.keys():
            raise LstmkitError(
                f"{where}: config lacks model/classes/vocab_size; it is not a text classifier "
                f"config, save the model again"
            )
        if not isinstance(data["model"], dict):
            raise LstmkitError(
                f"{where}: 'model' is not an object of settings; save the model again"
            )
        try:
            model = TextClassifierConfig.from_dict(data["model"])
            state = dataclass_from_dict(cls, {**data, "model": model}, "text model config")
        except LstmkitError as err:
            raise LstmkitError(f"{where}: {err}; save the model again") from None
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise LstmkitError(
                f"{where}: the model settings are damaged ({type(err).__name__}: {err}); save "
                f"the model again"
            ) from None
        state.check(where)
        return state

    def check(self, where: str) -> None:
        """Raise `LstmkitError` unless classes and vocab_size are usable."""
        classes = self.classes
        if not isinstance(classes, list) or not all(
            isinstance(c, str | int) and not isinstance(c, bool) for c in classes
        ):
            raise LstmkitError(
                f"{where}: classes must be a list of class names or integers, got {classes!r}; "
                f"save the model again"
            )
        if len(classes) < 2 or len(set(classes)) != len(classes):
            raise LstmkitError(
                f"{where}: classes {classes!r} must list at least two distinct classes; the "
                f"file is damaged, save the model again"
            )
        vocab = self.vocab_size
        if not isinstance(vocab, int) or isinstance(vocab, bool) or vocab < 3:
            raise LstmkitError(
                f"{where}: vocab_size must be an integer >= 3, got {vocab!r}; save the model again"
            )


@dataclass
class FitInfo:
    """Facts about the last fit (saved in ``training.json``; NaN best loss without one).

    Counts are texts and tokens; times are seconds; tokens_per_second is
    train_tokens_per_epoch * epochs trained by this fit / fit_seconds (epochs_run
    counts the epochs a resumed run took from its checkpoint too); resumed_from_epoch:
    the checkpoint epoch training continued from (None: trained from scratch);
    baseline_seconds: time to fit the bag-of-words baseline (None: none fitted);
    class_weights: the loss weight of each class, in class order, as given (the loss uses
    them scaled to a largest of 1; None: unweighted);
    vectors_file / vectors_coverage: the word-vector file the embedding started from and
    the share of the vocabulary found in it (None: random initialisation).
    """

    train_texts: int = 0
    val_texts: int = 0
    vocab_size: int = 0
    train_tokens_per_epoch: int = 0
    tokenizer_seconds: float = 0.0
    fit_seconds: float = 0.0
    epochs_run: int = 0
    best_epoch: int = -1
    best_val_loss: float = math.nan
    tokens_per_second: float = 0.0
    world_size: int = 1
    resumed_from_epoch: int | None = None
    baseline_seconds: float | None = None
    class_weights: list[float] | None = None
    vectors_file: str | None = None
    vectors_coverage: float | None = None


@dataclass
class TrainingRecord:
    """``training.json``: one dict of metrics per epoch (epoch, train_loss, val_acc, ...)
    and the `FitInfo`."""

    history: list[dict[str, float]] = field(default_factory=list)
    info: FitInfo = field(default_factory=FitInfo)

    def to_json(self) -> str:
        """The ``training.json`` text."""
        return json.dumps({"history": self.history, "info": asdict(self.info)}, indent=2)

    @classmethod
    def from_json(cls, raw: bytes, where: str = "training.json") -> TrainingRecord:
        """Inverse of `to_json`; a damaged file is one `LstmkitError` line."""
        fix = "delete it to load the model without its training history, or save the model again"
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise LstmkitError(f"{where}: damaged ({type(err).__name__}); {fix}") from None
        history = data.get("history") if isinstance(data, dict) else None
        info = data.get("info") if isinstance(data, dict) else None
        if not (
            isinstance(history, list)
            and all(isinstance(row, dict) for row in history)
            and isinstance(info, dict)
        ):
            raise LstmkitError(
                f"{where}: expected an object with a 'history' list and an 'info' object; {fix}"
            )
        try:
            return dataclass_from_dict(
                cls, {**data, "info": dataclass_from_dict(FitInfo, info, "FitInfo")}, where
            )
        except (LstmkitError, TypeError) as err:
            raise LstmkitError(f"{where}: {err}; {fix}") from None
