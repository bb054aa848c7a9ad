"""`LstmkitModule`: the LightningModule base class of every lstmkit task.

It owns what all tasks share: the optimiser (and optional linear learning-rate
decay) built from the `TrainConfig` that `lstmkit.training.fit` hands it, and
the logging of the per-epoch metrics the trainer's history and early stopping
read (``train_loss``, ``val_loss``, and any ``train_<name>`` / ``val_<name>``).
A task subclass implements only `step_metrics` (and its ``forward``).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities.data import extract_batch_size
from torch import Tensor

from lstmkit.training.settings import TrainConfig, build_optimizer


class LstmkitModule(L.LightningModule):
    """Base class: subclasses implement ``step_metrics(batch) -> {"loss": ..., ...}``.

    ``train_config`` is set by `lstmkit.training.fit` before training; it picks the
    optimiser, learning rate, weight decay and ``lr_decay``.
    """

    #: show the logged metrics in the progress bar too
    show_in_progress_bar: bool = False

    def __init__(self) -> None:
        super().__init__()
        self.train_config: TrainConfig | None = None
        # split -> ((epoch, sanity check), {metric: sum of value x items}, [items]): the
        # epoch's sums so far, logged once at its end (`_flush`)
        self._epoch_sums: dict[str, tuple[tuple[int, bool], dict[str, Tensor], list[int]]] = {}

    def __setattr__(self, name: str, value: Any) -> None:
        # Lightning sets _current_fx_name around every hook it calls, 44 times a training
        # step: a plain attribute, never a parameter, buffer or module, so it skips
        # nn.Module's checks (as Lightning's own _ResultMetric does for all of its)
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def step_metrics(self, batch: Any) -> dict[str, Tensor]:
        """The loss (key ``"loss"``, differentiable) and any other metric of one batch."""
        raise NotImplementedError

    def batch_size(self, batch: Any) -> int | None:
        """Items in ``batch`` (weights the epoch means); None lets Lightning infer it."""
        return None

    def _log_step(self, batch: Any, split: str) -> Tensor:
        """`step_metrics` of ``batch``, added to the epoch's sums of ``split`` (the
        ``<split>_<name>`` epoch means are logged once, at the epoch's end: `_flush`);
        returns what to minimise."""
        metrics = self.step_metrics(batch)
        n = self.batch_size(batch)
        if n is None:
            n = extract_batch_size(batch)
        # "objective": what to minimise where it is more than the logged loss (not logged)
        objective = metrics.pop("objective", metrics["loss"])
        tag = (self.trainer.current_epoch, self.trainer.sanity_checking)
        if split not in self._epoch_sums or self._epoch_sums[split][0] != tag:
            self._epoch_sums[split] = (tag, {}, [0])
        _, sums, count = self._epoch_sums[split]
        for name, value in metrics.items():
            part = torch.as_tensor(value).detach().float() * n
            sums[name] = sums[name] + part if name in sums else part
        count[0] += n
        return objective

    def _flush(self, split: str) -> None:
        """Log the means of the sums `_log_step` gathered for ``split`` and start new sums:
        one Lightning ``log`` a metric and epoch, weighted by its items and averaged over
        the processes as Lightning's epoch means are, so the same numbers as a ``log``
        every step, which cost about 0.3 ms a step (Lightning walks the metric's state on
        every call; a small forecaster's whole step is under 2 ms)."""
        _, sums, count = self._epoch_sums.pop(split, ((0, False), {}, [0]))
        for name, total in sums.items():
            mean = total / count[0]
            self.log(f"{split}_{name}", mean, on_step=False, on_epoch=True, sync_dist=True,
                     batch_size=count[0], prog_bar=self.show_in_progress_bar)  # fmt: skip

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        return self._log_step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> Tensor:
        return self._log_step(batch, "val")

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        # after the callbacks' (a stop they ask for is seen), before validation and the
        # epoch's end, where the history and early stopping read the means
        trainer = self.trainer
        last = trainer.is_last_batch or batch_idx + 1 >= trainer.num_training_batches
        if last or trainer.should_stop:
            self._flush("train")

    def on_train_epoch_end(self) -> None:
        self._flush("train")  # sums an epoch cut short left (nothing after the last batch)

    def on_validation_epoch_end(self) -> None:
        self._flush("val")

    def configure_optimizers(self) -> Any:
        if self.train_config is None:
            raise RuntimeError("train with lstmkit.training.fit, which sets train_config")
        opt = build_optimizer(self.parameters(), self.train_config)
        if self.train_config.lr_decay == "none":
            return opt
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: max(0.0, 1 - step / total))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
