"""xLSTM layers: ``SLSTM`` and ``MLSTM``, with what ``LSTM`` offers where it makes sense.

Both are ``layers._RecurrentBase`` layers around the cell specs of ``xlstm_cells.py``:
stacking (layer k reads layer k-1's output, ``dropout`` between layers), bidirectional
(each direction's output concatenated, the reverse direction reading every sequence
reversed within its length), ``lengths=`` and PackedSequence input, initial and final
states, ``return_gates`` and batch-first or unbatched input, in float32, float64 and, on
a CPU with native bf16 (``lstmkit.nn.cpu``), bfloat16.

- ``SLSTM``: the sLSTM; ``backend="auto"`` runs the fused CPU kernel
  (``lstmkit.nn.fused.slstm_direction``: gate math fused, head-wise recurrent products, a
  hand-written backward) where it builds, the reference step loop otherwise.
- ``MLSTM``: the reference package's whole mLSTM layer (``block=True``) or the bare
  cell (``block=False``), in the chunkwise-parallel form (``form="chunkwise"``, memory
  linear in the sequence length), the parallel form (one chunk: T^2 memory) or the
  recurrent form (the reference step loop); the three give the same result.

Interoperability with the reference package ``xlstm`` (optional): ``from_xlstm`` /
``to_xlstm`` (in ``xlstm_interop.py``).
"""

from typing import Any

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence

from lstmkit.nn import cpu
from lstmkit.nn.layers import _RecurrentBase
from lstmkit.nn.xlstm_cells import MLSTMSpec, SLSTMSpec, _check_bf16, _positive_int

MLSTM_FORMS = ("chunkwise", "parallel", "recurrent")


class _XLSTMBase(_RecurrentBase):
    """Initialisation, dtype checks and config shared by ``SLSTM`` and ``MLSTM``."""

    init_choices = ("xlstm", "torch")

    def reset_parameters(self) -> None:
        """Initialise with the preset named by ``self.init``.

        - ``"xlstm"`` (default): the reference package's initialisation (small normal
          input weights, zero recurrent weights, a forget-gate bias that keeps memory,
          unit norm gains; see the cell specs' ``xlstm_init``); a stacked layer's
          forget-gate biases follow its depth, as the package's blocks do.
        - ``"torch"``: weights and biases uniform in ``±1/sqrt(hidden_size)``, gains 1.
        """
        if self.init == "torch":
            super().reset_parameters()
            return
        num_directions = 2 if self.bidirectional else 1
        for layer, row in enumerate(self._weights()):
            layer_in = self.input_size if layer == 0 else self.cell.out_size * num_directions
            ratio = layer / (self.num_layers - 1) if self.num_layers > 1 else 0.0
            for params in row:
                self.cell.xlstm_init(params, layer_in, ratio)

    def _check_dtypes(self, input: Tensor | PackedSequence) -> None:
        if cpu.native_bf16():
            return
        name = type(self).__name__
        for p in self.parameters():
            _check_bf16(name, p.dtype, "parameter dtype")
        x = input.data if isinstance(input, PackedSequence) else input
        autocast = (
            torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
        )
        if not autocast:  # under a bf16 autocast the layer computes in float32 (lstmkit.nn.cpu)
            _check_bf16(name, x.dtype, "input dtype")

    def _defaults(self) -> dict[str, Any]:
        return {
            "num_layers": 1,
            "bias": True,
            "batch_first": False,
            "dropout": 0.0,
            "bidirectional": False,
            "num_heads": 4,
            "forget_gate": "sigmoid",
        }

    @property
    def num_heads(self) -> int:
        return self.cell.num_heads

    @property
    def forget_gate(self) -> str:
        return self.cell.forget

    def _run(self, input, hx, lengths, return_gates):
        self._check_dtypes(input)
        out, states, gates = self._forward(input, hx, lengths, return_gates)
        return (out, states, gates) if return_gates else (out, states)


class SLSTM(_XLSTMBase):
    r"""Multi-layer sLSTM over a sequence (xLSTM's scalar-memory LSTM with exponential gating).

    Each step applies the sLSTM equations of ``lstmkit.nn.xlstm_cells``: gates i, f, z, o
    from the input and, through block-diagonal weights (one block per head), from
    ``h_{t-1}``; exponential input gate, sigmoid or exponential forget gate, normaliser
    state n and stabiliser state m; the output is the head-wise group norm of h.

    Args:
        input_size: features of each input step.
        hidden_size: features of h (and c, n, m); the output has this many per direction.
        num_layers, bias, batch_first, dropout, bidirectional, device, dtype: as for
            :class:`lstmkit.nn.LSTM` (``bias``: one bias ``bias_ih`` on the gates).
        num_heads: recurrent blocks (heads); must divide hidden_size.
        forget_gate: ``"sigmoid"`` (the reference package's) or ``"exp"``.
        headwise_input: block-diagonal input weights too (``weight_ih`` is then
            ``(4*hidden_size, input_size // num_heads)``; the reference package's layout).
        group_norm: output the head-wise group norm of h (gain ``gn_weight``), else h.
        backend: ``"auto"`` (the fused CPU kernel where available, else the reference
            loop), ``"fused"`` or ``"reference"``.
        init: ``"xlstm"`` (the reference package's initialisation) or ``"torch"``.

    Parameters per layer and direction (``_l{k}``, ``_reverse``): ``weight_ih`` (rows
    gate-major i, f, z, o), ``weight_hh`` ``(num_heads, 4*d, d)`` (head k's block, rows
    i, f, z, o), ``bias_ih``, ``gn_weight``.

    Forward:
        ``input`` as for :class:`lstmkit.nn.LSTM`; ``hx = (h_0, c_0, n_0, m_0)``, each
        ``(num_layers * num_directions, batch, hidden_size)`` (zeros when omitted);
        ``lengths``; ``return_gates``: also ``gates[layer][direction]``, an
        ``SLSTMGates`` (stabilised i', f', z, o and c, n, m) laid out like the output.

    Returns:
        ``output`` and ``(h_n, c_n, n_n, m_n)``; plus ``gates`` when asked.
    """

    mode = "SLSTM"
    backend_choices = ("auto", "reference", "fused")

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
        num_heads: int = 4,
        forget_gate: str = "sigmoid",
        headwise_input: bool = False,
        group_norm: bool = True,
        backend: str = "auto",
        init: str = "xlstm",
    ) -> None:
        cell = SLSTMSpec(
            hidden_size, bias, num_heads=num_heads, forget=forget_gate,
            headwise_input=headwise_input, group_norm=group_norm,
        )  # fmt: skip
        _check_bf16("SLSTM", dtype)
        if isinstance(input_size, int) and not isinstance(input_size, bool) and input_size > 0:
            cell.check_input_size(input_size)
        super().__init__(
            input_size, cell, num_layers, batch_first, dropout, bidirectional, device, dtype,
            backend, init, 0.0,
        )  # fmt: skip

    @property
    def headwise_input(self) -> bool:
        return self.cell.headwise_input

    @property
    def group_norm(self) -> bool:
        return self.cell.group_norm

    def _defaults(self) -> dict[str, Any]:
        return {
            **super()._defaults(),
            "headwise_input": False,
            "group_norm": True,
            "backend": "auto",
            "init": "xlstm",
        }

    def forward(
        self,
        input: Tensor | PackedSequence,
        hx: tuple[Tensor, Tensor, Tensor, Tensor] | None = None,
        *,
        lengths: Tensor | None = None,
        return_gates: bool = False,
    ):
        return self._run(input, hx, lengths, return_gates)

    @classmethod
    def from_xlstm(cls, layer: Any, *, batch_first: bool = True, backend: str = "auto") -> "SLSTM":
        """An ``SLSTM`` with the weights of the ``xlstm`` package's ``sLSTMLayer``.

        The layer must use the vanilla backend and no convolution
        (``conv1d_kernel_size=0``); its output dropout is not carried over (lstmkit's
        ``dropout`` acts between stacked layers). ``batch_first`` defaults to the package's
        layout, so ``SLSTM.from_xlstm(layer)(x)[0]`` is ``layer(x)``.
        """
        from lstmkit.nn.xlstm_interop import slstm_from_xlstm

        return slstm_from_xlstm(cls, layer, batch_first=batch_first, backend=backend)

    def to_xlstm(self) -> Any:
        """The ``xlstm`` package's ``sLSTMLayer`` (vanilla backend, no convolution) with these
        weights; needs a one-layer, one-direction SLSTM with ``headwise_input=True``,
        ``input_size == hidden_size``, the sigmoid forget gate, group norm and a bias."""
        from lstmkit.nn.xlstm_interop import slstm_to_xlstm

        return slstm_to_xlstm(self)


class MLSTM(_XLSTMBase):
    r"""Multi-layer mLSTM over a sequence (xLSTM's matrix-memory LSTM), block or bare cell.

    ``block=True`` (default) is the reference package's ``mLSTMLayer`` per layer and
    direction: up-projection to ``2 * inner_size``, causal convolution with SiLU,
    block-diagonal q/k/v, input and forget gates per head, the mLSTM cell with its
    head-wise norm, a learnable skip, the output gate ``SiLU(z)`` and a down-projection to
    ``hidden_size``. ``block=False`` is the bare cell (dense q, k, v and an output gate
    ``σ(õ)`` from the input; ``h = σ(õ) h̃``).

    Args:
        input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
            device, dtype: as for :class:`lstmkit.nn.LSTM` (``bias``: on the projections;
            the gates and the convolution always have one).
        num_heads: memory heads; must divide the cell's width (``inner_size`` in a block,
            else ``hidden_size``); each head holds a d x d matrix memory.
        block: the whole reference layer (True) or the bare cell (False).
        inner_size: width of the block's cell (default ``2 * hidden_size``; the
            reference package rounds it up to a multiple of 64).
        conv_kernel: steps of the block's causal convolution (>= 1).
        qkv_blocksize: block size of the block's q/k/v projections.
        forget_gate: ``"sigmoid"`` (the reference package's) or ``"exp"``.
        form: ``"chunkwise"`` (default: memory linear in the sequence length),
            ``"parallel"`` (one chunk: T^2 memory) or ``"recurrent"`` (the step loop).
        chunk_size: steps per chunk of the chunkwise form (>= 1).
        init: ``"xlstm"`` (the reference package's initialisation) or ``"torch"``.

    Forward:
        ``input``, ``lengths``, ``return_gates`` as for :class:`SLSTM` (gates: an
        ``MLSTMGates`` of per-head i', f', m). ``hx = (C_0, n_0, m_0[, conv_0])``, each
        ``(num_layers * num_directions, batch, size)`` with the sizes
        ``num_heads*d*d``, ``num_heads*d``, ``num_heads`` and, in a block, the
        convolution's last ``conv_kernel - 1`` inputs ``(conv_kernel-1)*inner_size``.

    Returns:
        ``output`` (``hidden_size`` per direction) and the final states like ``hx``;
        plus ``gates`` when asked.
    """

    mode = "MLSTM"
    backend_choices = ("sequence", "reference")

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
        num_heads: int = 4,
        block: bool = True,
        inner_size: int | None = None,
        conv_kernel: int = 4,
        qkv_blocksize: int = 4,
        forget_gate: str = "sigmoid",
        form: str = "chunkwise",
        chunk_size: int = 64,
        init: str = "xlstm",
    ) -> None:
        if form not in MLSTM_FORMS:
            raise ValueError(f"form must be one of {MLSTM_FORMS}, got {form!r}")
        _positive_int("chunk_size", chunk_size)
        _positive_int("hidden_size", hidden_size)
        if inner_size is None:
            inner_size = 2 * hidden_size
        cell = MLSTMSpec(
            hidden_size, bias, num_heads=num_heads, forget=forget_gate, block=block,
            inner_size=inner_size if block else 0, conv_kernel=conv_kernel,
            qkv_blocksize=qkv_blocksize, chunk_size=None if form == "parallel" else chunk_size,
        )  # fmt: skip
        _check_bf16("MLSTM", dtype)
        self.form = form
        self.chunk_size = chunk_size
        super().__init__(
            input_size, cell, num_layers, batch_first, dropout, bidirectional, device, dtype,
            "reference" if form == "recurrent" else "sequence", init, 0.0,
        )  # fmt: skip

    @property
    def block(self) -> bool:
        return self.cell.block

    @property
    def inner_size(self) -> int | None:
        return self.cell.inner_size if self.block else None

    @property
    def conv_kernel(self) -> int:
        return self.cell.conv_kernel

    @property
    def qkv_blocksize(self) -> int:
        return self.cell.qkv_blocksize

    def _defaults(self) -> dict[str, Any]:
        return {
            **super()._defaults(),
            "block": True,
            "inner_size": None,
            "conv_kernel": 4,
            "qkv_blocksize": 4,
            "form": "chunkwise",
            "chunk_size": 64,
            "init": "xlstm",
        }

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        if config["inner_size"] == 2 * self.hidden_size:
            config["inner_size"] = None
        return config

    def _pick_backend(self, return_gates: bool) -> str:
        return self.backend  # "sequence" (chunkwise / parallel) or "reference" (recurrent)

    def forward(
        self,
        input: Tensor | PackedSequence,
        hx: tuple[Tensor, ...] | None = None,
        *,
        lengths: Tensor | None = None,
        return_gates: bool = False,
    ):
        return self._run(input, hx, lengths, return_gates)

    @classmethod
    def from_xlstm(
        cls,
        layer: Any,
        *,
        batch_first: bool = True,
        form: str = "chunkwise",
        chunk_size: int = 64,
    ) -> "MLSTM":
        """An ``MLSTM`` block with the weights of the ``xlstm`` package's ``mLSTMLayer``.

        Its output dropout is not carried over. ``batch_first`` defaults to the package's
        layout, so ``MLSTM.from_xlstm(layer)(x)[0]`` is ``layer(x)``.
        """
        from lstmkit.nn.xlstm_interop import mlstm_from_xlstm

        return mlstm_from_xlstm(
            cls, layer, batch_first=batch_first, form=form, chunk_size=chunk_size
        )

    def to_xlstm(self, *, context_length: int) -> Any:
        """The ``xlstm`` package's ``mLSTMLayer`` with these weights; needs a one-layer,
        one-direction block with ``input_size == hidden_size`` and the sigmoid forget gate.
        ``context_length``: the longest sequence it will see (its causal mask's size)."""
        from lstmkit.nn.xlstm_interop import mlstm_to_xlstm

        return mlstm_to_xlstm(self, context_length=context_length)
