"""Training threads: a training step on one CPU thread against torch's count, per network.

The rule of `lstmkit.training.threads` (one thread for the training steps of a small LSTM
or GRU) rests on this table. Each row times a training step (forward, loss, backward,
Adam) of an lstmkit layer with a linear head, in a fresh process that imports lstmkit
first (so its passive OpenMP waiting applies, as in every lstmkit run), on 1 thread and on
torch's count (2 on the dev machine), interleaved; the median of ``--repeats`` processes
each. Writes its section of benchmarks/RESULTS.md (``threads``).

    python benchmarks/threads.py [--repeats 3] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_section

SRC = Path(__file__).resolve().parents[1] / "src"

#: layer, batch, hidden size, time steps, input features, bi(directional) or -, timed steps
TABLE = """
LSTM 32 16 30 1 - 200
GRU 32 16 30 1 - 200
SLSTM 32 16 30 1 - 100
LSTM 32 64 30 1 - 100
LSTM 32 128 96 1 - 30
GRU 32 128 96 8 - 30
SLSTM 32 128 96 8 - 20
LSTM 32 128 200 100 bi 8
LSTM 256 64 48 7 - 30
LSTM 32 256 96 1 - 15
LSTM 64 192 96 1 - 15
LSTM 64 256 96 1 - 12
LSTM 1024 64 48 7 - 8
"""
CASES = [
    (layer, int(b), int(h), int(t), int(i), bi == "bi", int(n))
    for layer, b, h, t, i, bi, n in (row.split() for row in TABLE.strip().splitlines())
]

#: runs in the child: ms per training step, the median of 3 timings after a warm-up
CHILD = """
import json, sys, time
import lstmkit  # first, as in every lstmkit run: it sets the OpenMP wait policy
import torch
import lstmkit.nn as lnn
from lstmkit.training.threads import choose_threads
layer, B, H, T, I, bi, steps, threads = json.loads(sys.argv[1])
torch.set_num_threads(threads)
torch.manual_seed(0)
net = getattr(lnn, layer)(I, H, batch_first=True, bidirectional=bi)
head = torch.nn.Linear(H * (2 if bi else 1), 12)
opt = torch.optim.Adam([*net.parameters(), *head.parameters()], 1e-3)
x, y = torch.randn(B, T, I), torch.randn(B, 12)
def step():
    out, _ = net(x)
    loss = torch.nn.functional.mse_loss(head(out[:, -1]), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
for _ in range(5):
    step()
times = []
for _ in range(3):
    t = time.perf_counter()
    for _ in range(steps):
        step()
    times.append((time.perf_counter() - t) / steps * 1e3)
rule = choose_threads(None, net, B) if threads > 1 else None
print(json.dumps({"ms": sorted(times)[1], "rule": rule}))
"""


def run_child(case: tuple, threads: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    env.pop("OMP_NUM_THREADS", None)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps([*case, threads])],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    import torch

    count = torch.get_num_threads()
    rows = []
    for case in CASES:
        one, many, rule = [], [], None
        for _ in range(args.repeats):
            one.append(run_child(case, 1)["ms"])
            got = run_child(case, count)
            many.append(got["ms"])
            rule = got["rule"]
        layer, batch, hidden, steps, inputs, bi = case[:6]
        name = f"{'Bi' if bi else ''}{layer}"
        a, b = statistics.median(one), statistics.median(many)
        rows.append((name, batch, hidden, steps, inputs, a, b, rule))
        print(
            f"{name:8} batch {batch:5} hidden {hidden:4} T {steps:4}: 1 thread {a:8.2f} ms, "
            f"{count} threads {b:8.2f} ms ({b / a:.2f}x), the rule picks {rule}",
            flush=True,
        )
    if args.no_write:
        return
    lines = [
        "## Training threads (`threads`)",
        "",
        "A training step (forward, MSE loss on a linear head, backward, Adam) of an lstmkit "
        f"layer, batch first, in a fresh process that imports lstmkit first; median of "
        f"{args.repeats} processes, each the median of 3 timings, 1 thread and {count} "
        "interleaved. `rule`: the threads `lstmkit.training.threads.choose_threads` gives "
        "the training steps of this network.",
        "",
        f"| layer | batch | hidden | time steps | inputs | 1 thread (ms) | {count} threads (ms) "
        f"| {count} threads / 1 | rule |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, batch, hidden, steps, inputs, a, b, rule in rows:
        lines.append(
            f"| {name} | {batch} | {hidden} | {steps} | {inputs} | {a:.2f} | {b:.2f} | "
            f"{b / a:.2f} | {rule} |"
        )
    write_section("threads", "\n".join(lines))


if __name__ == "__main__":
    main()
