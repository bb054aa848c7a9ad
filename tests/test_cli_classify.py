"""``lstmkit classify train|evaluate|predict`` and ``lstmkit inspect`` end to end."""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from lstmkit.cli import main

sys.path.insert(0, str(Path(__file__).parent))
from test_text_classifier import make_texts

PNG = b"\x89PNG\r\n\x1a\n"
TINY = ["--epochs", "3", "--embedding-dim", "8", "--hidden-size", "8", "--batch-size", "32",
        "--lr", "0.02", "--no-progress"]  # fmt: skip


def run(args: list[str], capsys, monkeypatch) -> tuple[int, str, str]:
    """Run the real entry point in-process; return (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["lstmkit", *map(str, args)])
    try:
        main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def write_csv(path: Path, texts, labels, header=("text", "label")) -> Path:
    pd.DataFrame({header[0]: texts, header[1]: labels}).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cls")
    texts, labels = make_texts(240, seed=10)
    write_csv(root / "train.csv", texts, labels)
    texts, labels = make_texts(60, seed=11)
    write_csv(root / "test.csv", texts, labels)
    return root


@pytest.fixture(scope="module")
def model_dir(data_dir) -> Path:
    out = data_dir / "model"
    mp = pytest.MonkeyPatch()
    mp.setattr(sys, "argv", ["lstmkit", "classify", "train", str(data_dir / "train.csv"),
                             "--out", str(out), "--pooling", "attention", *TINY])  # fmt: skip
    try:
        main()
    except SystemExit as exit_:  # click's standalone mode ends with SystemExit(0)
        assert exit_.code in (0, None), f"train exited with {exit_.code}"
    finally:
        mp.undo()
    return out


def test_train_writes_complete_model_dir(model_dir):
    names = {p.name for p in model_dir.iterdir()}
    assert names == {"config.json", "model.safetensors", "tokenizer.json", "training.json",
                     "training.png", "confusion.png", "metrics.json"}  # fmt: skip
    assert (model_dir / "training.png").read_bytes().startswith(PNG)
    assert (model_dir / "confusion.png").read_bytes().startswith(PNG)
    metrics = json.loads((model_dir / "metrics.json").read_text())["validation"]
    assert metrics["n"] == 48 and sum(map(sum, metrics["confusion"])) == 48
    assert not [p for p in model_dir.parent.iterdir() if p.name.startswith(".model")]


def test_evaluate_prints_table_and_writes_files(model_dir, data_dir, capsys, monkeypatch):
    out = data_dir / "eval"
    code, stdout, _ = run(["classify", "evaluate", "--model", model_dir, data_dir / "test.csv",
                           "--out", out], capsys, monkeypatch)  # fmt: skip
    assert code == 0
    assert "accuracy" in stdout and "macro F1" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 60 and metrics["classes"] == ["neg", "pos"]
    assert (out / "confusion.png").read_bytes().startswith(PNG)


def test_predict_texts_file_and_csv(model_dir, data_dir, capsys, monkeypatch):
    args = ["classify", "predict", "--model", model_dir, "--json", "the movie was wonderful"]
    code, stdout, _ = run([*args, "awful plot"], capsys, monkeypatch)
    assert code == 0
    rows = [json.loads(line) for line in stdout.splitlines()]
    assert [r["text"] for r in rows] == ["the movie was wonderful", "awful plot"]
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-5 for r in rows)

    lines = data_dir / "texts.txt"
    lines.write_text("loved it\n\nhated it\n")
    out_csv = data_dir / "pred.csv"
    code, stdout, _ = run(["classify", "predict", "--model", model_dir, lines, "--output", out_csv],
                          capsys, monkeypatch)  # fmt: skip
    assert code == 0 and "loved it" in stdout
    with open(out_csv, newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [r["text"] for r in table] == ["loved it", "hated it"]
    assert set(table[0]) == {"text", "label", "p_neg", "p_pos"}

    code, stdout, _ = run(["classify", "predict", "--model", model_dir, "--json",
                           data_dir / "test.csv"], capsys, monkeypatch)  # fmt: skip
    assert code == 0 and len(stdout.splitlines()) == 60


def test_inspect_writes_png(model_dir, data_dir, capsys, monkeypatch):
    png = data_dir / "gates.png"
    code, stdout, _ = run(["inspect", "--model", model_dir, "the plot was superb", "--out", png],
                          capsys, monkeypatch)  # fmt: skip
    assert code == 0 and "predicted" in stdout
    assert png.read_bytes().startswith(PNG) and png.stat().st_size > 5000


def _fails(args, capsys, monkeypatch, expect: str) -> None:
    code, _, err = run(args, capsys, monkeypatch)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert expect in lines[0]


def test_train_bad_inputs_one_line_nothing_written(data_dir, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    base = ["classify", "train", "--out", out, *TINY]
    _fails([*base, tmp_path / "missing.csv"], capsys, monkeypatch, "no such file")
    texts, labels = make_texts(20)
    bad = write_csv(tmp_path / "cols.csv", texts, labels, header=("review", "label"))
    _fails([*base, bad], capsys, monkeypatch, "no text column 'text'")
    bad = write_csv(tmp_path / "lab.csv", texts, labels, header=("text", "y"))
    _fails([*base, bad], capsys, monkeypatch, "no label column 'label'")
    bad = write_csv(tmp_path / "empty.csv", ["ok", "", "fine"], ["a", "b", "a"])
    _fails([*base, bad], capsys, monkeypatch, "row 2 have an empty text")
    bad = write_csv(tmp_path / "one.csv", texts, ["pos"] * len(texts))
    _fails([*base, bad], capsys, monkeypatch, "at least two classes")
    bad = tmp_path / "bytes.csv"
    bad.write_bytes(b"text,label\ngood,a\nbad \xff\xfe,b\n")
    _fails([*base, bad], capsys, monkeypatch, "row 2 contain bytes that are not valid UTF-8")
    _fails([*base, "--pooling", "median", data_dir / "train.csv"], capsys, monkeypatch, "pooling")
    assert not out.exists()
    assert list(tmp_path.glob(".out*")) == []
    not_model = tmp_path / "busy"
    not_model.mkdir()
    (not_model / "keep.txt").write_text("mine")
    _fails(["classify", "train", "--out", not_model, data_dir / "train.csv", *TINY],
           capsys, monkeypatch, "not an lstmkit model folder")  # fmt: skip
    assert [p.name for p in not_model.iterdir()] == ["keep.txt"]


def test_bad_model_dir_and_inputs(model_dir, data_dir, tmp_path, capsys, monkeypatch):
    _fails(["classify", "predict", "--model", tmp_path / "nope", "hello"], capsys, monkeypatch,
           "does not exist")  # fmt: skip
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{oops")
    _fails(["classify", "evaluate", "--model", broken, data_dir / "test.csv"], capsys, monkeypatch,
           "not valid JSON")  # fmt: skip
    _fails(["inspect", "--model", broken, "hello"], capsys, monkeypatch, "not valid JSON")
    other = write_csv(tmp_path / "other.csv", ["a", "b"], ["cat", "dog"])
    _fails(["classify", "evaluate", "--model", model_dir, other], capsys, monkeypatch,
           "not seen in training")  # fmt: skip
    _fails(["classify", "predict", "--model", model_dir, ""], capsys, monkeypatch, "empty text")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    _fails(["classify", "predict", "--model", model_dir, empty], capsys, monkeypatch, "no texts")
    _fails(["inspect", "--model", model_dir, "hi", "--out", tmp_path / "g.jpg"], capsys,
           monkeypatch, "must end in .png")  # fmt: skip


def test_console_script_reports_one_line():
    """The installed entry point (Typer standalone mode) lets the root print one line."""
    exe = Path(sys.executable).with_name("lstmkit")
    if not exe.exists():
        pytest.skip("lstmkit console script not installed")
    proc = subprocess.run([str(exe), "classify", "train", "missing.csv", "--out", "x"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: missing.csv: no such file or folder; check the path"


def test_download_imdb_command(tmp_path, capsys, monkeypatch):
    source = tmp_path / "src.tar.gz"
    source.write_bytes(b"archive bytes")
    digest = hashlib.sha256(b"archive bytes").hexdigest()
    dest = tmp_path / "cache" / "aclImdb_v1.tar.gz"
    args = ["classify", "download-imdb", "--dest", dest, "--url", source.as_uri()]
    code, out, _ = run([*args, "--sha256", digest], capsys, monkeypatch)
    assert "IMDB archive at" in out
    assert code == 0 and dest.read_bytes() == b"archive bytes"
    dest.unlink()
    _fails([*args], capsys, monkeypatch, "checksum mismatch")  # official checksum expected
    assert not dest.exists()
    bad_url = ["classify", "download-imdb", "--dest", dest, "--url", "http://127.0.0.1:1/x"]
    _fails(bad_url, capsys, monkeypatch, "cannot download")


def test_predict_missing_path_is_an_error_not_a_text(model_dir, tmp_path, capsys, monkeypatch):
    """Defect 3 (issue 8): `classify predict -m M nosuch.csv` classified the string."""
    base = ["classify", "predict", "-m", model_dir]
    _fails([*base, tmp_path / "nosuch.csv"], capsys, monkeypatch, "no such file")
    _fails([*base, "nosuch.csv"], capsys, monkeypatch, "nosuch.csv: no such file")
    _fails([*base, "reviews/new"], capsys, monkeypatch, "--text")
    _fails([*base, "great film", "more.txt"], capsys, monkeypatch, "more.txt: no such file")
    _fails([*base, tmp_path], capsys, monkeypatch, "is a folder")
    lines = tmp_path / "t.txt"
    lines.write_text("loved it\n")
    _fails([*base, lines, "hated it"], capsys, monkeypatch, "pass one file on its own")
    # --text forces literal texts; texts with spaces are never taken for paths
    code, out, _ = run([*base, "--json", "--text", "nosuch.csv", "5/10"], capsys, monkeypatch)
    assert code == 0
    assert [json.loads(line)["text"] for line in out.splitlines()] == ["nosuch.csv", "5/10"]
    code, out, _ = run([*base, "--json", "I saved it as notes.txt"], capsys, monkeypatch)
    assert code == 0 and json.loads(out)["text"] == "I saved it as notes.txt"
    code, out, _ = run(["classify", "predict", "--help"], capsys, monkeypatch)
    assert "--text" in out
