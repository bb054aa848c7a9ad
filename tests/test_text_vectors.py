"""Word vectors from a word2vec/GloVe text file as the classifier's initial embedding."""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import numpy as np
import pytest

from lstmkit import TextClassifier
from lstmkit.data.tokenize import TextTokenizer, TokenizerConfig
from lstmkit.data.word_vectors import match_word_vectors, vector_file_dim
from lstmkit.errors import LstmkitError

sys.path.insert(0, str(Path(__file__).parent))
from test_cli_classify import TINY, run, write_csv
from test_text_classifier import make_texts

DIM = 8
RNG = np.random.default_rng(0)
# file words: upper case ("GREAT") must meet the lower-cased token "great"; the second
# "great" comes later and must lose; "zebra" is in no text
WORDS = ["GREAT", "awful", "movie", "great", "zebra", "the"]
VECTORS = {w: RNG.normal(size=DIM).round(4).astype(np.float32) for w in WORDS}


def write_vectors(path: Path, header: bool = True, gz: bool = False) -> Path:
    lines = [f"{len(WORDS)} {DIM}"] if header else []
    lines += [w + " " + " ".join(f"{v:.4f}" for v in VECTORS[w]) for w in WORDS]
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.mark.parametrize("header, gz", [(True, False), (False, False), (False, True)])
def test_match_word_vectors_normalises_and_keeps_the_first(tmp_path, header, gz):
    path = write_vectors(tmp_path / ("v.txt.gz" if gz else "v.txt"), header=header, gz=gz)
    texts, _ = make_texts(50)
    tok = TextTokenizer.train(texts, TokenizerConfig())
    vocab = tok.tokenizer.get_vocab()
    found = match_word_vectors(path, vocab, tok.tokenizer.normalizer.normalize_str, DIM)
    got = {tok.tokenizer.id_to_token(int(i)): v for i, v in zip(found.ids, found.vectors,
                                                                  strict=True)}  # fmt: skip
    assert set(got) == {"great", "awful", "movie", "the"} and found.lines == len(WORDS)
    np.testing.assert_array_equal(got["great"], VECTORS["GREAT"])  # the first spelling wins
    np.testing.assert_array_equal(got["the"], VECTORS["the"])


def _fit(vectors, lr=1e-12):
    texts, labels = make_texts(200, seed=3)
    clf = TextClassifier(embedding_dim=DIM, hidden_size=8, max_epochs=1, lr=lr, seed=5)
    return clf.fit(texts, labels, progress=False, baseline=False, vectors=vectors)


def test_fit_starts_the_embedding_from_the_file(tmp_path):
    path = write_vectors(tmp_path / "v.txt")
    # lr 1e-12: one epoch of Adam moves a weight by about 1e-11, so the trained weights
    # are the initial ones to 1e-6
    with_vectors, plain = _fit(path), _fit(None)
    vocab = with_vectors.tokenizer.tokenizer.get_vocab()
    weight = with_vectors.net.embedding.weight.detach().numpy()
    for word in ("great", "awful", "movie", "the"):
        np.testing.assert_allclose(weight[vocab[word]], VECTORS[word.upper() if word ==
                                   "great" else word], atol=1e-6)  # fmt: skip
    others = [i for t, i in vocab.items() if t not in ("great", "awful", "movie", "the")]
    reference = plain.net.embedding.weight.detach().numpy()
    np.testing.assert_allclose(weight[others], reference[others], atol=1e-6)  # random init kept
    assert not np.allclose(weight[vocab["great"]], reference[vocab["great"]], atol=1e-3)
    info = with_vectors.train_info
    assert info["vectors_coverage"] == pytest.approx(4 / (with_vectors.tokenizer.vocab_size - 2))
    assert info["vectors_file"] == str(path) and plain.train_info["vectors_coverage"] is None


def test_bad_vector_files_one_line(tmp_path):
    cases = {
        "missing": (tmp_path / "none.txt", "no such file"),
        "empty": (tmp_path / "empty.txt", "holds no vectors"),
        "blank": (tmp_path / "blank.txt", "holds no vectors"),
        "bytes": (tmp_path / "bytes.txt", "line 2 holds bytes that are not valid UTF-8"),
        "number": (tmp_path / "num.txt", "not a number"),
        "short": (tmp_path / "short.txt", "line 2 has 3 numbers, expected a word and 8"),
        "dim": (tmp_path / "dim.txt", "have 4 dimensions but embedding_dim is 8"),
        # starts like gzip (a zlib.error escaped), a device (read as empty), a line of 2 MB
        "gzip": (tmp_path / "v.txt", "starts like gzip but is not a readable gzip file"),
        "device": (Path("/dev/null"), "not a regular file"),
        "long": (tmp_path / "long.txt", "line 2 is longer than 1,048,576 bytes"),
    }
    cases["empty"][0].write_bytes(b"")
    cases["blank"][0].write_text("\n  \n\n")
    good = " ".join(["0.5"] * DIM)
    cases["bytes"][0].write_bytes(f"a {good}\nb\xff {good}\n".encode("latin1"))
    cases["number"][0].write_text(f"a {good}\nb {' '.join(['x'] * DIM)}\n")
    cases["short"][0].write_text(f"a {good}\nb 1 2 3\n")
    cases["dim"][0].write_text("a 1 2 3 4\n")
    cases["gzip"][0].write_bytes(b"\x1f\x8b\x08\x00" + bytes(6) + b"\xff not deflate " * 50)
    cases["long"][0].write_text(f"a {good}\nb{'c' * 2_000_000} {good}\n")
    for name, (path, expect) in cases.items():
        with pytest.raises(LstmkitError, match=expect) as info:
            if name in ("bytes", "number", "short", "long"):  # found reading the whole file
                match_word_vectors(path, {"a": 2}, str, DIM)
            else:
                vector_file_dim(path, DIM)
        assert "\n" not in str(info.value), name
    with pytest.raises(LstmkitError, match="embedding_dim is 8"):
        _fit(cases["dim"][0])


def test_cli_vectors_reports_coverage_and_refuses_bad_files(tmp_path, capsys, monkeypatch):
    texts, labels = make_texts(120, seed=4)
    data = write_csv(tmp_path / "d.csv", texts, labels)
    vectors = write_vectors(tmp_path / "v.txt.gz", gz=True)
    out = tmp_path / "m"
    args = ["classify", "train", data, "--out", out, *TINY, "--no-baseline"]
    code, stdout, err = run([*args, "--vectors", vectors], capsys, monkeypatch)
    assert code == 0, err
    assert "word vectors from" in stdout and "vocabulary tokens found" in stdout
    assert TextClassifier.load(out).fit_info.vectors_coverage > 0
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe 1 2\n")
    fake_gzip = tmp_path / "fake.txt.gz"  # a zlib.error traceback before
    fake_gzip.write_bytes(b"\x1f\x8b\x08\x00" + bytes(6) + b"\xff not deflate " * 50)
    cases = [
        (bad, [], "not valid UTF-8"),
        (tmp_path / "no.txt", [], "no such file"),
        (vectors, ["--embedding-dim", "16"], "have 8 dimensions but embedding_dim is 16"),
        (fake_gzip, [], "starts like gzip but is not a readable gzip file"),
    ]
    for path, extra, expect in cases:
        target = tmp_path / "never"
        code, _, err = run([*args[:4], target, *args[5:], *extra, "--vectors", path],
                           capsys, monkeypatch)  # fmt: skip
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and expect in lines[0], err
        assert not target.exists()


def test_checkpoint_of_a_run_from_other_vectors_is_refused(tmp_path):
    first = write_vectors(tmp_path / "a.txt")
    VECTORS["the"] = VECTORS["the"] + 1  # another file: one vector differs
    try:
        second = write_vectors(tmp_path / "b.txt")
    finally:
        VECTORS["the"] = VECTORS["the"] - 1
    texts, labels = make_texts(100, seed=3)

    def fit(path):
        clf = TextClassifier(
            embedding_dim=DIM, hidden_size=8, max_epochs=1, checkpoint_dir=tmp_path
        )
        return clf.fit(texts, labels, progress=False, baseline=False, vectors=path)

    fit(first)
    assert fit(first).fit_info.resumed_from_epoch == 0  # the same run resumes
    with pytest.raises(LstmkitError, match="other data or settings"):
        fit(second)


def test_cli_vectors_from_a_device_is_refused_at_once(tmp_path):
    """--vectors /dev/zero read a line without end (a hang, then out of memory): refused
    before anything is read. A command with memory capped, so the old way failed fast."""
    import resource
    import subprocess

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    texts, labels = make_texts(40, seed=4)
    data = write_csv(tmp_path / "d.csv", texts, labels)
    done = subprocess.run(
        [sys.executable, "-c", "from lstmkit.cli import main; main()", "classify", "train",
         str(data), "--out", str(tmp_path / "m"), "--embedding-dim", "8", "--vectors",
         "/dev/zero"],
        capture_output=True, text=True, timeout=120, preexec_fn=cap,
    )  # fmt: skip
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0] == (
        "error: word vectors /dev/zero: not a regular file (a device, pipe or socket); "
        "give a word2vec/GloVe text file: one word and its numbers per line"
    )
    assert not (tmp_path / "m").exists()
