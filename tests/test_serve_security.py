"""`lstmkit serve` under hostile use: the API key, the docs switch, what /model tells,
a torch-free ONNX server, and JSON that is valid but absurd (huge integers, NaN, deep
nesting, a wrong type in every field).

The app is tested in-process with FastAPI's TestClient; a real ``lstmkit serve`` runs
in a subprocess only where the command line itself is the subject (the key file, the
warning line, worker processes). Tiny models are trained once per module.
"""

from __future__ import annotations

import base64
import json
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from lstmkit import Forecaster, TextClassifier, __version__
from lstmkit.cli import main
from lstmkit.cli.serve import is_loopback, read_api_key
from lstmkit.errors import LstmkitError
from lstmkit.serving.app import ENV_API_KEY, create_app

CLI = [sys.executable, "-c", "from lstmkit.cli import main; main()"]
KEY = "k3y-" + "0123456789abcdef" * 2  # what clients send
JSON = {"content-type": "application/json"}
TEXTS = ["the film was great", "awful plot", "great " * 30]


def _series(n: int = 48) -> pd.DataFrame:
    t = np.arange(n)
    return pd.DataFrame(
        {
            "month": pd.date_range("2000-01-01", periods=n, freq="MS"),
            "y": 50 + 0.5 * t + 10 * np.sin(2 * np.pi * t / 12),
            "temp": np.cos(t / 3),
            "promo": (t % 3 == 0).astype(float),
        }
    )


def _records(df: pd.DataFrame) -> list[dict]:
    out = df.copy()
    out["month"] = out["month"].dt.strftime("%Y-%m-%d")
    return out.to_dict("records")


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """``fc``: a forecaster with a covariate and a known future covariate, exported into
    ``fc/onnx``; ``clf``: a text classifier, ``clf_onnx`` its export folder."""
    from lstmkit.export import export_model

    root = tmp_path_factory.mktemp("serve_security")
    Forecaster(horizon=3, window=8, hidden_size=8, max_epochs=1, progress=False).fit(
        _series(), target="y", time_col="month", covariates=["temp"], future_covariates=["promo"]
    ).save(root / "fc")
    export_model(root / "fc")
    rng = random.Random(0)
    texts, labels = [], []
    for _ in range(80):
        label = rng.choice(["neg", "pos"])
        words = [rng.choice(["the", "film", "plot"]) for _ in range(rng.randint(2, 6))]
        texts.append(" ".join([*words, "great" if label == "pos" else "awful"]))
        labels.append(label)
    TextClassifier(embedding_dim=8, hidden_size=8, batch_size=32, max_epochs=1, seed=0).fit(
        texts, labels, progress=False
    ).save(root / "clf")
    export_model(root / "clf", root / "clf_onnx")
    return {"root": root, "fc": root / "fc", "clf": root / "clf", "clf_onnx": root / "clf_onnx"}


def _client(model: Path, **options) -> TestClient:
    return TestClient(create_app(model, **options), raise_server_exceptions=False)


def _one_line(got: httpx.Response, status: int, reason: str) -> str:
    assert got.status_code == status, got.text
    detail = got.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and reason in detail, detail
    return detail


# ---------------------------------------------------------------------- the API key
def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


WRONG = [
    ("no header", {}, "requires an API key"),
    ("wrong key", _bearer("x" * len(KEY)), "wrong API key"),
    ("a prefix of the key", _bearer(KEY[:-1]), "wrong API key"),
    ("the key and more", _bearer(KEY + "0"), "wrong API key"),
    ("key in another case", _bearer(KEY.upper()), "wrong API key"),
    ("bearer without a key", {"Authorization": "Bearer "}, "not a bearer key"),
    ("the key alone", {"Authorization": KEY}, "not a bearer key"),
    (
        "basic auth",
        {"Authorization": "Basic " + base64.b64encode(f"u:{KEY}".encode()).decode()},
        "not a bearer key",
    ),
    ("another header", {"X-API-Key": KEY}, "requires an API key"),
]


@pytest.mark.parametrize(("case", "headers", "reason"), WRONG, ids=[w[0] for w in WRONG])
def test_every_route_but_health_needs_the_key(models, case, headers, reason):
    with _client(models["clf"], api_key=KEY) as client:
        assert client.get("/health", headers=headers).json()["status"] == "ok"
        requests = [
            ("GET", "/model", None),
            ("POST", "/predict", {"texts": TEXTS}),
            ("GET", "/docs", None),
            ("GET", "/redoc", None),
            ("GET", "/openapi.json", None),
            ("GET", "/no-such-route", None),
            ("POST", "/predict", {"texts": ["x" * 10_000_000]}),  # over the body limit too
        ]
        for method, path, body in requests:
            got = client.request(method, path, json=body, headers=headers)
            detail = _one_line(got, 401, reason)
            assert got.headers["www-authenticate"].startswith('Bearer realm="lstmkit"'), path
            assert KEY not in detail and KEY not in str(got.headers), path
            assert "Authorization: Bearer <key>" in detail


def test_with_the_key_the_server_answers_as_the_model(models):
    expected = TextClassifier.load(models["clf"]).predict_proba(TEXTS)
    with _client(models["clf"], api_key=KEY) as client:
        for scheme in ("Bearer", "bearer", "BEARER"):
            got = client.post(
                "/predict", json={"texts": TEXTS}, headers={"Authorization": f"{scheme} {KEY}"}
            )
            assert got.status_code == 200, got.text
            np.testing.assert_allclose(got.json()["probabilities"], expected, rtol=1e-6, atol=1e-7)
        assert client.get("/model", headers=_bearer(KEY)).json()["labels"] == ["neg", "pos"]
        assert client.get("/no-such-route", headers=_bearer(KEY)).status_code == 404
        assert client.get("/docs", headers=_bearer(KEY)).status_code == 200
        schema = client.get("/openapi.json", headers=_bearer(KEY))
        assert KEY not in schema.text
        schema = schema.json()
        assert schema["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
        assert schema["security"] == [{"apiKey": []}]
        assert schema["paths"]["/health"]["get"]["security"] == []
        got = client.post(
            "/predict",
            json={"texts": TEXTS},
            headers=[("Authorization", f"Bearer {KEY}"), ("Authorization", "Bearer x")],
        )
        _one_line(got, 401, "more than one Authorization header")


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("", "is empty"),
        (" \t\n", "is empty"),
        ("two words", "printable ASCII"),
        ("clé-secrète", "printable ASCII"),
        ("line\nbreak", "printable ASCII"),
        ("k" * 5000, "longer than 4096"),
    ],
)
def test_create_app_refuses_an_unusable_key(models, key, reason):
    with pytest.raises(LstmkitError, match=reason) as err:
        create_app(models["clf_onnx"], api_key=key)
    if key.strip():
        assert key.strip()[:8] not in str(err.value)


# ---------------------------------------------------------------------- docs
def test_no_docs_turns_the_docs_and_the_schema_off(models):
    with _client(models["clf_onnx"], docs=False) as client:
        for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"):
            assert client.get(path).status_code == 404, path
        got = client.post("/predict", json={"texts": TEXTS})
        assert got.status_code == 200, got.text
    with _client(models["clf_onnx"], docs=False, api_key=KEY) as client:
        assert client.get("/docs", headers=_bearer(KEY)).status_code == 404
        assert client.get("/openapi.json").status_code == 401
    with _client(models["clf_onnx"]) as client:  # the default: docs on
        assert client.get("/docs").status_code == 200
        assert client.get("/redoc").status_code == 200


# ---------------------------------------------------------------------- /model
def test_model_tells_a_client_the_settings_and_no_paths(models):
    root = str(models["root"])
    expected = {
        "kind": "forecaster",
        "lstmkit_version": __version__,
        "server_version": __version__,
        "max_body_bytes": 5000,
        "horizon": 3,
        "window": 8,
        "min_rows": 8,
        "freq": "MS",
        "tz": None,
        "quantiles": [0.1, 0.5, 0.9],
        "target": "y",
        "time_col": "month",
        "id_col": None,
        "covariates": ["temp", "promo"],
        "future_covariates": ["promo"],
        "history_columns": ["month", "y", "temp", "promo"],
        "future_columns": ["month", "promo"],
    }
    model = Forecaster.load(models["fc"])
    series = _series()
    for backend in ("torch", "onnx"):
        with _client(models["fc"], backend=backend, max_body_bytes=5000) as client:
            info = client.get("/model")
            assert info.json() == expected | {"backend": backend}
            schema = client.get("/openapi.json").text
            for text in (info.text, schema):  # neither the folder nor the training settings
                assert root not in text and "config" not in text and "optimizer" not in text
            # a client that follows /model gets the model's own forecast
            history = series.iloc[-20:-3][info.json()["history_columns"]]
            future = series.iloc[-3:][info.json()["future_columns"]]
            got = client.post(
                "/predict", json={"history": _records(history), "future": _records(future)}
            )
            assert got.status_code == 200, got.text
            want = model.predict(history, future=future)
            rows = got.json()["forecast"]
            for col in ("forecast", "q10", "q50", "q90"):
                np.testing.assert_allclose([r[col] for r in rows], want[col], rtol=1e-5)
    weight = TextClassifier.load(models["clf"]).baseline.network_weight  # its mixture's
    assert weight is not None
    for path, backend in ((models["clf"], "torch"), (models["clf_onnx"], "onnx")):
        with _client(path) as client:
            info = client.get("/model")
            assert info.json() == {
                "kind": "text_classifier",
                "backend": backend,
                "lstmkit_version": __version__,
                "server_version": __version__,
                "max_body_bytes": 1 << 20,
                "labels": ["neg", "pos"],
                "max_length": 400,
                "truncation": "head",
                "mixture_weight": weight,
                "combined": False,
            }
            assert root not in client.get("/openapi.json").text


# ---------------------------------------------------------------------- absurd JSON
def _history_body(value: str, column: str = "y", row: int = 0, part: str = "history") -> bytes:
    """The fc model's valid request with one cell replaced by the raw JSON ``value``."""
    series = _series()
    body = {"history": _records(series.iloc[-20:-3]), "future": _records(series.iloc[-3:])}
    body[part][row][column] = "__cell__"
    return json.dumps(body).replace('"__cell__"', value).encode()


BIG = "9" * 400
ABSURD = [
    ("400-digit target", _history_body(BIG), 422, "history[0].y: must be a finite number"),
    ("-400-digit target", _history_body("-" + BIG), 422, "beyond -1.8e308"),
    ("400-digit covariate", _history_body(BIG, "temp", 16), 422, "history[16].temp: must be"),
    ("400-digit time", _history_body(BIG, "month"), 422, "history[0].month: must be a finite"),
    ("400-digit future", _history_body(BIG, "promo", 1, "future"), 422, "future[1].promo"),
    ("4400-digit number", _history_body("9" * 4400), 400, "number with too many digits"),
    ("NaN target", _history_body("NaN"), 422, "history[0].y: must be a finite number"),
    ("Infinity future", _history_body("Infinity", "promo", 0, "future"), 422, "future[0].promo"),
    ("1e999 covariate", _history_body("1e999", "temp", 2), 422, "must be a finite number"),
    ("deep lists", b'{"history": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", 400, "too deeply"),
    ("deep objects", b'{"history": [' + b'{"y":' * 9_000 + b"1" + b"}" * 9_000 + b"]}", 400, "too"),
    ("deep cell", _history_body("[" * 500 + "]" * 500), 422, "history[0].y: must be a number"),
    ("future a string", b'{"future": "promo"}', 422, "future: Input should be a valid list"),
    ("future a number", b'{"future": 3}', 422, "future: Input should be a valid list"),
    ("future an object", b'{"future": {"promo": 1}}', 422, "future: Input should be a valid"),
    ("future of numbers", b'{"future": [1, 2]}', 422, "future[0]: Input should be a valid dict"),
    ("future of lists", b'{"future": [[]]}', 422, "future[0]: Input should be a valid dict"),
    ("future boolean", _history_body("true", "promo", 0, "future"), 422, "future[0].promo: must"),
    ("future object", _history_body('{"a": 1}', "promo", 0, "future"), 422, "future[0].promo"),
    ("history null row", b'{"history": [null]}', 422, "history[0]: Input should be a valid dict"),
    ("history a number", b'{"history": 1e400}', 422, "history: Input should be a valid list"),
    ("body a number", BIG.encode(), 422, "must be a JSON object"),
    ("body a string", b'"history"', 422, "must be a JSON object"),
]


@pytest.mark.parametrize(("case", "body", "status", "reason"), ABSURD, ids=[a[0] for a in ABSURD])
def test_absurd_json_in_a_forecast_request_is_a_one_line_4xx(models, case, body, status, reason):
    with _client(models["fc"], backend="onnx") as client:
        _one_line(client.post("/predict", content=body, headers=JSON), status, reason)


TEXT_ABSURD = [
    ("400-digit text", b'{"texts": [' + BIG.encode() + b"]}", 422, "texts[0]: Input should be"),
    ("4400-digit text", b'{"texts": [' + b"9" * 4400 + b"]}", 400, "too many digits"),
    ("NaN text", b'{"texts": ["a", NaN]}', 422, "texts[1]: Input should be a valid string"),
    ("-Infinity text", b'{"texts": [-Infinity]}', 422, "texts[0]: Input should be"),
    ("boolean text", b'{"texts": [true]}', 422, "texts[0]: Input should be a valid string"),
    ("object text", b'{"texts": [{"a": "b"}]}', 422, "texts[0]: Input should be a valid string"),
    ("list text", b'{"texts": [["great"]]}', 422, "texts[0]: Input should be a valid string"),
    ("texts an object", b'{"texts": {"great": 1}}', 422, "texts: Input should be a valid list"),
    ("texts a number", b'{"texts": 1e400}', 422, "texts: Input should be a valid list"),
    ("deep texts", b'{"texts": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", 400, "nested too deeply"),
]


@pytest.mark.parametrize(
    ("case", "body", "status", "reason"), TEXT_ABSURD, ids=[a[0] for a in TEXT_ABSURD]
)
def test_absurd_json_in_a_text_request_is_a_one_line_4xx(models, case, body, status, reason):
    with _client(models["clf_onnx"]) as client:
        _one_line(client.post("/predict", content=body, headers=JSON), status, reason)


def test_after_absurd_requests_the_forecast_is_still_the_models(models):
    series = _series()
    history, future = series.iloc[-20:-3], series.iloc[-3:][["month", "promo"]]
    want = Forecaster.load(models["fc"]).predict(history, future=future)
    with _client(models["fc"], backend="torch") as client:
        for _, body, status, _ in ABSURD:
            assert client.post("/predict", content=body, headers=JSON).status_code == status
        got = client.post(
            "/predict", json={"history": _records(history), "future": _records(future)}
        )
        assert got.status_code == 200, got.text
        np.testing.assert_allclose(
            [r["forecast"] for r in got.json()["forecast"]], want["forecast"], rtol=1e-6
        )


# ---------------------------------------------------------------------- no torch for ONNX
def test_serving_an_onnx_export_never_imports_torch(models):
    """The app (and the CLI module that starts it) for an ONNX export, in a fresh
    interpreter: torch is never imported, and the predictions are the model's."""
    script = (
        "import json, sys\n"
        "from fastapi.testclient import TestClient\n"
        "import lstmkit.cli.serve\n"
        "from lstmkit.serving.app import create_app\n"
        f"clf = TestClient(create_app({str(models['clf_onnx'])!r}, api_key={KEY!r}))\n"
        f"fc = TestClient(create_app({str(models['fc'])!r}))\n"
        f"future = {_records(_series(51).iloc[-3:][['month', 'promo']])!r}\n"
        f"headers = {{'Authorization': 'Bearer {KEY}'}}\n"
        f"texts = clf.post('/predict', json={{'texts': {TEXTS!r}}}, headers=headers)\n"
        f"mixed = clf.post('/predict', json={{'texts': {TEXTS!r}, 'combined': True}},"
        " headers=headers)\n"
        "forecast = fc.post('/predict', json={'future': future})\n"
        "print(json.dumps({'torch': sorted(m for m in sys.modules if m.split('.')[0] == 'torch'),"
        " 'backend': fc.get('/health').json()['backend'],"
        " 'texts': texts.json(), 'mixed': mixed.json(), 'forecast': forecast.json()}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["torch"] == [] and got["backend"] == "onnx"
    clf = TextClassifier.load(models["clf"])
    np.testing.assert_allclose(got["texts"]["probabilities"], clf.predict_proba(TEXTS), atol=1e-5)
    want = clf.predict_proba(TEXTS, combined=True)  # its mixture with the baseline, too
    np.testing.assert_allclose(got["mixed"]["probabilities"], want, atol=1e-5)
    future = _series(51).iloc[-3:][["month", "promo"]]
    want = Forecaster.load(models["fc"]).predict(future=future)
    np.testing.assert_allclose(
        [r["forecast"] for r in got["forecast"]["forecast"]], want["forecast"], rtol=1e-5
    )


# ---------------------------------------------------------------------- the command line
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Serve:
    """``lstmkit serve`` in a subprocess until it answers /health; `stop` ends it and
    returns its stderr."""

    def __init__(self, model: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = _free_port()
        self.proc = subprocess.Popen(
            [*CLI, "serve", "--model", str(model), "--port", str(self.port), *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={k: v for k, v in os.environ.items() if k != ENV_API_KEY} | (env or {}),
            start_new_session=True,  # its workers share its session id
        )
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)
        deadline = time.monotonic() + 120
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited: {self.proc.stderr.read()}")
            try:
                if self.client.get("/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError("the server did not answer /health within 120 s")
            time.sleep(0.1)

    def processes(self) -> list[int]:
        """The server's process and its workers (Linux /proc)."""
        pids = []
        for entry in Path("/proc").iterdir():
            try:
                stat = (entry / "stat").read_text()
            except (OSError, ValueError):
                continue
            if entry.name.isdigit() and int(stat.rsplit(")", 1)[1].split()[3]) == self.proc.pid:
                pids.append(int(entry.name))
        return pids

    def stop(self) -> str:
        self.client.close()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(timeout=15)
        err = self.proc.stderr.read()
        self.proc.stderr.close()
        return err


@pytest.fixture
def serve() -> Iterator[list[Serve]]:
    started: list[Serve] = []
    yield started
    for server in started:
        server.stop()


def test_workers_from_an_export_need_the_key_and_load_no_torch(models, tmp_path, serve):
    """``--workers 2 --api-key-file --no-docs``: each worker builds its own app from the
    environment, and each requires the key; no process of the server maps libtorch."""
    key_file = tmp_path / "key"
    key_file.write_text(f"  {KEY}\n\n")  # surrounding whitespace is not part of the key
    server = Serve(
        models["clf_onnx"], "--workers", "2", "--api-key-file", str(key_file), "--no-docs"
    )
    serve.append(server)
    expected = TextClassifier.load(models["clf"]).predict_proba(TEXTS)
    for _ in range(6):  # several connections, so both workers answer
        with httpx.Client(base_url=server.client.base_url, timeout=30) as client:
            assert client.get("/health").status_code == 200
            _one_line(client.post("/predict", json={"texts": TEXTS}), 401, "requires an API key")
            got = client.post("/predict", json={"texts": TEXTS}, headers=_bearer(KEY))
            assert got.status_code == 200, got.text
            np.testing.assert_allclose(got.json()["probabilities"], expected, atol=1e-5)
            assert client.get("/docs", headers=_bearer(KEY)).status_code == 404
    if sys.platform == "linux":
        pids = server.processes()
        assert len(pids) >= 3, pids  # the supervisor and two workers
        for pid in pids:
            maps = Path(f"/proc/{pid}/maps").read_text()
            assert "libtorch" not in maps, f"process {pid} of the server loaded torch"
    serve.remove(server)
    err = server.stop()
    assert KEY not in err and "warning:" not in err
    assert "API key required, from --api-key-file" in err and "no docs" in err


@pytest.mark.parametrize(
    ("host", "key", "warned"),
    [("0.0.0.0", None, True), ("0.0.0.0", KEY, False), ("127.0.0.1", None, False)],
)
def test_no_key_on_a_network_address_is_one_warning_line(models, serve, host, key, warned):
    env = {ENV_API_KEY: f"{key}\n"} if key else None
    server = Serve(models["clf_onnx"], "--host", host, env=env)
    serve.append(server)
    got = server.client.post("/predict", json={"texts": TEXTS})
    assert got.status_code == (401 if key else 200), got.text
    if key:
        assert server.client.get("/model", headers=_bearer(KEY)).status_code == 200
    serve.remove(server)
    lines = server.stop().splitlines()
    warnings = [line for line in lines if line.startswith("warning:")]
    if warned:
        assert warnings == [
            "warning: serving on 0.0.0.0 without an API key: anyone who can reach this "
            "address can use the model; set one with --api-key-file or LSTMKIT_API_KEY"
        ]
    else:
        assert warnings == []
    assert not any(KEY in line for line in lines)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("localhost", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("10.0.0.1", False),
        ("fe80::1", False),
    ],
)
def test_only_loopback_addresses_count_as_private(host, loopback):
    assert is_loopback(host) is loopback


def _cli(capsys, *args: str) -> tuple[int, str]:
    """``lstmkit serve ARGS`` in this process (it must fail before serving): (status, stderr)."""
    old, sys.argv = sys.argv, ["lstmkit", "serve", *args]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = old
    return code, capsys.readouterr().err


SECRET = "s3cr3t-value-0123456789"


def _key_file(tmp_path: Path, case: str) -> str:
    path = tmp_path / "key"
    if case == "missing":
        return str(tmp_path / "nothing")
    if case == "folder":
        return str(tmp_path)
    if case == "device":
        return "/dev/zero"
    content = {
        "empty": b"",
        "blank": b" \n\t\n",
        "inner space": f"{SECRET} {SECRET}".encode(),
        "two lines": f"{SECRET}\n{SECRET}\n".encode(),
        "not ASCII": f"{SECRET}é".encode(),
        "not UTF-8": SECRET.encode() + b"\xff\xfe",
        "oversized": SECRET.encode() * 300,
    }[case]
    path.write_bytes(content)
    return str(path)


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("missing", "does not exist"),
        ("folder", "is a folder"),
        pytest.param(
            "device",
            "is not a regular file",
            marks=pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero"),
        ),
        ("empty", "is empty"),
        ("blank", "is empty"),
        ("inner space", "printable ASCII"),
        ("two lines", "printable ASCII"),
        ("not ASCII", "printable ASCII"),
        ("not UTF-8", "printable ASCII"),
        ("oversized", "more than 4096 bytes"),
    ],
)
def test_a_bad_key_file_is_one_error_line_before_the_port_is_bound(
    models, tmp_path, capsys, case, reason
):
    """The key is read first: with the port taken, the error is still the key's."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        where = _key_file(tmp_path, case)
        code, err = _cli(
            capsys, "--model", str(models["clf_onnx"]), "--port", port, "--api-key-file", where
        )
    assert code == 2, err
    assert err.startswith(f"error: --api-key-file {where}") and err.count("\n") == 1, err
    assert reason in err and SECRET not in err


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads all")
def test_an_unreadable_key_file_is_one_error_line(models, tmp_path, capsys):
    path = tmp_path / "key"
    path.write_text(SECRET)
    path.chmod(0)
    code, err = _cli(capsys, "--model", str(models["clf_onnx"]), "--api-key-file", str(path))
    assert code == 2 and "cannot be read (Permission denied)" in err and SECRET not in err


@pytest.mark.parametrize("value", ["", "  \n"])
def test_an_empty_key_variable_is_refused_not_ignored(models, capsys, monkeypatch, value):
    monkeypatch.setenv(ENV_API_KEY, value)
    with socket.socket() as taken:  # were the variable ignored, this would stop the server
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        code, err = _cli(capsys, "--model", str(models["clf_onnx"]), "--port", port)
    assert code == 2 and err == (
        f"error: {ENV_API_KEY} is empty; it must hold the API key clients send\n"
    )


def test_a_key_file_may_be_a_pipe(tmp_path):
    """``--api-key-file <(pass show lstmkit)`` hands the key through a pipe."""
    read, write = os.pipe()
    try:
        os.write(write, f"{SECRET}\n".encode())
        os.close(write)
        assert read_api_key(Path(f"/dev/fd/{read}")) == SECRET
    finally:
        os.close(read)
