"""The gate equations: one time step of an LSTM and of a GRU.

This file is the heart of lstmkit and reads like the math in SEEDS.md §1/§3.
With ``x_t`` the input and ``h_{t-1}``, ``c_{t-1}`` the previous state:

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

The modules ``LSTMCell`` and ``GRUCell`` are drop-in replacements for
``torch.nn.LSTMCell`` / ``torch.nn.GRUCell`` (same parameter names and
shapes, so ``state_dict``s load both ways).
"""

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


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


def lstm_step(
    xw: Tensor,
    h: Tensor,
    c: Tensor,
    weight_hh: Tensor,
    bias_hh: Tensor | None,
    weight_hr: Tensor | None = None,
) -> tuple[Tensor, Tensor, LSTMGates]:
    """One LSTM step.

    Args:
        xw: input projection ``x_t W_ih^T + b_ih``, ``(batch, 4*hidden)``.
        h: previous hidden state ``(batch, proj_size or hidden)``.
        c: previous cell state ``(batch, hidden)``.
        weight_hh: ``(4*hidden, proj_size or hidden)``; bias_hh: ``(4*hidden,)`` or None.
        weight_hr: projection ``(proj_size, hidden)`` or None.

    Returns:
        ``(h_t, c_t, gates)``.
    """
    z = xw + F.linear(h, weight_hh, bias_hh)
    i, f, g, o = z.chunk(4, dim=-1)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c_t = f * c + i * g
    h_t = o * torch.tanh(c_t)
    if weight_hr is not None:
        h_t = F.linear(h_t, weight_hr)
    return h_t, c_t, LSTMGates(i, f, g, o, c_t)


def gru_step(
    xw: Tensor, h: Tensor, weight_hh: Tensor, bias_hh: Tensor | None
) -> tuple[Tensor, GRUGates]:
    """One GRU step.

    Args:
        xw: input projection ``x_t W_ih^T + b_ih``, ``(batch, 3*hidden)``.
        h: previous hidden state ``(batch, hidden)``.
        weight_hh: ``(3*hidden, hidden)``; bias_hh: ``(3*hidden,)`` or None.

    Returns:
        ``(h_t, gates)``.
    """
    hw = F.linear(h, weight_hh, bias_hh)
    x_r, x_z, x_n = xw.chunk(3, dim=-1)
    h_r, h_z, h_n = hw.chunk(3, dim=-1)
    r = torch.sigmoid(x_r + h_r)
    z = torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    h_t = (1 - z) * n + z * h
    return h_t, GRUGates(r, z, n, h_t)


class _CellBase(nn.Module):
    """Parameters of one recurrent cell, laid out as in ``torch.nn.RNNCellBase``."""

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool, num_chunks: int, **factory
    ) -> None:
        super().__init__()
        if input_size <= 0 or hidden_size <= 0:
            raise ValueError(
                f"input_size and hidden_size must be positive, got {input_size} and {hidden_size}"
            )
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        self.weight_ih = nn.Parameter(torch.empty(num_chunks * hidden_size, input_size, **factory))
        self.weight_hh = nn.Parameter(torch.empty(num_chunks * hidden_size, hidden_size, **factory))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(num_chunks * hidden_size, **factory))
            self.bias_hh = nn.Parameter(torch.empty(num_chunks * hidden_size, **factory))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's default: every parameter uniform in ``±1/sqrt(hidden_size)``."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        return s if self.bias else s + ", bias=False"

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


class LSTMCell(_CellBase):
    """One LSTM step as a module, a drop-in for ``torch.nn.LSTMCell``.

    Args:
        input_size: features of ``x_t``.
        hidden_size: features of ``h_t`` and ``c_t``.
        bias: use ``b_ih`` and ``b_hh``.

    Shapes: ``input (batch, input_size)`` or ``(input_size,)``; ``hx = (h, c)``
    each ``(batch, hidden_size)`` (zeros when omitted). Returns ``(h_1, c_1)``.
    """

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None
    ) -> None:
        super().__init__(input_size, hidden_size, bias, 4, device=device, dtype=dtype)

    def forward(
        self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        if hx is None:
            shape = (*input.shape[:-1], self.hidden_size)
            zeros = input.new_zeros(shape)
            hx = (zeros, zeros)
        unbatched = self._check(input, hx, ("h", "c"))
        x, h, c = input, hx[0], hx[1]
        if unbatched:
            x, h, c = x.unsqueeze(0), h.unsqueeze(0), c.unsqueeze(0)
        xw = F.linear(x, self.weight_ih, self.bias_ih)
        h1, c1, _ = lstm_step(xw, h, c, self.weight_hh, self.bias_hh)
        if unbatched:
            h1, c1 = h1.squeeze(0), c1.squeeze(0)
        return h1, c1


class GRUCell(_CellBase):
    """One GRU step as a module, a drop-in for ``torch.nn.GRUCell``.

    Shapes: ``input (batch, input_size)`` or ``(input_size,)``; ``hx`` of
    ``(batch, hidden_size)`` (zeros when omitted). Returns ``h_1``.
    """

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None
    ) -> None:
        super().__init__(input_size, hidden_size, bias, 3, device=device, dtype=dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        if hx is None:
            hx = input.new_zeros((*input.shape[:-1], self.hidden_size))
        unbatched = self._check(input, (hx,), ("hx",))
        x, h = (input.unsqueeze(0), hx.unsqueeze(0)) if unbatched else (input, hx)
        xw = F.linear(x, self.weight_ih, self.bias_ih)
        h1, _ = gru_step(xw, h, self.weight_hh, self.bias_hh)
        return h1.squeeze(0) if unbatched else h1
