"""The REST server of ``lstmkit serve``: a FastAPI app over one predictor.

`create_app(model_dir)` loads the model (`load_predictor`: ONNX when exported,
PyTorch otherwise) and serves:

- ``GET /health``: ``{"status": "ok", "kind": ..., "backend": ...}``
- ``GET /model``: what the model is and what a client needs to call it (kind, backend,
  lstmkit_version, max_body_bytes and the kind's own fields); never where the model lies
  on disk nor its training settings
- ``POST /predict``: the kind's request and response.

What differs between kinds (the ``/predict`` body and answer, the ``/model`` fields)
is the kind's serving adapter (`lstmkit.serving.schema.KindServing`), which
`lstmkit.kinds` names: a text classifier's in `lstmkit.tasks.text_classification.serving`
(``{"texts": [...], "combined": bool}``), a forecaster's in
`lstmkit.tasks.forecasting.serving` (``{"history": [...], "future": [...]}``), a baseline
forecaster's in `lstmkit.tasks.forecasting.baseline_serving` (the same shapes). The server
may set the default of some request fields (``defaults``: a text classifier's
``combined``, ``lstmkit serve --combined``); a request that gives the field overrides it.

With an API key (``api_key``), every route but ``/health`` (docs, unknown paths
included) requires the header ``Authorization: Bearer <key>``; a missing or wrong key
is 401 with ``WWW-Authenticate: Bearer``, compared in constant time. ``docs=False``
turns ``/docs``, ``/redoc`` and ``/openapi.json`` off (404).

Every client mistake is a 4xx with a one-line ``{"detail": "..."}``: malformed
JSON, JSON nested too deeply or a number of too many digits to read (400), a body
over ``max_body_bytes`` (413), a missing field, a wrong type, an unknown field, an
empty text, a non-finite number (NaN, Infinity, 1e400, an integer beyond float
range) or data the model refuses (422; every `LstmkitError` of the predictor).
Predictions run one at a time per process behind a lock. `app_from_env` builds the
app from ``LSTMKIT_SERVE_*`` environment variables and ``LSTMKIT_API_KEY``, for
uvicorn's factory mode with several workers. No torch here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from lstmkit import __version__, kinds
from lstmkit.errors import LstmkitError
from lstmkit.serving.predictors import Predictor, load_predictor
from lstmkit.serving.schema import Health

DEFAULT_MAX_BODY = 1 << 20  # 1 MiB
ENV_MODEL = "LSTMKIT_SERVE_MODEL"
ENV_BACKEND = "LSTMKIT_SERVE_BACKEND"
ENV_MAX_BODY = "LSTMKIT_SERVE_MAX_BODY"
ENV_THREADS = "LSTMKIT_SERVE_THREADS"
ENV_DOCS = "LSTMKIT_SERVE_DOCS"
#: the server's request defaults (``create_app(defaults=...)``) as a JSON object
ENV_DEFAULTS = "LSTMKIT_SERVE_DEFAULTS"
#: the API key clients must send (``lstmkit serve`` reads it, or --api-key-file)
ENV_API_KEY = "LSTMKIT_API_KEY"
#: the longest API key accepted, in bytes
MAX_KEY_BYTES = 4096
#: the only route served without the API key
OPEN_PATHS = frozenset({"/health"})

log = logging.getLogger("lstmkit.serve")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


# ---------------------------------------------------------------------- error handling
def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(str(text).split()).encode("utf-8", "backslashreplace").decode("utf-8")
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _where(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p != "body"]
    out = ""
    for p in parts:
        if p == "[key]":
            out += " (a column name)"
        else:
            out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out


def validation_detail(
    errors: list[dict[str, Any]], fields: str, content_type: str = "application/json"
) -> tuple[int, str]:
    """(status, one-line reason) for pydantic/FastAPI validation errors of a request:
    400 for malformed JSON, 415 for a body that is not declared JSON, else 422."""
    for err in errors:
        if err.get("type") == "json_invalid":
            ctx = err.get("ctx") or {}
            pos = err["loc"][1] if len(err.get("loc", ())) > 1 else "?"
            return 400, _one_line(
                f"malformed JSON at character {pos} ({ctx.get('error', 'invalid')}); "
                f"send a JSON object like {fields}"
            )
    whole = [e for e in errors if not _where(tuple(e.get("loc", ()))) and e["type"] != "missing"]
    if whole and "json" not in content_type.lower():
        return 415, _one_line(
            f"the body must be JSON sent with the header Content-Type: application/json "
            f"(got {content_type or 'no Content-Type'!r}); send {fields}"
        )
    if whole:
        return 422, f"the body must be a JSON object like {fields}"
    reasons = []
    for err in errors[:3]:
        where, error, msg = _where(tuple(err.get("loc", ()))), err.get("type"), err.get("msg", "")
        if error == "missing" and not where:
            reasons.append(f"the request has no JSON body; send {fields}")
        elif error == "missing":
            reasons.append(f"{where}: missing; send {fields}")
        elif error == "extra_forbidden":
            reasons.append(f"{where}: unknown field; send {fields}")
        else:
            msg = msg.removeprefix("Value error, ")
            reasons.append(f"{where}: {msg}" if where else msg)
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return 422, _one_line("; ".join(reasons) + more)


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets 413 before the app sees it.

    A declared Content-Length over the limit is refused without passing it on; a chunked
    body is read up to the limit and then refused. Before the refusal, up to
    `DRAIN_BYTES` more of the body are read and dropped: a server that closes with unread
    data resets the connection, and the client may then never see the 413. The body that
    passes is replayed to the app.
    """

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], limit: int) -> None:
        self.app, self.limit = app, limit

    async def _refuse(self, send: Send, size: str) -> None:
        detail = (
            f"request body of {size} is over the limit of {self.limit} bytes; send less "
            "(fewer texts or a shorter history) or start the server with a larger "
            "--max-body-bytes"
        )
        await JSONResponse({"detail": detail}, status_code=413, headers={"Connection": "close"})(
            {"type": "http"}, _no_receive, send
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"").decode("latin-1").strip()
        if declared.isdigit() and int(declared) > self.limit:
            await _drain(receive, DRAIN_BYTES)
            await self._refuse(send, f"{int(declared)} bytes")
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                if message.get("more_body", False):
                    await _drain(receive, DRAIN_BYTES)
                await self._refuse(send, f"at least {size} bytes")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


#: bytes of a refused body read and dropped before the 413 (a larger rest is not read)
DRAIN_BYTES = 1 << 20


async def _drain(receive: Receive, limit: int) -> None:
    """Read and drop the rest of a request body, at most ``limit`` bytes."""
    size = 0
    while size <= limit:
        message = await receive()
        if message["type"] != "http.request":
            return
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


async def _no_receive() -> Message:  # pragma: no cover - a JSONResponse never reads
    return {"type": "http.disconnect"}


# ---------------------------------------------------------------------- the API key
def check_api_key(key: str | bytes, source: str) -> str:
    """The API key read from ``source`` (a file, an environment variable), stripped of
    surrounding whitespace; `LstmkitError` when it is empty, too long or holds anything
    but printable ASCII (it travels in an HTTP header). The key never appears in a
    message."""
    if isinstance(key, bytes):
        if len(key) > MAX_KEY_BYTES:
            raise LstmkitError(
                f"{source} holds more than {MAX_KEY_BYTES} bytes; it must hold the API key alone"
            )
        key = key.decode("latin-1")  # a character a byte: any beyond ASCII is refused below
    key = key.strip()
    if not key:
        raise LstmkitError(f"{source} is empty; it must hold the API key clients send")
    if len(key) > MAX_KEY_BYTES:
        raise LstmkitError(f"{source}: the API key is longer than {MAX_KEY_BYTES} characters")
    if not all("!" <= ch <= "~" for ch in key):
        raise LstmkitError(
            f"{source}: the API key may hold only printable ASCII characters without spaces "
            "(it is sent in the Authorization header); use a key like the output of "
            "`openssl rand -hex 32`"
        )
    return key


class RequireKey:
    """ASGI middleware: every HTTP request but those for `OPEN_PATHS` needs the header
    ``Authorization: Bearer <key>``; else 401 with ``WWW-Authenticate: Bearer`` and a
    one-line reason, before the app (or `BodyLimit`) sees it. The keys are compared as
    SHA-256 digests with `hmac.compare_digest`: the time taken tells neither the key nor
    its length."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], key: str) -> None:
        self.app = app
        self.digest = hashlib.sha256(key.encode("ascii")).digest()

    def _refusal(self, scope: Scope) -> tuple[str, str] | None:
        """(reason, WWW-Authenticate value) for a request without the right key; None
        when the key is right."""
        values = [v for k, v in scope.get("headers") or [] if k.lower() == b"authorization"]
        challenge = 'Bearer realm="lstmkit"'
        how = "send the header 'Authorization: Bearer <key>'"
        if not values:
            return f"this server requires an API key; {how}", challenge
        if len(values) > 1:
            return f"more than one Authorization header; {how} once", challenge
        scheme, _, token = values[0].strip().partition(b" ")
        if scheme.lower() != b"bearer" or not token.strip():
            return f"the Authorization header is not a bearer key; {how}", challenge
        given = hashlib.sha256(token.strip()).digest()
        if not hmac.compare_digest(given, self.digest):
            return f"wrong API key; {how} with the server's key", (
                challenge + ', error="invalid_token"'
            )
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        root = scope.get("root_path", "")
        if path in OPEN_PATHS or (root and path.removeprefix(root) in OPEN_PATHS):
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        await _drain(receive, DRAIN_BYTES)  # as `BodyLimit`: so that the client sees the 401
        detail, challenge = refusal
        response = JSONResponse(
            {"detail": detail}, status_code=401, headers={"WWW-Authenticate": challenge}
        )
        await response({"type": "http"}, _no_receive, send)


def _with_bearer_scheme(app: FastAPI) -> None:
    """Declare the bearer key in the OpenAPI description (every route but `OPEN_PATHS`)."""
    make = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = make()
            schema.setdefault("components", {})["securitySchemes"] = {
                "apiKey": {"type": "http", "scheme": "bearer"}
            }
            schema["security"] = [{"apiKey": []}]
            for path in OPEN_PATHS:
                for operation in schema.get("paths", {}).get(path, {}).values():
                    operation["security"] = []
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _body_error(exc: BaseException | None) -> str:
    """Why a body that FastAPI could not read as JSON was refused (its ``__cause__``)."""
    if isinstance(exc, UnicodeDecodeError):
        return "the body is not UTF-8 JSON"
    if isinstance(exc, RecursionError):
        return "the JSON body is nested too deeply"
    if isinstance(exc, ValueError) and "digits" in str(exc):
        return "the JSON body holds a number with too many digits to read (over 4300)"
    return "the body cannot be read as JSON"


# ---------------------------------------------------------------------- /model
def model_info(
    pred: Any, max_body_bytes: int, defaults: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """What ``GET /model`` tells of the predictor: what a client needs, field by field (the
    predictor's ``info`` also holds the whole training config, which is no client's
    business): kind, backend, versions, the body limit and the kind's own fields
    (`lstmkit.serving.schema.KindServing.info`, with the server's request ``defaults``)."""
    adapter = kinds.get(pred.kind).serving_adapter()
    out: dict[str, Any] = {
        "kind": pred.kind,
        "backend": pred.backend,
        "lstmkit_version": str(pred.info.get("lstmkit_version", __version__)),
        "server_version": __version__,
        "max_body_bytes": max_body_bytes,
    }
    return out | adapter.info(pred, adapter.check_defaults(pred, defaults or {}))


# ---------------------------------------------------------------------- the app
def create_app(
    model_dir: str | os.PathLike[str] | None = None,
    *,
    backend: str = "auto",
    max_body_bytes: int = DEFAULT_MAX_BODY,
    threads: int | None = None,
    predictor: Predictor | None = None,
    api_key: str | None = None,
    docs: bool = True,
    defaults: Mapping[str, Any] | None = None,
) -> FastAPI:
    """The FastAPI app serving the model at ``model_dir`` (or an already loaded
    ``predictor``); ``backend`` and ``threads`` as in `load_predictor`; bodies over
    ``max_body_bytes`` get 413. ``api_key``: the key every route but ``/health`` requires
    (None: none); ``docs``: serve ``/docs``, ``/redoc`` and ``/openapi.json``.
    ``defaults``: request field -> the value a request that leaves it out gets (only the
    kind's ``request_defaults``, e.g. ``{"combined": True}`` for a text classifier with a
    mixture). A missing or damaged model, an empty key or a default the model cannot take
    raises `LstmkitError` here, before serving."""
    if max_body_bytes < 1:
        raise LstmkitError(f"--max-body-bytes must be at least 1, got {max_body_bytes}")
    if api_key is not None:
        api_key = check_api_key(api_key, "api_key")
    if predictor is None:
        if model_dir is None:
            raise LstmkitError("create_app needs a model folder or a predictor")
        predictor = load_predictor(model_dir, backend, threads)
    pred: Any = predictor
    kind = pred.kind
    adapter = kinds.get(kind).serving_adapter()
    defaults = dict(defaults or {})
    unknown = sorted(set(defaults) - set(adapter.request_defaults))
    if unknown:
        raise LstmkitError(
            f"a {kinds.get(kind).title}'s requests have no field {', '.join(unknown)} to set a "
            "default for; leave it out"
        )
    defaults = adapter.check_defaults(pred, defaults)
    described = model_info(pred, max_body_bytes, defaults)
    lock = threading.Lock()
    fields = adapter.example
    key_note = " Every route but /health needs `Authorization: Bearer <key>`." if api_key else ""
    app = FastAPI(
        title="lstmkit",
        version=__version__,
        summary=f"lstmkit {kind} ({pred.backend}) served over HTTP",
        description=(
            f"Serves an lstmkit {kind} with the {pred.backend} backend; GET /model tells "
            f"its settings. Errors: 4xx with a one-line `detail`.{key_note}"
        ),
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.state.predictor = pred
    if api_key:
        _with_bearer_scheme(app)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        content_type = request.headers.get("content-type", "")
        status, detail = validation_detail(list(exc.errors()), fields, content_type)
        return JSONResponse({"detail": _one_line(detail)}, status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = str(exc.detail)
        if exc.status_code == 400 and "parsing the body" in detail:
            detail = f"{_body_error(exc.__cause__)}; send {fields}"
        return JSONResponse(
            {"detail": _one_line(detail)}, status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(LstmkitError)
    async def _refused(request: Request, exc: LstmkitError) -> JSONResponse:
        return JSONResponse({"detail": _one_line(str(exc))}, status_code=422)

    @app.exception_handler(Exception)
    async def _crashed(request: Request, exc: Exception) -> JSONResponse:
        log.exception("prediction failed")
        detail = _one_line(f"internal error: {type(exc).__name__}: {exc}")
        return JSONResponse({"detail": detail}, status_code=500)

    @app.get("/health", response_model=Health, summary="Liveness and the model's kind")
    def health() -> Health:
        return Health(status="ok", kind=kind, backend=pred.backend)

    @app.get(
        "/model",
        response_model=adapter.info_model,
        summary="What the served model is and the settings a client needs",
    )
    def model() -> dict[str, Any]:
        return described

    adapter.add_routes(app, pred, lock, defaults)

    app.add_middleware(BodyLimit, limit=max_body_bytes)
    if api_key:
        app.add_middleware(RequireKey, key=api_key)  # added last: it runs first
    return app


def api_key_from_env() -> str | None:
    """The key in ``LSTMKIT_API_KEY`` (stripped), None when it is not set; set but empty
    raises `LstmkitError` (an empty key must not mean "no key")."""
    key = os.environ.get(ENV_API_KEY)
    return None if key is None else check_api_key(key, ENV_API_KEY)


def app_from_env() -> FastAPI:
    """`create_app` with the settings in ``LSTMKIT_SERVE_MODEL`` / ``_BACKEND`` /
    ``_MAX_BODY`` / ``_THREADS`` / ``_DOCS`` / ``_DEFAULTS`` (a JSON object) and the key in
    ``LSTMKIT_API_KEY`` (how ``lstmkit serve --workers N`` hands them to each worker)."""
    model = os.environ.get(ENV_MODEL)
    if not model:
        raise LstmkitError(f"{ENV_MODEL} is not set; start the server with lstmkit serve")
    try:
        defaults = json.loads(os.environ.get(ENV_DEFAULTS) or "{}")
    except ValueError:
        defaults = None
    if not isinstance(defaults, dict):
        raise LstmkitError(
            f"{ENV_DEFAULTS} must be a JSON object; start the server with lstmkit serve"
        )
    return create_app(
        Path(model),
        backend=os.environ.get(ENV_BACKEND, "auto"),
        max_body_bytes=int(os.environ.get(ENV_MAX_BODY, DEFAULT_MAX_BODY)),
        threads=int(os.environ[ENV_THREADS]) if os.environ.get(ENV_THREADS) else None,
        api_key=api_key_from_env(),
        docs=os.environ.get(ENV_DOCS, "1") != "0",
        defaults=defaults,
    )
