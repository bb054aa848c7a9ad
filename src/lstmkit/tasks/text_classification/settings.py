"""Settings of a text classifier: `TextClassifierConfig`, the presets and `make_config`.

`TextClassifierConfig` holds everything that defines a model and how it is trained; it
round-trips JSON (``to_dict`` / ``from_dict``, unknown keys refused through
`lstmkit.config.dataclass_from_dict`) and checks every setting's type and range on
construction, so ``hidden_size="8"`` or ``lr="fast"`` is one clear line, not a
TypeError deep in torch. ``PRESETS`` reproduce the seed programs (``"seed000"``,
``"seed003"``) and the IMDB benchmark's configuration (``"imdb"``).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from lstmkit.config import check_field_types, dataclass_from_dict
from lstmkit.data.tokenize import TokenizerConfig
from lstmkit.errors import LstmkitError
from lstmkit.nn import POOLS

if TYPE_CHECKING:
    from lstmkit.training import TrainConfig

RNNS = ("lstm", "gru")


#: An example value of each setting, shown when a value has the wrong type.
_EXAMPLES = {
    "embedding_dim": "128", "rnn": "'lstm'", "hidden_size": "128", "num_layers": "1",
    "bidirectional": "True", "dropout": "0.2", "embedding_dropout": "0.2",
    "head_dropout": "0.3", "pooling": "'max+mean'", "init": "'torch'", "layer_norm": "True",
    "recurrent_dropout": "0.25", "zoneout": "0.1", "batch_size": "64", "epochs": "5",
    "lr": "0.001", "weight_decay": "0.0", "optimizer": "'adam'", "gradient_clip_val": "1.0",
    "early_stopping_patience": "3", "lr_decay": "'linear'", "val_fraction": "0.2",
    "seed": "0", "precision": "'bf16-mixed'", "class_weight": "'balanced'",
    "adversarial": "0.02",
}  # fmt: skip


@dataclass
class TextClassifierConfig:
    """Everything that defines a text classifier and how it is trained (JSON round trip).

    tokenizer: see `TokenizerConfig` (kind, vocab_size, lowercase, max_length, keep).
    embedding_dim: width of the word vectors.
    rnn: "lstm" or "gru"; hidden_size, num_layers, bidirectional as in ``lstmkit.nn``.
    dropout: dropout between stacked recurrent layers.
    embedding_dropout: dropout on the word vectors.
    head_dropout: dropout on the pooled vector before the linear head.
    pooling: "last", "mean", "max", "attention", or several joined by "+" ("max+mean").
    init: weight initialisation of the recurrent layer, "torch" or "keras"
        ("keras" also draws the embedding from U(-0.05, 0.05) as Keras does).
    layer_norm: layer-normalised LSTM/GRU (Ba et al. 2016), see ``lstmkit.nn.LSTM``.
    recurrent_dropout: variational dropout on the recurrent state, one mask per
        sequence (Gal & Ghahramani 2016, Keras' recurrent_dropout); in [0, 1).
    zoneout: probability that a unit keeps its previous state at a step in training
        (Krueger et al. 2016; for an LSTM both h and c); in [0, 1).
    batch_size, epochs, lr, weight_decay, optimizer, gradient_clip_val,
    early_stopping_patience: training (see `lstmkit.training.TrainConfig`).
    lr_decay: "none" or "linear" (learning rate falls linearly to 0 over training).
    val_fraction: share of the training texts held out for validation (stratified).
    seed: seeds the split, the initial weights and the batch order.
    precision: Lightning's training precision, "32" or "bf16-mixed" (bfloat16 autocast,
        float32 weights; see `lstmkit.training.TrainConfig`). Prediction runs in float32.
    class_weight: None (every text counts the same), "balanced" (class c weighs
        n / (classes * n_c) over the training part, as scikit-learn's) or a dict
        {label: weight > 0} (labels left out weigh 1; each label once, 1 and "1" being
        the same label). The training and validation losses are then weighted means, so
        only the weights' ratios matter: a weight must be a number float32 holds
        (`WEIGHT_RANGE`: 1.2e-38 to 3.4e38), and training scales the weights so the
        largest is 1 (sums of weights cannot overflow), refusing a smallest-to-largest
        ratio float32 cannot hold. evaluate() reports the plain loss. Saved in
        config.json as [[label, weight], ...] pairs, so integer labels survive JSON.
    adversarial: adversarial training on the word vectors (Goodfellow et al. 2015,
        Miyato et al. 2017): each training batch is fed a second time with its word
        vectors moved, by this fraction of their L2 norm over the text, in the direction
        that raises the loss most (the gradient, one step), and the two losses are
        summed. 0 (default) is off; about 0.01-0.05 regularises; training then costs
        about twice the time per batch. The logged train_loss stays the clean loss.
    """

    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    embedding_dim: int = 128
    rnn: str = "lstm"
    hidden_size: int = 128
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.0
    embedding_dropout: float = 0.0
    head_dropout: float = 0.0
    pooling: str = "last"
    init: str = "torch"
    layer_norm: bool = False
    recurrent_dropout: float = 0.0
    zoneout: float = 0.0
    batch_size: int = 64
    epochs: int = 5
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"
    gradient_clip_val: float | None = None
    early_stopping_patience: int | None = None
    lr_decay: str = "none"
    val_fraction: float = 0.2
    seed: int = 0
    precision: str = "32"
    class_weight: str | dict | None = None
    adversarial: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.precision, int) and not isinstance(self.precision, bool):
            self.precision = str(self.precision)  # precision=32 as Lightning takes it
        if isinstance(self.tokenizer, dict):
            self.tokenizer = TokenizerConfig.from_dict(self.tokenizer)
        if not isinstance(self.tokenizer, TokenizerConfig):
            raise LstmkitError(
                f"tokenizer must be a TokenizerConfig, a dict of its settings or 'word'/'bpe', "
                f"got {self.tokenizer!r} ({type(self.tokenizer).__name__})"
            )
        check_field_types(self, "text classifier", _EXAMPLES)
        if self.rnn not in RNNS:
            raise LstmkitError(f"rnn must be one of {RNNS}, got {self.rnn!r}")
        for name in self.pool_names:
            if name not in POOLS:
                raise LstmkitError(
                    f"unknown pooling {name!r}; use one of {POOLS} or several joined by '+'"
                )
        for name in ("embedding_dim", "hidden_size", "num_layers", "batch_size", "epochs"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise LstmkitError(f"{name} must be a positive integer, got {value!r}")
        for name in (
            "dropout",
            "embedding_dropout",
            "head_dropout",
            "recurrent_dropout",
            "zoneout",
        ):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise LstmkitError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if not (math.isfinite(self.adversarial) and 0.0 <= self.adversarial <= 1.0):
            raise LstmkitError(f"adversarial must be in [0, 1], got {self.adversarial!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise LstmkitError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.lr_decay not in ("none", "linear"):
            raise LstmkitError(f"lr_decay must be 'none' or 'linear', got {self.lr_decay!r}")
        if self.init not in ("torch", "keras"):
            raise LstmkitError(f"init must be 'torch' or 'keras', got {self.init!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise LstmkitError(f"lr must be a positive finite number, got {self.lr!r}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise LstmkitError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        clip = self.gradient_clip_val
        if clip is not None and not (math.isfinite(clip) and clip > 0):
            raise LstmkitError(f"gradient_clip_val must be > 0 or None, got {clip!r}")
        patience = self.early_stopping_patience
        if patience is not None and patience < 1:
            raise LstmkitError(f"early_stopping_patience must be >= 1 or None, got {patience!r}")
        if self.seed < 0:
            raise LstmkitError(f"seed must be >= 0, got {self.seed}")
        from lstmkit.settings import PRECISIONS

        if self.precision not in PRECISIONS:
            raise LstmkitError(
                f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        self.class_weight = _check_class_weight(self.class_weight)

    def train_config(self, **run: Any) -> TrainConfig:
        """The `lstmkit.training.TrainConfig` of these settings: the one place where the
        text task's training settings meet the shared trainer.

        ``epochs`` becomes ``max_epochs``; ``gradient_clip_val`` keeps this task's default
        (None: no clipping, as the seed programs train) rather than the trainer's 1.0;
        batches are not forced deterministic. ``run`` adds settings that are not part of
        the model (``accelerator``, ``devices``, ``progress_bar``, ``checkpoint_dir``,
        ``logger``, ``log_dir``, ...).
        """
        from lstmkit.training import TrainConfig

        return TrainConfig(
            max_epochs=self.epochs,
            lr=self.lr,
            weight_decay=self.weight_decay,
            optimizer=self.optimizer,
            gradient_clip_val=self.gradient_clip_val,
            early_stopping_patience=self.early_stopping_patience,
            lr_decay=self.lr_decay,
            seed=self.seed,
            precision=self.precision,
            deterministic=False,
            **run,
        )

    @property
    def pool_names(self) -> list[str]:
        """The pooling names in ``pooling`` (split on "+")."""
        return [p.strip() for p in self.pooling.split("+") if p.strip()]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (the tokenizer settings nested)."""
        data = asdict(self)
        data["tokenizer"] = self.tokenizer.to_dict()
        if isinstance(self.class_weight, dict):  # pairs: JSON keys would turn 0 into "0"
            data["class_weight"] = [[k, w] for k, w in self.class_weight.items()]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TextClassifierConfig:
        """Inverse of `to_dict`; unknown keys are refused."""
        data = dict(data)
        if "tokenizer" in data and isinstance(data["tokenizer"], dict):
            data["tokenizer"] = TokenizerConfig.from_dict(data["tokenizer"])
        pairs = data.get("class_weight")
        if isinstance(pairs, list):
            if not all(isinstance(p, list | tuple) and len(p) == 2 for p in pairs):
                raise LstmkitError(
                    f"class_weight must be a list of [label, weight] pairs, got {pairs!r}"
                )
            data["class_weight"] = {label: weight for label, weight in pairs}
        return dataclass_from_dict(cls, data, "TextClassifierConfig")


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
        "epochs": 5,
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
        "epochs": 5,
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
        "epochs": 3,
        "lr": 4e-3,
        "lr_decay": "linear",
        "gradient_clip_val": 1.0,
        "val_fraction": 0.1,
    },
}

_TOKENIZER_KEYS = {f.name for f in fields(TokenizerConfig)}


def make_config(preset: str | None = None, **overrides: Any) -> TextClassifierConfig:
    """A config from a preset (or the defaults) with ``overrides`` applied.

    ``max_epochs`` (the `lstmkit.training.TrainConfig` name) is accepted for ``epochs``.
    Tokenizer settings may be given flat (``vocab_size=5000``, ``max_length=100``,
    ``keep="tail"``, ``tokenizer="bpe"`` for the kind) or as ``tokenizer=TokenizerConfig``.
    """
    base: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise LstmkitError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
        base = json.loads(json.dumps(PRESETS[preset]))
    tok = dict(base.pop("tokenizer", {}))
    if "max_epochs" in overrides:  # the shared trainer's name for epochs
        if "epochs" in overrides and overrides["epochs"] != overrides["max_epochs"]:
            raise LstmkitError(
                f"epochs={overrides['epochs']!r} and max_epochs={overrides['max_epochs']!r} "
                "name the same setting; pass one of them"
            )
        overrides = dict(overrides)
        overrides["epochs"] = overrides.pop("max_epochs")
    for key, value in overrides.items():
        if key == "tokenizer" and isinstance(value, str):
            tok["kind"] = value
        elif key == "tokenizer" and isinstance(value, TokenizerConfig):
            tok = value.to_dict()
        elif key == "tokenizer" and isinstance(value, dict):
            tok = dict(value)
        elif key == "tokenizer":
            raise LstmkitError(
                f"tokenizer must be 'word', 'bpe', a TokenizerConfig or a dict of its settings, "
                f"got {value!r} ({type(value).__name__})"
            )
        elif key in _TOKENIZER_KEYS:
            tok[key] = value
        else:
            base[key] = value
    names = {f.name for f in fields(TextClassifierConfig)}
    unknown = set(base) - names
    if unknown:
        raise LstmkitError(
            f"unknown TextClassifier settings {sorted(unknown)}; known: "
            f"{sorted(names | _TOKENIZER_KEYS - {'tokenizer'})}"
        )
    return TextClassifierConfig(tokenizer=TokenizerConfig(**tok), **base)
