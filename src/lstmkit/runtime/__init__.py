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

import json
import os
from pathlib import Path
from typing import Any

from lstmkit.errors import LstmkitError
from lstmkit.io.atomic import recover_dir
from lstmkit.runtime.forecast import ForecastPredictor
from lstmkit.runtime.session import EXPORT_FILE, FORMAT, open_session
from lstmkit.runtime.text import TextPredictor

__all__ = ["ForecastPredictor", "TextPredictor", "export_folder", "load"]

#: the export folder `lstmkit export` writes inside a model folder by default
DEFAULT_SUBFOLDER = "onnx"


def export_folder(path: str | os.PathLike[str]) -> Path | None:
    """The ONNX export folder at ``path``: ``path`` itself when it holds ``export.json``,
    else ``path/onnx`` when that does (a model folder exported with the default --out),
    else None."""
    path = Path(path)
    for folder in (path, path / DEFAULT_SUBFOLDER):
        recover_dir(folder)
        if (folder / EXPORT_FILE).is_file():
            return folder
    return None


def load(
    path: str | os.PathLike[str], threads: int | None = None
) -> TextPredictor | ForecastPredictor:
    """Load an ONNX export folder (or a model folder holding one in ``onnx/``).

    Args:
        path: the folder ``lstmkit export`` / ``export_onnx`` wrote, or the model folder.
        threads: onnxruntime threads per call (None: onnxruntime's default).

    Returns:
        a `TextPredictor` (kind "text_classifier") or a `ForecastPredictor` (kind
        "forecaster").

    Raises:
        LstmkitError: no export there, a damaged or foreign export.json, a missing file,
        an export of a newer lstmkit major version (one line each).
    """
    folder = export_folder(path)
    if folder is None:
        raise LstmkitError(
            f"{path}: no ONNX export ({EXPORT_FILE} not found here or in "
            f"{DEFAULT_SUBFOLDER}/); run 'lstmkit export --model MODEL_DIR --format onnx' first"
        )
    where = folder / EXPORT_FILE
    try:
        meta = json.loads(where.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise LstmkitError(
            f"{where} is not readable JSON ({err}); export the model again"
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise LstmkitError(f"{where} does not describe an lstmkit ONNX export; export again")
    _check_version(meta, where)
    kind = meta.get("kind")
    predictors: dict[str, Any] = {"text_classifier": TextPredictor, "forecaster": ForecastPredictor}
    if kind not in predictors:
        raise LstmkitError(f"{where}: unknown kind {kind!r}; expected one of {sorted(predictors)}")
    sess = open_session(folder / str(meta.get("graph", "model.onnx")), threads)
    try:
        return predictors[kind](folder, meta, sess)
    except (LstmkitError, KeyError, TypeError, ValueError) as err:
        what = str(err) if isinstance(err, LstmkitError) else f"{type(err).__name__}: {err}"
        if isinstance(err, LstmkitError) and str(folder) in what:
            raise  # already names its file
        raise LstmkitError(f"{where} is damaged ({what[:200]}); export the model again") from None


def _check_version(meta: dict[str, Any], where: Path) -> None:
    """Refuse an export written by a newer major version of lstmkit."""
    from lstmkit import __version__

    def major(version: Any) -> int:
        try:
            return int(str(version).split(".", 1)[0])
        except ValueError:
            return -1

    theirs = meta.get("lstmkit_version")
    if major(theirs) < 0 or major(theirs) > major(__version__):
        raise LstmkitError(
            f"{where} was written by lstmkit {theirs!r}, which this lstmkit {__version__} cannot "
            "read; upgrade lstmkit or export the model again"
        )
