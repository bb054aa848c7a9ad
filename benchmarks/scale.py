"""Thousands of series: `lstmkit forecast` on 1,000, 10,000 and 100,000 synthetic daily series.

Generates daily series of 200 points (a level, a trend, a weekly season and noise per
series), writes them as a long Parquet table (id, date, value; ids dictionary-encoded,
dates as timestamps) and runs the real command on each in a fresh process::

    lstmkit forecast FILE --id-col id --hidden-size 16 --max-epochs 1 --no-progress --out OUT

which fits one epoch, evaluates the held-out last 12 days of every series beside the
naive baselines, forecasts the 12 days after the data and writes the model, the tables
and the plots. Recorded per size: the wall time of the process, its peak resident memory
(VmHWM), the training time the command reports (``trained 1 epochs in X s``: the fit
with its validation pass) and the share of the wall spent outside training, with and
without the start-up (Python importing torch and Lightning, measured alone in a fresh
process). Writes its section of benchmarks/RESULTS.md (``scale``).

    python benchmarks/scale.py                      # 1k, 10k, 100k
    python benchmarks/scale.py --sizes 1000,10000 --no-write
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import machine, write_section

SRC = Path(__file__).resolve().parents[1] / "src"
LENGTH = 200

#: runs in the child: the CLI's own entry point, then the process's peak RSS (VmHWM: see
#: predict_stream.py for why not ru_maxrss)
RUN = """
import sys
from lstmkit.cli import main
sys.argv = ["lstmkit", "forecast", sys.argv[1], "--id-col", "id", "--hidden-size", "16",
            "--max-epochs", "1", "--no-progress", "--out", sys.argv[2]]
try:
    main()
except SystemExit as e:
    if e.code not in (0, None):
        raise
print(*[ln for ln in open("/proc/self/status") if ln.startswith("VmHWM")], file=sys.stderr)
"""
#: the start-up alone: what the command imports before it reads anything
START = "import lstmkit.cli.forecast, lstmkit.tasks.forecasting.estimator, lstmkit.plots.forecast"


def make_series(n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` daily series of `LENGTH` points as a long table (id, date, value)."""
    rng = np.random.default_rng(seed)
    t = np.arange(LENGTH)
    level = rng.uniform(10, 100, (n, 1))
    amp = rng.uniform(0, 0.3, (n, 1)) * level
    trend = rng.normal(0, 0.05, (n, 1)) * level / LENGTH
    phase = rng.uniform(0, 2 * np.pi, (n, 1))
    noise = rng.normal(0, 0.05, (n, LENGTH)) * level
    values = level + trend * t + amp * np.sin(2 * np.pi * t / 7 + phase) + noise
    ids = pd.Categorical.from_codes(np.repeat(np.arange(n), LENGTH), [f"s{i}" for i in range(n)])
    dates = pd.date_range("2020-01-01", periods=LENGTH, freq="D")
    return pd.DataFrame({"id": ids, "date": np.tile(dates, n), "value": values.ravel()})


def run_child(code: str, *args: str) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MiB, stdout) of ``python -c code args`` in a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(SRC), "COLUMNS": "120"}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, check=False
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"child failed:\n{done.stderr[-3000:]}")
    peak = re.search(r"VmHWM:\s+(\d+) kB", done.stderr)
    return wall, int(peak.group(1)) / 1024 if peak else float("nan"), done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    sizes = [int(v) for v in args.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        startup, _, _ = run_child(START)
        print(f"start-up (imports): {startup:.1f} s", flush=True)
        for n in sizes:
            path = Path(tmp) / f"series_{n}.parquet"
            make_series(n).to_parquet(path, index=False)
            load = os.getloadavg()[0]
            wall, peak, out = run_child(RUN, str(path), str(Path(tmp) / f"out_{n}"))
            trained = re.search(r"trained \d+ epochs? in ([\d.]+) s", out)
            fit = float(trained.group(1)) if trained else float("nan")
            row = {
                "series": n, "wall_s": wall, "peak_MB": peak, "train_s": fit,
                "outside": (wall - fit) / wall, "outside_after_start": (wall - startup - fit)
                / (wall - startup), "load": load,
            }  # fmt: skip
            rows.append(row)
            print(
                f"{n:>7} series: wall {wall:.1f} s, peak {peak:.0f} MiB, training {fit:.1f} s, "
                f"outside training {row['outside']:.0%} ({row['outside_after_start']:.0%} "
                f"after the start-up), load average {load:.1f}",
                flush=True,
            )
            path.unlink()
    if args.no_write:
        return
    base = rows[0]["wall_s"]
    lines = [
        "## Thousands of series (`scale`)",
        "",
        f"Synthetic daily series of {LENGTH} points, long Parquet table; `lstmkit forecast "
        "FILE --id-col id --hidden-size 16 --max-epochs 1 --no-progress` (fit one epoch, "
        "evaluate the last 12 days of every series, forecast the next 12, write everything) "
        f"in a fresh process. Start-up (imports alone, a fresh process): {startup:.1f} s.",
        "",
        "| series | wall (s) | x smallest | peak RSS (MiB) | training (s) | outside training "
        "| outside, start-up excluded | load average |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['series']:,} | {r['wall_s']:.1f} | {r['wall_s'] / base:.1f} | "
            f"{r['peak_MB']:.0f} | {r['train_s']:.1f} | {r['outside']:.0%} | "
            f"{r['outside_after_start']:.0%} | {r['load']:.1f} |"
        )
    last = rows[-1]
    lines += [
        "",
        f"Targets, at {last['series']:,} series: wall {last['wall_s'] / base:.1f}x the "
        f"{rows[0]['series']:,}-series time (at most 110x); peak {last['peak_MB']:.0f} MiB "
        f"= {last['peak_MB'] / 1024:.2f} GiB = {last['peak_MB'] * 2**20 / 1e9:.2f} GB (under "
        f"3 GB); {last['outside']:.0%} of the wall outside training (at most 30%). One epoch "
        "is at most `batches_per_epoch` (100) batches of 32 windows, so training grows only "
        "with its validation pass, while reading the table, the per-series contexts, the "
        "evaluation and writing the CSV tables at full precision grow with the series.",
    ]
    write_section("scale", "\n".join(lines))
    print(f"machine: {machine()}")


if __name__ == "__main__":
    main()
