"""The ``lstmkit`` command line: a thin Typer app over the Python API.

Each sub-module registers its commands on ``app``; no command holds logic of
its own. User errors (``LstmkitError``) and command-line usage errors (an unknown
option, ``--lr abc``) become one ``error: ...`` line on stderr and exit status 2.
"""

import sys

import typer

from lstmkit.errors import LstmkitError

try:  # typer >= 0.22 carries its own copy of click
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - older typer runs on the click package
    from click import exceptions as click_errors

app = typer.Typer(
    name="lstmkit",
    help="LSTM sequence models: forecasting and text classification.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Registration happens on import of each command module.
from lstmkit.cli import classify, export, forecast, serve  # noqa: E402, F401


def main() -> None:
    """Console entry point."""
    try:
        code = app(standalone_mode=False)
    except LstmkitError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except click_errors.NoArgsIsHelpError as err:
        err.show()  # the help text, as a bare `lstmkit` or `lstmkit classify` asks for
        raise SystemExit(err.exit_code) from None
    except click_errors.UsageError as err:
        where = err.ctx.command_path if err.ctx is not None else "lstmkit"
        print(f"error: {err.format_message()} (see '{where} --help')", file=sys.stderr)
        raise SystemExit(2) from None
    except click_errors.ClickException as err:
        print(f"error: {err.format_message()}", file=sys.stderr)
        raise SystemExit(err.exit_code) from None
    except (click_errors.Abort, typer.Abort):
        print("error: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    if isinstance(code, int) and code:
        raise SystemExit(code)
