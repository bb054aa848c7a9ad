"""ONNX export (`lstmkit.export`, ``export_onnx``, ``lstmkit export``): onnxruntime vs PyTorch.

Every layer option the tasks use is exported and run on onnxruntime with fresh inputs
(batch sizes 1 and 7, padded rows of several lengths) against the PyTorch model in float32,
within 1e-5 + 1e-5 |value|; a padded row must also score as it does alone. The self-check
must be able to fail (a weight changed in the traced copy), options without an ONNX node
must say so in one line, and the CLI must write the folder or one error line and nothing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import torch

import lstmkit.export.onnx as onnx_export
import lstmkit.tasks.text_classification.export as text_export
from lstmkit import Forecaster, TextClassifier
from lstmkit.data.tokenize import TextTokenizer
from lstmkit.errors import LstmkitError
from lstmkit.nn import GRU, LSTM
from lstmkit.tasks.text_classification.network import TextClassifierNet

sys.path.insert(0, str(Path(__file__).parent))
from test_cli_classify import run  # the CLI entry point in-process: (code, stdout, stderr)

WORDS = ["good", "bad", "great", "awful", "fine", "poor", "nice", "worst", "best", "dull", "film"]
ATOL = RTOL = 1e-5


def make_texts(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    texts = [" ".join(rng.choice(WORDS, size=int(rng.integers(1, 40)))) for _ in range(n)]
    labels = [
        "pos" if t.count("good") + t.count("great") >= t.count("bad") else "neg" for t in texts
    ]
    return texts, labels


def untrained_classifier(classes: list, **settings) -> TextClassifier:
    """A TextClassifier with its real tokenizer and network at random initial weights
    (what is under test is the export of the network, not its training)."""
    texts, _ = make_texts(60)
    clf = TextClassifier(embedding_dim=6, hidden_size=5, **settings)
    clf.tokenizer = TextTokenizer.train(texts, clf.config.tokenizer)
    clf.classes = list(classes)
    torch.manual_seed(1)
    clf.net = TextClassifierNet(clf.tokenizer.vocab_size, len(classes), clf.config).eval()
    return clf


def assert_close(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    bound = ATOL + RTOL * np.abs(want)
    assert (np.abs(got - want) <= bound).all(), float(np.abs(got - want).max())


def padded_batch(rng: np.random.Generator, vocab: int, lengths: list[int]) -> dict:
    width = max(lengths)
    ids = rng.integers(1, vocab, size=(len(lengths), width)).astype(np.int64)
    lens = np.asarray(lengths, dtype=np.int64)
    ids[np.arange(width)[None, :] >= lens[:, None]] = 0
    return {"ids": ids, "lengths": lens}


TEXT_OPTIONS = [
    {"rnn": "lstm", "pooling": "last"},
    {"rnn": "gru", "pooling": "mean"},
    {"rnn": "lstm", "bidirectional": True, "pooling": "max"},
    {"rnn": "gru", "bidirectional": True, "pooling": "last"},
    {"rnn": "lstm", "num_layers": 2, "pooling": "attention"},
    {"rnn": "gru", "num_layers": 2, "bidirectional": True, "pooling": "max+mean"},
    {"rnn": "lstm", "num_layers": 2, "bidirectional": True, "pooling": "last+mean+max+attention"},
    {"rnn": "lstm", "recurrent_dropout": 0.3, "pooling": "last"},  # off in eval: plain
]


@pytest.mark.parametrize("settings", TEXT_OPTIONS, ids=lambda s: "-".join(map(str, s.values())))
@pytest.mark.parametrize("classes", [["neg", "pos"], [0, 1, 2]], ids=["binary", "three"])
def test_text_export_matches_pytorch(tmp_path, settings, classes):
    clf = untrained_classifier(classes, **settings)
    folder = clf.export_onnx(tmp_path / "onnx")
    meta = json.loads((folder / "export.json").read_text())
    assert meta["kind"] == "text_classifier" and meta["format"] == "onnx"
    assert meta["labels"] == classes and meta["inputs"] == ["ids", "lengths"]
    assert meta["verification"]["max_abs_diff"] <= ATOL
    sess = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(5)
    vocab = clf.tokenizer.vocab_size
    for lengths in ([1], [17], [3, 9, 1, 9, 5, 2, 8], [40, 1, 33, 12, 40, 7, 20]):
        feeds = padded_batch(rng, vocab, lengths)
        logits, proba = sess.run(["logits", "probabilities"], feeds)
        with torch.inference_mode():
            want = clf.net(torch.from_numpy(feeds["ids"]), torch.from_numpy(feeds["lengths"]))
            assert_close(logits, want.numpy())
            assert_close(proba, clf.net.probabilities(want).numpy())
        # padding is skipped exactly: each row alone (unpadded) scores the same
        for row, n in enumerate(lengths):
            alone = {
                "ids": feeds["ids"][row : row + 1, :n],
                "lengths": feeds["lengths"][row : row + 1],
            }
            assert_close(sess.run(["logits"], alone)[0][0], logits[row])


def test_text_export_refuses_variants_in_one_line(tmp_path):
    for option, value in (("layer_norm", True), ("zoneout", 0.1)):
        clf = untrained_classifier(["a", "b"], **{option: value})
        with pytest.raises(LstmkitError) as err:
            clf.export_onnx(tmp_path / "onnx")
        assert option in str(err.value) and "\n" not in str(err.value)
        assert not (tmp_path / "onnx").exists()


def test_failed_self_check_is_an_error_and_writes_nothing(tmp_path, monkeypatch):
    clf = untrained_classifier(["neg", "pos"], bidirectional=True)
    out = tmp_path / "onnx"
    clf.export_onnx(out)
    before = (out / "model.onnx").read_bytes()
    real = text_export.exportable_rnn

    def drifted(layer, **kw):  # the traced copy's weights drift from the model's
        copy = real(layer, **kw)
        with torch.no_grad():
            copy.rnn.weight_hh_l0_reverse.add_(1e-3)
        return copy

    monkeypatch.setattr(text_export, "exportable_rnn", drifted)
    with pytest.raises(LstmkitError, match="ONNX export check failed: output 'logits' differs"):
        clf.export_onnx(out)
    assert (out / "model.onnx").read_bytes() == before  # the earlier export is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["onnx"]  # no temporary left


def test_export_refuses_a_folder_with_other_content(tmp_path):
    clf = untrained_classifier(["neg", "pos"])
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(LstmkitError, match="not an lstmkit export"):
        clf.export_onnx(tmp_path)
    assert (tmp_path / "mine.txt").read_text() == "keep me"


# ---------------------------------------------------------------- forecaster
def make_series(n: int = 96, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    temp = np.sin(2 * np.pi * t / 12) + 0.1 * rng.normal(size=n)
    promo = (rng.random(n) < 0.3).astype(float)
    y = 50 + 0.3 * t + 8 * np.sin(2 * np.pi * t / 12) + 3 * temp + 5 * promo + rng.normal(size=n)
    months = pd.date_range("2000-01-01", periods=n, freq="MS")
    return pd.DataFrame({"month": months, "y": y, "temp": temp, "promo": promo})


def fit_forecaster(df: pd.DataFrame, **settings) -> Forecaster:
    covariates = settings.pop("covariates", None)
    future_covariates = settings.pop("future_covariates", None)
    # one network: the graph is compared with it (ensembles: their own test below)
    settings = {"hidden_size": 6, "max_epochs": 2, "progress": False, "ensemble": 1, **settings}
    return Forecaster(horizon=6, window=12, **settings).fit(
        df, target="y", time_col="month", covariates=covariates,
        future_covariates=future_covariates,
    )  # fmt: skip


FORECAST_OPTIONS = [
    {},
    {"rnn": "gru", "instance_norm": False, "quantiles": None},
    {"bidirectional": True, "num_layers": 2, "quantiles": [0.05, 0.5, 0.95]},
    {"rnn": "gru", "bidirectional": True, "covariates": ["temp", "promo"],
     "future_covariates": ["promo"], "scaler": "standard"},
    {"method": "recursive", "skip": False},
    {"patch": 3, "residual": "nlinear", "instance_norm": "last"},
    {"method": "recursive", "covariates": ["temp", "promo"], "future_covariates": ["promo"],
     "residual": "nlinear"},
]  # fmt: skip


FORECAST_IDS = ["lstm-q", "gru-noinorm", "bi2-q", "gru-bi-cov", "recursive", "patch-residual",
                "recursive-cov"]  # fmt: skip


@pytest.mark.parametrize("settings", FORECAST_OPTIONS, ids=FORECAST_IDS)
def test_forecaster_export_matches_pytorch(tmp_path, settings):
    fc = fit_forecaster(make_series(), **dict(settings))
    folder = fc.export_onnx(tmp_path / "onnx")
    meta = json.loads((folder / "export.json").read_text())
    assert meta["kind"] == "forecaster" and meta["window"] == 12 and meta["horizon"] == 6
    assert meta["quantiles"] == fc.config.quantiles and meta["scaler"] == fc.scaler.to_dict()
    n_future = len(fc.state.future_covariates)
    assert meta["inputs"] == (["x", "future"] if n_future else ["x"])
    sess = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(3)
    for batch in (1, 7):
        x = rng.normal(size=(batch, 12, fc.state.n_features)).astype(np.float32)
        feeds = {"x": x}
        fut = None
        if n_future:
            feeds["future"] = rng.normal(size=(batch, fc.net.net.steps, n_future)).astype(
                np.float32
            )
            fut = torch.from_numpy(feeds["future"])
        with torch.inference_mode():
            want = fc.net(torch.from_numpy(x), fut).numpy()
        assert_close(sess.run(["forecast"], feeds)[0], want)


@pytest.mark.parametrize("k", [2, 3])
def test_a_seed_ensemble_exports_as_one_graph(tmp_path, k):
    """The graph holds every network: the mean of their point forecasts and the median of
    each quantile (for two networks the mean of both), as `Forecaster` predicts; the
    runtime's table equals the forecaster's."""
    from lstmkit import runtime

    df = make_series()
    fc = fit_forecaster(df, ensemble=k, quantiles=[0.1, 0.5, 0.9], patch=2)
    folder = fc.export_onnx(tmp_path / "onnx")
    sess = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(5).normal(size=(7, 12, 1)).astype(np.float32)
    with torch.inference_mode():
        outs = np.stack([m(torch.from_numpy(x)).numpy() for m in fc.members])
    assert outs.shape == (k, 7, 6, 4)
    assert not np.allclose(outs[0], outs[1], atol=1e-3)  # the networks differ
    want = np.concatenate([outs[..., :1].mean(0), np.sort(outs[..., 1:], axis=0)[k // 2]], -1)
    if k == 2:
        want[..., 1:] = outs[..., 1:].mean(0)
    assert_close(sess.run(["forecast"], {"x": x})[0], want)
    pd.testing.assert_frame_equal(
        runtime.load(folder).predict(df.iloc[-30:]), fc.predict(df.iloc[-30:]), rtol=1e-5
    )


@pytest.mark.parametrize(
    "k, settings",
    [
        (2, {}),
        (3, {"covariates": ["temp", "promo"], "future_covariates": ["promo"],
             "residual": "nlinear"}),
    ],
    ids=["two", "three-covariates"],
)  # fmt: skip
def test_a_recursive_ensemble_exports_each_network_rolling_its_own_window(tmp_path, k, settings):
    """A recursive ensemble's graph takes one window per network and gives each one's step
    (checked against the networks themselves); the runtime rolls each network's window on
    with its own forecasts (and the known future covariates), simulates each one's sample
    paths with the same draws, and combines them: the table of `Forecaster.predict`, from
    the stored contexts and from a given history."""
    from lstmkit import runtime

    df = make_series()
    fc = fit_forecaster(df, ensemble=k, method="recursive", quantiles=[0.1, 0.5, 0.9], **settings)
    assert len(fc.members) == k
    folder = fc.export_onnx(tmp_path / "onnx")
    assert json.loads((folder / "export.json").read_text())["members"] == k
    sess = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(5)
    x = rng.normal(size=(k, 7, 12, fc.state.n_features)).astype(np.float32)
    feeds, fut = {"x": x}, [None] * k
    if settings:
        feeds["future"] = rng.normal(size=(k, 7, 1, 1)).astype(np.float32)
        fut = [torch.from_numpy(f) for f in feeds["future"]]
    with torch.inference_mode():
        want = np.stack(
            [m(torch.from_numpy(x[j]), fut[j]).numpy() for j, m in enumerate(fc.members)]
        )
    assert not np.allclose(want[0], want[1], atol=1e-3)  # the networks differ
    assert_close(sess.run(["forecast"], feeds)[0], want)
    p = runtime.load(folder)
    if settings:  # the known future values of promo over the 6 months after the history
        history, plan = df.iloc[-30:-6], df.iloc[-6:][["month", "promo"]]
        pairs = [(p.predict(history, future=plan), fc.predict(history, future=plan))]
    else:
        pairs = [(p.predict(), fc.predict()), (p.predict(df.iloc[-30:]), fc.predict(df.iloc[-30:]))]
    for got, expected in pairs:
        pd.testing.assert_frame_equal(got, expected, rtol=1e-4, atol=1e-4)
    meta = json.loads((folder / "export.json").read_text())
    for bad, why in ((1, r"damaged \(members must be >= 2"), (k + 1, "does not match its graph")):
        (folder / "export.json").write_text(json.dumps({**meta, "members": bad}))
        with pytest.raises(LstmkitError, match=why):
            runtime.load(folder)


@pytest.mark.parametrize(
    "rnn, variant",
    [
        (LSTM, {"layer_norm": True}),
        (LSTM, {"zoneout": 0.1}),
        (GRU, {"layer_norm": True, "zoneout": 0.2}),
    ],
    ids=["lstm-layer-norm", "lstm-zoneout", "gru-both"],
)
def test_forecaster_variants_export_unrolled(tmp_path, rnn, variant):
    """layer_norm / zoneout have no ONNX node: the forecaster's fixed window is unrolled."""
    fc = fit_forecaster(make_series(), max_epochs=1, bidirectional=True, num_layers=2)
    torch.manual_seed(2)  # the encoder as fit(**variant) builds it, at random weights
    fc.net.net.rnn = rnn(1, 6, 2, batch_first=True, bidirectional=True, **variant).eval()
    folder = fc.export_onnx(tmp_path / "onnx")
    sess = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(4).normal(size=(7, 12, 1)).astype(np.float32)
    for batch in (x[:1], x):
        with torch.inference_mode():
            want = fc.net(torch.from_numpy(batch)).numpy()
        assert_close(sess.run(["forecast"], {"x": batch})[0], want)


# ---------------------------------------------------------------- CLI
def test_cli_export(tmp_path, capsys, monkeypatch):
    model = tmp_path / "model"
    untrained_classifier(["neg", "pos"], pooling="attention").save(model)
    code, out, err = run(["export", "--model", model, "--format", "onnx"], capsys, monkeypatch)
    assert code == 0, err
    assert {"model.onnx", "export.json", "tokenizer.json"} <= {
        p.name for p in (model / "onnx").iterdir()
    }
    assert "exported the text classifier" in out
    code, _, _ = run(
        ["export", "--model", model, "--out", tmp_path / "elsewhere"], capsys, monkeypatch
    )
    assert code == 0 and (tmp_path / "elsewhere" / "model.onnx").is_file()


@pytest.mark.parametrize("case", ["missing", "not-a-model", "format"])
def test_cli_export_bad_input_is_one_line(tmp_path, capsys, monkeypatch, case):
    model = tmp_path / "model"
    args = ["export", "--model", model]
    if case == "not-a-model":
        model.mkdir()
        (model / "notes.txt").write_text("hello")
    if case == "format":
        untrained_classifier(["neg", "pos"]).save(model)
        args += ["--format", "tflite"]
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    code, out, err = run(args, capsys, monkeypatch)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_export_of_a_saved_forecaster_via_cli(tmp_path, capsys, monkeypatch):
    model = tmp_path / "model"
    fit_forecaster(make_series(), max_epochs=1).save(model)
    code, _, err = run(["export", "--model", model], capsys, monkeypatch)
    assert code == 0, err
    meta = json.loads(Path(model / "onnx" / "export.json").read_text())
    assert meta["kind"] == "forecaster" and meta["opset"] == onnx_export.OPSET


# ---------------------------------------------------------------- what an export may replace
@pytest.fixture(scope="module")
def saved_models(tmp_path_factory) -> dict[str, Path]:
    """A saved text classifier and a saved forecaster (model folders for ``lstmkit export``)."""
    root = tmp_path_factory.mktemp("saved")
    untrained_classifier(["neg", "pos"]).save(root / "text")
    fit_forecaster(make_series(), max_epochs=1).save(root / "forecaster")
    return {"text_classifier": root / "text", "forecaster": root / "forecaster"}


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative name -> content), to compare before/after."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_export_never_deletes_a_users_file_beside_an_export(tmp_path, capsys, monkeypatch,
                                                            saved_models):  # fmt: skip
    """DIR held export.json and thesis.docx: exporting into DIR again deleted thesis.docx."""
    out = tmp_path / "out"
    code, _, err = run(["export", "-m", saved_models["text_classifier"], "--out", out],
                       capsys, monkeypatch)  # fmt: skip
    assert code == 0, err
    (out / "thesis.docx").write_bytes(b"three years of work")
    before = snapshot(tmp_path)
    code, stdout, err = run(["export", "-m", saved_models["text_classifier"], "--out", out],
                            capsys, monkeypatch)  # fmt: skip
    assert code == 2 and stdout == ""
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "thesis.docx" in err and "would delete" in err
    assert snapshot(tmp_path) == before  # the file, the export and nothing else (no temporary)
    (out / "thesis.docx").unlink()  # once the folder holds only an export, it is replaced
    code, _, err = run(["export", "-m", saved_models["text_classifier"], "--out", out],
                       capsys, monkeypatch)  # fmt: skip
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["export.json", "model.onnx", "tokenizer.json"]


@pytest.mark.parametrize("first", ["text_classifier", "forecaster"])
def test_an_export_of_another_kind_is_not_replaced(tmp_path, capsys, monkeypatch, saved_models,
                                                   first):  # fmt: skip
    """A forecaster export silently replaced a text classifier's (and the reverse), while
    model folders refuse a change of kind."""
    second = "forecaster" if first == "text_classifier" else "text_classifier"
    out = tmp_path / "out"
    code, _, err = run(["export", "-m", saved_models[first], "--out", out], capsys, monkeypatch)
    assert code == 0, err
    before = snapshot(tmp_path)
    code, _, err = run(["export", "-m", saved_models[second], "--out", out], capsys, monkeypatch)
    assert code == 2 and err.count("\n") == 1
    assert f"it holds the export of a {first.replace('_', ' ')}, which would be lost" in err
    assert snapshot(tmp_path) == before
    # the API refuses it too, and the same kind again replaces the export
    model = Forecaster if second == "forecaster" else TextClassifier
    with pytest.raises(LstmkitError, match="which would be lost"):
        model.load(saved_models[second]).export_onnx(out)
    assert snapshot(tmp_path) == before
    code, _, err = run(["export", "-m", saved_models[first], "--out", out], capsys, monkeypatch)
    assert code == 0, err
    assert json.loads((out / "export.json").read_text())["kind"] == first


def test_an_unreadable_export_json_is_not_replaced(tmp_path, saved_models):
    """What an export.json that is not an lstmkit export describes is unknown: kept."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "export.json").write_text('{"format": "something else"}')
    (out / "model.onnx").write_bytes(b"whose?")
    before = snapshot(tmp_path)
    clf = TextClassifier.load(saved_models["text_classifier"])
    with pytest.raises(LstmkitError, match="is not a readable lstmkit export"):
        clf.export_onnx(out)
    assert snapshot(tmp_path) == before


def test_a_file_put_into_the_folder_during_the_export_is_kept(tmp_path, monkeypatch):
    """The target is checked again just before the swap: a file that arrived while the
    graph was traced and checked is not deleted with the old export."""
    clf = untrained_classifier(["neg", "pos"])
    out = clf.export_onnx(tmp_path / "out")
    real = text_export.verify

    def a_user_writes_meanwhile(*args, **kwargs):  # the real self-check, and a user's file
        (out / "notes.txt").write_text("mine")
        return real(*args, **kwargs)

    monkeypatch.setattr(text_export, "verify", a_user_writes_meanwhile)
    with pytest.raises(LstmkitError, match=r"notes\.txt"):
        clf.export_onnx(out)
    assert (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary left
