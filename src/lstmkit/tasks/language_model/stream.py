"""The corpus streamed for pretraining: pieces of text, batches, and the DataModule.

The corpus is never held in memory: every epoch streams it again, tokenises blocks of
texts, splits texts longer than the tokenizer's ``max_length`` into consecutive pieces,
sorts a shuffle buffer by length and cuts it into batches (`LanguageModelStream`).
Every `VAL_EVERY`-th text, up to ``val_texts``, is held out to measure validation
perplexity (`scan_corpus` keeps its pieces). Under DDP each process reads every
``world_size``-th text and yields the same number of batches. The stream's position
(the epoch in progress and the batches it has yielded) is saved and restored, so a
resumed run goes on with the very batches of a run never interrupted.

`LanguageModelData` is the Lightning DataModule of a pretraining run: its `setup`
learns the tokenizer (unless one is given), scans the corpus once and builds the stream;
``train_dataloader`` / ``val_dataloader`` are the loaders `lstmkit.training.fit` trains with.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset

from lstmkit.data.corpus import TextCorpus
from lstmkit.data.text_batches import pad_batch
from lstmkit.data.tokenize import UNK_ID, TextTokenizer, TokenizerConfig
from lstmkit.errors import LstmkitError
from lstmkit.tasks.language_model.settings import PretrainSettings

#: every this-many-th text of the corpus is held out for validation (up to val_texts)
VAL_EVERY = 100
#: pieces a long text is cut into are at most this long when max_length is 0 (no limit)
_PIECE_WITHOUT_LIMIT = 400
#: characters tokenised per call (bounds the tokenizer's transient memory; ids are the same)
_ENCODE_CHARS = 1 << 20


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


class LanguageModelData(L.LightningDataModule):
    """A corpus made ready for pretraining (Lightning DataModule).

    `setup` learns the tokenizer from the corpus with ``tokenizer_config`` (unless a
    ``tokenizer`` is given), scans the corpus once (`scan_corpus`: counts, validation
    pieces) and builds the training `LanguageModelStream` for ``world_size`` processes;
    it runs once (a second call does nothing) and refuses a corpus that leaves nothing
    to train on. After it: ``tokenizer``, ``stats``, ``stream`` and the seconds the
    tokenizer and the scan took.
    """

    def __init__(
        self,
        corpus: TextCorpus,
        tokenizer_config: TokenizerConfig,
        settings: PretrainSettings,
        *,
        tokenizer: TextTokenizer | None = None,
        world_size: int = 1,
    ) -> None:
        super().__init__()
        self.corpus = corpus
        self.tokenizer_config = tokenizer_config
        self.settings = settings
        self.tokenizer = tokenizer
        self.world_size = world_size
        self.stats: CorpusStats | None = None
        self.stream: LanguageModelStream | None = None
        self.tokenizer_seconds = 0.0
        self.scan_seconds = 0.0

    def setup(self, stage: str | None = None) -> None:
        if self.stream is not None:
            return
        start = time.perf_counter()
        if self.tokenizer is None:
            self.tokenizer = TextTokenizer.train(self.corpus, self.tokenizer_config)
        self.tokenizer_seconds = time.perf_counter() - start
        start = time.perf_counter()
        stats = scan_corpus(self.corpus, self.tokenizer, self.settings.val_texts)
        self.scan_seconds = time.perf_counter() - start
        if stats.train_pieces < 1:
            raise LstmkitError(
                f"the corpus ({self.corpus.describe}) leaves no text to train on after "
                f"holding out {stats.val_texts} for validation; give more texts or set "
                "val_texts=0"
            )
        self.stats = stats
        self.stream = LanguageModelStream(
            self.corpus, self.tokenizer, stats, self.settings, world_size=self.world_size
        )

    def _ready(self) -> tuple[CorpusStats, LanguageModelStream]:
        if self.stats is None or self.stream is None:
            raise RuntimeError("call setup() first")
        return self.stats, self.stream

    def train_dataloader(self) -> StreamLoader:
        return StreamLoader(self._ready()[1])

    def val_dataloader(self) -> DataLoader | None:  # type: ignore[override]
        return validation_loader(self._ready()[0], self.settings.batch_size * 2)
