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
"""

from lstmkit.tasks.language_model.encoder import KIND, PretrainedEncoder, PretrainInfo
from lstmkit.tasks.language_model.module import LanguageModelModule
from lstmkit.tasks.language_model.network import (
    LanguageModelNet,
    adaptive_cutoffs,
    make_encoder,
    require_finite_weights,
)
from lstmkit.tasks.language_model.pretrain import pretrain
from lstmkit.tasks.language_model.settings import (
    ENCODER_FIELDS,
    TRUNCATION_FIELDS,
    EncoderSettings,
    PretrainSettings,
    check_pretrainable,
    encoder_config,
)
from lstmkit.tasks.language_model.stream import (
    CorpusStats,
    LanguageModelData,
    LanguageModelStream,
    StreamLoader,
    scan_corpus,
    validation_loader,
)

__all__ = [
    "ENCODER_FIELDS",
    "KIND",
    "TRUNCATION_FIELDS",
    "CorpusStats",
    "EncoderSettings",
    "LanguageModelData",
    "LanguageModelModule",
    "LanguageModelNet",
    "LanguageModelStream",
    "PretrainInfo",
    "PretrainSettings",
    "PretrainedEncoder",
    "StreamLoader",
    "adaptive_cutoffs",
    "check_pretrainable",
    "encoder_config",
    "make_encoder",
    "pretrain",
    "require_finite_weights",
    "scan_corpus",
    "validation_loader",
]
