"""Class weights for imbalanced labels: the weighted loss, the setting, the CLI option."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lstmkit import TextClassifier
from lstmkit.errors import LstmkitError
from lstmkit.tasks.text_classification import TextClassifierConfig, TextClassifierNet

sys.path.insert(0, str(Path(__file__).parent))
from test_cli_classify import TINY, run, write_csv
from test_text_classifier import FILLER, SMALL


def skewed(n: int, minority: float, seed: int) -> tuple[list[str], list[str]]:
    """'rare' texts always hold the cue "great"; 'common' texts hold it one time in ten, so
    with 5% 'rare' texts the unweighted best guess for "great" is still 'common'."""
    rng = random.Random(seed)
    texts, labels = [], []
    for _ in range(n):
        label = "rare" if rng.random() < minority else "common"
        words = [rng.choice(FILLER) for _ in range(rng.randint(3, 12))]
        if label == "rare" or rng.random() < 0.1:
            words.insert(rng.randrange(len(words) + 1), "great")
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels


@pytest.mark.parametrize("classes", [2, 3])
def test_weighted_loss_equals_float64_formula(classes):
    torch.manual_seed(0)
    net = TextClassifierNet(10, classes, TextClassifierConfig())
    outputs = 1 if classes == 2 else classes
    logits = torch.randn(7, outputs, dtype=torch.float64)
    labels = torch.tensor([0, 1, 1, 0, 1, 0, classes - 1])
    weight = torch.tensor([0.5, 3.0, 2.0][:classes], dtype=torch.float64)
    if classes == 2:
        p = 1 / (1 + np.exp(-logits[:, 0].numpy()))
        each = -np.where(labels.numpy() == 1, np.log(p), np.log(1 - p))
    else:
        z = logits.numpy()
        logp = z - np.log(np.exp(z).sum(1, keepdims=True))
        each = -logp[np.arange(7), labels.numpy()]
    w = weight.numpy()[labels.numpy()]
    expected = (each * w).sum() / w.sum()
    assert float(net.loss(logits, labels, weight)) == pytest.approx(expected, rel=1e-6)
    assert float(net.loss(logits, labels)) == pytest.approx(each.mean(), rel=1e-6)


def _minority_recall(clf: TextClassifier) -> float:
    texts, labels = skewed(400, 0.5, seed=99)
    pred = clf.predict(texts)
    rare = [p for p, y in zip(pred, labels, strict=True) if y == "rare"]
    return sum(p == "rare" for p in rare) / len(rare)


def test_balanced_weights_raise_the_minority_recall():
    texts, labels = skewed(800, 0.05, seed=1)
    settings = dict(SMALL, max_epochs=8, pooling="max", val_fraction=0.0)
    plain = TextClassifier(**settings).fit(texts, labels, progress=False, baseline=False)
    balanced = TextClassifier(**settings, class_weight="balanced")
    balanced.fit(texts, labels, progress=False, baseline=False)
    counts = {c: labels.count(c) for c in ("common", "rare")}
    expected = [len(labels) / (2 * counts["common"]), len(labels) / (2 * counts["rare"])]
    assert balanced.fit_info.class_weights == pytest.approx(expected, rel=1e-6)
    assert plain.fit_info.class_weights is None
    low, high = _minority_recall(plain), _minority_recall(balanced)
    assert low < 0.3 and high > 0.6 and high - low > 0.4, (low, high)


def test_class_weight_setting_round_trips_and_is_checked(tmp_path):
    cfg = TextClassifierConfig(class_weight={0: 1.0, 2: 4})
    again = TextClassifierConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again.class_weight == {0: 1.0, 2: 4.0} and again == cfg
    for bad, expect in [
        ("balance", "must be None, 'balanced' or a dict"),
        ({"pos": -1}, "weight > 0"),
        ({"pos": "x"}, "weight > 0"),
        ({}, "must be None"),
    ]:
        with pytest.raises(LstmkitError, match=expect):
            TextClassifier(class_weight=bad)
    texts, labels = skewed(60, 0.3, seed=2)
    clf = TextClassifier(**SMALL, max_epochs=1, class_weight={"rare": 3.0, "spam": 2.0})
    with pytest.raises(LstmkitError, match=r"class_weight names labels \['spam'\]"):
        clf.fit(texts, labels, progress=False)
    ints = TextClassifier(**SMALL, max_epochs=1, class_weight={"1": 3.0})  # CLI gives text keys
    ints.fit(texts, [int(y == "rare") for y in labels], progress=False, baseline=False)
    assert ints.fit_info.class_weights == [1.0, 3.0]
    path = ints.save(tmp_path / "m")
    assert TextClassifier.load(path).config.class_weight == {"1": 3.0}


def test_cli_class_weight(tmp_path, capsys, monkeypatch):
    texts, labels = skewed(120, 0.2, seed=3)
    data = write_csv(tmp_path / "d.csv", texts, labels)
    out = tmp_path / "m"
    base = ["classify", "train", data, "--out", out, *TINY, "--no-baseline"]
    code, _, err = run([*base, "--class-weight", "rare=4,common=1"], capsys, monkeypatch)
    assert code == 0, err
    saved = json.loads((out / "config.json").read_text())["config"]["model"]["class_weight"]
    assert saved == [["rare", 4.0], ["common", 1.0]]
    info = json.loads((out / "training.json").read_text())["info"]
    assert info["class_weights"] == [1.0, 4.0]
    for bad, expect in [("rare:4", "expected 'balanced' or label=weight"),
                        ("rare=x", "expected 'balanced'"),
                        ("spam=2", "names labels ['spam']"),
                        ("rare=0", "weight > 0")]:  # fmt: skip
        code, _, err = run([*base[:4], tmp_path / "bad", *base[5:], "--class-weight", bad],
                           capsys, monkeypatch)  # fmt: skip
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), err
        assert expect in lines[0]
        assert not (tmp_path / "bad").exists()


def test_weights_outside_float32_or_given_twice_are_refused():
    """1e-300 became 0 in float32 (validation had seen > 0), 1e300 a RuntimeError; 1 and
    "1" name the same class (labels are matched as text), so the second silently won."""
    for bad, expect in [
        ({"pos": 1e-300}, r"between 1\.2e-38 and 3\.4e\+38"),
        ({"pos": 1e300}, r"between 1\.2e-38 and 3\.4e\+38"),
        ({"pos": 1e-39}, r"between 1\.2e-38"),  # a float32 subnormal: precision lost
        ({1: 2.0, "1": 3.0}, r"gives the label '1' twice \(as 1 and '1'\)"),
    ]:
        with pytest.raises(LstmkitError, match=expect) as info:
            TextClassifier(class_weight=bad)
        assert "\n" not in str(info.value)
    # each weight in range, their ratio not: refused before any training
    texts, labels = skewed(60, 0.3, seed=2)
    clf = TextClassifier(**SMALL, max_epochs=1, class_weight={"rare": 1e-30, "common": 1e30})
    with pytest.raises(LstmkitError, match="a ratio float32 cannot hold"):
        clf.fit(texts, labels, progress=False, baseline=False)
    assert clf.net is None


def test_only_the_ratio_of_the_weights_matters():
    """Weights near float32's largest (2**127 and 2**125: a batch's sum overflowed to inf
    and the loss to NaN) train exactly as 4 and 1, their ratio; the given weights are
    what fit_info reports."""
    texts, labels = skewed(120, 0.3, seed=5)
    settings = dict(SMALL, max_epochs=2, pooling="max", val_fraction=0.2)
    small = TextClassifier(**settings, class_weight={"rare": 4.0, "common": 1.0})
    small.fit(texts, labels, progress=False, baseline=False)
    huge = TextClassifier(**settings, class_weight={"rare": 2.0**127, "common": 2.0**125})
    huge.fit(texts, labels, progress=False, baseline=False)
    assert huge.fit_info.class_weights == [2.0**125, 2.0**127]  # class order: common, rare
    assert small.fit_info.class_weights == [1.0, 4.0]
    for name, tensor in small.net.state_dict().items():
        assert torch.equal(huge.net.state_dict()[name], tensor), name
    assert [r["val_loss"] for r in huge.history] == [r["val_loss"] for r in small.history]
    assert all(np.isfinite(r["train_loss"]) for r in huge.history)


def test_cli_class_weight_out_of_range_or_twice_is_one_line(tmp_path, capsys, monkeypatch):
    texts, labels = skewed(60, 0.3, seed=3)
    data = write_csv(tmp_path / "d.csv", texts, labels)
    out = tmp_path / "m"
    for bad, expect in [
        ("rare=1e-300", "between 1.2e-38 and 3.4e+38"),
        ("rare=1e300", "between 1.2e-38 and 3.4e+38"),
        ("rare=2,rare=3", "--class-weight 'rare=2,rare=3': the label 'rare' is given twice"),
        ("rare=2, rare =3", "the label 'rare' is given twice"),
    ]:
        args = ["classify", "train", data, "--out", out, *TINY, "--class-weight", bad]
        code, _, err = run(args, capsys, monkeypatch)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), err
        assert expect in lines[0], lines[0]
        assert not out.exists()
