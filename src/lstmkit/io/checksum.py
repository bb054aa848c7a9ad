"""The SHA-256 digests that saved model folders (`lstmkit.io.model_dir`) and ONNX exports
(`lstmkit.runtime.meta`) record of their files, checked when they are loaded."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_checksum(path: Path) -> str:
    """The SHA-256 of the file at ``path`` (hex), read in pieces."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()
