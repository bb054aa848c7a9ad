"""`TextData`: a text classifier's training data as a Lightning DataModule.

The labelled texts arrive validated, with their labels as class ids, already split into
a training and a validation part (`stratified_split` holds out a share of each class).
`TextData.setup` learns the tokenizer on the training texts (or takes a pretrained
encoder's vocabulary, cut to this run's ``max_length`` and ``keep``) and encodes both
parts; ``train_dataloader`` batches the training part bucketed by length and shuffled
per epoch (seeded), ``val_dataloader`` the validation part sorted by length (None
without one); `fingerprint` is the digest a run's checkpoints must match.
"""

from __future__ import annotations

import hashlib
import json
import time

import lightning as L
import numpy as np
from tokenizers import Tokenizer
from torch.utils.data import DataLoader

from lstmkit.data.text import Label
from lstmkit.data.text_batches import make_loader
from lstmkit.data.tokenize import TextTokenizer
from lstmkit.tasks.text_classification.settings import TextClassifierConfig

#: texts and their class ids, in order
Part = tuple[list[str], list[int]]


def stratified_split(
    y: list[int], n_classes: int, val_fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """Training and validation indices (each sorted) of the class ids ``y``: a shuffled
    ``val_fraction`` of each class (at least one text of a class with two or more when
    the fraction is above 0) validates, the rest trains."""
    rng = np.random.default_rng(seed)
    train_idx, val_idx = [], []
    y_arr = np.asarray(y)
    for c in range(n_classes):
        idx = np.flatnonzero(y_arr == c)
        rng.shuffle(idx)
        n_val = round(len(idx) * val_fraction)
        if val_fraction > 0 and len(idx) > 1:
            n_val = max(n_val, 1)
        val_idx.extend(idx[:n_val].tolist())
        train_idx.extend(idx[n_val:].tolist())
    return sorted(train_idx), sorted(val_idx)


def data_fingerprint(
    cfg: TextClassifierConfig,
    classes: list[Label],
    tokenizer: TextTokenizer,
    train: Part,
    val: Part,
) -> str:
    """SHA-256 (hex) of what a text training run learns from: its settings, classes,
    tokenizer and the training and validation texts with their labels, in order.

    Recorded in the run's checkpoints, so a checkpoint of other data or settings is
    refused instead of resumed (see `lstmkit.training.fit`).
    """
    h = hashlib.sha256()
    h.update(json.dumps({"config": cfg.to_dict(), "classes": classes}, sort_keys=True).encode())
    h.update(tokenizer.to_json().encode("utf-8"))
    for name, (texts, labels) in (("train", train), ("val", val)):
        h.update(f"{name}:{len(texts)}".encode())
        for text, label in zip(texts, labels, strict=True):
            h.update(f"{label}:{len(text)}:".encode())
            h.update(text.encode("utf-8", "surrogatepass"))
    return h.hexdigest()


class TextData(L.LightningDataModule):
    """The ``train`` and ``val`` parts (texts, class ids) of a fit with settings ``cfg``.

    ``vocabulary``: a pretrained encoder's tokenizer to use instead of learning one.
    After `setup` (which runs once): ``tokenizer``, the token ids ``train_ids`` /
    ``val_ids``, ``tokenizer_seconds`` and ``train_tokens`` (tokens per epoch).
    """

    def __init__(
        self,
        cfg: TextClassifierConfig,
        classes: list[Label],
        train: Part,
        val: Part,
        *,
        vocabulary: Tokenizer | None = None,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.classes = classes
        self.train, self.val = train, val
        self.vocabulary = vocabulary
        self.tokenizer: TextTokenizer | None = None
        self.train_ids: list[list[int]] = []
        self.val_ids: list[list[int]] = []
        self.tokenizer_seconds = 0.0

    def setup(self, stage: str | None = None) -> None:
        if self.tokenizer is not None:
            return
        start = time.perf_counter()
        if self.vocabulary is not None:  # its vocabulary, cut to this run's max_length and keep
            self.tokenizer = TextTokenizer(self.cfg.tokenizer, self.vocabulary)
        else:
            self.tokenizer = TextTokenizer.train(self.train[0], self.cfg.tokenizer)
        self.tokenizer_seconds = time.perf_counter() - start
        self.train_ids = self.tokenizer.encode(self.train[0])
        self.val_ids = self.tokenizer.encode(self.val[0]) if self.val[0] else []

    @property
    def train_tokens(self) -> int:
        """Tokens of the training part (one epoch)."""
        return int(sum(len(s) for s in self.train_ids))

    def train_dataloader(self) -> DataLoader:
        cfg = self.cfg
        return make_loader(self.train_ids, self.train[1], cfg.batch_size, shuffle=True,
                           seed=cfg.seed)  # fmt: skip

    def val_dataloader(self) -> DataLoader | None:  # type: ignore[override]
        if not self.val_ids:
            return None
        return make_loader(self.val_ids, self.val[1], self.cfg.batch_size * 2, shuffle=False)

    def fingerprint(self) -> str:
        """`data_fingerprint` of this data (after `setup`)."""
        assert self.tokenizer is not None, "call setup() first"
        return data_fingerprint(self.cfg, self.classes, self.tokenizer, self.train, self.val)
