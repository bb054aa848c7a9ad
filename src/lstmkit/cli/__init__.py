"""The ``lstmkit`` command line: a thin Typer app over the Python API.

Each sub-module registers its commands on ``app``; no command holds logic of
its own. User errors (``LstmkitError``) and command-line usage errors (an unknown
option, ``--lr abc``) become one ``error: ...`` line on stderr and exit status 2.
"""

import atexit
import os
import sys
import threading
from typing import Any

import typer

from lstmkit.errors import LstmkitError

# What the CLI catches, all public classes: LstmkitError (ours), typer's Abort/Exit and
# the base of every click exception typer raises (typer >= 0.22 carries its own click,
# whose exceptions derive from typer.TyperException; older typer raises click's own).
# Anything else is a bug and keeps its own type, message and traceback.
try:
    import click

    _CLICK_ERRORS: tuple[type[Exception], ...] = (typer.TyperException, click.ClickException)
except ImportError:  # pragma: no cover - typer without the click package
    _CLICK_ERRORS = (typer.TyperException,)

app = typer.Typer(
    name="lstmkit",
    help="LSTM sequence models: forecasting and text classification.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Registration happens on import of each command module.
from lstmkit.cli import classify, export, forecast, serve  # noqa: E402, F401


def _report_click_error(err: Exception) -> int:
    """Print a click/typer error as one ``error:`` line (the help text for a bare
    ``lstmkit`` or ``lstmkit classify``); its exit status. Never raises."""
    try:
        code = getattr(err, "exit_code", 1)
        code = code if isinstance(code, int) else 1
        if type(err).__name__ == "NoArgsIsHelpError":  # no arguments: show the help
            err.show()  # type: ignore[attr-defined]
            return code
        message = err.format_message() if hasattr(err, "format_message") else str(err)
        ctx = getattr(err, "ctx", None)
        where = getattr(ctx, "command_path", None) or "lstmkit"
        hint = f" (see '{where} --help')" if code == 2 else ""
        print(f"error: {message}{hint}", file=sys.stderr)
        return code
    except Exception:  # a damaged exception object must not hide the user's error
        print(f"error: {err}", file=sys.stderr)
        return 2


def main() -> None:
    """Console entry point: one ``error:`` line for user errors, 130 on Ctrl-C."""
    try:
        code = app(standalone_mode=False)
    except LstmkitError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except typer.Abort:  # Ctrl-C (click turns KeyboardInterrupt into Abort)
        print("error: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except typer.Exit as err:
        raise SystemExit(getattr(err, "exit_code", 0)) from None
    except _CLICK_ERRORS as err:
        raise SystemExit(_report_click_error(err)) from None
    if code == 130:  # typer turns Ctrl-C into exit status 130, silently
        print("error: interrupted", file=sys.stderr)
    if isinstance(code, int) and code:
        raise SystemExit(code)


def console() -> None:
    """The ``lstmkit`` console script: `main`, then a quick exit. Once the command has
    returned (its outputs written and closed), the exit handlers run and the streams are
    flushed, and the process ends without the interpreter's teardown of every module and
    object (about 1.2 s after torch and Lightning are loaded). With another non-daemon
    thread still running, the ordinary exit waits for it. Tests and embedding code call
    `main`, which returns or raises as usual."""
    try:
        main()
        code: Any = 0
    except SystemExit as done:
        code = done.code
    others = [t for t in threading.enumerate() if t is not threading.main_thread()]
    if any(t.is_alive() and not t.daemon for t in others):
        raise SystemExit(code)
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # SystemExit("text"): printed, status 1, as the interpreter does
        print(code, file=sys.stderr)
        status = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # a closed pipe: nothing more can be said
            status = status or 1
    os._exit(status)
