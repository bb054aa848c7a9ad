"""Serving trained lstmkit models: predictors for PyTorch (and ONNX exports) and the
REST server of ``lstmkit serve`` (`create_app`)."""

from lstmkit.serving.predictors import (
    TorchForecastPredictor,
    TorchTextPredictor,
    export_folder,
    load_predictor,
)

__all__ = ["TorchForecastPredictor", "TorchTextPredictor", "export_folder", "load_predictor"]
