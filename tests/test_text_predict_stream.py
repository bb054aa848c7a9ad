"""Streaming prediction of a file of texts (chunks in, chunks out, output only when complete),
and a three-class model through the whole command line (train, evaluate, predict)."""

from __future__ import annotations

import csv
import gzip
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lstmkit import TextClassifier
from lstmkit.data.text_stream import iter_text_chunks
from lstmkit.errors import LstmkitError
from lstmkit.tasks.text_classification.stream import predict_file

sys.path.insert(0, str(Path(__file__).parent))
from test_cli_classify import TINY, run, write_csv
from test_text_classifier import SMALL, make_texts

THREE = ("neg", "pos", "mixed")


@pytest.fixture(scope="module")
def clf():
    texts, labels = make_texts(300, classes=THREE, seed=20)
    return TextClassifier(**SMALL, max_epochs=3).fit(texts, labels, progress=False, baseline=False)


@pytest.fixture(scope="module")
def texts():
    return make_texts(5000, classes=THREE, seed=21)[0]


def _write(path: Path, texts: list[str]) -> Path:
    name = path.name
    if name.endswith(".csv"):
        pd.DataFrame({"id": range(len(texts)), "text": texts}).to_csv(path, index=False)
    elif name.endswith(".jsonl.gz"):
        lines = "".join(json.dumps({"text": t, "n": i}) + "\n" for i, t in enumerate(texts))
        path.write_bytes(gzip.compress(lines.encode()))
    elif name.endswith(".parquet"):
        pd.DataFrame({"text": texts}).to_parquet(path)
    else:
        path.write_text("".join(t + "\n\n" for t in texts))  # blank lines are skipped
    return path


@pytest.mark.parametrize("name", ["in.csv", "in.jsonl.gz", "in.parquet", "in.txt"])
def test_streamed_predictions_equal_the_in_memory_ones(clf, texts, tmp_path, name):
    source = _write(tmp_path / name, texts)
    sizes = []
    summary = predict_file(clf, source, tmp_path / "out.csv", chunk_size=37,
                           on_chunk=lambda chunk, table: sizes.append(len(table)))  # fmt: skip
    assert summary.n == 5000 and sizes[:-1] == [37] * (len(sizes) - 1) and sum(sizes) == 5000
    with open(tmp_path / "out.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["text"] for r in rows] == texts
    assert [r["label"] for r in rows] == clf.predict(texts)
    proba = np.array([[float(r[f"p_{c}"]) for c in clf.classes] for r in rows])
    np.testing.assert_allclose(proba, clf.predict_proba(texts), atol=2e-6)
    assert summary.counts == {c: n for c in clf.classes if (n := clf.predict(texts).count(c))}
    assert list(tmp_path.glob(".out.csv*")) == []


def test_output_appears_only_complete(clf, texts, tmp_path):
    out = tmp_path / "out.csv"
    out.write_text("previous\n")
    bad = list(texts[:300])
    bad[250] = "   "  # found in the 7th chunk of 40, after six chunks were written
    source = _write(tmp_path / "bad.csv", bad)
    written = []
    with pytest.raises(LstmkitError, match="row 251 has an empty text"):
        predict_file(clf, source, out, chunk_size=40,
                     on_chunk=lambda chunk, table: written.append(len(table)))  # fmt: skip
    assert written == [40] * 6
    assert out.read_text() == "previous\n"  # the earlier file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "out.csv"]


def test_chunk_reader_errors_are_one_line(tmp_path):
    cases = []
    p = tmp_path / "cols.csv"
    pd.DataFrame({"review": ["a"]}).to_csv(p, index=False)
    cases.append((p, "no text column 'text'"))
    p = tmp_path / "bytes.txt"
    p.write_bytes(b"good\nbad \xff\n")
    cases.append((p, "row 2 contain bytes that are not valid UTF-8"))
    p = tmp_path / "empty.txt"
    p.write_bytes(b"\n\n")
    cases.append((p, "no texts in the file"))
    p = tmp_path / "header.csv"
    p.write_text("text\n")
    cases.append((p, "no texts in the file"))
    p = tmp_path / "obj.jsonl"
    p.write_text('{"text": "a"}\n[1]\n')
    cases.append((p, "row 2 is a JSON list"))
    p = tmp_path / "x.json"
    p.write_text("{}")
    cases.append((p, "a .json file is not read as texts"))
    cases.append((tmp_path / "none.csv", "no such file"))
    for path, expect in cases:
        with pytest.raises(LstmkitError, match=expect) as info:
            list(iter_text_chunks(path, chunk_size=1))
        assert "\n" not in str(info.value)


def test_three_classes_through_the_command_line(tmp_path, capsys, monkeypatch):
    train_texts, train_labels = make_texts(480, classes=THREE, seed=30)
    data = write_csv(tmp_path / "train.csv", train_texts, train_labels)
    model = tmp_path / "model"
    args = ["classify", "train", data, "--out", model, *TINY, "--max-epochs", "6",
            "--pooling", "max"]  # fmt: skip
    code, out, err = run(args, capsys, monkeypatch)
    assert code == 0, err
    metrics = json.loads((model / "metrics.json").read_text())["validation"]
    assert metrics["classes"] == ["mixed", "neg", "pos"]
    assert np.array(metrics["confusion"]).shape == (3, 3)
    assert np.array(metrics["baseline"]["confusion"]).shape == (3, 3)
    test_texts, test_labels = make_texts(90, classes=THREE, seed=31)
    test = write_csv(tmp_path / "test.csv", test_texts, test_labels)
    code, out, _ = run(["classify", "evaluate", "--model", model, test, "--out", tmp_path / "ev"],
                       capsys, monkeypatch)  # fmt: skip
    assert code == 0
    scores = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    pred_csv = tmp_path / "pred.csv"
    code, out, _ = run(["classify", "predict", "--model", model, test, "--output", pred_csv,
                        "--chunk-size", "16", "--no-progress"], capsys, monkeypatch)  # fmt: skip
    assert code == 0 and "90 texts predicted" in out and "first 10 shown" in out
    predicted = pd.read_csv(pred_csv)
    assert list(predicted.columns) == ["text", "label", "p_mixed", "p_neg", "p_pos"]
    np.testing.assert_allclose(predicted[["p_mixed", "p_neg", "p_pos"]].sum(axis=1), 1, atol=1e-5)
    # the evaluation's accuracy is the share of the streamed predictions that are right
    right = np.mean(predicted["label"].to_numpy() == np.array(test_labels))
    assert scores["accuracy"] == pytest.approx(right) and right > 0.6
    code, out, _ = run(["classify", "predict", "--model", model, "--json", "an okay average film"],
                       capsys, monkeypatch)  # fmt: skip
    row = json.loads(out)
    assert set(row["probabilities"]) == {"mixed", "neg", "pos"}


def test_cli_stream_bad_input_writes_nothing(clf, tmp_path, capsys, monkeypatch):
    model = clf.save(tmp_path / "model")
    source = tmp_path / "in.txt"
    source.write_bytes(b"fine\nbad \xff\n")
    out = tmp_path / "out.csv"
    for extra, expect in [([], "row 2 contain bytes"), (["--chunk-size", "0"], "--chunk-size")]:
        code, _, err = run(["classify", "predict", "--model", model, source, "--output", out,
                            *extra], capsys, monkeypatch)  # fmt: skip
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and expect in lines[0], err
        assert not out.exists() and not list(tmp_path.glob(".out.csv*"))
