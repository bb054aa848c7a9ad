"""Saved model directories and atomic writes of files and whole output folders.

A saved model is a directory holding ``config.json`` (``lstmkit_version``,
``kind`` and the task's ``config``), ``model.safetensors`` (the weights) and
any extra files the task needs to predict again (a scaler, a tokenizer). It is
written into a temporary directory beside the target and swapped into place
only when complete (recoverably), so an interrupted save never leaves a
half-written model or none. `staged_dir` does the same for a command's whole
output folder; `atomic_write` / `atomic_write_bytes` / `atomic_write_text` for
single files; `check_writable` and `check_outside` check an output location before
any work; `check_version` is the one check of the version that wrote a model or an
export. Nothing here imports torch at import time (only saving and loading weights do).
"""

from lstmkit.io.atomic import (
    atomic_write,
    atomic_write_bytes,
    atomic_write_text,
    check_outside,
    check_writable,
    follow_umask,
    recover_dir,
    replace_dir,
    staged_dir,
)
from lstmkit.io.model_dir import (
    SavedModel,
    check_model_target,
    load_model_dir,
    read_model_meta,
    save_model_dir,
)
from lstmkit.io.version import check_version

__all__ = [
    "SavedModel",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_model_target",
    "check_outside",
    "check_version",
    "check_writable",
    "follow_umask",
    "load_model_dir",
    "read_model_meta",
    "recover_dir",
    "replace_dir",
    "save_model_dir",
    "staged_dir",
]
