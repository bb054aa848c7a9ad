"""The text classifier's LightningModule: one training/validation step, metrics, optimiser.

`TextClassifierModule` wraps a `TextClassifierNet` for `lstmkit.training.fit`: it logs
``train_loss``/``train_acc`` and ``val_loss``/``val_acc`` per epoch (synchronised across
processes under DDP), calls an optional ``on_epoch`` callback with each epoch's metrics,
and builds the optimiser with an optional linear learning-rate decay.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import lightning as L
import torch
from torch import Tensor

from lstmkit.tasks.text_classification.network import TextClassifierNet
from lstmkit.tasks.text_classification.settings import TextClassifierConfig


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
