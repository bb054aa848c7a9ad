"""``lstmkit classify train|evaluate|predict`` and ``lstmkit inspect`` end to end."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import forget_digests

from lstmkit.cli import main

sys.path.insert(0, str(Path(__file__).parent))
from test_text_classifier import make_texts

PNG = b"\x89PNG\r\n\x1a\n"
TINY = ["--max-epochs", "3", "--embedding-dim", "8", "--hidden-size", "8", "--batch-size", "32",
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
                     "training.png", "confusion.png", "metrics.json", "baseline"}  # fmt: skip
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
    _fails([*base, bad], capsys, monkeypatch, "row 2 has an empty text")
    bad = write_csv(tmp_path / "one.csv", texts, ["pos"] * len(texts))
    _fails([*base, bad], capsys, monkeypatch, "at least two classes")
    bad = tmp_path / "bytes.csv"
    bad.write_bytes(b"text,label\ngood,a\nbad \xff\xfe,b\n")
    _fails([*base, bad], capsys, monkeypatch, "row 2 contains bytes that are not valid UTF-8")
    _fails([*base, "--pooling", "median", data_dir / "train.csv"], capsys, monkeypatch, "pooling")
    assert not out.exists()
    assert list(tmp_path.glob(".out*")) == []
    not_model = tmp_path / "busy"
    not_model.mkdir()
    (not_model / "keep.txt").write_text("mine")
    _fails(["classify", "train", "--out", not_model, data_dir / "train.csv", *TINY],
           capsys, monkeypatch, "is not an lstmkit model directory")  # fmt: skip
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
    as_json = tmp_path / "t.json"
    as_json.write_text('[{"text": "loved it"}]')
    _fails([*base, as_json], capsys, monkeypatch, "give a .jsonl file")
    # --text forces literal texts; texts with spaces are never taken for paths
    code, out, _ = run([*base, "--json", "--text", "nosuch.csv", "5/10"], capsys, monkeypatch)
    assert code == 0
    assert [json.loads(line)["text"] for line in out.splitlines()] == ["nosuch.csv", "5/10"]
    code, out, _ = run([*base, "--json", "I saved it as notes.txt"], capsys, monkeypatch)
    assert code == 0 and json.loads(out)["text"] == "I saved it as notes.txt"
    code, out, _ = run(["classify", "predict", "--help"], capsys, monkeypatch)
    assert "--text" in out


def test_bad_output_paths_one_line_before_any_work(model_dir, data_dir, tmp_path, capsys,
                                                   monkeypatch):  # fmt: skip
    """Defect 5 (issue 8): these gave tracebacks; now one line, exit 2, nothing touched."""
    folder = tmp_path / "taken"
    folder.mkdir()
    (folder / "mine.txt").write_text("keep")
    inspect = ["inspect", "-m", model_dir, "a great film"]
    _fails([*inspect, "--max-tokens", "0", "--out", tmp_path / "g.png"], capsys, monkeypatch,
           "--max-tokens must be at least 1")  # fmt: skip
    _fails([*inspect, "--out", folder], capsys, monkeypatch, "must end in .png")
    png_folder = tmp_path / "dir.png"
    png_folder.mkdir()
    _fails([*inspect, "--out", png_folder], capsys, monkeypatch, "is a folder")
    predict = ["classify", "predict", "-m", model_dir, "a great film"]
    _fails([*predict, "--output", folder], capsys, monkeypatch, "--output")
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    _fails([*predict, "--output", a_file / "p.csv"], capsys, monkeypatch, "is a file")
    _fails([*inspect, "--out", a_file / "sub" / "g.png"], capsys, monkeypatch, "is a file")
    assert [p.name for p in folder.iterdir()] == ["mine.txt"]
    assert a_file.read_text() == "x" and not (tmp_path / "g.png").exists()


def test_train_out_not_writable_is_found_before_training(data_dir, tmp_path, unwritable_dir,
                                                         capsys, monkeypatch):  # fmt: skip
    """Defect 5: an --out that cannot be written was found only after training."""
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    train = ["classify", "train", data_dir / "train.csv", *TINY, "--max-epochs", "50"]
    _fails([*train, "--out", a_file / "model"], capsys, monkeypatch, "is a file, not a folder")
    capsys.readouterr()
    _fails([*train, "--out", unwritable_dir / "model"], capsys, monkeypatch, "cannot write in")


def test_train_refuses_to_replace_a_forecaster_folder(data_dir, tmp_path, capsys, monkeypatch):
    """Defect 6 (issue 8): classify train silently replaced a forecaster model folder."""
    other = tmp_path / "fc"
    other.mkdir()
    meta = {"lstmkit_version": "0.1.0", "kind": "forecaster", "config": {}}
    (other / "config.json").write_text(json.dumps(meta))
    _fails(["classify", "train", data_dir / "train.csv", "--out", other, *TINY], capsys,
           monkeypatch, "holds a 'forecaster' model")  # fmt: skip
    assert json.loads((other / "config.json").read_text()) == meta


def test_damaged_model_folder_one_line(model_dir, tmp_path, capsys, monkeypatch):
    """Defect 5: damaged config.json / tokenizer.json / training.json in the CLI."""
    import shutil

    for name, content, expect in [
        ("config.json", b'{"lstmkit_version": "0.1.0", "kind": "text_classifier", "config": {}}',
         "lacks model/classes/vocab_size"),
        ("tokenizer.json", b"\xff\xfe\x00", "not UTF-8"),
        ("tokenizer.json", b'{"version": 1}', "tokenizer"),
        ("training.json", b"{oops", "training.json"),
        ("config.json", b"\xff\xfe{", "not valid JSON"),
        ("config.json", b'{"lstmkit_version": "0.1.0", "kind": "text_classifier"}', "lacks"),
    ]:  # fmt: skip
        broken = tmp_path / f"m-{name}-{len(content)}"
        shutil.copytree(model_dir, broken)
        forget_digests(broken)  # each file's own reader (the digests would name it first)
        (broken / name).write_bytes(content)
        _fails(["classify", "predict", "-m", broken, "a film"], capsys, monkeypatch, expect)
        _fails(["inspect", "-m", broken, "a film", "--out", tmp_path / "g.png"], capsys,
               monkeypatch, expect)  # fmt: skip
    meta = json.loads((model_dir / "config.json").read_text())
    meta["config"]["vocab_size"] = -4
    broken = tmp_path / "negative"
    shutil.copytree(model_dir, broken)
    (broken / "config.json").write_text(json.dumps(meta))
    _fails(["classify", "evaluate", "-m", broken, tmp_path / "x.csv"], capsys, monkeypatch,
           "vocab_size must be an integer >= 3")  # fmt: skip


def test_outputs_replaced_atomically_or_left_intact(model_dir, tmp_path, capsys, monkeypatch):
    """Item 4: predict --output and inspect --out write a temporary file in the same folder
    and rename it; a failing run leaves the previous file as it was and no temporary file."""
    out_csv, png = tmp_path / "pred.csv", tmp_path / "gates.png"
    out_csv.write_text("previous\n")
    png.write_bytes(b"previous png")
    _fails(["classify", "predict", "-m", model_dir, "--output", out_csv, "nosuch.csv"], capsys,
           monkeypatch, "no such file")  # fmt: skip
    _fails(["inspect", "-m", model_dir, "a fine film", "--out", png, "--layer", "3"], capsys,
           monkeypatch, "layer must be")  # fmt: skip
    assert out_csv.read_text() == "previous\n" and png.read_bytes() == b"previous png"
    code, _, _ = run(["classify", "predict", "-m", model_dir, "--output", out_csv, "loved it"],
                     capsys, monkeypatch)  # fmt: skip
    assert code == 0 and out_csv.read_text().startswith("text,label,p_neg,p_pos")
    code, _, _ = run(["inspect", "-m", model_dir, "a fine film", "--out", png], capsys,
                     monkeypatch)  # fmt: skip
    assert code == 0 and png.read_bytes().startswith(PNG)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gates.png", "pred.csv"]


def test_output_files_follow_the_umask(model_dir, tmp_path, capsys, monkeypatch):
    old = os.umask(0o022)
    try:
        out_csv, png = tmp_path / "pred.csv", tmp_path / "gates.png"
        run(["classify", "predict", "-m", model_dir, "--output", out_csv, "ok"], capsys,
            monkeypatch)  # fmt: skip
        run(["inspect", "-m", model_dir, "a fine film", "--out", png], capsys, monkeypatch)
    finally:
        os.umask(old)
    assert (out_csv.stat().st_mode & 0o777, png.stat().st_mode & 0o777) == (0o644, 0o644)


def test_bad_settings_one_line(model_dir, data_dir, tmp_path, capsys, monkeypatch):
    """Defect 5 (issue 8): --hidden-size 10000000 died in the allocator; --lr -1 / nan too.
    A previous model in --out stays as it was."""
    import shutil

    previous = tmp_path / "previous"
    shutil.copytree(model_dir, previous)
    before = {p.name: p.read_bytes() for p in previous.rglob("*") if p.is_file()}
    huge = ["--hidden-size", "10000000"]
    _fails(["classify", "train", data_dir / "train.csv", "--out", previous, *TINY, *huge],
           capsys, monkeypatch, "does not fit in memory")  # fmt: skip
    assert {p.name: p.read_bytes() for p in previous.rglob("*") if p.is_file()} == before
    base = ["classify", "train", data_dir / "train.csv", "--out", tmp_path / "m", *TINY]
    _fails([*base, "--hidden-size", "10000000"], capsys, monkeypatch, "does not fit in memory")
    _fails([*base, "--lr", "-1"], capsys, monkeypatch, "setting lr must be a number > 0, got -1.0")
    _fails([*base, "--lr", "nan"], capsys, monkeypatch, "setting lr must be a finite number")
    _fails([*base, "--vocab-size", "-3"], capsys, monkeypatch, "vocab_size must be an integer >= 3")
    assert not (tmp_path / "m").exists()


def test_killed_train_resumes_and_ends_with_the_uninterrupted_model(
    data_dir, tmp_path, kill_at_first_checkpoint
):
    """SIGKILL `classify train --checkpoint-dir` after its first checkpoint, rerun the same
    command: it resumes from the checkpoint (recorded in training.json) and ends with the
    predictions of a run that was never interrupted (same seed)."""

    import numpy as np

    from lstmkit import TextClassifier

    ckpt = tmp_path / "ckpt"

    def argv(out: Path, checkpoint: Path) -> list[str]:
        return [sys.executable, "-c", "from lstmkit.cli import main; main()", "classify",
                "train", str(data_dir / "train.csv"), "--out", str(out), "--max-epochs", "12",
                "--embedding-dim", "16", "--hidden-size", "32", "--batch-size", "16",
                "--dropout", "0.2", "--num-layers", "2", "--seed", "4", "--no-progress",
                "--checkpoint-dir", str(checkpoint)]  # fmt: skip

    kill_at_first_checkpoint(argv(tmp_path / "out", ckpt), ckpt)
    assert not (tmp_path / "out").exists()  # the killed run wrote no model

    resumed = subprocess.run(argv(tmp_path / "out", ckpt), capture_output=True, text=True,
                             timeout=300)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from the checkpoint" in resumed.stdout
    full = subprocess.run(argv(tmp_path / "ref", tmp_path / "ckpt_ref"), capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert full.returncode == 0, full.stderr
    assert "resumed" not in full.stdout

    def record(out: Path) -> dict:
        return json.loads((out / "training.json").read_text())

    got, want = record(tmp_path / "out"), record(tmp_path / "ref")
    assert want["info"]["resumed_from_epoch"] is None
    assert got["info"]["resumed_from_epoch"] in range(0, 11)  # a checkpoint before the end
    assert [row["epoch"] for row in got["history"]] == list(range(12))
    for key in ("train_loss", "val_loss", "val_acc"):
        np.testing.assert_allclose([r[key] for r in got["history"]],
                                   [r[key] for r in want["history"]], rtol=1e-6)  # fmt: skip
    texts, _ = make_texts(40, seed=12)
    np.testing.assert_allclose(
        TextClassifier.load(tmp_path / "out").predict_proba(texts),
        TextClassifier.load(tmp_path / "ref").predict_proba(texts),
        atol=1e-6,
    )


def test_checkpoint_of_other_data_or_settings_is_refused(data_dir, tmp_path, capsys, monkeypatch):
    ckpt = tmp_path / "ckpt"
    base = ["classify", "train", "--checkpoint-dir", ckpt, *TINY]
    code, _, err = run([*base, data_dir / "train.csv", "--out", tmp_path / "a"], capsys,
                       monkeypatch)  # fmt: skip
    assert code == 0, err
    assert (ckpt / "last.ckpt").is_file()
    # rerunning the finished command resumes from the final checkpoint: nothing to train
    code, out, err = run([*base, data_dir / "train.csv", "--out", tmp_path / "a"], capsys,
                         monkeypatch)  # fmt: skip
    assert code == 0 and "resumed from the checkpoint" in out, err
    other = write_csv(tmp_path / "other.csv", *make_texts(240, seed=99))
    for args in (
        [other, "--out", tmp_path / "b"],  # other texts
        [data_dir / "train.csv", "--out", tmp_path / "b", "--hidden-size", "9"],  # settings
        [data_dir / "train.csv", "--out", tmp_path / "b", "--max-length", "5"],  # tokenizer
    ):
        _fails([*base, *args], capsys, monkeypatch, "belongs to a run with other data or settings")
        assert not (tmp_path / "b").exists()
    _fails([*base[:2], "--checkpoint-dir", tmp_path / "c" / "ck", *TINY, data_dir / "train.csv",
            "--out", tmp_path / "c"], capsys, monkeypatch, "is inside --out")  # fmt: skip


def test_pretrain_refuses_a_checkpoint_folder_inside_out(tmp_path, capsys, monkeypatch):
    """``classify pretrain`` replaces --out as a whole when it saves the encoder: its
    checkpoints inside --out were lost with it (and the save refused the folder they made),
    after the whole run. Refused up front, before anything is read or written."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("a few words of text\nand some more words here\n" * 20)
    for ckpt in (tmp_path / "enc" / "ckpt", tmp_path / "enc"):
        _fails(["classify", "pretrain", corpus, "--out", tmp_path / "enc", "--checkpoint-dir",
                ckpt, "--no-progress"], capsys, monkeypatch, "is inside --out")  # fmt: skip
        assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.txt"]


@pytest.mark.parametrize(
    "precision", ["32", pytest.param("bf16-mixed", marks=pytest.mark.native_bf16)]
)
def test_train_precision_and_csv_logger(data_dir, tmp_path, capsys, monkeypatch, precision):
    out = tmp_path / "m"
    args = ["classify", "train", data_dir / "train.csv", "--out", out, *TINY,
            "--precision", precision, "--logger", "csv"]  # fmt: skip
    code, _, err = run(args, capsys, monkeypatch)
    assert code == 0, err
    saved = json.loads((out / "config.json").read_text())["config"]["model"]
    assert saved["train"]["precision"] == precision
    (metrics,) = (out / "logs").rglob("metrics.csv")
    logged = pd.read_csv(metrics)["train_loss"].dropna().tolist()
    history = json.loads((out / "training.json").read_text())["history"]
    assert logged == pytest.approx([row["train_loss"] for row in history], rel=1e-6)
    code, stdout, err = run(["classify", "predict", "-m", out, "--json", "a great film"], capsys,
                            monkeypatch)  # fmt: skip
    assert code == 0, err
    p = json.loads(stdout)["probabilities"]
    assert sum(p.values()) == pytest.approx(1.0, abs=1e-5)
    _fails([*args[:-1], "wandb"], capsys, monkeypatch, "'wandb' is not one of 'csv', 'tensorboard'")
    _fails([*args[:-4], "--precision", "8"], capsys, monkeypatch, "'8' is not one of '32'")


def test_train_bf16_without_native_bf16_is_one_line(data_dir, tmp_path, capsys, monkeypatch,
                                                     cpu_fallback):  # fmt: skip
    out = tmp_path / "m"
    _fails(["classify", "train", data_dir / "train.csv", "--out", out, *TINY, "--precision",
            "bf16-mixed"], capsys, monkeypatch, "needs a CPU with native bfloat16")  # fmt: skip
    assert not out.exists()


def test_train_tensorboard_logger_without_the_package_is_one_line(data_dir, tmp_path, capsys,
                                                                   monkeypatch):  # fmt: skip
    try:
        import tensorboard  # noqa: F401
    except ModuleNotFoundError:
        _fails(["classify", "train", data_dir / "train.csv", "--out", tmp_path / "m", *TINY,
                "--logger", "tensorboard"], capsys, monkeypatch,
               "needs the tensorboard package")  # fmt: skip
        assert not (tmp_path / "m").exists()
    else:
        code, _, err = run(["classify", "train", data_dir / "train.csv", "--out", tmp_path / "m",
                            *TINY, "--logger", "tensorboard"], capsys, monkeypatch)  # fmt: skip
        assert code == 0, err
        assert list((tmp_path / "m" / "logs").rglob("events.out.tfevents.*"))


def test_train_variant_options(data_dir, tmp_path, capsys, monkeypatch):
    from safetensors import safe_open

    out = tmp_path / "m"
    code, _, err = run(["classify", "train", data_dir / "train.csv", "--out", out, *TINY,
                        "--layer-norm", "--recurrent-dropout", "0.25"], capsys,
                       monkeypatch)  # fmt: skip
    assert code == 0, err
    saved = json.loads((out / "config.json").read_text())["config"]["model"]
    assert (saved["layer_norm"], saved["recurrent_dropout"]) == (True, 0.25)
    with safe_open(str(out / "model.safetensors"), "pt") as fh:
        assert "rnn.ln_weight_hh_l0" in set(fh.keys())
    _fails(["classify", "train", data_dir / "train.csv", "--out", tmp_path / "x", *TINY,
            "--recurrent-dropout", "1.5"], capsys, monkeypatch,
           "recurrent_dropout must be a number in [0, 1), got 1.5")  # fmt: skip


def test_baseline_kind_with_no_baseline_is_refused(tmp_path, capsys, monkeypatch):
    """--no-baseline --baseline-kind nbsvm trained without a baseline in silence."""
    texts, labels = make_texts(40, seed=2)
    data = write_csv(tmp_path / "d.csv", texts, labels)
    out = tmp_path / "m"
    for kind in ("nbsvm", "tfidf"):
        args = ["classify", "train", data, "--out", out, *TINY, "--no-baseline",
                "--baseline-kind", kind]  # fmt: skip
        code, _, err = run(args, capsys, monkeypatch)
        assert code == 2 and err.strip() == (
            f"error: --baseline-kind {kind} asks for a baseline that --no-baseline turns off; "
            "drop one of them"
        ), err
        assert not out.exists()
