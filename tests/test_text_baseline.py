"""The bag-of-words baseline beside every text classifier: math, saving, CLI tables."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import forget_digests
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from lstmkit import TextClassifier
from lstmkit.errors import LstmkitError
from lstmkit.tasks.text_classification.baseline import BagOfWordsBaseline

sys.path.insert(0, str(Path(__file__).parent))
from test_text_classifier import SMALL, make_texts

THREE = ("neg", "pos", "mixed")


def _ids(labels, classes):
    return [classes.index(y) for y in labels]


@pytest.mark.parametrize("classes", [("neg", "pos"), THREE])
def test_baseline_equals_scikit_learn_tfidf_pipeline(classes):
    texts, labels = make_texts(300, classes=classes, seed=3)
    order = sorted(classes)
    y = _ids(labels, order)
    baseline = BagOfWordsBaseline().fit(texts, y, len(order))
    # the independent reference: scikit-learn's own TfidfVectorizer + LogisticRegression
    tfidf = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
    reference = LogisticRegression(C=10, max_iter=2000).fit(tfidf.fit_transform(texts), y)
    new, new_labels = make_texts(60, classes=classes, seed=4)
    assert baseline.vocabulary == tfidf.get_feature_names_out().tolist()
    np.testing.assert_allclose(
        baseline.predict_proba(new), reference.predict_proba(tfidf.transform(new)), atol=1e-6
    )
    result = baseline.evaluate(new, _ids(new_labels, order), order)
    pred = reference.predict(tfidf.transform(new))
    assert result.accuracy == pytest.approx(np.mean(pred == _ids(new_labels, order)))
    assert result.confusion.sum() == 60


def test_feature_cap_keeps_the_most_frequent_ngrams():
    texts, labels = make_texts(200, seed=5)
    y = _ids(labels, ["neg", "pos"])
    from lstmkit.tasks.text_classification.baseline import BaselineSettings

    capped = BagOfWordsBaseline(BaselineSettings(max_features=25)).fit(texts, y, 2)
    reference = TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_features=25).fit(texts)
    assert capped.vocabulary == reference.get_feature_names_out().tolist()


@pytest.fixture(scope="module")
def trained():
    texts, labels = make_texts(400, seed=7)
    clf = TextClassifier(**SMALL, max_epochs=2)
    return clf.fit(texts, labels, progress=False)


def test_fit_scores_the_baseline_beside_the_lstm_and_saves_it_without_pickle(trained, tmp_path):
    assert trained.baseline is not None and trained.fit_info.baseline_seconds > 0
    texts, labels = make_texts(80, seed=8)
    evaluation = trained.evaluate(texts, labels)
    assert evaluation.baseline is not None and evaluation.baseline.n == 80
    expected = np.mean(
        [
            trained.classes[i] == y
            for i, y in zip(trained.baseline.predict(texts), labels, strict=True)
        ]
    )
    assert evaluation.baseline.accuracy == pytest.approx(expected)
    path = trained.save(tmp_path / "model")
    files = sorted(p.name for p in (path / "baseline").iterdir())
    assert files == ["baseline.json", "baseline.safetensors"]
    for f in (path / "baseline").iterdir():
        assert b"pickle" not in f.read_bytes()[:200] and not f.read_bytes().startswith(b"\x80")
    loaded = TextClassifier.load(path)
    # a round trip gives exactly the same baseline probabilities
    np.testing.assert_array_equal(
        loaded.baseline.predict_proba(texts), trained.baseline.predict_proba(texts)
    )
    again = loaded.evaluate(texts, labels)
    assert again.baseline.accuracy == evaluation.baseline.accuracy
    assert again.to_dict()["baseline"]["accuracy"] == evaluation.baseline.accuracy


def test_older_folder_without_baseline_loads_and_shows_none(trained, tmp_path):
    path = forget_digests(trained.save(tmp_path / "model"))  # older folders: no digests
    shutil.rmtree(path / "baseline")
    loaded = TextClassifier.load(path)
    texts, labels = make_texts(20, seed=9)
    evaluation = loaded.evaluate(texts, labels)
    assert loaded.baseline is None and evaluation.baseline is None
    assert evaluation.to_dict()["baseline"] is None


def test_fit_without_baseline():
    texts, labels = make_texts(120, seed=10)
    clf = TextClassifier(**SMALL, max_epochs=1).fit(texts, labels, progress=False, baseline=False)
    assert clf.baseline is None and clf.fit_info.baseline_seconds is None


@pytest.mark.parametrize(
    "damage, expect",
    [
        (lambda d: (d / "baseline.json").write_text("{not json"), "cannot be read"),
        (lambda d: (d / "baseline.safetensors").write_bytes(b"junk"), "cannot be read"),
        (lambda d: (d / "baseline.safetensors").unlink(), "cannot be read"),
        (
            lambda d: (d / "baseline.json").write_text(
                json.dumps({**json.loads((d / "baseline.json").read_text()), "vocabulary": ["a"]})
            ),
            "do not match",
        ),
        (
            lambda d: (d / "baseline.json").write_text(
                json.dumps({**json.loads((d / "baseline.json").read_text()), "num_classes": 3})
            ),
            "3 classes",
        ),
    ],
)
def test_damaged_baseline_is_one_line(trained, tmp_path, damage, expect):
    path = forget_digests(trained.save(tmp_path / "model"))  # the baseline's own checks
    damage(path / "baseline")
    with pytest.raises(LstmkitError, match=expect) as info:
        TextClassifier.load(path)
    assert "\n" not in str(info.value)


def test_cli_train_and_evaluate_print_the_baseline_and_metrics_json_holds_both(
    tmp_path, capsys, monkeypatch
):
    from test_cli_classify import TINY, run, write_csv

    texts, labels = make_texts(200, seed=12)
    data = write_csv(tmp_path / "train.csv", texts, labels)
    model = tmp_path / "model"
    code, out, err = run(["classify", "train", data, "--out", model, *TINY], capsys, monkeypatch)
    assert code == 0, err
    assert "bag-of-words" in out
    metrics = json.loads((model / "metrics.json").read_text())["validation"]
    assert {"accuracy", "macro_f1", "confusion"} <= set(metrics)  # the model's keys stay
    assert 0.0 <= metrics["baseline"]["accuracy"] <= 1.0 and metrics["baseline"]["n"] == 40
    test_texts, test_labels = make_texts(50, seed=13)
    test = write_csv(tmp_path / "test.csv", test_texts, test_labels)
    code, out, _ = run(["classify", "evaluate", "--model", model, test, "--out", tmp_path / "ev"],
                       capsys, monkeypatch)  # fmt: skip
    assert code == 0 and "bag-of-words" in out and "n/a" not in out
    saved = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    expected = TextClassifier.load(model).baseline.predict(test_texts)
    right = np.mean([["neg", "pos"][i] == y for i, y in zip(expected, test_labels, strict=True)])
    assert saved["baseline"]["accuracy"] == pytest.approx(right)
    shutil.rmtree(forget_digests(model) / "baseline")  # saved before the baseline existed
    code, out, _ = run(["classify", "evaluate", "--model", model, test], capsys, monkeypatch)
    assert code == 0 and "n/a" in out
    code, out, _ = run(["classify", "train", data, "--out", tmp_path / "nb", "--no-baseline",
                        *TINY], capsys, monkeypatch)  # fmt: skip
    assert code == 0 and not (tmp_path / "nb" / "baseline").exists()


def test_texts_without_countable_words_train_without_a_baseline():
    texts = ["a b c", "x y z", "a a b", "z z y"] * 10
    labels = ["p", "q", "p", "q"] * 10
    with pytest.raises(LstmkitError, match="no words of two or more letters"):
        BagOfWordsBaseline().fit(texts, [0, 1, 0, 1] * 10, 2)
    clf = TextClassifier(**SMALL, max_epochs=1).fit(texts, labels, progress=False)
    assert clf.baseline is None and clf.evaluate(texts, labels).baseline is None


# ------------------------------------------------------------------ the mixture
def test_mixture_weight_minimises_the_validation_cross_entropy_by_brute_force():
    from lstmkit.tasks.text_classification.baseline import mixture_weight

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    a, b = rng.dirichlet([1, 1, 1], 200), rng.dirichlet([1, 1, 1], 200)
    # each is sure and right on its own half of the texts and sure and wrong on the other
    a[np.arange(100), y[:100]] += 5.0
    b[np.arange(100, 200), y[100:]] += 3.0
    a /= a.sum(1, keepdims=True)
    b /= b.sum(1, keepdims=True)
    w = mixture_weight(a, b, y)
    losses = {
        v / 100: -np.mean(np.log((v / 100 * a + (1 - v / 100) * b)[np.arange(200), y]))
        for v in range(101)
    }
    assert w == min(losses, key=losses.get) and 0.2 < w < 0.8
    assert mixture_weight(a, a, y) == 1.0  # equal losses: the network's side
    with pytest.raises(LstmkitError, match="no validation texts"):
        mixture_weight(a[:0], b[:0], y[:0])


def test_combined_predictions_mix_network_and_baseline_with_the_validation_weight(
    trained, tmp_path
):
    w = trained.baseline.network_weight
    assert w is not None and 0.0 <= w <= 1.0
    texts, labels = make_texts(80, seed=21)
    net = trained.predict_proba(texts)
    base = trained.baseline.predict_proba(texts)
    mixed = trained.predict_proba(texts, combined=True)
    np.testing.assert_allclose(mixed, w * net + (1 - w) * base, rtol=0, atol=1e-12)
    expect_labels = [trained.classes[i] for i in mixed.argmax(1)]
    assert trained.predict(texts, combined=True) == expect_labels
    evaluation = trained.evaluate(texts, labels)
    right = np.mean([p == y for p, y in zip(expect_labels, labels, strict=True)])
    assert evaluation.combined is not None and evaluation.combined.accuracy == pytest.approx(right)
    assert evaluation.to_dict()["combined"]["n"] == 80
    # the weight is re-chosen by hand on the validation split and saved with the baseline
    from lstmkit.tasks.text_classification.baseline import mixture_weight

    val = trained.validation
    y = [trained.classes.index(label) for label in val.labels]
    hand = mixture_weight(
        trained.predict_proba(val.texts), trained.baseline.predict_proba(val.texts), y
    )
    assert hand == w
    loaded = TextClassifier.load(trained.save(tmp_path / "model"))
    assert loaded.baseline.network_weight == w
    np.testing.assert_allclose(loaded.predict_proba(texts, combined=True), mixed, atol=1e-7)


def test_models_without_a_mixture_refuse_combined_in_one_line(trained, tmp_path):
    texts, labels = make_texts(120, seed=22)
    no_val = TextClassifier(**SMALL, max_epochs=1, val_fraction=0.0).fit(
        texts, labels, progress=False
    )
    no_base = TextClassifier(**SMALL, max_epochs=1).fit(
        texts, labels, progress=False, baseline=False
    )
    for clf in (no_val, no_base):
        assert clf.evaluate(texts, labels).combined is None
        with pytest.raises(LstmkitError, match="no mixture with the bag-of-words") as info:
            clf.predict(texts, combined=True)
        assert "\n" not in str(info.value)
    path = forget_digests(trained.save(tmp_path / "model"))  # the baseline's own checks
    meta = json.loads((path / "baseline" / "baseline.json").read_text())
    for bad in (2.0, "half", True):
        (path / "baseline" / "baseline.json").write_text(
            json.dumps({**meta, "network_weight": bad})
        )
        with pytest.raises(LstmkitError, match="network_weight"):
            TextClassifier.load(path)


def test_cli_evaluate_shows_the_mixture_and_predict_combined(
    trained, tmp_path, capsys, monkeypatch
):
    from test_cli_classify import run, write_csv

    model = trained.save(tmp_path / "model")
    texts, labels = make_texts(40, seed=23)
    test = write_csv(tmp_path / "test.csv", texts, labels)
    code, out, err = run(["classify", "evaluate", "--model", model, test, "--out",
                          tmp_path / "ev"], capsys, monkeypatch)  # fmt: skip
    assert code == 0, err
    assert "+ bag-of-words" in out
    saved = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert saved["combined"]["accuracy"] == pytest.approx(
        trained.evaluate(texts, labels).combined.accuracy
    )
    code, out, err = run(["classify", "predict", "--model", model, test, "--combined",
                          "--output", tmp_path / "p.csv", "--no-progress"],
                         capsys, monkeypatch)  # fmt: skip
    assert code == 0, err
    import pandas as pd

    table = pd.read_csv(tmp_path / "p.csv")
    assert table["label"].tolist() == trained.predict(texts, combined=True)
    np.testing.assert_allclose(
        table["p_pos"], trained.predict_proba(texts, combined=True)[:, 1], atol=1e-6
    )


# ------------------------------------------------------------------ NBSVM
def _nbsvm_by_hand(texts, y, new, target):
    """NBSVM-LR for one class against the rest, from scikit-learn parts (the reference)."""
    from sklearn.feature_extraction.text import CountVectorizer

    counter = CountVectorizer(ngram_range=(1, 2), min_df=2, binary=True)
    x = counter.fit_transform(texts).astype(np.float64)
    mine = np.asarray(y) == target
    p = 1 + np.asarray(x[mine].sum(0)).ravel()
    q = 1 + np.asarray(x[~mine].sum(0)).ravel()
    r = np.log(p / p.sum() / (q / q.sum()))
    model = LogisticRegression(C=1.0, max_iter=3000).fit(x.multiply(r).tocsr(), mine)
    return model.predict_proba(counter.transform(new).astype(np.float64).multiply(r).tocsr())[:, 1]


@pytest.mark.parametrize("classes", [("neg", "pos"), THREE])
def test_nbsvm_equals_its_definition_from_scikit_learn_parts(classes):
    from lstmkit.tasks.text_classification.baseline import BaselineSettings

    texts, labels = make_texts(300, classes=classes, seed=31)
    order = sorted(classes)
    y = _ids(labels, order)
    nb = BagOfWordsBaseline(BaselineSettings(kind="nbsvm")).fit(texts, y, len(order))
    new, _ = make_texts(50, classes=classes, seed=32)
    got = nb.predict_proba(new)
    if len(order) == 2:
        np.testing.assert_allclose(got[:, 1], _nbsvm_by_hand(texts, y, new, 1), atol=1e-6)
    else:  # one-vs-rest: each class's own model, normalised
        each = np.stack([_nbsvm_by_hand(texts, y, new, c) for c in range(len(order))], axis=1)
        np.testing.assert_allclose(got, each / each.sum(1, keepdims=True), atol=1e-6)
    np.testing.assert_allclose(got.sum(1), 1.0)


def test_nbsvm_baseline_through_fit_save_load_and_cli(tmp_path, capsys, monkeypatch):
    from test_cli_classify import TINY, run, write_csv

    texts, labels = make_texts(200, seed=33)
    clf = TextClassifier(**SMALL, max_epochs=1).fit(texts, labels, progress=False, baseline="nbsvm")
    assert clf.baseline.settings.kind == "nbsvm" and clf.baseline.settings.C == 1.0
    loaded = TextClassifier.load(clf.save(tmp_path / "model"))
    assert loaded.baseline.settings.kind == "nbsvm"
    np.testing.assert_array_equal(
        loaded.baseline.predict_proba(texts), clf.baseline.predict_proba(texts)
    )
    with pytest.raises(
        LstmkitError, match=r"baseline setting kind must be one of tfidf, nbsvm, got 'svm'"
    ):
        TextClassifier(**SMALL, max_epochs=1).fit(texts, labels, progress=False, baseline="svm")
    data = write_csv(tmp_path / "train.csv", texts, labels)
    code, _, err = run(["classify", "train", data, "--out", tmp_path / "cli", "--baseline-kind",
                        "nbsvm", *TINY], capsys, monkeypatch)  # fmt: skip
    assert code == 0, err
    assert TextClassifier.load(tmp_path / "cli").baseline.settings.kind == "nbsvm"


def test_folders_from_before_nbsvm_load_as_tfidf(trained, tmp_path):
    path = forget_digests(trained.save(tmp_path / "model"))  # older folders: no digests
    meta_file = path / "baseline" / "baseline.json"
    meta = json.loads(meta_file.read_text())
    meta["settings"].pop("kind")
    meta.pop("network_weight")
    meta_file.write_text(json.dumps(meta))
    loaded = TextClassifier.load(path)
    assert loaded.baseline.settings.kind == "tfidf" and loaded.baseline.network_weight is None
    texts, _ = make_texts(20, seed=34)
    np.testing.assert_array_equal(
        loaded.baseline.predict_proba(texts), trained.baseline.predict_proba(texts)
    )
    meta["settings"]["kind"] = "bayes"
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(LstmkitError, match="damaged bag-of-words baseline"):
        TextClassifier.load(path)
