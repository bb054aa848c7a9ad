"""Backends: the loops that run a stacked, possibly bidirectional recurrent layer.

- ``reference``: our own loop over the step functions of ``cells.py``. Plain
  PyTorch ops, so autograd, float64 and every device work; it supports every
  option (variable lengths by masking, gate introspection). Time-major only.
- ``native``: torch's own fused kernel (``torch._VF.lstm`` / ``_VF.gru``, the
  same call ``torch.nn.LSTM`` makes), used when the configuration is plain.
  Variable lengths: with autograd on (training) they run on the padded batch,
  one layer and direction at a time, because the backward pass of torch's
  packed CPU kernel is several times slower; without autograd (inference)
  torch's packed kernel is the faster one and is used.

Both take time-major input ``(time, batch, features)`` (the layer transposes
batch-first input and unpacks PackedSequences) and the same flat weight list,
in torch's order: for each layer, for each direction, ``w_ih, w_hh[, b_ih,
b_hh][, w_hr]``. A later fused-kernel backend plugs in beside them with the
same signature.
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
    # unbind once: indexing xw[t] per step would cost a full-size zero gradient per step
    xws = xw.unbind(0)
    masks = mask.unbind(0) if mask is not None else None
    for t in steps:
        if mode == "LSTM":
            h, c, gates = lstm_step(xws[t], state[0], state[1], w_hh, b_hh, w_hr)
            new = (h, c)
        else:
            h, gates = gru_step(xws[t], state[0], w_hh, b_hh)
            new = (h,)
        if masks is not None:
            m = masks[t]
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


def reverse_within_lengths(x: Tensor, lengths: Tensor, batch_first: bool = False) -> Tensor:
    """Reverse each sequence of a right-padded batch within its own length.

    ``x`` is ``(time, batch, ...)``, or ``(batch, time, ...)`` with
    ``batch_first``. Padded steps stay where they are, so the result is still
    right-padded; the operation is its own inverse.
    """
    time_dim = 1 if batch_first else 0
    steps = torch.arange(x.shape[time_dim], device=x.device).unsqueeze(1)
    last = lengths.to(x.device).unsqueeze(0) - 1
    idx = torch.where(steps <= last, last - steps, steps)  # (time, batch)
    if batch_first:
        idx = idx.T
    idx = idx.reshape(*idx.shape, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(time_dim, idx)


def _at_lengths(x: Tensor, lengths: Tensor) -> Tensor:
    """Rows ``x[lengths[b] - 1, b]`` of a time-major ``(time, batch, features)`` tensor."""
    batch = torch.arange(x.shape[1], device=x.device)
    return x[lengths.to(x.device) - 1, batch]


def _lstm_cell_states(
    x: Tensor, out: Tensor, h0: Tensor, c0: Tensor, weights: tuple, max_len: int
) -> Tensor:
    """Cell states ``c_t`` of one LSTM direction, recomputed from its outputs.

    The fused kernel returns every ``h_t`` but only the last ``c``. Given
    ``h_{t-1}`` the gates i, f, g follow in one product (``lstm_step``'s algebra), and
    ``c_t = f_t * c_{t-1} + i_t * g_t`` is then a cheap element-wise scan.
    Gradients flow through ``out`` into the kernel, so they stay exact.
    """
    w_ih, w_hh, b_ih, b_hh, _ = weights
    rows = slice(0, 3 * c0.shape[-1])  # gates i, f, g; c does not need o
    h_prev = torch.cat([h0.unsqueeze(0), out[: max_len - 1]], dim=0)
    z = F.linear(x[:max_len], w_ih[rows], None if b_ih is None else b_ih[rows])
    z = z + F.linear(h_prev, w_hh[rows], None if b_hh is None else b_hh[rows])
    i, f, g = z.chunk(3, dim=-1)
    update = torch.sigmoid(i) * torch.tanh(g)
    cells, c = [], c0
    # unbind, not f[t]: indexing a tensor per step costs a full-size zero gradient per step
    for f_t, u_t in zip(torch.sigmoid(f).unbind(0), update.unbind(0), strict=True):
        c = f_t * c + u_t
        cells.append(c)
    return torch.stack(cells)


def _padded_direction(
    mode: str,
    x: Tensor,
    state: tuple[Tensor, ...],
    weights: tuple,
    lengths: Tensor,
    shortest: int,
    longest: int,
    *,
    bias: bool,
    training: bool,
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """One direction of one layer on a right-padded, time-major batch, with the fused kernel.

    The kernel only runs over steps ``[0, longest)`` (later steps are padding
    for every sequence: zero output). LSTM runs it in two calls split at the
    shortest length: the first call's final ``c`` is exact for every sequence
    there, so ``c`` at each last real step is rebuilt from the outputs over the
    few steps between the shortest and the longest sequence only.

    Returns the output ``(time, batch, out)`` (garbage after each length: the
    caller masks it) and the final states ``(batch, size)`` at each last step.
    """
    fn = _VF.lstm if mode == "LSTM" else _VF.gru
    flat = [t for t in weights if t is not None]
    if mode == "GRU":
        out = fn(x[:longest], state[0], flat, bias, 1, 0.0, training, False, False)[0]
        pieces, finals = [out], None
    else:
        head, h_mid, c_mid = fn(x[:shortest], state, flat, bias, 1, 0.0, training, False, False)
        pieces = [head]
        cells = c_mid
        if longest > shortest:
            tail = fn(
                x[shortest:longest], (h_mid, c_mid), flat, bias, 1, 0.0, training, False, False
            )
            pieces.append(tail[0])
            rebuilt = _lstm_cell_states(
                x[shortest:longest], tail[0], h_mid[0], c_mid[0], weights, longest - shortest
            )
            cells = torch.cat([c_mid, rebuilt], dim=0)
        finals = _at_lengths(cells, lengths - shortest + 1)
    if longest < x.shape[0]:
        pad = pieces[0].new_zeros(x.shape[0] - longest, *pieces[0].shape[1:])
        pieces.append(pad)
    out = torch.cat(pieces, dim=0) if len(pieces) > 1 else pieces[0]
    h_n = _at_lengths(out, lengths)
    return out, (h_n,) if finals is None else (h_n, finals)


def _native_padded(
    mode: str,
    x: Tensor,
    hx: tuple[Tensor, ...],
    flat_weights: Sequence[Tensor],
    lengths: Tensor,
    *,
    num_layers: int,
    bidirectional: bool,
    bias: bool,
    proj: bool,
    dropout: float,
    training: bool,
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Right-padded batch with ``lengths`` on the fused kernel, without packing.

    torch's packed-sequence CPU kernel is several times slower than its padded
    one, so each layer and direction runs on the padded batch instead: padding
    sits after the real steps, where it cannot reach them; the reverse
    direction reads each sequence reversed within its own length; final
    states are read at each sequence's last real step (see `_padded_direction`).
    """
    num_directions = 2 if bidirectional else 1
    weights = _split_weights(flat_weights, num_layers, num_directions, bias, proj)
    mask = (
        torch.arange(x.shape[0], device=x.device).unsqueeze(1) < lengths.to(x.device)
    ).unsqueeze(-1)
    shortest, longest = int(lengths.min()), int(lengths.max())
    finals: list[list[Tensor]] = [[] for _ in hx]
    layer_input = x
    for layer in range(num_layers):
        outs = []
        for d in range(num_directions):
            idx = layer * num_directions + d
            inp = layer_input if d == 0 else reverse_within_lengths(layer_input, lengths)
            out, states = _padded_direction(
                mode, inp, tuple(s[idx : idx + 1] for s in hx), weights[layer][d], lengths,
                shortest, longest, bias=bias, training=training,
            )  # fmt: skip
            for store, s in zip(finals, states, strict=True):
                store.append(s)
            out = torch.where(mask, out, torch.zeros_like(out))
            outs.append(out if d == 0 else reverse_within_lengths(out, lengths))
        layer_input = outs[0] if num_directions == 1 else torch.cat(outs, dim=-1)
        if dropout > 0 and training and layer < num_layers - 1:
            layer_input = F.dropout(layer_input, dropout, training=True)
    return layer_input, tuple(torch.stack(f) for f in finals)


def native(
    mode: str,
    x: Tensor,
    hx: tuple[Tensor, ...],
    flat_weights: list[Tensor],
    *,
    lengths: Tensor | None,
    num_layers: int,
    bidirectional: bool,
    bias: bool,
    proj: bool,
    dropout: float,
    training: bool,
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Run the layer with torch's fused kernel.

    Same contract as `reference` (time-major ``x``, optional ``lengths``, states
    in the caller's batch order), without gate traces.
    """
    fn = _VF.lstm if mode == "LSTM" else _VF.gru
    if lengths is not None and int(lengths.min()) < x.shape[0]:
        if torch.is_grad_enabled():
            # training: the padded kernel's backward is much cheaper than the packed one's
            return _native_padded(
                mode, x, hx, flat_weights, lengths, num_layers=num_layers,
                bidirectional=bidirectional, bias=bias, proj=proj, dropout=dropout,
                training=training,
            )  # fmt: skip
        # inference: no backward to save; torch's packed kernel measured as fast or faster here
        packed = pack_padded_sequence(x, lengths.cpu(), enforce_sorted=False)
        order, unorder = packed.sorted_indices, packed.unsorted_indices
        states = tuple(s.index_select(1, order) for s in hx)
        result = fn(
            packed.data, packed.batch_sizes, states if mode == "LSTM" else states[0],
            flat_weights, bias, num_layers, dropout, training, bidirectional,
        )  # fmt: skip
        out = PackedSequence(result[0], packed.batch_sizes, order, unorder)
        out, _ = pad_packed_sequence(out, total_length=x.shape[0])
        return out, tuple(s.index_select(1, unorder) for s in result[1:])
    h = hx if mode == "LSTM" else hx[0]
    result = fn(x, h, flat_weights, bias, num_layers, dropout, training, bidirectional, False)
    return result[0], tuple(result[1:])
