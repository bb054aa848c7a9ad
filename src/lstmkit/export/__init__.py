"""Export trained models to portable formats (ONNX), checked against PyTorch on export.

`export_text_classifier` / `export_forecaster` are what `TextClassifier.export_onnx`,
`Forecaster.export_onnx` and ``lstmkit export`` call; `lstmkit.runtime` loads the result
without PyTorch. See `lstmkit.export.onnx` for the folder layout and the self-check.
"""

from lstmkit.export.onnx import OPSET, export_forecaster, export_model, export_text_classifier
from lstmkit.runtime.session import EXPORT_FILE, FORMAT, GRAPH_FILE

__all__ = [
    "EXPORT_FILE",
    "FORMAT",
    "GRAPH_FILE",
    "OPSET",
    "export_forecaster",
    "export_model",
    "export_text_classifier",
]
