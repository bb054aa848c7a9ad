"""IMDB sentiment benchmark: train a TextClassifier from scratch, report test accuracy and speed.

Trains on the 25,000 IMDB training reviews (a stratified part held out for
validation: best epoch, and the only data used to choose the settings) and
scores the 25,000 test reviews once. Reports test accuracy and macro F1,
training wall time, training tokens per second, the exact configuration, and
inference throughput (reviews per second in batches and one at a time). Writes
its section of benchmarks/RESULTS.md (``imdb`` / ``imdb-<preset>``; with
``--precision bf16-mixed`` its own section ``...-bf16-mixed``, beside the float32 one).

    python benchmarks/imdb.py                      # the "imdb" preset, full data
    python benchmarks/imdb.py --preset seed003     # seed 003's Keras program
    python benchmarks/imdb.py --preset seed003 --precision bf16-mixed   # bfloat16 autocast
    python benchmarks/imdb.py --subset 5000 --no-test --no-write   # tune on validation only
    python benchmarks/imdb.py --set hidden_size=96 --set keep=tail --no-test --no-write

How the "imdb" preset was chosen (validation accuracy on 1,000 held-out reviews of a
10,000-review subset of IMDB train, ``--subset 10000 --no-test``, 1 thread):
BiLSTM 64, lr 2e-3, batch 64, dropout 0.3/0.3, 4 epochs: 83.8%; the same with lr 4e-3,
batch 32, embedding dropout 0.2: 87.1%; with dropout 0.4/0.5 and 3 epochs: 86.0%;
BiLSTM 128, lr 4e-3, batch 32, dropout 0.2/0.3, 3 epochs: 88.0% (chosen).
Use ``--threads 1`` on a busy machine: with two OpenMP threads on two shared cores a
training step was measured 30x slower than with one.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_section

from lstmkit.data.imdb import load_imdb_splits
from lstmkit.tasks.text_classification import TextClassifier

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "aclImdb_v1.tar.gz"
PUBLISHED = (
    "Published IMDB test accuracies for scale: Keras bidirectional-LSTM example about 81.5%; "
    "PyTorch BiLSTM tutorial with GloVe vectors 86.2%; LSTM from random initialisation 86.5% "
    "(Dai & Le 2015); Maas et al. 2011 88.9%; SA-LSTM pre-trained on unlabelled reviews 92.8%."
)


PRECISION_NOTES = {
    "32": "float32",
    "bf16-mixed": "bf16-mixed (bfloat16 autocast, float32 weights; prediction in float32)",
}


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _subset(data, n: int, seed: int):
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(data), size=min(n, len(data)), replace=False))
    return data.subset(idx.tolist())


def throughput(clf: TextClassifier, texts: list[str], single: int = 200) -> tuple[float, float]:
    """Reviews per second predicted in batches of 256 and one review at a time."""
    start = time.perf_counter()
    clf.predict_proba(texts, batch_size=256)
    batch_rate = len(texts) / (time.perf_counter() - start)
    start = time.perf_counter()
    for text in texts[:single]:
        clf.predict_proba([text])
    single_rate = min(single, len(texts)) / (time.perf_counter() - start)
    return batch_rate, single_rate


def _print_epoch(row: dict) -> None:
    shown = {k: round(v, 4) for k, v in row.items() if k != "epoch"}
    print(f"epoch {int(row['epoch']) + 1}: {shown}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="aclImdb_v1.tar.gz or aclImdb/"
    )
    parser.add_argument(
        "--preset", default="imdb", help="TextClassifier preset (imdb, seed003, seed000)"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field (JSON value), repeatable",
    )
    parser.add_argument(
        "--subset", type=int, default=0, help="use only N training reviews (tuning)"
    )
    parser.add_argument(
        "--precision",
        default="32",
        choices=["32", "bf16-mixed"],
        help="training precision (Lightning's): 32 or bf16-mixed; bf16-mixed results go "
        "into their own RESULTS.md section",
    )
    parser.add_argument("--no-test", action="store_true", help="skip the test set (tuning)")
    parser.add_argument("--no-write", action="store_true", help="do not write RESULTS.md")
    parser.add_argument("--save", type=Path, default=None, help="save the trained model here")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch intra-op threads (0: default)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = _value(value)
    if "precision" in overrides:
        parser.error("give the precision with --precision, not --set precision=...")
    clf = TextClassifier(args.preset, precision=args.precision, **overrides)

    start = time.perf_counter()
    splits = load_imdb_splits(args.data, ("train",) if args.no_test else ("train", "test"))
    load_seconds = time.perf_counter() - start
    train = splits["train"]
    if args.subset:
        train = _subset(train, args.subset, seed=1)
    print(
        f"loaded {len(train)} training reviews in {load_seconds:.1f}s; training precision "
        f"{args.precision}",
        flush=True,
    )

    start = time.perf_counter()
    clf.fit(train.texts, train.labels, progress=not args.no_progress, on_epoch=_print_epoch)
    train_seconds = time.perf_counter() - start
    info = clf.train_info
    best = clf.history[info["best_epoch"]] if clf.history else {}
    print(json.dumps({"train_seconds": train_seconds, **info, "best": best}, indent=1), flush=True)
    if args.save:
        clf.save(args.save)
    if args.no_test:
        return

    test = splits["test"]
    result = clf.evaluate(test.texts, test.labels, batch_size=256)
    batch_rate, single_rate = throughput(clf, test.texts[::25])
    print(f"test accuracy {result.accuracy:.4f} macro F1 {result.macro_f1:.4f}", flush=True)
    for part in ("baseline", "combined"):
        if getattr(result, part, None) is not None:
            print(f"{part} test accuracy {getattr(result, part).accuracy:.4f}", flush=True)
    print(f"inference: {batch_rate:.0f} reviews/s batched, {single_rate:.1f} reviews/s single")
    if args.no_write or args.subset:
        if args.subset:
            print("subset run: RESULTS.md left alone (its figures are for the full data only)")
        return

    cfg = clf.config.to_dict()
    has_val = info["val_texts"] > 0
    rows = [
        "| figure | value |",
        "| --- | --- |",
        f"| test accuracy ({result.n:,} reviews) | **{result.accuracy * 100:.2f}%** |",
        f"| test macro F1 | {result.macro_f1 * 100:.2f}% |",
        *(
            [
                "| bag-of-words baseline on the same split (TF-IDF 1-2-grams + logistic "
                f"regression), test accuracy | {result.baseline.accuracy * 100:.2f}% |"
            ]
            if getattr(result, "baseline", None) is not None
            else []
        ),
        *(
            [
                f"| the LSTM mixed with the baseline (`--combined`, weight "
                f"{clf.baseline.network_weight:.2f} chosen on the validation split), test "
                f"accuracy | {result.combined.accuracy * 100:.2f}% |"
            ]
            if getattr(result, "combined", None) is not None
            else []
        ),
        (
            f"| validation accuracy (best epoch {info['best_epoch'] + 1}) | "
            f"{best.get('val_acc', float('nan')) * 100:.2f}% |"
            if has_val
            else f"| weights kept | epoch {info['best_epoch'] + 1} of {info['epochs_run']} "
            "(lowest training loss: no validation split) |"
        ),
        f"| training / validation reviews | {info['train_texts']:,} / {info['val_texts']:,} |",
        f"| training wall time (tokenizer + epochs) | {train_seconds / 60:.1f} min "
        f"({train_seconds:.0f} s, {info['epochs_run']} epochs) |",
        f"| training throughput (epochs incl. validation) | "
        f"{info['tokens_per_second']:,.0f} tokens/s |",
        f"| scoring the {result.n:,} test reviews | {result.seconds:.0f} s |",
        f"| inference, batches of 256 | {batch_rate:,.0f} reviews/s |",
        f"| inference, one review at a time | {single_rate:,.1f} reviews/s |",
        f"| vocabulary | {info['vocab_size']:,} ids |",
        f"| training precision | {PRECISION_NOTES[args.precision]} |",
    ]
    columns = ["train_loss", "train_acc"] + (["val_loss", "val_acc"] if has_val else [])
    history = [
        "| epoch | " + " | ".join(c.replace("_", " ") for c in columns) + " |",
        "| --- " * (len(columns) + 1) + "|",
    ]
    for row in clf.history:
        values = " | ".join(f"{row.get(c, float('nan')):.4f}" for c in columns)
        history.append(f"| {int(row['epoch']) + 1} | {values} |")
    origin = (
        "settings chosen on a validation split of the training set"
        if args.preset == "imdb" or overrides
        else f"settings are seed program {args.preset[4:]}'s own (`PRESETS` in "
        "`lstmkit/tasks/text_classification/settings.py`)"
    )
    body = "\n".join(
        [
            f"### IMDB sentiment, preset `{args.preset}`"
            + (f" with overrides `{json.dumps(overrides)}`" if overrides else "")
            + ("" if args.precision == "32" else f", precision `{args.precision}`"),
            "",
            "Model trained from scratch (random initial embeddings, no pre-training) on the IMDB "
            f"training reviews; {origin}; the test set scored once.",
            "",
            *rows,
            "",
            *history,
            "",
            f"Configuration: `{json.dumps(cfg)}`",
            "",
            PUBLISHED,
        ]
    )
    write_section(section_name(args.preset, args.precision, overrides.get("rnn")), body)


def section_name(preset: str, precision: str, rnn: str | None = None) -> str:
    """RESULTS.md section of a run: ``imdb`` / ``imdb-<preset>``, plus ``-<rnn>`` for
    another recurrent layer (``--set rnn=slstm``) and ``-<precision>`` unless float32, so
    neither replaces the LSTM's float32 figures."""
    name = "imdb" if preset == "imdb" else f"imdb-{preset}"
    if rnn not in (None, "lstm"):
        name = f"{name}-{rnn}"
    return name if precision == "32" else f"{name}-{precision}"


if __name__ == "__main__":
    main()
