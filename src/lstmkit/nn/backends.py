"""Backends: the loops that run a stacked, possibly bidirectional recurrent layer.

A backend runs any cell spec of ``cells.py`` / ``xlstm_cells.py`` (``LSTMSpec``,
``GRUSpec``, ``SLSTMSpec``, ``MLSTMSpec``) and knows nothing else about it. All take
the same arguments and return the same things::

    backend(cell, x, hx, weights, *, masks, lengths, dropout, training, return_gates)
        -> (output, final_states, gates_or_None)

- ``x``: time-major input ``(time, batch, features)`` (the layer transposes
  batch-first input and unpacks PackedSequences);
- ``hx``: one tensor per state of the cell (``(h0, c0)`` / ``(h0,)``), each
  ``(num_layers * num_directions, batch, size)``;
- ``weights[layer][direction]``: the parameters by base name (``weight_ih``,
  ``weight_hh``, ``bias_ih``, ``bias_hh``, ``weight_hr``, ``ln_weight_ih``, ...;
  absent ones are left out); their nesting gives the layers and directions;
- ``masks[layer][direction]``: the ``DirectionMasks`` drawn by
  ``cells.sample_masks``, or None;
- ``lengths``: ``(batch,)`` real lengths of right-padded sequences, or None.

The backends:

- ``reference``: the generic loop over ``cell.step``. Plain PyTorch ops, so
  autograd, float64 and every device work; every cell and option, gate traces.
- ``native``: torch's own fused kernel (``torch._VF.lstm`` / ``_VF.gru``, the
  call ``torch.nn.LSTM`` makes), for plain cells only. Variable lengths: with
  autograd on (training) they run on the padded batch, one layer and direction
  at a time, because the backward pass of torch's packed CPU kernel is several
  times slower; without autograd (inference) torch's packed kernel is used.
- ``fused``: our compiled kernels (``lstmkit.nn.fused``: ``lstm_direction`` /
  ``gru_direction``, one forward-in-time direction each). This file computes
  what comes before and after them: the input projection (with its layer
  norm), DropConnect on ``W_hh``, reversal within lengths for reverse
  directions, stacking and inter-layer dropout.
- ``sequence``: a cell's whole-sequence form in torch operations
  (``cell.sequence_direction``: the mLSTM's chunkwise-parallel form), autograd included.
"""

import importlib
import warnings
from types import ModuleType

import torch
import torch.nn.functional as F
from torch import _VF, Tensor
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from lstmkit.nn.cells import CellSpec, DirectionMasks

BACKENDS = ("auto", "native", "reference", "fused")

Weights = list[list[dict[str, Tensor]]]
Masks = list[list[DirectionMasks]] | None

TORCH_ORDER = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")


def _no_masks(cell: CellSpec) -> DirectionMasks:
    return DirectionMasks(None, None, (None,) * len(cell.state_sizes))


def _dropconnect(params: dict[str, Tensor], masks: DirectionMasks) -> dict[str, Tensor]:
    """The direction's parameters with ``W_hh`` DropConnect-masked (unchanged without a mask)."""
    if masks.weight_hh is None:
        return params
    return {**params, "weight_hh": params["weight_hh"] * masks.weight_hh}


def _step_mask(x: Tensor, lengths: Tensor | None) -> Tensor | None:
    """``(time, batch, 1)`` booleans, True on real steps; None without lengths."""
    if lengths is None:
        return None
    steps = torch.arange(x.shape[0], device=x.device).unsqueeze(1)
    return (steps < lengths.to(x.device).unsqueeze(0)).unsqueeze(-1)


def _run_direction(
    cell: CellSpec,
    xw: Tensor,
    state: tuple[Tensor, ...],
    params: dict[str, Tensor],
    masks: DirectionMasks,
    step_mask: Tensor | None,
    reverse: bool,
    keep_gates: bool,
) -> tuple[Tensor, tuple[Tensor, ...], tuple[Tensor, ...] | None]:
    """Run one direction of one layer over time with ``cell.step``.

    ``xw`` is ``(time, batch, gates*hidden)``; ``step_mask`` is ``(time,
    batch, 1)`` booleans (True on real steps) or None. Padded steps keep the
    state and give zero output (and zero gates), so the forward direction ends
    at each sequence's last real step and the reverse direction starts there.
    Zoneout weights are read at each step's own time index in both directions.
    """
    time = xw.shape[0]
    steps = range(time - 1, -1, -1) if reverse else range(time)
    outputs: list[Tensor] = [xw.new_empty(0)] * time
    trace: list[tuple[Tensor, ...]] = [()] * time
    # unbind once: indexing xw[t] per step would cost a full-size zero gradient per step
    xws = xw.unbind(0)
    step_masks = step_mask.unbind(0) if step_mask is not None else None
    zoneout = [z.unbind(0) if z is not None else None for z in masks.zoneout]
    no_zoneout = masks.zoneout if all(z is None for z in zoneout) else None
    for t in steps:
        zo_t = no_zoneout or tuple(z[t] if z is not None else None for z in zoneout)
        out, new, gates = cell.step(xws[t], state, params, masks.recurrent, zo_t)
        if step_masks is not None:
            m = step_masks[t]
            new = tuple(torch.where(m, n, s) for n, s in zip(new, state, strict=True))
            out = torch.where(m, out, torch.zeros_like(out))
            if keep_gates:
                gates = type(gates)(*(torch.where(m, g, torch.zeros_like(g)) for g in gates))
        state = new
        outputs[t] = out
        if keep_gates:
            trace[t] = gates
    stacked = None
    if keep_gates:
        stacked = cell.gate_type(*(torch.stack(g) for g in zip(*trace, strict=True)))
    return torch.stack(outputs), state, stacked


def _layers(
    run_direction,
    cell: CellSpec,
    x: Tensor,
    hx: tuple[Tensor, ...],
    weights: Weights,
    masks: Masks,
    dropout: float,
    training: bool,
    return_gates: bool,
) -> tuple[Tensor, tuple[Tensor, ...], list | None]:
    """Stacking and directions around ``run_direction``, shared by reference and fused.

    ``run_direction(layer_input, state, params, masks, reverse)`` returns
    ``(out (time, batch, out_size), final state tuple, gates or None)``.
    """
    num_directions = len(weights[0])
    finals: list[list[Tensor]] = [[] for _ in hx]
    all_gates = [] if return_gates else None
    layer_input = x
    for layer, layer_weights in enumerate(weights):
        outs, layer_gates = [], []
        for d, params in enumerate(layer_weights):
            idx = layer * num_directions + d
            m = masks[layer][d] if masks is not None else _no_masks(cell)
            state = tuple(s[idx] for s in hx)
            out, state, gates = run_direction(layer_input, state, params, m, d == 1)
            outs.append(out)
            for store, s in zip(finals, state, strict=True):
                store.append(s)
            layer_gates.append(gates)
        layer_input = outs[0] if num_directions == 1 else torch.cat(outs, dim=-1)
        if dropout > 0 and training and layer < len(weights) - 1:
            layer_input = F.dropout(layer_input, dropout, training=True)
        if all_gates is not None:
            all_gates.append(layer_gates)
    return layer_input, tuple(torch.stack(f) for f in finals), all_gates


def reference(
    cell: CellSpec,
    x: Tensor,
    hx: tuple[Tensor, ...],
    weights: Weights,
    *,
    masks: Masks = None,
    lengths: Tensor | None = None,
    dropout: float = 0.0,
    training: bool = False,
    return_gates: bool = False,
) -> tuple[Tensor, tuple[Tensor, ...], list | None]:
    """Run the layer with the generic step loop (any cell, every option).

    Args:
        cell: the cell spec (``LSTMSpec`` / ``GRUSpec``).
        x: ``(time, batch, input)``.
        hx: one tensor per state, each ``(num_layers * num_directions, batch, size)``.
        weights: ``weights[layer][direction]``, parameters by base name.
        masks: ``masks[layer][direction]`` from ``cells.sample_masks``, or None.
        lengths: ``(batch,)`` real lengths of right-padded sequences, or None.
        dropout: inter-layer dropout (training only, not after the last layer).

    Returns:
        ``output (time, batch, num_directions * out_size)``, final states shaped
        like ``hx``, and ``gates[layer][direction]`` (``LSTMGates`` /
        ``GRUGates`` of ``(time, batch, hidden)`` tensors) when ``return_gates``,
        else None.
    """
    step_mask = _step_mask(x, lengths)

    def run(layer_input, state, params, m, reverse):
        xw = cell.project_input(layer_input, params)  # every step at once
        params = _dropconnect(params, m)
        return _run_direction(cell, xw, state, params, m, step_mask, reverse, return_gates)

    return _layers(run, cell, x, hx, weights, masks, dropout, training, return_gates)


_warned_fused = False


def fused_kernels() -> ModuleType | None:
    """``lstmkit.nn.fused`` when it imports and says it is available, else None.

    Imported lazily (building its kernels may take a while). When the module
    is missing a warning says so once; when it imports but ``available()`` is
    False, the module itself says why.
    """
    global _warned_fused
    try:
        module = importlib.import_module("lstmkit.nn.fused")
    except ImportError as err:
        if not _warned_fused:
            _warned_fused = True
            warnings.warn(
                f"lstmkit.nn: the fused backend cannot be imported ({err}); "
                "using the reference loop",
                RuntimeWarning,
                stacklevel=3,
            )
        return None
    return module if module.available() else None


def fused(
    cell: CellSpec,
    x: Tensor,
    hx: tuple[Tensor, ...],
    weights: Weights,
    *,
    masks: Masks = None,
    lengths: Tensor | None = None,
    dropout: float = 0.0,
    training: bool = False,
    return_gates: bool = False,
    kernels: ModuleType | None = None,
) -> tuple[Tensor, tuple[Tensor, ...], list | None]:
    """Run the layer on the compiled per-direction kernels of ``lstmkit.nn.fused``.

    Same contract as `reference`, except that gates (``return_gates``) are the
    kernel's saved activations, detached from autograd (for inspection).
    ``kernels`` is the module (``fused_kernels()`` when None). The input
    projection of all steps runs as one product through ``kernels.linear``
    (with its layer norm when the cell has one); ``lstm_direction`` /
    ``gru_direction`` run forward in time, so a reverse direction gets its
    input, lengths and zoneout weights reversed within each sequence's length,
    and its output (and gates) are reversed back.
    """
    if kernels is None:
        kernels = fused_kernels()
        if kernels is None:
            raise RuntimeError("lstmkit.nn.fused is not available; use backend='reference'")

    def flip(t: Tensor) -> Tensor:
        return t.flip(0) if lengths is None else reverse_within_lengths(t, lengths)

    def run(layer_input, state, params, m, reverse):
        xw = cell.fused_project_input(kernels, layer_input, params)
        params = _dropconnect(params, m)
        if reverse:
            xw = flip(xw)
            # a constant (stride-0, eval) zoneout tensor is its own reversal
            zo = tuple(z if z is None or z.stride(0) == 0 else flip(z) for z in m.zoneout)
            m = m._replace(zoneout=zo)
        out, state, gates = cell.fused_direction(
            kernels, xw, state, params, m, lengths, return_gates
        )
        if reverse:
            out = flip(out)
            if gates is not None:
                gates = type(gates)(*(flip(g) for g in gates))
        return out, state, gates

    return _layers(run, cell, x, hx, weights, masks, dropout, training, return_gates)


def sequence(
    cell: CellSpec,
    x: Tensor,
    hx: tuple[Tensor, ...],
    weights: Weights,
    *,
    masks: Masks = None,
    lengths: Tensor | None = None,
    dropout: float = 0.0,
    training: bool = False,
    return_gates: bool = False,
) -> tuple[Tensor, tuple[Tensor, ...], list | None]:
    """Run the layer with the cell's whole-sequence form (``cell.sequence_direction``).

    Same contract as `reference`, for cells that compute a direction over all steps at
    once in torch operations (the mLSTM's chunkwise form), with autograd. The input
    projection is pointwise in time, so a reverse direction reverses it within lengths,
    runs forward and reverses the output (and gates) back.
    """

    def flip(t: Tensor) -> Tensor:
        return t.flip(0) if lengths is None else reverse_within_lengths(t, lengths)

    def run(layer_input, state, params, m, reverse):
        xw = cell.project_input(layer_input, params)
        if reverse:
            xw = flip(xw)
        out, state, gates = cell.sequence_direction(xw, state, params, lengths, return_gates)
        if reverse:
            out = flip(out)
            if gates is not None:
                gates = type(gates)(*(flip(g) for g in gates))
        return out, state, gates

    return _layers(run, cell, x, hx, weights, masks, dropout, training, return_gates)


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


def _torch_flat(params: dict[str, Tensor]) -> list[Tensor]:
    """One direction's parameters in torch's flat order ``w_ih, w_hh[, b_ih, b_hh][, w_hr]``."""
    return [params[n] for n in TORCH_ORDER if n in params]


def _lstm_cell_states(
    x: Tensor, out: Tensor, h0: Tensor, c0: Tensor, params: dict[str, Tensor], max_len: int
) -> Tensor:
    """Cell states ``c_t`` of one plain LSTM direction, recomputed from its outputs.

    torch's kernel returns every ``h_t`` but only the last ``c``. Given
    ``h_{t-1}`` the gates i, f, g follow in one product (``lstm_step``'s algebra), and
    ``c_t = f_t * c_{t-1} + i_t * g_t`` is then a cheap element-wise scan.
    Gradients flow through ``out`` into the kernel, so they stay exact.
    """
    b_ih, b_hh = params.get("bias_ih"), params.get("bias_hh")
    rows = slice(0, 3 * c0.shape[-1])  # gates i, f, g; c does not need o
    h_prev = torch.cat([h0.unsqueeze(0), out[: max_len - 1]], dim=0)
    z = F.linear(x[:max_len], params["weight_ih"][rows], None if b_ih is None else b_ih[rows])
    z = z + F.linear(h_prev, params["weight_hh"][rows], None if b_hh is None else b_hh[rows])
    i, f, g = z.chunk(3, dim=-1)
    update = torch.sigmoid(i) * torch.tanh(g)
    cells, c = [], c0
    # unbind, not f[t]: indexing a tensor per step costs a full-size zero gradient per step
    for f_t, u_t in zip(torch.sigmoid(f).unbind(0), update.unbind(0), strict=True):
        c = f_t * c + u_t
        cells.append(c)
    return torch.stack(cells)


def _padded_direction(
    kernel,
    x: Tensor,
    state: tuple[Tensor, ...],
    params: dict[str, Tensor],
    lengths: Tensor,
    shortest: int,
    longest: int,
    *,
    training: bool,
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """One direction of one layer on a right-padded, time-major batch, with torch's kernel.

    The kernel only runs over steps ``[0, longest)`` (later steps are padding
    for every sequence: zero output). With a cell state (LSTM) it runs in two
    calls split at the shortest length: the first call's final ``c`` is exact
    for every sequence there, so ``c`` at each last real step is rebuilt from
    the outputs over the few steps between the shortest and the longest
    sequence only.

    Returns the output ``(time, batch, out)`` (garbage after each length: the
    caller masks it) and the final states ``(batch, size)`` at each last step.
    """
    flat, bias = _torch_flat(params), "bias_ih" in params
    if len(state) == 1:  # h only: the last h is read from the outputs
        out = kernel(x[:longest], state[0], flat, bias, 1, 0.0, training, False, False)[0]
        pieces, finals = [out], None
    else:
        head, h_mid, c_mid = kernel(x[:shortest], state, flat, bias, 1, 0.0, training, False, False)
        pieces = [head]
        cells = c_mid
        if longest > shortest:
            tail = kernel(
                x[shortest:longest], (h_mid, c_mid), flat, bias, 1, 0.0, training, False, False
            )
            pieces.append(tail[0])
            rebuilt = _lstm_cell_states(
                x[shortest:longest], tail[0], h_mid[0], c_mid[0], params, longest - shortest
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
    kernel,
    x: Tensor,
    hx: tuple[Tensor, ...],
    weights: Weights,
    lengths: Tensor,
    *,
    dropout: float,
    training: bool,
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Right-padded batch with ``lengths`` on torch's kernel, without packing.

    torch's packed-sequence CPU kernel is several times slower than its padded
    one, so each layer and direction runs on the padded batch instead: padding
    sits after the real steps, where it cannot reach them; the reverse
    direction reads each sequence reversed within its own length; final
    states are read at each sequence's last real step (see `_padded_direction`).
    """
    num_directions = len(weights[0])
    mask = _step_mask(x, lengths)
    shortest, longest = int(lengths.min()), int(lengths.max())
    finals: list[list[Tensor]] = [[] for _ in hx]
    layer_input = x
    for layer, layer_weights in enumerate(weights):
        outs = []
        for d, params in enumerate(layer_weights):
            idx = layer * num_directions + d
            inp = layer_input if d == 0 else reverse_within_lengths(layer_input, lengths)
            out, states = _padded_direction(
                kernel, inp, tuple(s[idx : idx + 1] for s in hx), params, lengths,
                shortest, longest, training=training,
            )  # fmt: skip
            for store, s in zip(finals, states, strict=True):
                store.append(s)
            out = torch.where(mask, out, torch.zeros_like(out))
            outs.append(out if d == 0 else reverse_within_lengths(out, lengths))
        layer_input = outs[0] if num_directions == 1 else torch.cat(outs, dim=-1)
        if dropout > 0 and training and layer < len(weights) - 1:
            layer_input = F.dropout(layer_input, dropout, training=True)
    return layer_input, tuple(torch.stack(f) for f in finals)


def native(
    cell: CellSpec,
    x: Tensor,
    hx: tuple[Tensor, ...],
    weights: Weights,
    *,
    masks: Masks = None,
    lengths: Tensor | None = None,
    dropout: float = 0.0,
    training: bool = False,
    return_gates: bool = False,
) -> tuple[Tensor, tuple[Tensor, ...], None]:
    """Run the layer with torch's fused kernel (plain cells only).

    Same contract as `reference` (time-major ``x``, optional ``lengths``, states
    in the caller's batch order); no gate traces and no masks.
    """
    if not cell.plain_when(training) or masks is not None or return_gates:
        raise ValueError(
            "the native backend runs plain LSTM/GRU layers without gate traces; "
            "use backend='reference' (or 'auto') for variants and return_gates"
        )
    kernel = getattr(_VF, cell.torch_kernel)
    num_layers, num_directions = len(weights), len(weights[0])
    bidirectional, bias = num_directions == 2, cell.bias
    if lengths is not None and int(lengths.min()) < x.shape[0]:
        if torch.is_grad_enabled():
            # training: the padded kernel's backward is much cheaper than the packed one's
            out, finals = _native_padded(
                kernel, x, hx, weights, lengths, dropout=dropout, training=training
            )
            return out, finals, None
        # inference: no backward to save; torch's packed kernel measured as fast or faster here
        flat = [t for row in weights for params in row for t in _torch_flat(params)]
        packed = pack_padded_sequence(x, lengths.cpu(), enforce_sorted=False)
        order, unorder = packed.sorted_indices, packed.unsorted_indices
        states = tuple(s.index_select(1, order) for s in hx)
        result = kernel(
            packed.data, packed.batch_sizes, states if len(states) > 1 else states[0],
            flat, bias, num_layers, dropout, training, bidirectional,
        )  # fmt: skip
        out = PackedSequence(result[0], packed.batch_sizes, order, unorder)
        out, _ = pad_packed_sequence(out, total_length=x.shape[0])
        return out, tuple(s.index_select(1, unorder) for s in result[1:]), None
    flat = [t for row in weights for params in row for t in _torch_flat(params)]
    h = hx if len(hx) > 1 else hx[0]
    result = kernel(x, h, flat, bias, num_layers, dropout, training, bidirectional, False)
    return result[0], tuple(result[1:]), None
