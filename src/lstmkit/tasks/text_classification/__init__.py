"""Text classification with an LSTM/GRU (``from lstmkit import TextClassifier``).

Files of this package, in the order a newcomer reads them:

- ``estimator.py``: `TextClassifier` (fit, predict, predict_proba, evaluate, explain,
  save, load) and `GateTrace`;
- ``settings.py``: `TextClassifierConfig` (every setting, type-checked; its
  ``train_config()`` is the `lstmkit.training.TrainConfig` of a fit), ``PRESETS``
  (``"seed000"``, ``"seed003"``, ``"imdb"``) and `make_config`;
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
  ``evaluate`` write (the CLI only parses, calls these and prints).
"""

from lstmkit.tasks.text_classification.estimator import KIND, GateTrace, TextClassifier
from lstmkit.tasks.text_classification.metrics import Evaluation, confusion_matrix, macro_f1
from lstmkit.tasks.text_classification.module import TextClassifierModule
from lstmkit.tasks.text_classification.network import TextClassifierNet, check_weight_shapes
from lstmkit.tasks.text_classification.settings import (
    PRESETS,
    RNNS,
    TextClassifierConfig,
    make_config,
)
from lstmkit.tasks.text_classification.state import FitInfo, ModelState, TrainingRecord

__all__ = [
    "KIND",
    "PRESETS",
    "RNNS",
    "Evaluation",
    "FitInfo",
    "GateTrace",
    "ModelState",
    "TextClassifier",
    "TextClassifierConfig",
    "TextClassifierModule",
    "TextClassifierNet",
    "TrainingRecord",
    "check_weight_shapes",
    "confusion_matrix",
    "macro_f1",
    "make_config",
]
