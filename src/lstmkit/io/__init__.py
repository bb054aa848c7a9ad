"""Saved model directories and atomic writes of files and whole output folders.

A saved model is a directory holding ``config.json`` (``lstmkit_version``,
``kind`` and the task's ``config``), ``model.safetensors`` (the weights) and
any extra files the task needs to predict again (a scaler, a tokenizer). It is
written into a temporary directory beside the target and swapped into place
only when complete (recoverably), so an interrupted save never leaves a
half-written model or none. `staged_dir` does the same for a command's whole
output folder; `atomic_write` / `atomic_write_bytes` / `atomic_write_text` for
single files; `check_writable` checks an output location before any work.
"""

from importlib import import_module
from typing import Any

from lstmkit.io.atomic import (
    atomic_write,
    atomic_write_bytes,
    atomic_write_text,
    check_writable,
    follow_umask,
    recover_dir,
    replace_dir,
    staged_dir,
)

# model_dir reads and writes torch tensors; it is imported on first use, so that the
# atomic writes (and `lstmkit.runtime`, which uses them) work where torch is absent.
_LAZY = ("SavedModel", "check_model_target", "load_model_dir", "save_model_dir")

__all__ = [
    "SavedModel",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_model_target",
    "check_writable",
    "follow_umask",
    "load_model_dir",
    "recover_dir",
    "replace_dir",
    "save_model_dir",
    "staged_dir",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module("lstmkit.io.model_dir"), name)
    raise AttributeError(f"module 'lstmkit.io' has no attribute {name!r}")
