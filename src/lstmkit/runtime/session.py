"""The onnxruntime session of an exported graph, the names of an export folder's files and
`export_folder`, which finds the export of a path (the one place that does: the runtime,
the server and the CLI use it).

Shared by `lstmkit.runtime` (loading) and `lstmkit.export` (its self-check), so both run
the graph the same way. No torch here.
"""

from __future__ import annotations

import numbers
import os
from pathlib import Path
from typing import Any

from lstmkit.errors import LstmkitError
from lstmkit.io.atomic import recover_dir

FORMAT = "onnx"
GRAPH_FILE = "model.onnx"
EXPORT_FILE = "export.json"
#: the export folder `lstmkit export` writes inside a model folder by default
DEFAULT_SUBFOLDER = "onnx"


def export_folder(path: str | os.PathLike[str]) -> Path | None:
    """The ONNX export folder at ``path``: ``path`` itself when it holds ``export.json``,
    else ``path/onnx`` when that does (a model folder exported with the default --out),
    else None. An export whose replacement was interrupted is recovered first
    (`lstmkit.io.recover_dir`)."""
    path = Path(path)
    for folder in (path, path / DEFAULT_SUBFOLDER):
        recover_dir(folder)
        if (folder / EXPORT_FILE).is_file():
            return folder
    return None


def open_session(path: str | os.PathLike[str], threads: int | None = None) -> Any:
    """An onnxruntime CPU `InferenceSession` on the graph at ``path``.

    ``threads``: intra-op threads, None (onnxruntime's default) or an integer >= 1. A bad
    ``threads`` or a missing or unreadable graph is one `LstmkitError` line.
    """
    import onnxruntime as ort

    threads = check_threads(threads)
    path = Path(path)
    if not path.is_file():
        raise LstmkitError(f"{path}: no such file; the export is incomplete, export again")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: no shape-inference notes on stderr
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise LstmkitError(f"{path} is not a usable ONNX graph ({first}); export again") from None


def check_threads(threads: Any) -> int | None:
    """``threads`` for onnxruntime: None or an integer >= 1 (0 would mean "as many as there
    are cores" to onnxruntime, a negative number is an onnxruntime error at the first call)."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or threads < 1:
        raise LstmkitError(
            f"threads must be a whole number >= 1 (or None for onnxruntime's default), got "
            f"{threads!r}"
        )
    return int(threads)
