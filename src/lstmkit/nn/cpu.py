"""What this CPU can do, asked at run time: which library products the fused kernel may
use, and whether bfloat16 runs natively.

Machines differ (one has AVX-512 and bf16, the next only AVX2), so nothing here is assumed
at build time. Everything comes from torch's own public checks:

- ``torch.backends.mkldnn.is_available()``: torch was built with oneDNN;
- ``torch.ops.mkldnn._is_mkldnn_bf16_supported()``: oneDNN's bf16 path runs on this CPU
  (x86 with AVX-512 BW/VL/DQ, AVX512-BF16, AMX or AVX-NE-CONVERT; ARM with BF16). ATen's
  oneDNN matmul entry checks exactly this and raises without it, float32 included, so the
  fused kernel calls that entry only when it holds.

Where bf16 is not native, bfloat16 products run through generic code tens of times slower
than float32 (and torch's own oneDNN LSTM cannot run under bf16 autocast at all): lstmkit
refuses ``precision="bf16-mixed"`` there and its layers compute in float32 under a bf16
autocast (one warning per process).

``LSTMKIT_CPU_FALLBACK=1`` makes lstmkit behave as on a CPU without oneDNN products or
native bf16, whatever this one has: the tests run the fallback path on every machine with
it. Call :func:`refresh` after changing it in a running process.
"""

from __future__ import annotations

import functools
import os
import platform
import warnings
from dataclasses import dataclass

import torch

__all__ = [
    "FALLBACK_ENV",
    "Capabilities",
    "bf16_unsupported_reason",
    "capabilities",
    "describe",
    "native_bf16",
    "refresh",
    "warn_bf16_fallback",
]

FALLBACK_ENV = "LSTMKIT_CPU_FALLBACK"

# the /proc/cpuinfo flags worth naming beside a timing (x86 and ARM spellings)
_REPORTED_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512dq",
    "avx512_bf16",
    "avx512_vnni",
    "amx_bf16",
    "amx_tile",
    "avx_ne_convert",
    "asimd",
    "sve",
    "bf16",
)


@dataclass(frozen=True)
class Capabilities:
    """What lstmkit may use on this CPU (after :data:`FALLBACK_ENV`).

    Attributes:
        machine: ``platform.machine()`` (``x86_64``, ``aarch64``, ``arm64``, ``AMD64``).
        isa: torch's CPU capability (``AVX2``, ``AVX512``, ``DEFAULT``, ...).
        flags: the CPU flags relevant to these choices, as /proc/cpuinfo names them
            (empty where there is no /proc/cpuinfo).
        onednn: torch was built with oneDNN and it is enabled.
        dnnl_matmul: the fused kernel may call ATen's oneDNN matmul entry (float32 and
            bf16 products); only where oneDNN's bf16 path runs, as ATen requires.
        dnnl_packed: the fused kernel may use oneDNN's linear on a weight packed once per
            call (float32 recurrent products of the variants).
        native_bf16: bfloat16 runs natively (AMP ``bf16-mixed`` and bf16 autocast allowed).
        forced_fallback: :data:`FALLBACK_ENV` is set: all of the above are off.
    """

    machine: str
    isa: str
    flags: tuple[str, ...]
    onednn: bool
    dnnl_matmul: bool
    dnnl_packed: bool
    native_bf16: bool
    forced_fallback: bool

    @property
    def products(self) -> str:
        """The fused kernel's products in words."""
        if self.dnnl_matmul:
            return "oneDNN matmul (ATen's entry) and packed oneDNN linear"
        if self.dnnl_packed:
            return "packed oneDNN linear per step, ATen mm (BLAS) elsewhere"
        return "ATen mm (BLAS) and lstmkit's own register-tiled product"


def _forced() -> bool:
    return os.environ.get(FALLBACK_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _cpu_flags() -> tuple[str, ...]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    have = set(line.split(":", 1)[1].split())
                    return tuple(f for f in _REPORTED_FLAGS if f in have)
    except OSError:
        pass
    return ()


def _torch_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch without the op: assume nothing
        return False


@functools.cache
def capabilities() -> Capabilities:
    """This CPU's capabilities (cached; :func:`refresh` asks again)."""
    forced = _forced()
    onednn = bool(torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled)
    bf16 = _torch_bf16()
    try:
        isa = str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):
        isa = "unknown"
    return Capabilities(
        machine=platform.machine(),
        isa=isa,
        flags=_cpu_flags(),
        onednn=onednn,
        dnnl_matmul=onednn and bf16 and not forced,
        dnnl_packed=onednn and not forced,
        native_bf16=bf16 and not forced,
        forced_fallback=forced,
    )


def refresh() -> Capabilities:
    """Ask again (after changing :data:`FALLBACK_ENV`); the fused kernel follows."""
    capabilities.cache_clear()
    _warned.clear()
    return capabilities()


def native_bf16() -> bool:
    """Whether bfloat16 runs natively here (see the module docstring)."""
    return capabilities().native_bf16


def bf16_unsupported_reason() -> str:
    """Why bf16 is refused here, naming the instructions it needs; "" where it is native."""
    caps = capabilities()
    if caps.native_bf16:
        return ""
    if caps.forced_fallback:
        return f"{FALLBACK_ENV} is set, so lstmkit treats this CPU as one without native bf16"
    return (
        f"this CPU ({caps.machine}, {caps.isa}) has no native bfloat16: torch's oneDNN needs "
        "AVX-512 (BW, VL, DQ; or AVX512-BF16/AMX), AVX-NE-CONVERT or ARM BF16, and bf16 "
        "without them runs many times slower than float32"
    )


def describe() -> str:
    """One line for benchmark tables: machine, torch's ISA, CPU flags, products, bf16."""
    caps = capabilities()
    flags = " ".join(caps.flags) or "n/a"
    forced = f", {FALLBACK_ENV}=1" if caps.forced_fallback else ""
    return (
        f"{caps.machine}, torch ISA {caps.isa}, CPU flags: {flags}; fused products: "
        f"{caps.products}; native bf16: {'yes' if caps.native_bf16 else 'no'}{forced}"
    )


_warned: set[str] = set()


def warn_bf16_fallback(where: str, stacklevel: int = 3) -> None:
    """Say once per process that bf16 autocast regions compute in float32 here."""
    if _warned:
        return
    _warned.add(where)
    warnings.warn(
        f"lstmkit.nn: {where} under torch.autocast(dtype=bfloat16) computes in float32: "
        f"{bf16_unsupported_reason()}",
        RuntimeWarning,
        stacklevel=stacklevel,
    )
