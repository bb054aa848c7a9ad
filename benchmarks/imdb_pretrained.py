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

from lstmkit.tasks.text_classification import TextClassifier
from lstmkit.tasks.text_classification.pretrain import PretrainedEncoder

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
    "epochs": 2,
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
        epochs=args.epochs,
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
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.stage == "pretrain":
        stage_pretrain(args)
    else:
        stage_finetune(args)


def stage_finetune(args: argparse.Namespace) -> None:
    raise SystemExit("finetune stage: see below")


if __name__ == "__main__":
    main()

_ = (PretrainedEncoder, write_section)
