"""The gate equations: one time step of an LSTM and of a GRU, plain and regularised.

This file is the heart of lstmkit and reads like the math in SEEDS.md §1/§3;
the variants below are the exact math the fused kernels implement too. With
``x_t`` the input and ``h_{t-1}``, ``c_{t-1}`` the previous state:

LSTM (gate order i, f, g, o, as in ``torch.nn.LSTM``)::

    i_t = σ(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)      input gate
    f_t = σ(W_if x_t + b_if + W_hf h_{t-1} + b_hf)      forget gate
    g_t = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)   candidate C̃_t
    o_t = σ(W_io x_t + b_io + W_ho h_{t-1} + b_ho)      output gate
    c_t = f_t * c_{t-1} + i_t * g_t                     the conveyor belt
    h_t = o_t * tanh(c_t)          (times W_hr when a projection is used)

GRU (gate order r, z, n, PyTorch's convention)::

    r_t = σ(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)      reset gate
    z_t = σ(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)      update gate
    n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}

``W·[h_{t-1}, x_t]`` of the seeds is the same product split in two: the input
part ``x_t W_i^T + b_i`` does not depend on the previous step, so the layer
loop computes it for all steps at once and hands each step its slice
(``xw``). The step functions below take that slice.

The variants, each an option of the same equations (all off gives the plain cell):

- ``layer_norm``: ``LN`` (mean 0, variance 1 over the features, then a gain and a
  bias) of the input projection (bias ``b_ih``), of the recurrent projection
  (bias ``b_hh``) and, for the LSTM, of ``c_t`` before its ``tanh``
  (Ba, Kiros & Hinton 2016).
- ``recurrent_dropout=p``: ``h_{t-1}`` is multiplied by one dropout mask per
  sequence before the recurrent product (Gal & Ghahramani; Keras).
- ``zoneout=p`` (LSTM: or ``(p_h, p_c)``): each unit keeps its previous value
  with probability p at each step, ``s_t = d s_{t-1} + (1 - d) s̃_t``; in eval
  ``d = p`` (Krueger et al. 2016).
- ``dropconnect=p``: a dropout mask on ``W_hh``, one per forward call (AWD-LSTM).
- ``peepholes`` (LSTM): ``i`` and ``f`` also see ``c_{t-1}``, ``o`` sees ``c_t``
  (Gers & Schmidhuber 2000).

The pieces:

- ``lstm_step`` / ``gru_step``: the equations, plain tensors in and out.
- ``LSTMSpec`` / ``GRUSpec``: a cell's definition (a *cell spec*): the state it
  carries, the parameters it owns (torch's names), the input projection and
  one step. The layer loop in ``backends.py`` runs any spec.
- ``sample_masks``: every random mask of a forward call, drawn from torch's RNG
  in a fixed order, so a seed reproduces them and every backend uses the same.
- ``LSTMCell`` / ``GRUCell``: one step as a module, drop-ins for
  ``torch.nn.LSTMCell`` / ``torch.nn.GRUCell`` (same parameter names and
  shapes, so ``state_dict``s load both ways), with the variants as options.
"""

import math
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LN_EPS = 1e-5


class LSTMGates(NamedTuple):
    """Activations of one LSTM step (or, stacked over time, of a whole sequence)."""

    input: Tensor  # i_t
    forget: Tensor  # f_t
    candidate: Tensor  # g_t (C̃_t)
    output: Tensor  # o_t
    cell: Tensor  # c_t


class GRUGates(NamedTuple):
    """Activations of one GRU step (or, stacked over time, of a whole sequence)."""

    reset: Tensor  # r_t
    update: Tensor  # z_t
    candidate: Tensor  # n_t (h̃_t)
    hidden: Tensor  # h_t


def layer_norm(v: Tensor, gain: Tensor | None, bias: Tensor | None) -> Tensor:
    """``(v - mean(v)) / sqrt(var(v) + 1e-5) * gain + bias`` over the last dimension."""
    # int(): a constant width when traced for ONNX export (the exporter needs one)
    return F.layer_norm(v, (int(v.shape[-1]),), gain, bias, LN_EPS)


def zoneout(d: Tensor | None, previous: Tensor, new: Tensor) -> Tensor:
    """``d * previous + (1 - d) * new``: each unit keeps its old value with weight d."""
    return new if d is None else d * previous + (1 - d) * new


def _recurrent(
    h: Tensor, rd_mask: Tensor | None, weight_hh: Tensor, bias_hh: Tensor | None, ln: Tensor | None
) -> Tensor:
    """The recurrent projection: ``(h * m_rd) W_hh^T``, then ``+ b_hh`` or ``LN(·; ln, b_hh)``."""
    if rd_mask is not None:
        h = h * rd_mask
    if ln is None:
        return F.linear(h, weight_hh, bias_hh)
    return layer_norm(F.linear(h, weight_hh), ln, bias_hh)


def lstm_step(
    xw: Tensor,
    h: Tensor,
    c: Tensor,
    weight_hh: Tensor,
    bias_hh: Tensor | None,
    weight_hr: Tensor | None = None,
    *,
    peephole: Tensor | None = None,
    ln_weight_hh: Tensor | None = None,
    ln_weight_c: Tensor | None = None,
    ln_bias_c: Tensor | None = None,
    rd_mask: Tensor | None = None,
    zoneout_h: Tensor | None = None,
    zoneout_c: Tensor | None = None,
) -> tuple[Tensor, Tensor, LSTMGates]:
    """One LSTM step (every variant is an optional keyword; all None is the plain cell).

    Args:
        xw: input projection ``x_t W_ih^T + b_ih`` (or its layer norm), ``(batch, 4*hidden)``.
        h: previous hidden state ``(batch, proj_size or hidden)``.
        c: previous cell state ``(batch, hidden)``.
        weight_hh: ``(4*hidden, proj_size or hidden)`` (already masked for DropConnect);
            bias_hh: ``(4*hidden,)`` or None (the LN bias under layer norm).
        weight_hr: projection ``(proj_size, hidden)`` or None.
        peephole: ``(3, hidden)``, rows c->i, c->f, c->o.
        ln_weight_hh: LN gain of the recurrent projection ``(4*hidden,)``.
        ln_weight_c, ln_bias_c: LN gain and bias of the cell state ``(hidden,)``.
        rd_mask: recurrent-dropout mask ``(batch, proj_size or hidden)``, 0 or 1/(1-p).
        zoneout_h, zoneout_c: keep-previous weights ``d`` of this step, shaped like h and c.

    Returns:
        ``(h_t, c_t, gates)``.
    """
    z = xw + _recurrent(h, rd_mask, weight_hh, bias_hh, ln_weight_hh)
    z_i, z_f, z_g, z_o = z.chunk(4, dim=-1)
    if peephole is not None:
        z_i = z_i + peephole[0] * c
        z_f = z_f + peephole[1] * c
    i, f, g = torch.sigmoid(z_i), torch.sigmoid(z_f), torch.tanh(z_g)
    c_new = f * c + i * g
    if peephole is not None:
        z_o = z_o + peephole[2] * c_new
    o = torch.sigmoid(z_o)
    c_out = c_new if ln_weight_c is None else layer_norm(c_new, ln_weight_c, ln_bias_c)
    h_new = o * torch.tanh(c_out)
    if weight_hr is not None:
        h_new = F.linear(h_new, weight_hr)
    c_t = zoneout(zoneout_c, c, c_new)
    h_t = zoneout(zoneout_h, h, h_new)
    return h_t, c_t, LSTMGates(i, f, g, o, c_t)


def gru_step(
    xw: Tensor,
    h: Tensor,
    weight_hh: Tensor,
    bias_hh: Tensor | None,
    *,
    ln_weight_hh: Tensor | None = None,
    rd_mask: Tensor | None = None,
    zoneout_h: Tensor | None = None,
) -> tuple[Tensor, GRUGates]:
    """One GRU step (every variant is an optional keyword; all None is the plain cell).

    Args:
        xw: input projection ``x_t W_ih^T + b_ih`` (or its layer norm), ``(batch, 3*hidden)``.
        h: previous hidden state ``(batch, hidden)``.
        weight_hh: ``(3*hidden, hidden)``; bias_hh: ``(3*hidden,)`` or None.
        ln_weight_hh: LN gain of the recurrent projection ``(3*hidden,)``.
        rd_mask: recurrent-dropout mask ``(batch, hidden)``; zoneout_h: ``d`` of this step.

    Returns:
        ``(h_t, gates)``.
    """
    hw = _recurrent(h, rd_mask, weight_hh, bias_hh, ln_weight_hh)
    x_r, x_z, x_n = xw.chunk(3, dim=-1)
    h_r, h_z, h_n = hw.chunk(3, dim=-1)
    r = torch.sigmoid(x_r + h_r)
    z = torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    h_new = (1 - z) * n + z * h  # the unmasked h_{t-1}
    h_t = zoneout(zoneout_h, h, h_new)
    return h_t, GRUGates(r, z, n, h_t)


# ------------------------------------------------------------------ cell specs
class ParamSpec(NamedTuple):
    """One parameter of a cell: base name (torch's), shape and initial value.

    ``init`` is ``"uniform"`` (torch's ``±1/sqrt(hidden)``), ``"ones"`` or ``"zeros"``.
    """

    name: str
    shape: tuple[int, ...]
    init: str


class DirectionMasks(NamedTuple):
    """The random masks of one layer and direction for one forward call.

    weight_hh: DropConnect mask of ``W_hh``'s shape, values 0 or 1/(1-p), or None.
    recurrent: recurrent-dropout mask ``(batch, proj_size or hidden)``, 0 or 1/(1-p), or None.
    zoneout: one entry per state tensor (h[, c]): the keep-previous weights ``d``
        ``(time, batch, size)`` (0/1 in training, all p in eval, then a stride-0
        expanded tensor), or None.
    """

    weight_hh: Tensor | None
    recurrent: Tensor | None
    zoneout: tuple[Tensor | None, ...]


def _probability(name: str, value: Any, *, allow_one: bool) -> float:
    """A float in [0, 1) (or [0, 1] with ``allow_one``); ValueError otherwise."""
    upper = "1]" if allow_one else "1)"
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if ok:
        value = float(value)
        ok = 0.0 <= value <= 1.0 and (allow_one or value < 1.0)
    if not ok:
        raise ValueError(f"{name} must be a probability in [0, {upper}, got {value!r}")
    return value


@dataclass(frozen=True)
class CellSpec:
    """What a recurrent cell is: the state it carries, what it owns, how it steps.

    Subclasses set the class attributes and implement ``parameters``, ``step``
    and ``fused_direction``; the loops in ``backends.py`` know nothing else.

    Fields shared by every cell: ``hidden_size``, ``bias`` and the variant options
    ``layer_norm``, ``recurrent_dropout``, ``dropconnect`` (probabilities) and
    ``zoneout`` (one probability per state tensor, see ``zoneout_p``).
    """

    hidden_size: int
    bias: bool = True
    layer_norm: bool = False
    recurrent_dropout: float = 0.0
    dropconnect: float = 0.0

    num_gates: ClassVar[int] = 0  # gates per step: rows of W_ih are num_gates * hidden
    state_names: ClassVar[tuple[str, ...]] = ()  # e.g. ("h", "c")
    gate_type: ClassVar[type] = tuple  # LSTMGates / GRUGates
    torch_kernel: ClassVar[str] = ""  # name of torch's _VF function for the plain cell
    forget_gate: ClassVar[int | None] = None  # chunk of b_ih that Keras' init sets to 1

    def __post_init__(self) -> None:
        size = self.hidden_size
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise ValueError(f"hidden_size must be a positive integer, got {self.hidden_size!r}")
        if not isinstance(self.layer_norm, bool):
            raise ValueError(f"layer_norm must be True or False, got {self.layer_norm!r}")
        for name in ("recurrent_dropout", "dropconnect"):
            object.__setattr__(self, name, _probability(name, getattr(self, name), allow_one=False))

    # -- what it carries and owns
    @property
    def out_size(self) -> int:
        """Features of ``h`` (and of each output step)."""
        return self.hidden_size

    @property
    def state_sizes(self) -> tuple[int, ...]:
        """Features of each state tensor, in ``state_names`` order."""
        raise NotImplementedError

    @property
    def zoneout_p(self) -> tuple[float, ...]:
        """Zoneout probability of each state tensor, in ``state_names`` order."""
        raise NotImplementedError

    @property
    def is_plain(self) -> bool:
        """True when no variant is on: torch's own kernel computes exactly this cell."""
        return not (
            self.layer_norm or self.recurrent_dropout or self.dropconnect or any(self.zoneout_p)
        )

    def plain_when(self, training: bool) -> bool:
        """True when a forward pass in this mode is torch's plain cell: always for a
        plain cell, and in eval also with DropConnect / recurrent dropout (off in eval)."""
        if training:
            return self.is_plain
        return not (self.layer_norm or any(self.zoneout_p))

    def parameters(self, input_size: int) -> list[ParamSpec]:
        """Parameters of one layer and direction, torch's flat order first."""
        gates, h = self.num_gates * self.hidden_size, self.hidden_size
        specs = [
            ParamSpec("weight_ih", (gates, input_size), "uniform"),
            ParamSpec("weight_hh", (gates, self.out_size), "uniform"),
        ]
        if self.bias:
            specs += [ParamSpec("bias_ih", (gates,), "uniform")]
            specs += [ParamSpec("bias_hh", (gates,), "uniform")]
        if self.out_size != h:
            specs.append(ParamSpec("weight_hr", (self.out_size, h), "uniform"))
        if self.layer_norm:
            specs += [ParamSpec("ln_weight_ih", (gates,), "ones")]
            specs += [ParamSpec("ln_weight_hh", (gates,), "ones")]
        return specs

    # -- how it steps
    def project_input(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        """``x W_ih^T + b_ih``, or ``LN(x W_ih^T; ln_weight_ih, b_ih)``: ``(..., gates*hidden)``."""
        if self.layer_norm:
            return layer_norm(
                F.linear(x, params["weight_ih"]), params["ln_weight_ih"], params.get("bias_ih")
            )
        return F.linear(x, params["weight_ih"], params.get("bias_ih"))

    def fused_project_input(self, kernels: Any, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        """``project_input`` with the fused kernel's products (``kernels.linear``)."""
        return kernels.linear(
            x, params["weight_ih"], params.get("bias_ih"), params.get("ln_weight_ih")
        )

    def step(
        self,
        xw: Tensor,
        state: tuple[Tensor, ...],
        params: dict[str, Tensor],
        rd_mask: Tensor | None,
        zoneout: tuple[Tensor | None, ...],
    ) -> tuple[Tensor, tuple[Tensor, ...], tuple[Tensor, ...]]:
        """One step: ``(xw_t (batch, gates*hidden), state, params, masks) -> (out, state, gates)``.

        ``params`` are the direction's parameters by base name (``weight_hh``
        already DropConnect-masked); ``zoneout`` holds this step's ``d`` per state.
        """
        raise NotImplementedError

    def fused_direction(
        self,
        kernels: Any,
        xw: Tensor,
        state: tuple[Tensor, ...],
        params: dict[str, Tensor],
        masks: DirectionMasks,
        lengths: Tensor | None,
        return_gates: bool = False,
    ) -> tuple[Tensor, tuple[Tensor, ...], tuple[Tensor, ...] | None]:
        """Run one forward-in-time direction on ``lstmkit.nn.fused`` (``kernels``).

        Returns ``out (time, batch, out_size)``, the final state tuple and, with
        ``return_gates``, the gate activations (``gate_type``, detached), else None.
        """
        raise NotImplementedError


@dataclass(frozen=True)
class LSTMSpec(CellSpec):
    """The LSTM cell: state ``(h, c)``, options ``proj_size``, ``peepholes``, ``zoneout_c``.

    ``zoneout_h`` / ``zoneout_c`` are the zoneout probabilities of h and c.
    """

    proj_size: int = 0
    peepholes: bool = False
    zoneout_h: float = 0.0
    zoneout_c: float = 0.0

    num_gates: ClassVar[int] = 4
    state_names: ClassVar[tuple[str, ...]] = ("h", "c")
    gate_type: ClassVar[type] = LSTMGates
    torch_kernel: ClassVar[str] = "lstm"
    forget_gate: ClassVar[int | None] = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.proj_size, int) or self.proj_size < 0:
            raise ValueError(f"proj_size must be a non-negative integer, got {self.proj_size!r}")
        if self.proj_size >= self.hidden_size:
            raise ValueError(
                f"proj_size ({self.proj_size}) must be smaller than hidden_size "
                f"({self.hidden_size})"
            )
        if not isinstance(self.peepholes, bool):
            raise ValueError(f"peepholes must be True or False, got {self.peepholes!r}")
        for name in ("zoneout_h", "zoneout_c"):
            value = _probability(f"zoneout ({name})", getattr(self, name), allow_one=True)
            object.__setattr__(self, name, value)

    @property
    def out_size(self) -> int:
        return self.proj_size or self.hidden_size

    @property
    def state_sizes(self) -> tuple[int, ...]:
        return (self.out_size, self.hidden_size)

    @property
    def zoneout_p(self) -> tuple[float, ...]:
        return (self.zoneout_h, self.zoneout_c)

    @property
    def is_plain(self) -> bool:
        return super().is_plain and not self.peepholes

    def plain_when(self, training: bool) -> bool:
        return super().plain_when(training) and not self.peepholes

    def parameters(self, input_size: int) -> list[ParamSpec]:
        specs = super().parameters(input_size)
        h = self.hidden_size
        if self.layer_norm:
            specs += [ParamSpec("ln_weight_c", (h,), "ones"), ParamSpec("ln_bias_c", (h,), "zeros")]
        if self.peepholes:
            specs.append(ParamSpec("peephole", (3, h), "uniform"))
        return specs

    def step(self, xw, state, params, rd_mask, zoneout):
        h, c, gates = lstm_step(
            xw, state[0], state[1], params["weight_hh"], params.get("bias_hh"),
            params.get("weight_hr"), peephole=params.get("peephole"),
            ln_weight_hh=params.get("ln_weight_hh"), ln_weight_c=params.get("ln_weight_c"),
            ln_bias_c=params.get("ln_bias_c"), rd_mask=rd_mask, zoneout_h=zoneout[0],
            zoneout_c=zoneout[1],
        )  # fmt: skip
        return h, (h, c), gates

    def fused_direction(self, kernels, xw, state, params, masks, lengths, return_gates=False):
        out, h, c, *gates = kernels.lstm_direction(
            xw, state[0], state[1], params["weight_hh"], params.get("bias_hh"),
            params.get("weight_hr"), params.get("peephole"), params.get("ln_weight_hh"),
            params.get("ln_weight_c"), params.get("ln_bias_c"), masks.recurrent,
            masks.zoneout[0], masks.zoneout[1], lengths, return_gates=return_gates,
        )  # fmt: skip
        return out, (h, c), (gates[0] if gates else None)


@dataclass(frozen=True)
class GRUSpec(CellSpec):
    """The GRU cell: state ``(h,)``; ``zoneout_h`` is the zoneout probability of h."""

    zoneout_h: float = 0.0

    num_gates: ClassVar[int] = 3
    state_names: ClassVar[tuple[str, ...]] = ("h",)
    gate_type: ClassVar[type] = GRUGates
    torch_kernel: ClassVar[str] = "gru"

    def __post_init__(self) -> None:
        super().__post_init__()
        value = _probability("zoneout", self.zoneout_h, allow_one=True)
        object.__setattr__(self, "zoneout_h", value)

    @property
    def state_sizes(self) -> tuple[int, ...]:
        return (self.hidden_size,)

    @property
    def zoneout_p(self) -> tuple[float, ...]:
        return (self.zoneout_h,)

    def step(self, xw, state, params, rd_mask, zoneout):
        h, gates = gru_step(
            xw, state[0], params["weight_hh"], params.get("bias_hh"),
            ln_weight_hh=params.get("ln_weight_hh"), rd_mask=rd_mask, zoneout_h=zoneout[0],
        )  # fmt: skip
        return h, (h,), gates

    def fused_direction(self, kernels, xw, state, params, masks, lengths, return_gates=False):
        out, h, *gates = kernels.gru_direction(
            xw, state[0], params["weight_hh"], params.get("bias_hh"),
            params.get("ln_weight_hh"), masks.recurrent, masks.zoneout[0], lengths,
            return_gates=return_gates,
        )  # fmt: skip
        return out, (h,), (gates[0] if gates else None)


def split_zoneout(zoneout: Any, num_states: int) -> tuple[float, ...]:
    """``zoneout=p`` or a pair ``(p_h, p_c)`` -> one probability per state tensor.

    A pair is only meaningful for a cell with two states (LSTM); ValueError otherwise.
    """
    if isinstance(zoneout, tuple | list):
        if len(zoneout) != num_states or num_states == 1:
            want = "a probability or a pair (p_h, p_c)" if num_states == 2 else "one probability"
            raise ValueError(
                f"zoneout must be {want}, got {zoneout!r}"
                + ("; a GRU has no cell state" if num_states == 1 else "")
            )
        return tuple(zoneout)
    return (zoneout,) * num_states


def sample_masks(
    cell: CellSpec,
    num_layers: int,
    num_directions: int,
    batch: int,
    time: int,
    *,
    training: bool,
    like: Tensor,
) -> list[list[DirectionMasks]] | None:
    """Draw every random mask of one forward call from torch's RNG.

    Order, per layer, per direction: DropConnect mask, recurrent-dropout mask,
    zoneout masks of h, then of c. Nothing is drawn in eval (zoneout then
    uses its expectation ``d = p``). Returns ``masks[layer][direction]``, or
    None when the cell has no mask at all (plain cells, or only
    DropConnect/recurrent dropout in eval).

    Args:
        like: a tensor whose dtype and device the masks take (the input).
    """
    dc = cell.dropconnect if training else 0.0
    rd = cell.recurrent_dropout if training else 0.0
    if not (dc or rd or any(cell.zoneout_p)):
        return None
    factory = {"dtype": like.dtype, "device": like.device}
    w_hh_shape = (cell.num_gates * cell.hidden_size, cell.out_size)

    def keep(shape: tuple[int, ...], p: float) -> Tensor:
        return torch.empty(shape, **factory).bernoulli_(1 - p).div_(1 - p)

    masks = []
    for _ in range(num_layers):
        row = []
        for _ in range(num_directions):
            m_dc = keep(w_hh_shape, dc) if dc else None
            m_rd = keep((batch, cell.out_size), rd) if rd else None
            zo: list[Tensor | None] = []
            for size, p in zip(cell.state_sizes, cell.zoneout_p, strict=True):
                if not p:
                    zo.append(None)
                elif training:
                    zo.append(torch.empty((time, batch, size), **factory).bernoulli_(p))
                else:
                    zo.append(torch.full((), p, **factory).expand(time, batch, size))
            row.append(DirectionMasks(m_dc, m_rd, tuple(zo)))
        masks.append(row)
    return masks


def init_parameter(param: Tensor, init: str, hidden_size: int) -> None:
    """Fill ``param`` in place per its ``ParamSpec.init`` (no autograd)."""
    with torch.no_grad():
        if init == "uniform":
            bound = 1.0 / math.sqrt(hidden_size)
            nn.init.uniform_(param, -bound, bound)
        else:
            param.fill_(1.0 if init == "ones" else 0.0)


# ---------------------------------------------------------------- cell modules
class _CellBase(nn.Module):
    """Parameters of one recurrent cell, laid out as in ``torch.nn.RNNCellBase``."""

    spec: CellSpec

    def __init__(self, input_size: int, spec: CellSpec, **factory) -> None:
        super().__init__()
        if not isinstance(input_size, int) or input_size <= 0:
            raise ValueError(f"input_size must be a positive integer, got {input_size!r}")
        self.input_size = input_size
        self.hidden_size = spec.hidden_size
        self.bias = spec.bias
        self.spec = spec
        self._inits = {}
        for p in spec.parameters(input_size):
            self.register_parameter(p.name, nn.Parameter(torch.empty(p.shape, **factory)))
            self._inits[p.name] = p.init
        if not spec.bias:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's default: weights and biases uniform in ``±1/sqrt(hidden_size)``.

        Layer-norm gains start at 1 and the cell-state LN bias at 0.
        """
        for name, p in self.named_parameters():
            init_parameter(p, self._inits[name], self.hidden_size)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        for name, value in self._variant_options().items():
            if value:
                s += f", {name}={value!r}"
        return s

    def _variant_options(self) -> dict[str, Any]:
        spec = self.spec
        return {
            "layer_norm": spec.layer_norm,
            "recurrent_dropout": spec.recurrent_dropout,
            "dropconnect": spec.dropconnect,
        }

    def _check(self, input: Tensor, states: tuple[Tensor, ...], names: tuple[str, ...]) -> bool:
        """Validate shapes; return True when the input is unbatched (1-D)."""
        if input.dim() not in (1, 2):
            raise ValueError(
                f"{type(self).__name__}: expected input of shape (batch, {self.input_size}) or "
                f"({self.input_size},), got {tuple(input.shape)}"
            )
        if input.shape[-1] != self.input_size:
            raise ValueError(
                f"{type(self).__name__}: expected input with {self.input_size} features "
                f"(last dimension), got {input.shape[-1]}"
            )
        unbatched = input.dim() == 1
        batch = () if unbatched else (input.shape[0],)
        for state, name in zip(states, names, strict=True):
            want = (*batch, self.hidden_size)
            if tuple(state.shape) != want:
                raise ValueError(
                    f"{type(self).__name__}: expected {name} of shape {want}, "
                    f"got {tuple(state.shape)}"
                )
        return unbatched

    def _step(
        self, input: Tensor, states: tuple[Tensor, ...], masks: DirectionMasks | None
    ) -> tuple[Tensor, ...]:
        """Project, mask and step once; states are ``(batch, hidden)``."""
        params = dict(self.named_parameters())
        if masks is None:
            batch = input.shape[0]
            drawn = sample_masks(self.spec, 1, 1, batch, 1, training=self.training, like=input)
            masks = drawn[0][0] if drawn is not None else None
        rd, zo = None, (None,) * len(states)
        if masks is not None:
            if masks.weight_hh is not None:
                params["weight_hh"] = params["weight_hh"] * masks.weight_hh
            rd = masks.recurrent
            zo = tuple(None if d is None else d.reshape(-1, d.shape[-1]) for d in masks.zoneout)
        xw = self.spec.project_input(input, params)
        _, new, _ = self.spec.step(xw, states, params, rd, zo)
        return new


class LSTMCell(_CellBase):
    """One LSTM step as a module, a drop-in for ``torch.nn.LSTMCell``.

    Args:
        input_size: features of ``x_t``.
        hidden_size: features of ``h_t`` and ``c_t``.
        bias: use ``b_ih`` and ``b_hh``.
        layer_norm, peepholes, recurrent_dropout, zoneout (p or ``(p_h, p_c)``),
            dropconnect: the variants of the module docstring. A cell draws its
            random masks per call (in training). ``forward(..., masks=m)``
            uses ``m`` (a ``DirectionMasks`` for one step, e.g.
            ``sample_masks(cell.spec, 1, 1, batch, 1, training=True,
            like=x)[0][0]``) instead: passing the same ``m`` every step holds
            a recurrent-dropout (and DropConnect) mask over a sequence; its
            zoneout weights then repeat too, so draw zoneout per step.

    Shapes: ``input (batch, input_size)`` or ``(input_size,)``; ``hx = (h, c)``
    each ``(batch, hidden_size)`` (zeros when omitted). Returns ``(h_1, c_1)``.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device=None,
        dtype=None,
        *,
        layer_norm: bool = False,
        peepholes: bool = False,
        recurrent_dropout: float = 0.0,
        zoneout: float | tuple[float, float] = 0.0,
        dropconnect: float = 0.0,
    ) -> None:
        z_h, z_c = split_zoneout(zoneout, 2)
        spec = LSTMSpec(
            hidden_size, bias, layer_norm, recurrent_dropout, dropconnect,
            peepholes=peepholes, zoneout_h=z_h, zoneout_c=z_c,
        )  # fmt: skip
        super().__init__(input_size, spec, device=device, dtype=dtype)
        self.zoneout = zoneout

    def _variant_options(self) -> dict[str, Any]:
        return {
            **super()._variant_options(),
            "zoneout": self.zoneout,
            "peepholes": self.spec.peepholes,
        }

    def forward(
        self,
        input: Tensor,
        hx: tuple[Tensor, Tensor] | None = None,
        *,
        masks: DirectionMasks | None = None,
    ) -> tuple[Tensor, Tensor]:
        if hx is None:
            shape = (*input.shape[:-1], self.hidden_size)
            zeros = input.new_zeros(shape)
            hx = (zeros, zeros)
        unbatched = self._check(input, hx, ("h", "c"))
        x, h, c = input, hx[0], hx[1]
        if unbatched:
            x, h, c = x.unsqueeze(0), h.unsqueeze(0), c.unsqueeze(0)
        h1, c1 = self._step(x, (h, c), masks)
        if unbatched:
            h1, c1 = h1.squeeze(0), c1.squeeze(0)
        return h1, c1


class GRUCell(_CellBase):
    """One GRU step as a module, a drop-in for ``torch.nn.GRUCell``.

    Variants as for :class:`LSTMCell` (``zoneout`` is one probability; no peepholes).

    Shapes: ``input (batch, input_size)`` or ``(input_size,)``; ``hx`` of
    ``(batch, hidden_size)`` (zeros when omitted). Returns ``h_1``.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device=None,
        dtype=None,
        *,
        layer_norm: bool = False,
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
        dropconnect: float = 0.0,
    ) -> None:
        (z_h,) = split_zoneout(zoneout, 1)
        spec = GRUSpec(hidden_size, bias, layer_norm, recurrent_dropout, dropconnect, z_h)
        super().__init__(input_size, spec, device=device, dtype=dtype)
        self.zoneout = zoneout

    def _variant_options(self) -> dict[str, Any]:
        return {**super()._variant_options(), "zoneout": self.zoneout}

    def forward(
        self, input: Tensor, hx: Tensor | None = None, *, masks: DirectionMasks | None = None
    ) -> Tensor:
        if hx is None:
            hx = input.new_zeros((*input.shape[:-1], self.hidden_size))
        unbatched = self._check(input, (hx,), ("hx",))
        x, h = (input.unsqueeze(0), hx.unsqueeze(0)) if unbatched else (input, hx)
        (h1,) = self._step(x, (h,), masks)
        return h1.squeeze(0) if unbatched else h1
