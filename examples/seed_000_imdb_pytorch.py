"""Seed 000 on lstmkit: IMDB sentiment with a 2-layer LSTM (PyTorch program rewritten).

The seed tokenises the reviews, feeds Embedding(100) -> 2-layer LSTM(hidden 32,
dropout 0.5) -> last step -> dropout -> Linear(1), trains with BCE-with-logits
and Adam for 5 epochs in batches of 64, prints the loss per epoch and the test
accuracy. Here that is the ``"seed000"`` preset of `lstmkit.TextClassifier`
(batches bucketed by length, the last *real* step of each review).

    python examples/seed_000_imdb_pytorch.py                # the seed's setting
    python examples/seed_000_imdb_pytorch.py --quick        # 2,000 / 1,000 reviews, 1 epoch
    python examples/seed_000_imdb_pytorch.py --data path/to/aclImdb_v1.tar.gz
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from lstmkit import TextClassifier
from lstmkit.data.imdb import download_imdb, load_imdb_splits
from lstmkit.errors import LstmkitError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "aclImdb_v1.tar.gz"


def imdb_path(given: Path | None) -> Path:
    """The archive: --data, else the shared copy, else a download (checked by SHA-256)."""
    if given is not None:
        return given
    return SHARED if SHARED.exists() else download_imdb()


def subset(data, n: int, seed: int = 0):
    """A random subset of n reviews (both classes)."""
    idx = np.random.default_rng(seed).permutation(len(data))[:n]
    return data.subset(sorted(idx.tolist()))


def main() -> None:
    parser = argparse.ArgumentParser(description="Seed 000: IMDB sentiment, 2-layer LSTM.")
    parser.add_argument("--data", type=Path, default=None, help="aclImdb_v1.tar.gz or aclImdb/")
    parser.add_argument("--quick", action="store_true", help="small subset, 1 epoch")
    parser.add_argument("--epochs", type=int, default=None)
    args = parser.parse_args()

    splits = load_imdb_splits(imdb_path(args.data))
    train, test = splits["train"], splits["test"]
    overrides = {}
    if args.quick:
        train, test = subset(train, 2000), subset(test, 1000)
        overrides = {"max_epochs": 1, "max_length": 300}
    if args.epochs:
        overrides["max_epochs"] = args.epochs
    clf = TextClassifier("seed000", **overrides)
    clf.fit(train.texts, train.labels)
    for row in clf.history:
        print(f"Epoch: {int(row['epoch']) + 1:02}, Loss: {row['train_loss']:.6f}")
    result = clf.evaluate(test.texts, test.labels)
    print(f"Test Accuracy: {result.accuracy * 100:.2f}% ({result.n} reviews)")


if __name__ == "__main__":
    try:
        main()
    except LstmkitError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
