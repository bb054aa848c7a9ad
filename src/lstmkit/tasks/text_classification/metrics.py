"""Scores of a text classifier: accuracy, macro F1 and the confusion matrix (torchmetrics).

`confusion_matrix` and `macro_f1` take integer class ids (n,) and return NumPy values;
`Evaluation` holds the scores of `TextClassifier.evaluate` and round-trips JSON.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torchmetrics.functional.classification import (
    multiclass_confusion_matrix,
    multiclass_f1_score,
)

from lstmkit.data.text import Label


def _ids(values: Sequence[int] | np.ndarray | torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(np.asarray(values, dtype=np.int64))


def confusion_matrix(
    y_true: Sequence[int] | np.ndarray | torch.Tensor,
    y_pred: Sequence[int] | np.ndarray | torch.Tensor,
    num_classes: int,
) -> np.ndarray:
    """Counts (classes, classes) int64: row = true class, column = predicted class."""
    if len(y_true) == 0:
        return np.zeros((num_classes, num_classes), dtype=np.int64)
    cm = multiclass_confusion_matrix(_ids(y_pred), _ids(y_true), num_classes=num_classes)
    return cm.numpy().astype(np.int64)


def macro_f1(
    y_true: Sequence[int] | np.ndarray | torch.Tensor,
    y_pred: Sequence[int] | np.ndarray | torch.Tensor,
    num_classes: int,
) -> float:
    """Unweighted mean F1 over the classes that occur (as true or predicted labels).

    F1 of a class is 2 tp / (2 tp + fp + fn) (0 when it is never predicted correctly);
    a class absent from both ``y_true`` and ``y_pred`` is left out of the mean. NaN for
    no samples.
    """
    if len(y_true) == 0:
        return math.nan
    score = multiclass_f1_score(
        _ids(y_pred), _ids(y_true), num_classes=num_classes, average="macro"
    )
    return float(score)


@dataclass
class Evaluation:
    """Scores of a classifier on labelled texts.

    confusion: (classes, classes) counts, row = true class, column = predicted.
    baseline: the bag-of-words baseline's scores on the same texts (None for a model
    saved without one; shown as n/a).
    combined: the scores of the mixture of the network and the baseline
    (``TextClassifier.predict_proba(combined=True)``; None without one).
    """

    accuracy: float
    macro_f1: float
    loss: float
    confusion: np.ndarray
    classes: list[Label]
    n: int
    seconds: float = 0.0
    baseline: Evaluation | None = None
    combined: Evaluation | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict."""
        return {
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "loss": self.loss,
            "confusion": self.confusion.tolist(),
            "classes": list(self.classes),
            "n": self.n,
            "seconds": self.seconds,
            "baseline": None if self.baseline is None else self.baseline.to_dict(),
            "combined": None if self.combined is None else self.combined.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Evaluation:
        """Inverse of `to_dict` (unknown keys refused)."""
        from lstmkit.config import dataclass_from_dict

        data = dict(data)
        data["confusion"] = np.asarray(data.get("confusion", []), dtype=np.int64)
        for part in ("baseline", "combined"):
            if isinstance(data.get(part), dict):
                data[part] = cls.from_dict(data[part])
        return dataclass_from_dict(cls, data, "Evaluation")
