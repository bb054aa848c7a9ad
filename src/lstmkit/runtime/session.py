"""The onnxruntime session of an exported graph and the names of an export folder's files.

Shared by `lstmkit.runtime` (loading) and `lstmkit.export` (its self-check), so both run
the graph the same way. No torch here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lstmkit.errors import LstmkitError

FORMAT = "onnx"
GRAPH_FILE = "model.onnx"
EXPORT_FILE = "export.json"
TOKENIZER_FILE = "tokenizer.json"


def open_session(path: str | os.PathLike[str], threads: int | None = None) -> Any:
    """An onnxruntime CPU `InferenceSession` on the graph at ``path``.

    ``threads``: intra-op threads (None: onnxruntime's default). A missing or unreadable
    graph is one `LstmkitError` line.
    """
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise LstmkitError(f"{path}: no such file; the export is incomplete, export again")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: no shape-inference notes on stderr
    if threads is not None:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise LstmkitError(f"{path} is not a usable ONNX graph ({first}); export again") from None
