"""Build and run a Lightning Trainer for any lstmkit LightningModule.

Contract with the module: it logs ``train_loss`` (``on_epoch=True``) in
``training_step`` and ``val_loss`` in ``validation_step``; any other metric
logged with ``on_epoch=True`` (e.g. ``train_acc`` / ``val_acc``) shows up in
the history. Under DDP, log with ``sync_dist=True`` so every rank sees the
same validation loss.
"""

from __future__ import annotations

import copy
import logging
import math
import time
import types
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from torch.utils.data import DataLoader

from lstmkit.config import dataclass_from_dict
from lstmkit.errors import LstmkitError

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "rmsprop": torch.optim.RMSprop}


@dataclass
class TrainConfig:
    """How to train: optimiser, stopping, seeding, hardware. Round-trips through JSON.

    ``checkpoint_dir`` enables resuming: ``last.ckpt`` is written there every
    epoch and a later `fit` with the same directory continues from it.
    """

    max_epochs: int = 100
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"
    gradient_clip_val: float | None = 1.0
    early_stopping_patience: int | None = 10
    seed: int = 0
    accelerator: str = "cpu"
    devices: int | str = 1
    strategy: str = "auto"
    num_nodes: int = 1
    progress_bar: bool = True
    deterministic: bool = True
    checkpoint_dir: str | None = None

    def __post_init__(self) -> None:
        if self.optimizer.lower() not in OPTIMIZERS:
            raise LstmkitError(
                f"optimizer must be one of {sorted(OPTIMIZERS)}, got {self.optimizer!r}"
            )
        if self.max_epochs < 1:
            raise LstmkitError(f"max_epochs must be at least 1, got {self.max_epochs}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of `to_dict`; unknown keys are rejected."""
        return dataclass_from_dict(cls, data, "TrainConfig")


@dataclass
class FitResult:
    """Outcome of `fit`.

    history: one dict per epoch: ``epoch``, ``train_loss``, ``val_loss`` and any
    other ``train_<name>`` / ``val_<name>`` metric the module logged per epoch.
    """

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_val_loss: float = math.nan
    epochs_run: int = 0
    fit_seconds: float = 0.0
    world_size: int = 1

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict."""
        return asdict(self)


def build_optimizer(params: Any, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser named in ``config`` over ``params`` with its lr and weight decay."""
    cls = OPTIMIZERS[config.optimizer.lower()]
    return cls(params, lr=config.lr, weight_decay=config.weight_decay)


def _configure_optimizers(self: L.LightningModule) -> torch.optim.Optimizer:
    return build_optimizer(self.parameters(), self._lstmkit_train_config)


class _HistoryAndBest(Callback):
    """Records per-epoch metrics and keeps the best weights in memory.

    The best weights are loaded back into the module at the end of fit (in every
    process, so spawn-based strategies also return them). Its state goes into
    checkpoints, so a resumed run keeps its history and best weights.
    """

    def __init__(self, monitor: str) -> None:
        self.monitor = monitor
        self.history: list[dict[str, float]] = []
        self.best_score = math.inf
        self.best_epoch = -1
        self.best_state: dict[str, torch.Tensor] | None = None

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        row: dict[str, float] = {"epoch": trainer.current_epoch}
        for name, value in trainer.callback_metrics.items():
            if name.endswith("_step"):
                continue
            key = name[: -len("_epoch")] if name.endswith("_epoch") else name
            row[key] = float(value)
        self.history.append(row)
        score = row.get(self.monitor, math.nan)
        if math.isfinite(score) and score < self.best_score:
            self.best_score = score
            self.best_epoch = trainer.current_epoch
            self.best_state = copy.deepcopy(
                {k: v.detach().cpu() for k, v in pl_module.state_dict().items()}
            )

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.best_state is not None:
            pl_module.load_state_dict(self.best_state)

    def state_dict(self) -> dict[str, Any]:
        return {
            "history": self.history,
            "best_score": self.best_score,
            "best_epoch": self.best_epoch,
            "best_state": self.best_state,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict["history"])
        self.best_score = state_dict["best_score"]
        self.best_epoch = state_dict["best_epoch"]
        self.best_state = state_dict["best_state"]


# Lightning warnings that say nothing actionable about an lstmkit run.
_BENIGN_WARNINGS = (
    r".*isinstance\(treespec, LeafSpec\)",  # lightning 2.6 on torch 2.13 internals
    r".*defined a `validation_step` but have no `val_dataloader`",
    r".*does not have many workers which may be a bottleneck",
    r".*is smaller than the logging interval",
    r".*Checkpoint directory .* exists and is not empty",
)


@contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Hide Lightning's benign warnings and its info lines (GPU available, tips)."""
    names = ["lightning.pytorch", "lightning.fabric", "lightning"]
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            for pattern in _BENIGN_WARNINGS:
                warnings.filterwarnings("ignore", message=pattern)
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _process_group_initialized() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def fit(
    module: L.LightningModule,
    train_loader: DataLoader,
    val_loader: DataLoader | None,
    config: TrainConfig,
) -> FitResult:
    """Train ``module`` and restore its best weights.

    Args:
        module: a LightningModule logging ``train_loss`` and ``val_loss``. If it
            does not define ``configure_optimizers``, one is built from ``config``.
        train_loader: batches for ``training_step``.
        val_loader: batches for ``validation_step``; without it early stopping
            and best-weights selection use ``train_loss``.
        config: see `TrainConfig`.

    Returns:
        `FitResult` with the per-epoch history, best epoch and loss, epochs run
        and wall-clock seconds.
    """
    monitor = "val_loss" if val_loader is not None else "train_loss"
    own_opt = "configure_optimizers" in {
        name
        for klass in type(module).__mro__
        if klass not in L.LightningModule.__mro__
        for name in vars(klass)
    }
    if not own_opt:
        module._lstmkit_train_config = config
        module.configure_optimizers = types.MethodType(_configure_optimizers, module)

    L.seed_everything(config.seed, workers=True, verbose=False)
    tracker = _HistoryAndBest(monitor)
    callbacks: list[Callback] = [tracker]
    if config.early_stopping_patience is not None:
        callbacks.append(
            EarlyStopping(monitor=monitor, patience=config.early_stopping_patience, mode="min")
        )
    ckpt_path = None
    if config.checkpoint_dir is not None:
        ckpt_dir = Path(config.checkpoint_dir)
        callbacks.append(
            ModelCheckpoint(dirpath=ckpt_dir, save_last=True, save_top_k=0, every_n_epochs=1)
        )
        if (ckpt_dir / "last.ckpt").exists():
            ckpt_path = str(ckpt_dir / "last.ckpt")

    # Lightning's deterministic=True switches torch's global flag on for good; put it back.
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    had_process_group = _process_group_initialized()
    with _quiet_lightning():
        try:
            trainer = L.Trainer(
                max_epochs=config.max_epochs,
                accelerator=config.accelerator,
                devices=config.devices,
                strategy=config.strategy,
                num_nodes=config.num_nodes,
                gradient_clip_val=config.gradient_clip_val,
                deterministic=config.deterministic,
                enable_progress_bar=config.progress_bar,
                enable_model_summary=False,
                enable_checkpointing=config.checkpoint_dir is not None,
                logger=False,
                callbacks=callbacks,
                num_sanity_val_steps=0,
                log_every_n_steps=1,
                default_root_dir=config.checkpoint_dir,
            )
            start = time.perf_counter()
            trainer.fit(module, train_loader, val_loader, ckpt_path=ckpt_path)
        except MisconfigurationException as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise LstmkitError(
                f"cannot train with accelerator={config.accelerator!r}, "
                f"devices={config.devices!r}, strategy={config.strategy!r}: {first}"
            ) from None
        finally:
            torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
            if not own_opt:
                del module.configure_optimizers
                del module._lstmkit_train_config
        seconds = time.perf_counter() - start

    # A process group Lightning set up for this fit (DDP) is torn down here, on
    # success only: left to interpreter exit, gloo's worker threads can abort the
    # process ("terminate called without an active exception"). After a failure,
    # a collective destroy could wait forever on a rank that is gone.
    if not had_process_group and _process_group_initialized():
        torch.distributed.destroy_process_group()

    return FitResult(
        history=tracker.history,
        best_epoch=tracker.best_epoch,
        best_val_loss=tracker.best_score,
        epochs_run=len(tracker.history),
        fit_seconds=seconds,
        world_size=trainer.world_size,
    )
