"""Inference without PyTorch: load an ONNX export (`lstmkit.export`) and predict.

Only onnxruntime, numpy, pandas, tokenizers (and scikit-learn for a text model's
bag-of-words mixture) and lstmkit's torch-free modules are imported here, so a serving
process needs no torch::

    from lstmkit import runtime

    p = runtime.load("runs/imdb/onnx")        # or the model folder holding onnx/
    p.predict(["A wonderful, moving film."])  # a text classifier: ['pos']
    p.predict_proba(texts, combined=True)     # its mixture with the bag-of-words baseline
    f = runtime.load("runs/air/model")
    f.predict()                               # a forecaster: the horizon after the data

`load` reads the kind from export.json and returns that kind's ONNX predictor, which
`lstmkit.kinds` names (`lstmkit.tasks.text_classification.runtime.TextPredictor`,
`lstmkit.tasks.forecasting.runtime.ForecastPredictor`,
`lstmkit.tasks.forecasting.baseline_runtime.BaselinePredictor`); each carries ``kind``,
``backend`` ("onnx") and ``info`` (a dict describing the model), and predicts as the
PyTorch estimator does (`TextClassifier.predict` / `predict_proba`, `Forecaster.predict`,
`BaselineForecaster.predict`) within float32 rounding. The shared parts:
`lstmkit.runtime.session` (the onnxruntime session, `export_folder`) and
`lstmkit.runtime.meta` (the checks of export.json).
"""

from __future__ import annotations

import os
from typing import Any

from lstmkit.errors import LstmkitError
from lstmkit.runtime.meta import check_graph, exported_kind, inside, read_export
from lstmkit.runtime.session import (
    DEFAULT_SUBFOLDER,
    EXPORT_FILE,
    check_threads,
    export_folder,
    open_session,
)

__all__ = ["export_folder", "load"]


def load(path: str | os.PathLike[str], threads: int | None = None) -> Any:
    """Load an ONNX export folder (or a model folder holding one in ``onnx/``).

    Everything is checked here (`lstmkit.runtime.meta`): every field of export.json, the
    files it names (inside the folder), what the kind's predictor reads (the tokenizer
    and mixture, or the forecaster's data), and the graph against the description, with
    one tiny run; a damaged export fails here, in one line, not at the first prediction.

    Args:
        path: the folder ``lstmkit export`` / ``export_onnx`` wrote, or the model folder.
        threads: onnxruntime threads per call: None (onnxruntime's default) or >= 1.

    Returns:
        the ONNX predictor of the export's kind (``kind``, ``backend`` "onnx", ``info``,
        ``predict``; a text classifier's also ``predict_proba``).

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
    where = folder / EXPORT_FILE
    try:
        predictor = exported_kind(meta)(folder, meta, sess)
    except (LstmkitError, KeyError, TypeError, ValueError) as err:
        what = str(err) if isinstance(err, LstmkitError) else f"{type(err).__name__}: {err}"
        if isinstance(err, LstmkitError) and str(folder) in what:
            raise  # already names its file
        raise LstmkitError(f"{where} is damaged ({what[:200]}); export the model again") from None
    check_graph(folder, meta, sess)
    return predictor
