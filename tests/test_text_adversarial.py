"""Adversarial training on the word vectors (``adversarial=``, Miyato et al. 2017).

The perturbation is checked against its definition computed by hand (norm per text as a
share of the text's own vectors over its real steps, direction of the gradient, nothing
on padding), its effect against a random move of the same size, and the training option
end to end (history, round trip, bad values, CLI).
"""

from __future__ import annotations

import math
import random

import pytest
import torch
from typer.testing import CliRunner

from lstmkit import TextClassifier
from lstmkit.cli import app
from lstmkit.errors import LstmkitError
from lstmkit.tasks.text_classification.module import adversarial_perturbation
from lstmkit.tasks.text_classification.network import TextClassifierNet
from lstmkit.tasks.text_classification.settings import TextClassifierConfig


def test_perturbation_follows_its_definition() -> None:
    torch.manual_seed(0)
    grad = torch.randn(3, 5, 4, dtype=torch.float64)
    vectors = torch.randn(3, 5, 4, dtype=torch.float64)
    lengths = torch.tensor([5, 2, 3])
    grad[2] = 0.0  # a text without gradient is not moved
    r = adversarial_perturbation(grad, vectors, lengths, 0.1)
    for i, n in enumerate(lengths.tolist()):
        assert torch.all(r[i, n:] == 0)  # padding gets nothing
        if i == 2:
            assert torch.all(r[i] == 0)
            continue
        g, v = grad[i, :n].flatten(), vectors[i, :n].flatten()
        want = 0.1 * v.norm() * g / g.norm()
        torch.testing.assert_close(r[i, :n].flatten(), want, rtol=1e-12, atol=1e-12)
        assert math.isclose(float(r[i].norm()), 0.1 * float(v.norm()), rel_tol=1e-12)
    assert not r.requires_grad


def test_adversarial_move_raises_the_loss_more_than_a_random_one() -> None:
    torch.manual_seed(1)
    cfg = TextClassifierConfig(embedding_dim=8, hidden_size=8, bidirectional=True)
    net = TextClassifierNet(50, 2, cfg).double()
    ids = torch.randint(2, 50, (16, 12))
    lengths = torch.randint(3, 13, (16,))
    labels = torch.randint(0, 2, (16,))
    vectors = net.embedding(ids).detach().requires_grad_(True)
    loss = net.loss(net.from_vectors(vectors, lengths), labels)
    (grad,) = torch.autograd.grad(loss, vectors)
    r = adversarial_perturbation(grad, vectors, lengths, 0.05)
    noise = adversarial_perturbation(torch.randn_like(grad), vectors, lengths, 0.05)
    with torch.no_grad():
        adv = float(net.loss(net.from_vectors(vectors + r, lengths), labels))
        rnd = float(net.loss(net.from_vectors(vectors + noise, lengths), labels))
    assert adv > float(loss.detach()) + 1e-4
    assert adv > rnd


def _labelled(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    texts, labels = [], []
    for _ in range(n):
        good = rng.random() < 0.5
        words = rng.choices(["film", "plot", "actor", "scene", "the", "a"], k=rng.randint(3, 9))
        words.insert(
            rng.randrange(len(words) + 1),
            rng.choice(["great", "superb"] if good else ["awful", "dull"]),
        )
        texts.append(" ".join(words))
        labels.append("pos" if good else "neg")
    return texts, labels


def test_adversarial_training_learns_and_logs_both_losses(tmp_path) -> None:
    texts, labels = _labelled(300)
    clf = TextClassifier(
        embedding_dim=16, hidden_size=16, max_epochs=4, lr=0.01, batch_size=16, adversarial=0.05
    )
    clf.fit(texts, labels, progress=False, baseline=False)
    last = clf.history[-1]
    assert "train_adv_loss" in last and "val_adv_loss" not in last
    assert last["train_adv_loss"] > last["train_loss"]  # the move makes it harder
    test_texts, test_labels = _labelled(100, seed=5)
    assert clf.evaluate(test_texts, test_labels).accuracy > 0.9
    clf.save(tmp_path / "m")
    again = TextClassifier.load(tmp_path / "m")
    assert again.config.adversarial == 0.05
    assert again.predict(test_texts) == clf.predict(test_texts)


def test_adversarial_training_changes_the_updates_and_zero_is_plain_training() -> None:
    texts, labels = _labelled(64)
    common = dict(embedding_dim=8, hidden_size=8, max_epochs=1, batch_size=16, seed=3)
    runs = {}
    for adv in (0.0, 0.1):
        clf = TextClassifier(**common, adversarial=adv)
        clf.fit(texts, labels, progress=False, baseline=False)
        runs[adv] = clf.net.state_dict()
    plain = TextClassifier(**common)
    plain.fit(texts, labels, progress=False, baseline=False)
    for name, tensor in plain.net.state_dict().items():
        torch.testing.assert_close(runs[0.0][name], tensor, rtol=0, atol=0)
    assert any(not torch.equal(runs[0.1][k], runs[0.0][k]) for k in runs[0.0])


@pytest.mark.parametrize("value", [-0.1, 1.5, float("nan"), "big"])
def test_bad_adversarial_size_is_one_clear_error(value) -> None:
    with pytest.raises(LstmkitError, match="adversarial"):
        TextClassifier(adversarial=value)


def test_cli_train_with_adversarial(tmp_path) -> None:
    texts, labels = _labelled(120)
    data = tmp_path / "d.csv"
    import pandas as pd

    pd.DataFrame({"text": texts, "label": labels}).to_csv(data, index=False)
    out = tmp_path / "m"
    args = ["classify", "train", str(data), "--out", str(out), "--max-epochs", "1"]
    args += ["--adversarial", "0.03", "--no-progress", "--no-baseline", "--hidden-size", "8"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert TextClassifier.load(out).config.adversarial == 0.03
    m2 = tmp_path / "m2"
    bad_args = ["classify", "train", str(data), "--out", str(m2), "--adversarial", "-1"]
    bad = CliRunner().invoke(app, bad_args, standalone_mode=False)
    assert isinstance(bad.exception, LstmkitError)  # main() prints it as one error: line
    assert "adversarial must be a number in [0, 1], got -1.0" in str(bad.exception)
    assert not m2.exists()
