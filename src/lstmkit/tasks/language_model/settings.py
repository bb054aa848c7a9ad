"""Settings of language-model pretraining: `PretrainSettings` (how to pretrain) and
`EncoderSettings` (what the encoder is: the settings of the model it is pretrained for).

The encoder's shape is not the language model's own setting: it is the shape of the
classifier that will fine-tune it, so any settings object with the `EncoderSettings`
fields (`lstmkit.tasks.text_classification.TextClassifierConfig` has them) describes it.
`ENCODER_FIELDS` are those a pretrained encoder fixes for the model that uses it;
`check_pretrainable` refuses an encoder a language model cannot pretrain.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from lstmkit.config import check_field_types, dataclass_from_dict
from lstmkit.data.tokenize import TokenizerConfig
from lstmkit.errors import LstmkitError

#: settings a pretrained encoder fixes (they decide the weights' shapes or the tokens);
#: the others (dropouts, pooling, head, training) stay the fine-tuned model's own
ENCODER_FIELDS = (
    "tokenizer", "embedding_dim", "rnn", "hidden_size", "num_layers", "bidirectional",
    "layer_norm", "init", "num_heads",
)  # fmt: skip


class EncoderSettings(Protocol):
    """What the encoder (`network.make_encoder`) is built from: the tokenizer, the word
    vectors' width, the LSTM/GRU's shape and variant options and the dropouts; a
    dataclass with these fields that round-trips JSON (``to_dict`` / ``from_dict``), such
    as `lstmkit.tasks.text_classification.TextClassifierConfig`."""

    tokenizer: TokenizerConfig
    embedding_dim: int
    rnn: str
    hidden_size: int
    num_layers: int
    bidirectional: bool
    layer_norm: bool
    init: str
    dropout: float
    embedding_dropout: float
    recurrent_dropout: float
    zoneout: float
    num_heads: int | None
    chunk_size: int | None

    def to_dict(self) -> dict[str, Any]: ...

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EncoderSettings: ...


_EXAMPLES = {
    "epochs": "1", "max_minutes": "90.0", "batch_size": "64", "lr": "0.002",
    "weight_decay": "0.0", "gradient_clip_val": "1.0", "output_dropout": "0.1",
    "val_texts": "2000", "shuffle_texts": "16384", "seed": "0", "precision": "'bf16-mixed'",
    "lr_decay": "'linear'", "checkpoint_every_n_steps": "500",
}  # fmt: skip


@dataclass
class PretrainSettings:
    """How to pretrain (the encoder's shape comes from the classifier's settings).

    epochs: passes over the corpus; max_minutes: wall-time budget (None: none), the
    run stops at whichever comes first. batch_size: pieces of text per batch. lr,
    weight_decay, gradient_clip_val: Adam and gradient-norm clipping. output_dropout:
    dropout on the encoder's outputs before the softmax. val_texts: texts held out
    (every 100th) for validation perplexity. shuffle_texts: texts per shuffle buffer
    (memory use is bounded by it). lr_decay: "linear" (to 0 at the last epoch, or at
    the time budget) or "none". precision: "32" or "bf16-mixed".
    """

    epochs: int = 1
    max_minutes: float | None = None
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.0
    gradient_clip_val: float | None = 1.0
    output_dropout: float = 0.1
    val_texts: int = 2000
    shuffle_texts: int = 16384
    seed: int = 0
    precision: str = "32"
    lr_decay: str = "linear"
    checkpoint_every_n_steps: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.precision, int) and not isinstance(self.precision, bool):
            self.precision = str(self.precision)
        check_field_types(self, "pretraining", _EXAMPLES)
        for name in ("epochs", "batch_size", "shuffle_texts"):
            if getattr(self, name) < 1:
                raise LstmkitError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_minutes is not None and not (
            math.isfinite(self.max_minutes) and self.max_minutes > 0
        ):
            raise LstmkitError(f"max_minutes must be a positive number, got {self.max_minutes}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise LstmkitError(f"lr must be a positive finite number, got {self.lr!r}")
        if not 0.0 <= self.output_dropout < 1.0:
            raise LstmkitError(f"output_dropout must be in [0, 1), got {self.output_dropout}")
        if self.val_texts < 0:
            raise LstmkitError(f"val_texts must be 0 or more, got {self.val_texts}")
        if self.lr_decay not in ("none", "linear"):
            raise LstmkitError(f"lr_decay must be 'none' or 'linear', got {self.lr_decay!r}")
        if self.precision not in ("32", "32-true", "bf16-mixed"):
            raise LstmkitError(f"precision must be 32 or bf16-mixed, got {self.precision!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PretrainSettings:
        """Inverse of `to_dict`; unknown keys are refused."""
        return dataclass_from_dict(cls, dict(data), "PretrainSettings")


#: tokenizer settings a fine-tuning run may set differently from the pretrained encoder:
#: they cut texts, they do not change the vocabulary
TRUNCATION_FIELDS = ("max_length", "keep")


def encoder_config(config: EncoderSettings) -> dict[str, Any]:
    """The settings of ``config`` that a pretrained encoder fixes (`ENCODER_FIELDS`)."""
    data = config.to_dict()
    return {name: data[name] for name in ENCODER_FIELDS}


def check_pretrainable(config: EncoderSettings) -> None:
    """Refuse an encoder a language model cannot pretrain (stacked bidirectional)."""
    if config.bidirectional and config.num_layers > 1:
        raise LstmkitError(
            f"a bidirectional encoder with num_layers={config.num_layers} cannot be pretrained "
            "as a language model (its upper layers would see each direction's future); "
            "use num_layers=1 or a unidirectional encoder"
        )
