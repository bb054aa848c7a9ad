"""IMDB bag-of-words baseline: the figure every text classifier result is printed beside.

Fits lstmkit's `BagOfWordsBaseline` (TF-IDF word 1-2-grams, sublinear tf, logistic
regression C=10, scikit-learn; and its NBSVM kind) on the 25,000 IMDB training reviews
and scores the 25,000 test reviews once. Reports test accuracy and macro F1, the fit
time (vectorising plus the regression) and the size of the saved ``baseline/`` folder,
for the default feature cap, for reference without a cap, and for NBSVM. Writes its
section of benchmarks/RESULTS.md (``text-baseline``).

    python benchmarks/text_baseline.py
    python benchmarks/text_baseline.py --no-write     # print only
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_section

from lstmkit.data.imdb import load_imdb_splits
from lstmkit.tasks.text_classification.baseline import BagOfWordsBaseline, BaselineSettings

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "aclImdb_v1.tar.gz"


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def measure(train, test, settings: BaselineSettings) -> dict:
    """Fit on ``train``, score ``test``; the figures of one row."""
    classes = sorted(set(train.labels))
    y_train = [classes.index(y) for y in train.labels]
    y_test = [classes.index(y) for y in test.labels]
    start = time.perf_counter()
    baseline = BagOfWordsBaseline(settings).fit(train.texts, y_train, len(classes))
    fit_seconds = time.perf_counter() - start
    evaluation = baseline.evaluate(test.texts, y_test, classes)
    with tempfile.TemporaryDirectory() as tmp:
        size = _folder_bytes(baseline.save(Path(tmp) / "baseline"))
    return {
        "features": len(baseline.vocabulary),
        "accuracy": evaluation.accuracy,
        "macro_f1": evaluation.macro_f1,
        "fit_seconds": fit_seconds,
        "score_seconds": evaluation.seconds,
        "size_mb": size / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    args = parser.parse_args()
    start = time.perf_counter()
    splits = load_imdb_splits(args.data, ("train", "test"))
    print(f"read IMDB in {time.perf_counter() - start:.1f} s", flush=True)
    rows = []
    default = BaselineSettings()
    uncapped = BaselineSettings(max_features=10**9)
    nbsvm = BaselineSettings(kind="nbsvm")
    for name, settings in (
        (f"TF-IDF, default (min_df {default.min_df}, at most {default.max_features:,} n-grams)",
         default),
        ("TF-IDF, no feature cap (min_df 2)", uncapped),
        (f"NBSVM (`baseline=\"nbsvm\"`, C=1, at most {nbsvm.max_features:,} n-grams)", nbsvm),
    ):  # fmt: skip
        row = measure(splits["train"], splits["test"], settings)
        row["name"] = name
        rows.append(row)
        print(row, flush=True)
    lines = [
        "## IMDB bag-of-words baseline (`text_baseline`)",
        "",
        "TF-IDF word 1-2-grams (sublinear tf, smoothed idf, L2 rows) + logistic regression",
        "(C=10, lbfgs), `lstmkit.tasks.text_classification.baseline.BagOfWordsBaseline`, the",
        "baseline `TextClassifier.fit` trains beside every model and `classify train` /",
        "`evaluate` print next to it. Fit on the 25,000 training reviews, scored once on the",
        "25,000 test reviews. Fit time is vectorising plus the regression, on a machine shared",
        "with other jobs. The issue's reference figure: 90.6% in 28 s. The NBSVM row is",
        "Wang & Manning's (2012) method in its logistic-regression form on 0/1 1-2-gram",
        "presence (they report 91.2% with an SVM), fitted and scored the same way.",
        "",
        "| features | n-grams kept | test accuracy | macro F1 | fit (s) | scoring 25k (s) "
        "| saved `baseline/` (MB) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['features']:,} | {r['accuracy']:.2%} | {r['macro_f1']:.4f} | "
            f"{r['fit_seconds']:.1f} | {r['score_seconds']:.1f} | {r['size_mb']:.1f} |"
        )
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section("text-baseline", body)


if __name__ == "__main__":
    main()
