"""xLSTM on the CPU (issue 18): sLSTM speed and mLSTM memory, beside the reference package.

Table 1 (float32, 2 threads): one training step (forward + backward of the output's sum)
of one sLSTM layer at (batch, time, width, heads): the reference package ``xlstm``'s
``sLSTMLayer`` (vanilla backend, no convolution: its CPU path, a Python loop), lstmkit's
``SLSTM.from_xlstm`` of that layer (same weights; the fused kernel) and lstmkit's fused
``LSTM`` of the same width. Implementations are timed in turn inside every repeat (machine
noise hits all alike); each timing covers enough calls to last ~50 ms (one call for the
package's layer); the table reports medians. Targets: at least 5x faster than the package,
at most 1.5x the fused LSTM's time.

Table 2: peak memory of one mLSTM training step (lstmkit's ``MLSTM`` block, the package's
layer: width 256, 4 heads, batch 8) in the chunkwise form against the parallel form
(T x T matrices), each run in a fresh process and measured as the peak resident memory
(VmHWM) above the process's memory before the step. The parallel form is run up to
``--parallel-max-t`` (default 2048: at 4096 it would need well over 10 GB, more than a
shared machine should be asked for; the table projects it with the quadratic through the
three largest measured lengths). Then the largest difference between the recurrent and
the chunkwise forms' outputs and final states on the same input.

    python benchmarks/xlstm.py [--repeats 5] [--threads 2] [--parallel-max-t 2048] [--no-write]
"""

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_section

import lstmkit.nn as lnn
from lstmkit.nn import cpu, fused

# this file is named like the reference package: take its folder off the path again, so
# that `import xlstm` finds the package
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

SIZES = [(16, 100, 128, 4), (64, 200, 256, 4), (256, 50, 64, 2)]
MEM_BATCH, MEM_WIDTH, MEM_HEADS = 8, 256, 4
MEM_ROWS = [  # (form, T, chunk size)
    ("chunkwise", 512, 64),
    ("chunkwise", 1024, 64),
    ("chunkwise", 2048, 64),
    ("chunkwise", 4096, 64),
    ("chunkwise", 4096, 256),
    ("parallel", 512, None),
    ("parallel", 1024, None),
    ("parallel", 2048, None),
    ("parallel", 4096, None),
]


def timed(fn: Callable[[], None], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def medians(fns: dict[str, Callable[[], None]], repeats: int) -> dict[str, float]:
    """Median seconds per call of each function, interleaved and rotated every repeat."""
    calls = {}
    for k, fn in fns.items():
        once = timed(fn, 1)  # also the warm-up (kernel caches, first allocations)
        calls[k] = max(1, int(0.05 / max(once, 1e-6)))
    names = list(fns)
    samples: dict[str, list[float]] = {k: [] for k in names}
    for r in range(repeats):
        for k in names[r % len(names) :] + names[: r % len(names)]:
            samples[k].append(timed(fns[k], calls[k]))
    return {k: statistics.median(v) for k, v in samples.items()}


def train_step(model: torch.nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def fn() -> None:
        out = model(x)
        out = out[0] if isinstance(out, tuple) else out
        out.sum().backward()
        model.zero_grad(set_to_none=True)

    return fn


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f}"


def slstm_rows(repeats: int) -> tuple[list[str], float, float]:
    import xlstm

    rows, worst_pkg, worst_lstm = [], float("inf"), 0.0
    for batch, steps, width, heads in SIZES:
        torch.manual_seed(0)
        config = xlstm.sLSTMLayerConfig(
            embedding_dim=width, num_heads=heads, conv1d_kernel_size=0, backend="vanilla"
        )
        package = xlstm.sLSTMLayer(config)
        with torch.no_grad():  # random recurrent weights too (the package starts them at 0)
            package.slstm_cell._recurrent_kernel_.normal_(0, 0.2)
        ours = lnn.SLSTM.from_xlstm(package)
        lstm = lnn.LSTM(width, width, batch_first=True, backend="fused")
        x = torch.randn(batch, steps, width, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            diff = (ours(x)[0] - package(x)).abs().max().item()
        t = medians(
            {
                "package": train_step(package, x),
                "ours": train_step(ours, x),
                "lstm": train_step(lstm, x),
            },
            repeats,
        )
        speedup, vs_lstm = t["package"] / t["ours"], t["ours"] / t["lstm"]
        worst_pkg, worst_lstm = min(worst_pkg, speedup), max(worst_lstm, vs_lstm)
        rows.append(
            f"| {batch}, {steps}, {width}, {heads} | {ms(t['package'])} | {ms(t['ours'])} | "
            f"{ms(t['lstm'])} | **{speedup:.1f}x** | {vs_lstm:.2f}x | {diff:.1e} |"
        )
        print(rows[-1], flush=True)
    return rows, worst_pkg, worst_lstm


def _status_kb(field: str) -> int:
    """A memory figure of this process from /proc/self/status (VmRSS, VmHWM), in KB."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def memory_child(form: str, steps: int, chunk: int | None, threads: int) -> None:
    """One training step in this (fresh) process; prints JSON: peak MB above the start."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    layer = lnn.MLSTM(
        MEM_WIDTH, MEM_WIDTH, num_heads=MEM_HEADS, batch_first=True, form=form,
        chunk_size=chunk or 64,
    )  # fmt: skip
    x = torch.randn(MEM_BATCH, steps, MEM_WIDTH)
    # the peak of this process image (getrusage's maximum survives exec, so it would
    # include the parent's), reset to the current size before the step where Linux allows
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    base = _status_kb("VmRSS")
    start = time.perf_counter()
    train_step(layer, x)()
    seconds = time.perf_counter() - start
    peak = _status_kb("VmHWM")
    print(json.dumps({"peak_mb": max(0, peak - base) / 1024, "seconds": seconds}))


def _quadratic_at(points: list[tuple[int, float]], x: float) -> float:
    """The quadratic through three (x, y) points, evaluated at x (Lagrange form)."""
    total = 0.0
    for i, (xi, yi) in enumerate(points):
        term = yi
        for j, (xj, _) in enumerate(points):
            if j != i:
                term *= (x - xj) / (xi - xj)
        total += term
    return total


def memory_rows(threads: int, parallel_max_t: int) -> tuple[list[str], dict]:
    rows, measured = [], {}
    for form, steps, chunk in MEM_ROWS:
        label = f"chunk {chunk}" if chunk else "one chunk (T x T)"
        if form == "parallel" and steps > parallel_max_t:
            known = sorted((t, mb) for (f, t), mb in measured.items() if f == "parallel")
            if len(known) < 3:
                continue
            projected = _quadratic_at(known[-3:], steps)
            ts = ", ".join(str(t) for t, _ in known[-3:])
            rows.append(
                f"| {form} | {steps} | {label} | not run: ~{projected:.0f} projected (the "
                f"quadratic through T = {ts}) | - |"
            )
            print(rows[-1], flush=True)
            continue
        cmd = [sys.executable, __file__, "--memory-child", form, str(steps), str(chunk or 0)]
        cmd += ["--threads", str(threads)]
        res = subprocess.run(cmd, capture_output=True, text=True, check=True)
        got = json.loads(res.stdout.strip().splitlines()[-1])
        measured[(form, steps)] = got["peak_mb"]
        rows.append(f"| {form} | {steps} | {label} | {got['peak_mb']:.0f} | {got['seconds']:.2f} |")
        print(rows[-1], flush=True)
    return rows, measured


def forms_agree() -> str:
    """Largest |recurrent - chunkwise| over outputs and final states (float32, no grad)."""
    torch.manual_seed(0)
    steps = 1024
    chunk = lnn.MLSTM(MEM_WIDTH, MEM_WIDTH, num_heads=MEM_HEADS, batch_first=True)
    rec = lnn.MLSTM(MEM_WIDTH, MEM_WIDTH, num_heads=MEM_HEADS, batch_first=True, form="recurrent")
    rec.load_state_dict(chunk.state_dict())
    x = torch.randn(MEM_BATCH, steps, MEM_WIDTH)
    with torch.no_grad():
        a, fa = chunk(x)
        b, fb = rec(x)
    out = (a - b).abs().max().item()
    states = max((p - q).abs().max().item() for p, q in zip(fa, fb, strict=True))
    scale = b.abs().max().item()
    return (
        f"Recurrent against chunkwise (chunk 64), batch {MEM_BATCH}, T = {steps}, width "
        f"{MEM_WIDTH}, float32: largest difference {out:.1e} in the outputs (largest output "
        f"{scale:.2f}) and {states:.1e} in the final states (target: within 1e-5)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--parallel-max-t", type=int, default=2048)
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--memory-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        form, steps, chunk = args.memory_child
        memory_child(form, int(steps), int(chunk) or None, args.threads)
        return
    torch.set_num_threads(args.threads)
    if not fused.available():
        sys.exit("error: the fused kernel could not be built here; see the warning above")
    try:
        import xlstm  # noqa: F401
    except ImportError as err:
        sys.exit(f"error: the reference package is needed here ({err}): pip install xlstm")
    print(cpu.describe(), flush=True)
    load_before = os.getloadavg()[0]
    slstm, worst_pkg, worst_lstm = slstm_rows(args.repeats)
    load_after = os.getloadavg()[0]
    mem, _ = memory_rows(args.threads, args.parallel_max_t)
    agree = forms_agree()
    print(agree, flush=True)
    import xlstm as pkg

    body = "\n".join(
        [
            "## xLSTM on the CPU: sLSTM speed, mLSTM memory (`xlstm`)",
            "",
            f"One training step (forward + backward), float32, {args.threads} threads, medians "
            f"of {args.repeats} interleaved timings. `package`: the reference package "
            f"`xlstm` {pkg.__version__}'s `sLSTMLayer` (vanilla backend: its CPU path; no "
            "convolution); `SLSTM`: lstmkit's `SLSTM.from_xlstm` of that same layer (fused "
            "kernel; `max diff` is the largest output difference between the two); `LSTM`: "
            "lstmkit's fused `LSTM` of the same width. Targets (issue 18): at least 5x "
            "faster than the package, at most 1.5x the fused LSTM's time.",
            "",
            "| batch, time, width, heads | package ms | SLSTM ms | LSTM ms "
            "| SLSTM speed-up over package | SLSTM / LSTM | max diff |",
            "| --- | --- | --- | --- | --- | --- | --- |",
            *slstm,
            "",
            f"Smallest speed-up over the package: {worst_pkg:.1f}x; largest time relative to "
            f"the fused LSTM: {worst_lstm:.2f}x. The machine was shared (1-minute load average "
            f"{load_before:.1f} before the timings, {load_after:.1f} after, on "
            f"{os.cpu_count()} cores), which slows every implementation; the ratios come "
            "from interleaved timings.",
            "",
            f"mLSTM training step (lstmkit's `MLSTM` block, the package's layer: width "
            f"{MEM_WIDTH}, inner width {2 * MEM_WIDTH}, {MEM_HEADS} heads, batch "
            f"{MEM_BATCH}): peak resident memory above the process's before the step, each "
            "row in a fresh process.",
            "",
            "| form | T | chunk | peak MB | step s |",
            "| --- | --- | --- | --- | --- |",
            *mem,
            "",
            agree,
        ]
    )
    if not args.no_write:
        write_section("xlstm", body)


if __name__ == "__main__":
    main()
