"""``lstmkit export``: write a saved model as an ONNX graph plus the JSON to use it.

``lstmkit export --model DIR --format onnx [--out OUT]`` exports a saved model of any
kind that exports (a forecaster, a baseline forecaster, a text classifier:
`lstmkit.export.export_model`, which asks `lstmkit.kinds`) to ``OUT`` (default ``DIR/onnx``, where
`lstmkit.runtime.load` and ``lstmkit serve`` look), after checking onnxruntime against
PyTorch. Bad input prints one ``error: ...`` line, exits with 2 and writes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lstmkit.cli import app
from lstmkit.errors import LstmkitError


@app.command("export")
def export_cmd(
    model: Annotated[
        Path, typer.Option("--model", "-m", help="Model folder (any kind that exports).")
    ],
    fmt: Annotated[str, typer.Option("--format", help="Export format: onnx.")] = "onnx",
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Export folder (default: MODEL/onnx).")
    ] = None,
) -> None:
    """Export a saved model to ONNX (checked against PyTorch) for inference without torch."""
    from lstmkit import kinds
    from lstmkit.export import export_model

    try:
        kind, folder = export_model(model, out, fmt)
    except LstmkitError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    files = ", ".join(sorted(p.name for p in folder.iterdir()))
    typer.echo(f"exported the {kinds.get(kind).title} to {folder} ({files})")
