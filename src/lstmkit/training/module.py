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

    def step_metrics(self, batch: Any) -> dict[str, Tensor]:
        """The loss (key ``"loss"``, differentiable) and any other metric of one batch."""
        raise NotImplementedError

    def batch_size(self, batch: Any) -> int | None:
        """Items in ``batch`` (weights the epoch means); None lets Lightning infer it."""
        return None

    def _log_step(self, batch: Any, split: str) -> Tensor:
        metrics = self.step_metrics(batch)
        n = self.batch_size(batch)
        # "objective": what to minimise where it is more than the logged loss (not logged)
        objective = metrics.pop("objective", metrics["loss"])
        for name, value in metrics.items():
            self.log(f"{split}_{name}", value, on_step=False, on_epoch=True, sync_dist=True,
                     batch_size=n, prog_bar=self.show_in_progress_bar)  # fmt: skip
        return objective

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        return self._log_step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> Tensor:
        return self._log_step(batch, "val")

    def configure_optimizers(self) -> Any:
        if self.train_config is None:
            raise RuntimeError("train with lstmkit.training.fit, which sets train_config")
        opt = build_optimizer(self.parameters(), self.train_config)
        if self.train_config.lr_decay == "none":
            return opt
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: max(0.0, 1 - step / total))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
