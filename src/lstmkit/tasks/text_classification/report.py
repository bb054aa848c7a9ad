"""What ``lstmkit classify train`` / ``evaluate`` produce, as API calls the CLI only prints.

`fit_and_save` trains a `TextClassifier`, scores the held-out part (the validation split,
or the training texts when there is none), and saves the model directory with
``training.png``, ``confusion.png`` and ``metrics.json`` inside, in one atomic swap.
`save_evaluation` writes an `Evaluation`'s ``metrics.json`` and ``confusion.png``
(rendered in memory first, then each replaced atomically).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lstmkit.data.labelled import LabelledTexts
from lstmkit.tasks.text_classification.estimator import TextClassifier
from lstmkit.tasks.text_classification.metrics import Evaluation


@dataclass
class TrainReport:
    """Outcome of `fit_and_save`: the scores on ``part`` ("validation" or "training data")
    and the saved model directory."""

    evaluation: Evaluation
    part: str
    path: Path


def fit_and_save(
    clf: TextClassifier,
    data: LabelledTexts,
    out: str | Path,
    *,
    progress: bool = True,
    **fit_options: Any,
) -> TrainReport:
    """Fit ``clf`` on ``data``, score the held-out part and save the model folder ``out``.

    The folder holds the model files plus ``training.png`` (loss and accuracy per epoch),
    ``confusion.png`` and ``metrics.json`` ({part: scores}), and ``logs/`` when ``clf``
    logs with a Lightning logger and names no ``log_dir`` of its own; it replaces ``out``
    only when complete (see `lstmkit.io.save_model_dir`). ``fit_options`` go to
    `TextClassifier.fit` (``baseline=False``, ``vectors=...``); ``metrics.json`` holds the
    bag-of-words baseline's scores under ``baseline`` beside the model's.
    """
    with tempfile.TemporaryDirectory(prefix="lstmkit-train-") as tmp:
        train = clf.config.train
        if train.logger and not train.log_dir:
            train.log_dir = str(Path(tmp) / "logs")
            try:
                logs = {"logs": Path(tmp) / "logs"}
                return _fit_and_save(clf, data, out, progress, logs, fit_options)
            finally:
                train.log_dir = None
        return _fit_and_save(clf, data, out, progress, {}, fit_options)


def _fit_and_save(
    clf: TextClassifier,
    data: LabelledTexts,
    out: str | Path,
    progress: bool,
    folders: dict[str, Path],
    fit_options: dict[str, Any],
) -> TrainReport:
    from lstmkit.plots.curves import plot_training_curves
    from lstmkit.plots.text import confusion_figure, figure_png

    clf.fit(data.texts, data.labels, progress=progress, **fit_options)
    extras: dict[str, str | bytes] = {}
    with tempfile.TemporaryDirectory() as tmp:
        curves = plot_training_curves(
            clf.history, Path(tmp) / "training.png", metrics=("loss", "acc"),
            title=f"training on {Path(data.source).name}",
        )  # fmt: skip
        extras["training.png"] = curves.read_bytes()
    held_out, part = clf.validation, "validation"
    if held_out is None or not len(held_out):  # val_fraction 0: score the training texts
        held_out, part = data, "training data"
    evaluation = clf.evaluate(held_out.texts, held_out.labels)
    extras["confusion.png"] = figure_png(
        confusion_figure(evaluation.confusion, evaluation.classes,
                         title=f"{part}: accuracy {evaluation.accuracy:.1%}")
    )  # fmt: skip
    extras["metrics.json"] = json.dumps({part: evaluation.to_dict()}, indent=2)
    folders = {name: path for name, path in folders.items() if path.is_dir()}
    return TrainReport(evaluation, part, clf.save(out, extras=extras, folders=folders))


def save_evaluation(evaluation: Evaluation, out: str | Path) -> list[Path]:
    """Write ``metrics.json`` and ``confusion.png`` into the folder ``out``.

    Both are rendered in memory first, so a failure leaves the folder as it was; each
    file is then replaced atomically (temporary file + rename).
    """
    from lstmkit.io.atomic import atomic_write_bytes
    from lstmkit.plots.text import confusion_figure, figure_png

    out = Path(out)
    metrics = json.dumps(evaluation.to_dict(), indent=2).encode("utf-8")
    png = figure_png(confusion_figure(evaluation.confusion, evaluation.classes))
    return [
        atomic_write_bytes(out / "metrics.json", metrics),
        atomic_write_bytes(out / "confusion.png", png),
    ]
