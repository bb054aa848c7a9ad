"""The xLSTM cells (Beck et al. 2024): sLSTM and mLSTM, their equations and cell specs.

Both cells use exponential gating held in range by a stabiliser state ``m``: with
``ĩ``, ``f̃`` the gate pre-activations, ``log f = log σ(f̃)`` (a sigmoid forget gate,
the reference package's choice) or ``f̃`` (an exponential forget gate, ``forget_gate=
"exp"``), every exponential is taken relative to ``m``, so nothing overflows and the
outputs are what the unstabilised equations give.

sLSTM (gate order i, f, z, o; the recurrent weights block-diagonal, one block per head)::

    ĩ, f̃, z̃, õ = W x_t + b + R h_{t-1}            R: one (4d x d) block per head
    m_t = max(log f_t + m_{t-1}, ĩ_t)              (ĩ_t where n_{t-1} = 0: nothing to keep)
    i'_t = exp(ĩ_t - m_t)                          stabilised input gate
    f'_t = exp(log f_t + m_{t-1} - m_t)            stabilised forget gate (at most 1)
    c_t = f'_t c_{t-1} + i'_t tanh(z̃_t)            cell state
    n_t = f'_t n_{t-1} + i'_t                      normaliser state
    h_t = σ(õ_t) c_t / n_t                         hidden state
    y_t = GroupNorm_heads(h_t)                     the output (head-wise, gain only)

mLSTM (per head, ``d`` = head size; ``C`` a d x d matrix memory, ``n`` a d-vector)::

    m_t = max(log f_t + m_{t-1}, ĩ_t)
    i'_t = exp(ĩ_t - m_t),  f'_t = exp(log f_t + m_{t-1} - m_t)
    C_t = f'_t C_{t-1} + i'_t k_t v_t^T            k_t scaled by 1/sqrt(d)
    n_t = f'_t n_{t-1} + i'_t k_t
    h̃_t = C_t^T q_t / (max(|n_t^T q_t|, exp(-m_t)) + 1e-6)

The mLSTM has a chunkwise-parallel form (:func:`mlstm_chunkwise`): within a chunk of L
steps the contributions are an L x L decay matrix (as in attention), between chunks the
state (C, n, m) is carried, so memory grows with T * L instead of T^2, and the stabiliser
at every step is the recurrent form's own ``m_t``: both forms give the same result. One
chunk over the whole sequence is the parallel form.

The pieces:

- ``slstm_step`` / ``mlstm_step`` / ``mlstm_chunkwise``: the equations, plain tensors.
- ``SLSTMSpec`` / ``MLSTMSpec``: the cell specs (state, parameters, projections, one step
  and, for the sLSTM, the fused kernel's direction; for the mLSTM the chunkwise form).
  ``MLSTMSpec(block=True)`` is the reference package's whole mLSTM layer around the cell:
  up-projection, causal convolution, head-wise q/k/v, gates, learnable skip, output gate
  and down-projection; ``block=False`` the bare cell of the paper (dense q/k/v and an
  output gate ``σ(õ)``).
- ``SLSTMCell`` / ``MLSTMCell``: one step as a module (the bare cells).
"""

import math
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmkit.nn import cpu
from lstmkit.nn.cells import LN_EPS, CellSpec, ParamSpec, _CellBase, init_parameter

MLSTM_EPS = 1e-6
FORGET_GATES = ("sigmoid", "exp")


class SLSTMGates(NamedTuple):
    """Activations of sLSTM steps: the stabilised gates as applied, and the three states."""

    input: Tensor  # i'_t = exp(ĩ_t - m_t)
    forget: Tensor  # f'_t = exp(log f_t + m_{t-1} - m_t)
    candidate: Tensor  # z_t = tanh(z̃_t)
    output: Tensor  # o_t = σ(õ_t)
    cell: Tensor  # c_t
    normalizer: Tensor  # n_t
    stabilizer: Tensor  # m_t


class MLSTMGates(NamedTuple):
    """Per-head activations of mLSTM steps: ``(..., num_heads)`` each."""

    input: Tensor  # i'_t
    forget: Tensor  # f'_t
    stabilizer: Tensor  # m_t


def _positive_int(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _check_bf16(name: str, dtype: Any, what: str = "dtype") -> None:
    """bfloat16 only where the CPU runs it natively: ValueError naming the setting."""
    if dtype == torch.bfloat16 and not cpu.native_bf16():
        raise ValueError(
            f"{name}: {what}=torch.bfloat16 needs a CPU with native bf16 "
            f"({cpu.bf16_unsupported_reason()}); use torch.float32"
        )


def _check_heads(name: str, width: int, num_heads: int, what: str = "hidden_size") -> None:
    if width % num_heads:
        raise ValueError(
            f"{name} ({num_heads}) must divide {what} ({width}): the heads split it evenly"
        )


def log_forget(f_raw: Tensor, forget: str) -> Tensor:
    """``log f``: ``log σ(f̃)`` for the sigmoid forget gate, ``f̃`` for the exponential one."""
    return f_raw if forget == "exp" else F.logsigmoid(f_raw)


def head_norm(h: Tensor, weight: Tensor | None, num_heads: int) -> Tensor:
    """Group norm with one group per head over the last dimension (gain only, eps 1e-5):
    a layer norm of each head's units (several times faster than ``F.group_norm`` here)."""
    width = int(h.shape[-1])
    d = width // num_heads
    y = F.layer_norm(h.reshape(*h.shape[:-1], num_heads, d), (d,), None, None, LN_EPS)
    if weight is not None:
        y = y * weight.view(num_heads, d)
    return y.reshape(h.shape)


def headwise_linear(
    x: Tensor, weight: Tensor, bias: Tensor | None, blocks: int, groups: int = 1
) -> Tensor:
    """A block-diagonal projection: input and output split into ``blocks`` equal parts.

    ``weight`` is ``(out, in // blocks)`` with rows in ``groups`` (the gates) of ``blocks``
    blocks each: row ``(g * blocks + k) * rows + j`` belongs to block k and reads only that
    block's inputs. Returns ``(..., out)``, in the rows' order.
    """
    out, cols = weight.shape
    xb = x.reshape(*x.shape[:-1], blocks, cols)
    w = weight.view(groups, blocks, out // (groups * blocks), cols)
    y = torch.einsum("...kd,gkjd->...gkj", xb, w).reshape(*x.shape[:-1], out)
    return y if bias is None else y + bias


# ------------------------------------------------------------------------------- sLSTM
def slstm_recurrent(h: Tensor, weight_hh: Tensor) -> Tensor:
    """``R h``: the head-wise recurrent product, gate-major ``(batch, 4*hidden)``.

    ``weight_hh`` is ``(num_heads, 4*d, d)``: head k's rows are its gates i, f, z, o (d rows
    each), its columns that head's units of h.
    """
    heads, rows, d = weight_hh.shape
    r = torch.einsum("bki,kgi->bkg", h.reshape(h.shape[0], heads, d), weight_hh)
    return r.view(h.shape[0], heads, 4, d).transpose(1, 2).reshape(h.shape[0], heads * rows)


def slstm_step(
    xw: Tensor,
    h: Tensor,
    c: Tensor,
    n: Tensor,
    m: Tensor,
    weight_hh: Tensor,
    forget: str = "sigmoid",
) -> tuple[Tensor, Tensor, Tensor, Tensor, SLSTMGates]:
    """One sLSTM step (the module docstring's equations).

    Args:
        xw: input projection ``W x_t + b`` of this step, ``(batch, 4*hidden)``, gates i, f, z, o.
        h, c, n, m: the previous states, ``(batch, hidden)`` each.
        weight_hh: ``(num_heads, 4*d, d)`` block-diagonal recurrent weights.
        forget: ``"sigmoid"`` or ``"exp"``.

    Returns:
        ``(h_t, c_t, n_t, m_t, gates)``.
    """
    i_raw, f_raw, z_raw, o_raw = (xw + slstm_recurrent(h, weight_hh)).chunk(4, dim=-1)
    logf = log_forget(f_raw, forget)
    m_new = torch.where(n == 0, i_raw, torch.maximum(logf + m, i_raw))
    i = torch.exp(i_raw - m_new)
    f = torch.exp(torch.clamp(logf + m - m_new, max=0.0))
    z = torch.tanh(z_raw)
    o = torch.sigmoid(o_raw)
    c_new = f * c + i * z
    n_new = f * n + i
    h_new = o * c_new / n_new
    return h_new, c_new, n_new, m_new, SLSTMGates(i, f, z, o, c_new, n_new, m_new)


def slstm_gates_from_raw(
    i_raw: Tensor, f_raw: Tensor, m_prev: Tensor, m: Tensor, forget: str
) -> tuple[Tensor, Tensor]:
    """The stabilised gates ``(i', f')`` from the pre-activations and the stabilisers."""
    logf = log_forget(f_raw, forget)
    return torch.exp(i_raw - m), torch.exp(torch.clamp(logf + m_prev - m, max=0.0))


# ------------------------------------------------------------------------------- mLSTM
def mlstm_step(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    i_raw: Tensor,
    logf: Tensor,
    C: Tensor,
    n: Tensor,
    m: Tensor,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """One mLSTM step per head (the module docstring's equations).

    Args:
        q, k, v: ``(batch, heads, d)`` (k unscaled: the step divides it by sqrt(d)).
        i_raw, logf: ``(batch, heads)`` input-gate pre-activation and log forget gate.
        C: ``(batch, heads, d, d)``; n: ``(batch, heads, d)``; m: ``(batch, heads)``.

    Returns:
        ``(h̃_t (batch, heads, d), C_t, n_t, m_t, i'_t, f'_t)``.
    """
    k = k / math.sqrt(k.shape[-1])
    m_new = torch.maximum(logf + m, i_raw)
    f = torch.exp(logf + m - m_new)
    i = torch.exp(i_raw - m_new)
    C_new = f[..., None, None] * C + i[..., None, None] * (k.unsqueeze(-1) * v.unsqueeze(-2))
    n_new = f[..., None] * n + i[..., None] * k
    num = (q.unsqueeze(-1) * C_new).sum(-2)
    den = torch.maximum((q * n_new).sum(-1).abs(), torch.exp(-m_new)) + MLSTM_EPS
    return num / den[..., None], C_new, n_new, m_new, i, f


def mlstm_chunkwise(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    i_raw: Tensor,
    logf: Tensor,
    C0: Tensor,
    n0: Tensor,
    m0: Tensor,
    chunk_size: int | None,
) -> tuple[Tensor, tuple[Tensor, Tensor, Tensor], Tensor]:
    """The mLSTM over a whole sequence, chunk by chunk (``chunk_size=None``: one chunk).

    Within a chunk every step's output comes from an L x L decay matrix (the parallel
    form) plus the state carried in from the chunks before; the state at each chunk's end
    follows from the chunk's keys and values in one product. The stabiliser at step t is
    the recurrent form's ``m_t`` (the largest exponent of every term that reaches step t,
    the carried state's included), so the result is the recurrent form's.

    Args:
        q, k, v: ``(batch, heads, T, d)`` (k unscaled).
        i_raw, logf: ``(batch, heads, T)``; a step with ``i_raw = -inf`` and ``logf = 0``
            leaves the state unchanged (padding).
        C0, n0, m0: the initial state, ``(batch, heads, d, d)``, ``(..., d)``, ``(batch, heads)``.
        chunk_size: steps per chunk, or None for the whole sequence.

    Returns:
        ``h̃ (batch, heads, T, d)``, the final ``(C, n, m)`` and ``m_t`` of every step
        ``(batch, heads, T)``.
    """
    B, NH, T, d = q.shape
    L = T if chunk_size is None else min(chunk_size, T)
    NC = -(-T // L)
    pad = NC * L - T
    if pad:
        q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
        i_raw = F.pad(i_raw, (0, pad), value=-math.inf)
        logf = F.pad(logf, (0, pad))
    k = k / math.sqrt(d)
    qc, kc, vc = (t.reshape(B, NH, NC, L, d) for t in (q, k, v))
    ic, fc = i_raw.reshape(B, NH, NC, L), logf.reshape(B, NH, NC, L)
    Fc = fc.cumsum(-1)  # log forget from the chunk's start to step t, inclusive
    Fl = Fc[..., -1]  # over the whole chunk
    # the chunk's own contribution to its end state, relative to its largest exponent
    g = Fl.unsqueeze(-1) - Fc + ic
    # a chunk of padding only has every exponent -inf: a finite floor keeps exp(g - m_loc)
    # at 0 (not exp(nan)) and its gradient at 0
    m_loc = g.amax(-1).clamp_min(torch.finfo(g.dtype).min)
    w = torch.exp(g - m_loc.unsqueeze(-1)).unsqueeze(-1)
    kv = (kc * w).transpose(-1, -2) @ vc  # (B, NH, NC, d, d)
    ks = (kc * w).sum(-2)  # (B, NH, NC, d)
    # the state carried between chunks (a short loop over chunks, d x d work each)
    Cs, ns, ms = [], [], []
    C, n, m = C0, n0, m0
    for j in range(NC):
        Cs.append(C)
        ns.append(n)
        ms.append(m)
        m_new = torch.maximum(Fl[:, :, j] + m, m_loc[:, :, j])
        a = torch.exp(Fl[:, :, j] + m - m_new)
        b = torch.exp(m_loc[:, :, j] - m_new)
        C = a[..., None, None] * C + b[..., None, None] * kv[:, :, j]
        n = a[..., None] * n + b[..., None] * ks[:, :, j]
        m = m_new
    C_in, n_in, m_in = torch.stack(Cs, 2), torch.stack(ns, 2), torch.stack(ms, 2)
    # within each chunk: decay matrix D[t, s] = F_t - F_s + ĩ_s (s <= t), in log space
    causal = torch.ones(L, L, dtype=torch.bool, device=q.device).tril()
    log_d = (Fc.unsqueeze(-1) - Fc.unsqueeze(-2) + ic.unsqueeze(-2)).masked_fill(~causal, -math.inf)
    log_inter = Fc + m_in.unsqueeze(-1)  # the carried state's exponent at step t
    stab = torch.maximum(log_d.amax(-1), log_inter)  # = the recurrent form's m_t
    S = (qc @ kc.transpose(-1, -2)) * torch.exp(log_d - stab.unsqueeze(-1))
    e = torch.exp(log_inter - stab)
    num = S @ vc + e.unsqueeze(-1) * (qc @ C_in)
    den = S.sum(-1) + e * (qc * n_in.unsqueeze(-2)).sum(-1)
    den = torch.maximum(den.abs(), torch.exp(-stab)) + MLSTM_EPS
    h = (num / den.unsqueeze(-1)).reshape(B, NH, NC * L, d)[:, :, :T]
    return h, (C, n, m), stab.reshape(B, NH, NC * L)[:, :, :T]


# ------------------------------------------------------------------------ cell specs
def _small_init(t: Tensor, dim: int) -> None:
    """The reference package's "small init": normal, std sqrt(2 / (5 dim))."""
    nn.init.normal_(t, 0.0, math.sqrt(2 / (5 * dim)))


@dataclass(frozen=True)
class SLSTMSpec(CellSpec):
    """The sLSTM cell: state ``(h, c, n, m)``, ``num_heads`` recurrent blocks.

    ``forget``: ``"sigmoid"`` or ``"exp"``. ``headwise_input``: the input projection is
    block-diagonal like the recurrent one (the reference package's layout; ``weight_ih``
    is then ``(4*hidden, input // num_heads)``). ``group_norm``: the output is the
    head-wise group norm of h (parameter ``gn_weight``), as in the reference layer.
    """

    num_heads: int = 1
    forget: str = "sigmoid"
    headwise_input: bool = False
    group_norm: bool = True

    num_gates: ClassVar[int] = 4
    state_names: ClassVar[tuple[str, ...]] = ("h", "c", "n", "m")
    gate_type: ClassVar[type] = SLSTMGates

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive_int("num_heads", self.num_heads)
        _check_heads("num_heads", self.hidden_size, self.num_heads)
        if self.forget not in FORGET_GATES:
            raise ValueError(f"forget_gate must be one of {FORGET_GATES}, got {self.forget!r}")
        for name in ("headwise_input", "group_norm", "bias"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def state_sizes(self) -> tuple[int, ...]:
        return (self.hidden_size,) * 4

    @property
    def zoneout_p(self) -> tuple[float, ...]:
        return (0.0,) * 4

    @property
    def is_plain(self) -> bool:
        return False  # torch has no sLSTM kernel

    def plain_when(self, training: bool) -> bool:
        return False

    def check_input_size(self, input_size: int) -> None:
        if self.headwise_input:
            _check_heads(
                "num_heads", input_size, self.num_heads, "the input size with headwise_input"
            )

    def parameters(self, input_size: int) -> list[ParamSpec]:
        self.check_input_size(input_size)
        h, heads, d = self.hidden_size, self.num_heads, self.head_size
        cols = input_size // heads if self.headwise_input else input_size
        specs = [
            ParamSpec("weight_ih", (4 * h, cols), "uniform"),
            ParamSpec("weight_hh", (heads, 4 * d, d), "uniform"),
        ]
        if self.bias:
            specs.append(ParamSpec("bias_ih", (4 * h,), "uniform"))
        if self.group_norm:
            specs.append(ParamSpec("gn_weight", (h,), "ones"))
        return specs

    def xlstm_init(self, params: dict[str, Tensor], input_size: int, ratio: float = 0.0) -> None:
        """The reference package's initialisation: small-init input weights, zero recurrent
        weights, a power-law forget-gate bias per head (``ratio``: depth in the stack, 0..1),
        other biases zero, group-norm gains 1."""
        with torch.no_grad():
            _small_init(params["weight_ih"], input_size)
            params["weight_hh"].zero_()
            if "bias_ih" in params:
                b = params["bias_ih"].view(4, self.num_heads, self.head_size)
                b.zero_()
                d = self.head_size
                x = torch.arange(d, dtype=torch.float64) / max(d - 1, 1)
                b[1] = (5.0 - 12.0 * x ** (0.3 + 1.3 * ratio)).to(b.dtype)
            if "gn_weight" in params:
                params["gn_weight"].fill_(1.0)

    def project_input(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        if self.headwise_input:
            w, b = params["weight_ih"], params.get("bias_ih")
            return headwise_linear(x, w, b, self.num_heads, groups=4)
        return F.linear(x, params["weight_ih"], params.get("bias_ih"))

    def fused_project_input(self, kernels, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        """The projection for the fused kernel. Head-wise: one batched product per head,
        ``(heads, T, B, 4, d)`` returned as the ``(T, B, 4, heads, d)`` view the kernel
        reads in place (the gate-major layout would cost a copy each way)."""
        if not self.headwise_input:
            return super().fused_project_input(kernels, x, params)
        heads, d = self.num_heads, self.head_size
        w, b = params["weight_ih"], params.get("bias_ih")
        cols = w.shape[1]
        lead = x.shape[:-1]
        xb = x.reshape(-1, heads, cols).transpose(0, 1)  # (heads, N, cols)
        wb = w.view(4, heads, d, cols).permute(1, 3, 0, 2).reshape(heads, cols, 4 * d)
        y = torch.bmm(xb, wb)
        if b is not None:  # in place: bmm keeps no output for its backward
            y.add_(b.view(4, heads, d).transpose(0, 1).reshape(heads, 1, 4 * d))
        return y.view(heads, *lead, 4, d).permute(*range(1, len(lead) + 1), len(lead) + 1, 0, -1)

    def output(self, h: Tensor, params: dict[str, Tensor]) -> Tensor:
        """What the layer outputs for hidden states h: their head-wise group norm."""
        return head_norm(h, params["gn_weight"], self.num_heads) if self.group_norm else h

    def step(self, xw, state, params, rd_mask, zoneout):
        h, c, n, m, gates = slstm_step(xw, *state, params["weight_hh"], self.forget)
        return self.output(h, params), (h, c, n, m), gates

    def fused_direction(self, kernels, xw, state, params, masks, lengths, return_gates=False):
        out, h, c, n, m, *gates = kernels.slstm_direction(
            xw, *state, params["weight_hh"], lengths,
            exp_forget=self.forget == "exp", return_gates=return_gates,
        )  # fmt: skip
        return self.output(out, params), (h, c, n, m), (gates[0] if gates else None)


@dataclass(frozen=True)
class MLSTMSpec(CellSpec):
    """The mLSTM cell, bare (``block=False``) or inside the reference package's layer.

    Bare cell (the paper's): ``weight_ih`` projects the input to q, k, v, õ (hidden each)
    and ĩ, f̃ (one per head); the output is ``σ(õ) h̃``; state ``(C, n, m)``.

    Block (``block=True``, the reference package's ``mLSTMLayer``): up-projection to
    ``2 * inner_size`` (``weight_up``; the mLSTM branch and the output gate's branch z),
    a causal depth-wise convolution of ``conv_kernel`` steps with SiLU (``conv_weight``,
    ``conv_bias``), q and k from the convolved branch and v from the branch itself through
    block-diagonal projections of ``qkv_blocksize`` (``weight_q/k/v``), gates from
    ``[q, k, v]`` (``weight_gates``), the cell, a head-wise group norm (``norm_weight``),
    a learnable skip of the convolved branch (``skip``), the output gate ``SiLU(z)`` and a
    down-projection to ``hidden_size`` (``weight_down``). ``bias`` is the reference's: on
    the up/down and q/k/v projections (the gates and the convolution always have one).
    State ``(C, n, m, conv)``, conv holding the branch's last ``conv_kernel - 1`` steps.

    ``chunk_size``: steps per chunk of the chunkwise form (None: the parallel form).
    """

    num_heads: int = 1
    forget: str = "sigmoid"
    block: bool = False
    inner_size: int = 0
    conv_kernel: int = 4
    qkv_blocksize: int = 4
    chunk_size: int | None = 64

    gate_type: ClassVar[type] = MLSTMGates

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive_int("num_heads", self.num_heads)
        if self.forget not in FORGET_GATES:
            raise ValueError(f"forget_gate must be one of {FORGET_GATES}, got {self.forget!r}")
        if self.chunk_size is not None:
            _positive_int("chunk_size", self.chunk_size)
        for name in ("block", "bias"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.block:
            _positive_int("inner_size", self.inner_size)
            _positive_int("conv_kernel", self.conv_kernel)
            _positive_int("qkv_blocksize", self.qkv_blocksize)
            _check_heads("num_heads", self.inner_size, self.num_heads, "inner_size")
            _check_heads("qkv_blocksize", self.inner_size, self.qkv_blocksize, "inner_size")
        else:
            _check_heads("num_heads", self.hidden_size, self.num_heads)

    @property
    def width(self) -> int:
        """Features of the cell's q, k, v and h̃: inner_size in a block, else hidden_size."""
        return self.inner_size if self.block else self.hidden_size

    @property
    def head_size(self) -> int:
        return self.width // self.num_heads

    @property
    def state_names(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("C", "n", "m", "conv") if self.block else ("C", "n", "m")

    @property
    def state_sizes(self) -> tuple[int, ...]:
        heads, d = self.num_heads, self.head_size
        sizes = (heads * d * d, heads * d, heads)
        return (*sizes, (self.conv_kernel - 1) * self.inner_size) if self.block else sizes

    @property
    def zoneout_p(self) -> tuple[float, ...]:
        return (0.0,) * len(self.state_sizes)

    @property
    def is_plain(self) -> bool:
        return False

    def plain_when(self, training: bool) -> bool:
        return False

    def parameters(self, input_size: int) -> list[ParamSpec]:
        h, heads = self.hidden_size, self.num_heads
        if not self.block:
            specs = [ParamSpec("weight_ih", (4 * h + 2 * heads, input_size), "uniform")]
            if self.bias:
                specs.append(ParamSpec("bias_ih", (4 * h + 2 * heads,), "uniform"))
            return specs
        inner, bs = self.inner_size, self.qkv_blocksize
        specs = [ParamSpec("weight_up", (2 * inner, input_size), "uniform")]
        if self.bias:
            specs.append(ParamSpec("bias_up", (2 * inner,), "zeros"))
        specs += [
            ParamSpec("conv_weight", (inner, self.conv_kernel), "uniform"),
            ParamSpec("conv_bias", (inner,), "uniform"),
        ]
        for name in ("q", "k", "v"):
            specs.append(ParamSpec(f"weight_{name}", (inner, bs), "uniform"))
            if self.bias:
                specs.append(ParamSpec(f"bias_{name}", (inner,), "zeros"))
        specs += [
            ParamSpec("weight_gates", (2 * heads, 3 * inner), "zeros"),
            ParamSpec("bias_gates", (2 * heads,), "zeros"),
            ParamSpec("norm_weight", (inner,), "ones"),
            ParamSpec("skip", (inner,), "ones"),
            ParamSpec("weight_down", (h, inner), "uniform"),
        ]
        if self.bias:
            specs.append(ParamSpec("bias_down", (h,), "zeros"))
        return specs

    def xlstm_init(self, params: dict[str, Tensor], input_size: int, ratio: float = 0.0) -> None:
        """The reference package's initialisation (``mLSTMLayer.reset_parameters``; the
        bare cell's projections like its q/k/v, its gates like its cell's)."""
        heads = self.num_heads
        with torch.no_grad():
            for name, p in params.items():
                if name.startswith("bias_") and name != "bias_gates":
                    p.zero_()
            if not self.block:
                h = self.hidden_size
                w = params["weight_ih"]
                _small_init(w[: 4 * h], input_size)
                w[4 * h :].zero_()
                if "bias_ih" in params:
                    b = params["bias_ih"]
                    nn.init.normal_(b[4 * h : 4 * h + heads], 0.0, 0.1)
                    b[4 * h + heads :] = torch.linspace(3.0, 6.0, heads, dtype=b.dtype)
                return
            _small_init(params["weight_up"], input_size)
            nn.init.normal_(params["weight_down"], 0.0, 2 / math.sqrt(input_size))
            for name in ("weight_q", "weight_k", "weight_v"):
                _small_init(params[name], input_size)
            bound = 1 / math.sqrt(self.conv_kernel)  # nn.Conv1d's default for a depth-wise conv
            nn.init.uniform_(params["conv_weight"], -bound, bound)
            nn.init.uniform_(params["conv_bias"], -bound, bound)
            params["weight_gates"].zero_()
            nn.init.normal_(params["bias_gates"][:heads], 0.0, 0.1)
            params["bias_gates"][heads:] = torch.linspace(
                3.0, 6.0, heads, dtype=params["bias_gates"].dtype
            )
            params["norm_weight"].fill_(1.0)
            params["skip"].fill_(1.0)

    # -- the pieces of a step, shared by the recurrent and the chunkwise forms
    def project_input(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        """Bare cell: ``[q, k, v, õ, ĩ, f̃]``; block: the up-projection ``[x_m, z]``."""
        if self.block:
            return F.linear(x, params["weight_up"], params.get("bias_up"))
        return F.linear(x, params["weight_ih"], params.get("bias_ih"))

    def _conv(self, window: Tensor, params: dict[str, Tensor]) -> Tensor:
        """SiLU of the causal convolution; ``window`` is ``(kernel, ..., inner)``, oldest first."""
        w = params["conv_weight"]
        y = params["conv_bias"] + sum(w[:, j] * window[j] for j in range(self.conv_kernel))
        return F.silu(y)

    def _qkv_gates(self, xm: Tensor, xc: Tensor, params: dict[str, Tensor]):
        """The block's q, k (from the convolved branch), v (from the branch) and ĩ, f̃."""
        bs = self.inner_size // self.qkv_blocksize
        q = headwise_linear(xc, params["weight_q"], params.get("bias_q"), bs)
        k = headwise_linear(xc, params["weight_k"], params.get("bias_k"), bs)
        v = headwise_linear(xm, params["weight_v"], params.get("bias_v"), bs)
        gates = F.linear(torch.cat([q, k, v], -1), params["weight_gates"], params["bias_gates"])
        i_raw, f_raw = gates.chunk(2, -1)
        return q, k, v, i_raw, f_raw

    def _finish(
        self, ht: Tensor, xc: Tensor | None, gate: Tensor, params: dict[str, Tensor]
    ) -> Tensor:
        """From h̃ (``(..., width)``) to the output: the block's norm, skip, gate and
        down-projection, or the bare cell's ``σ(õ) h̃``."""
        if not self.block:
            return torch.sigmoid(gate) * ht
        hn = head_norm(ht, params["norm_weight"], self.num_heads) + params["skip"] * xc
        return F.linear(hn * F.silu(gate), params["weight_down"], params.get("bias_down"))

    def _split(self, xw: Tensor) -> tuple[Tensor, ...]:
        h, heads = self.hidden_size, self.num_heads
        return xw.split([h, h, h, h, heads, heads], dim=-1)

    def step(self, xw, state, params, rd_mask, zoneout):
        heads, d = self.num_heads, self.head_size
        batch = xw.shape[0]
        C, n, m = (
            state[0].view(batch, heads, d, d),
            state[1].view(batch, heads, d),
            state[2],
        )
        extra: tuple[Tensor, ...] = ()
        if self.block:
            xm, gate = xw.chunk(2, -1)
            past = state[3].view(batch, self.conv_kernel - 1, self.inner_size).transpose(0, 1)
            window = torch.cat([past, xm.unsqueeze(0)], 0)
            xc = self._conv(window, params)
            q, k, v, i_raw, f_raw = self._qkv_gates(xm, xc, params)
            extra = (window[1:].transpose(0, 1).reshape(batch, -1),)
        else:
            q, k, v, gate, i_raw, f_raw = self._split(xw)
            xc = None
        logf = log_forget(f_raw, self.forget)
        ht, C, n, m, i, f = mlstm_step(
            *(t.reshape(batch, heads, d) for t in (q, k, v)), i_raw, logf, C, n, m
        )
        out = self._finish(ht.reshape(batch, -1), xc, gate, params)
        return out, (C.reshape(batch, -1), n.reshape(batch, -1), m, *extra), MLSTMGates(i, f, m)

    def sequence_direction(self, xw, state, params, lengths, return_gates=False):
        """One direction over the whole sequence in the chunkwise form (``chunk_size``).

        ``xw`` is ``(time, batch, ...)`` from :meth:`project_input`; ``lengths`` (or None)
        the real lengths: later steps leave the state alone and output zeros. Returns
        ``(out, final states, gates or None)`` like ``fused_direction``.
        """
        T, batch = xw.shape[0], xw.shape[1]
        heads, d = self.num_heads, self.head_size
        real = None
        if lengths is not None:
            steps = torch.arange(T, device=xw.device).unsqueeze(1)
            real = steps < lengths.to(xw.device).unsqueeze(0)  # (T, B)
        extra: tuple[Tensor, ...] = ()
        if self.block:
            xm, gate = xw.chunk(2, -1)
            K, inner = self.conv_kernel, self.inner_size
            past = state[3].view(batch, K - 1, inner).transpose(0, 1)
            ext = torch.cat([past, xm], 0)  # (K - 1 + T, B, inner)
            xc = self._conv([ext[j : j + T] for j in range(K)], params)
            q, k, v, i_raw, f_raw = self._qkv_gates(xm, xc, params)
            # the branch's last K - 1 real steps, per sequence (ext is shifted by K - 1)
            if K == 1:
                conv_n = state[3]
            else:
                ends = torch.full((batch,), T, device=xw.device) if lengths is None else lengths
                idx = (
                    ends.to(xw.device).unsqueeze(0) + torch.arange(K - 1, device=xw.device)[:, None]
                )
                rows = ext.gather(0, idx.unsqueeze(-1).expand(K - 1, batch, inner))
                conv_n = rows.transpose(0, 1).reshape(batch, -1)
            extra = (conv_n,)
        else:
            q, k, v, gate, i_raw, f_raw = self._split(xw)
            xc = None
        logf = log_forget(f_raw, self.forget)
        if real is not None:
            mask = real.unsqueeze(-1)
            i_raw = torch.where(mask, i_raw, torch.full_like(i_raw, -math.inf))
            logf = torch.where(mask, logf, torch.zeros_like(logf))

        def heads_first(t: Tensor) -> Tensor:  # (T, B, heads*d) -> (B, heads, T, d)
            return t.reshape(T, batch, heads, -1).permute(1, 2, 0, 3)

        C0 = state[0].view(batch, heads, d, d)
        n0, m0 = state[1].view(batch, heads, d), state[2]
        ht, (C, n, m), stab = mlstm_chunkwise(
            heads_first(q), heads_first(k), heads_first(v),
            i_raw.permute(1, 2, 0), logf.permute(1, 2, 0), C0, n0, m0, self.chunk_size,
        )  # fmt: skip
        ht = ht.permute(2, 0, 1, 3).reshape(T, batch, -1)
        out = self._finish(ht, xc, gate, params)
        if real is not None:
            out = torch.where(real.unsqueeze(-1), out, torch.zeros_like(out))
        gates = None
        if return_gates:
            m_t = stab.permute(2, 0, 1)  # (T, B, heads)
            m_prev = torch.cat([m0.unsqueeze(0), m_t[:-1]], 0)
            i_t = torch.exp(i_raw - m_t)
            f_t = torch.exp(logf + m_prev - m_t)
            if real is not None:
                mask = real.unsqueeze(-1)
                i_t, f_t, m_t = (torch.where(mask, g, torch.zeros_like(g)) for g in (i_t, f_t, m_t))
            gates = MLSTMGates(i_t, f_t, m_t)
        return out, (C.reshape(batch, -1), n.reshape(batch, -1), m, *extra), gates


# ---------------------------------------------------------------------- cell modules
class _XCellBase(_CellBase):
    """A bare xLSTM cell as a module: parameters from the spec, the reference package's
    initialisation (``init="xlstm"``) or uniform ``±1/sqrt(hidden_size)`` (``"torch"``)."""

    def __init__(self, input_size: int, spec: CellSpec, init: str, **factory) -> None:
        if init not in ("xlstm", "torch"):
            raise ValueError(f"init must be one of ('xlstm', 'torch'), got {init!r}")
        _check_bf16(type(self).__name__, factory.get("dtype"))
        self.init = init
        super().__init__(input_size, spec, **factory)

    def reset_parameters(self) -> None:
        params = dict(self.named_parameters())
        if self.init == "xlstm":
            self.spec.xlstm_init(params, self.input_size)
            return
        for name, p in params.items():
            init_parameter(p, self._inits[name], self.hidden_size)

    def _variant_options(self) -> dict[str, Any]:
        return {"num_heads": self.spec.num_heads, "forget_gate": self.spec.forget}

    def _state_check(self, input: Tensor, hx: tuple[Tensor, ...] | None) -> tuple:
        spec = self.spec
        if input.dim() not in (1, 2) or input.shape[-1] != self.input_size:
            raise ValueError(
                f"{type(self).__name__}: expected input of shape (batch, {self.input_size}) or "
                f"({self.input_size},), got {tuple(input.shape)}"
            )
        unbatched = input.dim() == 1
        x = input.unsqueeze(0) if unbatched else input
        if hx is None:
            hx = tuple(x.new_zeros(x.shape[0], s) for s in spec.state_sizes)
        else:
            if not isinstance(hx, tuple | list) or len(hx) != len(spec.state_sizes):
                names = ", ".join(spec.state_names)
                raise ValueError(f"{type(self).__name__}: hx must be a tuple ({names})")
            hx = tuple(s.unsqueeze(0) if unbatched else s for s in hx)
            for s, size, name in zip(hx, spec.state_sizes, spec.state_names, strict=True):
                if tuple(s.shape) != (x.shape[0], size):
                    raise ValueError(
                        f"{type(self).__name__}: expected {name} of shape "
                        f"{(x.shape[0], size) if not unbatched else (size,)}, "
                        f"got {tuple(s.shape[unbatched:])}"
                    )
        return x, hx, unbatched

    def _one_step(self, input: Tensor, hx: tuple[Tensor, ...] | None) -> tuple[Tensor, tuple]:
        x, hx, unbatched = self._state_check(input, hx)
        params = dict(self.named_parameters())
        out, new, _ = self.spec.step(self.spec.project_input(x, params), hx, params, None, None)
        if unbatched:
            out, new = out.squeeze(0), tuple(s.squeeze(0) for s in new)
        return out, new


class SLSTMCell(_XCellBase):
    """One sLSTM step as a module (the equations of this module's docstring).

    Args:
        input_size, hidden_size: features of ``x_t`` and of each state.
        bias: a bias on the gate pre-activations (``bias_ih``).
        num_heads: recurrent blocks (default 4, as ``SLSTM``); must divide hidden_size.
        forget_gate: ``"sigmoid"`` (default) or ``"exp"``.
        headwise_input: block-diagonal input weights (the reference package's layout).
        group_norm: the output is the head-wise group norm of h.
        init: ``"xlstm"`` (the reference package's) or ``"torch"`` (uniform ``±1/sqrt(H)``).

    ``forward(input, hx=None)`` with ``hx = (h, c, n, m)`` (zeros when omitted, each
    ``(batch, hidden_size)`` or unbatched ``(hidden_size,)``) returns ``(y, (h, c, n, m))``,
    ``y`` the output (the group norm of h, or h).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device=None,
        dtype=None,
        *,
        num_heads: int = 4,
        forget_gate: str = "sigmoid",
        headwise_input: bool = False,
        group_norm: bool = True,
        init: str = "xlstm",
    ) -> None:
        spec = SLSTMSpec(
            hidden_size, bias, num_heads=num_heads, forget=forget_gate,
            headwise_input=headwise_input, group_norm=group_norm,
        )  # fmt: skip
        super().__init__(input_size, spec, init, device=device, dtype=dtype)

    def forward(self, input: Tensor, hx: tuple[Tensor, ...] | None = None):
        return self._one_step(input, hx)


class MLSTMCell(_XCellBase):
    """One step of the bare mLSTM cell as a module (the paper's: dense q, k, v, õ).

    Args:
        input_size, hidden_size: features of ``x_t`` and of h.
        num_heads: memory heads (default 4, as ``MLSTM``); must divide hidden_size (head
            size ``d = hidden_size / num_heads``).
        bias, forget_gate, init: as for :class:`SLSTMCell`.

    ``forward(input, hx=None)`` with ``hx = (C, n, m)`` flattened per row:
    ``(batch, num_heads*d*d)``, ``(batch, num_heads*d)``, ``(batch, num_heads)``
    (zeros when omitted) returns ``(h, (C, n, m))``.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device=None,
        dtype=None,
        *,
        num_heads: int = 4,
        forget_gate: str = "sigmoid",
        init: str = "xlstm",
    ) -> None:
        spec = MLSTMSpec(hidden_size, bias, num_heads=num_heads, forget=forget_gate)
        super().__init__(input_size, spec, init, device=device, dtype=dtype)

    def forward(self, input: Tensor, hx: tuple[Tensor, ...] | None = None):
        return self._one_step(input, hx)
