"""The one check of the lstmkit version that wrote a saved model folder or an ONNX export.

This lstmkit reads what its own major version or an older one wrote; a newer major
version (or a version that is no version string) is refused in one `LstmkitError` line.
Torch-free: `lstmkit.runtime` uses it too.
"""

from __future__ import annotations

from typing import Any

from lstmkit import __version__
from lstmkit.errors import LstmkitError


def major(version: str) -> int:
    """The major number of ``version`` ("0.1.0" -> 0); -1 when it does not start with one."""
    try:
        return int(str(version).split(".", 1)[0])
    except ValueError:
        return -1


def check_version(version: Any, where: str, fix: str) -> str:
    """``version``, the ``lstmkit_version`` recorded by what lies at ``where``, if this
    lstmkit can read it: a version string of this major version or an older one.

    Otherwise one `LstmkitError` line that names ``where`` and ends in ``fix`` (what to
    do instead, e.g. "export the model again").
    """
    if not isinstance(version, str):
        raise LstmkitError(
            f"{where} is damaged (lstmkit_version must be a version string, got {version!r}); {fix}"
        )
    if major(version) < 0 or major(version) > major(__version__):
        raise LstmkitError(
            f"{where} was saved by lstmkit {version}, which this lstmkit {__version__} cannot "
            f"read; upgrade lstmkit or {fix}"
        )
    return version
