"""The text classifier's LightningModule: the loss and accuracy of one batch.

`TextClassifierModule` wraps a `TextClassifierNet` for `lstmkit.training.fit`. It is a
`lstmkit.training.LstmkitModule`, which owns the optimiser, the optional linear
learning-rate decay (both from the `TrainConfig` that
`TextClassifierConfig.train_config` builds) and the per-epoch logging of
``train_loss``/``train_acc`` and ``val_loss``/``val_acc`` (synchronised across
processes under DDP). This module adds only the step's metrics and an optional
``on_epoch`` callback with each epoch's metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import Tensor

from lstmkit.tasks.text_classification.network import TextClassifierNet
from lstmkit.tasks.text_classification.settings import TextClassifierConfig
from lstmkit.training import LstmkitModule


class TextClassifierModule(LstmkitModule):
    """Trains a `TextClassifierNet`: logs train_loss/train_acc and val_loss/val_acc per epoch.

    A batch is a dict with ``ids`` (batch, time) int64, ``lengths`` (batch,) int64 and
    ``labels`` (batch,) int64 class indices (see `lstmkit.data.text_batches`).
    """

    show_in_progress_bar = True

    def __init__(
        self,
        net: TextClassifierNet,
        config: TextClassifierConfig,
        on_epoch: Callable[[dict[str, float]], None] | None = None,
        class_weights: Tensor | None = None,
    ):
        super().__init__()
        self.net = net
        self.config = config
        self.on_epoch = on_epoch
        self._epoch_start = time.perf_counter()
        #: (classes,) weights of the loss (see TextClassifierConfig.class_weight), or None;
        #: a non-persistent buffer, so it follows the device and stays out of checkpoints
        self.class_weights: Tensor | None
        weights = None if class_weights is None else torch.as_tensor(class_weights).float()
        self.register_buffer("class_weights", weights, persistent=False)

    def on_train_epoch_start(self) -> None:
        self._epoch_start = time.perf_counter()

    def on_train_epoch_end(self) -> None:
        if self.on_epoch is not None and not self.trainer.sanity_checking:
            row = {k: float(v) for k, v in self.trainer.callback_metrics.items()}
            row["epoch"] = self.current_epoch
            row["seconds"] = time.perf_counter() - self._epoch_start
            self.on_epoch(row)

    def step_metrics(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """{"loss": cross-entropy (differentiable), "acc": share of correct predictions}."""
        logits = self.net(batch["ids"], batch["lengths"])
        loss = self.net.loss(logits, batch["labels"], self.class_weights)
        pred = self.net.probabilities(logits).argmax(-1)
        acc = (pred == batch["labels"]).float().mean()
        return {"loss": loss, "acc": acc}

    def batch_size(self, batch: dict[str, Tensor]) -> int:
        """Texts in ``batch`` (the epoch means weight batches by it)."""
        return int(batch["ids"].shape[0])
