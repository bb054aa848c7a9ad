"""The bag-of-words baseline beside every text classifier: math, saving, CLI tables."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
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
    clf = TextClassifier(**SMALL, epochs=2)
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
    path = trained.save(tmp_path / "model")
    shutil.rmtree(path / "baseline")
    loaded = TextClassifier.load(path)
    texts, labels = make_texts(20, seed=9)
    evaluation = loaded.evaluate(texts, labels)
    assert loaded.baseline is None and evaluation.baseline is None
    assert evaluation.to_dict()["baseline"] is None


def test_fit_without_baseline():
    texts, labels = make_texts(120, seed=10)
    clf = TextClassifier(**SMALL, epochs=1).fit(texts, labels, progress=False, baseline=False)
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
    path = trained.save(tmp_path / "model")
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
    shutil.rmtree(model / "baseline")  # a folder saved before the baseline existed
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
    clf = TextClassifier(**SMALL, epochs=1).fit(texts, labels, progress=False)
    assert clf.baseline is None and clf.evaluate(texts, labels).baseline is None
