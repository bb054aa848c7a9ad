"""Deprecated: the language model is its own task package, `lstmkit.tasks.language_model`.

The names this module held are read from there, with a `DeprecationWarning` (this
module goes in the next release). `PretrainedEncoder.load` here keeps its old one-argument
form (the settings read as a `TextClassifierConfig`).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from lstmkit.tasks import language_model
from lstmkit.tasks.text_classification.settings import TextClassifierConfig

_MOVED = {
    "KIND", "ENCODER_FIELDS", "TRUNCATION_FIELDS", "VAL_EVERY", "LOG_EVERY",
    "PretrainSettings", "PretrainInfo", "LanguageModelNet", "LanguageModelStream",
    "LanguageModelModule", "StreamLoader", "CorpusStats", "adaptive_cutoffs",
    "check_pretrainable", "encoder_config", "pretrain", "scan_corpus", "validation_loader",
}  # fmt: skip


class _LegacyPretrainedEncoder(language_model.PretrainedEncoder):
    """`lstmkit.tasks.language_model.PretrainedEncoder` with the old ``load(path)``."""

    @classmethod
    def load(
        cls, path: str | Path, config_type: Any = TextClassifierConfig
    ) -> language_model.PretrainedEncoder:
        return super().load(path, config_type)


def __getattr__(name: str) -> Any:
    if name not in _MOVED and name != "PretrainedEncoder":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        f"lstmkit.tasks.text_classification.pretrain.{name} moved to "
        f"lstmkit.tasks.language_model; import it from there",
        DeprecationWarning,
        stacklevel=2,
    )
    if name == "PretrainedEncoder":
        return _LegacyPretrainedEncoder
    if name in ("VAL_EVERY", "LOG_EVERY"):
        from lstmkit.tasks.language_model import module, stream

        return getattr(stream if name == "VAL_EVERY" else module, name)
    return getattr(language_model, name)
