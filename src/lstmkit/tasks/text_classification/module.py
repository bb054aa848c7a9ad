"""The text classifier's LightningModule: the loss and accuracy of one batch.

`TextClassifierModule` wraps a `TextClassifierNet` for `lstmkit.training.fit`. It is a
`lstmkit.training.LstmkitModule`, which owns the optimiser, the optional linear
learning-rate decay (both from the `TrainConfig` that
`TextClassifierConfig.train_config` builds) and the per-epoch logging of
``train_loss``/``train_acc`` and ``val_loss``/``val_acc`` (synchronised across
processes under DDP). This module adds only the step's metrics and an optional
``on_epoch`` callback with each epoch's metrics, and the optional adversarial training
on the word vectors (`adversarial_perturbation`, ``config.adversarial``).
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
        """{"loss": cross-entropy (differentiable), "acc": share of correct predictions}.

        In training with ``config.adversarial`` > 0 also "adv_loss", the loss on the
        adversarially moved word vectors, and "objective" = loss + adv_loss (minimised).
        """
        ids, lengths, labels = batch["ids"], batch["lengths"], batch["labels"]
        adversarial = self.training and self.config.adversarial > 0
        vectors = self.net.embedding_dropout(self.net.embedding(ids))
        logits = self.net.from_vectors(vectors, lengths)
        loss = self.net.loss(logits, labels, self.class_weights)
        pred = self.net.probabilities(logits).argmax(-1)
        acc = (pred == labels).float().mean()
        if not adversarial:
            return {"loss": loss, "acc": acc}
        (grad,) = torch.autograd.grad(loss, vectors, retain_graph=True)
        r = adversarial_perturbation(grad, vectors.detach(), lengths, self.config.adversarial)
        adv_loss = self.net.loss(
            self.net.from_vectors(vectors + r, lengths), labels, self.class_weights
        )
        return {"loss": loss, "acc": acc, "adv_loss": adv_loss, "objective": loss + adv_loss}

    def batch_size(self, batch: dict[str, Tensor]) -> int:
        """Texts in ``batch`` (the epoch means weight batches by it)."""
        return int(batch["ids"].shape[0])


def adversarial_perturbation(grad: Tensor, vectors: Tensor, lengths: Tensor, size: float) -> Tensor:
    """The adversarial move of each text's word vectors (Miyato et al. 2017, one step).

    ``grad`` and ``vectors`` are (batch, time, dim); the move of text i is
    ``size * |v_i| * g_i / |g_i|``, with the L2 norms taken over its real steps (padding
    gets no move and does not count), so ``size`` is a fraction of the text's own word
    vectors. A text whose gradient is zero is not moved. Returned detached.
    """
    steps = torch.arange(grad.shape[1], device=grad.device)
    mask = (steps[None, :] < lengths.to(grad.device)[:, None]).unsqueeze(-1).to(grad.dtype)
    g = grad.detach() * mask
    g_norm = g.flatten(1).norm(dim=1)
    v_norm = (vectors.detach() * mask).flatten(1).norm(dim=1)
    scale = torch.where(g_norm > 0, size * v_norm / g_norm.clamp_min(1e-30), 0.0)
    return (g * scale[:, None, None]).detach()
