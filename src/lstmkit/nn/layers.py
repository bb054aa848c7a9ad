"""Recurrent layers: stacking, directions, variable lengths, backend choice.

``LSTM`` and ``GRU`` are drop-in replacements for ``torch.nn.LSTM`` /
``torch.nn.GRU``: same constructor arguments, input and output shapes, and
parameter names (``weight_ih_l{k}[_reverse]``, ``weight_hh_l{k}``,
``bias_ih_l{k}``, ``bias_hh_l{k}``, ``weight_hr_l{k}``), so ``state_dict``s
move both ways. On top of torch they accept ``lengths=`` for right-padded
batches, can return every gate activation (``return_gates=True``), offer a
Keras-style initialisation and pick their backend themselves:

- ``native``: torch's fused kernel, chosen whenever the call is plain;
- ``reference``: our step loop over ``cells.py``, for everything else.
"""

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from lstmkit.nn import backends

INITS = ("torch", "keras")


class _RecurrentBase(nn.Module):
    """Parameter layout, checks and dispatch shared by ``LSTM`` and ``GRU``."""

    mode = ""  # "LSTM" or "GRU"
    num_chunks = 0  # gates per step: 4 for LSTM, 3 for GRU

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: Any = None,
        dtype: Any = None,
        *,
        backend: str = "auto",
        init: str = "torch",
    ) -> None:
        super().__init__()
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f"num_layers must be an integer >= 1, got {num_layers!r}")
        if not 0 <= float(dropout) <= 1 or isinstance(dropout, bool):
            raise ValueError(f"dropout must be a probability in [0, 1], got {dropout!r}")
        if not isinstance(proj_size, int) or proj_size < 0:
            raise ValueError(f"proj_size must be a non-negative integer, got {proj_size!r}")
        if proj_size >= hidden_size:
            raise ValueError(
                f"proj_size ({proj_size}) must be smaller than hidden_size ({hidden_size})"
            )
        if backend not in backends.BACKENDS:
            raise ValueError(f"backend must be one of {backends.BACKENDS}, got {backend!r}")
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = proj_size
        self.backend = backend
        self.init = init
        factory = {"device": device, "dtype": dtype}
        num_directions = 2 if bidirectional else 1
        out_size = proj_size or hidden_size
        gate_size = self.num_chunks * hidden_size
        self._flat_weights_names: list[str] = []
        for layer in range(num_layers):
            layer_in = input_size if layer == 0 else out_size * num_directions
            for d in range(num_directions):
                sfx = f"_l{layer}" + ("_reverse" if d == 1 else "")
                shapes = [
                    (f"weight_ih{sfx}", (gate_size, layer_in)),
                    (f"weight_hh{sfx}", (gate_size, out_size)),
                ]
                if bias:
                    shapes += [(f"bias_ih{sfx}", (gate_size,)), (f"bias_hh{sfx}", (gate_size,))]
                if proj_size:
                    shapes.append((f"weight_hr{sfx}", (proj_size, hidden_size)))
                for name, shape in shapes:
                    self.register_parameter(name, nn.Parameter(torch.empty(shape, **factory)))
                    self._flat_weights_names.append(name)
        self.reset_parameters()

    # ----------------------------------------------------------------- set-up
    @property
    def _flat_weights(self) -> list[Tensor]:
        params = self._parameters
        return [params[n] for n in self._flat_weights_names]

    @property
    def all_weights(self) -> list[list[Tensor]]:
        """Parameters grouped per layer and direction, as ``torch.nn.LSTM.all_weights``."""
        per = 2 + 2 * self.bias + (self.proj_size > 0)
        flat = self._flat_weights
        return [flat[i : i + per] for i in range(0, len(flat), per)]

    def reset_parameters(self) -> None:
        """Initialise with the preset named by ``self.init``.

        - ``"torch"``: every parameter uniform in ``±1/sqrt(hidden_size)``
          (torch's default, so a fresh layer is statistically torch's).
        - ``"keras"``: Xavier-uniform input (and projection) weights,
          orthogonal recurrent weights per gate, zero biases except a forget
          gate bias of 1 (LSTM), as Keras' ``LSTM`` / ``GRU`` layers do.
        """
        if self.init == "torch":
            bound = 1.0 / math.sqrt(self.hidden_size)
            for p in self.parameters():
                nn.init.uniform_(p, -bound, bound)
            return
        h = self.hidden_size
        with torch.no_grad():
            for name in self._flat_weights_names:
                p = self._parameters[name]
                if name.startswith(("weight_ih", "weight_hr")):
                    nn.init.xavier_uniform_(p)
                elif name.startswith("weight_hh"):
                    for block in p.split(h, dim=0):
                        nn.init.orthogonal_(block)
                else:
                    p.zero_()
                    if self.mode == "LSTM" and name.startswith("bias_ih"):
                        p[h : 2 * h] = 1.0  # forget gate: remember by default

    def flatten_parameters(self) -> None:
        """Kept for drop-in compatibility with ``torch.nn.LSTM``.

        Our parameters are separate tensors, which is what the CPU kernel
        uses; as in torch on CPU, there is nothing to flatten.
        """

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        for name, default in (
            ("proj_size", 0),
            ("num_layers", 1),
            ("bias", True),
            ("batch_first", False),
            ("dropout", 0.0),
            ("bidirectional", False),
            ("backend", "auto"),
            ("init", "torch"),
        ):
            value = getattr(self, name)
            if value != default:
                s += f", {name}={value!r}"
        return s

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments as plain values; ``type(self)(**config)`` rebuilds the layer."""
        config = {
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "bias": self.bias,
            "batch_first": self.batch_first,
            "dropout": self.dropout,
            "bidirectional": self.bidirectional,
            "backend": self.backend,
            "init": self.init,
        }
        if self.mode == "LSTM":
            config["proj_size"] = self.proj_size
        return config

    # ----------------------------------------------------------------- checks
    def _state_sizes(self) -> list[int]:
        """Feature size of each state tensor: (h, c) for LSTM, (h,) for GRU."""
        if self.mode == "LSTM":
            return [self.proj_size or self.hidden_size, self.hidden_size]
        return [self.hidden_size]

    def _check_input(self, x: Tensor, packed: bool) -> bool:
        """Validate the input tensor; return True for unbatched input."""
        name = type(self).__name__
        if packed:
            dims_ok, expect = x.dim() == 2, f"(sum of lengths, {self.input_size})"
        else:
            dims_ok = x.dim() in (2, 3)
            layout = "(batch, time, features)" if self.batch_first else "(time, batch, features)"
            expect = f"{layout} or unbatched (time, features)"
        if not dims_ok:
            raise ValueError(f"{name}: expected input of shape {expect}, got {tuple(x.shape)}")
        if x.shape[-1] != self.input_size:
            raise ValueError(
                f"{name}: input.size(-1) must be equal to input_size. Expected "
                f"{self.input_size}, got {x.shape[-1]}"
            )
        return not packed and x.dim() == 2

    def _check_lengths(self, lengths: Tensor, batch: int, time: int) -> Tensor:
        name = type(self).__name__
        if not isinstance(lengths, Tensor):
            lengths = torch.as_tensor(lengths)
        if lengths.dim() != 1 or lengths.shape[0] != batch:
            raise ValueError(
                f"{name}: expected lengths of shape ({batch},), one per sequence, "
                f"got {tuple(lengths.shape)}"
            )
        if lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
            raise ValueError(f"{name}: lengths must be integers, got dtype {lengths.dtype}")
        lo, hi = int(lengths.min()), int(lengths.max())
        if lo < 1 or hi > time:
            raise ValueError(
                f"{name}: every length must be between 1 and the padded length {time}, "
                f"got min {lo} and max {hi}; drop empty sequences before the layer"
            )
        return lengths.to(torch.int64)

    def _check_state(self, hx: Any, batch: int | None, x: Tensor) -> tuple[Tensor, ...]:
        """Validate (or create zero) initial states; always returns batched tensors."""
        name = type(self).__name__
        rows = self.num_layers * (2 if self.bidirectional else 1)
        sizes = self._state_sizes()
        b = 1 if batch is None else batch
        if hx is None:
            return tuple(x.new_zeros(rows, b, s) for s in sizes)
        if self.mode == "LSTM":
            if not isinstance(hx, tuple | list) or len(hx) != 2:
                raise ValueError(f"{name}: hx must be a tuple (h_0, c_0) of two tensors")
            states = tuple(hx)
        else:
            if not torch.is_tensor(hx):
                raise ValueError(f"{name}: hx must be a tensor h_0, got {type(hx).__name__}")
            states = (hx,)
        out = []
        for i, (s, size) in enumerate(zip(states, sizes, strict=True)):
            label = ("h_0", "c_0")[i] if self.mode == "LSTM" else "h_0"
            want = (rows, size) if batch is None else (rows, batch, size)
            if tuple(s.shape) != want:
                raise ValueError(
                    f"{name}: expected {label} of shape {want}, got {tuple(s.shape)}"
                    + (" (unbatched input takes unbatched states)" if batch is None else "")
                )
            out.append(s.unsqueeze(1) if batch is None else s)
        return tuple(out)

    # ---------------------------------------------------------------- forward
    def _pick_backend(self, return_gates: bool) -> str:
        if self.backend == "auto":
            return "reference" if return_gates else "native"
        if return_gates and self.backend == "native":
            raise ValueError(
                f"{type(self).__name__}: return_gates=True needs the reference backend; "
                "use backend='auto' or 'reference'"
            )
        return self.backend

    def _forward(
        self, input: Tensor | PackedSequence, hx: Any, lengths: Any, return_gates: bool
    ) -> tuple[Any, tuple[Tensor, ...], list | None]:
        packed = isinstance(input, PackedSequence)
        x = input.data if packed else input
        unbatched = self._check_input(x, packed)
        if packed:
            if lengths is not None:
                raise ValueError(
                    f"{type(self).__name__}: pass either a PackedSequence or lengths=, not both"
                )
            x, lengths = pad_packed_sequence(input)  # (time, batch, features), caller's order
            batch = x.shape[1]
        elif unbatched:
            if lengths is not None:
                raise ValueError(
                    f"{type(self).__name__}: lengths= needs a batch; unbatched input "
                    "(time, features) is one whole sequence"
                )
            batch, x = None, x.unsqueeze(1)  # (time, 1, features)
        else:
            if self.batch_first:
                x = x.transpose(0, 1)
            batch = x.shape[1]
            if lengths is not None:
                lengths = self._check_lengths(lengths, batch, x.shape[0])
        states = self._check_state(hx, batch, x)
        common = {
            "lengths": lengths,
            "num_layers": self.num_layers,
            "bidirectional": self.bidirectional,
            "bias": self.bias,
            "proj": self.proj_size > 0,
            "dropout": self.dropout,
            "training": self.training,
        }
        gates = None
        if self._pick_backend(return_gates) == "native":
            out, finals = backends.native(self.mode, x, states, self._flat_weights, **common)
        else:
            out, finals, gates = backends.reference(
                self.mode, x, states, self._flat_weights, return_gates=return_gates, **common
            )
        # back to the caller's layout: out and gates are (time, batch, features) here
        if unbatched:
            out, finals = out.squeeze(1), tuple(f.squeeze(1) for f in finals)
            if gates is not None:
                gates = [[type(g)(*(t.squeeze(1) for t in g)) for g in layer] for layer in gates]
        elif packed:
            order = input.sorted_indices
            if order is not None:
                out, lengths = out.index_select(1, order), lengths[order]
            data = pack_padded_sequence(out, lengths, enforce_sorted=True).data
            out = PackedSequence(
                data, input.batch_sizes, input.sorted_indices, input.unsorted_indices
            )
        if self.batch_first and not unbatched:
            if not packed:
                out = out.transpose(0, 1)
            if gates is not None:
                gates = [[type(g)(*(t.transpose(0, 1) for t in g)) for g in lay] for lay in gates]
        return out, finals, gates


class LSTM(_RecurrentBase):
    r"""Multi-layer LSTM over a sequence, a drop-in for ``torch.nn.LSTM``.

    Each step applies the gate equations of ``lstmkit.nn.cells`` (i, f, g, o).

    Args:
        input_size: features of each input step.
        hidden_size: features of ``h`` and ``c``.
        num_layers: stacked layers; layer ``k > 0`` reads layer ``k-1``'s output.
        bias: use ``b_ih`` and ``b_hh``.
        batch_first: input and output are ``(batch, time, features)`` instead
            of ``(time, batch, features)``.
        dropout: dropout on each layer's output except the last, in training.
        bidirectional: add a reverse direction; outputs are concatenated.
        proj_size: if > 0, ``h_t`` is projected to this size (LSTMP).
        backend: ``"auto"`` (torch's fused kernel when the call is plain,
            the reference loop otherwise), ``"native"`` or ``"reference"``.
        init: ``"torch"`` (default) or ``"keras"`` (Xavier/orthogonal/forget
            bias 1).

    Forward:
        ``input``: ``(time, batch, input_size)`` (``(batch, time, input_size)``
        when batch_first), unbatched ``(time, input_size)``, or a PackedSequence.
        ``hx = (h_0, c_0)``: ``(num_layers * num_directions, batch, proj_size or
        hidden_size)`` and ``(..., hidden_size)``; zeros when omitted.
        ``lengths``: ``(batch,)`` integers, real lengths of right-padded
        sequences: padded steps leave the state alone and output zeros.
        ``return_gates``: also return ``gates[layer][direction]``, an
        ``LSTMGates`` of tensors laid out like ``output`` but ``hidden_size``
        wide (zeros at padded steps).

    Returns:
        ``output`` (``num_directions * (proj_size or hidden_size)`` features per
        step) and ``(h_n, c_n)``, with torch's shapes; plus ``gates`` when asked.
    """

    mode = "LSTM"
    num_chunks = 4

    def forward(
        self,
        input: Tensor | PackedSequence,
        hx: tuple[Tensor, Tensor] | None = None,
        *,
        lengths: Tensor | None = None,
        return_gates: bool = False,
    ):
        out, (h, c), gates = self._forward(input, hx, lengths, return_gates)
        return (out, (h, c), gates) if return_gates else (out, (h, c))


class GRU(_RecurrentBase):
    r"""Multi-layer GRU over a sequence, a drop-in for ``torch.nn.GRU``.

    Each step applies the GRU equations of ``lstmkit.nn.cells`` (r, z, n).
    Arguments, input layouts, ``lengths``, ``backend`` and ``init`` are as for
    :class:`LSTM` (there is no ``proj_size``); ``hx`` is a single ``h_0`` of
    ``(num_layers * num_directions, batch, hidden_size)``.

    Returns:
        ``output`` and ``h_n`` with torch's shapes, plus ``gates[layer][direction]``
        (``GRUGates``) when ``return_gates=True``.
    """

    mode = "GRU"
    num_chunks = 3

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Any = None,
        dtype: Any = None,
        *,
        backend: str = "auto",
        init: str = "torch",
    ) -> None:
        super().__init__(
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            0,
            device,
            dtype,
            backend=backend,
            init=init,
        )

    def forward(
        self,
        input: Tensor | PackedSequence,
        hx: Tensor | None = None,
        *,
        lengths: Tensor | None = None,
        return_gates: bool = False,
    ):
        out, (h,), gates = self._forward(input, hx, lengths, return_gates)
        return (out, h, gates) if return_gates else (out, h)
