"""Pretraining a text classifier's encoder on unlabelled text, and fine-tuning from it.

References are independent of the code under test: the language-model loss is checked
against log-probabilities gathered by hand at the shifted targets, the learnt model
against a unigram model's perplexity computed from token counts, the fine-tuning start
against the pretrained tensors, and every bad input against the rule "one error line,
exit status 2, nothing written".
"""

from __future__ import annotations

import gzip
import json
import math
import random
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import forget_digests
from typer.testing import CliRunner

from lstmkit import TextClassifier
from lstmkit.cli import app
from lstmkit.data.corpus import TextCorpus
from lstmkit.data.tokenize import TextTokenizer, TokenizerConfig
from lstmkit.errors import LstmkitError
from lstmkit.tasks.language_model import (
    LanguageModelNet,
    LanguageModelStream,
    PretrainedEncoder,
    PretrainSettings,
    scan_corpus,
)
from lstmkit.tasks.text_classification.settings import TextClassifierConfig, make_config

SUBJECTS = ["the cat", "the dog", "a bird", "my friend", "the old man"]
VERBS = ["sees", "likes", "hates", "follows", "finds"]
OBJECTS = ["the ball", "a fish", "the red car", "her hat", "the small house"]


def make_corpus(n: int, seed: int = 0) -> list[str]:
    """Texts of 1-4 sentences "<subject> <verb> <object> ." (strong word order)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        parts = [
            f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} ."
            for _ in range(rng.randint(1, 4))
        ]
        out.append(" ".join(parts))
    return out


def make_labelled(n: int, seed: int = 1) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    texts, labels = [], []
    for _ in range(n):
        good = rng.random() < 0.5
        verb = rng.choice(["likes", "finds"] if good else ["hates", "follows"])
        texts.append(f"{rng.choice(SUBJECTS)} {verb} {rng.choice(OBJECTS)} .")
        labels.append("pos" if good else "neg")
    return texts, labels


def _load(path: Path) -> PretrainedEncoder:
    """A saved encoder of a text classifier (its settings are a `TextClassifierConfig`)."""
    return PretrainedEncoder.load(path, TextClassifierConfig)


SMALL = {"embedding_dim": 16, "hidden_size": 16, "bidirectional": True, "vocab_size": 200}
FAST = {"batch_size": 32, "lr": 0.01, "progress": False}


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> tuple[TextClassifier, Path]:
    clf = TextClassifier(**SMALL, pooling="max+mean")
    clf.pretrain(make_corpus(1500), max_epochs=3, **FAST)
    out = tmp_path_factory.mktemp("enc") / "encoder"
    clf.save_pretrained(out)
    return clf, out


# ------------------------------------------------------------------ the corpus
def test_corpus_reads_every_format_and_skips_blank_texts(tmp_path: Path) -> None:
    texts = ["first text", "second, with a comma", "third \u00e9t\u00e9"]
    (tmp_path / "a.txt").write_text(
        "first text\n\n   \nsecond, with a comma\nthird \u00e9t\u00e9\n"
    )
    pd.DataFrame({"body": texts}).to_csv(tmp_path / "a.csv", index=False)
    pd.DataFrame({"body": texts}).to_csv(tmp_path / "a.tsv", index=False, sep="\t")
    pd.DataFrame({"body": texts}).to_json(tmp_path / "a.jsonl", orient="records", lines=True)
    pd.DataFrame({"body": texts}).to_parquet(tmp_path / "a.parquet")
    with gzip.open(tmp_path / "b.txt.gz", "wt", encoding="utf-8") as fh:
        fh.write("\n".join(texts))
    folder = tmp_path / "docs"
    folder.mkdir()
    for i, t in enumerate(texts):
        (folder / f"{i}.txt").write_text(t)
    assert list(TextCorpus(tmp_path / "a.txt")) == texts
    assert list(TextCorpus(tmp_path / "b.txt.gz")) == texts
    assert list(TextCorpus(folder)) == texts
    for name in ("a.csv", "a.tsv", "a.jsonl", "a.parquet"):
        assert list(TextCorpus(tmp_path / name, text_column="body")) == texts, name
    both = TextCorpus.from_paths([tmp_path / "a.txt", tmp_path / "a.parquet"], "body")
    assert list(both) == texts + texts
    assert list(both) == texts + texts  # re-iterable: streams the files again


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "holds no text"),
        (b"  \n\t\n   \n", "holds no text"),
        (b"good line\nbad \xff\xfe bytes\n", "line 2 is not valid UTF-8"),
    ],
)
def test_bad_corpus_is_one_clear_error(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "corpus.txt"
    path.write_bytes(content)
    with pytest.raises(LstmkitError, match=match):
        TextCorpus(path).check()
        list(TextCorpus(path))  # a bad byte after the first text is found while streaming


def _not_gzip(path: Path) -> Path:
    """A file that starts like gzip (magic, deflate, flags) and is not: zlib.error when read."""
    path.write_bytes(b"\x1f\x8b\x08\x00" + bytes(6) + b"\xff not deflate data at all " * 40)
    return path


def test_devices_and_damaged_gzip_corpora_are_one_clear_error(tmp_path: Path) -> None:
    for path, match in (
        (Path("/dev/null"), "not a regular file or folder"),  # was "holds no text"
        (_not_gzip(tmp_path / "c.txt.gz"), r"c\.txt\.gz: not a readable gzip file"),
        (_not_gzip(tmp_path / "c.csv.gz"), r"c\.csv\.gz: not a readable gzip file"),
    ):
        with pytest.raises(LstmkitError, match=match):
            TextCorpus(path).check()
    # damaged after the first texts: found while streaming, still one line
    good = gzip.compress("\n".join(make_corpus(2000)).encode())
    (tmp_path / "late.txt.gz").write_bytes(good[:-2000] + bytes(200) + good[-1800:])
    with pytest.raises(LstmkitError, match=r"late\.txt\.gz: not a readable gzip file"):
        TextCorpus(tmp_path / "late.txt.gz").check()
        list(TextCorpus(tmp_path / "late.txt.gz"))


def test_a_multi_megabyte_line_is_streamed_in_bounded_memory(tmp_path: Path) -> None:
    """One 4 MB line (words, then 100 KB without a space in 2-byte characters): the
    corpus hands it on as texts of at most 64 KiB, cut at whitespace or between
    characters, nothing lost, and reading it never holds the line (it held the line
    twice over, and the tokenizer took 150 times its size)."""
    import tracemalloc

    most = 64 * 1024  # the documented limit (lstmkit.data.corpus.MAX_TEXT_BYTES)
    rng = random.Random(0)
    vocab = ["the", "cat", "\u00e9t\u00e9", "sees", "a"]
    words = " ".join(rng.choice(vocab) for _ in range(1_000_000))
    line = words + " " + "\u00e9" * 50_000 + " end"
    assert len(line.encode()) > 4_000_000
    path = tmp_path / "one-line.txt"
    path.write_text(f"first text\n{line}\nlast text\n", encoding="utf-8")
    tracemalloc.start()
    try:
        n, longest = 0, 0
        for text in TextCorpus(path):  # keep no text: measure the reading only
            n += 1
            longest = max(longest, len(text.encode()))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, peak  # a few pieces of 64 KiB, not the 4 MB line
    assert longest <= most and n > 4_000_000 // most
    texts = list(TextCorpus(path))
    assert texts[0] == "first text" and texts[-1] == "last text"
    assert "".join(texts[1:-1]) == line  # cut, nothing lost or added
    assert all(t.endswith(" ") or t.startswith("\u00e9") or t == " end" for t in texts[1:-1])
    # a text given in memory, a table cell and a folder's file are cut by the same rule
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "big.txt").write_text(line, encoding="utf-8")
    pd.DataFrame({"text": [line]}).to_csv(tmp_path / "t.csv", index=False)
    for corpus in (TextCorpus([line]), TextCorpus(folder), TextCorpus(tmp_path / "t.csv")):
        assert list(corpus) == texts[1:-1]


def test_missing_column_names_the_columns(tmp_path: Path) -> None:
    pd.DataFrame({"review": ["a b"]}).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(LstmkitError, match=r"no text column 'text'.*\['review'\]"):
        TextCorpus(tmp_path / "t.csv").check()


# ------------------------------------------------------------------ the language model
def test_language_model_loss_is_the_shifted_log_likelihood_in_both_directions() -> None:
    torch.manual_seed(0)
    cfg = make_config(embedding_dim=6, hidden_size=5, bidirectional=True)
    net = LanguageModelNet(30, cfg, output_dropout=0.0).eval()
    ids = torch.tensor([[5, 9, 3, 7, 2], [4, 8, 6, 0, 0]])
    lengths = torch.tensor([5, 3])
    nll, count = net(ids, lengths)
    # by hand: run the encoder, take full log-probabilities, gather the neighbours
    with torch.no_grad():
        out, _ = net.rnn(net.embedding(ids), lengths=lengths)
        expected, n = 0.0, 0
        for b in range(2):
            length = int(lengths[b])
            logp_f = net.softmax.log_prob(out[b, :length, :5])
            logp_b = net.softmax.log_prob(out[b, :length, 5:])
            for t in range(length - 1):
                expected -= float(logp_f[t, ids[b, t + 1]])  # forward: next token
                expected -= float(logp_b[t + 1, ids[b, t]])  # backward: previous token
                n += 2
    assert int(count) == n == 2 * (4 + 2)
    assert float(nll.detach()) == pytest.approx(expected, rel=1e-5)


def test_stacked_bidirectional_encoder_is_refused() -> None:
    with pytest.raises(LstmkitError, match="num_layers=1 or a unidirectional"):
        TextClassifier(bidirectional=True, num_layers=2).pretrain(make_corpus(10), progress=False)


def test_pretraining_learns_word_order_beyond_unigram_frequencies(pretrained) -> None:
    clf, _ = pretrained
    enc = clf.pretrained
    assert enc is not None
    # unigram perplexity of the same corpus from token counts (no model involved)
    tok = enc.tokenizer
    counts = Counter(i for ids in tok.encode(make_corpus(1500)) for i in ids)
    total = sum(counts.values())
    unigram = math.exp(-sum(c / total * math.log(c / total) for c in counts.values()))
    assert enc.info.val_perplexity < 0.5 * unigram, (enc.info.val_perplexity, unigram)
    assert [row["epoch"] for row in enc.history] == [0, 1, 2]
    assert enc.history[-1]["val_loss"] < enc.history[0]["val_loss"]
    assert enc.info.val_texts == 15 and enc.info.train_texts == 1485
    assert enc.info.tokens_per_second > 0 and enc.steps
    # every epoch goes through the training tokens once (less the pieces of a last,
    # incomplete batch)
    seen = [row["tokens"] for row in enc.history]
    per_epoch = enc.info.train_tokens_per_epoch
    assert 0.9 * per_epoch <= seen[0] <= per_epoch
    assert seen[2] == pytest.approx(3 * seen[0], rel=0.05)


def test_stream_yields_its_length_of_training_pieces_only() -> None:
    corpus = TextCorpus(make_corpus(700, seed=3))
    tok = TextTokenizer.train(corpus, TokenizerConfig(vocab_size=100, max_length=6))
    settings = PretrainSettings(batch_size=16, val_texts=7, shuffle_texts=100)
    stats = scan_corpus(corpus, tok, settings.val_texts)
    assert stats.val_texts == 7 and stats.train_texts == 693
    stream = LanguageModelStream(corpus, tok, stats, settings)
    first = list(stream)
    assert len(first) == len(stream) == stats.train_pieces // 16
    assert all(b["ids"].shape[0] == 16 and b["ids"].shape[1] <= 6 for b in first)
    train_rows = {
        tuple(r[:n].tolist()) for b in first for r, n in zip(b["ids"], b["lengths"], strict=True)
    }
    assert len(train_rows) > 50
    assert stats.val_pieces and all(len(p) <= 6 for p in stats.val_pieces)
    stream.epoch = 0
    again = list(stream)
    assert all(
        torch.equal(a["ids"], b["ids"]) for a, b in zip(first, again, strict=True)
    )  # same epoch
    second = list(stream)  # epoch 1: another order
    assert not all(torch.equal(a["ids"], b["ids"]) for a, b in zip(first, second, strict=True))


def test_time_budget_ends_pretraining_after_the_epoch_in_progress() -> None:
    clf = TextClassifier(embedding_dim=8, hidden_size=8, vocab_size=100)
    clf.pretrain(make_corpus(600), max_epochs=50, max_minutes=1e-4, **FAST)
    enc = clf.pretrained
    assert enc is not None and enc.info.stopped_by_time
    assert enc.info.epochs_run == 1 and "val_loss" in enc.history[0]


# ------------------------------------------------------------------ the folder and fine-tuning
def test_pretrained_folder_round_trips(pretrained) -> None:
    clf, path = pretrained
    assert {"config.json", "model.safetensors", "tokenizer.json", "training.json"} <= {
        p.name for p in path.iterdir()
    }
    assert (path / "perplexity.png").read_bytes()[:4] == b"\x89PNG"
    loaded = _load(path)
    assert loaded.state.keys() == clf.pretrained.state.keys()
    for k, v in clf.pretrained.state.items():
        assert torch.equal(loaded.state[k], v), k
    assert loaded.tokenizer.to_json() == clf.pretrained.tokenizer.to_json()
    assert json.loads((path / "config.json").read_text())["kind"] == "text_encoder"


def test_fine_tuning_starts_from_the_pretrained_weights(pretrained) -> None:
    _, path = pretrained
    enc = _load(path)
    texts, labels = make_labelled(200)
    clf = TextClassifier(pooling="max+mean", max_epochs=1, lr=1e-12, batch_size=16)
    clf.fit(texts, labels, pretrained=path, progress=False)
    # the encoder settings came from the folder, the rest stayed the classifier's
    assert (clf.config.hidden_size, clf.config.bidirectional) == (16, True)
    assert clf.config.pooling == "max+mean"
    assert clf.tokenizer.to_json() == enc.tokenizer.to_json()
    state = clf.net.state_dict()
    for name, tensor in enc.encoder_state().items():  # lr 1e-12: still the pretrained values
        torch.testing.assert_close(state[name], tensor, atol=1e-6, rtol=0)


def test_fine_tuned_classifier_learns_and_round_trips(pretrained, tmp_path: Path) -> None:
    clf, _ = pretrained  # pretrain() then fit() on the same object
    texts, labels = make_labelled(400)
    clf.config.max_epochs = 4
    clf.config.lr = 0.01
    clf.config.batch_size = 16
    clf.fit(texts, labels, progress=False)
    test_texts, test_labels = make_labelled(100, seed=9)
    assert clf.evaluate(test_texts, test_labels).accuracy > 0.9
    clf.save(tmp_path / "m")
    again = TextClassifier.load(tmp_path / "m")
    assert again.predict(test_texts) == clf.predict(test_texts)


def test_settings_that_contradict_the_encoder_are_refused(pretrained) -> None:
    _, path = pretrained
    texts, labels = make_labelled(50)
    with pytest.raises(LstmkitError, match="hidden_size=16 but hidden_size=32"):
        TextClassifier(hidden_size=32).fit(texts, labels, pretrained=path, progress=False)
    with pytest.raises(LstmkitError, match="tokenizer has vocab_size=200 but vocab_size=50"):
        TextClassifier(vocab_size=50).fit(texts, labels, pretrained=path, progress=False)
    # a preset's encoder settings are not the caller's: the encoder's win
    clf = TextClassifier("imdb", max_epochs=1)
    clf.fit(texts, labels, pretrained=path, progress=False)
    assert clf.config.hidden_size == 16 and clf.config.tokenizer.vocab_size == 200


def test_pretrained_and_word_vectors_together_are_refused(pretrained, tmp_path: Path) -> None:
    _, path = pretrained
    vectors = tmp_path / "v.txt"
    vectors.write_text("cat " + " ".join(["0.1"] * 16) + "\n")
    texts, labels = make_labelled(40)
    with pytest.raises(LstmkitError, match="either pretrained"):
        TextClassifier().fit(texts, labels, pretrained=path, vectors=vectors, progress=False)


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_damaged_or_foreign_pretrained_folders_are_one_clear_error(
    pretrained, tmp_path: Path
) -> None:
    _, path = pretrained
    other = TextClassifier(embedding_dim=16, hidden_size=16, bidirectional=True, vocab_size=30)
    other.pretrain([f"w{i} w{i + 1} w{i + 2}" for i in range(100)], **FAST)  # 30 tokens
    other_dir = other.save_pretrained(tmp_path / "other")
    # another run's tokenizer beside these weights (the digests would name the file first)
    mixed = forget_digests(_copy(path, tmp_path / "mixed"))
    (mixed / "tokenizer.json").write_bytes((other_dir / "tokenizer.json").read_bytes())
    with pytest.raises(LstmkitError, match="from different runs"):
        _load(mixed)
    shapes = forget_digests(_copy(other_dir, tmp_path / "shapes"))  # weights of another shape
    (shapes / "model.safetensors").write_bytes((path / "model.safetensors").read_bytes())
    with pytest.raises(LstmkitError, match="from different runs"):
        _load(shapes)
    texts, labels = make_labelled(60)
    model = TextClassifier(embedding_dim=8, hidden_size=8, max_epochs=1).fit(
        texts, labels, progress=False
    )
    model.save(tmp_path / "classifier")
    with pytest.raises(LstmkitError, match="text_classifier"):
        _load(tmp_path / "classifier")


# ------------------------------------------------------------------ the command line
def _run(args: list[str]):
    import click

    result = CliRunner().invoke(app, args, standalone_mode=False, catch_exceptions=True)
    err = result.exception
    if isinstance(err, LstmkitError):
        return 2, f"error: {err}"
    if isinstance(err, click.exceptions.UsageError):
        return 2, f"error: {err.format_message()}"
    assert err is None or isinstance(err, SystemExit), repr(err)
    return result.exit_code, result.output


def test_cli_pretrain_then_train_from_it(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(make_corpus(800)))
    enc = tmp_path / "enc"
    code, out = _run(
        ["classify", "pretrain", str(corpus), "--out", str(enc), "--embedding-dim", "8",
         "--hidden-size", "8", "--bidirectional", "--vocab-size", "100", "--max-epochs", "2",
         "--no-progress"]
    )  # fmt: skip
    assert code == 0, out
    assert "val perplexity" in out and "fine-tune it with" in out
    assert (enc / "model.safetensors").exists() and (enc / "perplexity.png").exists()
    texts, labels = make_labelled(120)
    pd.DataFrame({"text": texts, "label": labels}).to_csv(tmp_path / "l.csv", index=False)
    code, out = _run(
        ["classify", "train", str(tmp_path / "l.csv"), "--pretrained", str(enc), "--out",
         str(tmp_path / "m"), "--max-epochs", "1", "--no-progress"]
    )  # fmt: skip
    assert code == 0, out
    saved = json.loads((tmp_path / "m" / "config.json").read_text())["config"]["model"]
    assert saved["hidden_size"] == 8 and saved["bidirectional"] is True


@pytest.mark.parametrize(
    ("content", "extra", "match"),
    [
        (b"", [], "holds no text"),
        (b"   \n \t \n", [], "holds no text"),
        (b"one text\n\xff\xfe\n", [], "not valid UTF-8"),
        (b"a b c\n", ["--layers", "2", "--bidirectional"], "cannot be pretrained"),
        (b"a b c\n", ["--lr", "-1"], "lr must be"),
    ],
)
def test_cli_pretrain_bad_input_one_line_nothing_written(
    tmp_path: Path, content: bytes, extra: list[str], match: str
) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_bytes(content)
    out = tmp_path / "enc"
    code, text = _run(
        ["classify", "pretrain", str(corpus), "--out", str(out), "--no-progress", *extra]
    )
    assert code == 2 and match in text and text.startswith("error:"), text
    assert len(text.strip().splitlines()) == 1
    assert not out.exists()


def test_cli_pretrain_refuses_devices_and_damaged_archives_in_one_line(tmp_path: Path) -> None:
    """/dev/zero was a MemoryError (a line without end), a damaged .txt.gz a zlib.error
    traceback; both are refused before training. Run as a command with memory capped,
    so that the old behaviour fails fast instead of filling the machine."""
    import resource
    import subprocess
    import sys

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    for corpus, match in (
        ("/dev/zero", "error: /dev/zero: not a regular file or folder"),
        (str(_not_gzip(tmp_path / "c.txt.gz")), "c.txt.gz: not a readable gzip file"),
    ):
        out = tmp_path / "enc"
        done = subprocess.run(
            [sys.executable, "-c", "from lstmkit.cli import main; main()", "classify",
             "pretrain", corpus, "--out", str(out), "--no-progress"],
            capture_output=True, text=True, timeout=120, preexec_fn=cap,
        )  # fmt: skip
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and match in lines[0], done.stderr
        assert not out.exists()


def test_cli_train_with_an_incompatible_pretrained_folder(pretrained, tmp_path: Path) -> None:
    _, path = pretrained
    texts, labels = make_labelled(60)
    pd.DataFrame({"text": texts, "label": labels}).to_csv(tmp_path / "l.csv", index=False)
    for extra, match in (
        (["--hidden-size", "32"], "hidden_size=16 but hidden_size=32"),
        (["--vocab-size", "999"], "vocab_size=200 but vocab_size=999"),
    ):
        code, text = _run(
            ["classify", "train", str(tmp_path / "l.csv"), "--pretrained", str(path), "--out",
             str(tmp_path / "m"), "--no-progress", *extra]
        )  # fmt: skip
        assert code == 2 and match in text, text
        assert not (tmp_path / "m").exists()
    code, text = _run(
        ["classify", "train", str(tmp_path / "l.csv"), "--pretrained", str(tmp_path / "none"),
         "--out", str(tmp_path / "m"), "--no-progress"]
    )  # fmt: skip
    assert code == 2 and "does not exist" in text


def test_killed_pretraining_resumes_and_ends_with_the_uninterrupted_encoder(
    tmp_path: Path, kill_at_first_checkpoint
) -> None:
    """SIGKILL `classify pretrain --checkpoint-dir` after its first checkpoint (end of
    epoch 1 of 4), rerun the same command: the stream picks up at the right epoch and the
    encoder equals that of a run never interrupted (same seed)."""
    import subprocess
    import sys

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(make_corpus(400)))

    def argv(out: Path, ckpt: Path) -> list[str]:
        return [sys.executable, "-c", "from lstmkit.cli import main; main()", "classify",
                "pretrain", str(corpus), "--out", str(out), "--embedding-dim", "8",
                "--hidden-size", "8", "--bidirectional", "--vocab-size", "100", "--max-epochs", "4",
                "--batch-size", "16", "--no-progress", "--checkpoint-dir", str(ckpt)]  # fmt: skip

    kill_at_first_checkpoint(argv(tmp_path / "enc", tmp_path / "ckpt"), tmp_path / "ckpt")
    assert not (tmp_path / "enc").exists()  # the killed run wrote no encoder
    for out, ckpt in (("enc", "ckpt"), ("ref", "ckpt_ref")):
        done = subprocess.run(argv(tmp_path / out, tmp_path / ckpt), capture_output=True,
                              text=True, timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stderr
    got, want = _load(tmp_path / "enc"), _load(tmp_path / "ref")
    assert [r["epoch"] for r in got.history] == [0, 1, 2, 3]
    for a, b in zip(got.history, want.history, strict=True):
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-5)
    for name, tensor in want.state.items():
        torch.testing.assert_close(got.state[name], tensor, rtol=1e-5, atol=1e-6)


def test_pretraining_killed_mid_epoch_resumes_exactly_and_says_so(
    tmp_path: Path, kill_at_first_checkpoint
) -> None:
    """SIGKILL `classify pretrain --checkpoint-every-n-steps 7` at its first checkpoint
    (step 7 of a 24-batch epoch), rerun the same command: it says where it resumed and
    ends with the weights, losses, token counts and training curve of a run never
    interrupted; every epoch's seconds are measured (they were NaN)."""
    import re
    import subprocess
    import sys

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(make_corpus(400)))  # 396 training texts: 24 batches of 16

    def argv(out: Path, ckpt: Path) -> list[str]:
        return [sys.executable, "-c", "from lstmkit.cli import main; main()", "classify",
                "pretrain", str(corpus), "--out", str(out), "--embedding-dim", "8",
                "--hidden-size", "8", "--bidirectional", "--vocab-size", "100", "--max-epochs", "2",
                "--batch-size", "16", "--no-progress", "--checkpoint-dir", str(ckpt),
                "--checkpoint-every-n-steps", "7"]  # fmt: skip

    kill_at_first_checkpoint(argv(tmp_path / "enc", tmp_path / "ckpt"), tmp_path / "ckpt")
    ckpt = torch.load(tmp_path / "ckpt" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 7 and ckpt["epoch"] == 0  # the kill landed mid-epoch
    outputs = {}
    for out, folder in (("enc", "ckpt"), ("ref", "ckpt_ref")):
        done = subprocess.run(argv(tmp_path / out, tmp_path / folder), capture_output=True,
                              text=True, timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stderr
        outputs[out] = " ".join(done.stdout.split())  # rich may wrap the line
    assert re.search(
        r"resumed from the checkpoint in \S+ckpt at step 7 \(in epoch 1, after 7 of its 24 "
        r"batches\)",
        outputs["enc"],
    ), outputs["enc"]
    assert "resumed" not in outputs["ref"]
    got, want = _load(tmp_path / "enc"), _load(tmp_path / "ref")
    assert got.info.resumed_at_step == 7 and want.info.resumed_at_step is None
    for name, tensor in want.state.items():
        torch.testing.assert_close(got.state[name], tensor, rtol=0, atol=1e-6)
    assert [r["epoch"] for r in got.history] == [0, 1]
    per_epoch = want.info.train_tokens_per_epoch
    for a, b in zip(got.history, want.history, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6, abs=0)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-6, abs=0)
        assert a["tokens"] == b["tokens"]
        assert math.isfinite(a["seconds"]) and a["seconds"] > 0
    # the token history counts every training token once per epoch: its own counts
    assert 0.9 * per_epoch <= want.history[0]["tokens"] <= per_epoch
    assert want.history[1]["tokens"] == pytest.approx(2 * want.history[0]["tokens"], rel=0.05)
    assert [r["step"] for r in got.steps] == [r["step"] for r in want.steps] == [20.0, 40.0]
    for a, b in zip(got.steps, want.steps, strict=True):
        assert a["tokens"] == b["tokens"]
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6, abs=0)
    assert " nan " not in outputs["ref"].lower()  # the table's seconds column


def test_no_step_checkpoint_after_an_epochs_last_batch(tmp_path: Path) -> None:
    """A step checkpoint after an epoch's last batch would be resumed by Lightning as a
    finished epoch whose validation and history row never came: the end-of-epoch
    checkpoint, written after validation, covers that batch instead."""
    import sys

    import lightning as L

    sys.path.insert(0, str(Path(__file__).parent))
    from test_training import Linear, _cfg, _loaders

    from lstmkit.training import fit

    path = tmp_path / "ckpt" / "last.ckpt"
    at_epoch_end: list[int] = []

    class Spy(L.Callback):  # runs before the end-of-epoch checkpoint is written
        def on_train_epoch_end(self, trainer, pl_module) -> None:
            at_epoch_end.append(int(torch.load(path, weights_only=True)["global_step"]))

    train, val = _loaders()  # 4 batches per epoch
    model = Linear()
    model.configure_callbacks = lambda: [Spy()]
    fit(model, train, val, _cfg(max_epochs=2, checkpoint_dir=str(path.parent),
                                checkpoint_every_n_steps=2))  # fmt: skip
    assert at_epoch_end == [2, 6]  # not 4 and 8: those steps end their epochs
    saved = torch.load(path, weights_only=True)
    assert saved["global_step"] == 8 and saved["epoch"] == 1


def test_fine_tuning_may_cut_texts_differently_from_pretraining(pretrained, tmp_path) -> None:
    _, path = pretrained
    enc = _load(path)
    texts, labels = make_labelled(100)
    long_texts = [t + " " + " ".join(["the ball"] * 30) for t in texts]
    clf = TextClassifier(max_length=7, keep="head", max_epochs=1, batch_size=16)
    clf.fit(long_texts, labels, pretrained=path, progress=False)
    assert (clf.config.tokenizer.max_length, clf.config.tokenizer.keep) == (7, "head")
    # the vocabulary is the encoder's; only the cut differs
    assert clf.tokenizer.tokenizer.get_vocab() == enc.tokenizer.tokenizer.get_vocab()
    assert max(len(ids) for ids in clf.tokenizer.encode(long_texts)) == 7
    clf.save(tmp_path / "m")
    again = TextClassifier.load(tmp_path / "m")
    assert again.config.tokenizer.max_length == 7
    assert again.predict(long_texts) == clf.predict(long_texts)


# ------------------------------------------------------------------ the package
def test_old_import_path_warns_and_still_loads(pretrained) -> None:
    _, path = pretrained
    import lstmkit.tasks.text_classification.pretrain as old

    with pytest.warns(DeprecationWarning, match="lstmkit.tasks.language_model"):
        legacy = old.PretrainedEncoder
    with pytest.warns(DeprecationWarning, match="moved to lstmkit.tasks.language_model"):
        assert old.PretrainSettings is PretrainSettings
    enc = legacy.load(path)  # the old one-argument form
    assert isinstance(enc, PretrainedEncoder) and enc.config.hidden_size == 16
    with pytest.raises(AttributeError):
        old.no_such_name  # noqa: B018


def test_language_model_package_imports_nothing_of_the_text_classifier() -> None:
    """The classifier uses the language model, never the other way round."""
    import ast

    import lstmkit.tasks.language_model as lm

    for file in Path(lm.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(file.read_text())):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            for name in names:
                assert not name.startswith("lstmkit.tasks.text_classification"), (file, name)
