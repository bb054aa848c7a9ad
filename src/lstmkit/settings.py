"""Settings declared once: `Settings`, the pydantic base class of every settings model.

Each group of settings (training, a forecaster, a text classifier and its tokenizer,
pretraining, the bag-of-words baseline) is one `Settings` subclass whose fields carry
their type, range, default and help text (``Field(..., ge=1, description=...)``). The
estimators, the saved ``config.json`` and the command-line options are all read from
these models, so a rule cannot differ between two places. Torch-free: the CLI reads
the models to build its options.

The rules every model follows:

- strict types: ``"8"`` is not 8, ``1.5`` is not an integer, ``True`` is not a number,
  floats must be finite; NumPy scalars count as the Python number they hold;
- unknown names are refused; a model with nested settings (``train``, ``tokenizer``)
  also takes, reads and sets their fields by their flat names (``Forecaster``'s ``lr=``
  lands in ``train.lr``; `flat_fields` lists them), and nested settings given in part
  start from the owning model's default for them (the forecaster's 300 epochs, not the
  shared model's 100);
- a renamed setting (``renamed``: old name -> new name) is still accepted, with a
  `FutureWarning` from the API and silently from a saved file (`from_dict`), so model
  folders written before the rename load;
- a bad value is one `SettingsError` line (a `LstmkitError`) naming the setting, what
  it must be and what it got; `SettingsError.setting` lets the CLI name the option.
"""

from __future__ import annotations

import os
import sys
import types
import typing
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, ClassVar, Literal, Self

import annotated_types
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic.fields import FieldInfo

from lstmkit.errors import LstmkitError

#: Lightning's training precisions (the int 16, 32, 64 are taken for "16", "32", "64")
PRECISIONS = ("32", "32-true", "64", "64-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true")


def _precision_text(value: Any) -> Any:
    """``precision=32`` as Lightning takes it: an int (not a bool) is read as its text."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _path_text(value: Any) -> Any:
    """A `pathlib.Path` (any ``os.PathLike``) is kept as its text."""
    return os.fspath(value) if isinstance(value, os.PathLike) else value


#: a training precision (see `PRECISIONS`)
Precision = Annotated[
    Literal["32", "32-true", "64", "64-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true"],
    BeforeValidator(_precision_text),
]
#: a file or folder path, kept as text (a `pathlib.Path` is accepted)
PathText = Annotated[str, BeforeValidator(_path_text)]
#: the recurrent layer of a task's network
RNN = Literal["lstm", "gru", "slstm", "mlstm"]
#: the xLSTM layer settings both tasks take (`lstmkit.tasks.rnn` checks them against rnn)
NumHeads = Annotated[
    int | None,
    Field(
        ge=1,
        description="Heads of an sLSTM/mLSTM, dividing hidden_size (None: the largest of "
        "4, 2, 1 that does; an LSTM/GRU takes none).",
    ),
]
ChunkSize = Annotated[
    int | None,
    Field(
        ge=1,
        description="Steps per chunk of the mLSTM's chunkwise form (None: 64; mLSTM only).",
    ),
]


class SettingsError(LstmkitError):
    """A bad setting: one line naming it. ``setting`` is the flat name of the setting (the
    name the estimators take, e.g. ``"lr"``), or None when the whole object is wrong;
    ``reason`` is the message without the settings' name, for the CLI to put an option
    name in front of."""

    def __init__(self, message: str, setting: str | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.setting = setting
        self.reason = reason or message


@dataclass(frozen=True)
class FlatField:
    """One setting of a model, nested ones included: its flat name, the path of field
    names to it, the model class that declares it and its pydantic `FieldInfo`."""

    name: str
    path: tuple[str, ...]
    owner: type[Settings]
    info: FieldInfo

    @property
    def field(self) -> str:
        """The field's name in its own model."""
        return self.path[-1]


class _SettingsType(type(BaseModel)):  # type: ignore[misc]
    """Turns pydantic's `ValidationError` from ``SomeSettings(...)`` into one
    `SettingsError` line (nested settings are validated inside, not through here)."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except ValidationError as err:
            raise settings_error(cls, err, kwargs) from None


class Settings(BaseModel, metaclass=_SettingsType):
    """Base class of lstmkit's settings models (see the module docstring).

    Subclasses set ``what`` (how messages name them, e.g. ``"training"``), may set
    ``renamed`` (old name -> new name) and ``shorthand`` (the field a bare value stands
    for, e.g. a tokenizer given as ``"bpe"``).
    """

    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        allow_inf_nan=False,
        validate_assignment=True,
        revalidate_instances="always",
    )

    #: how messages name these settings
    what: ClassVar[str] = "settings"
    #: renamed settings, old name -> new (flat) name
    renamed: ClassVar[Mapping[str, str]] = {}
    #: the field a bare (non-mapping) value for these settings sets, if any
    shorthand: ClassVar[str | None] = None

    def __setattr__(self, name: str, value: Any) -> None:
        path = self._flat_path(name)
        if path is not None:  # a nested setting by its flat name, or a renamed one
            target = self
            for part in path[:-1]:
                target = getattr(target, part)
            setattr(target, path[-1], value)
            return
        try:
            super().__setattr__(name, value)
        except ValidationError as err:
            raise settings_error(type(self), err, {name: value}) from None

    def __getattr__(self, name: str) -> Any:
        path = None if name.startswith("_") else self._flat_path(name)
        if path is None:
            return super().__getattr__(name)  # type: ignore[misc]
        value: Any = self
        for part in path:
            value = getattr(value, part)
        return value

    @classmethod
    def _flat_path(cls, name: str) -> tuple[str, ...] | None:
        """The field path of ``name`` when it is not a field of this model itself: a
        nested setting's flat name (``cfg.lr`` is ``cfg.train.lr``) or a renamed setting
        (which warns)."""
        if name in cls.model_fields or name.startswith("_"):
            return None
        renamed = cls.all_renamed()
        if name in renamed:
            warn_deprecated(f"the setting {name} is deprecated; use {renamed[name]}")
            name = renamed[name]
        ref = cls.flat_fields().get(name)
        return None if ref is None else ref.path

    # ------------------------------------------------------------------ input rules
    @model_validator(mode="before")
    @classmethod
    def _before(cls, data: Any, info: ValidationInfo) -> Any:
        """Renamed settings, flat names of nested settings, a shorthand value and NumPy
        scalars, before the strict checks."""
        if cls.shorthand is not None and not isinstance(data, Mapping | BaseModel):
            data = {cls.shorthand: data}
        if not isinstance(data, Mapping):
            return data
        saved = bool(info.context and info.context.get("saved"))
        data = {key: _plain(value) for key, value in data.items()}
        for old, new in cls.all_renamed().items():
            if old not in data:
                continue
            if not saved:
                warn_deprecated(f"the setting {old} is deprecated; use {new}")
            value = data.pop(old)
            if new in data and data[new] != value:
                raise ValueError(f"{old}={value!r} and {new}={data[new]!r} name the same setting")
            data[new] = value
        return cls._nest(data)

    @classmethod
    def all_renamed(cls) -> dict[str, str]:
        """`renamed` with the renamed settings of nested settings models (by flat name)."""
        return _all_renamed(cls)

    @classmethod
    def _nest(cls, data: dict[str, Any]) -> dict[str, Any]:
        """Move the flat names of nested settings into their nested mapping."""
        flat = cls.flat_fields()
        out: dict[str, Any] = {}
        nested: dict[str, dict[str, Any]] = {}
        for key, value in data.items():
            ref = flat.get(key)
            if key in cls.model_fields or ref is None or len(ref.path) == 1:
                out[key] = value
            else:
                nested.setdefault(ref.path[0], {})[ref.path[-1]] = value
        for name, values in nested.items():
            sub = _settings_type(cls.model_fields[name].annotation)
            assert sub is not None
            base = out.get(name)
            if base is None:
                out[name] = values
                continue
            if isinstance(base, BaseModel):
                base = base.model_dump()
            elif not isinstance(base, Mapping):
                base = {sub.shorthand: base} if sub.shorthand else base
            if isinstance(base, Mapping):
                base = dict(base)
                for key, value in values.items():
                    if key in base and base[key] != value:
                        raise ValueError(f"{key} is given twice, as {base[key]!r} and {value!r}")
                    base[key] = value
                out[name] = base
        return cls._complete(out)

    @classmethod
    def _complete(cls, data: dict[str, Any]) -> dict[str, Any]:
        """Nested settings given in part (a mapping, or flat names) start from this model's
        default for them, not from the nested model's own: ``Forecaster(lr=0.1)`` keeps
        the forecaster's 300 epochs, a text model saved without ``deterministic`` keeps the
        text task's False."""
        for name, info in cls.model_fields.items():
            sub = _settings_type(info.annotation)
            value = data.get(name)
            if sub is None or value is None or isinstance(value, BaseModel):
                continue
            if sub.shorthand is not None and not isinstance(value, Mapping):
                value = {sub.shorthand: value}
            if not isinstance(value, Mapping) or info.is_required():
                continue
            default = info.get_default(call_default_factory=True)
            if not isinstance(default, BaseModel):
                continue
            base = default.model_dump()
            renamed = sub.all_renamed()
            for key in value:  # an old name given: its new name is not taken from the default
                base.pop(renamed.get(key, key), None)
            data[name] = {**base, **value}
        return data

    # ------------------------------------------------------------------ round trip
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (nested settings nested)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: Any) -> Self:
        """Inverse of `to_dict`, for saved settings: unknown keys are refused, renamed ones
        are taken without a warning (folders written before the rename load)."""
        if not isinstance(data, Mapping):
            raise SettingsError(
                f"{cls.what} settings must be a JSON object, got {type(data).__name__}"
            )
        try:
            return cls.model_validate(dict(data), context={"saved": True})
        except ValidationError as err:
            raise settings_error(cls, err, data) from None

    # ------------------------------------------------------------------ flat view
    @classmethod
    def flat_fields(cls) -> dict[str, FlatField]:
        """Every setting by its flat name: this model's fields, and the fields of nested
        settings models (their shorthand field takes the nested field's name, e.g. the
        tokenizer's ``kind`` is ``tokenizer``). The nested fields themselves are not
        listed."""
        return _flat_fields(cls)

    def to_flat(self) -> dict[str, Any]:
        """{flat name: value} of every setting (see `flat_fields`), nested ones included."""
        out: dict[str, Any] = {}
        for name, ref in self.flat_fields().items():
            value: Any = self
            for part in ref.path:
                value = getattr(value, part)
            out[name] = value
        return out

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` (flat names; a renamed one warns) applied, checked like
        the constructor."""
        data = self.to_dict()
        flat, renamed = self.flat_fields(), self.all_renamed()
        for key, value in changes.items():
            if key in renamed:
                warn_deprecated(f"the setting {key} is deprecated; use {renamed[key]}")
                new = renamed[key]
                if new in changes and changes[new] != value:
                    raise SettingsError(
                        f"{key}={value!r} and {new}={changes[new]!r} name the same setting; "
                        "pass one of them",
                        new,
                    )
                key = new
            ref = flat.get(key)
            if (
                ref is not None
                and ref.path != (key,)
                and not isinstance(value, Mapping | BaseModel)
            ):
                pass  # a nested setting, or a shorthand (tokenizer="bpe"): set below
            elif key in type(self).model_fields or ref is None:
                data[key] = value
                continue
            inner = data
            for part in ref.path[:-1]:
                inner = inner[part]
            inner[ref.path[-1]] = value
        return type(self)(**data)


def _settings_type(annotation: Any) -> type[Settings] | None:
    """The `Settings` subclass an annotation holds (``TrainConfig``, ``X | None``)."""
    if isinstance(annotation, type) and issubclass(annotation, Settings):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _settings_type(arg)
            if found is not None:
                return found
    return None


@cache
def _all_renamed(cls: type[Settings]) -> dict[str, str]:
    out: dict[str, str] = {}
    for info in cls.model_fields.values():
        sub = _settings_type(info.annotation)
        if sub is not None:
            out.update((old, new) for old, new in sub.all_renamed().items()
                       if old not in cls.model_fields)  # fmt: skip
    return {**out, **cls.renamed}


@cache
def _flat_fields(cls: type[Settings]) -> dict[str, FlatField]:
    out: dict[str, FlatField] = {}
    for name, info in cls.model_fields.items():
        sub = _settings_type(info.annotation)
        if sub is None:
            out[name] = FlatField(name, (name,), cls, info)
            continue
        for sub_name, ref in sub.flat_fields().items():
            flat = name if ref.path == (sub.shorthand,) else sub_name
            if flat in out or (flat in cls.model_fields and flat != name):
                raise TypeError(f"{cls.__name__}: the flat setting name {flat!r} is taken twice")
            out[flat] = FlatField(flat, (name, *ref.path), ref.owner, ref.info)
    return out


def _plain(value: Any) -> Any:
    """A NumPy scalar as the Python number or bool it holds (the rest unchanged)."""
    if type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0:
        return value.item()
    return value


def warn_deprecated(message: str) -> None:
    """A `FutureWarning` for a deprecated name (removed in the next release), shown at
    the first caller outside lstmkit and pydantic."""
    frame, level = sys._getframe(1), 2
    while frame is not None and frame.f_globals.get("__name__", "").split(".")[0] in _INTERNAL:
        frame, level = frame.f_back, level + 1
    warnings.warn(f"{message} (the old name goes in the next release)", FutureWarning,
                  stacklevel=level)  # fmt: skip


_INTERNAL = ("lstmkit", "pydantic", "pydantic_core", "typer", "click")


# ---------------------------------------------------------------------- messages
def describe(info: FieldInfo) -> str:
    """What a field takes, in words: ``"an integer >= 1 or None"``, ``"a number in [0, 1)"``,
    ``"one of lstm, gru"``."""
    return _describe(info.annotation, info.metadata)


def _bounds(metadata: list[Any]) -> str:
    low = high = None
    for m in metadata:
        if isinstance(m, annotated_types.Ge):
            low = ("[", m.ge)
        elif isinstance(m, annotated_types.Gt):
            low = ("(", m.gt)
        elif isinstance(m, annotated_types.Le):
            high = ("]", m.le)
        elif isinstance(m, annotated_types.Lt):
            high = (")", m.lt)
    if low and high:
        return f" in {low[0]}{_num(low[1])}, {_num(high[1])}{high[0]}"
    if low:
        return f" {'>=' if low[0] == '[' else '>'} {_num(low[1])}"
    if high:
        return f" {'<=' if high[0] == ']' else '<'} {_num(high[1])}"
    return ""


def _num(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _describe(tp: Any, metadata: list[Any] | None = None) -> str:
    metadata = list(metadata or [])
    origin = typing.get_origin(tp)
    if origin is Annotated:
        base, *extra = typing.get_args(tp)
        plain = [m for m in extra if not isinstance(m, FieldInfo)]
        inner = [c for m in extra if isinstance(m, FieldInfo) for c in m.metadata]
        return _describe(base, metadata + plain + inner)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        parts = [_describe(a, metadata) for a in args if a is not type(None)]
        if type(None) in args:
            parts.append("None")
        return " or ".join(parts)
    if tp is type(None):
        return "None"
    if origin is Literal:
        return "one of " + ", ".join(str(v) for v in typing.get_args(tp))
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        return f"a list of {_plural(_describe(item))}"
    if origin is dict:
        return "a mapping"
    if tp is bool:
        return "true/false"
    if tp is int:
        return "an integer" + _bounds(metadata)
    if tp is float:
        return "a number" + _bounds(metadata)
    if tp is str:
        return "a string"
    if isinstance(tp, type) and issubclass(tp, Settings):
        return f"{tp.what} settings"
    return getattr(tp, "__name__", str(tp))


def _plural(text: str) -> str:
    for one, many in (("an integer", "integers"), ("a number", "numbers"), ("a string", "strings")):
        if text.startswith(one):
            return many + text[len(one) :]
    return text


def _field_at(cls: type[Settings], loc: tuple[Any, ...]) -> tuple[type[Settings], str, int]:
    """Follow a pydantic error location through nested settings: the model reached, the
    last field named on the way ("" for none) and how many parts of ``loc`` name fields
    (the rest are list indices, union members or an unknown key)."""
    model, field, depth = cls, "", 0
    for i, part in enumerate(loc):
        if not isinstance(part, str) or part not in model.model_fields:
            break
        field, depth = part, i + 1
        sub = _settings_type(model.model_fields[part].annotation)
        if sub is None or i == len(loc) - 1:
            break
        model = sub
    return model, field, depth


def _flat_name(root: type[Settings], path: tuple[str, ...]) -> str | None:
    for name, ref in root.flat_fields().items():
        if ref.path == path:
            return name
    return None


def _value_of(error: Any) -> Any:
    return error.get("input")


def settings_error(cls: type[Settings], err: ValidationError, given: Any = None) -> SettingsError:
    """The one `SettingsError` line for pydantic's ``err`` (its first problem); ``given``:
    what the model was built from (the whole value of a list whose item is wrong)."""
    errors = err.errors()
    first = errors[0]
    loc = tuple(first["loc"])
    kind = first["type"]
    if kind == "extra_forbidden":
        model = _field_at(cls, loc)[0]
        known = ", ".join(sorted(model.flat_fields()))
        name = str(loc[-1])
        unknown = [str(e["loc"][-1]) for e in errors if e["type"] == "extra_forbidden"]
        listed = ", ".join(repr(u) for u in unknown)
        reason = f"unknown {model.what} setting{'s' if len(unknown) > 1 else ''} {listed}"
        return SettingsError(f"{reason}; known: {known}", name, f"{reason}; known: {known}")
    model, field, depth = _field_at(cls, loc)
    if not field:  # the whole object
        message = first["msg"].removeprefix("Value error, ")
        if kind == "model_type" or kind == "dict_type":
            message = f"must be {cls.what} settings (a mapping), got {_value_of(first)!r}"
        return SettingsError(f"{cls.what} settings {message}", None, message)
    path = tuple(str(p) for p in loc[:depth])
    flat = _flat_name(cls, path) or field
    info = model.model_fields[field]
    # the value the field got (not a list item or a union member)
    value = _value_of(first) if depth == len(loc) else None
    if kind == "value_error":
        text = str(first.get("ctx", {}).get("error", first["msg"]))
        if text.startswith(field) or text.startswith(flat):
            reason = text
        elif text.startswith("must"):
            reason = f"{flat} {text}"
            if depth == len(loc):
                reason += f", got {value!r}"
        else:
            reason = f"{flat}: {text}"
        return SettingsError(f"{model.what} setting {reason}", flat, reason)
    if depth < len(loc):  # a list item or a member of a union: show the whole value
        value = _given(given, path, flat, _value_of(first))
    got = f"got {value!r}"
    if kind.endswith("_type") or kind.endswith("_parsing") or kind == "int_from_float":
        got += f" ({type(value).__name__})"
    if kind == "finite_number":
        reason = f"{flat} must be a finite number, {got}"
    else:
        reason = f"{flat} must be {describe(info)}, {got}"
    return SettingsError(f"{model.what} setting {reason}", flat, reason)


def _given(given: Any, path: tuple[str, ...], flat: str, default: Any) -> Any:
    """The value the caller gave for the field at ``path`` (flat name ``flat``), if it can
    be found in ``given`` (pydantic reports only the failing item of a list)."""
    nested = isinstance(given, Mapping) and flat in given and len(path) > 1
    if nested and not isinstance(given[flat], Mapping | BaseModel):
        return given[flat]
    value = given
    for part in path:
        if isinstance(value, BaseModel):
            value = getattr(value, part, default)
        elif isinstance(value, Mapping) and part in value:
            value = value[part]
        else:
            return default
    return value
