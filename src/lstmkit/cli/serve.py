"""``lstmkit serve``: the REST server (`lstmkit.serving.app`) on uvicorn.

Loads the model once here, so a missing or damaged folder, an unknown backend or
a port already in use is one ``error: ...`` line and exit status 2 before
uvicorn starts. With ``--workers 1`` uvicorn runs the loaded app; with more,
each worker process builds its own from ``LSTMKIT_SERVE_*`` environment
variables through the `lstmkit.serving.app.app_from_env` factory.
"""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path
from typing import Annotated

import typer

from lstmkit.cli import app
from lstmkit.errors import LstmkitError


def _check_port(host: str, port: int) -> None:
    """Refuse a port another process listens on (or this user may not bind) in one line."""
    if not 0 <= port <= 65535:
        raise LstmkitError(f"--port must be in 0..65535, got {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise LstmkitError(f"--host {host!r} is not an address of this machine ({err})") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise LstmkitError(
                    f"port {port} on {host} is in use by another program; pick another "
                    "with --port or stop that program"
                ) from None
            raise LstmkitError(
                f"cannot listen on {host}:{port} ({err.strerror}); pick another --host/--port"
            ) from None


@app.command("serve")
def serve_cmd(
    model: Annotated[
        Path,
        typer.Option(
            "--model", "-m", help="Model folder (forecast model/, classify train --out, or export)."
        ),
    ],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (each loads the model).")] = 1,
    max_body_bytes: Annotated[
        int, typer.Option(help="Largest request body accepted; larger ones get 413.")
    ] = 1 << 20,
    backend: Annotated[
        str, typer.Option(help="auto (ONNX when exported, else PyTorch), onnx or torch.")
    ] = "auto",
    threads: Annotated[
        int | None,
        typer.Option(help="Threads per prediction (torch / onnxruntime; default: theirs)."),
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve a trained model over HTTP: POST /predict, GET /health, GET /model, docs at /docs."""
    import uvicorn

    from lstmkit.serving import app as serving

    if workers < 1:
        raise LstmkitError(f"--workers must be at least 1, got {workers}")
    if log_level not in ("critical", "error", "warning", "info", "debug", "trace"):
        raise LstmkitError(f"--log-level must be error, warning, info or debug, got {log_level!r}")
    api = serving.create_app(model, backend=backend, max_body_bytes=max_body_bytes, threads=threads)
    _check_port(host, port)
    predictor = api.state.predictor
    typer.echo(
        f"serving the {predictor.kind} in {model} ({predictor.backend}) on "
        f"http://{host}:{port} (docs at /docs), {workers} worker(s)",
        err=True,
    )
    if workers == 1:
        uvicorn.run(api, host=host, port=port, log_level=log_level)
        return
    os.environ[serving.ENV_MODEL] = str(model.resolve())
    os.environ[serving.ENV_BACKEND] = backend
    os.environ[serving.ENV_MAX_BODY] = str(max_body_bytes)
    os.environ[serving.ENV_THREADS] = "" if threads is None else str(threads)
    del api
    uvicorn.run(
        "lstmkit.serving.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
    )
