"""``lstmkit serve``: the REST server (`lstmkit.serving.app`) on uvicorn.

Reads the API key (``--api-key-file`` or ``LSTMKIT_API_KEY``) and loads the model
once here, so an empty or unreadable key file, a missing or damaged folder, an
unknown backend or a port already in use is one ``error: ...`` line and exit status
2 before uvicorn starts. Without a key on an address other hosts can reach, one
``warning:`` line. ``--combined`` makes a text classifier's mixture with its
bag-of-words baseline the default of a request's ``combined`` field (refused in one
line for a model without a mixture, or of another kind). With ``--workers 1`` uvicorn
runs the loaded app; with more, each worker process builds its own from
``LSTMKIT_SERVE_*`` environment variables (and the key in ``LSTMKIT_API_KEY``) through
the `lstmkit.serving.app.app_from_env` factory. Nothing on the way to serving an ONNX
export imports torch.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import socket
import stat
from pathlib import Path
from typing import Annotated

import typer

from lstmkit.cli import app
from lstmkit.errors import LstmkitError


def read_api_key(path: Path) -> str:
    """The API key in the file at ``path`` (surrounding whitespace stripped), read once;
    a missing, unreadable, empty or oversized file, a folder or a device raises
    `LstmkitError` (a pipe such as ``<(pass show key)`` is read)."""
    from lstmkit.serving.app import MAX_KEY_BYTES, check_api_key

    where = f"--api-key-file {path}"
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise LstmkitError(f"{where} does not exist; pass the file holding the API key") from None
    except OSError as err:
        raise LstmkitError(f"{where} cannot be read ({err.strerror})") from None
    if stat.S_ISDIR(mode):
        raise LstmkitError(f"{where} is a folder; pass the file holding the API key")
    if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
        raise LstmkitError(f"{where} is not a regular file; pass the file holding the API key")
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_KEY_BYTES + 1)
    except OSError as err:
        raise LstmkitError(f"{where} cannot be read ({err.strerror})") from None
    return check_api_key(data, where)


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` names is a loopback one (127.0.0.0/8, ::1,
    localhost): only this machine can connect. 0.0.0.0, :: and LAN addresses are not."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return False
    for info in infos:
        try:
            address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if not address.is_loopback:
            return False
    return bool(infos)


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
    api_key_file: Annotated[
        Path | None,
        typer.Option(
            help="File holding the API key every route but /health requires (as "
            "'Authorization: Bearer <key>'); default: the LSTMKIT_API_KEY environment "
            "variable, else no key."
        ),
    ] = None,
    docs: Annotated[
        bool, typer.Option("--docs/--no-docs", help="Serve /docs, /redoc and /openapi.json.")
    ] = True,
    combined: Annotated[
        bool,
        typer.Option(
            "--combined",
            help="A text classifier: predict with its mixture with the bag-of-words baseline "
            'unless a request says "combined": false (default: the network alone unless a '
            "request says true).",
        ),
    ] = False,
) -> None:
    """Serve a trained model over HTTP: POST /predict, GET /health, GET /model, docs at /docs."""
    import uvicorn

    from lstmkit.serving import app as serving

    if workers < 1:
        raise LstmkitError(f"--workers must be at least 1, got {workers}")
    if log_level not in ("critical", "error", "warning", "info", "debug", "trace"):
        raise LstmkitError(f"--log-level must be error, warning, info or debug, got {log_level!r}")
    key = read_api_key(api_key_file) if api_key_file is not None else serving.api_key_from_env()
    defaults = {"combined": True} if combined else {}
    api = serving.create_app(
        model,
        backend=backend,
        max_body_bytes=max_body_bytes,
        threads=threads,
        api_key=key,
        docs=docs,
        defaults=defaults,
    )
    _check_port(host, port)
    predictor = api.state.predictor
    if key is None and not is_loopback(host):
        typer.echo(
            f"warning: serving on {host} without an API key: anyone who can reach this "
            f"address can use the model; set one with --api-key-file or {serving.ENV_API_KEY}",
            err=True,
        )
    notes = ["docs at /docs" if docs else "no docs"]
    if combined:
        notes.append("combined predictions by default")
    if key is not None:
        where = "--api-key-file" if api_key_file is not None else serving.ENV_API_KEY
        notes.append(f"API key required, from {where}")
    typer.echo(
        f"serving the {predictor.kind} in {model} ({predictor.backend}) on "
        f"http://{host}:{port} ({', '.join(notes)}), {workers} worker(s)",
        err=True,
    )
    if workers == 1:
        uvicorn.run(api, host=host, port=port, log_level=log_level)
        return
    os.environ[serving.ENV_MODEL] = str(model.resolve())
    os.environ[serving.ENV_BACKEND] = backend
    os.environ[serving.ENV_MAX_BODY] = str(max_body_bytes)
    os.environ[serving.ENV_THREADS] = "" if threads is None else str(threads)
    os.environ[serving.ENV_DOCS] = "1" if docs else "0"
    os.environ[serving.ENV_DEFAULTS] = json.dumps(defaults)
    if key is None:
        os.environ.pop(serving.ENV_API_KEY, None)
    else:
        os.environ[serving.ENV_API_KEY] = key  # the workers' environment: this user's alone
    del api
    uvicorn.run(
        "lstmkit.serving.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
    )
