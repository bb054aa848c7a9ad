"""Settings of language-model pretraining: `PretrainSettings` (how to pretrain) and
`EncoderSettings` (what the encoder is: the settings of the model it is pretrained for).

The encoder's shape is not the language model's own setting: it is the shape of the
classifier that will fine-tune it, so any settings object with the `EncoderSettings`
fields (`lstmkit.tasks.text_classification.TextClassifierConfig` has them) describes it.
`ENCODER_FIELDS` are those a pretrained encoder fixes for the model that uses it;
`check_pretrainable` refuses an encoder a language model cannot pretrain.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Protocol

from pydantic import BeforeValidator, Field
from pydantic.fields import FieldInfo

from lstmkit.data.tokenize import TokenizerConfig
from lstmkit.errors import LstmkitError
from lstmkit.settings import Settings, _precision_text
from lstmkit.training.settings import TrainConfig

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
    as `lstmkit.tasks.text_classification.TextClassifierConfig`; a `Settings` model that
    also has ``replace``."""

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

    def replace(self, **changes: Any) -> EncoderSettings: ...


def _shared(name: str, default: Any) -> Any:
    """The field ``name`` of `TrainConfig` (its rule and help) with this default."""
    return FieldInfo.merge_field_infos(TrainConfig.model_fields[name], default=default)


class PretrainSettings(Settings):
    """How to pretrain (the encoder's shape comes from the classifier's settings).

    The run stops after ``max_epochs`` passes or ``max_minutes``, whichever comes first.
    The settings it shares with every task's training (``max_epochs``, ``lr``,
    ``weight_decay``, ``gradient_clip_val``, ``seed``, ``lr_decay``,
    ``checkpoint_every_n_steps``) keep `TrainConfig`'s rules and help. Encoders saved
    with the old name ``epochs`` load under ``max_epochs``.
    """

    what: ClassVar[str] = "pretraining"
    renamed: ClassVar[dict[str, str]] = {"epochs": "max_epochs"}

    max_epochs: int = _shared("max_epochs", 1)
    max_minutes: float | None = Field(
        None, gt=0, description="Wall-time budget in minutes (None: none)."
    )
    batch_size: int = Field(64, ge=1, description="Pieces of text per batch.")
    lr: float = _shared("lr", 2e-3)
    weight_decay: float = _shared("weight_decay", 0.0)
    gradient_clip_val: float | None = _shared("gradient_clip_val", 1.0)
    output_dropout: float = Field(
        0.1, ge=0.0, lt=1.0, description="Dropout on the encoder's outputs before the softmax."
    )
    val_texts: int = Field(
        2000, ge=0, description="Texts held out (every 100th) for validation perplexity."
    )
    shuffle_texts: int = Field(
        16384, ge=1, description="Texts per shuffle buffer (memory use is bounded by it)."
    )
    seed: int = _shared("seed", 0)
    precision: Annotated[
        Literal["32", "32-true", "bf16-mixed"], BeforeValidator(_precision_text)
    ] = Field("32", description="Training precision: 32 or bf16-mixed (bfloat16 autocast).")
    lr_decay: Literal["none", "linear"] = _shared("lr_decay", "linear")
    checkpoint_every_n_steps: int | None = _shared("checkpoint_every_n_steps", None)


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
