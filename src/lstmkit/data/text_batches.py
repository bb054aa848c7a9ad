"""Batches of token-id sequences for the text classifier: length bucketing and padding.

`BucketBatchSampler` groups sequences of similar length into the same batch
(shuffled within large random pools, then the batches shuffled), so a padded
batch wastes few steps; `pad_batch` right-pads with id 0 and returns the real
``lengths`` that `lstmkit.nn.LSTM` uses to skip the padding exactly.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler, SequentialSampler

from lstmkit.data.tokenize import PAD_ID


class TokenDataset(Dataset):
    """Token-id sequences with optional integer labels."""

    def __init__(self, ids: Sequence[Sequence[int]], labels: Sequence[int] | None = None) -> None:
        if labels is not None and len(labels) != len(ids):
            raise ValueError(f"{len(ids)} sequences but {len(labels)} labels")
        self.ids = ids
        self.labels = labels
        self.lengths = np.array([len(s) for s in ids], dtype=np.int64)
        #: settings `BucketBatchSampler` reads when Lightning rebuilds it (shuffle, seed)
        self.bucketing: dict[str, object] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[Sequence[int], int]:
        label = -1 if self.labels is None else int(self.labels[index])
        return self.ids[index], label


def pad_batch(items: Sequence[tuple[Sequence[int], int]]) -> dict[str, torch.Tensor]:
    """Collate ``(ids, label)`` pairs.

    Returns {"ids": (batch, max_len) int64 right-padded with 0, "lengths": (batch,) int64,
    "labels": (batch,) int64 (-1 when unlabelled)}.
    """
    lengths = torch.tensor([len(ids) for ids, _ in items], dtype=torch.int64)
    width = int(lengths.max()) if len(items) else 0
    batch = torch.full((len(items), width), PAD_ID, dtype=torch.int64)
    for row, (ids, _) in enumerate(items):
        batch[row, : len(ids)] = torch.as_tensor(ids, dtype=torch.int64)
    labels = torch.tensor([label for _, label in items], dtype=torch.int64)
    return {"ids": batch, "lengths": lengths, "labels": labels}


class EpochSampler(SequentialSampler):
    """`SequentialSampler` that remembers the epoch Lightning gives it (``set_epoch``).

    `BucketBatchSampler` shuffles with the seed + that epoch, so a run resumed from a
    checkpoint draws the same batch order as an uninterrupted one (its own counter
    would start again at 0). ``epoch`` is None until ``set_epoch`` is called.
    """

    def __init__(self, data_source: Sequence) -> None:
        super().__init__(data_source)
        self.epoch: int | None = None

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of every training epoch."""
        self.epoch = epoch


class BucketBatchSampler(BatchSampler):
    """Batches of indices whose sequences have similar lengths.

    The indices are those of ``sampler`` (a `SequentialSampler` over the dataset in one
    process; under DDP, Lightning rebuilds this class around its `DistributedSampler`, so
    each process batches its own share). With ``shuffle`` the indices are shuffled, cut
    into pools of ``batch_size * pool_batches``, sorted by length inside each pool and
    cut into batches, and the batch order is shuffled; a new order every epoch (seeded
    by ``seed`` + epoch). Without ``shuffle`` the indices are sorted by length (longest
    first): deterministic, the least padding.

    ``lengths``, ``shuffle``, ``seed`` and ``pool_batches`` default to the
    ``bucketing`` settings of the sampler's `TokenDataset`, which is how they survive
    Lightning's rebuild (it passes only ``sampler``, ``batch_size`` and ``drop_last``).
    """

    def __init__(
        self,
        sampler: Sampler[int],
        batch_size: int,
        drop_last: bool = False,
        *,
        lengths: Sequence[int] | None = None,
        shuffle: bool | None = None,
        seed: int | None = None,
        pool_batches: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        dataset = getattr(sampler, "dataset", None) or getattr(sampler, "data_source", None)
        saved = getattr(dataset, "bucketing", {})
        if lengths is None:
            lengths = getattr(dataset, "lengths", None)
            if lengths is None:
                raise ValueError("lengths not given and the sampler's dataset has none")
        self.sampler = sampler
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.drop_last = False  # every text is used; the last batch may be short
        self.shuffle = saved.get("shuffle", True) if shuffle is None else shuffle
        self.seed = saved.get("seed", 0) if seed is None else seed
        pool_batches = saved.get("pool_batches", 50) if pool_batches is None else pool_batches
        self.pool = batch_size * pool_batches
        self.epoch = 0

    def __len__(self) -> int:
        return (len(self.sampler) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        indices = np.fromiter(iter(self.sampler), dtype=np.int64)
        n = len(indices)
        if not self.shuffle:
            order = indices[np.argsort(-self.lengths[indices], kind="stable")]
            for i in range(0, n, self.batch_size):
                yield order[i : i + self.batch_size].tolist()
            return
        # the epoch Lightning set on the index sampler (EpochSampler, DistributedSampler)
        # wins over this sampler's own count of passes, so a resumed run repeats the order
        epoch = getattr(self.sampler, "epoch", None)
        rng = np.random.default_rng(self.seed + (self.epoch if epoch is None else epoch))
        self.epoch += 1
        perm = indices[rng.permutation(n)]
        batches = []
        for start in range(0, n, self.pool):
            pool = perm[start : start + self.pool]
            pool = pool[np.argsort(-self.lengths[pool], kind="stable")]
            batches.extend(
                pool[i : i + self.batch_size] for i in range(0, len(pool), self.batch_size)
            )
        for b in rng.permutation(len(batches)):
            yield batches[b].tolist()


def make_loader(
    ids: Sequence[Sequence[int]],
    labels: Sequence[int] | None,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int = 0,
    bucket: bool = True,
) -> DataLoader:
    """A DataLoader of padded batches (dicts from `pad_batch`), bucketed by length.

    Works in one process and under DDP (see `BucketBatchSampler`).
    """
    data = TokenDataset(ids, labels)
    if bucket:
        data.bucketing = {"shuffle": shuffle, "seed": seed}
        sampler = BucketBatchSampler(EpochSampler(data), batch_size)
        return DataLoader(data, batch_sampler=sampler, collate_fn=pad_batch)
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(
        data, batch_size=batch_size, shuffle=shuffle, generator=gen, collate_fn=pad_batch
    )
