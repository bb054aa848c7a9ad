"""`lstmkit.runtime`: exported models predict like the PyTorch estimators, without torch.

Trained tiny models are exported and loaded with `lstmkit.runtime.load`; their predictions
are compared with `TextClassifier.predict` / `predict_proba` and `Forecaster.predict`
(default horizon after the data, new data, known future covariates, the recursive band
from simulated sample paths, with covariates rolled forward). A subprocess in which
``import torch`` fails loads and predicts, and the numpy draws are checked against
``torch.rand`` itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lstmkit import Forecaster, TextClassifier, runtime
from lstmkit.errors import LstmkitError
from lstmkit.tasks.forecasting.runtime import _torch_rand

sys.path.insert(0, str(Path(__file__).parent))
from test_export_onnx import fit_forecaster, make_series, make_texts

SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture(scope="module")
def text_model(tmp_path_factory) -> tuple[TextClassifier, Path]:
    texts, labels = make_texts(200, seed=1)
    clf = TextClassifier(
        embedding_dim=8, hidden_size=8, bidirectional=True, pooling="max+mean", max_epochs=2,
        lr=0.02, max_length=12, keep="head_tail", seed=3,
    ).fit(texts, labels, progress=False)  # fmt: skip
    model = tmp_path_factory.mktemp("text") / "model"
    clf.save(model)
    clf.export_onnx(model / "onnx")
    return clf, model


def test_text_predictor_matches_the_classifier(text_model):
    clf, model = text_model
    pred = runtime.load(model)  # the model folder: its onnx/ export is found
    assert pred.kind == "text_classifier" and pred.backend == "onnx"
    assert pred.labels == clf.classes == pred.info["labels"]
    assert pred.info["backend"] == "onnx" and pred.info["max_length"] == 12
    rng = np.random.default_rng(8)
    words = ["good", "bad", "film", "unheard-of-word", "GREAT"]
    texts = [" ".join(rng.choice(words, size=n)) for n in (1, 3, 11, 12, 13, 50, 400)]
    texts += ["<br />Good,  good<br/>bad!", "x"]  # markup, punctuation, unknown word only
    np.testing.assert_allclose(pred.predict_proba(texts), clf.predict_proba(texts), atol=1e-5)
    assert pred.predict(texts) == clf.predict(texts)
    # long texts are cut as the classifier cuts them (head and tail kept): only the
    # kept tokens matter
    long_a = "good " * 3 + "bad " * 100 + "film " * 9
    long_b = "good " * 3 + "film " * 100 + "film " * 9
    pa, pb = pred.predict_proba([long_a, long_b])
    np.testing.assert_allclose(pa, pb, atol=1e-7)
    np.testing.assert_allclose(pa, clf.predict_proba([long_a])[0], atol=1e-5)
    # one text alone and inside a padded batch score the same
    np.testing.assert_allclose(
        pred.predict_proba(texts[2:3])[0], pred.predict_proba(texts)[2], atol=1e-6
    )


def test_text_predictor_refuses_bad_input(text_model):
    pred = runtime.load(text_model[1] / "onnx")
    for bad in ("a bare string", [], ["fine", ""]):
        with pytest.raises(LstmkitError):
            pred.predict(bad)


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"covariates": ["temp", "promo"], "future_covariates": ["promo"], "rnn": "gru"},
        {"method": "recursive", "quantiles": [0.1, 0.5, 0.9]},
        {
            "method": "recursive",
            "quantiles": [0.1, 0.5, 0.9],
            "covariates": ["temp", "promo"],
            "future_covariates": ["promo"],
        },
    ],
    ids=["direct", "future-covariates", "recursive-band", "recursive-covariates-band"],
)
def test_forecast_predictor_matches_the_forecaster(tmp_path, settings):
    df = make_series(120)
    train, recent = df.iloc[:100], df.iloc[:110]
    fc = fit_forecaster(train, **dict(settings))
    fc.export_onnx(tmp_path / "onnx")
    pred = runtime.load(tmp_path / "onnx")
    assert pred.kind == "forecaster" and pred.backend == "onnx"
    info = pred.info
    assert info["horizon"] == 6 and info["window"] == 12 and info["target"] == "y"
    assert info["quantiles"] == fc.config.quantiles and info["freq"] == "MS"
    assert info["covariates"] == fc.state.covariates and info["input_size"] == fc.state.n_features
    future = None
    if fc.state.future_covariates:
        future = df[["month", "promo"]].iloc[100:120]
    for data in (None, recent):
        want = fc.predict(data, future=future)
        got = pred.predict(data, future=future)
        assert list(got.columns) == list(want.columns)
        assert (got["month"] == want["month"]).all()
        numbers = [c for c in want.columns if c != "month"]
        np.testing.assert_allclose(got[numbers], want[numbers], rtol=1e-5, atol=1e-4)


def test_numpy_draws_are_torchs():
    rng = np.random.RandomState(11)
    gen = torch.Generator().manual_seed(11)
    for n in (1, 500, 16000, 7):
        assert np.array_equal(_torch_rand(rng, n), torch.rand(n, generator=gen).numpy())


def test_runtime_without_torch(tmp_path, text_model):
    """Load and predict in a process where importing torch (or lightning) fails."""
    clf, model = text_model
    fc = fit_forecaster(make_series(), max_epochs=1)
    fc.export_onnx(tmp_path / "fc")
    texts = ["good film", "bad bad plot " * 20]
    script = textwrap.dedent(
        f"""
        import importlib.abc, json, sys

        class NoTorch(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "lightning", "pytorch_lightning"):
                    raise ImportError(f"{{name}} is blocked in this test")
                return None

        sys.meta_path.insert(0, NoTorch())
        try:
            import torch
            sys.exit("torch imported")
        except ImportError:
            pass
        from lstmkit import runtime
        text = runtime.load({str(model)!r})
        fc = runtime.load({str(tmp_path / "fc")!r})
        table = fc.predict()
        assert not [m for m in sys.modules if m.split(".")[0] in ("torch", "lightning")]
        print(json.dumps({{"proba": text.predict_proba({texts!r}).tolist(),
                           "labels": text.predict({texts!r}),
                           "forecast": table["forecast"].tolist(),
                           "months": table["month"].astype(str).tolist()}}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
        env={"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin", "OMP_WAIT_POLICY": "PASSIVE"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(got["proba"], clf.predict_proba(texts), atol=1e-5)
    assert got["labels"] == clf.predict(texts)
    want = fc.predict()
    np.testing.assert_allclose(got["forecast"], want["forecast"], rtol=1e-5, atol=1e-4)
    assert got["months"] == want["month"].astype(str).tolist()


def test_load_errors_are_one_line(tmp_path, text_model):
    with pytest.raises(LstmkitError, match="no ONNX export"):
        runtime.load(tmp_path / "nothing")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "export.json").write_text("{not json")
    with pytest.raises(LstmkitError, match="not readable JSON"):
        runtime.load(broken)
    (broken / "export.json").write_text(json.dumps({"format": "onnx", "kind": "forecaster",
                                                    "lstmkit_version": "99.0"}))  # fmt: skip
    with pytest.raises(LstmkitError, match="cannot read"):
        runtime.load(broken)
    export = text_model[1] / "onnx"
    meta = json.loads((export / "export.json").read_text())
    (broken / "export.json").write_text(json.dumps(meta))
    with pytest.raises(LstmkitError, match=r"model\.onnx: no such file"):
        runtime.load(broken)
    for name in ("model.onnx", "tokenizer.json"):
        (broken / name).write_bytes((export / name).read_bytes())
    del meta["labels"]
    (broken / "export.json").write_text(json.dumps(meta))
    with pytest.raises(LstmkitError, match="is damaged"):
        runtime.load(broken)
    fc = fit_forecaster(make_series(), max_epochs=1)
    fc.export_onnx(tmp_path / "fc")
    meta = json.loads((tmp_path / "fc" / "export.json").read_text())
    meta["data"]["window"] = 1  # a setting out of range
    (tmp_path / "fc" / "export.json").write_text(json.dumps(meta))
    damaged = r"fc/export\.json is damaged \(data: window must be"
    with pytest.raises(LstmkitError, match=damaged) as err:
        runtime.load(tmp_path / "fc")
    assert "\n" not in str(err.value)


def test_forecast_predictor_many_series(tmp_path):
    """Long format (an id column): one model, a forecast table per series, as Forecaster."""
    a, b = make_series(90, seed=1), make_series(90, seed=2)
    b["y"] = b["y"] * 3 + 40
    long = pd.concat([a.assign(store="a"), b.assign(store="b")], ignore_index=True)
    fc = Forecaster(horizon=6, window=12, hidden_size=6, max_epochs=2, progress=False)
    fc.fit(long[["store", "month", "y"]], target="y", time_col="month", id_col="store")
    fc.export_onnx(tmp_path / "onnx")
    pred = runtime.load(tmp_path / "onnx")
    assert pred.info["series"] == ["a", "b"] and pred.info["id_col"] == "store"
    for data in (None, long[["store", "month", "y"]].iloc[5:]):
        want, got = fc.predict(data), pred.predict(data)
        assert list(got.columns) == list(want.columns) == ["store", "month", "forecast", "q10",
                                                           "q50", "q90"]  # fmt: skip
        assert (got[["store", "month"]] == want[["store", "month"]]).all().all()
        numbers = ["forecast", "q10", "q50", "q90"]
        np.testing.assert_allclose(got[numbers], want[numbers], rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("batch_size", [-1, 0, 1.5, True, "2", np.float64(2.0)])
def test_a_bad_batch_size_is_refused_by_runtime_and_classifier(text_model, batch_size):
    """batch_size -1 gave uninitialised rows (range(0, n, -1) is empty), 1.5 a TypeError,
    0 a ValueError; the PyTorch classifier raised torch's ValueError for the same values."""
    clf, model = text_model
    pred = runtime.load(model)
    texts = ["good film", "bad", "a film"]
    for predictor in (pred, clf):
        with pytest.raises(LstmkitError, match="batch_size must be") as err:
            predictor.predict_proba(texts, batch_size=batch_size)
        assert "\n" not in str(err.value)
    # whole numbers of any integer type are batch sizes, and the batch does not matter
    want = clf.predict_proba(texts)
    for size in (1, 2, np.int64(5), None):
        np.testing.assert_allclose(pred.predict_proba(texts, batch_size=size), want, atol=1e-5)
        np.testing.assert_allclose(clf.predict_proba(texts, batch_size=size), want, atol=1e-6)


@pytest.mark.parametrize(
    "texts",
    [{"good film": 1, "bad": 0}, {"good film", "bad"}, pd.DataFrame({"text": ["good film"]})],
    ids=["dict", "set", "data-frame"],
)
def test_texts_in_a_mapping_or_set_are_refused(text_model, texts):
    """A dict had its keys classified (a data frame its column names): refused instead."""
    clf, model = text_model
    for predictor in (runtime.load(model), clf):
        with pytest.raises(LstmkitError, match="texts must be a sequence"):
            predictor.predict(texts)


def test_a_lone_surrogate_is_one_line_naming_the_row(text_model):
    """'\\ud800' was a TypeError from the tokenizer (runtime and PyTorch classifier alike)."""
    clf, model = text_model
    texts = ["good film", "bad \ud800 film", "fine"]
    for predictor in (runtime.load(model), clf):
        with pytest.raises(LstmkitError, match=r"texts: text 2 holds a lone surrogate \(U\+D800\)"):
            predictor.predict_proba(texts)
    with pytest.raises(
        LstmkitError, match=r"training data: text 1 holds a lone surrogate \(U\+DFFF\)"
    ):
        clf.__class__(max_epochs=1).fit(["\udfff x", "good", "a \ud800"], ["a", "b", "a"])


@pytest.mark.parametrize("threads", [-1, 0, 1.5, True, "2"])
def test_bad_threads_are_refused_at_load(text_model, threads):
    with pytest.raises(LstmkitError, match="threads must be a whole number >= 1") as err:
        runtime.load(text_model[1], threads=threads)
    assert "\n" not in str(err.value)
    assert runtime.load(text_model[1], threads=np.int64(1)).predict(["good film"])


def test_forecast_predictor_checks_the_time_axis_and_refuses_a_stray_future(tmp_path):
    """Issue 19: the runtime shares `PredictCore`'s checks with `Forecaster.predict`; a
    history on another time axis and a future table the model cannot use used to be
    forecast (the table ignored) in silence."""
    df = make_series(60)
    fit_forecaster(df, max_epochs=1).export_onnx(tmp_path / "fc")
    pred = runtime.load(tmp_path / "fc")
    for times, got in [
        (pd.date_range("2000-01-01", periods=30, freq="D"), "daily timestamps (freq D)"),
        (np.arange(30) + 26, "integer times"),
        (pd.date_range("2000-01-01", periods=30, freq="MS", tz="UTC"), "times in zone UTC"),
    ]:
        history = df.iloc[:30].assign(month=times)
        with pytest.raises(LstmkitError, match="the model was trained on ") as err:
            pred.predict(history)
        assert f"the history has {got}" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(LstmkitError, match="this model uses no known future covariates"):
        pred.predict(future=df.iloc[-6:])
