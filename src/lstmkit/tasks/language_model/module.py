"""`LanguageModelModule`: the LightningModule that pretrains a `LanguageModelNet`.

Beyond the base's logging it sets the stream's epoch (so a resumed run draws the same
batches), enforces the wall-time budget (``max_minutes``), records the training curve
(tokens seen, loss, seconds every `LOG_EVERY` steps) and keeps its bookkeeping and the
stream's position in every checkpoint, so a run killed mid-epoch and resumed ends with
the same weights and history as one never interrupted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from lstmkit.tasks.language_model.network import LanguageModelNet
from lstmkit.tasks.language_model.settings import PretrainSettings
from lstmkit.tasks.language_model.stream import LanguageModelStream
from lstmkit.training import LstmkitModule
from lstmkit.training.settings import fused_adam

#: training steps per row of the training curve
LOG_EVERY = 20


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
        last = batch_idx + 1 >= self.trainer.num_training_batches
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
        params = list(self.parameters())
        opt = torch.optim.Adam(
            params,
            lr=config.lr,
            weight_decay=config.weight_decay,
            **fused_adam(params, config.precision),
        )
        if self.settings.lr_decay == "none":
            return opt
        total = max(int(self.trainer.estimated_stepping_batches), 1)

        def factor(step: int) -> float:
            # linear to 0 over the epochs, or over the time budget when it ends sooner
            return max(0.0, 1.0 - max(step / total, self._budget_fraction()))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
