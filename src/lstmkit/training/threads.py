"""How many CPU threads the training and validation steps use (`TrainConfig.threads`).

A recurrent layer's training step runs one small matrix product per time step, forward
and backward (torch's oneDNN kernel and ours alike), and on a second thread each of them
is a parallel region that wakes the other thread. lstmkit asks OpenMP for passive waiting
(``lstmkit/__init__.py``: spinning threads on shared cores were up to 100x slower), so
every region pays a wake-up, which for a small network costs more than the thread saves.
On the 2-core dev machine (AMD EPYC, AVX-512; `python benchmarks/threads.py`, section
``threads`` of benchmarks/RESULTS.md, 2026-12-07), a training step of an lstmkit layer with
a linear head and Adam took, on two threads against one:

- LSTM 32 x 16 (batch x hidden): 6.3x the time; GRU 32 x 16: 4.2x; LSTM 32 x 64: 4.2x;
  LSTM 32 x 128: 1.8x; BiLSTM 32 x 128 over 200 steps: 1.3x; LSTM 256 x 64: 0.97x;
- LSTM 32 x 256: 0.85x; 64 x 192: 0.84x; 64 x 256: 0.73x; 1024 x 64: 0.67x.

The rule: where a step's product has fewer multiply-adds than `ONE_THREAD_BELOW` (batch x
the elements of the largest ``weight_hh``: 32 x 128 is 2.1 million, 32 x 256 8.4
million), an LSTM or GRU trains on one thread. The xLSTM cells keep torch's count: the
sLSTM kernel runs each thread's rows through the whole sequence (32 x 16: 1.06x on two
threads; 32 x 128: 0.74x) and the mLSTM's chunkwise form is a few large products.
Validation steps follow the same rule with their own batch size, often larger (forward
only, by hand, one run each: an LSTM 16 over 256 windows of 56 steps took 5.2 ms on two
threads against 1.5 ms on one; over 8,192 windows 53 against 71 ms, over 16,384 114-130
against 189-228 ms). Prediction and everything outside the fit keep torch's count.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback
from torch import nn

#: a training step whose recurrent product has fewer multiply-adds than this (batch x
#: the largest ``weight_hh``) runs on one thread: the measured break-even lies between
#: 4.2 million (256 x 64: 0.97x on two threads) and 8.4 million (32 x 256: 0.85x)
ONE_THREAD_BELOW = 2**23


def step_work(module: nn.Module, batch_size: int) -> int | None:
    """Multiply-adds of the largest recurrent product in one time step of ``module``
    (``batch_size`` x the elements of its largest 2-D ``weight_hh``: the LSTM's and
    GRU's); None where it has none (no recurrent layer, or only xLSTM cells)."""
    sizes = [
        p.numel()
        for name, p in module.named_parameters()
        if name.rsplit(".", 1)[-1].startswith("weight_hh") and p.dim() == 2
    ]
    return batch_size * max(sizes) if sizes else None


def batch_size_of(batch: Any) -> int | None:
    """The size of ``batch`` (a tensor, or a tuple, list or dict holding tensors, batch
    first as every lstmkit task has them): the first dimension of the first tensor."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.dim() else None
    items = list(batch.values()) if isinstance(batch, dict) else batch
    if not isinstance(items, (tuple, list)):
        return None
    sizes = (batch_size_of(item) for item in items)
    return next((size for size in sizes if size is not None), None)


def choose_threads(
    requested: int | None, module: nn.Module, batch_size: int | None, count: int | None = None
) -> int:
    """The threads for the steps of ``module`` on batches of ``batch_size``: ``requested``
    when set; otherwise one for a small LSTM or GRU (`ONE_THREAD_BELOW`) and ``count``
    (default: torch's now) for anything else, or when the user set ``OMP_NUM_THREADS``
    (their count stands)."""
    if requested is not None:
        return requested
    count = torch.get_num_threads() if count is None else count
    if count == 1 or "OMP_NUM_THREADS" in os.environ or batch_size is None:
        return count
    work = step_work(module, batch_size)
    return 1 if work is not None and work < ONE_THREAD_BELOW else count


class TrainingThreads(Callback):
    """Runs the training steps and the validation steps each on `choose_threads` threads
    (decided at the first batch of each, whose size it reads: validation batches are
    often larger) and everything else on the count the process trains with; `restore`
    puts back the count torch had before the fit (at its end and after a failure).

    The process's count is read at ``setup``, after Lightning's DDP launchers have given
    each process its share of the cores (and set ``OMP_NUM_THREADS``, which the rule then
    leaves alone), so a worker never goes above its share."""

    def __init__(self, requested: int | None) -> None:
        self.requested = requested
        self.before = self.outside = torch.get_num_threads()
        self.chosen: dict[str, int] = {}

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self.outside = torch.get_num_threads()

    def _use(self, stage: str, module: Any, batch: Any) -> None:
        if stage not in self.chosen:
            self.chosen[stage] = choose_threads(
                self.requested, module, batch_size_of(batch), self.outside
            )
        if torch.get_num_threads() != self.chosen[stage]:
            torch.set_num_threads(self.chosen[stage])

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, idx: int) -> None:
        self._use("train", pl_module, batch)

    def on_validation_batch_start(
        self, trainer: Any, pl_module: Any, batch: Any, idx: int, dataloader_idx: int = 0
    ) -> None:
        self._use("val", pl_module, batch)

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        self._set(self.outside)

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self._set(self.outside)

    def restore(self) -> None:
        """Back to the count torch had before the fit."""
        self._set(self.before)

    @staticmethod
    def _set(count: int) -> None:
        if torch.get_num_threads() != count:
            torch.set_num_threads(count)
