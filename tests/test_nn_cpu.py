"""What lstmkit asks of the CPU at run time (``lstmkit.nn.cpu``), and the layers under a
bf16 autocast on a CPU without native bf16 (forced with the fallback switch, so these run
on every machine)."""

import warnings

import pytest
import torch

import lstmkit.nn as lnn
from lstmkit.nn import cpu


def test_capabilities_are_torchs_own_checks():
    caps = cpu.refresh()
    if caps.forced_fallback:  # CI's second pass runs the whole suite with the switch on
        assert not (caps.dnnl_matmul or caps.dnnl_packed or caps.native_bf16)
        return
    bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    onednn = torch.backends.mkldnn.is_available()
    assert caps.native_bf16 == bf16
    assert caps.dnnl_matmul == (onednn and bf16)  # ATen's entry raises without it
    assert caps.dnnl_packed == onednn
    assert caps.isa == torch.backends.cpu.get_cpu_capability()


def test_the_switch_turns_every_cpu_feature_off(cpu_fallback):
    assert cpu_fallback.forced_fallback
    assert not (cpu_fallback.dnnl_matmul or cpu_fallback.dnnl_packed)
    assert not cpu.native_bf16()
    assert cpu.FALLBACK_ENV in cpu.bf16_unsupported_reason()
    line = cpu.describe()
    assert "native bf16: no" in line and "ATen mm" in line and "\n" not in line


@pytest.mark.parametrize("value,forced", [("1", True), ("yes", True), ("0", False), ("", False)])
def test_the_switch_values(monkeypatch, value, forced):
    monkeypatch.setenv(cpu.FALLBACK_ENV, value)
    try:
        assert cpu.refresh().forced_fallback is forced
    finally:
        monkeypatch.delenv(cpu.FALLBACK_ENV)
        cpu.refresh()


def test_the_reason_names_the_instructions_or_is_empty():
    reason = cpu.bf16_unsupported_reason()
    if cpu.native_bf16():
        assert reason == ""
    else:
        assert "AVX-512" in reason and "AVX-NE-CONVERT" in reason and "ARM BF16" in reason


@pytest.mark.parametrize(
    "layer,backend,options",
    [
        ("LSTM", "auto", {}),  # torch's own kernel (its oneDNN LSTM crashes under bf16 there)
        ("LSTM", "auto", {"layer_norm": True, "recurrent_dropout": 0.2}),
        ("LSTM", "reference", {"zoneout": 0.1}),
        ("LSTM", "fused", {"bidirectional": True}),
        ("GRU", "auto", {}),
        ("GRU", "fused", {"layer_norm": True}),
    ],
)
def test_layers_under_bf16_autocast_compute_in_float32(cpu_fallback, layer, backend, options):
    torch.manual_seed(0)
    net = getattr(lnn, layer)(6, 8, num_layers=2, batch_first=True, backend=backend, **options)
    net.eval()
    x = torch.randn(3, 7, 6)
    want, _ = net(x, lengths=torch.tensor([7, 4, 2]))
    warns = pytest.warns(RuntimeWarning, match="computes in float32")
    with warns as record, torch.autocast("cpu", dtype=torch.bfloat16):
        got, _ = net(x, lengths=torch.tensor([7, 4, 2]))
        again, _ = net(x.bfloat16(), lengths=torch.tensor([7, 4, 2]))  # a bf16 input too
    assert sum("computes in float32" in str(w.message) for w in record) == 1
    assert got.dtype == torch.float32 and again.dtype == torch.float32
    torch.testing.assert_close(got, want, atol=0, rtol=0)
    rounded, _ = net(x.bfloat16().float(), lengths=torch.tensor([7, 4, 2]))
    torch.testing.assert_close(again, rounded, atol=0, rtol=0)


def test_training_under_bf16_autocast_gives_float32_gradients(cpu_fallback):
    torch.manual_seed(0)
    net = lnn.LSTM(4, 8, layer_norm=True)
    x = torch.randn(5, 2, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, _ = net(x)
    out.sum().backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and g.dtype == torch.float32 and g.isfinite().all() for g in grads)
