"""``flatten_parameters``: a no-op on the CPU that leaves weights and state_dict alone, the
weight order cuDNN's flat buffer relies on (torch's), and on CUDA (when present) one buffer."""

import warnings

import pytest
import torch
from torch import nn

import lstmkit.nn as lnn

CONFIGS = [
    (lnn.LSTM, nn.LSTM, {}),
    (lnn.LSTM, nn.LSTM, {"num_layers": 2, "bidirectional": True}),
    (lnn.LSTM, nn.LSTM, {"num_layers": 2, "proj_size": 3, "bidirectional": True}),
    (lnn.LSTM, nn.LSTM, {"bias": False, "num_layers": 3}),
    (lnn.GRU, nn.GRU, {"num_layers": 2, "bidirectional": True}),
    (lnn.GRU, nn.GRU, {"bias": False}),
]


def _snapshot(module: nn.Module) -> dict[str, tuple]:
    return {
        k: (v.clone(), v.shape, v.stride(), v.data_ptr()) for k, v in module.state_dict().items()
    }


@pytest.mark.parametrize(("ours", "theirs", "kw"), CONFIGS)
def test_flatten_on_cpu_is_a_no_op(ours, theirs, kw) -> None:
    torch.manual_seed(0)
    layer = ours(4, 6, batch_first=True, **kw)
    before = _snapshot(layer)
    params = [id(p) for p in layer.parameters()]
    layer.flatten_parameters()
    after = _snapshot(layer)
    assert list(after) == list(before)
    for name, (value, shape, stride, ptr) in before.items():
        assert after[name][1:] == (shape, stride, ptr), name
        torch.testing.assert_close(after[name][0], value, rtol=0, atol=0)
    assert [id(p) for p in layer.parameters()] == params
    # still torch's layer: same outputs as torch.nn given the same state_dict
    ref = theirs(4, 6, batch_first=True, **kw)
    ref.load_state_dict(layer.state_dict())
    x = torch.randn(3, 5, 4)
    torch.testing.assert_close(layer(x)[0], ref(x)[0])


def test_to_double_on_cpu_keeps_names_and_values() -> None:
    """``.to()`` runs ``_apply``, which re-flattens (a no-op here) as torch does."""
    layer = lnn.LSTM(4, 6, num_layers=2)
    before = {k: v.double() for k, v in layer.state_dict().items()}
    layer = layer.double()
    after = layer.state_dict()
    assert list(after) == list(before)
    for name, value in before.items():
        assert after[name].dtype == torch.float64
        torch.testing.assert_close(after[name], value, rtol=0, atol=0)


@pytest.mark.parametrize(("ours", "theirs", "kw"), CONFIGS)
def test_flat_weight_order_is_torchs(ours, theirs, kw) -> None:
    """cuDNN's flat buffer (and torch's kernel) read the weights in torch's order."""
    assert ours(4, 6, **kw)._flat_weights_names == theirs(4, 6, **kw)._flat_weights_names


def test_variant_layers_are_left_alone() -> None:
    layer = lnn.LSTM(4, 6, layer_norm=True, backend="reference")
    before = _snapshot(layer)
    layer.flatten_parameters()
    assert {k: v[3] for k, v in _snapshot(layer).items()} == {k: v[3] for k, v in before.items()}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA with cuDNN")
@pytest.mark.parametrize(("ours", "theirs", "kw"), CONFIGS)
def test_flatten_on_cuda_makes_one_buffer(ours, theirs, kw) -> None:
    torch.manual_seed(0)
    layer = ours(4, 6, batch_first=True, **kw)
    values = {k: v.clone() for k, v in layer.state_dict().items()}
    layer = layer.cuda()  # flattens, as torch.nn.LSTM.cuda() does
    storages = {w.untyped_storage().data_ptr() for w in layer._flat_weights}
    assert len(storages) == 1
    assert list(layer.state_dict()) == list(values)
    for name, value in values.items():
        torch.testing.assert_close(layer.state_dict()[name].cpu(), value, rtol=0, atol=0)
    ref = theirs(4, 6, batch_first=True, **kw).cuda()
    ref.load_state_dict(values)
    x = torch.randn(3, 5, 4, device="cuda")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns when weights are not one chunk
        out = layer(x)[0]
    torch.testing.assert_close(out, ref(x)[0])
