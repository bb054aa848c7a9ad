"""Backends: the loops that run a stacked, possibly bidirectional recurrent layer.

- ``reference``: our own loop over the step functions of ``cells.py``. Plain
  PyTorch ops, so autograd, float64 and every device work; it supports every
  option (variable lengths by masking, gate introspection). Time-major only.
- ``native``: torch's own fused kernel (``torch._VF.lstm`` / ``_VF.gru``, the
  same call ``torch.nn.LSTM`` makes), used when the configuration is plain.

Both take the same flat weight list, in torch's order: for each layer, for each
direction, ``w_ih, w_hh[, b_ih, b_hh][, w_hr]``. A later fused-kernel backend
plugs in beside them with the same signature.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import _VF, Tensor
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from lstmkit.nn.cells import GRUGates, LSTMGates, gru_step, lstm_step

BACKENDS = ("auto", "native", "reference")


def _split_weights(
    flat: Sequence[Tensor], num_layers: int, num_directions: int, bias: bool, proj: bool
) -> list[list[tuple[Tensor, Tensor, Tensor | None, Tensor | None, Tensor | None]]]:
    """Group torch's flat weights as ``[layer][direction] = (w_ih, w_hh, b_ih, b_hh, w_hr)``."""
    per = 2 + 2 * bias + proj
    out = []
    for layer in range(num_layers):
        row = []
        for d in range(num_directions):
            w = flat[(layer * num_directions + d) * per : (layer * num_directions + d + 1) * per]
            b_ih, b_hh = (w[2], w[3]) if bias else (None, None)
            row.append((w[0], w[1], b_ih, b_hh, w[-1] if proj else None))
        out.append(row)
    return out


def _run_direction(
    mode: str,
    xw: Tensor,
    state: tuple[Tensor, ...],
    weights: tuple,
    mask: Tensor | None,
    reverse: bool,
    keep_gates: bool,
) -> tuple[Tensor, tuple[Tensor, ...], tuple[Tensor, ...] | None]:
    """Run one direction of one layer over time.

    ``xw`` is ``(time, batch, gates*hidden)``; ``mask`` is ``(time, batch, 1)``
    booleans (True on real steps) or None. Padded steps keep the state and
    give zero output, so the forward direction ends at each sequence's last
    real step and the reverse direction starts there.
    """
    _, w_hh, _, b_hh, w_hr = weights
    steps = range(xw.shape[0] - 1, -1, -1) if reverse else range(xw.shape[0])
    outputs: list[Tensor] = [xw.new_empty(0)] * xw.shape[0]
    trace: list[tuple[Tensor, ...]] = [()] * xw.shape[0]
    for t in steps:
        if mode == "LSTM":
            h, c, gates = lstm_step(xw[t], state[0], state[1], w_hh, b_hh, w_hr)
            new = (h, c)
        else:
            h, gates = gru_step(xw[t], state[0], w_hh, b_hh)
            new = (h,)
        if mask is not None:
            m = mask[t]
            new = tuple(torch.where(m, n, s) for n, s in zip(new, state, strict=True))
            h = torch.where(m, h, torch.zeros_like(h))
            if keep_gates:
                gates = type(gates)(*(torch.where(m, g, torch.zeros_like(g)) for g in gates))
        state = new
        outputs[t] = h
        if keep_gates:
            trace[t] = gates
    stacked = None
    if keep_gates:
        stacked = tuple(torch.stack(g) for g in zip(*trace, strict=True))
    return torch.stack(outputs), state, stacked


def reference(
    mode: str,
    x: Tensor,
    hx: tuple[Tensor, ...],
    flat_weights: Sequence[Tensor],
    *,
    lengths: Tensor | None,
    num_layers: int,
    bidirectional: bool,
    bias: bool,
    proj: bool,
    dropout: float,
    training: bool,
    return_gates: bool,
) -> tuple[Tensor, tuple[Tensor, ...], list | None]:
    """Run the layer with our step loop.

    Args:
        mode: ``"LSTM"`` or ``"GRU"``.
        x: ``(time, batch, input)``.
        hx: ``(h0, c0)`` for LSTM, ``(h0,)`` for GRU, each
            ``(num_layers * num_directions, batch, size)``.
        lengths: ``(batch,)`` real lengths of right-padded sequences, or None.

    Returns:
        ``output (time, batch, num_directions * out)``, final states shaped like
        ``hx``, and ``gates[layer][direction]`` (``LSTMGates`` / ``GRUGates`` of
        ``(time, batch, hidden)`` tensors) when ``return_gates``, else None.
    """
    num_directions = 2 if bidirectional else 1
    weights = _split_weights(flat_weights, num_layers, num_directions, bias, proj)
    mask = None
    if lengths is not None:
        steps = torch.arange(x.shape[0], device=x.device).unsqueeze(1)
        mask = (steps < lengths.to(x.device).unsqueeze(0)).unsqueeze(-1)
    gate_type = LSTMGates if mode == "LSTM" else GRUGates
    finals: list[list[Tensor]] = [[] for _ in hx]
    all_gates = [] if return_gates else None
    layer_input = x
    for layer in range(num_layers):
        outs, layer_gates = [], []
        for d in range(num_directions):
            w = weights[layer][d]
            xw = F.linear(layer_input, w[0], w[2])
            idx = layer * num_directions + d
            state = tuple(s[idx] for s in hx)
            out, state, gates = _run_direction(
                mode, xw, state, w, mask, reverse=d == 1, keep_gates=return_gates
            )
            outs.append(out)
            for store, s in zip(finals, state, strict=True):
                store.append(s)
            if return_gates:
                layer_gates.append(gate_type(*gates))
        layer_input = outs[0] if num_directions == 1 else torch.cat(outs, dim=-1)
        if dropout > 0 and training and layer < num_layers - 1:
            layer_input = F.dropout(layer_input, dropout, training=True)
        if all_gates is not None:
            all_gates.append(layer_gates)
    return layer_input, tuple(torch.stack(f) for f in finals), all_gates


def native(
    mode: str,
    x: Tensor | PackedSequence,
    hx: tuple[Tensor, ...],
    flat_weights: list[Tensor],
    *,
    lengths: Tensor | None,
    num_layers: int,
    bidirectional: bool,
    bias: bool,
    dropout: float,
    training: bool,
    batch_first: bool,
) -> tuple[Tensor | PackedSequence, tuple[Tensor, ...]]:
    """Run the layer with torch's fused kernel.

    ``x`` is a padded tensor (laid out per ``batch_first``) or a PackedSequence;
    ``lengths`` (padded input only) makes this pack, run and unpack. States are
    in the caller's batch order.
    """
    total_length = None
    if lengths is not None:
        total_length = x.shape[1] if batch_first else x.shape[0]
        x = pack_padded_sequence(x, lengths.cpu(), batch_first=batch_first, enforce_sorted=False)
    fn = _VF.lstm if mode == "LSTM" else _VF.gru
    h = hx if mode == "LSTM" else hx[0]
    if isinstance(x, PackedSequence):
        if x.sorted_indices is not None:
            h = tuple(s.index_select(1, x.sorted_indices) for s in hx)
            h = h if mode == "LSTM" else h[0]
        result = fn(
            x.data, x.batch_sizes, h, flat_weights, bias, num_layers, dropout, training,
            bidirectional,
        )  # fmt: skip
        output = PackedSequence(result[0], x.batch_sizes, x.sorted_indices, x.unsorted_indices)
        states = tuple(result[1:])
        if x.unsorted_indices is not None:
            states = tuple(s.index_select(1, x.unsorted_indices) for s in states)
        if total_length is not None:
            output, _ = pad_packed_sequence(
                output, batch_first=batch_first, total_length=total_length
            )
        return output, states
    result = fn(x, h, flat_weights, bias, num_layers, dropout, training, bidirectional, batch_first)
    return result[0], tuple(result[1:])
