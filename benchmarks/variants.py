"""Speed of the LSTM/GRU variants on the fused kernel, beside plain torch.nn, and of bf16.

Table 1 (float32, 2 threads): for each size (batch, time, input, hidden),
forward-only and forward+backward of plain ``torch.nn.LSTM`` / ``GRU`` against
lstmkit's ``backend="fused"`` layer, plain and with ``layer_norm=True`` or
``recurrent_dropout=0.25``, and the same variant on ``backend="reference"``
(our Python step loop), so each row shows the fused variant's time as a
multiple of plain torch and its speed-up over the reference loop. Layers are
in training mode (masks are drawn); forward-only runs under ``torch.no_grad``.

Table 2 (bfloat16): one training step (forward + backward) of float32
``torch.nn.LSTM``, torch's own LSTM in bfloat16, and the fused LSTM in
bfloat16, at the same sizes and thread count.

Implementations are timed in turn inside every repeat (machine noise hits all
alike); each timing covers enough calls to last ~50 ms; the tables report
medians. The fused kernel's products depend on the CPU (``lstmkit.nn.cpu``): the
section is "variants" on a CPU with native bf16, "variants-no-bf16" on one without
(AVX2 and older), and "variants-fallback" with ``--fallback``, which forces the
fallback products on any CPU (``LSTMKIT_CPU_FALLBACK=1``). Table 2 needs native bf16.

    python benchmarks/variants.py [--repeats 9] [--threads 2] [--fallback] [--no-write]
"""

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_section

import lstmkit.nn as lnn
from lstmkit.nn import cpu, fused

SIZES = [(64, 200, 128, 128), (32, 100, 64, 256), (256, 50, 32, 64)]
VARIANTS = {
    "plain": {},
    "layer_norm": {"layer_norm": True},
    "rec. dropout 0.25": {"recurrent_dropout": 0.25},
}


def build(
    kind: str, input_size: int, hidden: int, dtype=torch.float32
) -> dict[str, torch.nn.Module]:
    """torch's layer and lstmkit's fused/reference layers of each variant, same base weights."""
    torch.manual_seed(0)
    torch_cls = torch.nn.LSTM if kind == "LSTM" else torch.nn.GRU
    ours = lnn.LSTM if kind == "LSTM" else lnn.GRU
    ref = torch_cls(input_size, hidden, batch_first=True)
    models: dict[str, torch.nn.Module] = {"torch": ref}
    for name, opts in VARIANTS.items():
        for backend in ("fused", "reference"):
            if name == "plain" and backend == "reference":
                continue
            m = ours(input_size, hidden, batch_first=True, backend=backend, **opts)
            m.load_state_dict(ref.state_dict(), strict=False)
            models[f"{name}/{backend}"] = m
    for m in models.values():
        m.to(dtype).train()
    return models


def call(model: torch.nn.Module, x: torch.Tensor, backward: bool) -> None:
    out, state = model(x)
    if backward:
        h = state[0] if isinstance(state, tuple) else state
        (out.float().sum() + h.float().sum()).backward()


def timed(fn: Callable[[], None], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def medians(fns: dict[str, Callable[[], None]], repeats: int) -> dict[str, float]:
    """Median seconds per call of each function, interleaved and rotated every repeat."""
    calls = {}
    for k, fn in fns.items():
        timed(fn, 2)
        calls[k] = max(1, int(0.05 / max(timed(fn, 1), 1e-6)))
    names = list(fns)
    samples: dict[str, list[float]] = {k: [] for k in names}
    for r in range(repeats):
        for k in names[r % len(names) :] + names[: r % len(names)]:
            samples[k].append(timed(fns[k], calls[k]))
    return {k: statistics.median(v) for k, v in samples.items()}


def step_fn(model, x, backward: bool) -> Callable[[], None]:
    def fn() -> None:
        if backward:
            call(model, x, True)
            model.zero_grad(set_to_none=True)
        else:
            with torch.no_grad():
                call(model, x, False)

    return fn


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f}"


def variant_rows(kind: str, repeats: int) -> tuple[list[str], dict[str, float]]:
    """Table rows and the worst ratios to plain torch: training step (fwd+bwd) of the plain
    fused layer and of the variants, and forward-only of the variants."""
    rows: list[str] = []
    worst = {"train plain": 0.0, "train variants": 0.0, "fwd variants": 0.0}
    for size in SIZES:
        batch, steps, input_size, hidden = size
        models = build(kind, input_size, hidden)
        x = torch.randn(batch, steps, input_size, generator=torch.Generator().manual_seed(0))
        for backward in (False, True):
            t = medians({k: step_fn(m, x, backward) for k, m in models.items()}, repeats)
            base = t["torch"]
            cells = [f"{', '.join(map(str, size))}", "fwd+bwd" if backward else "fwd", ms(base)]
            for name in VARIANTS:
                fused_t = t[f"{name}/fused"]
                cell = f"{ms(fused_t)} ({fused_t / base:.2f}x)"
                kind_of = "plain" if name == "plain" else "variants"
                key = ("train " if backward else "fwd ") + kind_of
                if key in worst:
                    worst[key] = max(worst[key], fused_t / base)
                if name != "plain":
                    cell += f", {t[f'{name}/reference'] / fused_t:.1f}x faster than reference"
                cells.append(cell)
            rows.append("| " + " | ".join(cells) + " |")
            print(kind, rows[-1], flush=True)
    return rows, worst


def bf16_rows(repeats: int) -> list[str]:
    rows = []
    for size in SIZES:
        batch, steps, input_size, hidden = size
        torch.manual_seed(0)
        f32 = torch.nn.LSTM(input_size, hidden, batch_first=True)
        t16 = torch.nn.LSTM(input_size, hidden, batch_first=True).to(torch.bfloat16)
        ours = lnn.LSTM(input_size, hidden, batch_first=True, backend="fused")
        t16.load_state_dict(f32.state_dict())
        ours.load_state_dict(f32.state_dict())
        ours.to(torch.bfloat16)
        x = torch.randn(batch, steps, input_size, generator=torch.Generator().manual_seed(0))
        xb = x.to(torch.bfloat16)
        t = medians(
            {
                "f32": step_fn(f32, x, True),
                "torch_bf16": step_fn(t16, xb, True),
                "fused_bf16": step_fn(ours, xb, True),
            },
            repeats,
        )
        rows.append(
            f"| {', '.join(map(str, size))} | {ms(t['f32'])} | {ms(t['torch_bf16'])} | "
            f"{ms(t['fused_bf16'])} | {t['torch_bf16'] / t['fused_bf16']:.2f} | "
            f"{t['f32'] / t['fused_bf16']:.2f} |"
        )
        print("bf16", rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--fallback", action="store_true", help="force the products of a CPU without oneDNN/bf16"
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    if args.fallback:
        os.environ[cpu.FALLBACK_ENV] = "1"
    caps = cpu.refresh()
    torch.set_num_threads(args.threads)
    if not fused.available():
        sys.exit("error: the fused kernel could not be built here; see the warning above")
    print(cpu.describe(), flush=True)
    head = [
        "| batch, time, input, hidden | pass | torch.nn ms | fused plain ms (x torch) "
        "| fused layer_norm ms (x torch), vs reference | fused rec. dropout ms (x torch), "
        "vs reference |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    lstm, worst_lstm = variant_rows("LSTM", args.repeats)
    gru, worst_gru = variant_rows("GRU", args.repeats)
    worst = "; ".join(
        f"{kind}: " + ", ".join(f"{k} {v:.2f}x" for k, v in w.items())
        for kind, w in (("LSTM", worst_lstm), ("GRU", worst_gru))
    )
    if caps.native_bf16:
        name, title = "variants", "Variants on the fused CPU kernel, and bf16 (`variants`)"
        bf16 = [
            "bfloat16 training step (forward + backward), LSTM:",
            "",
            "| batch, time, input, hidden | torch float32 ms | torch bf16 ms | fused bf16 ms "
            "| fused bf16 speed-up over torch bf16 | over torch float32 |",
            "| --- | --- | --- | --- | --- | --- |",
            *bf16_rows(args.repeats),
        ]
    else:
        name = "variants-fallback" if caps.forced_fallback else "variants-no-bf16"
        kind = "forced fallback products" if caps.forced_fallback else "a CPU without native bf16"
        title = f"Variants on the fused CPU kernel, {kind} (`{name}`)"
        bf16 = [f"No bf16 table: {cpu.bf16_unsupported_reason()}; lstmkit refuses bf16 here."]
    used = ", ".join(fused.products()) or "none of oneDNN's"
    body = "\n".join(
        [
            f"## {title}",
            "",
            f"Medians of {args.repeats} interleaved timings; one layer, batch_first, training "
            "mode (dropout masks drawn); fwd runs under no_grad, fwd+bwd backpropagates the "
            "sum of the output and h_n. `x torch` is the time as a multiple of plain "
            "torch.nn at the same size; `vs reference` is the fused kernel's speed-up over "
            "the same variant on lstmkit's reference loop. Targets (issues 7, 15): a plain "
            "fused training step at most 1.0x torch, variants at most 1.5x (aim 1.2x).",
            "",
            f"Products of the fused kernel here: {caps.products} (library products in use: "
            f"{used}); float32 LSTM steps without a projection use lstmkit's own "
            "register-tiled product.",
            "",
            "LSTM against `torch.nn.LSTM`:",
            "",
            *head,
            *lstm,
            "",
            "GRU against `torch.nn.GRU`:",
            "",
            *head,
            *gru,
            "",
            f"Worst time / plain torch: {worst}.",
            "",
            *bf16,
        ]
    )
    if not args.no_write:
        write_section(name, body)


if __name__ == "__main__":
    main()
