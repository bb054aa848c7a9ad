"""Speed of lstmkit.nn.LSTM (each backend) beside torch.nn.LSTM.

For each size (batch, time, input, hidden) it times forward and
forward+backward of torch.nn.LSTM and of lstmkit.nn.LSTM with the native and
the reference backend, with the same weights. The implementations are timed
in turn inside every repeat (so machine noise hits all of them alike), each
timing covers enough calls to last a few milliseconds, and the table reports
medians and ratios to torch. Writes the "layers" section of RESULTS.md.

    python benchmarks/layers.py [--repeats 15] [--no-write]
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_section

import lstmkit.nn as lnn

SIZES = [(64, 200, 128, 128), (32, 100, 64, 256), (256, 50, 32, 64), (1, 12, 1, 100)]


def make_models(input_size: int, hidden: int) -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    ref = torch.nn.LSTM(input_size, hidden, batch_first=True)
    native = lnn.LSTM(input_size, hidden, batch_first=True, backend="native")
    reference = lnn.LSTM(input_size, hidden, batch_first=True, backend="reference")
    native.load_state_dict(ref.state_dict())
    reference.load_state_dict(ref.state_dict())
    return {"torch": ref, "native": native, "reference": reference}


def step(model: torch.nn.Module, x: torch.Tensor, backward: bool) -> None:
    out, (h, c) = model(x)
    if backward:
        (out.sum() + h.sum() + c.sum()).backward()


def calls_for(model: torch.nn.Module, x: torch.Tensor, backward: bool, target_s: float) -> int:
    """How many calls make one timing last about ``target_s`` seconds."""
    start = time.perf_counter()
    step(model, x, backward)
    once = max(time.perf_counter() - start, 1e-6)
    return max(1, int(target_s / once))


def time_calls(model: torch.nn.Module, x: torch.Tensor, backward: bool, n: int) -> float:
    ctx = torch.enable_grad() if backward else torch.no_grad()
    with ctx:
        start = time.perf_counter()
        for _ in range(n):
            step(model, x, backward)
        return (time.perf_counter() - start) / n


def bench_size(size: tuple[int, int, int, int], repeats: int) -> dict[str, dict[str, float]]:
    batch, steps, input_size, hidden = size
    models = make_models(input_size, hidden)
    x = torch.randn(batch, steps, input_size)
    result: dict[str, dict[str, float]] = {}
    for backward in (False, True):
        kind = "fwd+bwd" if backward else "fwd"
        for m in models.values():  # warm-up
            for _ in range(3):
                with torch.enable_grad() if backward else torch.no_grad():
                    step(m, x, backward)
        names = list(models)
        calls = {k: calls_for(models[k], x, backward, 0.05) for k in names}
        samples: dict[str, list[float]] = {k: [] for k in names}
        for r in range(repeats):
            order = names[r % len(names) :] + names[: r % len(names)]
            for k in order:
                samples[k].append(time_calls(models[k], x, backward, calls[k]))
        result[kind] = {k: statistics.median(v) for k, v in samples.items()}
    return result


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f}" if seconds < 0.01 else f"{seconds * 1e3:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    rows = [
        "| batch, time, input, hidden | pass | torch.nn.LSTM ms | native ms | native / torch "
        "| reference ms | reference / torch |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    worst = 0.0
    for size in SIZES:
        res = bench_size(size, args.repeats)
        for kind, t in res.items():
            ratio_n = t["native"] / t["torch"]
            ratio_r = t["reference"] / t["torch"]
            worst = max(worst, ratio_n)
            row = (
                f"| {', '.join(map(str, size))} | {kind} | {fmt_ms(t['torch'])} | "
                f"{fmt_ms(t['native'])} | {ratio_n:.3f} | {fmt_ms(t['reference'])} | "
                f"{ratio_r:.2f} |"
            )
            rows.append(row)
            print(row, flush=True)
    body = "\n".join(
        [
            "## Layer speed: lstmkit.nn.LSTM vs torch.nn.LSTM (CPU)",
            "",
            f"Medians of {args.repeats} interleaved timings; one layer, batch_first, float32; "
            "fwd+bwd includes the backward pass of out/h_n/c_n sums. The native backend "
            "calls torch's fused kernel, so its ratio measures lstmkit's own overhead; the "
            "reference backend is our step loop over the gate equations (every option, "
            "gate introspection).",
            "",
            *rows,
            "",
            f"Worst native / torch ratio: {worst:.3f}.",
        ]
    )
    print(f"worst native/torch ratio: {worst:.3f}")
    if not args.no_write:
        write_section("layers", body)


if __name__ == "__main__":
    main()
