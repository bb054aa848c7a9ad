"""Thousands of series: `lstmkit forecast` on 1,000, 10,000 and 100,000 synthetic daily series.

Generates daily series of 200 points (a level, a trend, a weekly season and noise per
series), writes them as a long Parquet table (id, date, value; ids dictionary-encoded,
dates as timestamps) and runs the real command on each in a fresh process::

    lstmkit forecast FILE --id-col id --hidden-size 16 --max-epochs 1 --no-progress --out OUT

which fits one epoch, evaluates the held-out last 12 days of every series beside the
naive baselines, forecasts the 12 days after the data and writes the model, the tables
and the plots. Recorded per size: the wall time of the process (the ``lstmkit`` script's
`console`, as a user runs it), its peak resident memory (VmHWM), the training time the
command reports (``trained 1 epochs in X s``: the fit with its validation pass) and the
share of the wall spent outside training, with and without the start-up (Python importing
torch and Lightning). A second run of the same command, its functions wrapped and timed,
gives where the time goes. Writes its section of benchmarks/RESULTS.md (``scale``).

    python benchmarks/scale.py                      # 1k, 10k, 100k
    python benchmarks/scale.py --sizes 1000,10000 --no-write
"""

from __future__ import annotations

import argparse
import json
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

#: a phase that runs in a thread of its own beside training (not part of the wall's sum)
BESIDE = "baselines (beside training)"
#: runs in the child: the CLI's own entry point (`console`, the ``lstmkit`` script) with the
#: time spent in each phase (the functions it calls, wrapped to add up their time; phases
#: nest, so the report subtracts the inner ones), then the process's peak RSS (VmHWM: see
#: predict_stream.py for why not ru_maxrss)
RUN = """
import atexit, json, sys, time
T0 = time.perf_counter()
import lstmkit.data.series as series
import lstmkit.plots.curves as curves
import lstmkit.plots.forecast as plots
import lstmkit.tasks.forecasting.data as data
import lstmkit.tasks.forecasting.estimator as est
import lstmkit.tasks.forecasting.run as run
from lstmkit.cli import console
SPENT = {"imports": time.perf_counter() - T0}

def timed(owner, name, phase):
    inner = getattr(owner, name)
    def wrapper(*a, **k):
        t = time.perf_counter()
        try:
            return inner(*a, **k)
        finally:
            SPENT[phase] = SPENT.get(phase, 0.0) + time.perf_counter() - t
    setattr(owner, name, wrapper)

F = est.Forecaster
BESIDE = "@BESIDE@"
for owner, name, phase in [
    (series, "load_series", "read"), (run, "truncate_series", "prepare"),
    (data.ForecastData, "setup", "prepare"), (est, "fit", "training"),
    (F, "_calibrate", "calibration"), (F, "check_forecast", "plausibility check"),
    (F, "_baselines_for", BESIDE), (F, "evaluate", "evaluation"),
    (F, "set_context", "forecast ahead"), (F, "predict", "forecast ahead"),
    (F, "save", "write: model"), (run, "write_csv", "write: CSV"),
    (plots, "plot_forecast", "write: plots"), (curves, "plot_training_curves", "write: plots"),
]:
    timed(owner, name, phase)
sys.argv = ["lstmkit", "forecast", sys.argv[1], "--id-col", "id", "--hidden-size", "16",
            "--max-epochs", "1", "--no-progress", "--out", sys.argv[2]]

@atexit.register  # the console script runs the exit handlers, then ends the process
def report():
    SPENT["total"] = time.perf_counter() - T0
    print("PHASES " + json.dumps(SPENT), file=sys.stderr)
    print(*[ln for ln in open("/proc/self/status") if ln.startswith("VmHWM")], file=sys.stderr)

console()
""".replace("@BESIDE@", BESIDE)
#: runs in the child: the ``lstmkit`` script itself (`console`) as a user runs it, nothing
#: wrapped (the command reads the table while torch and Lightning load, which `RUN`'s
#: imports up front would hide), then the process's peak RSS
REAL = """
import atexit, sys

@atexit.register  # the console script runs the exit handlers, then ends the process
def report():
    print(*[ln for ln in open("/proc/self/status") if ln.startswith("VmHWM")], file=sys.stderr)

sys.argv = ["lstmkit", "forecast", sys.argv[1], "--id-col", "id", "--hidden-size", "16",
            "--max-epochs", "1", "--no-progress", "--out", sys.argv[2]]
from lstmkit.cli import console
console()
"""
#: the phases of the breakdown, in the order the command runs them
PHASES = ("imports", "read", "prepare", "training", "calibration", "plausibility check",
          "evaluation", "forecast ahead", "write: model", "write: CSV", "write: plots")  # fmt: skip
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


def run_child(code: str, *args: str) -> tuple[float, float, str, dict[str, float]]:
    """(wall seconds, peak RSS in MiB, stdout, seconds per phase) of ``python -c code
    args`` in a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(SRC), "COLUMNS": "120"}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, check=False
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"child failed:\n{done.stderr[-3000:]}")
    peak = re.search(r"VmHWM:\s+(\d+) kB", done.stderr)
    phases = re.search(r"^PHASES (.*)$", done.stderr, re.M)
    return (
        wall, int(peak.group(1)) / 1024 if peak else float("nan"), done.stdout,
        json.loads(phases.group(1)) if phases else {},
    )  # fmt: skip


#: what the section says besides the figures (how an epoch is defined, what was changed)
NOTES = (
    "An epoch is at most `batches_per_epoch` (100) random batches of 32 windows or, with "
    "more series than those hold (10,000 and 100,000 here), one random window of every "
    "series, and the validation pass after it one fixed window of every series, so that "
    "an epoch grows with the series. "
    "The training steps of this network (hidden 16, batches of 32) run on one thread and "
    "the rest on two (`lstmkit.training.threads`). Outside training: the linear baselines "
    "are fitted a block of series at a time on at most 500,000 windows, in a thread beside "
    "the training, and forecast for all series in one array step; the calibration "
    "cuts only the validation windows it samples; the long reader keeps each series' times "
    "as its stretch of the table's sorted times (no index per series) and checks the order "
    "and the frequencies in array steps; the scaler is fitted and applied in one pass; the "
    "last window of every series (the context) is kept as arrays and saved as "
    "context.safetensors (it was a JSON object of lists per series); a small network "
    "forecasts up to 16,384 windows per call, and the check for a diverged network and the "
    "evaluation share one pass over all series (the same windows: the last before the "
    "held-out tail; a memo of the last pass), the forecast after the data takes the "
    "other; the data's fingerprint is hashed only for a run that checkpoints; "
    "forecast.csv and future.csv are written by pyarrow (pandas' text byte for byte; "
    "ordinary floats skip the text fixes that only exponents and whole numbers need), "
    "pieces of rows formatted in parallel threads, in a thread of their own while the "
    "model is saved and the plots drawn; the command freezes the start-up's objects for "
    "the garbage collector and ends the process without the interpreter's teardown "
    "(`lstmkit.cli.console`: about 1.3 s); its process keeps freed memory for the next "
    "arrays (glibc's malloc) and asks for no huge pages (numpy), so that arrays are not "
    "faulted in afresh (`lstmkit.cli.keep_freed_memory`). What remains is the start-up "
    "(importing torch "
    "and Lightning, which imports torchmetrics, scipy.signal and torch._dynamo) and, "
    "growing with the series, "
    "reading the Parquet table (decoding 20 million rows), the two network passes over "
    "all series and the CSV text."
)


def _exclusive(spent: dict[str, float], wall: float) -> dict[str, float]:
    """The phases' seconds (none of them nests in another) and ``other``: the rest of
    the ``wall``; then `BESIDE`, which overlaps training."""
    out = {k: float(spent.get(k, 0.0)) for k in PHASES}
    out["other"] = max(wall - sum(out.values()), 0.0)
    out[BESIDE] = float(spent.get(BESIDE, 0.0))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    sizes = [int(v) for v in args.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        startup, _, _, _ = run_child(START)
        print(f"start-up (imports): {startup:.1f} s", flush=True)
        for n in sizes:
            path = Path(tmp) / f"series_{n}.parquet"
            make_series(n).to_parquet(path, index=False)
            before = os.getloadavg()[0]
            wall, peak, out, _ = run_child(REAL, str(path), str(Path(tmp) / f"out_{n}"))
            load = f"{before:.1f} / {os.getloadavg()[0]:.1f}"
            trained = re.search(r"trained \d+ epochs? in ([\d.]+) s", out)
            fit = float(trained.group(1)) if trained else float("nan")
            # the phases: the same command again, its functions wrapped and timed
            phased, _, _, spent = run_child(RUN, str(path), str(Path(tmp) / f"phases_{n}"))
            imports = float(spent.get("imports", startup))
            after_start = max(wall - imports - fit, 0.0) / max(wall - imports, 1e-9)
            row = {
                "series": n, "wall_s": wall, "peak_MB": peak, "train_s": fit,
                "outside": (wall - fit) / wall, "outside_after_start": after_start,
                "load": load, "phases": _exclusive(spent, phased), "phased_s": phased,
            }  # fmt: skip
            rows.append(row)
            print(
                f"  second run {phased:.1f} s: "
                + ", ".join(f"{k} {v:.1f}" for k, v in row["phases"].items()),
                flush=True,
            )
            print(
                f"{n:>7} series: wall {wall:.1f} s, peak {peak:.0f} MiB, training {fit:.1f} s, "
                f"outside training {row['outside']:.0%} ({row['outside_after_start']:.0%} "
                f"after the start-up), load average {load} (before / after)",
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
        "| outside, the start-up (the second run's imports) excluded (0% where the imports "
        "took longer than all the time outside training: the table is read beside them) "
        "| load average (before "
        "/ after) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['series']:,} | {r['wall_s']:.1f} | {r['wall_s'] / base:.1f} | "
            f"{r['peak_MB']:.0f} | {r['train_s']:.1f} | {r['outside']:.0%} | "
            f"{r['outside_after_start']:.0%} | {r['load']} |"
        )
    lines += [
        "",
        "Where the wall time goes (seconds), from a second run of the same command right "
        "after the first, each phase timed inside it (its functions wrapped; the wrapping "
        "imports torch and Lightning before the command starts, so here the table is read "
        "after them, not beside them); `other`: the rest of the process: the interpreter's "
        "start and end, the option parsing and the table printing:",
        "",
        "| series | wall (s) | " + " | ".join(PHASES) + f" | other | {BESIDE} |",
        "|---:|---:|" + "---:|" * (len(PHASES) + 2),
    ]
    for r in rows:
        cells = [f"{r['phases'].get(k, 0.0):.1f}" for k in (*PHASES, "other", BESIDE)]
        lines.append(f"| {r['series']:,} | {r['phased_s']:.1f} | " + " | ".join(cells) + " |")
    last = rows[-1]
    growth, peak_gb = last["wall_s"] / base, last["peak_MB"] * 2**20 / 1e9
    verdict = [
        f"wall {growth:.1f}x the {rows[0]['series']:,}-series time (at most 110x: "
        f"{'met' if growth <= 110 else 'not met'})",
        f"peak {last['peak_MB']:.0f} MiB = {peak_gb:.2f} GB (under 3 GB: "
        f"{'met' if peak_gb < 3 else 'not met'})",
        f"{last['outside']:.0%} of the wall outside training (at most 30%: "
        f"{'met' if last['outside'] <= 0.30 else 'not met'})",
    ]
    lines += [
        "",
        f"Targets, at {last['series']:,} series: " + "; ".join(verdict) + ". " + NOTES,
    ]
    write_section("scale", "\n".join(lines))
    print(f"machine: {machine()}")


if __name__ == "__main__":
    main()
