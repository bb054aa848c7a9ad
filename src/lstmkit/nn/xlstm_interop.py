"""Weights to and from the reference package ``xlstm`` (Apache-2.0; optional, never required).

``SLSTM.from_xlstm`` / ``to_xlstm`` read and write the package's ``sLSTMLayer`` (vanilla
backend, no convolution); ``MLSTM.from_xlstm`` / ``to_xlstm`` its ``mLSTMLayer``. The
package is imported only here, only when one of them is called.

Layouts (the package's names on the left):

- sLSTM: the layer's four head-wise gate projections stacked into ``weight_ih`` by their
  role in the cell: the cell reads its input-gate pre-activation from the module named
  ``fgate`` and its forget-gate one from ``igate`` (``sLSTMLayer.forward``:
  ``i, f, z, o = fgate(x), igate(x), zgate(x), ogate(x)``), then z, o; the vanilla
  cell's ``_recurrent_kernel_`` ``(heads, 4*d, d)`` is ``weight_hh`` as it is and its
  ``_bias_`` (gate-major) ``bias_ih``; the group norm's gain is ``1 + weight``.
- mLSTM: ``proj_up`` -> ``weight_up``, the depth-wise ``conv1d.conv`` -> ``conv_weight``
  ``(inner, kernel)`` and ``conv_bias``, ``q/k/v_proj`` ``(blocks, bs, bs)`` ->
  ``weight_q/k/v`` ``(inner, bs)``, the cell's ``igate`` and ``fgate`` stacked into
  ``weight_gates`` / ``bias_gates``, its ``outnorm`` gain ``1 + weight`` ->
  ``norm_weight``, ``learnable_skip`` -> ``skip``, ``proj_down`` -> ``weight_down``.
"""

from typing import Any

import torch
from torch import Tensor

INSTALL = "pip install 'lstmkit[xlstm]' (or: pip install xlstm)"


def _xlstm() -> Any:
    try:
        import xlstm
    except ImportError as err:
        raise ImportError(f"to_xlstm needs the optional package xlstm: {INSTALL}") from err
    return xlstm


def _package_class(layer: Any, module: str, name: str) -> type | None:
    """The package's class ``module.name`` if ``layer`` comes from that package, else None."""
    if not type(layer).__module__.startswith("xlstm"):
        return None
    try:
        mod = __import__(module, fromlist=[name])
    except ImportError:
        return None
    return getattr(mod, name, None)


def _factory(layer: Any) -> dict[str, Any]:
    p = next(layer.parameters())
    return {"device": p.device, "dtype": p.dtype}


def _copy(dst: Tensor, src: Tensor) -> None:
    if tuple(dst.shape) != tuple(src.shape):
        raise ValueError(
            f"from_xlstm: expected a weight of shape {tuple(dst.shape)}, got {tuple(src.shape)}"
        )
    with torch.no_grad():
        dst.copy_(src)


def _gain(norm: Any, width: int, like: Tensor) -> Tensor:
    """The gain the package's (multi-head) layer norm applies: ``1 + weight``, or ones."""
    w = norm.weight_proxy
    return torch.ones(width, dtype=like.dtype, device=like.device) if w is None else w.detach()


# ---------------------------------------------------------------------------- sLSTM
def slstm_from_xlstm(cls: type, layer: Any, *, batch_first: bool, backend: str) -> Any:
    cls_layer = _package_class(layer, "xlstm.blocks.slstm.layer", "sLSTMLayer")
    if cls_layer is None or not isinstance(layer, cls_layer):
        raise ValueError(
            f"from_xlstm: expected the xlstm package's sLSTMLayer, got {type(layer).__name__}"
        )
    cfg = layer.config
    if cfg.conv1d_kernel_size > 0:
        raise ValueError(
            f"from_xlstm: the sLSTMLayer has a causal convolution (conv1d_kernel_size="
            f"{cfg.conv1d_kernel_size}); lstmkit's SLSTM has none: build it with "
            "conv1d_kernel_size=0"
        )
    cell_kind = type(layer.slstm_cell).__name__
    if cfg.backend != "vanilla" or cell_kind != "sLSTMCell_vanilla":
        backend = cfg.backend if cfg.backend != "vanilla" else cell_kind
        raise ValueError(
            f"from_xlstm: the sLSTMLayer uses backend={backend!r}; lstmkit reads the "
            "vanilla backend's layout: build it with backend='vanilla'"
        )
    if cfg.function != "slstm":
        raise ValueError(
            f"from_xlstm: the sLSTMLayer computes function={cfg.function!r}, not 'slstm'"
        )
    width, heads = cfg.embedding_dim, cfg.num_heads
    ours = cls(
        width, width, num_heads=heads, batch_first=batch_first, headwise_input=True,
        group_norm=True, forget_gate="sigmoid", backend=backend, **_factory(layer),
    )  # fmt: skip
    # by role in the cell: input gate <- fgate, forget gate <- igate (see the module docstring)
    gates = [layer.fgate, layer.igate, layer.zgate, layer.ogate]
    w = torch.cat([g.weight.detach().reshape(width, -1) for g in gates], 0)
    _copy(ours.weight_ih_l0, w)
    cell = layer.slstm_cell
    _copy(ours.weight_hh_l0, cell._recurrent_kernel_.detach())
    bias = cell._bias_.detach().clone()
    for k, g in enumerate(gates):
        if g.bias is not None:
            bias[k * width : (k + 1) * width] += g.bias.detach()
    _copy(ours.bias_ih_l0, bias)
    _copy(ours.gn_weight_l0, _gain(layer.group_norm, width, w))
    return ours


def slstm_to_xlstm(ours: Any) -> Any:
    problems = []
    if ours.num_layers != 1 or ours.bidirectional:
        problems.append("one layer and one direction")
    if not ours.headwise_input:
        problems.append("headwise_input=True")
    if ours.input_size != ours.hidden_size:
        problems.append(f"input_size == hidden_size (got {ours.input_size} and {ours.hidden_size})")
    if ours.forget_gate != "sigmoid":
        problems.append("forget_gate='sigmoid'")
    if not ours.group_norm:
        problems.append("group_norm=True")
    if not ours.bias:
        problems.append("bias=True")
    if problems:
        raise ValueError(
            "to_xlstm: the package's sLSTMLayer needs "
            + ", ".join(problems)
            + " in lstmkit's SLSTM"
        )
    xlstm = _xlstm()
    width, heads = ours.hidden_size, ours.num_heads
    layer = xlstm.sLSTMLayer(
        xlstm.sLSTMLayerConfig(
            embedding_dim=width, num_heads=heads, conv1d_kernel_size=0, backend="vanilla",
            group_norm_weight=True, dropout=0.0,
        )
    )  # fmt: skip
    p = ours.weight_ih_l0
    layer.to(device=p.device, dtype=p.dtype)
    rows = ours.weight_ih_l0.detach().split(width, 0)
    for g, w in zip([layer.fgate, layer.igate, layer.zgate, layer.ogate], rows, strict=True):
        _copy(g.weight, w.reshape(g.weight.shape))
    _copy(layer.slstm_cell._recurrent_kernel_, ours.weight_hh_l0.detach())
    _copy(layer.slstm_cell._bias_, ours.bias_ih_l0.detach())
    _copy(layer.group_norm.weight, ours.gn_weight_l0.detach() - 1)
    return layer


# ---------------------------------------------------------------------------- mLSTM
def mlstm_from_xlstm(
    cls: type, layer: Any, *, batch_first: bool, form: str, chunk_size: int
) -> Any:
    cls_layer = _package_class(layer, "xlstm.blocks.mlstm.layer", "mLSTMLayer")
    if cls_layer is None or not isinstance(layer, cls_layer):
        raise ValueError(
            f"from_xlstm: expected the xlstm package's mLSTMLayer, got {type(layer).__name__}"
        )
    cfg = layer.config
    if layer.conv1d.config.channel_mixing:
        raise ValueError(
            "from_xlstm: the mLSTMLayer's convolution mixes channels; lstmkit's is depth-wise"
        )
    width, inner = cfg.embedding_dim, cfg._inner_embedding_dim
    kernel = cfg.conv1d_kernel_size
    ours = cls(
        width, width, num_heads=cfg.num_heads, bias=cfg.bias, batch_first=batch_first,
        block=True, inner_size=inner, conv_kernel=kernel, qkv_blocksize=cfg.qkv_proj_blocksize,
        forget_gate="sigmoid", form=form, chunk_size=chunk_size, **_factory(layer),
    )  # fmt: skip
    p = dict(ours.named_parameters())
    cell = layer.mlstm_cell
    _copy(p["weight_up_l0"], layer.proj_up.weight.detach())
    _copy(p["conv_weight_l0"], layer.conv1d.conv.weight.detach().reshape(inner, kernel))
    conv_bias = layer.conv1d.conv.bias
    _copy(p["conv_bias_l0"], torch.zeros(inner) if conv_bias is None else conv_bias.detach())
    for name in ("q", "k", "v"):
        proj = getattr(layer, f"{name}_proj")
        _copy(p[f"weight_{name}_l0"], proj.weight.detach().reshape(inner, -1))
    gates_w = torch.cat([cell.igate.weight, cell.fgate.weight], 0).detach()
    _copy(p["weight_gates_l0"], gates_w)
    _copy(p["bias_gates_l0"], torch.cat([cell.igate.bias, cell.fgate.bias], 0).detach())
    _copy(p["norm_weight_l0"], _gain(cell.outnorm, inner, gates_w))
    _copy(p["skip_l0"], layer.learnable_skip.detach())
    _copy(p["weight_down_l0"], layer.proj_down.weight.detach())
    if cfg.bias:
        _copy(p["bias_up_l0"], layer.proj_up.bias.detach())
        _copy(p["bias_down_l0"], layer.proj_down.bias.detach())
        for name in ("q", "k", "v"):
            _copy(p[f"bias_{name}_l0"], getattr(layer, f"{name}_proj").bias.detach())
    return ours


def mlstm_to_xlstm(ours: Any, *, context_length: int) -> Any:
    if (
        not isinstance(context_length, int)
        or isinstance(context_length, bool)
        or context_length < 1
    ):
        raise ValueError(
            f"to_xlstm: context_length must be a positive integer, got {context_length!r}"
        )
    problems = []
    if not ours.block:
        problems.append("block=True")
    if ours.num_layers != 1 or ours.bidirectional:
        problems.append("one layer and one direction")
    if ours.input_size != ours.hidden_size:
        problems.append(f"input_size == hidden_size (got {ours.input_size} and {ours.hidden_size})")
    if ours.forget_gate != "sigmoid":
        problems.append("forget_gate='sigmoid'")
    if problems:
        raise ValueError(
            "to_xlstm: the package's mLSTMLayer needs "
            + ", ".join(problems)
            + " in lstmkit's MLSTM"
        )
    xlstm = _xlstm()
    width, inner = ours.hidden_size, ours.inner_size
    cfg = xlstm.mLSTMLayerConfig(
        embedding_dim=width, num_heads=ours.num_heads, conv1d_kernel_size=ours.conv_kernel,
        qkv_proj_blocksize=ours.qkv_blocksize, proj_factor=inner / width, bias=ours.bias,
        dropout=0.0, context_length=context_length,
    )  # fmt: skip
    cfg._proj_up_dim = cfg._inner_embedding_dim = inner  # exactly, not rounded to 64
    layer = xlstm.mLSTMLayer(cfg)
    p = {n: t.detach() for n, t in ours.named_parameters()}
    layer.to(device=p["weight_up_l0"].device, dtype=p["weight_up_l0"].dtype)
    cell = layer.mlstm_cell
    heads = ours.num_heads
    _copy(layer.proj_up.weight, p["weight_up_l0"])
    _copy(layer.conv1d.conv.weight, p["conv_weight_l0"].reshape(inner, 1, ours.conv_kernel))
    _copy(layer.conv1d.conv.bias, p["conv_bias_l0"])
    for name in ("q", "k", "v"):
        proj = getattr(layer, f"{name}_proj")
        _copy(proj.weight, p[f"weight_{name}_l0"].reshape(proj.weight.shape))
    _copy(cell.igate.weight, p["weight_gates_l0"][:heads])
    _copy(cell.fgate.weight, p["weight_gates_l0"][heads:])
    _copy(cell.igate.bias, p["bias_gates_l0"][:heads])
    _copy(cell.fgate.bias, p["bias_gates_l0"][heads:])
    _copy(cell.outnorm.weight, p["norm_weight_l0"] - 1)
    _copy(layer.learnable_skip, p["skip_l0"])
    _copy(layer.proj_down.weight, p["weight_down_l0"])
    if ours.bias:
        _copy(layer.proj_up.bias, p["bias_up_l0"])
        _copy(layer.proj_down.bias, p["bias_down_l0"])
        for name in ("q", "k", "v"):
            _copy(getattr(layer, f"{name}_proj").bias, p[f"bias_{name}_l0"])
    return layer
