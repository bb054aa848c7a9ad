"""The ``lstmkit`` command line: a thin Typer app over the Python API.

Each sub-module registers its commands on ``app``; no command holds logic of
its own. User errors (``LstmkitError``) become one ``error: ...`` line on
stderr and exit status 2.
"""

import sys

import typer

from lstmkit.errors import LstmkitError

app = typer.Typer(
    name="lstmkit",
    help="LSTM sequence models: forecasting and text classification.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Registration happens on import of each command module.
from lstmkit.cli import classify, forecast  # noqa: E402, F401


def main() -> None:
    """Console entry point."""
    try:
        app()
    except LstmkitError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
