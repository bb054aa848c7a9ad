"""Settings dataclasses from dicts (saved model directories, presets, CLI options)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

from lstmkit.errors import LstmkitError

T = TypeVar("T")


def dataclass_from_dict(cls: type[T], data: dict[str, Any], what: str) -> T:
    """``cls(**data)``, refusing keys that are not fields of ``cls`` in one clear line.

    ``what`` names the settings in the message, e.g. ``"TrainConfig"``.
    """
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - names
    if unknown:
        raise LstmkitError(f"unknown {what} fields {sorted(unknown)}; known: {sorted(names)}")
    return cls(**data)
