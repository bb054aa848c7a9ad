"""Recurrent layers: stacking, directions, variable lengths, variants, backend choice.

``LSTM`` and ``GRU`` are drop-in replacements for ``torch.nn.LSTM`` /
``torch.nn.GRU``: same constructor arguments, input and output shapes, and
parameter names (``weight_ih_l{k}[_reverse]``, ``weight_hh_l{k}``,
``bias_ih_l{k}``, ``bias_hh_l{k}``, ``weight_hr_l{k}``), so ``state_dict``s of
plain layers move both ways. On top of torch they accept ``lengths=`` for
right-padded batches, can return every gate activation
(``return_gates=True``), offer a Keras-style initialisation and the variants
of ``cells.py`` as keyword options (``layer_norm``, ``recurrent_dropout``,
``zoneout``, ``dropconnect``, ``peepholes``; their parameters are named
``ln_weight_ih_l{k}``, ``ln_weight_hh_l{k}``, ``ln_weight_c_l{k}``,
``ln_bias_c_l{k}``, ``peephole_l{k}``, each with ``_reverse`` for direction 1).

A layer is a cell spec (``cells.LSTMSpec`` / ``GRUSpec``) plus parameters per
layer and direction; the backends of ``backends.py`` run it. The layer draws
the random masks of each forward call (``cells.sample_masks``) and picks its
backend itself (``backend="auto"``):

- ``native`` (torch's kernel) when the cell is plain;
- ``fused`` (``lstmkit.nn.fused``) for every variant when it is available;
- ``reference`` (the generic step loop) otherwise, and for ``return_gates``.
"""

import contextlib
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from lstmkit.nn import backends, cpu
from lstmkit.nn.cells import (
    CellSpec,
    GRUSpec,
    LSTMSpec,
    init_parameter,
    sample_masks,
    split_zoneout,
)

INITS = ("torch", "keras")

_RUN = {
    "native": backends.native,
    "reference": backends.reference,
    "fused": backends.fused,
    "sequence": backends.sequence,
}


def _bf16_autocast_without_native_bf16() -> bool:
    """A CPU bf16 autocast is on but this CPU has no native bf16 (``lstmkit.nn.cpu``): the
    layers then compute in float32, because torch's own oneDNN LSTM cannot run there and
    bf16 products are many times slower than float32."""
    return (
        torch.is_autocast_enabled("cpu")
        and torch.get_autocast_dtype("cpu") == torch.bfloat16
        and not cpu.native_bf16()
    )


class _RecurrentBase(nn.Module):
    """Parameter layout, checks, masks and dispatch shared by ``LSTM``, ``GRU`` and the
    xLSTM layers (``xlstm_layers.py``, with their own ``backend_choices`` and ``init_choices``)."""

    mode = ""  # torch's name of the layer ("LSTM" / "GRU"); informational only
    backend_choices: tuple[str, ...] = backends.BACKENDS
    init_choices: tuple[str, ...] = INITS

    def __init__(
        self,
        input_size: int,
        cell: CellSpec,
        num_layers: int,
        batch_first: bool,
        dropout: float,
        bidirectional: bool,
        device: Any,
        dtype: Any,
        backend: str,
        init: str,
        zoneout: Any,
    ) -> None:
        super().__init__()
        if not isinstance(input_size, int) or isinstance(input_size, bool) or input_size <= 0:
            raise ValueError(f"input_size must be a positive integer, got {input_size!r}")
        if not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f"num_layers must be an integer >= 1, got {num_layers!r}")
        if isinstance(dropout, bool) or not 0 <= float(dropout) <= 1:
            raise ValueError(f"dropout must be a probability in [0, 1], got {dropout!r}")
        if backend not in self.backend_choices:
            raise ValueError(f"backend must be one of {self.backend_choices}, got {backend!r}")
        if backend == "native" and not cell.is_plain:
            raise ValueError(
                f"backend='native' (torch's kernel) runs plain {self.mode} layers only; "
                "use backend='auto', 'fused' or 'reference' with layer_norm, recurrent_dropout, "
                "zoneout, dropconnect or peepholes"
            )
        if init not in self.init_choices:
            raise ValueError(f"init must be one of {self.init_choices}, got {init!r}")
        self.cell = cell
        self.input_size = input_size
        self.hidden_size = cell.hidden_size
        self.num_layers = num_layers
        self.bias = cell.bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = cell.out_size if cell.out_size != cell.hidden_size else 0
        self.backend = backend
        self.init = init
        self.zoneout = tuple(zoneout) if isinstance(zoneout, tuple | list) else zoneout
        factory = {"device": device, "dtype": dtype}
        num_directions = 2 if bidirectional else 1
        # _names[layer][direction] = {base name: registered name}; base names of every parameter
        self._names: list[list[dict[str, str]]] = []
        self._base: dict[str, str] = {}
        self._inits: dict[str, str] = {}
        for layer in range(num_layers):
            layer_in = input_size if layer == 0 else cell.out_size * num_directions
            row = []
            for d in range(num_directions):
                sfx = f"_l{layer}" + ("_reverse" if d == 1 else "")
                names = {}
                for p in cell.parameters(layer_in):
                    name = p.name + sfx
                    self.register_parameter(name, nn.Parameter(torch.empty(p.shape, **factory)))
                    names[p.name], self._base[name], self._inits[name] = name, p.name, p.init
                row.append(names)
            self._names.append(row)
        self._flat_weights_names = [
            d[n] for row in self._names for d in row for n in backends.TORCH_ORDER if n in d
        ]
        self.reset_parameters()

    # ----------------------------------------------------------------- set-up
    @property
    def layer_norm(self) -> bool:
        return self.cell.layer_norm

    @property
    def recurrent_dropout(self) -> float:
        return self.cell.recurrent_dropout

    @property
    def dropconnect(self) -> float:
        return self.cell.dropconnect

    @property
    def _flat_weights(self) -> list[Tensor]:
        params = self._parameters
        return [params[n] for n in self._flat_weights_names]

    @property
    def all_weights(self) -> list[list[Tensor]]:
        """torch's parameters grouped per layer and direction, as ``torch.nn.LSTM.all_weights``."""
        params = self._parameters
        return [
            [params[d[n]] for n in backends.TORCH_ORDER if n in d]
            for row in self._names
            for d in row
        ]

    def _weights(self) -> backends.Weights:
        """``weights[layer][direction]``: the parameters by base name, for the backends."""
        params = self._parameters
        return [[{b: params[n] for b, n in d.items()} for d in row] for row in self._names]

    def reset_parameters(self) -> None:
        """Initialise with the preset named by ``self.init``.

        - ``"torch"``: weights and biases uniform in ``±1/sqrt(hidden_size)``
          (torch's default, so a fresh plain layer is statistically torch's).
        - ``"keras"``: Xavier-uniform input (and projection) weights,
          orthogonal recurrent weights per gate, zero biases except a forget
          gate bias of 1 (LSTM), as Keras' ``LSTM`` / ``GRU`` layers do.

        In both, layer-norm gains start at 1, the cell-state LN bias at 0 and
        peephole weights uniform in ``±1/sqrt(hidden_size)``.
        """
        h = self.hidden_size
        for name, p in self.named_parameters():
            base = self._base[name]
            if self.init == "torch" or base not in backends.TORCH_ORDER:
                init_parameter(p, self._inits[name], h)
                continue
            with torch.no_grad():
                if base in ("weight_ih", "weight_hr"):
                    nn.init.xavier_uniform_(p)
                elif base == "weight_hh":
                    for block in p.split(h, dim=0):
                        nn.init.orthogonal_(block)
                else:
                    p.zero_()
                    gate = self.cell.forget_gate
                    if gate is not None and base == "bias_ih":
                        p[gate * h : (gate + 1) * h] = 1.0  # forget gate: remember by default

    def flatten_parameters(self) -> None:
        """Lay torch's weights out in one contiguous buffer for cuDNN, as ``torch.nn.LSTM`` does.

        On CUDA with cuDNN, for a layer that can run on torch's kernel (plain
        cell, ``backend`` ``"auto"`` or ``"native"``), the weights in
        ``_flat_weights_names`` order (per layer and direction: ``weight_ih``,
        ``weight_hh``, ``bias_ih``, ``bias_hh``, ``weight_hr``, the order
        ``torch.nn.LSTM`` uses) become views of one buffer, so cuDNN reads
        them without copying them at every call. The parameters stay the same
        objects with the same names, shapes and values, so ``state_dict`` is
        unchanged. Anywhere else (CPU, no cuDNN, mixed dtypes, aliased
        weights, variant cells) it does nothing, as in torch. Called by
        ``.to()`` / ``.cuda()`` (``_apply``), like torch.
        """
        if not self.cell.is_plain or self.backend not in ("auto", "native"):
            return  # only torch's kernel (the native backend) reads the flat buffer
        names = self._flat_weights_names
        weights = [self._parameters.get(n) for n in names]
        if not weights or any(not isinstance(w, Tensor) for w in weights):
            return
        first = weights[0]
        if any(
            w.dtype != first.dtype or not w.is_cuda or not torch.backends.cudnn.is_acceptable(w)
            for w in weights
        ):
            return
        if len({w.data_ptr() for w in weights}) != len(weights):
            return  # aliased weights: torch's copying path handles them
        import torch.backends.cudnn.rnn as cudnn_rnn

        with torch.cuda.device_of(first), torch.no_grad():
            if torch._use_cudnn_rnn_flatten_weight():
                per_direction = (4 if self.bias else 2) + (1 if self.proj_size > 0 else 0)
                torch._cudnn_rnn_flatten_weight(
                    weights, per_direction, self.input_size, cudnn_rnn.get_cudnn_mode(self.mode),
                    self.hidden_size, self.proj_size, self.num_layers, self.batch_first,
                    bool(self.bidirectional),
                )  # fmt: skip

    def _apply(self, fn: Any, recurse: bool = True) -> "_RecurrentBase":
        """``nn.Module._apply`` (``.to``, ``.cuda``, ``.double``), then re-flatten as torch does."""
        out = super()._apply(fn, recurse)
        self.flatten_parameters()
        return out

    def _defaults(self) -> dict[str, Any]:
        """Constructor options beyond the sizes, with their default values."""
        return {
            "num_layers": 1,
            "bias": True,
            "batch_first": False,
            "dropout": 0.0,
            "bidirectional": False,
            "backend": "auto",
            "init": "torch",
            "layer_norm": False,
            "recurrent_dropout": 0.0,
            "zoneout": 0.0,
            "dropconnect": 0.0,
        }

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        for name, default in self._defaults().items():
            value = getattr(self, name)
            if value != default:
                s += f", {name}={value!r}"
        return s

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments as plain values; ``type(self)(**config)`` rebuilds the layer."""
        config = {"input_size": self.input_size, "hidden_size": self.hidden_size}
        for name in self._defaults():
            value = getattr(self, name)
            config[name] = list(value) if isinstance(value, tuple) else value
        return config

    # ----------------------------------------------------------------- checks
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
        sizes = self.cell.state_sizes
        labels = [f"{s}_0" for s in self.cell.state_names]
        b = 1 if batch is None else batch
        if hx is None:
            return tuple(x.new_zeros(rows, b, s) for s in sizes)
        if len(labels) == 1:
            if not torch.is_tensor(hx):
                raise ValueError(f"{name}: hx must be a tensor h_0, got {type(hx).__name__}")
            states = (hx,)
        else:
            if not isinstance(hx, tuple | list) or len(hx) != len(labels):
                raise ValueError(
                    f"{name}: hx must be a tuple ({', '.join(labels)}) of {len(labels)} tensors"
                )
            states = tuple(hx)
        out = []
        for s, size, label in zip(states, sizes, labels, strict=True):
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
        """The backend this call runs on (see the module docstring)."""
        if return_gates:
            if self.backend in ("auto", "reference"):
                return "reference"  # gates with autograd
            if self.backend == "fused" and backends.fused_kernels() is not None:
                return "fused"  # the kernel's saved activations, detached
            raise ValueError(
                f"{type(self).__name__}: return_gates=True needs the reference or fused "
                "backend; use backend='auto', 'reference' or 'fused'"
            )
        if self.backend == "auto" and self.cell.plain_when(self.training):
            return "native"
        if self.backend in ("auto", "fused"):
            return "fused" if backends.fused_kernels() is not None else "reference"
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
        in_float32 = _bf16_autocast_without_native_bf16()
        if in_float32:  # one warning per process, pointing at the caller of the layer
            cpu.warn_bf16_fallback(f"lstmkit.nn.{type(self).__name__}", stacklevel=7)
            if x.dtype == torch.bfloat16:  # an earlier autocast op's output
                x, states = x.float(), tuple(s.float() for s in states)
        masks = sample_masks(
            self.cell, self.num_layers, 2 if self.bidirectional else 1, x.shape[1], x.shape[0],
            training=self.training, like=x,
        )  # fmt: skip
        run = _RUN[self._pick_backend(return_gates)]
        with torch.autocast("cpu", enabled=False) if in_float32 else contextlib.nullcontext():
            out, finals, gates = run(
                self.cell, x, states, self._weights(), masks=masks, lengths=lengths,
                dropout=self.dropout, training=self.training, return_gates=return_gates,
            )  # fmt: skip
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
        bias: use ``b_ih`` and ``b_hh`` (under layer norm: the LN biases).
        batch_first: input and output are ``(batch, time, features)`` instead
            of ``(time, batch, features)``.
        dropout: dropout on each layer's output except the last, in training.
        bidirectional: add a reverse direction; outputs are concatenated.
        proj_size: if > 0, ``h_t`` is projected to this size (LSTMP).
        backend: ``"auto"`` (torch's kernel when the layer is plain, the fused
            kernels for variants when available, the reference loop
            otherwise), ``"native"``, ``"reference"`` or ``"fused"``.
        init: ``"torch"`` (default) or ``"keras"`` (Xavier/orthogonal/forget
            bias 1).
        layer_norm: layer-normalise the input and recurrent projections and
            the cell state (parameters ``ln_weight_ih``, ``ln_weight_hh``,
            ``ln_weight_c``, ``ln_bias_c`` per layer and direction).
        recurrent_dropout: probability in [0, 1); ``h_{t-1}`` is dropped with
            one mask per sequence, the same at every step (training only).
        zoneout: probability in [0, 1], or a pair ``(p_h, p_c)``: each unit of
            h (c) keeps its previous value with that probability per step in
            training; in eval the expectation ``p * old + (1 - p) * new``.
        dropconnect: probability in [0, 1); ``W_hh`` is dropped with one mask
            per forward call, layer and direction (training only).
        peepholes: ``i`` and ``f`` see ``c_{t-1}``, ``o`` sees ``c_t``
            (parameter ``peephole`` of ``(3, hidden_size)``).

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
        layer_norm: bool = False,
        recurrent_dropout: float = 0.0,
        zoneout: float | tuple[float, float] = 0.0,
        dropconnect: float = 0.0,
        peepholes: bool = False,
    ) -> None:
        z_h, z_c = split_zoneout(zoneout, 2)
        cell = LSTMSpec(
            hidden_size, bias, layer_norm, recurrent_dropout, dropconnect,
            proj_size=proj_size, peepholes=peepholes, zoneout_h=z_h, zoneout_c=z_c,
        )  # fmt: skip
        super().__init__(
            input_size, cell, num_layers, batch_first, dropout, bidirectional, device, dtype,
            backend, init, zoneout,
        )  # fmt: skip

    @property
    def peepholes(self) -> bool:
        return self.cell.peepholes

    def _defaults(self) -> dict[str, Any]:
        return {"proj_size": 0, **super()._defaults(), "peepholes": False}

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
    Arguments, input layouts, ``lengths``, ``backend``, ``init`` and the
    variants ``layer_norm`` (input and recurrent projections), ``recurrent_dropout``,
    ``zoneout`` (one probability) and ``dropconnect`` are as for :class:`LSTM`;
    ``hx`` is a single ``h_0`` of ``(num_layers * num_directions, batch,
    hidden_size)``. ``proj_size`` and ``peepholes`` exist only so that asking
    for them says clearly that a GRU has neither.

    Returns:
        ``output`` and ``h_n`` with torch's shapes, plus ``gates[layer][direction]``
        (``GRUGates``) when ``return_gates=True``.
    """

    mode = "GRU"

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
        layer_norm: bool = False,
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
        dropconnect: float = 0.0,
        peepholes: bool = False,
        proj_size: int = 0,
    ) -> None:
        if peepholes:
            raise ValueError("GRU has no peepholes (an LSTM option); got peepholes=True")
        if proj_size:
            raise ValueError(
                f"GRU has no proj_size (an LSTM option); got proj_size={proj_size!r}, use 0"
            )
        (z_h,) = split_zoneout(zoneout, 1)
        cell = GRUSpec(hidden_size, bias, layer_norm, recurrent_dropout, dropconnect, z_h)
        super().__init__(
            input_size, cell, num_layers, batch_first, dropout, bidirectional, device, dtype,
            backend, init, zoneout,
        )  # fmt: skip

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
