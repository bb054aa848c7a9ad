"""Text classification with an LSTM/GRU: the model, its LightningModule and `TextClassifier`.

Model: token ids -> Embedding -> (embedding dropout) -> ``lstmkit.nn`` LSTM or
GRU (layers, hidden size, bidirectional, dropout between layers) -> pooling
over the real steps (last / mean / max / attention, or several joined with
"+", e.g. "max+mean") -> dropout -> linear head. Two classes use one logit and
binary cross-entropy (as seeds 000 and 003), more classes a softmax.

`TextClassifier` is the estimator: ``fit(texts, labels)`` (tokenizer trained on
the training texts, a validation split taken from them, training through
`lstmkit.training.fit`), ``predict`` / ``predict_proba``, ``evaluate``
(accuracy, macro F1, confusion matrix), ``explain`` (gate activations and
attention weights for one text), ``save`` / ``load``. Presets named after the
seed programs reproduce them: ``"seed000"`` and ``"seed003"``; ``"imdb"`` is
the configuration of ``benchmarks/imdb.py``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmkit.config import dataclass_from_dict
from lstmkit.data.text import Label, LabelledTexts, validate_labelled, validate_texts
from lstmkit.data.text_batches import make_loader
from lstmkit.data.tokenize import (
    PAD,
    PAD_ID,
    UNK,
    UNK_ID,
    TextTokenizer,
    TokenizerConfig,
    check_setting_type,
)
from lstmkit.errors import LstmkitError
from lstmkit.nn import GRU, LSTM, POOLS, AttentionPool, make_pool

KIND = "text_classifier"
RNNS = ("lstm", "gru")


#: Type and an example value of each scalar setting of `TextClassifierConfig`
#: ("float" accepts integers too; a trailing "?" allows None).
_SETTING_TYPES = {
    "embedding_dim": ("int", "128"), "rnn": ("str", "'lstm'"), "hidden_size": ("int", "128"),
    "num_layers": ("int", "1"), "bidirectional": ("bool", "True"), "dropout": ("float", "0.2"),
    "embedding_dropout": ("float", "0.2"), "head_dropout": ("float", "0.3"),
    "pooling": ("str", "'max+mean'"), "init": ("str", "'torch'"), "batch_size": ("int", "64"),
    "epochs": ("int", "5"), "lr": ("float", "0.001"), "weight_decay": ("float", "0.0"),
    "optimizer": ("str", "'adam'"), "gradient_clip_val": ("float?", "1.0"),
    "early_stopping_patience": ("int?", "3"), "lr_decay": ("str", "'linear'"),
    "val_fraction": ("float", "0.2"), "seed": ("int", "0"),
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
    batch_size, epochs, lr, weight_decay, optimizer, gradient_clip_val,
    early_stopping_patience: training (see `lstmkit.training.TrainConfig`).
    lr_decay: "none" or "linear" (learning rate falls linearly to 0 over training).
    val_fraction: share of the training texts held out for validation (stratified).
    seed: seeds the split, the initial weights and the batch order.
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

    def __post_init__(self) -> None:
        if isinstance(self.tokenizer, dict):
            self.tokenizer = TokenizerConfig.from_dict(self.tokenizer)
        if not isinstance(self.tokenizer, TokenizerConfig):
            raise LstmkitError(
                f"tokenizer must be a TokenizerConfig, a dict of its settings or 'word'/'bpe', "
                f"got {self.tokenizer!r} ({type(self.tokenizer).__name__})"
            )
        for name, (kind, example) in _SETTING_TYPES.items():
            check_setting_type(name, getattr(self, name), kind, example)
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
        for name in ("dropout", "embedding_dropout", "head_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise LstmkitError(f"{name} must be in [0, 1), got {getattr(self, name)}")
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

    @property
    def pool_names(self) -> list[str]:
        """The pooling names in ``pooling`` (split on "+")."""
        return [p.strip() for p in self.pooling.split("+") if p.strip()]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (the tokenizer settings nested)."""
        data = asdict(self)
        data["tokenizer"] = self.tokenizer.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TextClassifierConfig:
        """Inverse of `to_dict`; unknown keys are refused."""
        data = dict(data)
        if "tokenizer" in data and isinstance(data["tokenizer"], dict):
            data["tokenizer"] = TokenizerConfig.from_dict(data["tokenizer"])
        return dataclass_from_dict(cls, data, "TextClassifierConfig")


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

    Tokenizer settings may be given flat (``vocab_size=5000``, ``max_length=100``,
    ``keep="tail"``, ``tokenizer="bpe"`` for the kind) or as ``tokenizer=TokenizerConfig``.
    """
    base: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise LstmkitError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
        base = json.loads(json.dumps(PRESETS[preset]))
    tok = dict(base.pop("tokenizer", {}))
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


# ---------------------------------------------------------------------- the network
class TextClassifierNet(nn.Module):
    """Embedding -> LSTM/GRU -> pooling -> dropout -> linear.

    forward(ids (batch, time) int64, lengths (batch,) int64) -> logits (batch, outputs),
    outputs = 1 for two classes, else the number of classes.
    """

    def __init__(self, vocab_size: int, num_classes: int, config: TextClassifierConfig) -> None:
        super().__init__()
        self.config = config
        self.num_classes = num_classes
        self.embedding = nn.Embedding(vocab_size, config.embedding_dim, padding_idx=PAD_ID)
        if config.init == "keras":
            with torch.no_grad():
                self.embedding.weight.uniform_(-0.05, 0.05)
                self.embedding.weight[PAD_ID].zero_()
        self.embedding_dropout = nn.Dropout(config.embedding_dropout)
        # lengths= keeps padding out of every step, both directions (see lstmkit.nn.layers)
        self.rnn = (LSTM if config.rnn == "lstm" else GRU)(
            config.embedding_dim,
            config.hidden_size,
            config.num_layers,
            batch_first=True,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            bidirectional=config.bidirectional,
            init=config.init,
        )
        features = config.hidden_size * (2 if config.bidirectional else 1)
        self.pools = nn.ModuleList(
            make_pool(name, features, config.bidirectional) for name in config.pool_names
        )
        self.head_dropout = nn.Dropout(config.head_dropout)
        self.head = nn.Linear(features * len(self.pools), 1 if num_classes == 2 else num_classes)

    def forward(
        self, ids: Tensor, lengths: Tensor, *, return_details: bool = False
    ) -> Tensor | tuple[Tensor, dict[str, Any]]:
        """Logits (batch, outputs); with ``return_details`` also gates and attention weights."""
        x = self.embedding_dropout(self.embedding(ids))
        lengths = lengths.cpu()
        details: dict[str, Any] = {}
        if return_details:  # the reference backend records every gate activation
            out, _, details["gates"] = self.rnn(x, lengths=lengths, return_gates=True)
        else:
            out, _ = self.rnn(x, lengths=lengths)
        pooled = []
        for pool in self.pools:
            if isinstance(pool, AttentionPool):
                vec, details["attention"] = pool(out, lengths, return_weights=True)
            else:
                vec = pool(out, lengths)
            pooled.append(vec)
        logits = self.head(self.head_dropout(torch.cat(pooled, dim=-1)))
        return (logits, details) if return_details else logits

    def probabilities(self, logits: Tensor) -> Tensor:
        """Class probabilities (batch, classes) from logits."""
        if self.num_classes == 2:
            p = torch.sigmoid(logits.squeeze(-1))
            return torch.stack([1 - p, p], dim=-1)
        return torch.softmax(logits, dim=-1)

    def loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Binary cross-entropy on one logit (two classes) or cross-entropy."""
        if self.num_classes == 2:
            return F.binary_cross_entropy_with_logits(logits.squeeze(-1), labels.float())
        return F.cross_entropy(logits, labels)


class TextClassifierModule(L.LightningModule):
    """Lightning wrapper: logs train_loss/train_acc and val_loss/val_acc per epoch."""

    def __init__(
        self,
        net: TextClassifierNet,
        config: TextClassifierConfig,
        on_epoch: Callable[[dict[str, float]], None] | None = None,
    ):
        super().__init__()
        self.net = net
        self.config = config
        self.on_epoch = on_epoch
        self._epoch_start = time.perf_counter()

    def on_train_epoch_start(self) -> None:
        self._epoch_start = time.perf_counter()

    def on_train_epoch_end(self) -> None:
        if self.on_epoch is not None and not self.trainer.sanity_checking:
            row = {k: float(v) for k, v in self.trainer.callback_metrics.items()}
            row["epoch"] = self.current_epoch
            row["seconds"] = time.perf_counter() - self._epoch_start
            self.on_epoch(row)

    def _step(self, batch: dict[str, Tensor], stage: str) -> Tensor:
        logits = self.net(batch["ids"], batch["lengths"])
        loss = self.net.loss(logits, batch["labels"])
        pred = self.net.probabilities(logits).argmax(-1)
        acc = (pred == batch["labels"]).float().mean()
        n = batch["ids"].shape[0]
        # under DDP every rank must see the same epoch metrics (early stopping, best epoch)
        opts = dict(on_step=False, on_epoch=True, prog_bar=True, batch_size=n)
        opts["sync_dist"] = self.trainer.world_size > 1
        self.log(f"{stage}_loss", loss, **opts)
        self.log(f"{stage}_acc", acc, **opts)
        return loss

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "val")

    def configure_optimizers(self):
        from lstmkit.training import TrainConfig, build_optimizer

        cfg = self.config
        opt = build_optimizer(
            self.parameters(),
            TrainConfig(lr=cfg.lr, weight_decay=cfg.weight_decay, optimizer=cfg.optimizer),
        )
        if cfg.lr_decay == "none":
            return opt
        # optimiser steps of this process (under DDP each rank takes its share of batches)
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: max(0.0, 1 - step / total))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


# ---------------------------------------------------------------------- metrics
def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> np.ndarray:
    """Counts (classes, classes): row = true class, column = predicted class."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return cm


def macro_f1(cm: np.ndarray) -> float:
    """Unweighted mean F1 over the classes that occur (as true or predicted labels).

    F1 of a class is 2 tp / (2 tp + fp + fn) (0 when it is never predicted correctly).
    """
    tp = np.diag(cm).astype(float)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    present = (cm.sum(axis=0) + cm.sum(axis=1)) > 0
    f1 = np.divide(2 * tp, 2 * tp + fp + fn, out=np.zeros_like(tp), where=present)
    return float(f1[present].mean()) if present.any() else math.nan


@dataclass
class Evaluation:
    """Scores of a classifier on labelled texts.

    confusion: (classes, classes) counts, row = true class, column = predicted.
    """

    accuracy: float
    macro_f1: float
    loss: float
    confusion: np.ndarray
    classes: list[Label]
    n: int
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict."""
        return {
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "loss": self.loss,
            "confusion": self.confusion.tolist(),
            "classes": list(self.classes),
            "n": self.n,
            "seconds": self.seconds,
        }


@dataclass
class GateTrace:
    """What the recurrent layer did on one text (see `TextClassifier.explain`).

    tokens: the T tokens the model read. gates: name -> (T, hidden) activations
    (LSTM: input, forget, output, candidate, cell; GRU: reset, update, candidate,
    hidden) of one layer and direction. attention: (T,) weights or None.
    probabilities: (classes,), predicted: the predicted label.
    """

    tokens: list[str]
    gates: dict[str, np.ndarray]
    attention: np.ndarray | None
    probabilities: np.ndarray
    predicted: Label
    classes: list[Label]
    layer: int
    direction: int
    rnn: str


# ---------------------------------------------------------------------- the estimator
def _as_list(values: Any, name: str) -> list:
    """``values`` as a list; one bare string (a common slip for ``[text]``) is refused."""
    if isinstance(values, str | bytes):
        raise LstmkitError(
            f"{name} must be a sequence (one item per text), got a single {type(values).__name__}"
            f"; wrap it in a list: [{values[:20]!r}]"
        )
    try:
        return list(values)
    except TypeError:
        raise LstmkitError(
            f"{name} must be a sequence (one item per text), got {type(values).__name__}"
        ) from None


class TextClassifier:
    """Train, apply, evaluate and save an LSTM/GRU text classifier.

    Example::

        clf = TextClassifier("seed003", epochs=2)
        clf.fit(texts, labels)                 # labels: strings or integers
        clf.predict(["a great film"])          # -> ["pos"]
        clf.predict_proba(["a great film"])    # -> (1, 2) array, columns = clf.classes
        clf.evaluate(test_texts, test_labels)  # accuracy, macro F1, confusion matrix
        clf.save("model/"); TextClassifier.load("model/")

    Args:
        preset: None, "seed000", "seed003" or "imdb" (see `PRESETS`).
        config: a full `TextClassifierConfig` (instead of preset + overrides).
        **overrides: any `TextClassifierConfig` field, or a tokenizer field given flat.
    """

    def __init__(
        self, preset: str | None = None, *, config: TextClassifierConfig | None = None, **overrides
    ) -> None:
        if config is not None and (preset is not None or overrides):
            raise LstmkitError("pass either config=... or a preset and overrides, not both")
        self.config = config if config is not None else make_config(preset, **overrides)
        self.tokenizer: TextTokenizer | None = None
        self.net: TextClassifierNet | None = None
        self.classes: list[Label] = []
        self.history: list[dict[str, float]] = []
        self.train_info: dict[str, Any] = {}
        #: the validation texts and labels of the last `fit` (not saved)
        self.validation: LabelledTexts | None = None

    # ------------------------------------------------------------------ helpers
    def _require_fitted(self) -> tuple[TextTokenizer, TextClassifierNet]:
        if self.net is None or self.tokenizer is None:
            raise LstmkitError("the classifier is not trained yet; call fit() or load() first")
        return self.tokenizer, self.net

    def _encode_labels(self, labels: Sequence[Label], source: str) -> list[int]:
        index = {c: i for i, c in enumerate(self.classes)}
        unknown = sorted({str(label) for label in labels if label not in index})
        if unknown:
            raise LstmkitError(
                f"{source}: labels {unknown[:5]} were not seen in training; the model knows "
                f"{self.classes}"
            )
        return [index[label] for label in labels]

    def _split(self, y: list[int]) -> tuple[list[int], list[int]]:
        """Stratified train/validation indices."""
        rng = np.random.default_rng(self.config.seed)
        train_idx, val_idx = [], []
        y_arr = np.asarray(y)
        for c in range(len(self.classes)):
            idx = np.flatnonzero(y_arr == c)
            rng.shuffle(idx)
            n_val = round(len(idx) * self.config.val_fraction)
            if self.config.val_fraction > 0 and len(idx) > 1:
                n_val = max(n_val, 1)
            val_idx.extend(idx[:n_val].tolist())
            train_idx.extend(idx[n_val:].tolist())
        return sorted(train_idx), sorted(val_idx)

    # ------------------------------------------------------------------ training
    def fit(
        self,
        texts: Sequence[str],
        labels: Sequence[Label],
        *,
        val_texts: Sequence[str] | None = None,
        val_labels: Sequence[Label] | None = None,
        progress: bool = True,
        accelerator: str = "cpu",
        devices: int | str = 1,
        on_epoch: Callable[[dict[str, float]], None] | None = None,
    ) -> TextClassifier:
        """Train on ``texts`` (n strings) with ``labels`` (n class names or integers).

        Without ``val_texts``, a stratified ``config.val_fraction`` of the data is held out
        for validation (early stopping and best-epoch selection use its loss).
        The tokenizer is learnt from the training part only. ``on_epoch`` is called after
        each epoch with that epoch's metrics (epoch, train_loss, val_acc, ..., seconds).
        """
        from lstmkit.training import TrainConfig
        from lstmkit.training import fit as train

        data = validate_labelled(
            _as_list(texts, "texts"), _as_list(labels, "labels"), "training data"
        )
        cfg = self.config
        self.classes = data.classes()
        y = self._encode_labels(data.labels, "training data")
        if val_texts is not None:
            if val_labels is None:
                raise LstmkitError("val_texts given without val_labels; pass both or neither")
            val = validate_labelled(
                _as_list(val_texts, "val_texts"),
                _as_list(val_labels, "val_labels"),
                "validation data",
                min_classes=1,
            )
            tr_texts, tr_y = data.texts, y
            va_texts, va_y = val.texts, self._encode_labels(val.labels, "validation data")
        elif val_labels is not None:
            raise LstmkitError("val_labels given without val_texts; pass both or neither")
        else:
            tr_idx, va_idx = self._split(y)
            tr_texts, tr_y = [data.texts[i] for i in tr_idx], [y[i] for i in tr_idx]
            va_texts, va_y = [data.texts[i] for i in va_idx], [y[i] for i in va_idx]
        if len(set(tr_y)) < 2:
            raise LstmkitError("the training part holds a single class; give more rows per class")

        torch.manual_seed(cfg.seed)
        start = time.perf_counter()
        self.tokenizer = TextTokenizer.train(tr_texts, cfg.tokenizer)
        tok_seconds = time.perf_counter() - start
        tr_ids = self.tokenizer.encode(tr_texts)
        va_ids = self.tokenizer.encode(va_texts) if va_texts else []
        train_loader = make_loader(tr_ids, tr_y, cfg.batch_size, shuffle=True, seed=cfg.seed)
        val_loader = (
            make_loader(va_ids, va_y, cfg.batch_size * 2, shuffle=False) if va_ids else None
        )
        self.net = TextClassifierNet(self.tokenizer.vocab_size, len(self.classes), cfg)
        module = TextClassifierModule(self.net, cfg, on_epoch)
        train_cfg = TrainConfig(
            max_epochs=cfg.epochs,
            lr=cfg.lr,
            weight_decay=cfg.weight_decay,
            optimizer=cfg.optimizer,
            gradient_clip_val=cfg.gradient_clip_val,
            early_stopping_patience=cfg.early_stopping_patience,
            seed=cfg.seed,
            accelerator=accelerator,
            devices=devices,
            progress_bar=progress,
            deterministic=False,
        )
        result = train(module, train_loader, val_loader, train_cfg)
        self.net.cpu().eval()
        self.history = result.history
        self.validation = LabelledTexts(va_texts, [self.classes[i] for i in va_y], "validation")
        n_tokens = int(sum(len(s) for s in tr_ids))
        self.train_info = {
            "train_texts": len(tr_texts),
            "val_texts": len(va_texts),
            "vocab_size": self.tokenizer.vocab_size,
            "train_tokens_per_epoch": n_tokens,
            "tokenizer_seconds": tok_seconds,
            "fit_seconds": result.fit_seconds,
            "epochs_run": result.epochs_run,
            "best_epoch": result.best_epoch,
            "best_val_loss": result.best_val_loss,
            "tokens_per_second": n_tokens * result.epochs_run / max(result.fit_seconds, 1e-9),
        }
        return self

    # ------------------------------------------------------------------ inference
    @torch.inference_mode()
    def _logits(self, texts: Sequence[str], batch_size: int | None = None) -> Tensor:
        tokenizer, net = self._require_fitted()
        net.eval()
        ids = tokenizer.encode(list(texts))
        loader = make_loader(ids, None, batch_size or self.config.batch_size * 2, shuffle=False)
        order = np.argsort(-np.array([len(s) for s in ids]), kind="stable")
        outputs = [net(b["ids"], b["lengths"]) for b in loader]
        logits = torch.cat(outputs) if outputs else torch.empty(0, net.head.out_features)
        result = torch.empty_like(logits)
        result[torch.as_tensor(order)] = logits
        return result

    def predict_proba(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Class probabilities (n, classes), columns in the order of ``self.classes``."""
        data = validate_texts(_as_list(texts, "texts"), "texts")
        _, net = self._require_fitted()
        with torch.inference_mode():
            return net.probabilities(self._logits(data.texts, batch_size)).numpy()

    def predict(self, texts: Sequence[str], batch_size: int | None = None) -> list[Label]:
        """Predicted labels (n), in the label type given to fit (strings or integers)."""
        proba = self.predict_proba(texts, batch_size)
        return [self.classes[i] for i in proba.argmax(axis=1)]

    def evaluate(
        self, texts: Sequence[str], labels: Sequence[Label], batch_size: int | None = None
    ) -> Evaluation:
        """Accuracy, macro F1, mean loss and confusion matrix on labelled texts."""
        _, net = self._require_fitted()
        data = validate_labelled(
            _as_list(texts, "texts"), _as_list(labels, "labels"), "evaluation data", min_classes=1
        )
        y = torch.tensor(self._encode_labels(data.labels, "evaluation data"))
        start = time.perf_counter()
        with torch.inference_mode():
            logits = self._logits(data.texts, batch_size)
            loss = float(net.loss(logits, y))
            pred = net.probabilities(logits).argmax(-1)
        cm = confusion_matrix(y.numpy(), pred.numpy(), len(self.classes))
        return Evaluation(
            accuracy=float((pred == y).float().mean()),
            macro_f1=macro_f1(cm),
            loss=loss,
            confusion=cm,
            classes=list(self.classes),
            n=len(y),
            seconds=time.perf_counter() - start,
        )

    @torch.inference_mode()
    def explain(self, text: str, layer: int = -1, direction: int = 0) -> GateTrace:
        """Gate activations of one recurrent layer/direction and attention weights on ``text``."""
        tokenizer, net = self._require_fitted()
        validate_texts([text], "text")
        cfg = self.config
        if not -cfg.num_layers <= layer < cfg.num_layers:
            raise LstmkitError(f"layer must be in [0, {cfg.num_layers - 1}], got {layer}")
        n_dir = 2 if cfg.bidirectional else 1
        if direction not in range(n_dir):
            raise LstmkitError(f"direction must be in [0, {n_dir - 1}], got {direction}")
        net.eval()
        ids = tokenizer.encode([text])[0]
        logits, details = net(torch.tensor([ids]), torch.tensor([len(ids)]), return_details=True)
        gate = details["gates"][layer][direction]
        gates = {name: value[0].numpy() for name, value in gate._asdict().items()}
        attention = details.get("attention")
        proba = net.probabilities(logits)[0].numpy()
        return GateTrace(
            tokens=[tokenizer.tokenizer.id_to_token(i) or "[UNK]" for i in ids],
            gates=gates,
            attention=None if attention is None else attention[0].numpy(),
            probabilities=proba,
            predicted=self.classes[int(proba.argmax())],
            classes=list(self.classes),
            layer=layer % cfg.num_layers,
            direction=direction,
            rnn=cfg.rnn,
        )

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path, extras: dict[str, str | bytes] | None = None) -> Path:
        """Write the model directory (config.json, model.safetensors, tokenizer.json,
        training.json and any ``extras`` files) atomically."""
        from lstmkit.io import save_model_dir

        tokenizer, net = self._require_fitted()
        files = {
            "tokenizer.json": tokenizer.to_json(),
            "training.json": json.dumps(
                {"history": self.history, "info": self.train_info}, indent=2
            ),
        }
        files.update(extras or {})
        return save_model_dir(
            path,
            kind=KIND,
            config={
                "model": self.config.to_dict(),
                "classes": list(self.classes),
                "vocab_size": tokenizer.vocab_size,
            },
            state_dict=net.state_dict(),
            extras=files,
        )

    @classmethod
    def load(cls, path: str | Path) -> TextClassifier:
        """Load a model directory written by `save`, checking its parts against each other.

        The config must name at least two distinct classes; the tokenizer's vocabulary,
        the config's ``vocab_size`` and the embedding's rows must agree; every tensor in
        ``model.safetensors`` must have the shape the config implies (classes, hidden
        size, layers, pooling). Anything else is refused with one `LstmkitError` line.
        """
        from lstmkit.io import load_model_dir

        saved = load_model_dir(path, KIND)
        cfg, classes, vocab_size = _read_saved_config(saved.config, path)
        tokenizer = _read_tokenizer(saved, cfg, vocab_size, path)
        _check_weight_shapes(saved.state_dict, vocab_size, classes, cfg, path)
        clf = cls(config=cfg)
        clf.classes = classes
        clf.tokenizer = tokenizer
        clf.net = TextClassifierNet(vocab_size, len(classes), cfg)
        clf.net.load_state_dict(saved.state_dict)
        clf.net.eval()
        clf.history, clf.train_info = _read_training(saved, path)
        return clf


def _read_saved_config(
    config: Any, path: str | Path
) -> tuple[TextClassifierConfig, list[Label], int]:
    """The model settings, classes and vocabulary size from a saved config.json."""
    where = f"{Path(path) / 'config.json'}"
    if not isinstance(config, dict) or not {"model", "classes", "vocab_size"} <= config.keys():
        raise LstmkitError(
            f"{where}: config lacks model/classes/vocab_size; it is not a text classifier "
            f"config, save the model again"
        )
    if not isinstance(config["model"], dict):
        raise LstmkitError(f"{where}: 'model' is not an object of settings; save the model again")
    try:
        cfg = TextClassifierConfig.from_dict(config["model"])
    except LstmkitError as err:
        raise LstmkitError(f"{where}: {err}; save the model again") from None
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise LstmkitError(
            f"{where}: the model settings are damaged ({type(err).__name__}: {err}); save the "
            f"model again"
        ) from None
    classes = config["classes"]
    if not isinstance(classes, list) or not all(
        isinstance(c, str | int) and not isinstance(c, bool) for c in classes
    ):
        raise LstmkitError(
            f"{where}: classes must be a list of class names or integers, got {classes!r}; "
            f"save the model again"
        )
    if len(classes) < 2 or len(set(classes)) != len(classes):
        raise LstmkitError(
            f"{where}: classes {classes!r} must list at least two distinct classes; the file "
            f"is damaged, save the model again"
        )
    vocab_size = config["vocab_size"]
    if not isinstance(vocab_size, int) or isinstance(vocab_size, bool) or vocab_size < 3:
        raise LstmkitError(
            f"{where}: vocab_size must be an integer >= 3, got {vocab_size!r}; save the model again"
        )
    return cfg, list(classes), vocab_size


def _read_tokenizer(
    saved: Any, cfg: TextClassifierConfig, vocab_size: int, path: str | Path
) -> TextTokenizer:
    """The saved tokenizer; its vocabulary must match ``vocab_size`` and the special ids."""
    where = Path(path) / "tokenizer.json"
    try:
        text = saved.read_text("tokenizer.json")
    except UnicodeDecodeError:
        raise LstmkitError(f"{where}: not UTF-8 text; the file is damaged, save again") from None
    try:
        tokenizer = TextTokenizer.from_json(text, cfg.tokenizer)
    except LstmkitError as err:
        raise LstmkitError(f"{where}: {err}; save the model again") from None
    vocab = tokenizer.tokenizer
    if tokenizer.vocab_size != vocab_size:
        raise LstmkitError(
            f"{where}: the tokenizer has {tokenizer.vocab_size:,} tokens but config.json says "
            f"vocab_size {vocab_size:,}; the two files come from different models, save again"
        )
    if vocab.token_to_id(PAD) != PAD_ID or vocab.token_to_id(UNK) != UNK_ID:
        raise LstmkitError(
            f"{where}: the tokenizer lacks [PAD]=0 and [UNK]=1; it was not written by lstmkit, "
            f"save the model again"
        )
    return tokenizer


def _check_weight_shapes(
    state: dict[str, Tensor],
    vocab_size: int,
    classes: list[Label],
    cfg: TextClassifierConfig,
    path: str | Path,
) -> None:
    """Refuse weights whose names or shapes differ from what the config implies.

    The expected shapes come from a network built on the meta device (nothing allocated),
    so a damaged config with a huge size cannot exhaust memory.
    """
    with torch.device("meta"):
        expected = TextClassifierNet(vocab_size, len(classes), cfg).state_dict()
    where = Path(path) / "model.safetensors"
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise LstmkitError(
            f"{where}: tensors do not match config.json (num_layers {cfg.num_layers}, "
            f"bidirectional {cfg.bidirectional}, pooling {cfg.pooling!r}): missing "
            f"{missing[:2]}, unexpected {extra[:2]}; the weights come from another model, "
            f"save it again"
        )
    for name, want in expected.items():
        got = tuple(state[name].shape)
        if got == tuple(want.shape):
            continue
        if name == "embedding.weight":
            why = (
                f"the embedding holds {got[0]:,} x {got[-1]} word vectors but the tokenizer has "
                f"{vocab_size:,} tokens and embedding_dim is {cfg.embedding_dim}"
            )
        elif name.startswith("head."):
            outputs = 1 if len(classes) == 2 else len(classes)
            why = (
                f"the classifier head has {got[0]} outputs but config.json lists "
                f"{len(classes)} classes {classes}, which need {outputs}"
            )
        else:
            why = (
                f"{name} has shape {list(got)} but the config (hidden_size {cfg.hidden_size}, "
                f"num_layers {cfg.num_layers}, bidirectional {cfg.bidirectional}, pooling "
                f"{cfg.pooling!r}) needs {list(want.shape)}"
            )
        raise LstmkitError(f"{where}: {why}; the files come from different models, save again")


def _read_training(saved: Any, path: str | Path) -> tuple[list[dict[str, float]], dict[str, Any]]:
    """History and training info from training.json ((empty) when the file is absent)."""
    where = Path(path) / "training.json"
    if not where.exists():
        return [], {}
    try:
        data = json.loads(where.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise LstmkitError(
            f"{where}: damaged ({type(err).__name__}); delete it to load the model without its "
            f"training history, or save the model again"
        ) from None
    history = data.get("history") if isinstance(data, dict) else None
    info = data.get("info") if isinstance(data, dict) else None
    if not (
        isinstance(history, list)
        and all(isinstance(row, dict) for row in history)
        and isinstance(info, dict)
    ):
        raise LstmkitError(
            f"{where}: expected an object with a 'history' list and an 'info' object; delete "
            f"the file to load the model without its training history, or save the model again"
        )
    return history, info
