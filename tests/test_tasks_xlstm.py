"""sLSTM and mLSTM (xLSTM, `lstmkit.nn.SLSTM` / `MLSTM`) in both tasks: ``Forecaster(model=
"slstm"|"mlstm")`` and ``TextClassifier(rnn=...)``, their settings (``num_heads``,
``chunk_size``), saved models, the ONNX export (a forecaster's) or its one-line refusal (a
text classifier's), the torch-free runtime, serving, the CLI and every bad setting."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from fastapi.testclient import TestClient

from lstmkit import Forecaster, TextClassifier, runtime
from lstmkit.errors import LstmkitError
from lstmkit.nn import MLSTM, SLSTM
from lstmkit.serving.app import create_app
from lstmkit.tasks.forecasting.network import make_net
from lstmkit.tasks.forecasting.settings import ForecasterConfig

sys.path.insert(0, str(Path(__file__).parent))
from test_cli_classify import run  # the CLI entry point in-process: (code, stdout, stderr)
from test_export_onnx import assert_close, make_series
from test_text_classifier import make_texts

FC_SETTINGS = {
    "slstm": {"rnn": "slstm", "num_heads": 2, "num_layers": 2, "bidirectional": True,
              "dropout": 0.1},
    "mlstm": {"rnn": "mlstm", "num_heads": 2, "chunk_size": 4, "bidirectional": True},
}  # fmt: skip
TEXT_SETTINGS = {
    "slstm": {"rnn": "slstm", "num_heads": 2, "num_layers": 2, "bidirectional": True,
              "dropout": 0.1, "pooling": "max+mean"},
    "mlstm": {"rnn": "mlstm", "num_heads": 2, "chunk_size": 4, "bidirectional": True,
              "pooling": "last"},
}  # fmt: skip
LAYER = {"slstm": SLSTM, "mlstm": MLSTM}


def fit_forecaster(df: pd.DataFrame, **settings) -> Forecaster:
    # one network: the export is compared with it (ensembles: tests/test_export_onnx.py)
    settings = {"hidden_size": 8, "max_epochs": 2, "progress": False, "ensemble": 1, **settings}
    return Forecaster(horizon=6, window=12, **settings).fit(df, target="y", time_col="month")


@pytest.fixture(scope="module", params=["slstm", "mlstm"])
def forecaster(request, tmp_path_factory) -> tuple[str, Forecaster, Path]:
    """(rnn, a forecaster trained two epochs, its saved folder)."""
    fc = fit_forecaster(make_series(120).iloc[:100], **FC_SETTINGS[request.param])
    folder = tmp_path_factory.mktemp(f"fc_{request.param}") / "model"
    fc.save(folder)
    return request.param, fc, folder


@pytest.fixture(scope="module", params=["slstm", "mlstm"])
def classifier(request, tmp_path_factory) -> tuple[str, TextClassifier, Path]:
    """(rnn, a text classifier trained two epochs, its saved folder)."""
    texts, labels = make_texts(120, seed=3)
    clf = TextClassifier(embedding_dim=8, hidden_size=8, batch_size=32, max_epochs=2, lr=1e-2,
                         seed=0, **TEXT_SETTINGS[request.param])  # fmt: skip
    clf.fit(texts, labels, progress=False, baseline=False)
    folder = tmp_path_factory.mktemp(f"clf_{request.param}") / "model"
    clf.save(folder)
    return request.param, clf, folder


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# ---------------------------------------------------------------- forecaster
def test_forecaster_builds_the_xlstm_layer_it_was_asked_for(forecaster):
    rnn, fc, _ = forecaster
    layer = fc.net.net.rnn
    assert type(layer) is LAYER[rnn]
    assert (layer.hidden_size, layer.num_heads, layer.bidirectional) == (8, 2, True)
    if rnn == "slstm":
        assert (layer.num_layers, layer.dropout) == (2, 0.1)
        assert tuple(layer.weight_hh_l0.shape) == (2, 16, 4)  # 2 heads of d = 4, 4 gates
    else:
        assert layer.chunk_size == 4 and layer.block and layer.form == "chunkwise"


def test_forecaster_forecasts_are_finite_and_survive_save_and_load(forecaster):
    rnn, fc, folder = forecaster
    want = fc.predict()
    numbers = want.drop(columns="month").to_numpy()
    assert want.shape[0] == 6 and np.isfinite(numbers).all()
    config = json.loads((folder / "config.json").read_text())["config"]["forecaster"]
    assert (config["rnn"], config["num_heads"]) == (rnn, 2)
    again = Forecaster.load(folder)
    assert type(again.net.net.rnn) is LAYER[rnn]
    got = again.predict()
    pd.testing.assert_frame_equal(got, want)  # the same weights: identical forecasts
    recent = make_series(120).iloc[:110]
    pd.testing.assert_frame_equal(again.predict(recent), fc.predict(recent))


def test_forecaster_exports_to_onnx_and_the_runtime_forecasts_as_torch(forecaster, tmp_path):
    rnn, fc, _ = forecaster
    folder = fc.export_onnx(tmp_path / "onnx")
    meta = json.loads((folder / "export.json").read_text())
    assert meta["config"]["rnn"] == rnn and meta["verification"]["max_abs_diff"] <= 1e-5
    pred = runtime.load(folder)
    assert pred.backend == "onnx"
    # the graph itself on fresh windows, batch 1 and 7
    rng = np.random.default_rng(8)
    x = rng.normal(size=(7, 12, 1)).astype(np.float32)
    import onnxruntime as ort

    sess = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    for batch in (x[:1], x):
        with torch.inference_mode():
            want = fc.net(torch.from_numpy(batch)).numpy()
        assert_close(sess.run(["forecast"], {"x": batch})[0], want)
    recent = make_series(120).iloc[:110]
    for data in (None, recent):
        want = fc.predict(data)
        got = pred.predict(data)
        assert (got["month"] == want["month"]).all()
        numbers = [c for c in want.columns if c != "month"]
        np.testing.assert_allclose(got[numbers], want[numbers], rtol=1e-5, atol=1e-5)


def test_serve_an_xlstm_forecaster_with_torch(forecaster):
    _, fc, folder = forecaster
    with TestClient(create_app(folder)) as client:
        assert client.get("/health").json()["backend"] == "torch"
        got = client.post("/predict", json={})
        assert got.status_code == 200, got.text
    rows = got.json()["forecast"]
    np.testing.assert_allclose([r["forecast"] for r in rows], fc.predict()["forecast"], rtol=1e-6)


@pytest.mark.parametrize(
    "hidden, rnn, heads",
    [(8, "slstm", 4), (6, "slstm", 2), (5, "slstm", 1), (6, "mlstm", 2), (12, "mlstm", 4)],
)
def test_num_heads_defaults_to_a_divisor_of_the_width(hidden, rnn, heads):
    cfg = ForecasterConfig(horizon=3, window=8, rnn=rnn, hidden_size=hidden)
    layer = make_net(cfg.design(n_series=1), 1, 8, 0).rnn
    assert layer.num_heads == heads and hidden % heads == 0
    x = torch.randn(2, 8, 1)
    assert layer(x)[0].shape == (2, 8, hidden)


@pytest.mark.parametrize(
    "settings, named",
    [
        ({"rnn": "slstm", "hidden_size": 8, "num_heads": 3}, "num_heads (3) must divide"),
        ({"rnn": "mlstm", "hidden_size": 10, "num_heads": 4}, "num_heads (4) must divide"),
        ({"rnn": "mlstm", "chunk_size": 0}, "chunk_size must be an integer >= 1"),
        ({"rnn": "slstm", "chunk_size": 16}, "chunk_size=16 applies to rnn mlstm"),
        ({"rnn": "lstm", "num_heads": 2}, "num_heads=2 applies to rnn slstm or mlstm"),
        ({"rnn": "slstm", "layer_norm": True}, "layer_norm applies to rnn lstm or gru"),
        ({"rnn": "mlstm", "zoneout": 0.1}, "zoneout applies to rnn lstm or gru"),
        ({"rnn": "xlstm"}, "rnn must be one of lstm, gru, slstm, mlstm"),
    ],
)
def test_forecaster_refuses_bad_xlstm_settings_in_one_line(settings, named):
    with pytest.raises(LstmkitError) as err:
        Forecaster(horizon=3, window=8, **settings)
    assert named in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("rnn", ["slstm", "mlstm"])
def test_bf16_is_refused_on_a_cpu_without_it(rnn, cpu_fallback):
    f = Forecaster(horizon=3, window=8, rnn=rnn, hidden_size=4, precision="bf16-mixed")
    with pytest.raises(LstmkitError, match="precision bf16-mixed needs a CPU with native"):
        f.fit(make_series(48), target="y", time_col="month")
    clf = TextClassifier(rnn=rnn, hidden_size=4, embedding_dim=4, precision="bf16-mixed")
    with pytest.raises(LstmkitError, match="precision bf16-mixed needs a CPU with native"):
        clf.fit(*make_texts(20), progress=False)


def _csv(path: Path) -> Path:
    df = make_series(72)[["month", "y"]]
    df.assign(month=df["month"].dt.strftime("%Y-%m-%d")).to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    "rnn, extra", [("slstm", ["--num-heads", "2"]), ("mlstm", ["--chunk-size", "8"])]
)
def test_cli_forecast_trains_saves_and_exports_an_xlstm(rnn, extra, tmp_path, capsys, monkeypatch):
    data, out = _csv(tmp_path / "sales.csv"), tmp_path / "run"
    args = ["forecast", data, "--target", "y", "--horizon", "6", "--window", "12", "--model",
            rnn, *extra, "--hidden-size", "8", "--max-epochs", "2", "--no-progress",
            "--out", out]  # fmt: skip
    code, _, err = run(args, capsys, monkeypatch)
    assert code == 0, err
    config = json.loads((out / "model" / "config.json").read_text())["config"]["forecaster"]
    assert config["rnn"] == rnn
    assert (config["num_heads"], config["chunk_size"]) == (
        (2, None) if rnn == "slstm" else (None, 8)
    )
    written = pd.read_csv(out / "future.csv")
    again = Forecaster.load(out / "model").predict()
    np.testing.assert_allclose(written["forecast"], again["forecast"], rtol=1e-6)
    code, _, err = run(["export", "--model", out / "model"], capsys, monkeypatch)
    assert code == 0, err
    assert (out / "model" / "onnx" / "model.onnx").is_file()
    with TestClient(create_app(out / "model")) as client:  # the server prefers the export
        assert client.get("/health").json()["backend"] == "onnx"
        got = client.post("/predict", json={})
    assert got.status_code == 200, got.text
    rows = got.json()["forecast"]
    np.testing.assert_allclose([r["forecast"] for r in rows], again["forecast"], rtol=1e-5)


#: xLSTM options both commands refuse in one line, and the words the line names
BAD_XLSTM_OPTIONS = [
    (["--rnn", "slstm", "--num-heads", "3"], "num_heads (3) must divide hidden_size (8)"),
    (["--rnn", "mlstm", "--chunk-size", "0"], "chunk_size must be an integer >= 1"),
    (["--rnn", "slstm", "--precision", "bf16-mixed"], "precision bf16-mixed"),
]


@pytest.mark.parametrize("extra, named", BAD_XLSTM_OPTIONS, ids=["heads", "chunk", "bf16"])
def test_cli_forecast_bad_xlstm_settings_are_one_line(
    extra, named, tmp_path, capsys, monkeypatch, cpu_fallback
):
    data, out = _csv(tmp_path / "sales.csv"), tmp_path / "run"
    args = ["forecast", data, "--target", "y", "--hidden-size", "8", "--max-epochs", "1",
            "--no-progress", "--out", out, *extra]  # fmt: skip
    code, _, err = run(args, capsys, monkeypatch)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert named in err
    assert not out.exists()


# ---------------------------------------------------------------- text classifier
def test_classifier_builds_the_xlstm_encoder(classifier):
    rnn, clf, _ = classifier
    layer = clf.net.rnn
    assert type(layer) is LAYER[rnn] and layer.num_heads == 2
    if rnn == "slstm":
        assert (layer.num_layers, layer.bidirectional, layer.dropout) == (2, True, 0.1)
    else:
        assert layer.chunk_size == 4 and layer.bidirectional


def test_classifier_padding_changes_nothing(classifier):
    """Texts of different lengths batched together (right-padded, both directions reading
    only the real tokens) score as each text alone."""
    _, clf, _ = classifier
    texts, _ = make_texts(12, seed=5)
    together = clf.predict_proba(texts)
    alone = np.concatenate([clf.predict_proba([t]) for t in texts])
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-6)


def test_classifier_predictions_are_finite_and_survive_save_and_load(classifier):
    rnn, clf, folder = classifier
    texts, _ = make_texts(30, seed=9)
    proba = clf.predict_proba(texts)
    assert proba.shape == (30, 2) and np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    config = json.loads((folder / "config.json").read_text())["config"]["model"]
    assert (config["rnn"], config["num_heads"]) == (rnn, 2)
    again = TextClassifier.load(folder)
    assert type(again.net.rnn) is LAYER[rnn]
    np.testing.assert_array_equal(again.predict_proba(texts), proba)
    assert again.predict(texts) == clf.predict(texts)


def test_classifier_gates_can_be_inspected(classifier):
    rnn, clf, _ = classifier
    trace = clf.explain("good film but dull plot")
    assert trace.rnn == rnn and len(trace.tokens) == 5
    assert all(np.isfinite(v).all() and v.shape[0] == 5 for v in trace.gates.values())
    from lstmkit.plots.text import gates_figure

    fig = gates_figure(trace)
    assert len(fig.axes) >= 3  # a panel per gate/state (and colour bars)


def test_classifier_export_is_refused_in_one_line_and_writes_nothing(
    classifier, tmp_path, capsys, monkeypatch
):
    rnn, clf, folder = classifier
    with pytest.raises(LstmkitError) as err:
        clf.export_onnx(tmp_path / "onnx")
    message = str(err.value)
    assert "\n" not in message and f"no {rnn.upper()} operator" in message
    assert "lstmkit serve" in message
    assert not (tmp_path / "onnx").exists()
    before = snapshot(folder)
    code, out, err = run(["export", "--model", folder], capsys, monkeypatch)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("error: ") and f"no {rnn.upper()} operator" in err
    assert snapshot(folder) == before  # no onnx/ folder, nothing else touched


def test_serve_an_xlstm_classifier_with_torch(classifier):
    _, clf, folder = classifier
    texts = ["good film", "awful plot and dull", "fine"]
    with TestClient(create_app(folder)) as client:
        got = client.post("/predict", json={"texts": texts})
    assert got.status_code == 200, got.text
    np.testing.assert_allclose(got.json()["probabilities"], clf.predict_proba(texts), rtol=1e-6)


@pytest.mark.parametrize(
    "settings, named",
    [
        ({"rnn": "slstm", "hidden_size": 8, "num_heads": 3}, "num_heads (3) must divide"),
        ({"rnn": "mlstm", "chunk_size": 0}, "chunk_size must be an integer >= 1"),
        ({"rnn": "gru", "chunk_size": 8}, "chunk_size=8 applies to rnn mlstm"),
        ({"rnn": "slstm", "recurrent_dropout": 0.2}, "recurrent_dropout applies to rnn lstm"),
        ({"rnn": "mlstm", "init": "keras"}, "init 'keras' applies to rnn lstm or gru"),
    ],
)
def test_classifier_refuses_bad_xlstm_settings_in_one_line(settings, named):
    with pytest.raises(LstmkitError) as err:
        TextClassifier(**settings)
    assert named in str(err.value) and "\n" not in str(err.value)


def test_cli_classify_trains_an_xlstm_and_predicts_as_the_saved_model(
    tmp_path, capsys, monkeypatch
):
    texts, labels = make_texts(80, seed=4)
    data = tmp_path / "train.csv"
    pd.DataFrame({"text": texts, "label": labels}).to_csv(data, index=False)
    out = tmp_path / "model"
    args = ["classify", "train", data, "--out", out, "--rnn", "mlstm", "--num-heads", "2",
            "--chunk-size", "8", "--max-epochs", "1", "--embedding-dim", "8", "--hidden-size", "8",
            "--batch-size", "32", "--no-baseline", "--no-progress"]  # fmt: skip
    code, _, err = run(args, capsys, monkeypatch)
    assert code == 0, err
    config = json.loads((out / "config.json").read_text())["config"]["model"]
    assert (config["rnn"], config["num_heads"], config["chunk_size"]) == ("mlstm", 2, 8)
    code, stdout, err = run(["classify", "predict", "--model", out, "--json", "good film",
                             "awful plot"], capsys, monkeypatch)  # fmt: skip
    assert code == 0, err
    rows = [json.loads(line) for line in stdout.splitlines()]
    want = TextClassifier.load(out).predict_proba(["good film", "awful plot"])
    got = [[r["probabilities"][c] for c in ("neg", "pos")] for r in rows]
    np.testing.assert_allclose(got, want, rtol=1e-5)


@pytest.mark.parametrize("extra, named", BAD_XLSTM_OPTIONS, ids=["heads", "chunk", "bf16"])
def test_cli_classify_bad_xlstm_settings_are_one_line(
    extra, named, tmp_path, capsys, monkeypatch, cpu_fallback
):
    texts, labels = make_texts(20)
    data = tmp_path / "train.csv"
    pd.DataFrame({"text": texts, "label": labels}).to_csv(data, index=False)
    out = tmp_path / "model"
    args = ["classify", "train", data, "--out", out, "--hidden-size", "8", "--max-epochs", "1",
            "--no-progress", *extra]  # fmt: skip
    code, _, err = run(args, capsys, monkeypatch)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert named in err
    assert not out.exists()


@pytest.mark.parametrize("rnn", ["slstm", "mlstm"])
def test_an_xlstm_encoder_pretrains_and_fine_tunes(rnn, tmp_path):
    """The language model pretrains the xLSTM encoder; a classifier fine-tuned from the
    folder takes its rnn and heads and starts from its weights."""
    from test_text_pretrain import _load, make_corpus, make_labelled

    pre = TextClassifier(rnn=rnn, num_heads=2, embedding_dim=8, hidden_size=8,
                         bidirectional=True, vocab_size=100)  # fmt: skip
    pre.pretrain(make_corpus(200), max_epochs=1, batch_size=32, lr=0.01, progress=False)
    pre.save_pretrained(tmp_path / "encoder")
    enc = _load(tmp_path / "encoder")
    assert all(torch.isfinite(t).all() for t in enc.encoder_state().values())
    texts, labels = make_labelled(60)
    clf = TextClassifier(max_epochs=1, lr=1e-12, batch_size=16)  # rnn lstm until it adopts
    clf.fit(texts, labels, pretrained=tmp_path / "encoder", progress=False, baseline=False)
    assert (clf.config.rnn, clf.config.num_heads, clf.config.bidirectional) == (rnn, 2, True)
    assert type(clf.net.rnn) is LAYER[rnn]
    state = clf.net.state_dict()
    for name, tensor in enc.encoder_state().items():  # lr 1e-12: still the pretrained values
        torch.testing.assert_close(state[name], tensor, atol=1e-6, rtol=0)
    with pytest.raises(LstmkitError, match="num_heads=2 but num_heads=4"):
        TextClassifier(num_heads=4, rnn=rnn).fit(
            texts, labels, pretrained=tmp_path / "encoder", progress=False
        )
