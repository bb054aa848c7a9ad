"""Streaming batched prediction: `lstmkit classify predict FILE --output OUT` on 100,000 texts.

Trains a small classifier on generated texts, writes files of 10,000 and 100,000 generated
texts (CSV, about 100 words each), and runs the real command on each in a fresh process,
recording wall time and the process's peak resident memory (VmHWM). Streaming
keeps one chunk in memory, so the peak should not grow with the file; for scale, the same
100,000 texts predicted in one piece (`TextClassifier.predict_table` on the whole file)
are measured too. Writes its section of benchmarks/RESULTS.md (``predict-stream``).

    python benchmarks/predict_stream.py
    python benchmarks/predict_stream.py --sizes 10000,100000 --no-write
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_section

from lstmkit import TextClassifier

SRC = Path(__file__).resolve().parents[1] / "src"
WORDS = [f"w{i}" for i in range(5000)]
CUES = {"pos": ["great", "superb", "loved"], "neg": ["awful", "boring", "hated"]}

#: runs in the child: the CLI's own entry point, then the peak RSS of this process. VmHWM
#: (the high-water mark of the process's own memory since exec), not ru_maxrss: Linux
#: carries the parent's peak into a child's ru_maxrss at exec, which made the child look
#: as large as this script holding the generated texts.
STREAM = """
import sys
from lstmkit.cli import main
sys.argv = ["lstmkit", "classify", "predict", "--model", sys.argv[1], sys.argv[2],
            "--output", sys.argv[3], "--no-progress", "--chunk-size", sys.argv[4]]
try:
    main()
except SystemExit as e:
    if e.code not in (0, None):
        raise
print(*[ln for ln in open("/proc/self/status") if ln.startswith("VmHWM")], file=sys.stderr)
"""
WHOLE = """
import sys
from lstmkit import TextClassifier
from lstmkit.data.text import texts_from_arguments
clf = TextClassifier.load(sys.argv[1])
clf.predict_table(texts_from_arguments([sys.argv[2]])).to_csv(sys.argv[3], index=False)
print(*[ln for ln in open("/proc/self/status") if ln.startswith("VmHWM")], file=sys.stderr)
"""


def make_texts(n: int, seed: int) -> tuple[list[str], list[str]]:
    """``n`` texts of 50..150 filler words with one sentiment cue, and their labels."""
    rng = random.Random(seed)
    texts, labels = [], []
    for _ in range(n):
        label = rng.choice(("neg", "pos"))
        words = rng.choices(WORDS, k=rng.randint(50, 150))
        words.insert(rng.randrange(len(words)), rng.choice(CUES[label]))
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels


def run_child(code: str, *args: str) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of ``python -c code args`` in a fresh process."""
    start = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, check=False
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"child failed: {done.stderr.strip().splitlines()[-1:]}")
    kb = [ln for ln in done.stderr.splitlines() if ln.startswith("VmHWM")][-1].split()[1]
    return seconds, int(kb) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="10000,30000,100000", help="texts per file, comma-separated"
    )
    parser.add_argument("--chunk-size", type=int, default=2000)
    parser.add_argument("--no-whole", action="store_true", help="skip the one-piece comparison")
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        texts, labels = make_texts(2000, seed=0)
        clf = TextClassifier(
            embedding_dim=32, hidden_size=32, max_epochs=2, vocab_size=6000, max_length=200
        )
        clf.fit(texts, labels, progress=False, baseline=False)
        model = clf.save(tmp / "model")
        for n in sizes:
            data = tmp / f"texts_{n}.csv"
            pd.DataFrame({"text": make_texts(n, seed=n)[0]}).to_csv(data, index=False)
            mb = data.stat().st_size / 1e6
            seconds, rss = run_child(
                STREAM, str(model), str(data), str(tmp / "out.csv"), str(args.chunk_size)
            )
            with open(tmp / "out.csv", encoding="utf-8") as fh:
                out_rows = sum(1 for _ in fh) - 1
            assert out_rows == n, (out_rows, n)
            rows.append(("streamed (`--output`)", n, mb, seconds, rss))
            print(rows[-1], flush=True)
        if not args.no_whole:
            n = max(sizes)
            data = tmp / f"texts_{n}.csv"
            seconds, rss = run_child(WHOLE, str(model), str(data), str(tmp / "whole.csv"))
            rows.append(("whole file in memory (`predict_table`)", n, data.stat().st_size / 1e6,
                         seconds, rss))  # fmt: skip
            print(rows[-1], flush=True)
    lines = [
        "## Streaming batched prediction (`predict_stream`)",
        "",
        "`lstmkit classify predict FILE --model DIR --output OUT.csv` on generated CSV files",
        "(50-150 words a text), a small model (embedding 32, LSTM 32, trained in the script),",
        f"chunks of {args.chunk_size:,} texts; each run is a fresh process, peak RSS is its",
        "VmHWM (Python, torch and the model included); wall time includes starting Python",
        "and loading the model. The output is written to a temporary file renamed at the end.",
        "",
        "| run | texts | file (MB) | wall (s) | texts/s | peak RSS (MB) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, n, mb, seconds, rss in rows:
        lines.append(
            f"| {name} | {n:,} | {mb:.1f} | {seconds:.1f} | {n / seconds:,.0f} | {rss:,.0f} |"
        )
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section("predict-stream", body)


if __name__ == "__main__":
    main()
