"""Speed of lstmkit.nn.LSTM (each backend) beside torch.nn.LSTM.

For each size (batch, time, input, hidden) it times forward and
forward+backward of torch.nn.LSTM and of lstmkit.nn.LSTM with the native and
the reference backend, with the same weights. The implementations are timed
in turn inside every repeat (so machine noise hits all of them alike), each
timing covers enough calls to last a few milliseconds, and the table reports
medians and ratios to torch. A second table times right-padded batches of
variable lengths: torch.nn.LSTM on a PackedSequence against lstmkit's
``lengths=``. Writes the "layers" section of RESULTS.md.

    python benchmarks/layers.py [--repeats 15] [--no-write]
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

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


def lstm_pass(model: torch.nn.Module, x: torch.Tensor, lengths: torch.Tensor | None) -> tuple:
    """One forward pass; with ``lengths``, torch.nn.LSTM gets a PackedSequence (its way)."""
    if lengths is None:
        return model(x)
    if isinstance(model, torch.nn.LSTM):
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, state = model(packed)
        return pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0], state
    return model(x, lengths=lengths)


def step(model, x, lengths, backward: bool) -> None:
    out, (h, c) = lstm_pass(model, x, lengths)
    if backward:
        (out.sum() + h.sum() + c.sum()).backward()


def time_calls(model, x, lengths, backward: bool, n: int) -> float:
    ctx = torch.enable_grad() if backward else torch.no_grad()
    with ctx:
        start = time.perf_counter()
        for _ in range(n):
            step(model, x, lengths, backward)
        return (time.perf_counter() - start) / n


def bench_size(
    size: tuple[int, int, int, int], repeats: int, variable: bool = False
) -> dict[str, dict[str, float]]:
    """Median seconds per call, ``{"fwd"|"fwd+bwd": {implementation: s}}``.

    ``variable``: random lengths in [time/2, time] (torch packs, lstmkit takes lengths=).
    """
    batch, steps, input_size, hidden = size
    models = make_models(input_size, hidden)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, steps, input_size, generator=gen)
    lengths = None
    if variable:
        lengths = torch.randint(steps // 2, steps + 1, (batch,), generator=gen)
    result: dict[str, dict[str, float]] = {}
    for backward in (False, True):
        kind = "fwd+bwd" if backward else "fwd"
        names = list(models)
        calls = {}
        for k in names:  # warm-up, then calls per timing for ~50 ms
            time_calls(models[k], x, lengths, backward, 3)
            once = max(time_calls(models[k], x, lengths, backward, 1), 1e-6)
            calls[k] = max(1, int(0.05 / once))
        samples: dict[str, list[float]] = {k: [] for k in names}
        for r in range(repeats):
            order = names[r % len(names) :] + names[: r % len(names)]
            for k in order:
                samples[k].append(time_calls(models[k], x, lengths, backward, calls[k]))
        result[kind] = {k: statistics.median(v) for k, v in samples.items()}
    return result


def fmt_ms(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:.3f}" if round(ms, 3) < 10 else f"{ms:.1f}"


def row(size: tuple[int, int, int, int], kind: str, t: dict[str, float]) -> str:
    """One markdown table row: times and ratios to torch."""
    return (
        f"| {', '.join(map(str, size))} | {kind} | {fmt_ms(t['torch'])} | "
        f"{fmt_ms(t['native'])} | {t['native'] / t['torch']:.3f} | "
        f"{fmt_ms(t['reference'])} | {t['reference'] / t['torch']:.2f} |"
    )


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
            worst = max(worst, t["native"] / t["torch"])
            rows.append(row(size, kind, t))
            print(rows[-1], flush=True)
    var_rows = [rows[0], rows[1]]
    for size in SIZES[:3]:
        for kind, t in bench_size(size, args.repeats, variable=True).items():
            var_rows.append(row(size, kind, t))
            print(var_rows[-1], flush=True)
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
            "",
            "Variable lengths (random in [time/2, time]): torch.nn.LSTM on a PackedSequence "
            "(pack, run, unpack) against lstmkit's `lengths=` on the padded batch (the native "
            "backend runs torch's padded kernel per direction, reversing each sequence "
            "within its length, and reads the final states at each last real step).",
            "",
            *var_rows,
        ]
    )
    print(f"worst native/torch ratio: {worst:.3f}")
    if not args.no_write:
        write_section("layers", body)


if __name__ == "__main__":
    main()
