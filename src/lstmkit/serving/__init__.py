"""Serving trained lstmkit models over HTTP (``lstmkit serve``).

- ``predictors.py``: `load_predictor`, the model at a path on PyTorch or from its ONNX
  export (the kind's predictors, named by `lstmkit.kinds`);
- ``schema.py``: what every kind's serving shares (`ModelInfo`, `KindServing`);
- ``app.py``: the FastAPI app (`create_app`), its limits and API key.

Each kind's request and response models live in its task package
(``tasks/<task>/serving.py``).
"""

from lstmkit.serving.predictors import BACKENDS, Predictor, load_predictor

__all__ = ["BACKENDS", "Predictor", "load_predictor"]
