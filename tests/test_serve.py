"""`lstmkit serve`: the real server in a subprocess on a free port, over HTTP with httpx.

Tiny models (a forecaster, one with covariates, a text classifier) are trained once per
session; each server starts once per module. Predictions must equal the Python API's on
the same saved model; every client mistake must get its 4xx with a one-line reason, and
the server must keep answering afterwards.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
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

from lstmkit import Forecaster, TextClassifier
from lstmkit.cli import main
from lstmkit.errors import LstmkitError
from lstmkit.serving import load_predictor
from lstmkit.serving.app import create_app

CLI = [sys.executable, "-c", "from lstmkit.cli import main; main()"]
MAX_BODY = 20_000  # the classifier's server takes at most this many bytes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _series(n: int = 60) -> pd.DataFrame:
    t = np.arange(n)
    return pd.DataFrame(
        {
            "month": pd.date_range("2000-01-01", periods=n, freq="MS"),
            "y": 50 + 0.5 * t + 10 * np.sin(2 * np.pi * t / 12),
            "temp": np.cos(t / 3),
            "promo": (t % 3 == 0).astype(float),
        }
    )


def _texts(n: int = 200) -> tuple[list[str], list[str]]:
    rng = random.Random(0)
    texts, labels = [], []
    for _ in range(n):
        label = rng.choice(["neg", "pos"])
        words = [rng.choice(["the", "film", "plot", "was"]) for _ in range(rng.randint(2, 12))]
        words.insert(rng.randrange(len(words) + 1), "great" if label == "pos" else "awful")
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict[str, Path]:
    """Saved tiny models: ``fc`` (target only), ``fcov`` (a covariate and a known future
    covariate), ``clf`` (two-class text classifier)."""
    root = tmp_path_factory.mktemp("serve_models")
    df = _series()
    fast = dict(hidden_size=8, max_epochs=2, progress=False)
    Forecaster(horizon=4, window=12, **fast).fit(
        df[["month", "y"]], target="y", time_col="month"
    ).save(root / "fc")
    Forecaster(horizon=3, window=8, **fast).fit(
        df, target="y", time_col="month", covariates=["temp"], future_covariates=["promo"]
    ).save(root / "fcov")
    texts, labels = _texts()
    TextClassifier(embedding_dim=8, hidden_size=8, batch_size=32, max_epochs=2, seed=0).fit(
        texts, labels, progress=False
    ).save(root / "clf")
    return {"fc": root / "fc", "fcov": root / "fcov", "clf": root / "clf"}


@pytest.fixture(scope="session")
def exported(models, tmp_path_factory) -> dict[str, Path]:
    """ONNX exports: ``clf`` an export folder of its own, ``fc`` a copy of the forecaster's
    model folder with its export in the default ``onnx/`` inside."""
    from lstmkit.export import export_model

    root = tmp_path_factory.mktemp("serve_onnx")
    export_model(models["clf"], root / "clf_onnx")
    shutil.copytree(models["fc"], root / "fc")
    export_model(root / "fc")
    assert (root / "fc" / "onnx" / "export.json").is_file()
    return {"clf": root / "clf_onnx", "fc": root / "fc"}


class Server:
    """``lstmkit serve`` in a subprocess; ``client`` talks to it; `stop` ends it."""

    def __init__(self, model: Path, *args: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [*CLI, "serve", "--model", str(model), "--port", str(self.port), *args]
        self.proc = subprocess.Popen(
            [*argv, "--log-level", "warning"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # so teardown reaches every worker process
        )
        self.client = httpx.Client(base_url=self.url, timeout=30)
        deadline = time.monotonic() + 120
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited: {self.proc.stderr.read()}")
            try:
                if self.client.get("/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError("the server did not answer /health within 120 s")
            time.sleep(0.1)

    def alive(self) -> bool:
        return self.proc.poll() is None and self.client.get("/health").status_code == 200

    def stop(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)
        self.proc.stderr.close()


def _serve(model: Path, *args: str) -> Iterator[Server]:
    server = Server(model, *args)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def clf_server(models) -> Iterator[Server]:
    yield from _serve(models["clf"], "--max-body-bytes", str(MAX_BODY))


@pytest.fixture(scope="module")
def fc_server(models) -> Iterator[Server]:
    yield from _serve(models["fc"])


@pytest.fixture(scope="module")
def onnx_fc_server(exported) -> Iterator[Server]:
    yield from _serve(exported["fc"])  # the model folder: its onnx/ export is preferred


@pytest.fixture(scope="module")
def onnx_clf_server(exported) -> Iterator[Server]:
    yield from _serve(exported["clf"], "--max-body-bytes", str(MAX_BODY))


@pytest.fixture(params=["torch", "onnx"])
def any_fc_server(request) -> Server:
    """The forecaster served by PyTorch, then from its ONNX export."""
    return request.getfixturevalue("fc_server" if request.param == "torch" else "onnx_fc_server")


@pytest.fixture(params=["torch", "onnx"])
def any_clf_server(request) -> Server:
    """The classifier served by PyTorch, then from its ONNX export."""
    return request.getfixturevalue("clf_server" if request.param == "torch" else "onnx_clf_server")


@pytest.fixture(scope="module")
def fcov_server(models) -> Iterator[Server]:
    yield from _serve(models["fcov"])


def _records(df: pd.DataFrame) -> list[dict]:
    out = df.copy()
    for col in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[col]):
            out[col] = out[col].dt.strftime("%Y-%m-%d")
    return out.to_dict("records")


def _check_forecast(got: dict, expected: pd.DataFrame, horizon: int) -> None:
    assert got["horizon"] == horizon
    rows = got["forecast"]
    assert [list(r) for r in rows] == [list(expected.columns)] * len(expected)
    assert [r["month"] for r in rows] == [t.strftime("%Y-%m-%d") for t in expected["month"]]
    for col in expected.columns.drop("month"):
        np.testing.assert_allclose([r[col] for r in rows], expected[col], rtol=1e-6)


# ---------------------------------------------------------------------- good requests
def test_health_and_model_describe_the_served_model(clf_server, fc_server):
    assert clf_server.client.get("/health").json() == {
        "status": "ok",
        "kind": "text_classifier",
        "backend": "torch",
    }
    info = clf_server.client.get("/model").json()
    assert info["kind"] == "text_classifier" and info["backend"] == "torch"
    assert info["labels"] == ["neg", "pos"] and info["max_length"] == 400
    assert info["lstmkit_version"] == "0.1.0" and info["max_body_bytes"] == MAX_BODY
    info = fc_server.client.get("/model").json()
    assert (info["kind"], info["horizon"], info["freq"]) == ("forecaster", 4, "MS")
    assert info["quantiles"] == [0.1, 0.5, 0.9] and info["target"] == "y"


def test_classifier_answers_as_the_python_api(clf_server, models):
    texts = ["the film was great", "awful plot", "the the was", "great " * 50]
    got = clf_server.client.post("/predict", json={"texts": texts})
    assert got.status_code == 200, got.text
    body = got.json()
    clf = TextClassifier.load(models["clf"])
    proba = clf.predict_proba(texts)
    assert body["classes"] == ["neg", "pos"]
    assert body["labels"] == clf.predict(texts)
    np.testing.assert_allclose(body["probabilities"], proba, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.sum(body["probabilities"], axis=1), 1.0, rtol=1e-6)


def test_forecast_after_the_training_data_with_an_empty_body(fc_server, models):
    expected = Forecaster.load(models["fc"]).predict()
    assert expected["month"].iloc[0] == pd.Timestamp("2005-01-01")
    for request in (
        {},
        {"content": b""},
        {"json": {}},
        {"json": {"history": None, "future": None}},
    ):
        got = fc_server.client.post("/predict", **request)
        assert got.status_code == 200, (request, got.text)
        _check_forecast(got.json(), expected, 4)


def test_forecast_from_a_history_in_the_request(fc_server, models):
    history = _series(40)[["month", "y"]]
    history["y"] *= 2.0
    got = fc_server.client.post("/predict", json={"history": _records(history)})
    assert got.status_code == 200, got.text
    expected = Forecaster.load(models["fc"]).predict(history)
    assert expected["month"].iloc[0] == pd.Timestamp("2003-05-01")
    _check_forecast(got.json(), expected, 4)


def test_forecast_with_known_future_covariates(fcov_server, models):
    df = _series(70)
    history, plan = df.iloc[:50], df.iloc[50:53][["month", "promo"]]
    got = fcov_server.client.post(
        "/predict", json={"history": _records(history), "future": _records(plan)}
    )
    assert got.status_code == 200, got.text
    model = Forecaster.load(models["fcov"])
    _check_forecast(got.json(), model.predict(history, future=plan), 3)
    info = fcov_server.client.get("/model").json()
    assert info["covariates"] == ["temp", "promo"] and info["future_covariates"] == ["promo"]
    # without the plan: the model's own one-line refusal
    got = fcov_server.client.post("/predict", json={"history": _records(history)})
    assert got.status_code == 422 and "future" in got.json()["detail"]
    short = _records(plan.iloc[:2])
    got = fcov_server.client.post("/predict", json={"history": _records(history), "future": short})
    assert got.status_code == 422 and "2004-05-01" in got.json()["detail"]


def test_docs_and_openapi(clf_server, fc_server):
    docs = clf_server.client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    schema = clf_server.client.get("/openapi.json").json()
    assert set(schema["paths"]) == {"/health", "/model", "/predict"}
    assert "texts" in schema["components"]["schemas"]["TextRequest"]["properties"]
    schema = fc_server.client.get("/openapi.json").json()
    assert {"history", "future"} <= set(
        schema["components"]["schemas"]["ForecastRequest"]["properties"]
    )


def test_a_model_fitted_on_a_datetime_index_takes_its_time_column(tmp_path):
    """Times that came from an unnamed DatetimeIndex are sent as the ``time`` column
    (in-process app: the HTTP layer is the same as above)."""
    from fastapi.testclient import TestClient

    from lstmkit.serving.app import create_app

    t = np.arange(40)
    days = pd.date_range("2000-01-01", periods=40, freq="D")
    series = pd.DataFrame({"y": 50 + 10 * np.sin(t / 2)}, index=days)
    model = Forecaster(horizon=3, window=8, hidden_size=8, max_epochs=1, progress=False)
    model.fit(series, target="y").save(tmp_path / "idx")
    with TestClient(create_app(tmp_path / "idx")) as client:
        history = [{"time": str(d.date()), "y": v} for d, v in series["y"].iloc[:30].items()]
        got = client.post("/predict", json={"history": history})
        assert got.status_code == 200, got.text
        expected = model.predict(series.iloc[:30])
        rows = got.json()["forecast"]
        assert [r["time"] for r in rows] == ["2000-01-31", "2000-02-01", "2000-02-02"]
        np.testing.assert_allclose([r["forecast"] for r in rows], expected["forecast"], rtol=1e-6)
        got = client.post("/predict", json={"history": [{"y": 1.0}] * 10})
        assert got.status_code == 422 and "'time' column" in got.json()["detail"]


# ---------------------------------------------------------------------- bad requests
JSON = {"content-type": "application/json"}

CLF_BAD = [
    ("malformed JSON", b'{"texts": ["a"', JSON, 400, "malformed JSON"),
    ("not JSON at all", b"texts=a", JSON, 400, "malformed JSON"),
    ("form content type", b'{"texts": ["a"]}', {"content-type": "text/plain"}, 415, "Content-Type"),
    ("no body", b"", JSON, 422, "no JSON body"),
    ("a list body", b'["a"]', JSON, 422, "JSON object"),
    ("missing texts", b"{}", JSON, 422, "texts: missing"),
    ("texts a string", b'{"texts": "great"}', JSON, 422, "texts: Input should be a valid list"),
    ("a number in texts", b'{"texts": ["a", 3]}', JSON, 422, "texts[1]"),
    ("null in texts", b'{"texts": [null]}', JSON, 422, "texts[0]"),
    ("empty list", b'{"texts": []}', JSON, 422, "at least 1 item"),
    ("empty text", b'{"texts": ["good", ""]}', JSON, 422, "texts[1]: empty text"),
    ("blank text", b'{"texts": [" \\n\\t "]}', JSON, 422, "texts[0]: empty text"),
    ("unknown field", b'{"texts": ["a"], "top_k": 2}', JSON, 422, "top_k: unknown field"),
    ("lone surrogate", b'{"texts": ["\\ud800 great"]}', JSON, 422, "texts[0]: holds \\ud800"),
    ("not UTF-8", b'{"texts": ["\xff\xfe"]}', JSON, 400, "not UTF-8 JSON"),
    ("oversized", b'{"texts": ["' + b"a " * MAX_BODY + b'"]}', JSON, 413, "over the limit"),
]


@pytest.mark.parametrize(
    ("case", "body", "headers", "status", "reason"),
    CLF_BAD,
    ids=lambda x: x if isinstance(x, str) else "",
)
def test_bad_classifier_requests_get_a_one_line_4xx(
    any_clf_server, case, body, headers, status, reason
):
    clf_server = any_clf_server
    got = clf_server.client.post("/predict", content=body, headers=headers)
    assert got.status_code == status, (case, got.text)
    detail = got.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and reason in detail, detail
    assert clf_server.alive()


def _history(n: int) -> list[dict]:
    return _records(_series(n)[["month", "y"]])


def _with(n: int, row: int, **change) -> dict:
    history = _history(n)
    history[row] = history[row] | change
    return {"history": history}


FC_BAD = [
    ("too short", {"history": _history(5)}, 422, "needs the last 12"),
    ("empty history", {"history": []}, 422, "at least 1 item"),
    ("history not a list", {"history": {"month": "2000-01-01"}}, 422, "valid list"),
    ("record not an object", {"history": [1, 2]}, 422, "history[0]"),
    ("missing target", {"history": [{"month": "2000-01-01"}] * 20}, 422, "'y'"),
    ("missing time column", {"history": [{"y": 1.0}] * 20}, 422, "'month'"),
    ("text value", _with(20, 3, y="many"), 422, "'many'"),
    ("boolean value", _with(20, 3, y=True), 422, "history[3].y: must be a number"),
    ("list value", _with(20, 3, y=[1]), 422, "history[3].y: must be a number"),
    ("null value", _with(20, 3, y=None), 422, "missing value"),
    ("not a date", _with(20, 0, month="yesterday"), 422, "'yesterday'"),
    ("repeated time", _with(20, 1, month="2000-01-01"), 422, "more than once"),
    ("unknown field", {"history": _history(20), "horizon": 3}, 422, "horizon: unknown field"),
    ("surrogate in a value", _with(20, 2, month="\ud800"), 422, "history[2].month: holds"),
    ("surrogate in a name", _with(20, 2, **{"\udc00": 1.0}), 422, "(a column name): holds"),
    ("future without covariates", {"future": _history(4)}, 422, "no known future"),
]


@pytest.mark.parametrize(
    ("case", "request_body", "status", "reason"),
    FC_BAD,
    ids=lambda x: x if isinstance(x, str) else "",
)
def test_bad_forecast_requests_get_a_one_line_4xx(
    any_fc_server, case, request_body, status, reason
):
    fc_server = any_fc_server
    body = json.dumps(request_body).encode()  # ASCII: lone surrogates as \\ud800 escapes
    got = fc_server.client.post("/predict", content=body, headers=JSON)
    assert got.status_code == status, (case, got.text)
    detail = got.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and reason in detail, detail
    assert fc_server.alive()


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_non_finite_numbers_are_refused(fc_server, number):
    history = json.dumps(_history(20)).replace("50.0", "__x__", 1)
    assert "__x__" in history
    body = (
        b'{"history": '
        + history.replace('"__x__"', "__x__").replace("__x__", number.decode()).encode()
        + b"}"
    )
    got = fc_server.client.post("/predict", content=body, headers=JSON)
    assert got.status_code == 422, got.text
    assert "history[0].y: must be a finite number" in got.json()["detail"]
    assert fc_server.alive()


def test_a_chunked_body_over_the_limit_is_413_and_one_under_it_is_served(clf_server):
    def chunks(total: int) -> Iterator[bytes]:
        yield b'{"texts": ["'
        for _ in range(total // 1000):
            yield b"great " * 166 + b"film"
        yield b'"]}'

    got = clf_server.client.post("/predict", content=chunks(3 * MAX_BODY), headers=JSON)
    assert got.status_code == 413 and "over the limit" in got.json()["detail"]
    got = clf_server.client.post("/predict", content=chunks(MAX_BODY // 2), headers=JSON)
    assert got.status_code == 200, got.text
    assert len(got.json()["labels"]) == 1


def test_the_server_still_answers_correctly_after_bad_requests(clf_server, models):
    for body in (b"{", b'{"texts": []}', b'{"texts": [""]}', b"\xff\xfe", b"[" * 10_000):
        got = clf_server.client.post("/predict", content=body, headers=JSON)
        assert 400 <= got.status_code < 500, got.text
    texts = ["great film"]
    got = clf_server.client.post("/predict", json={"texts": texts}).json()
    expected = TextClassifier.load(models["clf"]).predict_proba(texts)
    np.testing.assert_allclose(got["probabilities"], expected, rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------------- ONNX
def test_an_export_folder_is_served_with_onnxruntime(onnx_clf_server, models):
    assert onnx_clf_server.client.get("/health").json()["backend"] == "onnx"
    info = onnx_clf_server.client.get("/model").json()
    assert (info["kind"], info["backend"], info["labels"]) == (
        "text_classifier",
        "onnx",
        ["neg", "pos"],
    )
    texts = ["the film was great", "awful plot", "the the was", "great " * 50]
    got = onnx_clf_server.client.post("/predict", json={"texts": texts})
    assert got.status_code == 200, got.text
    clf = TextClassifier.load(models["clf"])  # the PyTorch model it was exported from
    np.testing.assert_allclose(got.json()["probabilities"], clf.predict_proba(texts), atol=1e-5)
    assert got.json()["labels"] == clf.predict(texts)


def test_a_model_folder_with_an_export_is_served_from_onnx(onnx_fc_server, models):
    assert onnx_fc_server.client.get("/model").json()["backend"] == "onnx"
    model = Forecaster.load(models["fc"])
    got = onnx_fc_server.client.post("/predict")
    assert got.status_code == 200, got.text
    rows, expected = got.json()["forecast"], model.predict()
    assert [r["month"] for r in rows] == [t.strftime("%Y-%m-%d") for t in expected["month"]]
    for col in ("forecast", "q10", "q50", "q90"):
        np.testing.assert_allclose([r[col] for r in rows], expected[col], rtol=1e-5)
    history = _series(40)[["month", "y"]]
    got = onnx_fc_server.client.post("/predict", json={"history": _records(history)})
    expected = model.predict(history)
    np.testing.assert_allclose(
        [r["forecast"] for r in got.json()["forecast"]], expected["forecast"], rtol=1e-5
    )


def test_the_backend_option_picks_torch_or_onnx(exported, models):
    assert load_predictor(exported["fc"]).backend == "onnx"
    assert load_predictor(exported["fc"], "torch").backend == "torch"
    assert load_predictor(exported["clf"], "onnx").backend == "onnx"
    with pytest.raises(LstmkitError, match="is an ONNX export, which PyTorch cannot serve"):
        load_predictor(exported["clf"], "torch")


# ---------------------------------------------------------------------- workers, CLI errors
def test_two_workers_serve_the_same_forecast(models, exported):
    """Each worker builds its app from the environment (`app_from_env`); served from the
    ONNX export, whose workers import no torch and so start quickly."""
    expected = Forecaster.load(models["fc"]).predict()
    for server in _serve(exported["fc"], "--workers", "2", "--max-body-bytes", "5000"):
        assert server.client.get("/model").json()["max_body_bytes"] == 5000
        for _ in range(4):
            got = server.client.post("/predict", json={})
            assert got.status_code == 200, got.text
            rows = got.json()["forecast"]
            np.testing.assert_allclose(
                [r["forecast"] for r in rows], expected["forecast"], rtol=1e-5
            )
        got = server.client.post("/predict", json={"history": _history(300)})
        assert got.status_code == 413


def test_an_export_is_served_where_torch_cannot_be_imported(exported):
    script = (
        "import sys; sys.modules['torch'] = None\n"
        "from fastapi.testclient import TestClient\n"
        "from lstmkit.serving.app import create_app\n"
        f"client = TestClient(create_app({str(exported['clf'])!r}))\n"
        "got = client.post('/predict', json={'texts': ['great film']})\n"
        "assert got.status_code == 200, got.text\n"
        "print(client.get('/health').json()['backend'], got.json()['labels'])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == "onnx"


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


def test_cli_refuses_a_missing_or_damaged_model_folder(tmp_path, models, capsys):
    code, err = _cli(capsys, "--model", str(tmp_path / "nothing"))
    assert code == 2 and err.startswith("error: model folder") and "does not exist" in err
    assert err.count("\n") == 1
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "config.json").write_text("{not json")
    code, err = _cli(capsys, "--model", str(damaged))
    assert code == 2 and "config.json" in err and err.count("\n") == 1
    (damaged / "config.json").write_text(
        json.dumps({"lstmkit_version": "0.1.0", "kind": "forecaster"})
    )
    code, err = _cli(capsys, "--model", str(damaged))
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    code, err = _cli(capsys, "--model", str(models["clf"]), "--backend", "onnx")
    assert code == 2 and "no ONNX export" in err
    code, err = _cli(capsys, "--model", str(models["clf"]), "--backend", "tensorflow")
    assert code == 2 and "backend must be one of" in err
    code, err = _cli(capsys, "--model", str(models["clf"]), "--workers", "0")
    assert code == 2 and "--workers must be at least 1" in err
    code, err = _cli(capsys, "--model", str(models["fc"]), "--combined")  # a text model's option
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: a forecaster's requests have no field combined")


def test_cli_refuses_an_export_whose_graph_was_swapped(exported, tmp_path, capsys):
    """Another forecaster's graph of the same shapes put into the export: the server
    loads the export through `lstmkit.runtime.load`, whose checksum refuses it, in one
    line before serving (it served the other model's forecasts)."""
    other = Forecaster(horizon=4, window=12, hidden_size=8, max_epochs=2, progress=False, seed=5)
    other.fit(_series()[["month", "y"]], target="y", time_col="month")
    other.export_onnx(tmp_path / "other")
    model = shutil.copytree(exported["fc"], tmp_path / "fc")
    shutil.copy(tmp_path / "other" / "model.onnx", model / "onnx" / "model.onnx")
    message = (
        f"{model / 'onnx' / 'model.onnx'} does not match export.json's checksum: the folder "
        "was changed after export; export the model again"
    )
    with pytest.raises(LstmkitError) as refused:  # before the CLI, which would serve it
        create_app(model)
    assert str(refused.value) == message
    code, err = _cli(capsys, "--model", str(model))
    assert (code, err) == (2, f"error: {message}\n")


def test_cli_refuses_a_port_in_use(models, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, err = _cli(capsys, "--model", str(models["clf"]), "--port", str(port))
    assert code == 2, err
    assert err == (
        f"error: port {port} on 127.0.0.1 is in use by another program; pick another with "
        "--port or stop that program\n"
    )


def test_load_predictor_picks_the_backend(models, tmp_path):
    pred = load_predictor(models["fc"])
    assert (pred.kind, pred.backend) == ("forecaster", "torch")
    with pytest.raises(LstmkitError, match="no ONNX export"):
        load_predictor(models["fc"], "onnx")
    with pytest.raises(LstmkitError, match="does not exist"):
        load_predictor(tmp_path / "none")


def test_an_export_whose_replacement_was_killed_is_served_after_recovery(exported, tmp_path):
    """``lstmkit export`` killed between its two renames leaves MODEL/.onnx.old-PID-x and no
    onnx/: the server's own export lookup did not recover it and fell back to PyTorch;
    there is one lookup now (`lstmkit.runtime.export_folder`), which recovers it."""
    model = shutil.copytree(exported["fc"], tmp_path / "fc")
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    os.replace(model / "onnx", model / f".onnx.old-{int(done.stdout)}-0a1b2c3d")
    pred = load_predictor(model)
    assert (pred.kind, pred.backend) == ("forecaster", "onnx")
    assert sorted(p.name for p in model.iterdir() if "onnx" in p.name) == ["onnx"]
