"""Build and run a Lightning Trainer for any lstmkit LightningModule.

Contract with the module: it logs ``train_loss`` (``on_epoch=True``) in
``training_step`` and ``val_loss`` in ``validation_step``; any other metric
logged with ``on_epoch=True`` (e.g. ``train_acc`` / ``val_acc``) shows up in
the history. Under DDP, log with ``sync_dist=True`` so every rank sees the
same validation loss.

Resuming (``checkpoint_dir``): Lightning's `ModelCheckpoint` writes
``last.ckpt`` atomically at the end of every epoch (and every
``checkpoint_every_n_steps`` optimiser steps if set, except after an epoch's last
batch, which the end-of-epoch checkpoint covers). The checkpoint holds the
random-number states, the history, early-stopping state and a fingerprint of
the run (the module's parameter shapes, the training settings except
``max_epochs`` and the training/validation tensors, plus whatever the task
adds). A later `fit` with the same directory resumes from it when the
fingerprint matches, so a killed run rerun with the same command ends with the
same model as an uninterrupted one; a checkpoint of another run (other data or
settings), a damaged file or a file not written by lstmkit is refused with one
`LstmkitError` line (delete it or use another directory to start afresh). The
checkpoint is kept after the fit: rerunning a finished fit returns the same
model without training, and a larger ``max_epochs`` continues it.

Divergence is an error, not a warning: a loss that became NaN or infinite, or a
training loss that stays far above the loss of the first batch (`check_diverged`), raises
`LstmkitError` saying to lower the learning rate, so no model worse than an
untrained one is saved or scored as if it were a result.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import os
import random
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

from lstmkit.config import check_field_types, dataclass_from_dict
from lstmkit.errors import LstmkitError

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "rmsprop": torch.optim.RMSprop}
PRECISIONS = ("32", "32-true", "64", "64-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true")
LOGGERS = ("csv", "tensorboard")
CHECKPOINT_FILE = "last.ckpt"
# Settings that may change between a killed run and its resumption.
_RESUMABLE_SETTINGS = ("max_epochs", "progress_bar", "checkpoint_dir", "logger", "log_dir")


@dataclass
class TrainConfig:
    """How to train: optimiser, stopping, seeding, hardware. Round-trips through JSON.

    ``checkpoint_dir`` enables resuming: ``last.ckpt`` is written there every
    epoch (and every ``checkpoint_every_n_steps`` steps if set, for long
    epochs) and a later `fit` of the same run with the same directory continues
    from it (see the module docstring). ``precision`` is Lightning's
    (``"32"``, ``"bf16-mixed"``, ``"16-mixed"``, ...). ``logger``: ``None``,
    ``"csv"`` or ``"tensorboard"`` (Lightning's loggers, written under
    ``log_dir``, default ``lightning_logs``). ``lr_decay``: ``"none"`` or
    ``"linear"`` (to 0 over the whole run; `LstmkitModule` applies it).
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
    checkpoint_every_n_steps: int | None = None
    precision: str = "32"
    logger: str | None = None
    log_dir: str | None = None
    lr_decay: str = "none"

    def __post_init__(self) -> None:
        if isinstance(self.precision, int) and not isinstance(self.precision, bool):
            self.precision = str(self.precision)
        check_field_types(self, "training")
        if self.optimizer.lower() not in OPTIMIZERS:
            raise LstmkitError(
                f"optimizer must be one of {sorted(OPTIMIZERS)}, got {self.optimizer!r}"
            )
        if self.max_epochs < 1:
            raise LstmkitError(f"max_epochs must be at least 1, got {self.max_epochs}")
        if not self.lr > 0:
            raise LstmkitError(f"lr (learning rate) must be a positive number, got {self.lr}")
        if self.weight_decay < 0:
            raise LstmkitError(f"weight_decay must be 0 or more, got {self.weight_decay}")
        if self.gradient_clip_val is not None and self.gradient_clip_val < 0:
            raise LstmkitError(
                f"gradient_clip_val must be 0 or more (0 or None: no clipping), "
                f"got {self.gradient_clip_val}"
            )
        if self.early_stopping_patience is not None and self.early_stopping_patience < 1:
            raise LstmkitError(
                f"early_stopping_patience must be 1 or more or None, "
                f"got {self.early_stopping_patience}"
            )
        if self.checkpoint_every_n_steps is not None and self.checkpoint_every_n_steps < 1:
            raise LstmkitError(
                f"checkpoint_every_n_steps must be 1 or more or None, "
                f"got {self.checkpoint_every_n_steps}"
            )
        if self.precision not in PRECISIONS:
            raise LstmkitError(
                f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        if self.lr_decay not in ("none", "linear"):
            raise LstmkitError(f"lr_decay must be 'none' or 'linear', got {self.lr_decay!r}")
        if self.logger is not None and self.logger not in LOGGERS:
            raise LstmkitError(f"logger must be csv, tensorboard or None, got {self.logger!r}")

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
    resumed_from_epoch: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FitResult:
        """Inverse of `to_dict`; unknown keys are refused."""
        return dataclass_from_dict(cls, data, "FitResult")


def build_optimizer(params: Any, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser named in ``config`` over ``params`` with its lr and weight decay."""
    cls = OPTIMIZERS[config.optimizer.lower()]
    return cls(params, lr=config.lr, weight_decay=config.weight_decay)


class _HistoryAndBest(Callback):
    """Records per-epoch metrics and keeps the best weights in memory.

    The best weights are loaded back into the module at the end of fit (in every
    process, so spawn-based strategies also return them). Its state goes into
    checkpoints, so a resumed run keeps its history and best weights.
    """

    def __init__(self, monitor: str, fingerprint: str = "") -> None:
        self.monitor = monitor
        self.fingerprint = fingerprint
        self.history: list[dict[str, float]] = []
        self.best_score = math.inf
        self.best_epoch = -1
        self.best_state: dict[str, torch.Tensor] | None = None
        self.stopped = False  # early stopping had fired when the state was saved
        # the loss of the first training batch, before any update (the divergence check's
        # reference), averaged over the processes
        self.start_loss: float | None = None
        self._trainer: L.Trainer | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._trainer = trainer

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.stopped:  # resumed from the checkpoint of a run that had stopped early
            trainer.should_stop = True

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint["lstmkit"] = {"fingerprint": self.fingerprint}

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if self.start_loss is not None or trainer.current_epoch != 0 or batch_idx != 0:
            return
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor):
            loss = trainer.strategy.reduce(loss.detach().float(), reduce_op="mean")
            self.start_loss = float(loss)

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
        np_state = np.random.get_state()
        return {
            "history": self.history,
            "best_score": self.best_score,
            "best_epoch": self.best_epoch,
            "best_state": self.best_state,
            "stopped": bool(self._trainer is not None and self._trainer.should_stop),
            "start_loss": self.start_loss,
            # random states at the save, so that a resumed run draws what the
            # uninterrupted one would have drawn (batch order, dropout)
            "rng_torch": torch.get_rng_state(),
            "rng_numpy": (
                np_state[0],
                torch.from_numpy(np_state[1].astype(np.int64)),
                *(int(v) if i < 2 else float(v) for i, v in enumerate(np_state[2:])),
            ),
            "rng_python": random.getstate(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict["history"])
        self.best_score = state_dict["best_score"]
        self.best_epoch = state_dict["best_epoch"]
        self.best_state = state_dict["best_state"]
        self.stopped = bool(state_dict.get("stopped", False))
        start = state_dict.get("start_loss")
        # a checkpoint without it (older lstmkit) resumes without the divergence check
        self.start_loss = math.nan if start is None else float(start)
        if "rng_torch" in state_dict:
            torch.set_rng_state(state_dict["rng_torch"])
            name, keys, pos, has_gauss, cached = state_dict["rng_numpy"]
            np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
            random.setstate(state_dict["rng_python"])


class _AtomicCheckpoint(ModelCheckpoint):
    """`ModelCheckpoint` that keeps one ``last.ckpt``, written to a temporary file
    and renamed, so a kill while saving leaves the previous checkpoint intact."""

    def __init__(self, dirpath: Path, every_n_epochs: int = 0, every_n_steps: int = 0) -> None:
        super().__init__(
            dirpath=dirpath,
            filename=CHECKPOINT_FILE[: -len(".ckpt")],
            monitor=None,
            save_top_k=1,
            save_last=False,
            every_n_epochs=every_n_epochs,
            every_n_train_steps=every_n_steps,
            save_on_train_epoch_end=True,
            enable_version_counter=False,
        )

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        # Not after an epoch's last batch: the epoch's end writes its own checkpoint, after
        # validation; one written here would be resumed as a finished epoch whose
        # validation and end-of-epoch hooks never ran (Lightning skips to the next epoch).
        if trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            return
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        tmp = f"{filepath}.tmp-{os.getpid()}"
        trainer.save_checkpoint(tmp, self.save_weights_only)
        if trainer.is_global_zero:
            os.replace(tmp, filepath)
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath


def _hash_tensors(h: Any, loader: DataLoader | None) -> None:
    """Feed the tensors of a loader's `TensorDataset` (or its length) into hash ``h``."""
    if loader is None:
        h.update(b"none")
        return
    data = loader.dataset
    if isinstance(data, TensorDataset):
        for t in data.tensors:
            t = t.detach().cpu().contiguous()
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    else:
        h.update(f"{type(data).__name__}:{len(data)}".encode())  # type: ignore[arg-type]
    h.update(f"batch_size={loader.batch_size}".encode())


def run_fingerprint(
    module: L.LightningModule,
    train_loader: DataLoader,
    val_loader: DataLoader | None,
    config: TrainConfig,
    extra: str = "",
) -> str:
    """SHA-256 (hex) identifying a training run, recorded in its checkpoints.

    Covers the module's class and parameter names and shapes, every `TrainConfig`
    setting but those a resumed run may change (max_epochs, progress bar,
    checkpoint and log folders), the tensors of `TensorDataset` loaders and
    ``extra`` (a task's own digest of its data and settings).
    """
    h = hashlib.sha256()
    h.update(f"{type(module).__module__}.{type(module).__qualname__}".encode())
    for name, t in module.state_dict().items():
        h.update(f"{name}{tuple(t.shape)}".encode())
    settings = {k: v for k, v in config.to_dict().items() if k not in _RESUMABLE_SETTINGS}
    h.update(json.dumps(settings, sort_keys=True).encode())
    _hash_tensors(h, train_loader)
    _hash_tensors(h, val_loader)
    h.update(extra.encode())
    return h.hexdigest()


def check_checkpoint(path: Path, fingerprint: str) -> int:
    """Validate the checkpoint at ``path`` for a run with ``fingerprint``; its epoch.

    Raises `LstmkitError` (one line) when the file is damaged, was not written
    by lstmkit, or belongs to a run with other data or settings.
    """
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, foreign pickle, ... (many types)
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise LstmkitError(
            f"cannot resume from {path}: the file is damaged or not a checkpoint "
            f"({msg[:120]}); delete it to start afresh"
        ) from None
    meta = ckpt.get("lstmkit") if isinstance(ckpt, dict) else None
    if not isinstance(meta, dict) or "fingerprint" not in meta:
        raise LstmkitError(
            f"cannot resume from {path}: it was not written by lstmkit; delete it or "
            "choose another checkpoint folder"
        )
    if meta["fingerprint"] != fingerprint:
        raise LstmkitError(
            f"cannot resume from {path}: it belongs to a run with other data or settings; "
            "delete it or choose another checkpoint folder to start afresh"
        )
    return int(ckpt.get("epoch", 0))


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


def _logger(config: TrainConfig) -> Any:
    """The Lightning logger named in ``config`` (False for none)."""
    if config.logger is None:
        return False
    root = config.log_dir or "lightning_logs"
    if config.logger == "csv":
        from lightning.pytorch.loggers import CSVLogger

        return CSVLogger(root, name="lstmkit")
    try:
        from lightning.pytorch.loggers import TensorBoardLogger

        return TensorBoardLogger(root, name="lstmkit")
    except ModuleNotFoundError:
        raise LstmkitError(
            "logger='tensorboard' needs the tensorboard package, which is not installed; "
            "install it (pip install tensorboard) or use logger='csv'"
        ) from None


#: A run has diverged when even its lowest training loss is this many times the loss at
#: its start (and above `DIVERGED_FLOOR`): it ends far worse than the untrained network.
DIVERGED_FACTOR = 100.0
#: Losses below this never count as diverged (a start loss near 0, e.g. a constant series,
#: would make any rounding noise look like a rise).
DIVERGED_FLOOR = 1.0


def check_diverged(start: float | None, history: list[dict[str, float]], lr: float) -> None:
    """Refuse (one `LstmkitError` line) a run whose training loss never came back near the
    loss of its first batch, ``start``: its lowest epoch ``train_loss`` in ``history`` is
    over `DIVERGED_FACTOR` times ``start`` (and over `DIVERGED_FLOOR`). A learning rate
    far too large (Adam's steps are about ``lr`` whatever the gradient) throws the weights
    away in the first steps, and the loss never recovers. Training loss is compared with
    training loss: a validation part unlike the training data (a level shift) is no sign
    of divergence, and a run that only spikes and recovers keeps its best weights."""
    losses = [row["train_loss"] for row in history if "train_loss" in row]
    if start is None or not math.isfinite(start) or not losses:
        return
    best = min(losses)
    if best > DIVERGED_FACTOR * start and best > DIVERGED_FLOOR:
        raise LstmkitError(
            f"training diverged: the training loss stayed over {DIVERGED_FACTOR:g} times "
            f"its start (lowest epoch mean {best:.3g}, first batch {start:.3g}); lower the "
            f"learning rate (it is {lr:g}) or scale the data"
        )


def check_checkpoint_dir(folder: str | os.PathLike[str], option: str = "checkpoint_dir") -> Path:
    """Refuse, before any work, a checkpoint folder that is a file or cannot be created or
    written (one `LstmkitError` line naming ``option``); returns it as a `Path`."""
    from lstmkit.io import check_writable

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise LstmkitError(f"{option} {folder} is a file; pass a folder")
    check_writable(folder, option)
    return folder


BF16_PRECISIONS = ("bf16-mixed", "bf16-true")


def require_precision_supported(precision: str, accelerator: str = "cpu") -> None:
    """Refuse a bf16 precision on a CPU without native bf16 (one `LstmkitError` line).

    There bf16 products run through generic code tens of times slower than float32, and
    torch's own oneDNN LSTM cannot run under bf16 autocast; see ``lstmkit.nn.cpu``. Other
    accelerators decide for themselves. Estimators call this before any work or output.
    """
    if str(precision) not in BF16_PRECISIONS or accelerator not in ("cpu", "auto"):
        return
    if accelerator == "auto" and torch.cuda.is_available():
        return
    from lstmkit.nn import cpu

    if not cpu.native_bf16():
        raise LstmkitError(
            f"precision {precision} needs a CPU with native bfloat16: "
            f"{cpu.bf16_unsupported_reason()}; use --precision 32 (precision='32')"
        )


def fit(
    module: L.LightningModule,
    train_loader: DataLoader,
    val_loader: DataLoader | None,
    config: TrainConfig,
    fingerprint: str = "",
) -> FitResult:
    """Train ``module`` and restore its best weights.

    Args:
        module: an `LstmkitModule` (its optimiser is built from ``config``) or any
            LightningModule with its own ``configure_optimizers``, logging
            ``train_loss`` and ``val_loss``.
        train_loader: batches for ``training_step``.
        val_loader: batches for ``validation_step``; without it early stopping
            and best-weights selection use ``train_loader``'s loss.
        config: see `TrainConfig`; a bf16 precision on a CPU without native bf16 is
            refused (`require_precision_supported`).
        fingerprint: the task's digest of its data and settings, added to the
            run fingerprint that checkpoints record (see `run_fingerprint`).

    Returns:
        `FitResult` with the per-epoch history, best epoch and loss, epochs run,
        wall-clock seconds and the epoch a resumed run continued from.

    Raises:
        LstmkitError: a checkpoint folder that cannot be written, a checkpoint that
            cannot be resumed (damaged, foreign, another run's), an unusable
            accelerator, a loss that became NaN or infinite, or a run that diverged
            (`check_diverged`: its training loss far above its first batch's).
    """
    from lstmkit.training.module import LstmkitModule

    require_precision_supported(config.precision, config.accelerator)
    monitor = "val_loss" if val_loader is not None else "train_loss"
    if isinstance(module, LstmkitModule):
        module.train_config = config
    elif not any(
        "configure_optimizers" in vars(klass)
        for klass in type(module).__mro__
        if klass not in L.LightningModule.__mro__
    ):
        raise TypeError(
            f"{type(module).__name__} must subclass lstmkit.training.LstmkitModule "
            "(which builds the optimiser from the TrainConfig) or define configure_optimizers"
        )

    L.seed_everything(config.seed, workers=True, verbose=False)
    tracker = _HistoryAndBest(
        monitor, run_fingerprint(module, train_loader, val_loader, config, fingerprint)
    )
    callbacks: list[Callback] = [tracker]
    if config.early_stopping_patience is not None:
        callbacks.append(
            EarlyStopping(
                monitor=monitor,
                patience=config.early_stopping_patience,
                mode="min",
                check_finite=False,  # a non-finite loss is reported after fit, as an error
            )
        )
    ckpt_path = None
    resumed_from = None
    if config.checkpoint_dir is not None:
        ckpt_dir = check_checkpoint_dir(config.checkpoint_dir, "checkpoint folder")
        callbacks.append(_AtomicCheckpoint(ckpt_dir, every_n_epochs=1))
        if config.checkpoint_every_n_steps:
            callbacks.append(
                _AtomicCheckpoint(ckpt_dir, every_n_steps=config.checkpoint_every_n_steps)
            )
        if (ckpt_dir / CHECKPOINT_FILE).exists():
            ckpt_path = str(ckpt_dir / CHECKPOINT_FILE)
            resumed_from = check_checkpoint(Path(ckpt_path), tracker.fingerprint)
        for stale in ckpt_dir.glob(f"{CHECKPOINT_FILE}.tmp-*") if ckpt_dir.is_dir() else []:
            stale.unlink(missing_ok=True)  # left by a run killed while saving

    if config.progress_bar and not sys.stderr.isatty():  # a log file: lines, not a live bar
        from lstmkit.training.progress import LineProgress

        callbacks.append(LineProgress())
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
                precision=config.precision,  # type: ignore[arg-type]
                gradient_clip_val=config.gradient_clip_val,
                deterministic=config.deterministic,
                enable_progress_bar=config.progress_bar,
                enable_model_summary=False,
                enable_checkpointing=config.checkpoint_dir is not None,
                logger=_logger(config),
                callbacks=callbacks,
                num_sanity_val_steps=0,
                log_every_n_steps=1,
                default_root_dir=config.checkpoint_dir,
            )
            start = time.perf_counter()
            trainer.fit(module, train_loader, val_loader, ckpt_path=ckpt_path, weights_only=True)
        except MisconfigurationException as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise LstmkitError(
                f"cannot train with accelerator={config.accelerator!r}, "
                f"devices={config.devices!r}, strategy={config.strategy!r}, "
                f"precision={config.precision!r}: {first}"
            ) from None
        finally:
            torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        seconds = time.perf_counter() - start

    # A process group Lightning set up for this fit (DDP) is torn down here, on
    # success only: left to interpreter exit, gloo's worker threads can abort the
    # process ("terminate called without an active exception"). After a failure,
    # a collective destroy could wait forever on a rank that is gone.
    if not had_process_group and _process_group_initialized():
        torch.distributed.destroy_process_group()

    for row in tracker.history:
        for key in ("train_loss", "val_loss"):
            if key in row and not math.isfinite(row[key]):
                raise LstmkitError(
                    f"training diverged: {key} became {row[key]} in epoch {int(row['epoch'])}; "
                    "scale the data (a scaler, instance normalisation), lower the learning "
                    "rate or check the values for extremes"
                )
    check_diverged(tracker.start_loss, tracker.history, config.lr)

    return FitResult(
        history=tracker.history,
        best_epoch=tracker.best_epoch,
        best_val_loss=tracker.best_score,
        epochs_run=len(tracker.history),
        fit_seconds=seconds,
        world_size=trainer.world_size,
        resumed_from_epoch=resumed_from,
    )
