"""Text classification with an LSTM/GRU (``from lstmkit import TextClassifier``).

Files of this package, in the order a newcomer reads them:

- ``estimator.py``: `TextClassifier` (fit, predict, predict_proba, evaluate, explain,
  save, load) and `GateTrace`;
- ``settings.py``: `TextClassifierConfig` (every setting declared once, with its
  `lstmkit.data.tokenize.TokenizerConfig` and the shared `lstmkit.training.TrainConfig`
  nested as ``tokenizer`` and ``train``), ``PRESETS`` (``"seed000"``, ``"seed003"``,
  ``"imdb"``) and `make_config`;
- ``data.py``: `TextData`, the Lightning DataModule of a fit (tokenizer, token ids and
  loaders of the training and validation parts) and `stratified_split`;
- ``network.py``: `TextClassifierNet`, the ``torch.nn.Module`` Embedding -> LSTM/GRU ->
  pooling -> dropout -> linear, and `check_weight_shapes` for saved weights;
- ``module.py``: `TextClassifierModule`, the `lstmkit.training.LstmkitModule` that trains
  the network (the loss and accuracy of a batch; optimiser and logging are the base's);
- ``state.py``: fitted state that round-trips JSON: `ModelState` (config.json),
  `TrainingRecord` and `FitInfo` (training.json);
- ``metrics.py``: `Evaluation`, `confusion_matrix` and `macro_f1` (torchmetrics);
- ``pretrain.py``: deprecated; the encoder learnt from unlabelled text as a language
  model (``TextClassifier.pretrain`` / ``fit(pretrained=...)``) is the package
  `lstmkit.tasks.language_model`, which this one uses;
- ``report.py``: `fit_and_save` and `save_evaluation`, what ``lstmkit classify train`` /
  ``evaluate`` write (the CLI only parses, calls these and prints);
- ``kind.py``: the registry entries (`lstmkit.kinds`) of a text classifier and of a
  pretrained encoder; ``export.py`` (the ONNX export), ``runtime.py`` (`TextPredictor`:
  the export on onnxruntime, no torch) and ``serving.py`` (what ``lstmkit serve`` needs)
  are what the registry names;
- ``baseline.py``: `BagOfWordsBaseline`, the TF-IDF / NBSVM baseline and the network's
  mixture with it (no torch).

The names below are imported on first use, so that the torch-free modules (``kind``,
``runtime``, ``serving``, ``baseline``) import without torch.
"""

from importlib import import_module
from typing import Any

_LAZY = {
    "KIND": "estimator",
    "GateTrace": "estimator",
    "TextClassifier": "estimator",
    "Evaluation": "metrics",
    "confusion_matrix": "metrics",
    "macro_f1": "metrics",
    "TextClassifierModule": "module",
    "TextClassifierNet": "network",
    "check_weight_shapes": "network",
    "PRESETS": "settings",
    "RNNS": "settings",
    "TextClassifierConfig": "settings",
    "make_config": "settings",
    "FitInfo": "state",
    "ModelState": "state",
    "TrainingRecord": "state",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"lstmkit.tasks.text_classification.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'lstmkit.tasks.text_classification' has no attribute {name!r}")
