"""The REST server of ``lstmkit serve``: a FastAPI app over one predictor.

`create_app(model_dir)` loads the model (`load_predictor`: ONNX when exported,
PyTorch otherwise) and serves:

- ``GET /health``: ``{"status": "ok", "kind": ..., "backend": ...}``
- ``GET /model``: what the model is (kind, lstmkit_version, backend, config and the
  task's fields: labels, or horizon/quantiles/freq/target/covariates/...)
- ``POST /predict``: a text classifier takes ``{"texts": [str, ...]}`` and returns
  ``{"classes": [...], "labels": [...], "probabilities": [[...], ...]}``; a
  forecaster takes ``{"history": [record, ...], "future": [record, ...]}`` (both
  optional; an empty body forecasts after the training data) and returns
  ``{"horizon": h, "forecast": [{time, forecast, q10, ...}, ...]}``.

Every client mistake is a 4xx with a one-line ``{"detail": "..."}``: malformed
JSON (400), a body over ``max_body_bytes`` (413), a missing field, a wrong type,
an unknown field, an empty text, a non-finite number or data the model refuses
(422; the predictor's `LstmkitError` message). Predictions run one at a time per
process behind a lock. `app_from_env` builds the app from ``LSTMKIT_SERVE_*``
environment variables, for uvicorn's factory mode with several workers.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from fastapi import Body, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StrictInt,
    StrictStr,
)
from starlette.exceptions import HTTPException as StarletteHTTPException

from lstmkit import __version__
from lstmkit.errors import LstmkitError
from lstmkit.serving.predictors import Predictor, load_predictor

DEFAULT_MAX_BODY = 1 << 20  # 1 MiB
ENV_MODEL = "LSTMKIT_SERVE_MODEL"
ENV_BACKEND = "LSTMKIT_SERVE_BACKEND"
ENV_MAX_BODY = "LSTMKIT_SERVE_MAX_BODY"
ENV_THREADS = "LSTMKIT_SERVE_THREADS"

log = logging.getLogger("lstmkit.serve")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# ---------------------------------------------------------------------- request / response


def _unicode(text: str) -> str:
    """Refuse text that cannot be written as UTF-8 (JSON's lone surrogates, ``"\\ud800"``)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        bad = text[err.start : err.end].encode("unicode_escape").decode()
        raise ValueError(f"holds {bad}, which is not a Unicode character") from None
    return text


def _check_cell(value: Any) -> Any:
    """A record's value: a finite number, a string or null (JSON true/false, lists and
    objects are refused)."""
    if value is None:
        return value
    if isinstance(value, str):
        return _unicode(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        shown = json.dumps(value)[:40] if isinstance(value, (bool, list, dict)) else repr(value)
        raise ValueError(f"must be a number, a string or null, got {shown}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {value}")
    return value


Cell = Annotated[
    int | float | str | None,
    PlainValidator(_check_cell, json_schema_input_type=int | float | str | None),
]
Record = dict[Annotated[str, AfterValidator(_unicode)], Cell]
Label = StrictStr | StrictInt


def _non_empty(text: str) -> str:
    _unicode(text)
    if not text.strip():
        raise ValueError("empty text; every text needs at least one word")
    return text


class TextRequest(BaseModel):
    """Texts to classify: at least one, none empty."""

    model_config = ConfigDict(extra="forbid")
    texts: list[Annotated[StrictStr, AfterValidator(_non_empty)]] = Field(
        min_length=1, examples=[["A wonderful, moving film."]]
    )


class TextResponse(BaseModel):
    """One label per text and the probabilities of ``classes`` (n rows, classes columns)."""

    classes: list[Label]
    labels: list[Label]
    probabilities: list[list[float]]


class ForecastRequest(BaseModel):
    """The series to forecast from (records of time, target and covariate columns; omitted:
    the training data) and the known future covariates over the horizon (records)."""

    model_config = ConfigDict(extra="forbid")
    history: list[Record] | None = Field(
        default=None,
        min_length=1,
        examples=[[{"month": "1960-11-01", "passengers": 390}]],
    )
    future: list[Record] | None = Field(default=None, min_length=1)


class ForecastResponse(BaseModel):
    """``horizon`` forecast rows per series: (id,) time, forecast and one column a quantile."""

    horizon: int
    forecast: list[Record]


class Health(BaseModel):
    """Liveness: the server answers and has its model loaded."""

    status: str
    kind: str
    backend: str


class ModelInfo(BaseModel):
    """What the served model is; the task adds its fields (labels, horizon, quantiles, ...)."""

    model_config = ConfigDict(extra="allow")
    kind: str
    lstmkit_version: str
    backend: str
    config: dict[str, Any]
    server_version: str
    max_body_bytes: int


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
        where, kind, msg = _where(tuple(err.get("loc", ()))), err.get("type"), err.get("msg", "")
        if kind == "missing" and not where:
            reasons.append(f"the request has no JSON body; send {fields}")
        elif kind == "missing":
            reasons.append(f"{where}: missing; send {fields}")
        elif kind == "extra_forbidden":
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


# ---------------------------------------------------------------------- forecasts as JSON
def _cell(value: Any) -> Any:
    """A forecast table cell as JSON: times as text, numpy numbers as Python numbers."""
    if isinstance(value, pd.Timestamp):
        return (
            value.isoformat() if value != value.normalize() or value.tzinfo else str(value.date())
        )
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        raise LstmkitError("the model produced a non-finite forecast")
    return value


def forecast_records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of a forecast table as JSON records (times ISO 8601, date alone at midnight)."""
    return [{str(k): _cell(v) for k, v in row.items()} for row in table.to_dict("records")]


def _history_frame(records: list[dict[str, Any]], pred: Any) -> pd.DataFrame:
    """Request records -> the DataFrame `predict` takes (the time column as the index when
    the model learnt its times from an unnamed DatetimeIndex)."""
    frame = pd.DataFrame.from_records(records)
    if getattr(getattr(pred, "state", None), "time_from_index", False):
        col = pred.info.get("time_col") or "time"
        if col not in frame.columns:
            raise LstmkitError(f"history records need a {col!r} column with the timestamps")
        try:
            frame = frame.set_index(pd.DatetimeIndex(pd.to_datetime(frame.pop(col))))
        except (ValueError, TypeError) as err:
            raise LstmkitError(f"history {col!r} holds values that are not dates ({err})") from None
        frame.index.name = None
    return frame


# ---------------------------------------------------------------------- the app
def create_app(
    model_dir: str | os.PathLike[str] | None = None,
    *,
    backend: str = "auto",
    max_body_bytes: int = DEFAULT_MAX_BODY,
    threads: int | None = None,
    predictor: Predictor | None = None,
) -> FastAPI:
    """The FastAPI app serving the model at ``model_dir`` (or an already loaded
    ``predictor``); ``backend`` and ``threads`` as in `load_predictor`; bodies over
    ``max_body_bytes`` get 413. A missing or damaged model raises `LstmkitError` here,
    before serving."""
    if max_body_bytes < 1:
        raise LstmkitError(f"--max-body-bytes must be at least 1, got {max_body_bytes}")
    if predictor is None:
        if model_dir is None:
            raise LstmkitError("create_app needs a model folder or a predictor")
        predictor = load_predictor(model_dir, backend, threads)
    pred: Any = predictor
    info = dict(pred.info)
    kind = pred.kind
    lock = threading.Lock()
    fields = (
        '{"texts": ["some text", ...]}'
        if kind == "text_classifier"
        else '{"history": [records], "future": [records]} (both optional)'
    )
    app = FastAPI(
        title="lstmkit",
        version=__version__,
        summary=f"lstmkit {kind} ({pred.backend}) served over HTTP",
        description=(
            f"Serves the lstmkit {kind} from `{model_dir or 'memory'}` with the "
            f"{pred.backend} backend. Errors: 4xx with a one-line `detail`."
        ),
    )
    app.state.predictor = pred

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        content_type = request.headers.get("content-type", "")
        status, detail = validation_detail(list(exc.errors()), fields, content_type)
        return JSONResponse({"detail": _one_line(detail)}, status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = str(exc.detail)
        if exc.status_code == 400 and "parsing the body" in detail:
            detail = f"the body is not UTF-8 JSON; send {fields}"
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

    @app.get("/model", response_model=ModelInfo, summary="What the served model is")
    def model() -> dict[str, Any]:
        return info | {"server_version": __version__, "max_body_bytes": max_body_bytes}

    if kind == "text_classifier":
        classes = list(pred.labels)

        @app.post("/predict", response_model=TextResponse, summary="Classify texts")
        def predict_texts(request: TextRequest) -> TextResponse:
            with lock:
                proba = pred.predict_proba(request.texts)
            labels = [classes[int(i)] for i in proba.argmax(axis=1)]
            return TextResponse(
                classes=classes, labels=labels, probabilities=proba.astype(float).tolist()
            )

    else:

        @app.post("/predict", response_model=ForecastResponse, summary="Forecast a series")
        def predict_series(
            request: Annotated[ForecastRequest | None, Body()] = None,
        ) -> ForecastResponse:
            request = request or ForecastRequest()
            if request.future and info.get("future_covariates") == []:
                raise LstmkitError("this model uses no known future covariates; leave out 'future'")
            data = _history_frame(request.history, pred) if request.history else None
            future = pd.DataFrame.from_records(request.future) if request.future else None
            with lock:
                table = pred.predict(data, future)
            return ForecastResponse(
                horizon=int(info.get("horizon", 0)), forecast=forecast_records(table)
            )

    app.add_middleware(BodyLimit, limit=max_body_bytes)
    return app


def app_from_env() -> FastAPI:
    """`create_app` with the settings in ``LSTMKIT_SERVE_MODEL`` / ``_BACKEND`` /
    ``_MAX_BODY`` / ``_THREADS`` (how ``lstmkit serve --workers N`` hands them to each
    worker)."""
    model = os.environ.get(ENV_MODEL)
    if not model:
        raise LstmkitError(f"{ENV_MODEL} is not set; start the server with lstmkit serve")
    return create_app(
        Path(model),
        backend=os.environ.get(ENV_BACKEND, "auto"),
        max_body_bytes=int(os.environ.get(ENV_MAX_BODY, DEFAULT_MAX_BODY)),
        threads=int(os.environ[ENV_THREADS]) if os.environ.get(ENV_THREADS) else None,
    )
