"""Labelled-text loaders (CSV/TSV/JSONL/Parquet), IMDB archive/folder reader, download checks."""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import tarfile
from pathlib import Path

import pandas as pd
import pytest

from lstmkit.data.imdb import (
    download_imdb,
    is_imdb_source,
    load_imdb,
    load_imdb_splits,
    verify_sha256,
)
from lstmkit.data.text import load_labelled_text, load_text_data
from lstmkit.errors import LstmkitError

SHARED_IMDB = Path(__file__).resolve().parents[2] / "shared" / "data" / "aclImdb_v1.tar.gz"

ROWS = [("a fine film", "pos"), ("dull, so dull", "neg"), ('he said "wow",\nthen left', "pos")]


def write_csv(path: Path, rows, header=("text", "label")) -> Path:
    frame = pd.DataFrame(rows, columns=list(header))
    frame.to_csv(path, index=False)
    return path


def test_csv_string_labels(tmp_path):
    data = load_labelled_text(write_csv(tmp_path / "d.csv", ROWS))
    assert data.texts == [r[0] for r in ROWS]
    assert data.labels == ["pos", "neg", "pos"]
    assert data.classes() == ["neg", "pos"]


def test_csv_integer_labels_multiclass_and_custom_columns(tmp_path):
    rows = [("one", 0), ("two", 2), ("three", 1), ("four", 2)]
    path = write_csv(tmp_path / "d.csv", rows, header=("review", "y"))
    data = load_labelled_text(path, text_column="review", label_column="y")
    assert data.labels == [0, 2, 1, 2]
    assert all(isinstance(v, int) for v in data.labels)
    assert data.classes() == [0, 1, 2]


def test_tsv_jsonl_parquet_agree(tmp_path):
    frame = pd.DataFrame(ROWS, columns=["text", "label"])
    frame.to_csv(tmp_path / "d.tsv", sep="\t", index=False)
    frame.to_json(tmp_path / "d.jsonl", orient="records", lines=True)
    frame.to_parquet(tmp_path / "d.parquet")
    for name in ("d.tsv", "d.jsonl", "d.parquet"):
        data = load_labelled_text(tmp_path / name)
        assert data.texts == [r[0] for r in ROWS], name
        assert data.labels == [r[1] for r in ROWS], name


def test_jsonl_integer_labels(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "x", "label": 1}\n\n{"text": "y", "label": 0}\n')
    assert load_labelled_text(path).labels == [1, 0]


def _error(tmp_path, path, **kw) -> str:
    with pytest.raises(LstmkitError) as info:
        load_labelled_text(path, **kw)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_file_and_unknown_suffix(tmp_path):
    assert "no such file" in _error(tmp_path, tmp_path / "nope.csv")
    (tmp_path / "d.xlsx").write_text("x")
    assert "unknown file type" in _error(tmp_path, tmp_path / "d.xlsx")


def test_missing_columns_name_what_is_there(tmp_path):
    path = write_csv(tmp_path / "d.csv", ROWS, header=("body", "label"))
    msg = _error(tmp_path, path)
    assert "no text column 'text'" in msg and "'body'" in msg and "--text-column" in msg
    path = write_csv(tmp_path / "e.csv", ROWS, header=("text", "sentiment"))
    msg = _error(tmp_path, path)
    assert "no label column 'label'" in msg and "'sentiment'" in msg


def test_empty_texts_name_rows(tmp_path):
    path = write_csv(tmp_path / "d.csv", [("ok", "a"), ("", "b"), ("  ", "a"), ("fine", "b")])
    msg = _error(tmp_path, path)
    assert "rows 2, 3" in msg and "empty text" in msg


def test_missing_labels_name_rows(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n{"text": "b"}\n{"text": "c", "label": "y"}\n')
    assert "row 2 has no label" in _error(tmp_path, path)


def test_single_class_and_no_rows(tmp_path):
    path = write_csv(tmp_path / "d.csv", [("a", "pos"), ("b", "pos")])
    assert "at least two classes" in _error(tmp_path, path)
    assert len(load_labelled_text(path, min_classes=1)) == 2
    (tmp_path / "h.csv").write_text("text,label\n")
    assert "no data rows" in _error(tmp_path, tmp_path / "h.csv")
    (tmp_path / "z.csv").write_bytes(b"")
    assert "empty" in _error(tmp_path, tmp_path / "z.csv")


def test_undecodable_bytes_name_rows(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(b"text,label\nfine,pos\ncaf\xe9 au lait,neg\nok,pos\nna\xefve,neg\n")
    msg = _error(tmp_path, path)
    assert "rows 2, 4" in msg and "UTF-8" in msg
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"text": "ok", "label": 1}\n{"text": "caf\xe9", "label": 0}\n')
    assert "row 2 " in _error(tmp_path, path)


def test_bad_json_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "label": 1}\n{"text": oops}\n')
    assert "row 2 is not valid JSON" in _error(tmp_path, path)


def test_fractional_and_mixed_labels(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "label": 0.5}\n{"text": "b", "label": 1}\n')
    assert "fractional" in _error(tmp_path, path)
    path.write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": 1}\n')
    assert "mix" in _error(tmp_path, path)


# ---------------------------------------------------------------- IMDB layout
REVIEWS = {
    "train/pos/3_9.txt": "Loved it.<br /><br />Great cast.",
    "train/pos/10_8.txt": "A gem.",
    "train/neg/1_2.txt": "Awful.",
    "train/neg/2_1.txt": "Terrible film.",
    "train/unsup/5_0.txt": "unlabelled",
    "test/pos/0_10.txt": "Wonderful!",
    "test/neg/0_3.txt": "Boring.",
}


def make_imdb_archive(path: Path) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, text in [("README", "readme"), *REVIEWS.items()]:
            data = text.encode()
            info = tarfile.TarInfo(f"aclImdb/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def make_imdb_folder(root: Path) -> Path:
    for name, text in REVIEWS.items():
        file = root / "aclImdb" / name
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text)
    return root / "aclImdb"


def _check_train(data):
    # sorted by (label, id): neg before pos, ids numerically (3 before 10)
    assert data.texts == ["Awful.", "Terrible film.", "Loved it.<br /><br />Great cast.", "A gem."]
    assert data.labels == ["neg", "neg", "pos", "pos"]
    assert data.extra["rating"] == [2, 1, 9, 8]


def test_imdb_archive_streams_both_splits(tmp_path):
    archive = make_imdb_archive(tmp_path / "aclImdb_v1.tar.gz")
    before = set(tmp_path.rglob("*"))
    splits = load_imdb_splits(archive)
    assert set(tmp_path.rglob("*")) == before  # nothing unpacked
    _check_train(splits["train"])
    assert splits["test"].texts == ["Boring.", "Wonderful!"]
    assert is_imdb_source(archive)
    assert load_text_data(archive, split="test").labels == ["neg", "pos"]


def test_imdb_folder_and_parent_folder(tmp_path):
    folder = make_imdb_folder(tmp_path)
    _check_train(load_imdb(folder))
    _check_train(load_imdb(tmp_path))  # the folder that holds aclImdb/
    assert is_imdb_source(folder) and not is_imdb_source(tmp_path / "aclImdb" / "train" / "pos")


def test_imdb_errors(tmp_path):
    bad = tmp_path / "broken.tar.gz"
    bad.write_bytes(b"not a tar")
    with pytest.raises(LstmkitError, match="not a readable tar archive"):
        load_imdb(bad)
    with pytest.raises(LstmkitError, match="unknown IMDB split"):
        load_imdb(make_imdb_archive(tmp_path / "a.tar.gz"), split="dev")
    empty = tmp_path / "empty.tar.gz"
    with tarfile.open(empty, "w:gz"):
        pass
    with pytest.raises(LstmkitError, match="no reviews found"):
        load_imdb(empty)


@pytest.mark.skipif(not SHARED_IMDB.exists(), reason="shared IMDB archive not present")
def test_real_imdb_archive_counts():
    splits = load_imdb_splits(SHARED_IMDB)
    for split in ("train", "test"):
        data = splits[split]
        assert len(data) == 25_000
        assert data.labels.count("pos") == data.labels.count("neg") == 12_500
        ratings = data.extra["rating"]
        assert all(r >= 7 for r, y in zip(ratings, data.labels, strict=True) if y == "pos")
        assert all(r <= 4 for r, y in zip(ratings, data.labels, strict=True) if y == "neg")


# ---------------------------------------------------------------- download
def test_download_with_checksum_from_local_url(tmp_path):
    source = make_imdb_archive(tmp_path / "source.tar.gz")
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    dest = tmp_path / "cache" / "aclImdb_v1.tar.gz"
    got = download_imdb(dest, url=source.as_uri(), sha256=digest, progress=False)
    assert got == dest and dest.read_bytes() == source.read_bytes()
    verify_sha256(dest, digest)
    # an existing good copy is reused even when the URL is unreachable
    assert download_imdb(dest, url="http://127.0.0.1:9/x", sha256=digest, progress=False) == dest


def test_downloaded_archive_follows_the_umask(tmp_path):
    """The download was written through mkstemp and kept its 0600 mode."""
    source = make_imdb_archive(tmp_path / "source.tar.gz")
    dest = tmp_path / "cache" / "aclImdb_v1.tar.gz"
    old = os.umask(0o022)
    try:
        download_imdb(dest, url=source.as_uri(), sha256=None, progress=False)
    finally:
        os.umask(old)
    assert dest.stat().st_mode & 0o777 == 0o644
    assert dest.read_bytes() == source.read_bytes()


def test_download_checksum_mismatch_leaves_nothing(tmp_path):
    source = make_imdb_archive(tmp_path / "source.tar.gz")
    dest = tmp_path / "cache" / "aclImdb_v1.tar.gz"
    with pytest.raises(LstmkitError, match="checksum mismatch"):
        download_imdb(dest, url=source.as_uri(), sha256="0" * 64, progress=False)
    assert not dest.exists() and list(dest.parent.iterdir()) == []


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_download_without_network_is_one_line(tmp_path):
    dest = tmp_path / "aclImdb_v1.tar.gz"
    url = f"http://127.0.0.1:{_closed_port()}/aclImdb_v1.tar.gz"
    with pytest.raises(LstmkitError) as info:
        download_imdb(dest, url=url, timeout=2, progress=False)
    message = str(info.value)
    assert "cannot download" in message and "by hand" in message and "\n" not in message
    assert not dest.exists() and list(tmp_path.iterdir()) == []


def test_jsonl_rows_are_objects(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps([1, 2]) + "\n")
    assert "expected an object" in _error(tmp_path, path)


def test_one_megabyte_text_in_csv_and_tsv(tmp_path):
    """Defect 6 (issue 8): a 1 MB text in a CSV hit Python's csv field limit (JSONL worked)."""
    import csv as csv_module

    big = "word " * 200_000 + "end"  # 1,000,003 characters
    limit_before = csv_module.field_size_limit()
    for suffix, sep in ((".csv", ","), (".tsv", "\t")):
        path = tmp_path / f"big{suffix}"
        pd.DataFrame({"text": [big, "short"], "label": ["a", "b"]}).to_csv(
            path, index=False, sep=sep
        )
        data = load_labelled_text(path)
        assert len(data.texts[0]) == 1_000_003 and data.texts == [big, "short"]
    assert csv_module.field_size_limit() == limit_before  # the global limit is put back
    jsonl = tmp_path / "big.jsonl"
    jsonl.write_text(json.dumps({"text": big, "label": "a"}) + '\n{"text": "s", "label": "b"}\n')
    assert load_labelled_text(jsonl).texts[0] == big


def test_float_labels_in_csv_are_the_integer_classes_of_jsonl(tmp_path):
    """Defect 6: "1.0"/"0.0" in a CSV became classes "0.0"/"1.0"; JSONL gave 0 and 1."""
    csv_path = tmp_path / "f.csv"
    pd.DataFrame({"text": ["a", "b", "c"], "label": [1.0, 0.0, 1.0]}).to_csv(csv_path, index=False)
    assert "1.0" in csv_path.read_text()  # pandas writes the floats as 1.0 / 0.0
    jsonl = tmp_path / "i.jsonl"
    jsonl.write_text("".join(json.dumps({"text": t, "label": y}) + "\n"
                             for t, y in zip("abc", [1, 0, 1], strict=True)))  # fmt: skip
    from_csv, from_jsonl = load_labelled_text(csv_path), load_labelled_text(jsonl)
    assert from_csv.labels == from_jsonl.labels == [1, 0, 1]
    assert all(type(y) is int for y in from_csv.labels) and from_csv.classes() == [0, 1]
    mixed = tmp_path / "m.csv"
    mixed.write_text("text,label\na,1\nb,2.0\nc,1e0\n")
    assert load_labelled_text(mixed).labels == [1, 2, 1]
    frac = tmp_path / "frac.csv"
    frac.write_text("text,label\na,0.5\nb,1\n")
    assert "fractional" in _error(tmp_path, frac)
    names = tmp_path / "names.csv"
    names.write_text("text,label\na,1.0\nb,nan\nc,pos\n")
    assert load_labelled_text(names).labels == ["1.0", "nan", "pos"]  # not all numbers


def test_imdb_reader_does_not_import_the_table_reader():
    """The shape (issue 8): data/text.py and data/imdb.py imported each other."""
    import subprocess
    import sys

    code = (
        "import sys, lstmkit.data.imdb; "
        "assert 'lstmkit.data.text' not in sys.modules, 'imdb imports text'"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-500:]
    from lstmkit.data.labelled import LabelledTexts as Shared
    from lstmkit.data.text import LabelledTexts

    assert LabelledTexts is Shared  # the old import path still works


@pytest.mark.parametrize(
    ("texts", "expect"),
    [
        (["a text", ["a", "list"]], "text 2 is a list, not a string; pass one string per text"),
        ([3, "a text"], "text 1 is an int, not a string"),
        ([2.5], "text 1 is a float, not a string"),
        (["ok", b"raw bytes"], "text 2 is bytes, not a string; decode the texts first"),
        (["ok", "ab\ud800c"], "text 2 holds a lone surrogate (U+D800) at character 3"),
    ],
)
def test_api_says_what_a_text_that_is_not_a_string_is(texts, expect):
    """A list, a number or bytes given as a text was reported as an "empty text"; a lone
    surrogate reached the tokenizer (a TypeError)."""
    from lstmkit import TextClassifier

    clf = TextClassifier(embedding_dim=8, hidden_size=8)
    labels = ["x", "y"][: len(texts)] if len(texts) > 1 else ["x"]
    calls = {
        "predict": lambda: clf.predict(texts),
        "predict_proba": lambda: clf.predict_proba(texts),
        "fit": lambda: clf.fit(texts, labels, progress=False),
    }
    for name, call in calls.items():
        with pytest.raises(LstmkitError) as info:
            call()
        source = "training data" if name == "fit" else "texts"
        assert str(info.value).startswith(f"{source}: {expect}"), (name, str(info.value))
    with pytest.raises(LstmkitError, match=r"texts must be a sequence .* got a dict"):
        clf.predict({"a text": 1})  # its keys were classified


def test_a_table_cell_that_is_not_a_text_is_named(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "fine", "label": "a"}\n{"text": 5, "label": "b"}\n')
    assert _error(tmp_path, path).endswith("row 2 is an int, not a string; write texts as strings")
    path.write_text('{"text": "fine", "label": "a"}\n{"text": "x \\ud83d", "label": "b"}\n')
    assert "row 2 holds a lone surrogate (U+D83D) at character 3" in _error(tmp_path, path)
