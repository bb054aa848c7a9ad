"""Pretraining the classifier's encoder on unlabelled text, as a language model.

Labelled texts are scarce, unlabelled ones are not. `pretrain` learns, from any
`lstmkit.data.corpus.TextCorpus` streamed from disk:

1. the tokenizer (on the whole corpus);
2. the word vectors and the recurrent encoder, the same ``embedding`` and ``rnn``
   modules a `TextClassifierNet` has (`network.make_encoder`), trained as a language
   model: the forward direction predicts the next token from the text so far, the
   backward direction (a bidirectional encoder) the previous token from the rest of
   the text. Both directions share one adaptive softmax (Grave et al. 2017,
   ``torch.nn.AdaptiveLogSoftmaxWithLoss``), which makes a 30,000-40,000-word output
   layer affordable on a CPU.

A stacked bidirectional encoder cannot be pretrained this way (its second layer would
see each direction's future through the other direction) and is refused in one line.

The corpus is never held in memory: every epoch streams it again, tokenises blocks of
texts, splits texts longer than the tokenizer's ``max_length`` into consecutive pieces,
sorts a shuffle buffer by length and cuts it into batches (`LanguageModelStream`).
Every 100th text, up to ``val_texts``, is held out to measure validation perplexity.
Under DDP each process reads every ``world_size``-th text and yields the same number
of batches. ``max_minutes`` bounds the run's wall time: the epoch in progress ends at
the budget (its validation still runs) and pretraining stops.

Resuming (``checkpoint_dir``, with ``checkpoint_every_n_steps`` for long epochs): the
stream's position (the epoch in progress and the batches it has yielded) is part of
every checkpoint, and the batches of an epoch are a function of the corpus, the seed
and the epoch, so a resumed run reads the epoch again up to that position (tokenising
it, without training on it) and goes on with the very batches, dropout masks and
bookkeeping (training loss, tokens, seconds, training curve) of a run never
interrupted: it ends with the same weights and history (`PretrainInfo` records where it
resumed).

`PretrainedEncoder` is the result: the tokenizer, the settings and the weights,
saved as a model directory of kind ``"text_encoder"`` (config.json,
model.safetensors, tokenizer.json, training.json, perplexity.png) and loaded by
`TextClassifier.fit(..., pretrained=...)` to start fine-tuning from it.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, IterableDataset

from lstmkit.config import check_field_types, dataclass_from_dict
from lstmkit.data.corpus import TextCorpus
from lstmkit.data.text_batches import pad_batch
from lstmkit.data.tokenize import PAD, PAD_ID, UNK, UNK_ID, TextTokenizer, TokenizerConfig
from lstmkit.errors import LstmkitError
from lstmkit.tasks.text_classification.network import make_encoder, require_finite_weights
from lstmkit.tasks.text_classification.settings import TextClassifierConfig
from lstmkit.training import LstmkitModule

#: ``kind`` of a pretrained encoder's model directory
KIND = "text_encoder"
#: classifier settings a pretrained encoder fixes (they decide the weights' shapes or
#: the tokens); the others (dropouts, pooling, head, training) stay the classifier's own
ENCODER_FIELDS = (
    "tokenizer", "embedding_dim", "rnn", "hidden_size", "num_layers", "bidirectional",
    "layer_norm", "init",
)  # fmt: skip
#: every this-many-th text of the corpus is held out for validation (up to val_texts)
VAL_EVERY = 100
#: training steps per row of the training curve
LOG_EVERY = 20
#: pieces a long text is cut into are at most this long when max_length is 0 (no limit)
_PIECE_WITHOUT_LIMIT = 400
#: characters tokenised per call (bounds the tokenizer's transient memory; ids are the same)
_ENCODE_CHARS = 1 << 20

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


def encoder_config(config: TextClassifierConfig) -> dict[str, Any]:
    """The settings of ``config`` that a pretrained encoder fixes (`ENCODER_FIELDS`)."""
    data = config.to_dict()
    return {name: data[name] for name in ENCODER_FIELDS}


def check_pretrainable(config: TextClassifierConfig) -> None:
    """Refuse an encoder a language model cannot pretrain (stacked bidirectional)."""
    if config.bidirectional and config.num_layers > 1:
        raise LstmkitError(
            f"a bidirectional encoder with num_layers={config.num_layers} cannot be pretrained "
            "as a language model (its upper layers would see each direction's future); "
            "use num_layers=1 or a unidirectional encoder"
        )


def adaptive_cutoffs(vocab_size: int) -> list[int]:
    """Cluster boundaries of the adaptive softmax for a frequency-sorted vocabulary:
    the 2,000 most frequent ids in the head, then clusters up to 10,000 and the rest."""
    cuts = [c for c in (2000, 10000) if c < vocab_size - 1]
    return cuts or [max(vocab_size // 2, 1)]


class LanguageModelNet(nn.Module):
    """Embedding -> LSTM/GRU -> dropout -> adaptive softmax over the vocabulary.

    forward(ids (batch, time) int64, lengths (batch,) int64) -> (summed negative
    log-likelihood of every predicted token (scalar), number of predicted tokens).
    The forward direction's output at step t predicts token t+1; with a bidirectional
    encoder the backward direction's output at step t predicts token t-1.
    """

    def __init__(self, vocab_size: int, config: TextClassifierConfig, output_dropout: float):
        super().__init__()
        check_pretrainable(config)
        self.config = config
        self.embedding, self.embedding_dropout, self.rnn = make_encoder(vocab_size, config)
        self.output_dropout = nn.Dropout(output_dropout)
        self.softmax = nn.AdaptiveLogSoftmaxWithLoss(
            config.hidden_size, vocab_size, cutoffs=adaptive_cutoffs(vocab_size), div_value=4.0
        )

    def forward(self, ids: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        x = self.embedding_dropout(self.embedding(ids))
        out, _ = self.rnn(x, lengths=lengths.cpu())
        out = self.output_dropout(out.float())
        h = self.config.hidden_size
        steps = ids.shape[1]
        # position t predicts t+1 (forward) / t-1 (backward) where both are real tokens
        real = torch.arange(steps - 1, device=ids.device)[None, :] < (lengths[:, None] - 1)
        hidden = [out[:, :-1, :h][real]]
        targets = [ids[:, 1:][real]]
        if self.config.bidirectional:
            hidden.append(out[:, 1:, h:][real])
            targets.append(ids[:, :-1][real])
        hid, tgt = torch.cat(hidden), torch.cat(targets)
        if tgt.numel() == 0:  # every text one token long: nothing to predict
            return out.sum() * 0.0, torch.zeros((), dtype=torch.long)
        nll = -self.softmax(hid, tgt).output.sum()
        return nll, torch.tensor(tgt.numel())

    def encoder_state(self) -> dict[str, Tensor]:
        """The weights a classifier takes over: ``embedding.*`` and ``rnn.*``."""
        return {
            k: v.detach().cpu().clone()
            for k, v in self.state_dict().items()
            if k.startswith(("embedding.", "rnn."))
        }


# ---------------------------------------------------------------------- streaming data
def _pieces(ids: list[int], max_length: int) -> list[list[int]]:
    """A long text's ids cut into consecutive pieces of at most ``max_length`` (the
    last piece is dropped when it is a single token: it predicts nothing)."""
    size = max_length or _PIECE_WITHOUT_LIMIT
    out = [ids[i : i + size] for i in range(0, len(ids), size)]
    return [p for p in out if len(p) > 1] or [ids]


def _encode_all(tokenizer: TextTokenizer, texts: list[str]) -> list[list[int]]:
    """Untruncated ids of ``texts`` (pretraining cuts long texts into pieces instead),
    tokenised `_ENCODE_CHARS` characters at a time."""
    out: list[list[int]] = []
    start = 0
    while start < len(texts):
        end, size = start + 1, len(texts[start])
        while end < len(texts) and size + len(texts[end]) <= _ENCODE_CHARS:
            size += len(texts[end])
            end += 1
        encodings = tokenizer.tokenizer.encode_batch(texts[start:end], add_special_tokens=False)
        out.extend(e.ids or [UNK_ID] for e in encodings)
        start = end
    return out


def _split_stream(corpus: TextCorpus, val_texts: int) -> Iterator[tuple[bool, str]]:
    """(is_validation, text) for every text: every `VAL_EVERY`-th, up to ``val_texts``."""
    held = 0
    for i, text in enumerate(corpus):
        is_val = held < val_texts and i % VAL_EVERY == VAL_EVERY - 1
        held += is_val
        yield is_val, text


@dataclass
class CorpusStats:
    """What one pass over the corpus found (the tokenizer already trained)."""

    texts: int = 0
    train_texts: int = 0
    train_pieces: int = 0
    train_tokens: int = 0
    val_texts: int = 0
    val_tokens: int = 0
    val_pieces: list[list[int]] = field(default_factory=list, repr=False)


def scan_corpus(
    corpus: TextCorpus, tokenizer: TextTokenizer, val_texts: int, block: int = 4096
) -> CorpusStats:
    """Count the texts, pieces and tokens of the training part and keep the validation
    part's pieces (at most ``val_texts`` texts, so bounded memory)."""
    stats = CorpusStats()
    max_length = tokenizer.config.max_length

    def flush(buf: list[str], is_val: bool) -> None:
        for ids in _encode_all(tokenizer, buf):
            pieces = _pieces(ids, max_length)
            if is_val:
                stats.val_pieces.extend(pieces)
                stats.val_tokens += sum(len(p) for p in pieces)
            else:
                stats.train_pieces += len(pieces)
                stats.train_tokens += sum(len(p) for p in pieces)

    buf: list[str] = []
    chars = 0
    for is_val, text in _split_stream(corpus, val_texts):
        stats.texts += 1
        if is_val:
            stats.val_texts += 1
            flush([text], True)
            continue
        stats.train_texts += 1
        buf.append(text)
        chars += len(text)
        if len(buf) >= block or chars >= _ENCODE_CHARS:
            flush(buf, False)
            buf, chars = [], 0
    flush(buf, False)
    return stats


def _distributed() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class LanguageModelStream(IterableDataset):
    """Batches of training pieces streamed from the corpus, one pass per epoch.

    Yields dicts ``{"ids": (batch, time) int64, "lengths": (batch,) int64}``: exactly
    ``len(self)`` batches per epoch and process. Each process reads its share of the
    training texts (every ``world_size``-th), tokenises them in blocks, fills a buffer of
    ``shuffle_texts`` texts' pieces, shuffles it (seed + epoch + rank), sorts slices of
    it by length and cuts full batches; pieces left over move on to the next buffer.
    A process whose share runs out before its quota starts its share again.
    ``epoch`` is set by the training module at the start of every epoch (so a resumed
    run draws the same batches).

    ``position``: the batches the epoch in progress has yielded. `state_dict` /
    `load_state_dict` save and restore it (`LanguageModelModule` keeps it in every
    checkpoint): a stream restored to (epoch, position) yields that epoch's batches from
    position on, the same as a stream never stopped (the batches before it are drawn
    again, tokenised but not padded, to reach the same shuffle state).
    """

    def __init__(
        self,
        corpus: TextCorpus,
        tokenizer: TextTokenizer,
        stats: CorpusStats,
        settings: PretrainSettings,
        world_size: int = 1,
    ) -> None:
        self.corpus = corpus
        self.tokenizer = tokenizer
        self.settings = settings
        self.stats = stats
        self.world_size = world_size
        self.epoch = 0
        self.position = 0
        self._position_epoch = 0
        self._resume: tuple[int, int] | None = None

    def state_dict(self) -> dict[str, int]:
        """The position: the epoch in progress and the batches it has yielded. Lightning
        fetches no batch ahead from a stream of known length, so at a checkpoint these
        are the batches trained on."""
        return {"epoch": self._position_epoch, "batches": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume at ``state`` (from `state_dict`): the next pass over ``state["epoch"]``
        starts after its first ``state["batches"]`` batches; a pass over another epoch
        starts at its beginning."""
        self._resume = (int(state["epoch"]), int(state["batches"]))

    def __len__(self) -> int:
        return max(self.stats.train_pieces // (self.world_size * self.settings.batch_size), 1)

    def _share(self, rank: int, world: int) -> Iterator[str]:
        j = 0
        for is_val, text in _split_stream(self.corpus, self.settings.val_texts):
            if is_val:
                continue
            if j % world == rank:
                yield text
            j += 1

    def _batches(
        self, rank: int, world: int, rng: np.random.Generator
    ) -> Iterator[list[list[int]]]:
        s, max_length = self.settings, self.tokenizer.config.max_length
        carry: list[list[int]] = []
        buf: list[str] = []
        while True:  # passes over this process's share; the caller stops at the quota
            produced = False
            for text in self._share(rank, world):
                buf.append(text)
                if len(buf) < s.shuffle_texts:
                    continue
                for batch in self._cut(buf, carry, max_length, rng):
                    produced = True
                    yield batch
                buf = []
            for batch in self._cut(buf, carry, max_length, rng):
                produced = True
                yield batch
            buf = []
            if not produced:  # a share smaller than one batch: it is the batch
                if not carry:
                    return
                yield list(carry)
                carry.clear()

    def _cut(
        self,
        texts: list[str],
        carry: list[list[int]],
        max_length: int,
        rng: np.random.Generator,
    ) -> Iterator[list[list[int]]]:
        b = self.settings.batch_size
        pieces = carry + [
            p for ids in _encode_all(self.tokenizer, texts) for p in _pieces(ids, max_length)
        ]
        order = rng.permutation(len(pieces))
        full = len(order) // b * b
        carry[:] = [pieces[i] for i in order[full:]]
        chosen = order[:full]
        # sort slices of 50 batches by length: little padding, still a random mix
        batches = []
        for start in range(0, full, 50 * b):
            part = chosen[start : start + 50 * b]
            part = part[np.argsort([-len(pieces[i]) for i in part], kind="stable")]
            batches.extend(part[i : i + b] for i in range(0, len(part), b))
        for k in rng.permutation(len(batches)):
            yield [pieces[i] for i in batches[k]]

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        rank, world = _distributed()
        epoch = self.epoch
        skip = self._resume[1] if self._resume is not None and self._resume[0] == epoch else 0
        self._resume = None
        self._position_epoch, self.position = epoch, skip
        rng = np.random.default_rng([self.settings.seed, epoch, rank])
        quota = len(self)
        for produced, pieces in enumerate(self._batches(rank, world, rng)):
            if produced >= quota:
                break
            if produced < skip:  # trained on before the run was resumed
                continue
            batch = pad_batch([(p, 0) for p in pieces])
            batch.pop("labels", None)
            self.position = produced + 1
            yield batch
        self.epoch = epoch + 1


class StreamLoader(DataLoader):
    """The `LanguageModelStream`'s loader (no workers), resumable: it has the stream's
    `state_dict` / `load_state_dict`, so Lightning knows it can resume mid-epoch (it
    saves the position too, but its setup reads the loader before restoring a checkpoint
    when the learning-rate schedule asks for the number of steps, so
    `LanguageModelModule` restores the position). Its own random generator keeps
    starting an iteration from drawing on torch's global one (a resumed run starts one
    where the uninterrupted run did not, and dropout would draw differently after it)."""

    def __init__(self, stream: LanguageModelStream) -> None:
        super().__init__(stream, batch_size=None, num_workers=0, generator=torch.Generator())

    def state_dict(self) -> dict[str, int]:
        return self.dataset.state_dict()  # type: ignore[attr-defined]

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.dataset.load_state_dict(state)  # type: ignore[attr-defined]


def validation_loader(stats: CorpusStats, batch_size: int) -> DataLoader | None:
    """The held-out pieces in batches sorted by length (None without any)."""
    if not stats.val_pieces:
        return None
    order = sorted(range(len(stats.val_pieces)), key=lambda i: -len(stats.val_pieces[i]))
    batches = []
    for i in range(0, len(order), batch_size):
        batch = pad_batch([(stats.val_pieces[j], 0) for j in order[i : i + batch_size]])
        batch.pop("labels", None)
        batches.append(batch)
    # its own generator: validating draws nothing from torch's global one
    return DataLoader(batches, batch_size=None, shuffle=False, generator=torch.Generator())


# ---------------------------------------------------------------------- training
class LanguageModelModule(LstmkitModule):
    """Trains a `LanguageModelNet`; logs ``train_loss``/``val_loss`` (mean negative
    log-likelihood per predicted token; perplexity = exp of it).

    Sets the stream's epoch (so a resumed run draws the same batches) and enforces the
    wall-time budget: when ``max_minutes`` have passed, rank 0 decides, every process
    hears it (a broadcast under DDP) and Lightning validates, ends the epoch and stops.

    Its bookkeeping is done in ``training_step``, before a checkpoint can be written for
    the batch, and saved in every checkpoint (`on_save_checkpoint`): the epoch's training
    loss (summed here rather than by Lightning, which would restart the mean at a
    resumed batch), tokens, seconds and training curve go on where a killed run left
    them; ``resumed`` says where that was.
    """

    show_in_progress_bar = True
    _CHECKPOINT_KEY = "lstmkit_pretrain"

    def __init__(
        self,
        net: LanguageModelNet,
        stream: LanguageModelStream,
        settings: PretrainSettings,
        on_epoch: Callable[[dict[str, float]], None] | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        self.stream = stream
        self.settings = settings
        self.on_epoch = on_epoch
        self._start = time.perf_counter()
        self._epoch_start = self._start
        self.out_of_time = False
        #: training tokens this process went through (a resumed run's include the killed run's)
        self.tokens_seen = 0
        #: the training curve: every `LOG_EVERY` steps, tokens seen (all processes), the
        #: running mean loss since the last row and the training seconds so far
        self.steps: list[dict[str, float]] = []
        self._sum = 0.0
        self._n = 0
        #: training tokens seen (all processes) by the end of each epoch
        self.epoch_tokens: dict[int, float] = {}
        #: seconds of each epoch, its validation included (an epoch a resumed run finished:
        #: the killed run's seconds up to its checkpoint and the resumed run's)
        self.epoch_seconds: dict[int, float] = {}
        self._epoch_nll = 0.0  # the epoch's summed negative log-likelihood so far
        self._epoch_count = 0  # and its predicted tokens
        self._seconds_before = 0.0  # training seconds of the runs before a resume
        self._epoch_seconds_before = 0.0  # seconds the epoch in progress ran before it
        #: tokens_seen when this run started (a resumed run starts from the checkpoint's)
        self.tokens_before = 0
        #: where this run resumed (global "step", 0-based "epoch", "batches" of it done),
        #: or None for a run that started afresh
        self.resumed: dict[str, int] | None = None

    def on_fit_start(self) -> None:
        self._start = time.perf_counter()

    def on_train_start(self) -> None:
        self.stream.epoch = self.current_epoch  # a resumed run goes on with its epoch
        self._epoch_start = time.perf_counter()

    def on_train_epoch_start(self) -> None:
        self.stream.epoch = self.current_epoch
        self._epoch_start = time.perf_counter()
        self._epoch_seconds_before = 0.0
        self._epoch_nll, self._epoch_count = 0.0, 0

    def _budget_fraction(self) -> float:
        if self.settings.max_minutes is None:
            return 0.0
        return (time.perf_counter() - self._start) / (60 * self.settings.max_minutes)

    def _seconds(self) -> float:
        """Training seconds so far, the runs before a resume included."""
        return self._seconds_before + time.perf_counter() - self._start

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        nll, count = self.net(batch["ids"], batch["lengths"])
        loss = nll / count.clamp(min=1)
        self.tokens_seen += int(batch["lengths"].sum())
        self._epoch_nll += float(nll.detach())
        self._epoch_count += int(count)
        self._sum += float(loss.detach())
        self._n += 1
        if self._n >= LOG_EVERY:
            self.steps.append(
                {
                    "step": float(self.global_step + 1),  # counting this batch's step
                    "tokens": float(self.tokens_seen * self.trainer.world_size),
                    "train_loss": self._sum / self._n,
                    "seconds": self._seconds(),
                }
            )
            self._sum, self._n = 0.0, 0
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.settings.max_minutes is not None:
            done = self._budget_fraction() >= 1.0
            if self.trainer.world_size > 1:
                done = bool(self.trainer.strategy.broadcast(done, src=0))
            if done and not self.out_of_time:
                # Lightning validates, ends the epoch and stops (on every process alike)
                self.out_of_time = True
                self.trainer.should_stop = True
        last = self.trainer.fit_loop.epoch_loop.batch_progress.is_last_batch
        if last or self.trainer.should_stop:  # the epoch's mean, logged once
            self.log("train_loss", self._epoch_nll / max(self._epoch_count, 1), on_step=False,
                     on_epoch=True, sync_dist=True, batch_size=1, prog_bar=True)  # fmt: skip

    def on_train_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        seen = torch.tensor(float(self.tokens_seen))
        if self.trainer.world_size > 1:  # every process's own count, summed
            seen = self.trainer.strategy.reduce(seen, reduce_op="sum")
        self.epoch_tokens[self.current_epoch] = float(seen)
        seconds = self._epoch_seconds_before + time.perf_counter() - self._epoch_start
        if self.trainer.world_size > 1:  # rank 0's clock: every process records the same
            seconds = float(self.trainer.strategy.broadcast(seconds, src=0))
        self.epoch_seconds[self.current_epoch] = seconds
        if self.on_epoch is not None:
            row = {k: float(v) for k, v in self.trainer.callback_metrics.items()}
            row["epoch"] = self.current_epoch
            row["seconds"] = seconds
            row["tokens"] = self.epoch_tokens[self.current_epoch]
            self.on_epoch(row)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        now = time.perf_counter()
        checkpoint[self._CHECKPOINT_KEY] = {
            "tokens_seen": self.tokens_seen,
            "steps": [dict(row) for row in self.steps],
            "sum": self._sum,
            "n": self._n,
            "epoch_tokens": dict(self.epoch_tokens),
            "epoch_seconds": dict(self.epoch_seconds),
            "epoch_nll": self._epoch_nll,
            "epoch_count": self._epoch_count,
            "seconds": self._seconds_before + now - self._start,
            "epoch_seconds_so_far": self._epoch_seconds_before + now - self._epoch_start,
            "position": self.stream.state_dict(),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get(self._CHECKPOINT_KEY)
        if not isinstance(state, dict):  # written before lstmkit kept it: start the counts anew
            return
        self.tokens_seen = self.tokens_before = int(state["tokens_seen"])
        self.steps = [dict(row) for row in state["steps"]]
        self._sum, self._n = float(state["sum"]), int(state["n"])
        self.epoch_tokens = {int(k): float(v) for k, v in state["epoch_tokens"].items()}
        self.epoch_seconds = {int(k): float(v) for k, v in state["epoch_seconds"].items()}
        self._epoch_nll, self._epoch_count = float(state["epoch_nll"]), int(state["epoch_count"])
        self._seconds_before = float(state["seconds"])
        self._epoch_seconds_before = float(state["epoch_seconds_so_far"])
        position = state["position"]
        self.stream.load_state_dict(position)
        self.resumed = {
            "step": int(checkpoint.get("global_step", 0)),
            "epoch": int(position["epoch"]),
            "batches": int(position["batches"]),
        }

    def step_metrics(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        nll, count = self.net(batch["ids"], batch["lengths"])
        return {"loss": nll / count.clamp(min=1)}

    def batch_size(self, batch: dict[str, Tensor]) -> int:
        """Predicted tokens in the batch: the validation loss is a mean per token."""
        lengths = batch["lengths"]
        per_text = (lengths - 1).clamp(min=0)
        return int(per_text.sum()) * (2 if self.net.config.bidirectional else 1) or 1

    def configure_optimizers(self) -> Any:
        config = self.train_config
        if config is None:
            raise RuntimeError("train with lstmkit.training.fit, which sets train_config")
        opt = torch.optim.Adam(self.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        if self.settings.lr_decay == "none":
            return opt
        total = max(int(self.trainer.estimated_stepping_batches), 1)

        def factor(step: int) -> float:
            # linear to 0 over the epochs, or over the time budget when it ends sooner
            return max(0.0, 1.0 - max(step / total, self._budget_fraction()))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


# ---------------------------------------------------------------------- the result
@dataclass
class PretrainInfo:
    """Facts about a pretraining run (training.json's ``info``)."""

    corpus: str = ""
    texts: int = 0
    train_texts: int = 0
    val_texts: int = 0
    train_tokens_per_epoch: int = 0
    vocab_size: int = 0
    tokenizer_seconds: float = 0.0
    scan_seconds: float = 0.0
    fit_seconds: float = 0.0
    epochs_run: int = 0
    stopped_by_time: bool = False
    tokens_per_second: float = 0.0
    best_epoch: int = -1
    val_perplexity: float = math.nan
    world_size: int = 1
    #: where a run resumed from its checkpoint (None: it started afresh): the global step,
    #: the 0-based epoch and the batches of it trained before (of epoch_batches)
    resumed_at_step: int | None = None
    resumed_epoch: int | None = None
    resumed_batches: int | None = None
    epoch_batches: int = 0


@dataclass
class PretrainedEncoder:
    """A pretrained tokenizer + encoder: what `TextClassifier.fit(pretrained=...)` starts from.

    config: the classifier settings it was pretrained with (its `ENCODER_FIELDS` bind a
    classifier that uses it); settings: how it was pretrained; state: every weight of
    the language model (``embedding.*``, ``rnn.*``, ``softmax.*``).
    """

    config: TextClassifierConfig
    settings: PretrainSettings
    tokenizer: TextTokenizer
    state: dict[str, Tensor]
    history: list[dict[str, float]] = field(default_factory=list)
    info: PretrainInfo = field(default_factory=PretrainInfo)
    steps: list[dict[str, float]] = field(default_factory=list)

    def encoder_state(self) -> dict[str, Tensor]:
        """``embedding.*`` and ``rnn.*``: the weights a classifier takes over."""
        return {k: v for k, v in self.state.items() if k.startswith(("embedding.", "rnn."))}

    def save(self, path: str | Path, extras: dict[str, str | bytes] | None = None) -> Path:
        """Write the model directory (kind ``"text_encoder"``) atomically."""
        from lstmkit.io import save_model_dir

        files: dict[str, str | bytes] = {
            "tokenizer.json": self.tokenizer.to_json(),
            "training.json": json.dumps(
                {"history": self.history, "info": asdict(self.info), "steps": self.steps},
                indent=1,
                default=float,
            ),
        }
        files.update(extras or {})
        config = {
            "model": self.config.to_dict(),
            "pretraining": self.settings.to_dict(),
            "vocab_size": self.tokenizer.vocab_size,
        }
        return save_model_dir(path, kind=KIND, config=config, state_dict=self.state, extras=files)

    @classmethod
    def load(cls, path: str | Path) -> PretrainedEncoder:
        """Read a folder written by `save`, checking its parts agree (one-line errors)."""
        from lstmkit.io import load_model_dir

        path = Path(path)
        saved = load_model_dir(path, KIND)
        where = path / "config.json"
        data = saved.config
        if not isinstance(data, dict) or not {"model", "pretraining", "vocab_size"} <= set(data):
            raise LstmkitError(
                f"{where}: lacks model/pretraining/vocab_size; it is not a pretrained encoder, "
                "pretrain again"
            )
        try:
            config = TextClassifierConfig.from_dict(data["model"])
            settings = PretrainSettings.from_dict(data["pretraining"])
        except LstmkitError as err:
            raise LstmkitError(f"{where}: {err}; pretrain again") from None
        vocab_size = data["vocab_size"]
        try:
            tokenizer = TextTokenizer.from_json(saved.read_text("tokenizer.json"), config.tokenizer)
        except (LstmkitError, UnicodeDecodeError, OSError) as err:
            raise LstmkitError(f"{path / 'tokenizer.json'}: {err}; pretrain again") from None
        tok = tokenizer.tokenizer
        if (
            tokenizer.vocab_size != vocab_size
            or tok.token_to_id(PAD) != PAD_ID
            or (tok.token_to_id(UNK) != UNK_ID)
        ):
            raise LstmkitError(
                f"{path / 'tokenizer.json'}: {tokenizer.vocab_size:,} tokens where config.json "
                f"says {vocab_size:,} (with [PAD]=0, [UNK]=1); the files come from different "
                "runs, pretrain again"
            )
        with torch.device("meta"):
            want = LanguageModelNet(vocab_size, config, settings.output_dropout).state_dict()
        got = saved.state_dict
        for name, tensor in want.items():
            if name not in got or tuple(got[name].shape) != tuple(tensor.shape):
                shape = "missing" if name not in got else f"of shape {list(got[name].shape)}"
                raise LstmkitError(
                    f"{path / 'model.safetensors'}: {name} is {shape} but the config needs "
                    f"{list(tensor.shape)}; the files come from different runs, pretrain again"
                )
        require_finite_weights(
            got, f"{path / 'model.safetensors'} holds NaN or infinite weights", "pretrain again"
        )
        history: list[dict[str, float]] = []
        steps: list[dict[str, float]] = []
        info = PretrainInfo()
        record = path / "training.json"
        if record.exists():
            try:
                rec = json.loads(record.read_text())
                history, steps = list(rec["history"]), list(rec.get("steps", []))
                info = dataclass_from_dict(PretrainInfo, rec["info"], "PretrainInfo")
            except (ValueError, KeyError, TypeError, AttributeError, LstmkitError):
                history, steps, info = [], [], PretrainInfo()  # the record is optional
        return cls(config, settings, tokenizer, dict(got), history, info, steps)

    def adopt(self, config: TextClassifierConfig, explicit: set[str]) -> TextClassifierConfig:
        """``config`` with the encoder settings of this encoder.

        ``explicit``: the settings the user gave; one that differs from the encoder's is
        an error naming both values (the weights could not be loaded into it), except
        the tokenizer's `TRUNCATION_FIELDS` (max_length, keep), which are taken as given.
        """
        mine = encoder_config(self.config)
        given = config.to_dict()
        for key in TRUNCATION_FIELDS:  # how long texts are cut may change for fine-tuning
            if key in explicit:
                mine["tokenizer"][key] = given["tokenizer"][key]
        for name, value in mine.items():
            if name == "tokenizer":
                for key, v in value.items():
                    if key in explicit and given["tokenizer"][key] != v:
                        raise LstmkitError(
                            f"the pretrained encoder's tokenizer has {key}={v!r} but {key}="
                            f"{given['tokenizer'][key]!r} was asked for; drop the setting or "
                            "pretrain again with it"
                        )
            elif name in explicit and given[name] != value:
                raise LstmkitError(
                    f"the pretrained encoder has {name}={value!r} but {name}={given[name]!r} "
                    "was asked for; drop the setting or pretrain again with it"
                )
        return replace(
            config,
            tokenizer=TokenizerConfig.from_dict(mine["tokenizer"]),
            **{k: v for k, v in mine.items() if k != "tokenizer"},
        )

    def fingerprint(self) -> str:
        """SHA-256 of the tokenizer and weights (a fine-tuning run's checkpoints record it)."""
        h = hashlib.sha256(self.tokenizer.to_json().encode("utf-8"))
        for name in sorted(self.state):
            t = self.state[name].detach().contiguous()
            h.update(name.encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        return h.hexdigest()


def pretrain(
    corpus: TextCorpus,
    config: TextClassifierConfig,
    settings: PretrainSettings,
    *,
    tokenizer: TextTokenizer | None = None,
    run_options: dict[str, Any] | None = None,
    progress: bool = True,
    accelerator: str = "cpu",
    devices: int | str = 1,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> PretrainedEncoder:
    """Pretrain the encoder of ``config`` on ``corpus`` (see the module docstring).

    ``tokenizer``: reuse one (default: learn it from the corpus with
    ``config.tokenizer``). ``run_options``: checkpoint_dir, checkpoint_every_n_steps,
    logger, log_dir (as for `TextClassifier`): a killed run rerun with the same
    checkpoint folder resumes from its last checkpoint.
    """
    from lstmkit.training import TrainConfig, require_precision_supported
    from lstmkit.training import fit as train

    require_precision_supported(settings.precision, accelerator)
    check_pretrainable(config)
    corpus.check()
    torch.manual_seed(settings.seed)
    start = time.perf_counter()
    if tokenizer is None:
        tokenizer = TextTokenizer.train(corpus, config.tokenizer)
    tok_seconds = time.perf_counter() - start
    start = time.perf_counter()
    stats = scan_corpus(corpus, tokenizer, settings.val_texts)
    scan_seconds = time.perf_counter() - start
    if stats.train_pieces < 1:
        raise LstmkitError(
            f"the corpus ({corpus.describe}) leaves no text to train on after holding out "
            f"{stats.val_texts} for validation; give more texts or set val_texts=0"
        )
    world = devices if isinstance(devices, int) else 1
    stream = LanguageModelStream(corpus, tokenizer, stats, settings, world_size=world)
    net = LanguageModelNet(tokenizer.vocab_size, config, settings.output_dropout)
    module = LanguageModelModule(net, stream, settings, on_epoch)
    options = dict(run_options or {})
    if settings.checkpoint_every_n_steps is not None:
        options["checkpoint_every_n_steps"] = settings.checkpoint_every_n_steps
    train_cfg = TrainConfig(
        max_epochs=settings.epochs,
        lr=settings.lr,
        weight_decay=settings.weight_decay,
        gradient_clip_val=settings.gradient_clip_val,
        early_stopping_patience=None,
        seed=settings.seed,
        precision=settings.precision,
        deterministic=False,
        accelerator=accelerator,
        devices=devices,
        progress_bar=progress,
        **options,
    )
    h = hashlib.sha256()
    h.update(json.dumps({"config": config.to_dict(), "settings": settings.to_dict()}).encode())
    h.update(tokenizer.to_json().encode("utf-8"))
    h.update(f"{corpus.describe}:{stats.texts}:{stats.train_tokens}:{stats.val_tokens}".encode())
    loader = StreamLoader(stream)
    val_loader = validation_loader(stats, settings.batch_size * 2)
    with warnings.catch_warnings():
        # the stream knows its exact length per process; Lightning's caution is for workers
        warnings.filterwarnings("ignore", message=".*IterableDataset.*has `__len__` defined")
        result = train(module, loader, val_loader, train_cfg, fingerprint=h.hexdigest())
    net.cpu().eval()
    require_finite_weights(
        net.state_dict(),
        "pretraining diverged: the weights became NaN or infinite",
        "lower lr or gradient_clip_val and pretrain again",
    )
    best = result.best_val_loss
    info = PretrainInfo(
        corpus=corpus.describe,
        texts=stats.texts,
        train_texts=stats.train_texts,
        val_texts=stats.val_texts,
        train_tokens_per_epoch=stats.train_tokens,
        vocab_size=tokenizer.vocab_size,
        tokenizer_seconds=tok_seconds,
        scan_seconds=scan_seconds,
        fit_seconds=result.fit_seconds,
        epochs_run=result.epochs_run,
        stopped_by_time=module.out_of_time,
        tokens_per_second=max(
            max(module.epoch_tokens.values(), default=0.0)
            - module.tokens_before * result.world_size,
            0.0,
        )
        / max(result.fit_seconds, 1e-9),
        best_epoch=result.best_epoch,
        val_perplexity=math.exp(best) if math.isfinite(best) and best < 700 else math.nan,
        world_size=result.world_size,
        epoch_batches=len(stream),
    )
    if module.resumed is not None:
        info.resumed_at_step = module.resumed["step"]
        info.resumed_epoch = module.resumed["epoch"]
        info.resumed_batches = module.resumed["batches"]
    state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    for row in result.history:
        epoch = int(row["epoch"])
        if epoch in module.epoch_tokens:
            row["tokens"] = module.epoch_tokens[epoch]
        if epoch in module.epoch_seconds:
            row["seconds"] = module.epoch_seconds[epoch]
        for split in ("train", "val"):
            if f"{split}_loss" in row and row[f"{split}_loss"] < 700:
                row[f"{split}_perplexity"] = math.exp(row[f"{split}_loss"])
    return PretrainedEncoder(config, settings, tokenizer, state, result.history, info, module.steps)
