"""Settings dataclasses from dicts (saved model directories, presets, CLI options), type-checked.

`dataclass_from_dict` builds a settings dataclass from a dict and refuses
unknown keys; `check_field_types` checks the values of a settings dataclass
against its annotations (``int``, ``float``, ``bool``, ``str``, ``None``,
``list[...]`` and unions of them) so that ``window=14.5`` or ``lr="fast"``
give one clear `LstmkitError` instead of a ``TypeError`` deep inside training.
"""

from __future__ import annotations

import math
import numbers
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, fields
from typing import Any, TypeVar

import numpy as np

from lstmkit.errors import LstmkitError

T = TypeVar("T")


def dataclass_from_dict(cls: type[T], data: dict[str, Any], what: str) -> T:
    """``cls(**data)``, refusing keys that are not fields of ``cls`` in one clear line.

    ``what`` names the settings in the message, e.g. ``"TrainConfig"``.
    """
    if not isinstance(data, dict):
        raise LstmkitError(f"{what} must be a JSON object of settings, got {type(data).__name__}")
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - names
    if unknown:
        raise LstmkitError(f"unknown {what} fields {sorted(unknown)}; known: {sorted(names)}")
    required = {
        f.name
        for f in fields(cls)  # type: ignore[arg-type]
        if f.default is MISSING and f.default_factory is MISSING
    }
    missing = required - set(data)
    if missing:
        raise LstmkitError(f"{what} lacks the fields {sorted(missing)}")
    return cls(**data)


def _describe(hint: Any) -> str:
    if hint is type(None):
        return "None"
    args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is list:
        return f"a list of {_describe(args[0])}" if args else "a list"
    return {int: "an integer", float: "a number", bool: "true/false", str: "a string"}.get(
        hint, getattr(hint, "__name__", str(hint))
    )


def _coerce(value: Any, hint: Any) -> tuple[bool, Any]:
    """(whether ``value`` fits ``hint``, the value in the plain Python type)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            ok, out = _coerce(value, arg)
            if ok:
                return True, out
        return False, value
    if hint is type(None):
        return value is None, value
    if hint is bool:
        if isinstance(value, np.bool_):
            return True, bool(value)
        return isinstance(value, bool), value
    if hint is int:
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        return ok, int(value) if ok else value
    if hint is float:
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if hint is str:
        return isinstance(value, str), value
    if origin is list:
        if not isinstance(value, list | tuple):
            return False, value
        (item,) = typing.get_args(hint) or (Any,)
        out = []
        for v in value:
            ok, c = _coerce(v, item)
            if not ok:
                return False, value
            out.append(c)
        return True, out
    return True, value  # nested settings and other types are checked by their owner


def check_field_types(obj: Any, what: str, examples: Mapping[str, str] | None = None) -> None:
    """Check (and normalise, e.g. numpy ints to int) every field of dataclass ``obj``.

    Floats must also be finite; booleans are not numbers and strings ("8") are not
    numbers either. Raises `LstmkitError` naming the field, what it expects and what
    it got, plus "pass e.g. <name>=<example>" where ``examples`` has one for the field.
    """
    hints = typing.get_type_hints(type(obj))
    for f in fields(obj):
        value = getattr(obj, f.name)
        ok, coerced = _coerce(value, hints[f.name])
        if not ok:
            example = (examples or {}).get(f.name)
            hint = f"; pass e.g. {f.name}={example}" if example is not None else ""
            raise LstmkitError(
                f"{what} setting {f.name} must be {_describe(hints[f.name])}, "
                f"got {value!r} ({type(value).__name__}){hint}"
            )
        if isinstance(coerced, float) and not math.isfinite(coerced):
            raise LstmkitError(f"{what} setting {f.name} must be a finite number, got {value!r}")
        setattr(obj, f.name, coerced)
