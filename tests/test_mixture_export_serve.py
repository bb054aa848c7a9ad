"""A text model's mixture with its bag-of-words baseline, exported, run and served.

``TextClassifier.predict_proba(texts, combined=True)`` mixes the network with its
baseline (TF-IDF or NBSVM) at the weight chosen on the validation split. The ONNX export
carries the baseline (JSON + safetensors, no pickle), and `lstmkit.runtime` and
``lstmkit serve`` (both backends) must give the classifier's own combined probabilities;
a model without a mixture refuses ``combined`` in the classifier's one line everywhere.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from lstmkit import TextClassifier, runtime
from lstmkit.errors import LstmkitError
from lstmkit.serving.app import create_app
from lstmkit.tasks.text_classification.baseline import BagOfWordsBaseline

sys.path.insert(0, str(Path(__file__).parent))
from test_export_onnx import make_texts, untrained_classifier

#: texts the models never saw: known words, unknown words, markup, long and short
TEXTS = [
    "good film",
    "bad bad plot",
    "a great great film but a bad end",
    "unheard-of words only",
    "<br />Good,  good<br/>bad!",
    "film " * 60 + "good",
]
#: a weight strictly inside (0, 1), so that the mixture differs from both of its members
WEIGHT = 0.37


@pytest.fixture(scope="module", params=["tfidf", "nbsvm"])
def mixed(request, tmp_path_factory) -> dict[str, Path | float]:
    """A trained classifier with its ``request.param`` baseline: ``trained`` saved with the
    weight its validation split chose, ``forced`` with `WEIGHT`; each exported into its
    ``onnx/``."""
    texts, labels = make_texts(160, seed=5)
    clf = TextClassifier(embedding_dim=8, hidden_size=8, max_epochs=2, lr=0.02, seed=3).fit(
        texts, labels, progress=False, baseline=request.param
    )
    assert clf.baseline is not None and clf.baseline.settings.kind == request.param
    assert clf.baseline.network_weight is not None
    root = tmp_path_factory.mktemp(f"mixed-{request.param}")
    out: dict[str, Path | float] = {"weight": clf.baseline.network_weight}
    for name in ("trained", "forced"):
        if name == "forced":
            clf.baseline.network_weight = WEIGHT
        clf.save(root / name)
        clf.export_onnx(root / name / "onnx")
        out[name] = root / name
    return out


@pytest.mark.parametrize("model", ["trained", "forced"])
def test_runtime_gives_the_classifiers_combined_probabilities(mixed, model):
    folder = mixed[model]
    clf = TextClassifier.load(folder)
    pred = runtime.load(folder)  # finds onnx/
    want_weight = WEIGHT if model == "forced" else mixed["weight"]
    assert pred.mixture_weight == want_weight == pred.info["mixture_weight"]
    meta = json.loads((folder / "onnx" / "export.json").read_text())
    assert meta["mixture"] == {
        "settings_file": "baseline.json",
        "weights_file": "baseline.safetensors",
    }
    want = clf.predict_proba(TEXTS, combined=True)
    got = pred.predict_proba(TEXTS, combined=True)
    np.testing.assert_allclose(got, want, atol=1e-5)  # float32 network, same baseline math
    assert pred.predict(TEXTS, combined=True) == clf.predict(TEXTS, combined=True)
    np.testing.assert_allclose(pred.predict_proba(TEXTS), clf.predict_proba(TEXTS), atol=1e-5)
    if model == "forced":  # the mixture by hand: the network alone and the baseline alone
        alone = clf.predict_proba(TEXTS)
        base = clf.baseline.predict_proba(TEXTS)
        np.testing.assert_allclose(got, WEIGHT * alone + (1 - WEIGHT) * base, atol=1e-5)
        assert np.abs(got - alone).max() > 1e-3 and np.abs(got - base).max() > 1e-3


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_the_server_gives_the_classifiers_combined_probabilities(mixed, backend):
    folder = mixed["forced"]
    clf = TextClassifier.load(folder)
    combined, alone = clf.predict_proba(TEXTS, combined=True), clf.predict_proba(TEXTS)
    tolerance = {"rtol": 1e-6, "atol": 1e-7} if backend == "torch" else {"atol": 1e-5}

    def check(client: TestClient, body: dict, want: np.ndarray, used: bool) -> None:
        got = client.post("/predict", json=body)
        assert got.status_code == 200, got.text
        answer = got.json()
        assert answer["combined"] is used
        np.testing.assert_allclose(answer["probabilities"], want, **tolerance)
        assert answer["labels"] == [clf.classes[i] for i in want.argmax(axis=1)]

    with TestClient(create_app(folder, backend=backend)) as client:
        assert client.get("/model").json()["combined"] is False
        assert client.get("/model").json()["mixture_weight"] == WEIGHT
        check(client, {"texts": TEXTS}, alone, False)
        check(client, {"texts": TEXTS, "combined": True}, combined, True)
        check(client, {"texts": TEXTS, "combined": False}, alone, False)
        bad = client.post("/predict", json={"texts": TEXTS, "combined": "yes"})
        assert bad.status_code == 422 and "combined" in bad.json()["detail"]
    # `lstmkit serve --combined`: the mixture unless a request says otherwise
    with TestClient(create_app(folder, backend=backend, defaults={"combined": True})) as client:
        assert client.get("/model").json()["combined"] is True
        check(client, {"texts": TEXTS}, combined, True)
        check(client, {"texts": TEXTS, "combined": False}, alone, False)


def test_a_model_without_a_mixture_refuses_combined_in_the_classifiers_line(tmp_path):
    """No baseline, or one without a validation weight: exported without one, and the
    runtime and the server (both backends) refuse ``combined`` as the classifier does."""
    texts, labels = make_texts(60, seed=6)
    unmixed = untrained_classifier(["neg", "pos"])  # no baseline at all
    weightless = untrained_classifier(["neg", "pos"])  # a baseline, no validation weight
    weightless.baseline = BagOfWordsBaseline().fit(texts, [int(y == "pos") for y in labels], 2)
    for name, clf in (("none", unmixed), ("weightless", weightless)):
        folder = clf.save(tmp_path / name)
        clf.export_onnx(folder / "onnx")
        meta = json.loads((folder / "onnx" / "export.json").read_text())
        assert meta["mixture"] is None
        assert sorted(p.name for p in (folder / "onnx").iterdir()) == [
            "export.json",
            "model.onnx",
            "tokenizer.json",
        ]
        with pytest.raises(LstmkitError) as refused:
            clf.predict_proba(TEXTS, combined=True)
        line = str(refused.value)
        assert "\n" not in line and "no mixture" in line
        pred = runtime.load(folder)
        assert pred.mixture_weight is None
        for call in (pred.predict_proba, pred.predict):
            with pytest.raises(LstmkitError) as err:
                call(TEXTS, combined=True)
            assert str(err.value) == line
        for backend in ("torch", "onnx"):
            with TestClient(create_app(folder, backend=backend)) as client:
                assert client.get("/model").json()["mixture_weight"] is None
                got = client.post("/predict", json={"texts": TEXTS, "combined": True})
                assert got.status_code == 422 and got.json()["detail"] == line
                assert client.post("/predict", json={"texts": TEXTS}).status_code == 200
            with pytest.raises(LstmkitError, match="--combined: this model has no mixture"):
                create_app(folder, backend=backend, defaults={"combined": True})


def test_workers_get_the_combined_default_from_the_environment(mixed, monkeypatch):
    """``lstmkit serve --combined --workers N`` hands the default to each worker's app
    (`app_from_env`) in the environment."""
    from lstmkit.serving import app as serving

    folder = mixed["forced"]
    want = TextClassifier.load(folder).predict_proba(TEXTS, combined=True)
    monkeypatch.setenv(serving.ENV_MODEL, str(folder))
    monkeypatch.delenv(serving.ENV_API_KEY, raising=False)
    for defaults, used in (('{"combined": true}', True), ("{}", False), ("", False)):
        monkeypatch.setenv(serving.ENV_DEFAULTS, defaults)
        with TestClient(serving.app_from_env()) as client:
            assert client.get("/model").json()["combined"] is used
            got = client.post("/predict", json={"texts": TEXTS}).json()
            assert got["combined"] is used
            if used:
                np.testing.assert_allclose(got["probabilities"], want, atol=1e-5)
    for bad in ("{not json", "[true]"):
        monkeypatch.setenv(serving.ENV_DEFAULTS, bad)
        with pytest.raises(LstmkitError, match="LSTMKIT_SERVE_DEFAULTS must be a JSON object"):
            serving.app_from_env()


def test_an_exported_baseline_that_scores_otherwise_fails_the_export(tmp_path, monkeypatch):
    """The export checks the baseline as the runtime reads it back (as it checks the graph
    against PyTorch): files that do not score as the model's own baseline are an error and
    nothing is written."""
    texts, labels = make_texts(60, seed=7)
    clf = untrained_classifier(["neg", "pos"])
    clf.baseline = BagOfWordsBaseline().fit(texts, [int(y == "pos") for y in labels], 2)
    clf.baseline.network_weight = WEIGHT
    real = BagOfWordsBaseline.save

    def drifted(self, folder):  # the files written hold an intercept off by 0.01
        self.intercept = self.intercept + 0.01
        try:
            return real(self, folder)
        finally:
            self.intercept = self.intercept - 0.01

    monkeypatch.setattr(BagOfWordsBaseline, "save", drifted)
    with pytest.raises(LstmkitError, match="the exported bag-of-words baseline does not score"):
        clf.export_onnx(tmp_path / "onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
