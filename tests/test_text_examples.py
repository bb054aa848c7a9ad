"""The text seed examples run as scripts: seed 001 needs no data; seeds 000 and 003 run
with ``--quick`` on a small IMDB-layout archive made here (issue 8, defect 6: they were
never run by the tests)."""

from __future__ import annotations

import io
import runpy
import sys
import tarfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_text_classifier import make_texts

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("pooling", ["mean", "attention"])
def test_seed_001_runs(pooling, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["seed_001_mean_pooling.py", "--pooling", pooling])
    runpy.run_path(str(EXAMPLES / "seed_001_mean_pooling.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "input (32, 10, 100) -> output (32, 5)" in out
    assert "padding check passed" in out


@pytest.fixture(scope="module")
def tiny_imdb(tmp_path_factory) -> Path:
    """aclImdb_v1.tar.gz layout: 160 train and 80 test reviews with cue words."""
    path = tmp_path_factory.mktemp("imdb") / "aclImdb_v1.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for split, n, seed in (("train", 160, 20), ("test", 80, 21)):
            for i, (text, label) in enumerate(zip(*make_texts(n, seed=seed), strict=True)):
                data = text.encode()
                rating = 9 if label == "pos" else 2
                info = tarfile.TarInfo(f"aclImdb/{split}/{label}/{i}_{rating}.txt")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def _run(script: str, args: list, monkeypatch, capsys) -> str:
    monkeypatch.setattr(sys, "argv", [script, *map(str, args)])
    runpy.run_path(str(EXAMPLES / script), run_name="__main__")
    return capsys.readouterr().out


def test_seed_000_runs_quick(tiny_imdb, monkeypatch, capsys):
    out = _run("seed_000_imdb_pytorch.py", ["--data", tiny_imdb, "--quick", "--epochs", "2"],
               monkeypatch, capsys)  # fmt: skip
    assert "Epoch: 01, Loss:" in out and "Epoch: 02, Loss:" in out
    assert "Test Accuracy:" in out and "(80 reviews)" in out


def test_seed_003_runs_quick(tiny_imdb, tmp_path, monkeypatch, capsys):
    plot, model = tmp_path / "curves.png", tmp_path / "model"
    args = ["--data", tiny_imdb, "--quick", "--plot", plot, "--out", model]
    out = _run("seed_003_imdb_keras_style.py", args, monkeypatch, capsys)
    assert "epoch 2: loss" in out and "val_acc" in out
    assert "Test accuracy:" in out and "(80 reviews)" in out
    assert plot.read_bytes().startswith(b"\x89PNG")
    from lstmkit import TextClassifier

    loaded = TextClassifier.load(model)
    assert loaded.config.tokenizer.max_length == 200 and loaded.config.hidden_size == 128
