"""Build and run a Lightning Trainer for any lstmkit LightningModule.

Contract with the module: it logs ``train_loss`` (``on_epoch=True``) in
``training_step`` and ``val_loss`` in ``validation_step``; any other metric
logged with ``on_epoch=True`` (e.g. ``train_acc`` / ``val_acc``) shows up in
the history. Under DDP, log with ``sync_dist=True`` so every rank sees the
same validation loss.

Resuming (``checkpoint_dir``): Lightning's `ModelCheckpoint` writes
``last.ckpt`` atomically at the end of every epoch (and every
``checkpoint_every_n_steps`` optimiser steps if set, except after an epoch's last
batch, which the end-of-epoch checkpoint covers; see `lstmkit.training.checkpoints`,
which uses Lightning's public callback and checkpoint-IO API only). The checkpoint holds the
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

Interrupting is not finishing: Ctrl-C during a fit raises `KeyboardInterrupt` (Lightning
shuts down and exits with status 1) and SIGTERM ends the process with status 143
(Lightning's `SystemExit` has status 0), so no caller takes a stopped fit for a result.
"""

from __future__ import annotations

import copy
import logging
import math
import random
import signal
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import Callback, EarlyStopping
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch.utils.data import DataLoader

from lstmkit.config import dataclass_from_dict
from lstmkit.errors import LstmkitError
from lstmkit.training.checkpoints import (
    CHECKPOINT_FILE,
    AtomicCheckpointIO,
    RunFingerprint,
    check_checkpoint,
    check_checkpoint_dir,
    checkpoint_callbacks,
    run_fingerprint,
)
from lstmkit.training.module import LstmkitModule
from lstmkit.training.settings import TrainConfig, require_precision_supported
from lstmkit.training.threads import TrainingThreads


@dataclass
class FitResult:
    """Outcome of `fit`.

    history: one dict per epoch: ``epoch``, ``train_loss``, ``val_loss`` and any
    other ``train_<name>`` / ``val_<name>`` metric the module logged per epoch.
    best_epoch, best_val_loss: the epoch whose weights the module holds after the fit and
    its monitored loss: the lowest, or with ``keep_weights="last"`` the final epoch's.
    threads: the CPU threads the training steps ran on (`lstmkit.training.threads`; None
    when no step ran, as in a finished run resumed).
    """

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_val_loss: float = math.nan
    epochs_run: int = 0
    fit_seconds: float = 0.0
    world_size: int = 1
    resumed_from_epoch: int | None = None
    threads: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FitResult:
        """Inverse of `to_dict`; unknown keys are refused."""
        return dataclass_from_dict(cls, data, "FitResult")


class _HistoryAndBest(Callback):
    """Records per-epoch metrics and keeps the best weights in memory.

    The best weights are loaded back into the module at the end of fit (in every
    process, so spawn-based strategies also return them). Its state goes into
    checkpoints, so a resumed run keeps its history and best weights. ``last``: no
    weights are kept or restored, so the module ends with the final epoch's.
    """

    def __init__(self, monitor: str, last: bool = False) -> None:
        self.monitor = monitor
        self.last = last
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
        if self.last:  # the module's own weights are the final epoch's: nothing to restore
            self.best_score, self.best_epoch = score, trainer.current_epoch
        elif math.isfinite(score) and score < self.best_score:
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


def _attach_config(module: L.LightningModule, config: TrainConfig) -> None:
    """Hand ``config`` to an `LstmkitModule` (it builds the optimiser from it); any other
    module must define its own ``configure_optimizers``."""
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


@dataclass
class _Resume:
    """What `fit` does with the checkpoint folder: its callbacks (none without one), the
    checkpoint to resume from (None: start afresh) and that checkpoint's epoch."""

    callbacks: list[Callback] = field(default_factory=list)
    ckpt_path: str | None = None
    epoch: int | None = None


def _prepare_checkpoints(config: TrainConfig, run: Callable[[], str]) -> _Resume:
    """The checkpoint callbacks of ``config.checkpoint_dir`` (the run's fingerprint, from
    ``run``, in every checkpoint) and the checkpoint a run resumes from, checked now (one
    line for a damaged, foreign or other run's file). Without a folder, nothing (and no
    fingerprint computed)."""
    if config.checkpoint_dir is None:
        return _Resume()
    fingerprint = run()
    folder = check_checkpoint_dir(config.checkpoint_dir, "checkpoint folder")
    last = folder / CHECKPOINT_FILE
    resume = _Resume([RunFingerprint(fingerprint, last)])
    resume.callbacks += checkpoint_callbacks(folder, config.checkpoint_every_n_steps)
    if last.exists():
        resume.ckpt_path = str(last)
        resume.epoch = check_checkpoint(last, fingerprint)
    for stale in folder.glob(f"{CHECKPOINT_FILE}.tmp-*") if folder.is_dir() else []:
        stale.unlink(missing_ok=True)  # left by a run killed while saving
    return resume


def _stopping(config: TrainConfig, monitor: str) -> list[Callback]:
    """Early stopping on ``monitor`` when ``config`` asks for it (never when it keeps the
    last epoch's weights: such a run trains all ``max_epochs``)."""
    if config.early_stopping_patience is None or config.keep_weights == "last":
        return []
    return [
        EarlyStopping(
            monitor=monitor,
            patience=config.early_stopping_patience,
            mode="min",
            check_finite=False,  # a non-finite loss is reported after fit, as an error
        )
    ]


def _progress(config: TrainConfig) -> list[Callback]:
    """Progress as plain lines when stderr is a log file, not a terminal (Lightning's own
    live bar otherwise, or nothing without ``progress``)."""
    if not config.progress or sys.stderr.isatty():
        return []
    from lstmkit.training.progress import LineProgress

    return [LineProgress()]


def _trainer(config: TrainConfig, callbacks: list[Callback]) -> L.Trainer:
    """The Lightning Trainer of ``config`` (call inside `_quiet_lightning`)."""
    checkpoints = config.checkpoint_dir is not None
    return L.Trainer(
        max_epochs=config.max_epochs,
        accelerator=config.accelerator,
        devices=config.devices,
        strategy=config.strategy,
        num_nodes=config.num_nodes,
        precision=config.precision,  # type: ignore[arg-type]
        gradient_clip_val=config.gradient_clip_val,
        deterministic=config.deterministic,
        enable_progress_bar=config.progress,
        enable_model_summary=False,
        enable_checkpointing=checkpoints,
        logger=_logger(config),
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()] if checkpoints else None,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
        default_root_dir=config.checkpoint_dir,
    )


def _check_finite(history: list[dict[str, float]]) -> None:
    """Refuse a run whose training or validation loss became NaN or infinite."""
    for row in history:
        for key in ("train_loss", "val_loss"):
            if key in row and not math.isfinite(row[key]):
                raise LstmkitError(
                    f"training diverged: {key} became {row[key]} in epoch {int(row['epoch'])}; "
                    "scale the data (a scaler, instance normalisation), lower the learning "
                    "rate or check the values for extremes"
                )


def fit(
    module: L.LightningModule,
    train_loader: DataLoader,
    val_loader: DataLoader | None,
    config: TrainConfig,
    fingerprint: str | Callable[[], str] = "",
) -> FitResult:
    """Train ``module`` and restore its best weights (with ``keep_weights="last"``: train
    every epoch and keep the final weights).

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
            run fingerprint that checkpoints record (see `run_fingerprint`); or the
            function that computes it, called only with a ``checkpoint_dir`` (hashing
            the data of 100,000 series takes about half a second).

    Returns:
        `FitResult` with the per-epoch history, best epoch and loss, epochs run,
        wall-clock seconds and the epoch a resumed run continued from.

    Raises:
        LstmkitError: a checkpoint folder that cannot be written, a checkpoint that
            cannot be resumed (damaged, foreign, another run's), an unusable
            accelerator, a loss that became NaN or infinite, or a run that diverged
            (`check_diverged`: its training loss far above its first batch's).
    """
    require_precision_supported(config.precision, config.accelerator)
    monitor = "val_loss" if val_loader is not None else "train_loss"
    _attach_config(module, config)
    L.seed_everything(config.seed, workers=True, verbose=False)
    tracker = _HistoryAndBest(monitor, last=config.keep_weights == "last")
    resume = _prepare_checkpoints(
        config,
        lambda: run_fingerprint(
            module, train_loader, val_loader, config,
            fingerprint() if callable(fingerprint) else fingerprint,
        ),
    )  # fmt: skip
    threads = TrainingThreads(config.threads)
    callbacks = [
        tracker, threads, *_stopping(config, monitor), *resume.callbacks, *_progress(config),
    ]  # fmt: skip
    # Lightning's deterministic=True switches torch's global flag on for good; put it back.
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    had_process_group = _process_group_initialized()
    on_ctrl_c, trainer = signal.getsignal(signal.SIGINT), None
    with _quiet_lightning():
        try:
            trainer = _trainer(config, callbacks)
            start = time.perf_counter()
            trainer.fit(
                module, train_loader, val_loader, ckpt_path=resume.ckpt_path, weights_only=True
            )
        except SIGTERMException:  # Lightning stops with SystemExit(): status 0, a success
            raise SystemExit(128 + signal.SIGTERM) from None
        except SystemExit:
            if trainer is None or not trainer.interrupted:
                raise
            # Ctrl-C: Lightning ignores SIGINT from then on and exits with status 1
            if on_ctrl_c is not None:
                signal.signal(signal.SIGINT, on_ctrl_c)
            raise KeyboardInterrupt from None
        except MisconfigurationException as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise LstmkitError(
                f"cannot train with accelerator={config.accelerator!r}, "
                f"devices={config.devices!r}, strategy={config.strategy!r}, "
                f"precision={config.precision!r}: {first}"
            ) from None
        finally:
            torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
            threads.restore()
        seconds = time.perf_counter() - start

    # A process group Lightning set up for this fit (DDP) is torn down here, on
    # success only: left to interpreter exit, gloo's worker threads can abort the
    # process ("terminate called without an active exception"). After a failure,
    # a collective destroy could wait forever on a rank that is gone.
    if not had_process_group and _process_group_initialized():
        torch.distributed.destroy_process_group()

    _check_finite(tracker.history)
    check_diverged(tracker.start_loss, tracker.history, config.lr)
    return FitResult(
        history=tracker.history,
        best_epoch=tracker.best_epoch,
        best_val_loss=tracker.best_score,
        epochs_run=len(tracker.history),
        fit_seconds=seconds,
        world_size=trainer.world_size,
        resumed_from_epoch=resume.epoch,
        threads=threads.chosen.get("train"),
    )
