"""Saved model directories and atomic file writes.

A saved model is a directory holding ``config.json`` (``lstmkit_version``,
``kind`` and the task's ``config``), ``model.safetensors`` (the weights) and
any extra files the task needs to predict again (a scaler, a tokenizer). It is
written into a temporary directory beside the target and swapped into place
only when complete, so an interrupted save never leaves a half-written model.
"""

from lstmkit.io.atomic import atomic_write_bytes, atomic_write_text
from lstmkit.io.model_dir import SavedModel, load_model_dir, save_model_dir

__all__ = [
    "SavedModel",
    "atomic_write_bytes",
    "atomic_write_text",
    "load_model_dir",
    "save_model_dir",
]
