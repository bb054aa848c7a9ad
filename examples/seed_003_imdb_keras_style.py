"""Seed 003 on lstmkit: the Keras IMDB program (10,000 words, length 200, LSTM 128).

The seed keeps the 10,000 most frequent words, pads/cuts each review to 200
words (keeping the end, Keras' default), trains Embedding(128) -> LSTM(128) ->
Dense(1, sigmoid) with Adam and binary cross-entropy for 5 epochs in batches of
64 with 20% of the training reviews held out for validation, reports the test
accuracy (the article expects 85%+) and plots accuracy and loss side by side.
Here that is the ``"seed003"`` preset; the figure is written to training.png.

    python examples/seed_003_imdb_keras_style.py                 # the seed's setting
    python examples/seed_003_imdb_keras_style.py --quick         # 3,000 / 1,000 reviews, 2 epochs
    python examples/seed_003_imdb_keras_style.py --out runs/seed003   # also save the model
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from lstmkit import TextClassifier
from lstmkit.data.imdb import download_imdb, load_imdb_splits
from lstmkit.errors import LstmkitError
from lstmkit.plots.curves import plot_training_curves

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "aclImdb_v1.tar.gz"


def main() -> None:
    parser = argparse.ArgumentParser(description="Seed 003: IMDB sentiment, Keras-style LSTM.")
    parser.add_argument("--data", type=Path, default=None, help="aclImdb_v1.tar.gz or aclImdb/")
    parser.add_argument("--quick", action="store_true", help="small subset, 2 epochs")
    parser.add_argument("--plot", type=Path, default=Path("training.png"), help="figure to write")
    parser.add_argument("--out", type=Path, default=None, help="save the trained model here")
    args = parser.parse_args()

    path = args.data or (SHARED if SHARED.exists() else download_imdb())
    splits = load_imdb_splits(path)
    train, test = splits["train"], splits["test"]
    overrides = {}
    if args.quick:
        rng = np.random.default_rng(0)
        train = train.subset(sorted(rng.permutation(len(train))[:3000].tolist()))
        test = test.subset(sorted(rng.permutation(len(test))[:1000].tolist()))
        overrides = {"max_epochs": 2}
    clf = TextClassifier("seed003", **overrides)
    clf.fit(train.texts, train.labels)
    for row in clf.history:
        print(
            f"epoch {int(row['epoch']) + 1}: loss {row['train_loss']:.4f} "
            f"acc {row['train_acc']:.4f} - val_loss {row['val_loss']:.4f} "
            f"val_acc {row['val_acc']:.4f}"
        )
    result = clf.evaluate(test.texts, test.labels)
    print(f"Test accuracy: {result.accuracy:.4f} ({result.n} reviews)")
    plot_training_curves(clf.history, args.plot, metrics=("acc", "loss"), title="seed 003")
    print(f"wrote {args.plot}")
    if args.out:
        clf.save(args.out)
        print(f"model saved to {args.out}")


if __name__ == "__main__":
    try:
        main()
    except LstmkitError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
