"""The fused CPU backend: our compiled LSTM / GRU / sLSTM kernels for one direction of one layer.

The C++ source (``csrc/fused_rnn.cpp``, which includes ``csrc/slstm.h``) is built on first use with
``torch.utils.cpp_extension`` and ninja, and cached per user, torch version, CPU and source
hash under ``$LSTMKIT_EXT_DIR`` (default ``$XDG_CACHE_HOME/lstmkit/ext`` or
``~/.cache/lstmkit/ext``). Two processes building at once wait on cpp_extension's lock. If
the build fails (no compiler), :func:`available` is False and one warning says why.

Public entry points (the math is SPEC-variants.md's, the same as ``nn/cells.py``):

- :func:`lstm_direction`, :func:`gru_direction` and :func:`slstm_direction` (xLSTM's
  sLSTM, ``lstmkit.nn.xlstm_cells``): run one direction over time, autograd-capable (a
  hand-written backward through time);
- :func:`linear`: ``x W^T + b`` with the kernel's products, for the input projection ``xw``
  (on AMD CPUs oneDNN's products are about twice as fast as the BLAS behind torch's own);
- :func:`available`: whether the kernel could be built and loaded (:func:`is_built`: whether
  it is already in the cache; ``python -m lstmkit.nn.fused`` builds it ahead of use);
- :func:`products`: the library products it uses on this CPU;
- :func:`empty_cache`: free the work buffers the kernel keeps between calls.

Dtypes: float32, float64, and bfloat16 (products in bfloat16, gate math and states in
float32). Under ``torch.autocast("cpu", dtype=torch.bfloat16)`` the products run in bfloat16
where the CPU has native bf16 (``lstmkit.nn.cpu``), in float32 elsewhere; gradients come
back in each input's own dtype.

Products: which library products the kernel calls is chosen at run time from
``lstmkit.nn.cpu.capabilities()`` (:func:`products` tells): ATen's oneDNN matmul only where
ATen allows it (oneDNN's bf16 path runs), oneDNN's packed linear where torch has oneDNN,
ATen's ``mm`` (BLAS) and our own register-tiled product everywhere.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
import threading
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import Tensor

from lstmkit.nn import cpu

__all__ = [
    "BUILD_NOTICE",
    "available",
    "empty_cache",
    "extension_dir",
    "gru_direction",
    "is_built",
    "linear",
    "lstm_direction",
    "products",
    "slstm_direction",
]

_CSRC = Path(__file__).with_name("csrc")
_SOURCE = _CSRC / "fused_rnn.cpp"  # the one translation unit; it includes the other files
# Compiler flags, tried in order until one set builds. -march=native is safe because the
# build key includes this machine's CPU flags; the later sets are for compilers that reject
# it (or OpenMP: the kernel then runs on one thread, still correct). MSVC takes its own.
if sys.platform == "win32":
    _FLAG_SETS: tuple[list[str], ...] = (["/O2", "/openmp"], ["/O2"])
    _LDFLAGS: list[str] = []
else:
    # -fno-trapping-math lets the compiler turn the selects of the sLSTM's gate loops
    # (stabiliser, clamps) into vector blends instead of branches, which stop the vectoriser
    _FLAG_SETS = (
        ["-O3", "-march=native", "-fopenmp", "-fno-math-errno", "-fno-trapping-math"],
        ["-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math"],
        ["-O3", "-fno-math-errno", "-fno-trapping-math"],
    )
    _LDFLAGS = ["-fopenmp"]
BUILD_NOTICE = "building lstmkit's fused CPU kernel, once per machine and torch version: ~30 s"
_lock = threading.Lock()
_state: dict[str, Any] = {"tried": False, "ext": None, "error": None, "caps": None}
# stands for a saved buffer the configuration does not use; made outside inference mode
# whenever this module is imported (the first forward may come from under
# torch.inference_mode(), and an inference tensor cannot be saved for backward later)
with torch.inference_mode(False):
    _EMPTY = torch.empty(0)


def extension_dir() -> Path:
    """The folder holding built kernels: ``$LSTMKIT_EXT_DIR`` or ``<cache>/lstmkit/ext``."""
    env = os.environ.get("LSTMKIT_EXT_DIR")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "lstmkit" / "ext"


def _cpu_key() -> str:
    """What ``-march=native`` depends on: the machine and its CPU flags."""
    flags = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    flags = line
                    break
    except OSError:
        pass
    return platform.machine() + flags


def _build_key(cflags: list[str]) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in _CSRC.iterdir() if p.is_file()):  # every file under csrc/
        h.update(path.name.encode())
        h.update(path.read_bytes())
    h.update(" ".join(cflags + _LDFLAGS).encode())
    h.update(_cpu_key().encode())
    return h.hexdigest()[:16]


def _ensure_ninja_on_path() -> None:
    """cpp_extension runs ``ninja`` from PATH; add the PyPI ninja package's folder if present."""
    try:
        import ninja  # type: ignore[import-not-found]
    except ImportError:
        return
    bin_dir = getattr(ninja, "BIN_DIR", None)
    if bin_dir and bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")


def _ldflags(cflags: list[str]) -> list[str]:
    return _LDFLAGS if any("openmp" in f for f in cflags) else []


def _build_dir(cflags: list[str]) -> tuple[str, Path]:
    key = _build_key(cflags)
    return f"lstmkit_fused_{key}", extension_dir() / f"torch-{torch.__version__}-{key}"


def is_built() -> bool:
    """Whether a kernel for this machine and torch is already in the cache (no build needed)."""
    for cflags in _FLAG_SETS:
        name, folder = _build_dir(cflags)
        if any(folder.glob(f"{name}*.so")) or any(folder.glob(f"{name}*.pyd")):
            return True
    return False


def _build(cflags: list[str]) -> ModuleType:
    from torch.utils.cpp_extension import load

    _ensure_ninja_on_path()
    name, build_dir = _build_dir(cflags)
    build_dir.mkdir(parents=True, exist_ok=True)
    return load(
        name=name,
        sources=[str(_SOURCE)],
        extra_cflags=cflags,
        extra_ldflags=_ldflags(cflags),
        build_directory=str(build_dir),
        verbose=False,
    )


def _load() -> ModuleType | None:
    """Build (first time) and import the extension; None if that is impossible here."""
    if _state["tried"]:
        return _state["ext"]
    with _lock:
        if _state["tried"]:
            return _state["ext"]
        if not is_built():
            print(BUILD_NOTICE, file=sys.stderr, flush=True)
        for cflags in _FLAG_SETS:
            try:
                _state["ext"] = _build(cflags)
                break
            except Exception as exc:  # no compiler, ninja or headers: fall back, say so once
                lines = str(exc).strip().splitlines() or [""]
                # a compiler failure's useful line is its first "error:", not the command
                first = next((ln for ln in lines if "error:" in ln), lines[0])
                _state["error"] = f"{type(exc).__name__}: {first.strip()[:300]}"
        if _state["ext"] is None:
            warnings.warn(
                "lstmkit: the fused CPU kernel could not be built "
                f"({_state['error']}); backend='fused' is unavailable and the reference "
                "loop is used instead. Install a C++ compiler (g++) and ninja to enable it.",
                RuntimeWarning,
                stacklevel=3,
            )
        _state["tried"] = True
        return _state["ext"]


def _configured(ext: ModuleType) -> ModuleType:
    """The extension with its products set for this CPU (again after ``cpu.refresh()``)."""
    caps = cpu.capabilities()
    if _state["caps"] is not caps:
        _state["products"] = tuple(ext.set_products(caps.dnnl_matmul, caps.dnnl_packed))
        _state["caps"] = caps
    return ext


def products() -> tuple[str, ...]:
    """The library products the kernel uses here: ``dnnl_matmul``, ``dnnl_packed`` (none:
    ATen's ``mm`` and lstmkit's own product). Empty when the kernel is unavailable."""
    ext = _load()
    if ext is None:
        return ()
    _configured(ext)
    return _state["products"]


def available() -> bool:
    """Whether the fused kernel is built and loaded (building it now if needed)."""
    return _load() is not None


def empty_cache() -> int:
    """Free the kernel's cache of work buffers (kept between calls so that a training loop
    does not page in fresh memory at every step); returns the number of bytes freed."""
    ext = _load()
    return 0 if ext is None else int(ext.empty_cache())


def _ext() -> ModuleType:
    ext = _load()
    if ext is None:
        raise RuntimeError(
            f"the fused kernel is unavailable ({_state['error']}); "
            "use backend='reference' or install g++ and ninja"
        )
    return _configured(ext)


class _LSTMDirection(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, *args: Any) -> tuple[Tensor, Tensor, Tensor]:  # type: ignore[override]
        xw, h0, c0, w_hh, b_hh, w_hr, peep, lnw, lnwc, lnbc, rd, zh, zc, lengths, save, sink = args
        res = _ext().lstm_forward(
            xw, h0, c0, w_hh, b_hh, w_hr, peep, lnw, lnwc, lnbc, rd, zh, zc, lengths, save
        )
        out, h_n, c_n = res[:3]
        if sink is not None:  # i, f, g, o as kept for backward; cell = c_t, 0 after lengths
            i, f, g, o = res[6].to(out.dtype).chunk(4, -1)
            cell = res[4][1:].to(out.dtype) * _real_steps(out, lengths)
            sink.append((i.clone(), f.clone(), g.clone(), o.clone(), cell))
        if not save:  # inference: the kernel kept nothing for a backward pass
            return out, h_n, c_n
        # res[3] (every step's h) is not needed by the LSTM backward: keep no reference
        saved = [_EMPTY, *(t if t is not None else _EMPTY for t in res[4:])]
        ctx.n_saved = len(saved)
        ctx.save_for_backward(*saved, w_hh, w_hr, peep, lnw, lnwc, lnbc, rd, zh, zc, lengths)
        ctx.like_meta = [
            (t.dtype, t.requires_grad) if t is not None else None
            for t in (xw, h0, c0, w_hh, b_hh, w_hr, peep, lnw, lnwc, lnbc)
        ]
        return out, h_n, c_n

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, dout: Tensor, dh_n: Tensor, dc_n: Tensor) -> tuple:  # type: ignore[override]
        n = ctx.n_saved
        tensors = ctx.saved_tensors
        saved, rest = list(tensors[:n]), tensors[n:]
        w_hh, w_hr, peep, lnw, lnwc, lnbc, rd, zh, zc, lengths = rest
        need_w = ctx.needs_input_grad[3] or ctx.needs_input_grad[5]
        grads = _ext().lstm_backward(
            dout, dh_n, dc_n, saved, w_hh, w_hr, peep, lnw, lnwc, lnbc, rd, zh, zc, lengths, need_w
        )
        out = []
        for g, meta, need in zip(grads, ctx.like_meta, ctx.needs_input_grad[:10], strict=True):
            out.append(g.to(meta[0]) if need and g is not None and meta is not None else None)
        return (*out, None, None, None, None, None, None)


class _GRUDirection(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, *args: Any) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        xw, h0, w_hh, b_hh, lnw, rd, zh, lengths, save, sink = args
        res = _ext().gru_forward(xw, h0, w_hh, b_hh, lnw, rd, zh, lengths, save)
        out, h_n = res[:2]
        if sink is not None:  # r, z, n as kept for backward; hidden = h_t (0 after lengths)
            r, z, n, _ = res[4].to(out.dtype).chunk(4, -1)
            sink.append((r.clone(), z.clone(), n.clone(), out.clone()))
        if not save:
            return out, h_n
        saved = [t if t is not None else _EMPTY for t in res[2:]]
        ctx.n_saved = len(saved)
        ctx.save_for_backward(*saved, w_hh, lnw, rd, zh, lengths)
        ctx.like_meta = [
            (t.dtype, t.requires_grad) if t is not None else None for t in (xw, h0, w_hh, b_hh, lnw)
        ]
        return out, h_n

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, dout: Tensor, dh_n: Tensor) -> tuple:  # type: ignore[override]
        n = ctx.n_saved
        tensors = ctx.saved_tensors
        saved, (w_hh, lnw, rd, zh, lengths) = list(tensors[:n]), tensors[n:]
        grads = _ext().gru_backward(
            dout, dh_n, saved, w_hh, lnw, rd, zh, lengths, ctx.needs_input_grad[2]
        )
        out = []
        for g, meta, need in zip(grads, ctx.like_meta, ctx.needs_input_grad[:5], strict=True):
            out.append(g.to(meta[0]) if need and g is not None and meta is not None else None)
        return (*out, None, None, None, None, None)


class _SLSTMDirection(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, *args: Any) -> tuple[Tensor, ...]:  # type: ignore[override]
        xw, h0, c0, n0, m0, w_hh, lengths, exp_forget, save, sink = args
        res = _ext().slstm_forward(xw, h0, c0, n0, m0, w_hh, lengths, exp_forget, save)
        out, h_n, c_n, n_n, m_n = res[:5]
        if sink is not None:  # the kernel's saved activations, as the layer reports them
            sink.append(_slstm_gates(res[5:], lengths, exp_forget, out.dtype))
        if not save:
            return out, h_n, c_n, n_n, m_n
        ctx.save_for_backward(*res[5:], w_hh, lengths)
        ctx.exp_forget = exp_forget
        ctx.xw_layout = (xw.shape, xw.stride(), xw.dtype)
        ctx.like_meta = [(t.dtype, t.requires_grad) for t in (xw, h0, c0, n0, m0, w_hh)]
        return out, h_n, c_n, n_n, m_n

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, dout: Tensor, dh: Tensor, dc: Tensor, dn: Tensor, dm: Tensor):  # type: ignore[override]
        *saved, w_hh, lengths = ctx.saved_tensors
        shape, stride, dtype = ctx.xw_layout
        dxw = torch.empty_strided(shape, stride, dtype=dtype)  # written in xw's own layout
        grads = _ext().slstm_backward(
            dout,
            dh,
            dc,
            dn,
            dm,
            saved,
            w_hh,
            lengths,
            ctx.exp_forget,
            ctx.needs_input_grad[5],
            dxw,
        )
        out = []
        for g, meta, need in zip(
            [dxw, *grads], ctx.like_meta, ctx.needs_input_grad[:6], strict=True
        ):
            out.append(g.to(meta[0]) if need and g is not None else None)
        return (*out, None, None, None, None)


def _slstm_gates(saved: list[Tensor], lengths: Tensor | None, exp_forget: bool, dtype) -> Any:
    """``SLSTMGates`` from the kernel's saved buffers (stabilised i', f' recomputed), zero
    after each length, detached."""
    from lstmkit.nn.xlstm_cells import SLSTMGates, slstm_gates_from_raw

    cs, ns, ms, _, gates = saved
    i_raw, f_raw, z, o = gates.chunk(4, -1)
    m_prev, m = ms[:-1], ms[1:]
    i, f = slstm_gates_from_raw(i_raw, f_raw, m_prev, m, "exp" if exp_forget else "sigmoid")
    real = _real_steps(i, lengths)
    parts = (i, f, z, o, cs[1:], ns[1:], m)
    return SLSTMGates(*((p * real).to(dtype) for p in parts))


class _Linear(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: Tensor, w: Tensor, b: Tensor | None, lnw: Tensor | None, save: bool
    ) -> Tensor:
        ext = _ext()
        x2 = x.reshape(-1, x.shape[-1])
        ahat = rstd = None
        if lnw is not None:
            # without save (no backward to come) the norm runs in place and keeps nothing
            y, *kept = ext.layer_norm_forward(ext.mm_bias(x2, w, None), lnw, b, save)
            if save:
                ahat, rstd = kept
        else:
            y = ext.mm_bias(x2, w, None if b is None else b.to(x2.dtype))
        ctx.save_for_backward(x2, w, lnw, ahat, rstd)
        ctx.dtypes = (None if b is None else b.dtype, None if lnw is None else lnw.dtype)
        ctx.x_shape = x.shape
        return y.view(*x.shape[:-1], w.shape[0])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, dy: Tensor) -> tuple:  # type: ignore[override]
        ext = _ext()
        x2, w, lnw, ahat, rstd = ctx.saved_tensors
        da = dy.reshape(-1, dy.shape[-1]).to(x2.dtype)
        dlnw = db = None
        if lnw is not None:
            da, dlnw, db = ext.layer_norm_backward(da, ahat, rstd, lnw)
        elif ctx.needs_input_grad[2]:
            db = da.sum(0)
        need = ctx.needs_input_grad
        dx = ext.mm(da, w).view(ctx.x_shape) if need[0] else None
        dw = ext.mm(da.t(), x2) if need[1] else None
        db = db.to(ctx.dtypes[0]) if need[2] else None
        dlnw = dlnw.to(ctx.dtypes[1]) if need[3] else None
        return dx, dw, db, dlnw, None


def linear(
    x: Tensor, weight: Tensor, bias: Tensor | None = None, ln_weight: Tensor | None = None
) -> Tensor:
    """The input projection with the fused kernel's products (oneDNN where torch has it).

    ``x W^T + b``, or with ``ln_weight`` the layer-normalised ``LN(x W^T; ln_weight, b)``
    (SPEC-variants.md's layer_norm input projection, eps 1e-5).

    Args:
        x: ``(..., in)``; weight: ``(out, in)``; bias, ln_weight: ``(out,)`` or None.

    Returns:
        ``(..., out)`` in x's dtype, or bfloat16 under CPU autocast to bfloat16. Its memory
        comes from the kernel's buffer cache (a fresh block of this size would cost as much in
        page faults as the product) and goes back there when freed; it cannot be resized.
    """
    if weight.dim() != 2 or x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"fused linear: x (..., in) and weight (out, in) with the same 'in' expected, "
            f"got {tuple(x.shape)} and {tuple(weight.shape)}"
        )
    _check("bias", bias, (weight.shape[0],))
    _check("ln_weight", ln_weight, (weight.shape[0],))
    mm = _mm_dtype(x)
    with torch.autocast("cpu", enabled=False):
        save = _needs_grad(x, weight, bias, ln_weight)
        return _Linear.apply(x.to(mm), weight.to(mm), bias, ln_weight, save)


def _check(name: str, t: Tensor | None, shape: tuple[int, ...]) -> None:
    if t is not None and tuple(t.shape) != shape:
        raise ValueError(
            f"fused kernel: {name} must have shape {shape}, got {tuple(t.shape)}; "
            "pass tensors shaped as lstmkit.nn.fused's docstrings describe"
        )


def _check_nonempty(xw: Tensor) -> None:
    if 0 in xw.shape:
        raise ValueError(
            f"fused kernel: xw must have at least one step, batch row and unit, got "
            f"{tuple(xw.shape)}; skip the call for an empty batch"
        )


def _check_zoneout(name: str, z: Tensor | None, shape: tuple[int, int, int]) -> None:
    if z is None:
        return
    try:
        ok = torch.broadcast_shapes(z.shape, shape) == shape
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(
            f"fused kernel: {name} must broadcast to {shape}, got {tuple(z.shape)}; "
            "pass the keep-previous weights per step, batch row and unit"
        )


def _mm_dtype(xw: Tensor) -> torch.dtype:
    """The dtype of the products: bfloat16 under CPU autocast to bfloat16 where the CPU
    runs bf16 natively (float32 elsewhere, with one warning per process), else xw's."""
    if (
        xw.dtype == torch.float32
        and torch.is_autocast_enabled("cpu")
        and torch.get_autocast_dtype("cpu") == torch.bfloat16
    ):
        if cpu.native_bf16():
            return torch.bfloat16
        cpu.warn_bf16_fallback("the fused kernel")
    if xw.dtype not in (torch.float32, torch.float64, torch.bfloat16):
        raise ValueError(
            f"fused kernel: expected xw in float32, float64 or bfloat16, got {xw.dtype}; "
            "cast the input or use backend='reference'"
        )
    return xw.dtype


def _real_steps(out: Tensor, lengths: Tensor | None) -> Tensor | float:
    """``(T, B, 1)`` 1.0 on real steps, 0.0 after each length (1.0 without lengths)."""
    if lengths is None:
        return 1.0
    steps = torch.arange(out.shape[0]).unsqueeze(1)
    return (steps < lengths.unsqueeze(0)).unsqueeze(-1).to(out.dtype)


def _needs_grad(*tensors: Tensor | None) -> bool:
    """Whether autograd will need a backward pass (else the kernel keeps no buffers)."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def _mask(t: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    if t is None:
        return None
    compute = torch.float32 if dtype == torch.bfloat16 else dtype
    return t.detach().to(compute)


def _lengths(lengths: Tensor | None, batch: int) -> Tensor | None:
    if lengths is None:
        return None
    _check("lengths", lengths, (batch,))
    return lengths.detach().to(device="cpu", dtype=torch.int64).contiguous()


def lstm_direction(
    xw: Tensor,
    h0: Tensor,
    c0: Tensor,
    w_hh: Tensor,
    b_hh: Tensor | None = None,
    w_hr: Tensor | None = None,
    peephole: Tensor | None = None,
    ln_weight_hh: Tensor | None = None,
    ln_weight_c: Tensor | None = None,
    ln_bias_c: Tensor | None = None,
    rd_mask: Tensor | None = None,
    zoneout_h: Tensor | None = None,
    zoneout_c: Tensor | None = None,
    lengths: Tensor | None = None,
    *,
    return_gates: bool = False,
) -> tuple[Tensor, Tensor, Tensor] | tuple[Tensor, Tensor, Tensor, Any]:
    """Run one LSTM direction over time with the fused kernel (SPEC-variants.md's LSTM step).

    Args:
        xw: ``(T, B, 4H)`` input projections of every step (with b_ih and their layer norm).
        h0: ``(B, P)`` initial hidden state (P = proj_size or H); c0: ``(B, H)``.
        w_hh: ``(4H, P)`` recurrent weight (after DropConnect, if any).
        b_hh: ``(4H,)`` recurrent bias, or the layer-norm bias when ``ln_weight_hh`` is given.
        w_hr: ``(P, H)`` projection weight or None.
        peephole: ``(3, H)`` rows c->i, c->f, c->o, or None.
        ln_weight_hh: ``(4H,)`` gain of the recurrent projection's layer norm, or None.
        ln_weight_c, ln_bias_c: ``(H,)`` gain and bias of the cell state's layer norm, or None.
        rd_mask: ``(B, P)`` recurrent-dropout mask, already scaled (0 or 1/(1-p)), or None.
        zoneout_h, zoneout_c: ``(T, B, P)`` / ``(T, B, H)`` keep-previous weights (may be
            stride-0 expanded), or None.
        lengths: ``(B,)`` int64 real lengths of right-padded sequences, or None.

        return_gates: also return ``LSTMGates`` (input, forget, candidate, output, cell),
            each ``(T, B, H)``, zero after each length; detached (for inspection).

    Returns:
        ``out (T, B, P)`` (zeros after each length), ``h_n (B, P)``, ``c_n (B, H)``, in the
        products' dtype (bfloat16 under bf16 autocast, else xw's dtype)[, gates].
    """
    if xw.dim() != 3 or xw.shape[2] % 4:
        raise ValueError(f"fused LSTM: xw must be (T, B, 4*H), got {tuple(xw.shape)}")
    steps, batch, h4 = xw.shape
    _check_nonempty(xw)
    hidden = h4 // 4
    size = h0.shape[-1]
    _check("h0", h0, (batch, size))
    _check("c0", c0, (batch, hidden))
    _check("w_hh", w_hh, (h4, size))
    _check("b_hh", b_hh, (h4,))
    _check("w_hr", w_hr, (size, hidden))
    if w_hr is None and size != hidden:
        raise ValueError(f"fused LSTM: h0 has {size} features but H={hidden} and no w_hr")
    _check("peephole", peephole, (3, hidden))
    _check("ln_weight_hh", ln_weight_hh, (h4,))
    _check("ln_weight_c", ln_weight_c, (hidden,))
    _check("ln_bias_c", ln_bias_c, (hidden,))
    _check("rd_mask", rd_mask, (batch, size))
    if ln_bias_c is not None and ln_weight_c is None:
        raise ValueError("fused LSTM: ln_bias_c given without ln_weight_c; pass both")
    mm = _mm_dtype(xw)
    _check_zoneout("zoneout_h", zoneout_h, (steps, batch, size))
    _check_zoneout("zoneout_c", zoneout_c, (steps, batch, hidden))
    save = _needs_grad(xw, h0, c0, w_hh, b_hh, w_hr, peephole, ln_weight_hh, ln_weight_c, ln_bias_c)
    sink: list | None = [] if return_gates else None
    with torch.autocast("cpu", enabled=False):
        res = _LSTMDirection.apply(
            xw.to(mm),
            h0,
            c0,
            w_hh.to(mm),
            b_hh,
            None if w_hr is None else w_hr.to(mm),
            peephole,
            ln_weight_hh,
            ln_weight_c,
            ln_bias_c,
            _mask(rd_mask, mm),
            _mask(zoneout_h, mm),
            _mask(zoneout_c, mm),
            _lengths(lengths, batch),
            save or return_gates,
            sink,
        )
    if sink is None:
        return res
    from lstmkit.nn.cells import LSTMGates

    return (*res, LSTMGates(*sink[0]))


def gru_direction(
    xw: Tensor,
    h0: Tensor,
    w_hh: Tensor,
    b_hh: Tensor | None = None,
    ln_weight_hh: Tensor | None = None,
    rd_mask: Tensor | None = None,
    zoneout_h: Tensor | None = None,
    lengths: Tensor | None = None,
    *,
    return_gates: bool = False,
) -> tuple[Tensor, Tensor] | tuple[Tensor, Tensor, Any]:
    """Run one GRU direction over time with the fused kernel (SPEC-variants.md's GRU step).

    Args:
        xw: ``(T, B, 3H)`` input projections (r, z, n) of every step, b_ih included.
        h0: ``(B, H)`` initial state; w_hh: ``(3H, H)``; b_hh: ``(3H,)`` or None (the
            layer-norm bias when ``ln_weight_hh`` is given).
        ln_weight_hh: ``(3H,)`` gain of the recurrent projection's layer norm, or None.
        rd_mask: ``(B, H)`` scaled recurrent-dropout mask or None.
        zoneout_h: ``(T, B, H)`` keep-previous weights (may be stride-0 expanded) or None.
        lengths: ``(B,)`` int64 real lengths or None.

        return_gates: also return ``GRUGates`` (reset, update, candidate, hidden), each
            ``(T, B, H)``, zero after each length; detached (for inspection).

    Returns:
        ``out (T, B, H)`` (zeros after each length) and ``h_n (B, H)``[, gates].
    """
    if xw.dim() != 3 or xw.shape[2] % 3:
        raise ValueError(f"fused GRU: xw must be (T, B, 3*H), got {tuple(xw.shape)}")
    steps, batch, h3 = xw.shape
    _check_nonempty(xw)
    hidden = h3 // 3
    _check("h0", h0, (batch, hidden))
    _check("w_hh", w_hh, (h3, hidden))
    _check("b_hh", b_hh, (h3,))
    _check("ln_weight_hh", ln_weight_hh, (h3,))
    _check("rd_mask", rd_mask, (batch, hidden))
    _check_zoneout("zoneout_h", zoneout_h, (steps, batch, hidden))
    mm = _mm_dtype(xw)
    save = _needs_grad(xw, h0, w_hh, b_hh, ln_weight_hh)
    sink: list | None = [] if return_gates else None
    with torch.autocast("cpu", enabled=False):
        res = _GRUDirection.apply(
            xw.to(mm),
            h0,
            w_hh.to(mm),
            b_hh,
            ln_weight_hh,
            _mask(rd_mask, mm),
            _mask(zoneout_h, mm),
            _lengths(lengths, batch),
            save or return_gates,
            sink,
        )
    if sink is None:
        return res
    from lstmkit.nn.cells import GRUGates

    return (*res, GRUGates(*sink[0]))


def slstm_direction(
    xw: Tensor,
    h0: Tensor,
    c0: Tensor,
    n0: Tensor,
    m0: Tensor,
    w_hh: Tensor,
    lengths: Tensor | None = None,
    *,
    exp_forget: bool = False,
    return_gates: bool = False,
) -> tuple[Tensor, ...]:
    """Run one sLSTM direction over time with the fused kernel (``xlstm_cells.slstm_step``).

    Args:
        xw: ``(T, B, 4H)`` input projections of every step (gates i, f, z, o, bias included),
            or the same as a ``(T, B, 4, heads, d)`` view of any layout with unit stride in d
            (the head-wise projection's ``(heads, T, B, 4, d)`` permuted), read in place.
        h0, c0, n0, m0: ``(B, H)`` initial hidden, cell, normaliser and stabiliser states.
        w_hh: ``(heads, 4*d, d)`` block-diagonal recurrent weights (``heads * d = H``).
        lengths: ``(B,)`` int64 real lengths of right-padded sequences, or None.
        exp_forget: exponential forget gate (else sigmoid).
        return_gates: also return ``SLSTMGates`` (i', f', z, o, c, n, m), each ``(T, B, H)``,
            zero after each length; detached (for inspection).

    Returns:
        ``out (T, B, H)`` (h of every step, zeros after each length; not group-normed) and
        ``h_n, c_n, n_n, m_n (B, H)``, in the products' dtype[, gates].
    """
    if w_hh.dim() != 3 or w_hh.shape[1] != 4 * w_hh.shape[2]:
        raise ValueError(f"fused sLSTM: w_hh must be (heads, 4*d, d), got {tuple(w_hh.shape)}")
    heads, d = w_hh.shape[0], w_hh.shape[2]
    if xw.dim() == 3 and xw.shape[2] == 4 * heads * d:
        xw = xw.reshape(xw.shape[0], xw.shape[1], 4, heads, d)
    if xw.dim() != 5 or tuple(xw.shape[2:]) != (4, heads, d) or xw.stride(4) != 1:
        raise ValueError(
            f"fused sLSTM: xw must be (T, B, 4*H) or a (T, B, 4, {heads}, {d}) view with unit "
            f"stride in the last dimension for w_hh of shape {tuple(w_hh.shape)}, got "
            f"{tuple(xw.shape)}"
        )
    batch, hidden = xw.shape[1], heads * d
    _check_nonempty(xw)
    for name, t in (("h0", h0), ("c0", c0), ("n0", n0), ("m0", m0)):
        _check(name, t, (batch, hidden))
    mm = _mm_dtype(xw)
    save = _needs_grad(xw, h0, c0, n0, m0, w_hh)
    sink: list | None = [] if return_gates else None
    with torch.autocast("cpu", enabled=False):
        res = _SLSTMDirection.apply(
            xw.to(mm),
            h0,
            c0,
            n0,
            m0,
            w_hh.to(mm),
            _lengths(lengths, batch),
            bool(exp_forget),
            save or return_gates,
            sink,
        )
    return res if sink is None else (*res, sink[0])


def main() -> None:
    """``python -m lstmkit.nn.fused``: build the kernel now (the set-up step of ``make``) and
    say what it will use; exits 0 without a compiler (lstmkit then runs its reference loop)."""
    if available():
        print(f"lstmkit fused kernel: ready ({cpu.describe()})")
    else:
        print(f"lstmkit fused kernel: unavailable, the reference loop runs ({_state['error']})")


if __name__ == "__main__":
    main()
