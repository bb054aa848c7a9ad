"""The language model: pretraining a text encoder on unlabelled text.

Labelled texts are scarce, unlabelled ones are not: `pretrain` learns a tokenizer, word
vectors and an LSTM/GRU encoder from any `lstmkit.data.corpus.TextCorpus` (streamed from
disk, never held in memory) as a language model, and returns a `PretrainedEncoder`,
which the text classifier fine-tunes (``TextClassifier.pretrain`` /
``TextClassifier.fit(pretrained=...)``). The encoder's shape is the classifier's: any
settings with the `EncoderSettings` fields (a ``TextClassifierConfig``) describe it.

Files of this package, in the order a newcomer reads them:

- ``pretrain.py``: `pretrain`, the whole run (data, network, training, result);
- ``settings.py``: `PretrainSettings` (how to pretrain), `EncoderSettings` (what the
  encoder is), `ENCODER_FIELDS` and `check_pretrainable`;
- ``stream.py``: `LanguageModelData` (the Lightning DataModule: tokenizer, one scan of
  the corpus, loaders), `LanguageModelStream` (resumable batches streamed per epoch),
  `scan_corpus`;
- ``network.py``: `make_encoder` (the encoder the classifier shares) and
  `LanguageModelNet` (encoder + adaptive softmax);
- ``module.py``: `LanguageModelModule`, the LightningModule (time budget, training
  curve, mid-epoch resume);
- ``encoder.py``: `PretrainedEncoder` (save / load as a model folder of kind
  ``"text_encoder"``, the settings and weights a classifier takes over) and
  `PretrainInfo`.

The names below are imported on first use, so that the settings import without torch.
"""

from importlib import import_module
from types import ModuleType
from typing import Any

_LAZY = {
    "KIND": "encoder",
    "PretrainedEncoder": "encoder",
    "PretrainInfo": "encoder",
    "LanguageModelModule": "module",
    "LanguageModelNet": "network",
    "adaptive_cutoffs": "network",
    "make_encoder": "network",
    "require_finite_weights": "network",
    "pretrain": "pretrain",
    "ENCODER_FIELDS": "settings",
    "TRUNCATION_FIELDS": "settings",
    "EncoderSettings": "settings",
    "PretrainSettings": "settings",
    "check_pretrainable": "settings",
    "encoder_config": "settings",
    "CorpusStats": "stream",
    "LanguageModelData": "stream",
    "LanguageModelStream": "stream",
    "StreamLoader": "stream",
    "scan_corpus": "stream",
    "validation_loader": "stream",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'lstmkit.tasks.language_model' has no attribute {name!r}")
    value = getattr(import_module(f"lstmkit.tasks.language_model.{_LAZY[name]}"), name)
    globals()[name] = value
    # importing the submodule ``pretrain`` binds its name here to the module; the name
    # means the function, as before the imports were lazy
    if isinstance(globals().get("pretrain"), ModuleType):
        globals()["pretrain"] = globals()["pretrain"].pretrain
    return value
