"""Inference without PyTorch: load an ONNX export (`lstmkit.export`) and predict.

Only onnxruntime, numpy, pandas, tokenizers and lstmkit's torch-free modules are imported
here, so a serving process needs no torch::

    from lstmkit import runtime

    p = runtime.load("runs/imdb/onnx")        # or the model folder holding onnx/
    p.predict(["A wonderful, moving film."])  # TextPredictor: ['pos']
    f = runtime.load("runs/air/model")
    f.predict()                               # ForecastPredictor: the horizon after the data

`load` returns a `TextPredictor` or a `ForecastPredictor`; both carry ``kind``
("text_classifier" / "forecaster"), ``backend`` ("onnx") and ``info`` (a dict describing
the model). Their predictions equal the PyTorch estimator's (`TextClassifier.predict` /
`predict_proba`, `Forecaster.predict`) within float32 rounding.
"""

from __future__ import annotations

import os
from typing import Any

from lstmkit.errors import LstmkitError
from lstmkit.runtime.forecast import ForecastPredictor
from lstmkit.runtime.meta import check_graph, inside, read_export
from lstmkit.runtime.session import (
    DEFAULT_SUBFOLDER,
    EXPORT_FILE,
    check_threads,
    export_folder,
    open_session,
)
from lstmkit.runtime.text import TextPredictor

__all__ = ["ForecastPredictor", "TextPredictor", "export_folder", "load"]


def load(
    path: str | os.PathLike[str], threads: int | None = None
) -> TextPredictor | ForecastPredictor:
    """Load an ONNX export folder (or a model folder holding one in ``onnx/``).

    Everything is checked here (`lstmkit.runtime.meta`): every field of export.json, the
    files it names (inside the folder), the tokenizer or the forecaster's data, and the
    graph against the description, with one tiny run; a damaged export fails here, in
    one line, not at the first prediction.

    Args:
        path: the folder ``lstmkit export`` / ``export_onnx`` wrote, or the model folder.
        threads: onnxruntime threads per call: None (onnxruntime's default) or >= 1.

    Returns:
        a `TextPredictor` (kind "text_classifier") or a `ForecastPredictor` (kind
        "forecaster").

    Raises:
        LstmkitError: a bad ``threads``, no export there, a damaged or foreign
        export.json, a missing file or one outside the folder, a graph that does not
        match its description, an export of a newer lstmkit major version (one line each).
    """
    threads = check_threads(threads)
    folder = export_folder(path)
    if folder is None:
        raise LstmkitError(
            f"{path}: no ONNX export ({EXPORT_FILE} not found here or in "
            f"{DEFAULT_SUBFOLDER}/); run 'lstmkit export --model MODEL_DIR --format onnx' first"
        )
    meta = read_export(folder)
    sess = open_session(inside(folder, meta, "graph"), threads)
    predictors: dict[str, Any] = {"text_classifier": TextPredictor, "forecaster": ForecastPredictor}
    where = folder / EXPORT_FILE
    try:
        predictor = predictors[meta["kind"]](folder, meta, sess)
    except (LstmkitError, KeyError, TypeError, ValueError) as err:
        what = str(err) if isinstance(err, LstmkitError) else f"{type(err).__name__}: {err}"
        if isinstance(err, LstmkitError) and str(folder) in what:
            raise  # already names its file
        raise LstmkitError(f"{where} is damaged ({what[:200]}); export the model again") from None
    check_graph(folder, meta, sess)
    return predictor
