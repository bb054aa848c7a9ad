"""The text classifier's network: Embedding -> LSTM/GRU -> pooling -> dropout -> linear.

`TextClassifierNet` is a plain ``torch.nn.Module`` (no Lightning): token ids ->
Embedding -> (embedding dropout) -> ``lstmkit.nn`` LSTM or GRU (layers, hidden size,
bidirectional, dropout between layers; optionally layer-normalised, with recurrent
dropout or zoneout) -> pooling over the real steps (last / mean /
max / attention, or several joined with "+", e.g. "max+mean") -> dropout -> linear
head. Two classes use one logit and binary cross-entropy (as seeds 000 and 003), more
classes a softmax. `build_net` refuses a network too large for memory in one line;
`check_weight_shapes` compares saved tensors with the shapes a
config implies, without allocating the network. The encoder (Embedding, its dropout and
the LSTM/GRU) is the language model's (`lstmkit.tasks.language_model.make_encoder`), so
a pretrained encoder's weights load into it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmkit.data.text import Label
from lstmkit.errors import LstmkitError
from lstmkit.nn import AttentionPool, make_pool
from lstmkit.tasks.language_model.network import (  # noqa: F401 - require_finite_weights: here too
    make_encoder,
    require_finite_weights,
)
from lstmkit.tasks.text_classification.settings import TextClassifierConfig


class TextClassifierNet(nn.Module):
    """Embedding -> LSTM/GRU -> pooling -> dropout -> linear.

    forward(ids (batch, time) int64, lengths (batch,) int64) -> logits (batch, outputs),
    outputs = 1 for two classes, else the number of classes.
    """

    def __init__(self, vocab_size: int, num_classes: int, config: TextClassifierConfig) -> None:
        super().__init__()
        self.config = config
        self.num_classes = num_classes
        self.embedding, self.embedding_dropout, self.rnn = make_encoder(vocab_size, config)
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
        return self.from_vectors(
            self.embedding_dropout(self.embedding(ids)), lengths, return_details=return_details
        )

    def from_vectors(
        self, x: Tensor, lengths: Tensor, *, return_details: bool = False
    ) -> Tensor | tuple[Tensor, dict[str, Any]]:
        """`forward` from the word vectors ``x`` (batch, time, embedding_dim) on: the
        recurrent layer, pooling and head (adversarial training perturbs ``x``)."""
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

    def loss(self, logits: Tensor, labels: Tensor, weight: Tensor | None = None) -> Tensor:
        """Binary cross-entropy on one logit (two classes) or cross-entropy.

        ``weight`` (classes,) makes it the weighted mean sum_i w[y_i] l_i / sum_i w[y_i]
        (class weights for imbalanced labels; torch's cross_entropy convention).
        """
        if self.num_classes == 2:
            each = F.binary_cross_entropy_with_logits(
                logits.squeeze(-1),
                labels.float(),
                reduction="none" if weight is not None else "mean",
            )
            if weight is None:
                return each
            w = weight.to(each.dtype)[labels]
            return (each * w).sum() / w.sum()
        return F.cross_entropy(logits, labels, weight=weight)


def check_weight_shapes(
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


def _memory_bytes() -> int | None:
    """Physical memory of this machine in bytes (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def build_net(vocab_size: int, num_classes: int, config: TextClassifierConfig) -> TextClassifierNet:
    """A `TextClassifierNet` for training, refused in one line when it cannot fit in memory.

    Training holds each float32 parameter four times (weights, gradients and Adam's two
    moments), so a network whose 16 bytes per parameter exceed the machine's memory (or
    whose allocation fails) is an `LstmkitError` naming the settings to lower, instead
    of an allocator traceback.
    """
    with torch.device("meta"):
        n = sum(p.numel() for p in TextClassifierNet(vocab_size, num_classes, config).parameters())
    memory = _memory_bytes()
    advice = (
        f"the network has {n:,} parameters ({16 * n / 1e9:,.1f} GB to train) and does not fit "
        f"in memory; lower hidden_size ({config.hidden_size}), embedding_dim "
        f"({config.embedding_dim}), num_layers ({config.num_layers}) or vocab_size ({vocab_size:,})"
    )
    if memory is not None and 16 * n > memory:
        raise LstmkitError(advice)
    try:
        return TextClassifierNet(vocab_size, num_classes, config)
    except (RuntimeError, MemoryError) as err:
        if isinstance(err, MemoryError) or "allocate" in str(err):
            raise LstmkitError(advice) from None
        raise
