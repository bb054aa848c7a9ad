"""IMDB with pretraining: a language model on the unlabelled reviews, then fine-tuning.

Stage 1 (``--stage pretrain``) pretrains the encoder of a bidirectional LSTM text
classifier as a forward + backward language model on the IMDB archive's training
reviews and its 50,000 unlabelled reviews (never the test reviews), streamed from the
archive, under a wall-time budget, and saves the pretrained folder.

Stage 2 (``--stage finetune``) fine-tunes a classifier from that folder on the 25,000
labelled training reviews (a stratified 10% held out for validation: best epoch and
the only data used to choose settings), scores the 25,000 test reviews once, scores
the bag-of-words baseline (TF-IDF word 1-2-grams + logistic regression) on the same
split, and writes the ``imdb-pretrained`` section of RESULTS.md with both stages'
figures.

    python benchmarks/imdb_pretrained.py --stage pretrain --max-minutes 60
    python benchmarks/imdb_pretrained.py --stage finetune
    python benchmarks/imdb_pretrained.py --stage finetune --no-test --no-write   # tuning
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import command, write_section

from lstmkit.tasks.language_model import PretrainedEncoder
from lstmkit.tasks.text_classification import TextClassifier, TextClassifierConfig

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "aclImdb_v1.tar.gz"
DEFAULT_PRETRAINED = ROOT / "runs" / "imdb-pretrained"

#: the encoder pretrained (bidirectional LSTM, 1 layer) and its tokenizer
ENCODER = {
    "embedding_dim": 256,
    "hidden_size": 256,
    "num_layers": 1,
    "bidirectional": True,
    "rnn": "lstm",
    "tokenizer": {"kind": "word", "vocab_size": 40_000, "max_length": 400, "keep": "head_tail"},
}
#: fine-tuning settings (the classifier's own: pooling, dropouts, optimisation)
FINETUNE = {
    "pooling": "max+mean",
    "embedding_dropout": 0.2,
    "head_dropout": 0.3,
    "batch_size": 32,
    "max_epochs": 2,
    "lr": 1e-3,
    "lr_decay": "linear",
    "gradient_clip_val": 1.0,
    "val_fraction": 0.1,
    "seed": 0,
}


def _print_row(row: dict) -> None:
    shown = {k: round(v, 4) for k, v in row.items() if isinstance(v, float)}
    print(json.dumps(shown), flush=True)


def stage_pretrain(args: argparse.Namespace) -> None:
    clf = TextClassifier(**ENCODER, embedding_dropout=0.0, seed=args.seed)
    start = time.perf_counter()
    clf.pretrain(
        args.data,
        max_epochs=args.epochs,
        max_minutes=args.max_minutes,
        batch_size=64,
        lr=2e-3,
        gradient_clip_val=1.0,
        progress=args.progress,
        on_epoch=_print_row,
    )
    clf.save_pretrained(args.pretrained)
    info = clf.pretrained.info
    record = {
        "command": command(),
        "wall_seconds": time.perf_counter() - start,
        "threads": torch.get_num_threads(),
        "date": time.strftime("%Y-%m-%d"),
    }
    (Path(args.pretrained) / "benchmark.json").write_text(json.dumps(record, indent=1))
    print(json.dumps({"info": vars(info), **record}, indent=1, default=str))


def stage_finetune(args: argparse.Namespace) -> None:
    from imdb import PUBLISHED, throughput

    from lstmkit.data.imdb import load_imdb_splits

    encoder = PretrainedEncoder.load(args.pretrained, TextClassifierConfig)
    settings = {**FINETUNE, **args.overrides}
    clf = TextClassifier(**settings)
    splits = load_imdb_splits(args.data, ("train", "test") if args.test else ("train",))
    train = splits["train"]
    if args.subset:
        train = train.subset(list(range(0, len(train), max(len(train) // args.subset, 1))))
    start = time.perf_counter()
    clf.fit(
        train.texts,
        train.labels,
        pretrained=encoder,
        progress=args.progress,
        on_epoch=_print_row,
        baseline=args.baseline,
    )
    fit_seconds = time.perf_counter() - start
    info = clf.train_info
    best = clf.history[info["best_epoch"]]
    print(json.dumps({"fit_seconds": fit_seconds, **info, "best": best}, indent=1), flush=True)
    if args.save:
        clf.save(args.save)
    if not args.test:
        return
    test = splits["test"]
    result = clf.evaluate(test.texts, test.labels, batch_size=256)
    baseline = getattr(result, "baseline", None)
    batch_rate, single_rate = throughput(clf, test.texts[::25])
    print(f"test accuracy {result.accuracy:.4f} macro F1 {result.macro_f1:.4f}", flush=True)
    if baseline is not None:
        print(f"baseline test accuracy {baseline.accuracy:.4f}", flush=True)
    mixed = result.combined
    weight = None if clf.baseline is None else clf.baseline.network_weight
    if mixed is not None:
        print(f"combined (w={weight}) test accuracy {mixed.accuracy:.4f}", flush=True)
    if not args.write or args.subset:
        return
    pre = encoder.info
    bench = json.loads((Path(args.pretrained) / "benchmark.json").read_text())
    val_ppl = pre.val_perplexity
    stopped = ", stopped by the time budget" if pre.stopped_by_time else ""
    rows = [
        "| figure | value |",
        "| --- | --- |",
        f"| test accuracy, fine-tuned LSTM alone ({result.n:,} reviews) | "
        f"**{result.accuracy * 100:.2f}%** |",
        f"| test macro F1 | {result.macro_f1 * 100:.2f}% |",
    ]
    if baseline is not None:
        kind = {"tfidf": "TF-IDF 1-2-grams + logistic regression",
                "nbsvm": "NBSVM on 1-2-grams, Wang & Manning 2012"}[args.baseline]  # fmt: skip
        rows.append(
            f"| bag-of-words baseline on the same split ({kind}), test accuracy | "
            f"{baseline.accuracy * 100:.2f}% |"
        )
    if mixed is not None:
        val_mixed = clf.evaluate(clf.validation.texts, clf.validation.labels).combined
        rows += [
            f"| LSTM + bag-of-words mixture (`--combined`: {weight:.2f} x LSTM + "
            f"{1 - weight:.2f} x baseline probabilities, weight chosen on the validation "
            f"split), test accuracy | **{mixed.accuracy * 100:.2f}%** |",
            f"| mixture, validation accuracy (its weight was fitted there) | "
            f"{val_mixed.accuracy * 100:.2f}% |",
        ]
    rows += [
        f"| validation accuracy (best epoch {info['best_epoch'] + 1}) | "
        f"{best['val_acc'] * 100:.2f}% |",
        f"| pretraining corpus | IMDB train + unsup reviews: {pre.texts:,} texts "
        f"({pre.val_texts:,} held out), {pre.train_tokens_per_epoch:,} tokens per epoch |",
        f"| pretraining wall time | {bench['wall_seconds'] / 60:.1f} min (tokenizer "
        f"{pre.tokenizer_seconds:.0f} s, corpus scan {pre.scan_seconds:.0f} s, training "
        f"{pre.fit_seconds / 60:.1f} min{stopped}) |",
        f"| pretraining throughput | {pre.tokens_per_second:,.0f} tokens/s "
        f"({bench['threads']} threads) |",
        f"| language-model validation perplexity | {val_ppl:.1f} |",
        f"| fine-tuning wall time | {fit_seconds / 60:.1f} min ({info['epochs_run']} epochs) |",
        f"| fine-tuning throughput (epochs incl. validation) | "
        f"{info['tokens_per_second']:,.0f} tokens/s |",
        f"| scoring the {result.n:,} test reviews | {result.seconds:.0f} s |",
        f"| inference, batches of 256 | {batch_rate:,.0f} reviews/s |",
        f"| inference, one review at a time | {single_rate:,.1f} reviews/s |",
    ]
    history = ["| epoch | train loss | train acc | val loss | val acc |", "| --- " * 5 + "|"]
    for row in clf.history:
        values = " | ".join(
            f"{row.get(c, float('nan')):.4f}"
            for c in ("train_loss", "train_acc", "val_loss", "val_acc")
        )
        history.append(f"| {int(row['epoch']) + 1} | {values} |")
    lm = ["| pretraining epoch | tokens seen | train perplexity | val perplexity |",
          "| --- | --- | --- | --- |"]  # fmt: skip
    seen = pre.tokens_per_second * pre.fit_seconds  # a run older than per-epoch counts
    for row in encoder.history:
        lm.append(
            f"| {int(row['epoch']) + 1} | {int(row.get('tokens', seen)):,} | "
            f"{row.get('train_perplexity', float('nan')):.1f} | "
            f"{row.get('val_perplexity', float('nan')):.1f} |"
        )
    body = "\n".join(
        [
            "### IMDB sentiment, pretrained on the unlabelled reviews, then fine-tuned",
            "",
            "Encoder pretrained as a forward + backward LSTM language model on the IMDB "
            "training and unlabelled reviews (no test reviews, no outside text or vectors), "
            "then fine-tuned on the labelled training reviews; settings and the best epoch "
            "chosen on the validation split"
            + ("." if args.note else "; the test set scored once.")
            + (f" {args.note}" if args.note else ""),
            "",
            *rows,
            "",
            *lm,
            "",
            *history,
            "",
            f"Encoder: `{json.dumps(encoder.config.to_dict())}`",
            f"Pretraining: `{json.dumps(encoder.settings.to_dict())}`",
            f"Fine-tuning: `{json.dumps(clf.config.to_dict())}`",
            "",
            PUBLISHED,
            "",
            f"Pretraining command: `{bench['command']}` (date {bench['date']}); the "
            "fine-tuning command follows.",
        ]
    )
    write_section("imdb-pretrained", body)


def _override(text: str) -> tuple[str, object]:
    key, _, value = text.partition("=")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", choices=("pretrain", "finetune"), required=True)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--pretrained", type=Path, default=DEFAULT_PRETRAINED)
    parser.add_argument("--max-minutes", type=float, default=60.0)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    parser.add_argument("--no-test", dest="test", action="store_false")
    parser.add_argument("--no-write", dest="write", action="store_false")
    parser.add_argument("--subset", type=int, default=0, help="fine-tune on N reviews (tuning)")
    parser.add_argument("--save", type=Path, default=None, help="save the fine-tuned model")
    parser.add_argument(
        "--baseline",
        choices=("tfidf", "nbsvm"),
        default="tfidf",
        help="the bag-of-words baseline fitted beside (and mixed with) the LSTM",
    )
    parser.add_argument("--note", default="", help="disclosure appended to the section text")
    parser.add_argument("--set", dest="overrides", action="append", type=_override, default=[])
    args = parser.parse_args()
    args.overrides = dict(args.overrides)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.stage == "pretrain":
        stage_pretrain(args)
    else:
        stage_finetune(args)


if __name__ == "__main__":
    main()
