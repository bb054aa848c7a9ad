"""Short single series: M4 Weekly training series fitted one at a time, validation only.

Draws seeded samples of the competition's Weekly-train series by length (80-300 weeks and
301-700 weeks), fits the default `Forecaster` (horizon 13, season 52) on each series alone
without its last 13 training weeks and scores those 13 weeks beside naive and NLinear:
mean sMAPE and MASE, how many series beat naive, the share of those weeks inside the
10-90% band, its mean width (percent of the series' mean level) and its interval score
(width plus 10 times each miss, over the series' mean weekly change). ``--half A`` or
``B`` scores a seeded half of each draw (the halves the band's calibration was chosen and
confirmed on; see `lstmkit.tasks.forecasting.calibration.IN_SAMPLE_STRETCH`). The M4 test
file is never read: this is the validation check behind the single-series default window
(`lstmkit.tasks.forecasting.data.default_window`) and the band's calibration. Writes the
``m4_single`` section of benchmarks/RESULTS.md (unless ``--no-write`` or ``--half``).

    python benchmarks/m4_single.py [--set key=json ...] [--half A|B] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_section

from lstmkit import Forecaster

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "m4" / "Weekly-train.csv.gz"
H, SEASON = 13, 52
#: (shortest, longest, series drawn, seed of the draw)
GROUPS = ((80, 300, 40, 3), (301, 700, 30, 4))
#: seed of the split of each draw into halves A and B (``--half``)
HALF_SEED = 11


def score(y: np.ndarray, settings: dict) -> dict[str, float]:
    """Fit on ``y`` less its last `H` values and score those."""
    frame = pd.DataFrame({"y": y})
    f = Forecaster(horizon=H, season=SEASON, seed=0, progress=False,
                   baselines=["naive", "nlinear"], **settings)  # fmt: skip
    f.fit(frame.iloc[:-H])
    ev = f.evaluate(frame)
    m, fc = ev.metrics, ev.forecasts
    actual, lo, hi = (fc[c].to_numpy(dtype=float) for c in ("actual", "q10", "q90"))
    inside = ((actual >= lo) & (actual <= hi)).mean()
    seen = y[:-H]
    misses = np.maximum(lo - actual, 0) + np.maximum(actual - hi, 0)
    interval = (hi - lo + 10 * misses).mean() / np.abs(np.diff(seen)).mean()
    return {
        "sMAPE": m.loc["lstmkit", "sMAPE"], "MASE": m.loc["lstmkit", "MASE"],
        "naive": m.loc["naive", "sMAPE"], "nlinear": m.loc["nlinear", "sMAPE"],
        "coverage": float(inside), "window": f.state.window,
        "width": float((hi - lo).mean() / np.abs(seen).mean() * 100), "interval": interval,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--set", nargs="*", default=[], help="Forecaster overrides key=json")
    parser.add_argument("--half", choices=["A", "B"], help="a seeded half of each draw only")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if not args.data.exists():
        raise SystemExit(f"{args.data} not found (the M4 files of ../shared/data/m4)")
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    settings = {k: json.loads(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    train = pd.read_csv(args.data)
    lengths = train.iloc[:, 1:].notna().sum(axis=1).to_numpy()
    lines = [
        "## Short single series on M4 Weekly (`m4_single`)",
        "",
        "Each series fitted alone with the defaults (horizon 13, season 52"
        + (", " + ", ".join(args.set) if args.set else "")
        + ") on its Weekly-train weeks less the last 13, scored on those 13 (validation "
        "only: the M4 test file is not read). Means over the series drawn.",
        "",
        "| weeks | series | sMAPE | MASE | naive sMAPE | NLinear sMAPE | beats naive "
        "| 10-90% band coverage | band width % | interval score | windows | s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for lo, hi, n, seed in GROUPS:
        pool = np.flatnonzero((lengths >= lo) & (lengths <= hi))
        rows = np.random.default_rng(seed).choice(pool, min(n, len(pool)), replace=False)
        if args.half:
            order = np.random.default_rng(HALF_SEED).permutation(len(rows))
            cut = len(rows) // 2
            rows = rows[order[:cut] if args.half == "A" else order[cut:]]
        start = time.perf_counter()
        got = pd.DataFrame(
            [score(train.iloc[r, 1:].dropna().to_numpy(dtype=float), settings) for r in rows]
        )
        mean = got.mean()
        beats = int((got["sMAPE"] < got["naive"]).sum())
        windows = ", ".join(str(w) for w in sorted(got["window"].unique())[:6])
        line = (
            f"| {lo}-{hi} | {len(got)} | {mean['sMAPE']:.2f} | {mean['MASE']:.3f} | "
            f"{mean['naive']:.2f} | {mean['nlinear']:.2f} | {beats} of {len(got)} | "
            f"{mean['coverage']:.3f} | {mean['width']:.1f} | {mean['interval']:.2f} | "
            f"{windows} | {time.perf_counter() - start:.0f} |"
        )
        print(line, flush=True)
        lines.append(line)
    lines += [
        "",
        "The same draws and defaults on the code before the single-series window rule "
        "(commit f8614fd: a window of at least one season, 52, so an 80-week series kept 3 "
        "training windows and no validation stretch), 2026-12-07: 80-300 weeks sMAPE 17.01, "
        "MASE 0.820, beats naive 15 of 40, coverage .165; 301-700 weeks 6.15, 0.473, 27 of "
        "30, .672. The rule with one training window per input step instead of two (window "
        "21 for the 80-week series) scored 27.97 at 80-300 weeks (beats naive 3 of 40).",
        "",
        "Before the band of series with fewer than 20 validation windows was calibrated on "
        "the training windows (commit feb8551: the band as trained), 80-300 weeks covered "
        ".637 (width 38.2%, interval score 6.28), the same point forecasts; 301-700 weeks, "
        "with 27-40 validation windows, are unchanged. The widening of 1.2 was chosen on a "
        "seeded half of the 80-300 draw (`--half A`, 20 series: 1.0 / 1.1 / 1.2 / 1.3 "
        "covered .69 / .74 / .80 / .82, interval score 5.71 / 5.65 / 5.68 / 5.76; the band "
        "as trained .70, 6.09) and confirmed on the other (`--half B`: .79 against .58, "
        "5.92 against 6.48).",
    ]
    if not args.no_write and not args.half:
        write_section("m4_single", "\n".join(lines))


if __name__ == "__main__":
    main()
