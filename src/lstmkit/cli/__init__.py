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

# numpy asks the kernel for transparent huge pages for every array of 4 MiB or more. On
# the 2-core dev machine (a Firecracker VM) a fresh huge page costs far more than the
# small pages it replaces: filling a new 160 MB array took 0.57 s with the advice against
# 0.09 s without. With freed memory kept for reuse (`keep_freed_memory`), `lstmkit
# forecast` on 100,000 series (benchmarks/scale.py) took 54 and 55 s without the advice
# against 63 and 88 s with it, side by side (alone, without the reuse, the advice off
# doubled the page faults and was no faster). The command owns its process, so it leaves
# the advice off; numpy reads this at import (nothing here has imported it yet); a value
# the user set wins.
os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")

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


#: glibc malloc settings for the command's process (`keep_freed_memory`): mallopt's
#: M_MMAP_THRESHOLD (-3), M_TRIM_THRESHOLD (-1) and M_TOP_PAD (-2)
MALLOC_SETTINGS = ((-3, 1 << 30), (-1, (1 << 31) - 1), (-2, 64 << 20))


def keep_freed_memory() -> bool:
    """Have glibc's malloc serve arrays up to 1 GiB from its heap and keep what is freed
    there for the next ones (mallopt; returns whether the C library took the settings).
    By default every allocation over 128 KiB to 32 MiB is a fresh mapping, unmapped when
    freed: each new array then faults in its pages again, which is slow on a virtual
    machine. `lstmkit forecast` on 100,000 series (benchmarks/scale.py, numpy's huge-page
    advice off) took 0.6 million page faults with this against 1.8 million without; on
    the 2-core dev machine, whose timings swing by a third from run to run, the whole
    command took a median of 61 s over 8 runs (49-83 s) against 68 s over 5 runs (64-83
    s) with glibc's and numpy's defaults. The price: a peak resident memory of 2,231 MiB
    against 1,953 MiB, and memory freed late in a run is not given back before it ends.
    Not glibc (macOS, Windows, musl's stub): nothing changes."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all([mallopt(param, value) == 1 for param, value in MALLOC_SETTINGS])


def console() -> None:
    """The ``lstmkit`` console script: `main`, then a quick exit. Before the command,
    `keep_freed_memory` (the command owns its process). Once the command has returned
    (its outputs written and closed), the exit handlers run and the streams are flushed,
    and the process ends without the interpreter's teardown of every module and object
    (about 1.2 s after torch and Lightning are loaded). With another non-daemon thread
    still running, the ordinary exit waits for it. Tests and embedding code call `main`,
    which returns or raises as usual."""
    keep_freed_memory()
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
