"""Settings of a text classifier: `TextClassifierConfig`, the presets and `make_config`.

`TextClassifierConfig` declares everything that defines a model and how it is trained
once (a `lstmkit.settings.Settings` model: type, range, default and help text of each
field); it round-trips JSON (``to_dict`` / ``from_dict``, unknown keys refused) and
checks every setting on construction, so ``hidden_size="8"`` or ``lr="fast"`` is one
clear line, not a TypeError deep in torch. Torch-free to import. ``PRESETS`` reproduce
the seed programs (``"seed000"``, ``"seed003"``) and the IMDB benchmark's configuration
(``"imdb"``).
"""

from __future__ import annotations

import json
import math
import typing
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_serializer, field_validator, model_validator

from lstmkit.data.tokenize import TokenizerConfig
from lstmkit.errors import LstmkitError
from lstmkit.settings import RNN, ChunkSize, NumHeads, Settings
from lstmkit.training.settings import TrainConfig

RNNS = typing.get_args(RNN)

#: a probability of dropping (or keeping) a unit: in [0, 1)
Probability = Annotated[float, Field(ge=0.0, lt=1.0)]


def default_train() -> TrainConfig:
    """The text classifier's training defaults (the shared rules, its own values): 5
    epochs, no gradient clipping and no early stopping (as the seed programs train),
    batches not forced deterministic."""
    return TrainConfig(
        max_epochs=5, gradient_clip_val=None, early_stopping_patience=None, deterministic=False
    )


class TextClassifierConfig(Settings):
    """Everything that defines a text classifier and how it is trained; round-trips JSON
    (`to_dict` / `from_dict`). ``tokenizer`` holds the `TokenizerConfig` and ``train`` the
    shared training settings (`TrainConfig`); both are also taken by their flat names
    (``vocab_size=``, ``lr=``, ``max_epochs=``; ``tokenizer="bpe"`` sets the kind), and
    read and set by them (``config.lr`` is ``config.train.lr``).

    ``class_weight``: None (every text counts the same), "balanced" (class c weighs
    n / (classes * n_c) over the training part, as scikit-learn's) or a dict
    {label: weight > 0} (labels left out weigh 1; each label once, 1 and "1" being the
    same label). The losses are then weighted means, so only the weights' ratios matter:
    a weight must be a number float32 holds (`WEIGHT_RANGE`), and training scales the
    weights so the largest is 1, refusing a smallest-to-largest ratio float32 cannot
    hold. Saved in config.json as [[label, weight], ...] pairs, so integer labels
    survive JSON. ``adversarial``: each training batch is fed a second time with its
    word vectors moved, by this fraction of their L2 norm over the text, in the
    direction that raises the loss most (Goodfellow et al. 2015, Miyato et al. 2017);
    about 0.01-0.05 regularises, at about twice the time per batch.

    Folders saved before the training settings were nested (``epochs``, ``lr``, ... at
    the top) load into ``train``; ``epochs`` is now ``max_epochs``.
    """

    what: ClassVar[str] = "text classifier"
    renamed: ClassVar[dict[str, str]] = {"epochs": "max_epochs"}

    tokenizer: TokenizerConfig = Field(
        default_factory=TokenizerConfig, description="The tokenizer's settings."
    )
    embedding_dim: int = Field(128, ge=1, description="Width of the word vectors.")
    rnn: RNN = Field("lstm", description="Recurrent layer (slstm, mlstm: xLSTM layers).")
    hidden_size: int = Field(128, ge=1, description="Units per recurrent layer.")
    num_layers: int = Field(1, ge=1, description="Stacked recurrent layers.")
    bidirectional: bool = Field(False, description="Read the texts in both directions.")
    dropout: Probability = Field(0.0, description="Dropout between stacked recurrent layers.")
    embedding_dropout: Probability = Field(0.0, description="Dropout on the word vectors.")
    head_dropout: Probability = Field(
        0.0, description="Dropout on the pooled vector before the linear head."
    )
    pooling: str = Field(
        "last", description="last, mean, max, attention, or several joined by + (max+mean)."
    )
    init: Literal["torch", "keras"] = Field(
        "torch",
        description="Weight initialisation of the recurrent layer (keras also draws the "
        "embedding from U(-0.05, 0.05)).",
    )
    layer_norm: bool = Field(False, description="Layer-normalised gates (Ba et al. 2016).")
    recurrent_dropout: Probability = Field(
        0.0,
        description="Variational dropout on the recurrent state, one mask per text "
        "(Gal & Ghahramani 2016, Keras' recurrent_dropout).",
    )
    zoneout: Probability = Field(
        0.0,
        description="Probability that a unit keeps its previous state at a training step "
        "(Krueger et al. 2016).",
    )
    num_heads: NumHeads = None
    chunk_size: ChunkSize = None
    batch_size: int = Field(64, ge=1, description="Texts per batch.")
    val_fraction: Probability = Field(
        0.2, description="Share of the training texts held out for validation (stratified)."
    )
    class_weight: Literal["balanced"] | dict[str | int, float] | None = Field(
        None, description="None, balanced, or {label: weight} (see the class docstring)."
    )
    adversarial: float = Field(
        0.0, ge=0.0, le=1.0, description="Adversarial training on the word vectors (0: off)."
    )
    train: TrainConfig = Field(
        default_factory=default_train, description="The shared training settings."
    )

    @field_validator("pooling")
    @classmethod
    def _known_pools(cls, value: str) -> str:
        from lstmkit.nn import POOLS

        names = [p.strip() for p in value.split("+") if p.strip()]
        if not names or any(name not in POOLS for name in names):
            raise ValueError(f"must be one of {', '.join(POOLS)} or several joined by '+'")
        return value

    @field_validator("class_weight", mode="before")
    @classmethod
    def _class_weight(cls, value: Any) -> Any:
        if isinstance(value, list):  # as saved: [[label, weight], ...]
            if not all(isinstance(p, list | tuple) and len(p) == 2 for p in value):
                raise LstmkitError(f"must be a list of [label, weight] pairs, got {value!r}")
            value = {label: weight for label, weight in value}
        return _check_class_weight(value)

    @field_serializer("class_weight")
    def _class_weight_pairs(self, value: Any) -> Any:
        """Pairs: JSON keys would turn the label 0 into "0"."""
        return [[k, w] for k, w in value.items()] if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _rnn_takes(self) -> TextClassifierConfig:
        from lstmkit.tasks.rnn import XLSTM_RNNS, check_rnn_settings

        if self.rnn in XLSTM_RNNS and self.init == "keras":
            raise LstmkitError(
                f"init 'keras' applies to rnn lstm or gru; an {self.rnn} starts from the xLSTM "
                "initialisation: drop init or use lstm"
            )
        check_rnn_settings(
            self.rnn, self.hidden_size, self.num_heads, self.chunk_size,
            variants={"layer_norm": self.layer_norm, "recurrent_dropout": self.recurrent_dropout,
                      "zoneout": self.zoneout},
        )  # fmt: skip
        return self

    def train_config(self, **run: Any) -> TrainConfig:
        """``train`` with the settings of one run (``accelerator``, ``devices``, ``progress``,
        ``checkpoint_dir``, ``logger``, ...) changed."""
        return self.train.replace(**run)

    @property
    def pool_names(self) -> list[str]:
        """The pooling names in ``pooling`` (split on "+")."""
        return [p.strip() for p in self.pooling.split("+") if p.strip()]


#: the class weights float32 holds as normal numbers (the smallest and the largest)
WEIGHT_RANGE = (1.1754943508222875e-38, 3.4028234663852886e38)


def _check_class_weight(value: Any) -> str | dict | None:
    """``value`` if it is None, "balanced" or {label: weight in `WEIGHT_RANGE`} with each
    label once (compared as text: 1 and "1" are the same class), else one line."""
    if value is None or value == "balanced":
        return value
    if isinstance(value, dict) and value:
        out: dict = {}
        seen: dict[str, Any] = {}
        low, high = WEIGHT_RANGE
        for label, weight in value.items():
            ok_label = isinstance(label, str | int) and not isinstance(label, bool)
            ok_weight = isinstance(weight, int | float) and not isinstance(weight, bool)
            if not ok_label or not ok_weight or not (math.isfinite(weight) and weight > 0):
                raise LstmkitError(
                    f"class_weight {{{label!r}: {weight!r}}}: expected a label (class name or "
                    f"integer) and a weight > 0, e.g. class_weight={{'pos': 5.0}}"
                )
            if not low <= weight <= high:
                raise LstmkitError(
                    f"class_weight {{{label!r}: {weight!r}}}: a weight must be between "
                    f"{low:.2g} and {high:.2g} (float32); only the ratios between the weights "
                    "matter, e.g. class_weight={'pos': 5.0}"
                )
            if str(label) in seen:
                raise LstmkitError(
                    f"class_weight gives the label {label!r} twice (as {seen[str(label)]!r} "
                    f"and {label!r}); give each label one weight"
                )
            seen[str(label)] = label
            out[label] = float(weight)
        return out
    raise LstmkitError(
        f"class_weight must be None, 'balanced' or a dict {{label: weight}}, got {value!r}"
    )


#: Presets: seed000 = seed 000's PyTorch program, seed003 = seed 003's Keras program,
#: imdb = benchmarks/imdb.py's configuration (chosen on a validation split of IMDB train).
PRESETS: dict[str, dict[str, Any]] = {
    "seed000": {
        # full vocabulary, no truncation, Embedding(100) -> LSTM(32) x 2 with dropout 0.5
        # between the layers and on the output, last step, Adam (lr 1e-3), batch 64, 5 epochs.
        "tokenizer": {"kind": "word", "vocab_size": 1_000_000, "max_length": 0},
        "embedding_dim": 100,
        "hidden_size": 32,
        "num_layers": 2,
        "dropout": 0.5,
        "head_dropout": 0.5,
        "pooling": "last",
        "batch_size": 64,
        "max_epochs": 5,
        "lr": 1e-3,
        "val_fraction": 0.0,  # the seed trains on every training review
    },
    "seed003": {
        # top 10,000 words, sequences cut to 200 keeping the end (Keras pad_sequences'
        # default truncating="pre"), Embedding(128) -> LSTM(128) -> Dense(1, sigmoid),
        # Keras initialisation, Adam (lr 1e-3), batch 64, 5 epochs, 20% validation split.
        "tokenizer": {"kind": "word", "vocab_size": 10_000, "max_length": 200, "keep": "tail"},
        "embedding_dim": 128,
        "hidden_size": 128,
        "num_layers": 1,
        "pooling": "last",
        "init": "keras",
        "batch_size": 64,
        "max_epochs": 5,
        "lr": 1e-3,
        "val_fraction": 0.2,
    },
    "imdb": {
        # benchmarks/imdb.py: chosen on a 10% validation split of IMDB train (see RESULTS.md)
        "tokenizer": {"kind": "word", "vocab_size": 40_000, "max_length": 400, "keep": "head_tail"},
        "embedding_dim": 128,
        "hidden_size": 128,
        "num_layers": 1,
        "bidirectional": True,
        "embedding_dropout": 0.2,
        "head_dropout": 0.3,
        "pooling": "max+mean",
        "batch_size": 32,
        "max_epochs": 3,
        "lr": 4e-3,
        "lr_decay": "linear",
        "gradient_clip_val": 1.0,
        "val_fraction": 0.1,
    },
}


def make_config(preset: str | None = None, **overrides: Any) -> TextClassifierConfig:
    """A config from a preset (or the defaults) with ``overrides`` applied (flat names:
    ``vocab_size=5000``, ``max_length=100``, ``lr=``, ``max_epochs=``; ``tokenizer="bpe"``
    sets the kind and keeps the preset's other tokenizer settings; ``tokenizer=`` a
    `TokenizerConfig` or dict replaces them)."""
    base = TextClassifierConfig()
    if preset is not None:
        if preset not in PRESETS:
            raise LstmkitError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
        base = TextClassifierConfig(**json.loads(json.dumps(PRESETS[preset])))
    return base.replace(**overrides)
