"""Checkpoints of a training run: where and when they are written, atomically, and which
run they belong to.

`checkpoint_callbacks` are Lightning `ModelCheckpoint`s configured through their public
arguments: one ``last.ckpt`` in the folder, written at the end of every epoch (after
validation) and, with ``every_n_steps``, every that many optimiser steps except after an
epoch's last batch (the end-of-epoch checkpoint covers it; one written there would be
resumed as a finished epoch whose validation and end-of-epoch hooks never ran).
`AtomicCheckpointIO` (Lightning's `TorchCheckpointIO` plugin) writes each checkpoint to a
temporary file beside it and renames it into place, so a kill while saving leaves the
previous checkpoint intact. `RunFingerprint` (a callback) records the run's fingerprint
(`run_fingerprint`) in every checkpoint and checks it in the one a run resumes from;
`check_checkpoint` does the same check on the file before any Trainer is built, so a
damaged, foreign or other run's checkpoint is one `LstmkitError` line.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins.io import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

from lstmkit.errors import LstmkitError
from lstmkit.training.settings import TrainConfig

CHECKPOINT_FILE = "last.ckpt"
#: the key of lstmkit's own record (the fingerprint) in a checkpoint
CHECKPOINT_KEY = "lstmkit"
# Settings that may change between a killed run and its resumption.
_RESUMABLE_SETTINGS = (
    "max_epochs", "progress", "checkpoint_dir", "logger", "log_dir", "threads",
)  # fmt: skip


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, made atomic: the checkpoint goes to
    ``<path>.tmp-<pid>`` and is renamed to ``path`` once complete (a failed write removes
    the temporary file), so ``path`` always holds a whole checkpoint."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        path = Path(path)
        tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
        try:
            super().save_checkpoint(checkpoint, tmp, storage_options)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise


class _StepCheckpoint(ModelCheckpoint):
    """`ModelCheckpoint` every N optimiser steps, skipping an epoch's last batch."""

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if batch_idx + 1 >= trainer.num_training_batches:  # the epoch's end saves after it
            return
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)


def checkpoint_callbacks(folder: Path, every_n_steps: int | None = None) -> list[Callback]:
    """The callbacks that keep ``folder / CHECKPOINT_FILE`` up to date: every epoch, and
    every ``every_n_steps`` optimiser steps when set (see the module docstring)."""
    common: dict[str, Any] = {
        "dirpath": folder,
        "filename": CHECKPOINT_FILE.removesuffix(".ckpt"),
        "monitor": None,
        "save_top_k": 1,
        "save_last": False,
        "save_on_train_epoch_end": True,
        "enable_version_counter": False,
    }
    callbacks: list[Callback] = [ModelCheckpoint(every_n_epochs=1, **common)]
    if every_n_steps:
        callbacks.append(
            _StepCheckpoint(every_n_epochs=0, every_n_train_steps=every_n_steps, **common)
        )
    return callbacks


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


def _check_record(checkpoint: Any, path: str | os.PathLike[str], fingerprint: str) -> None:
    """Refuse (one `LstmkitError` line) a checkpoint without lstmkit's record or with
    another run's fingerprint."""
    meta = checkpoint.get(CHECKPOINT_KEY) if isinstance(checkpoint, dict) else None
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
    _check_record(ckpt, path, fingerprint)
    return int(ckpt.get("epoch", 0))


class RunFingerprint(Callback):
    """Writes the run's ``fingerprint`` into every checkpoint it saves and checks it in
    the checkpoint a run resumes from (``path``: the file, for the message)."""

    def __init__(self, fingerprint: str, path: str | os.PathLike[str] = CHECKPOINT_FILE) -> None:
        self.fingerprint = fingerprint
        self.path = path

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[CHECKPOINT_KEY] = {"fingerprint": self.fingerprint}

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        _check_record(checkpoint, self.path, self.fingerprint)


def check_checkpoint_dir(folder: str | os.PathLike[str], option: str = "checkpoint_dir") -> Path:
    """Refuse, before any work, a checkpoint folder that is a file or cannot be created or
    written (one `LstmkitError` line naming ``option``); returns it as a `Path`."""
    from lstmkit.io import check_writable

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise LstmkitError(f"{option} {folder} is a file; pass a folder")
    check_writable(folder, option)
    return folder
