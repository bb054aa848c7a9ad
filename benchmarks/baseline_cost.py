"""What the default baselines add to the wall time of `lstmkit forecast`.

Issue 17 asks that the default set of baselines shown beside the network (naive, seasonal
naive, NLinear, DLinear: fitted, forecast, scored and written) add at most 20% to the wall
time of the demo and of the M4 Weekly run. Each command is run as a user runs it, the
``lstmkit`` script in a fresh process, with the default baselines and with ``--baselines
none``, alternating, ``--repeats`` times each; the table gives the median walls and
their ratio.

- demo: ``lstmkit forecast`` (the embedded AirPassengers data, the README's main job);
- M4 Weekly: the competition's Weekly-train file as a long CSV (`m4.long_frame`),
  ``lstmkit forecast long.csv --id-col id --horizon 13 --season 52 --holdout 13``: the
  last 13 training weeks held out and scored, so the baselines are scored too (the test
  file is not read).

    python benchmarks/baseline_cost.py [--repeats 3] [--no-write]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import machine, write_section
from m4 import DATA, long_frame, read_wide

LSTMKIT = Path(sys.executable).with_name("lstmkit")
ARMS = {"default": [], "none": ["--baselines", "none"]}


def wall(args: list[str]) -> float:
    """Seconds of one ``lstmkit`` command in a fresh process (it must succeed)."""
    start = time.perf_counter()
    done = subprocess.run([str(LSTMKIT), *args], capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"lstmkit {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return seconds


def measure(args: list[str], repeats: int, out: Path) -> dict[str, list[float]]:
    """Walls of ``args`` with each arm's baseline option, alternating, ``repeats`` each."""
    walls: dict[str, list[float]] = {arm: [] for arm in ARMS}
    for k in range(repeats):
        for arm, extra in ARMS.items():
            walls[arm].append(wall([*args, *extra, "--out", str(out / f"{arm}{k}")]))
            print(f"  {arm}: {walls[arm][-1]:.1f} s", flush=True)
    return walls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        runs = {"demo (AirPassengers)": ["forecast", "--no-progress"]}
        train = args.data / "Weekly-train.csv.gz"
        if train.exists():
            long_csv = folder / "m4_weekly_long.csv"
            long_frame(*read_wide(train)).to_csv(long_csv, index=False)
            runs["M4 Weekly (359 series, 13 weeks held out)"] = [
                "forecast", str(long_csv), "--id-col", "id", "--horizon", "13",
                "--season", "52", "--holdout", "13", "--no-progress",
            ]  # fmt: skip
        else:
            print(f"{train} not found: the M4 row is skipped")
        for name, command in runs.items():
            print(name, flush=True)
            walls = measure(command, args.repeats, folder)
            base, none = statistics.median(walls["default"]), statistics.median(walls["none"])
            rows.append((name, base, none, walls))
    lines = [
        "## What the default baselines cost (`baseline-cost`)",
        "",
        "`lstmkit forecast` in a fresh process with the default baselines (naive, seasonal "
        "naive, NLinear, DLinear: fitted, forecast, scored and written beside the network) "
        "and with `--baselines none`, alternating, "
        f"{args.repeats} runs each; medians. Issue 17 asks at most 20% more.",
        "",
        "| command | default baselines (s) | none (s) | added | runs (default / none, s) |",
        "|---|---:|---:|---:|---|",
    ]
    for name, base, none, walls in rows:
        runs_text = " / ".join(
            ", ".join(f"{w:.1f}" for w in walls[arm]) for arm in ("default", "none")
        )
        lines.append(f"| {name} | {base:.1f} | {none:.1f} | {100 * (base / none - 1):+.0f}% "
                     f"| {runs_text} |")  # fmt: skip
    body = "\n".join(lines)
    print(body)
    print("machine:", machine())
    if not args.no_write:
        write_section("baseline-cost", body)


if __name__ == "__main__":
    main()
