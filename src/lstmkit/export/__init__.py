"""Export trained models to portable formats (ONNX), checked against PyTorch on export.

`export_model` exports a saved model folder of any kind that exports (``lstmkit
export``), asking `lstmkit.kinds` which code does it; each task's own exporter
(``tasks/<task>/export.py``, a baseline forecaster's ``baseline_export.py``, behind its
estimator's ``export_onnx``) uses the shared machinery of `lstmkit.export.onnx` (the
exporter call, the check against PyTorch, the atomic write of the folder).
`lstmkit.runtime` loads the result without PyTorch.
"""

from lstmkit.export.onnx import OPSET, check_target, export_model, verify, write_export
from lstmkit.runtime.session import EXPORT_FILE, FORMAT, GRAPH_FILE

__all__ = [
    "EXPORT_FILE",
    "FORMAT",
    "GRAPH_FILE",
    "OPSET",
    "check_target",
    "export_model",
    "verify",
    "write_export",
]
