"""Command-line options read from the settings models (`lstmkit.settings`).

A setting's option takes its type, choices (a ``Literal`` field becomes a choice typer
lists and checks), help text and default from its model field, so a new setting is one
model field plus its use::

    F = ForecasterConfig
    FD = defaults(F)
    def forecast_cmd(rnn: option(F, "rnn") = FD["rnn"], ...): ...

`option` returns the ``Annotated`` type of the parameter; `defaults` the model's defaults
(nested settings' defaults included: the forecaster trains 300 epochs, not the shared
100). `deprecated_option` declares an old option name, hidden from the help, and
`take_deprecated` reads it with a ``warning:`` line. Torch-free.
"""

from __future__ import annotations

import typing
from functools import cache
from typing import Annotated, Any, Literal

import typer
from pydantic.fields import FieldInfo

from lstmkit.errors import LstmkitError
from lstmkit.settings import Settings, describe


def _field(model: type[Settings], name: str) -> FieldInfo:
    ref = model.flat_fields().get(name)
    if ref is None:
        raise KeyError(f"{model.__name__} has no setting {name!r}")
    return ref.info


def _cli_type(annotation: Any) -> Any:
    """The type typer parses: a ``Literal`` (choices) stays, ``Annotated`` rules are the
    model's to check (typer only parses), ``X | None`` stays."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _cli_type(typing.get_args(annotation)[0])
    if origin is Literal:
        return annotation
    args = typing.get_args(annotation)
    if args and type(None) in args:
        inner = [_cli_type(a) for a in args if a is not type(None)]
        if len(inner) == 1:
            return inner[0] | None
    return annotation


def help_text(model: type[Settings], name: str) -> str:
    """The setting's description, with what it takes when that has a range
    (``an integer >= 1``, ``a number in [0, 1)``); typer lists choices itself."""
    info = _field(model, name)
    text = info.description or ""
    takes = describe(info)
    if any(mark in takes for mark in (">", "<", " in [", " in (")):
        return f"{text} ({takes})"
    return text


def option(
    model: type[Settings],
    name: str,
    *flags: str,
    optional: bool = False,
    cli_type: Any = None,
    **kwargs: Any,
) -> Any:
    """The ``Annotated`` parameter type of the option for setting ``name`` of ``model``:
    its type and choices, and its help from the field (``help=`` overrides). ``flags``
    as typer takes them (default ``--name-with-dashes``); ``optional``: the option may be
    left out (None: the preset's or the model's value); ``cli_type``: parse as this
    instead (e.g. ``str`` for a comma-separated list)."""
    tp = cli_type if cli_type is not None else _cli_type(_field(model, name).annotation)
    if optional:
        tp = tp | None
    if "help" not in kwargs:
        kwargs["help"] = help_text(model, name)
        value = _defaults(model)[name]
        if optional and value is not None:  # typer shows None: say what leaving it out means
            kwargs["help"] += (
                f" (default: {str(value).lower() if isinstance(value, bool) else value})"
            )
    return Annotated[tp, typer.Option(*flags, **kwargs)]


@cache
def _defaults(model: type[Settings]) -> dict[str, Any]:
    return model().to_flat()


def defaults(model: type[Settings]) -> dict[str, Any]:
    """The default of each setting of ``model`` by its flat name (nested ones included)."""
    return dict(_defaults(model))


def deprecated_option(flag: str, tp: Any) -> Any:
    """An old option name, parsed as ``tp``, hidden from the help (see `take_deprecated`)."""
    return Annotated[tp | None, typer.Option(flag, hidden=True)]


def take_deprecated(new: Any, old: Any, new_flag: str, old_flag: str, unset: Any = None) -> Any:
    """The value of an option that was renamed: ``new`` unless only the old name
    ``old_flag`` was given (a ``warning:`` line says so); both given differently is an
    error. ``unset``: the new option's value when left out."""
    if old is None:
        return new
    typer.echo(
        f"warning: {old_flag} is deprecated (it goes in the next release); use {new_flag}",
        err=True,
    )
    if new != unset and new != old:
        raise LstmkitError(f"{old_flag} {old} and {new_flag} {new} name the same setting")
    return old
