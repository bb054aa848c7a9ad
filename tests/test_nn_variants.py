"""The LSTM/GRU variants (layer norm, recurrent dropout, zoneout, DropConnect, peepholes).

The independent reference is a per-direction loop written here from
SPEC-variants.md in float64 (``spec_lstm_direction`` / ``spec_gru_direction``,
no lstmkit code). It serves twice: as the hand-built definition each variant
is checked against, and, injected as ``lstmkit.nn.fused``, as the kernels the
layer-level ``fused`` backend is wired to (until the compiled module exists),
so that backend is checked against the ``reference`` loop on every
combination of layers, directions, lengths, proj_size and initial states.
"""

import sys
import types
import warnings

import pytest
import torch

import lstmkit.nn as lnn
from lstmkit.nn import backends
from lstmkit.nn.cells import sample_masks

D = torch.float64


# ------------------------------------------------------------ the definition
def ln(v, gain, bias):
    """Layer norm over the last dimension written out (biased variance, eps 1e-5)."""
    mean = v.mean(-1, keepdim=True)
    var = ((v - mean) ** 2).mean(-1, keepdim=True)
    out = (v - mean) / torch.sqrt(var + 1e-5) * gain
    return out if bias is None else out + bias


def _recurrent(h, rd_mask, w_hh, b_hh, ln_weight_hh):
    hd = h if rd_mask is None else h * rd_mask
    ah = hd @ w_hh.T
    if ln_weight_hh is not None:
        return ln(ah, ln_weight_hh, b_hh)
    return ah if b_hh is None else ah + b_hh


def _keep_real(t, lengths, new, old):
    if lengths is None:
        return new
    real = (t < lengths).unsqueeze(-1)
    return torch.where(real, new, old)


def spec_lstm_direction(
    xw,
    h0,
    c0,
    w_hh,
    b_hh,
    w_hr,
    peephole,
    ln_weight_hh,
    ln_weight_c,
    ln_bias_c,
    rd_mask,
    zoneout_h,
    zoneout_c,
    lengths,
):
    """SPEC-variants.md's LSTM step, forward in time over right-padded lengths."""
    hidden = c0.shape[-1]
    h, c, outs = h0, c0, []
    for t in range(xw.shape[0]):
        z = xw[t] + _recurrent(h, rd_mask, w_hh, b_hh, ln_weight_hh)
        z_i, z_f, z_g, z_o = (z[:, k * hidden : (k + 1) * hidden] for k in range(4))
        if peephole is not None:
            z_i, z_f = z_i + peephole[0] * c, z_f + peephole[1] * c
        i, f, g = torch.sigmoid(z_i), torch.sigmoid(z_f), torch.tanh(z_g)
        c_new = f * c + i * g
        if peephole is not None:
            z_o = z_o + peephole[2] * c_new
        o = torch.sigmoid(z_o)
        cn = c_new if ln_weight_c is None else ln(c_new, ln_weight_c, ln_bias_c)
        h_new = o * torch.tanh(cn)
        if w_hr is not None:
            h_new = h_new @ w_hr.T
        if zoneout_c is not None:
            c_new = zoneout_c[t] * c + (1 - zoneout_c[t]) * c_new
        if zoneout_h is not None:
            h_new = zoneout_h[t] * h + (1 - zoneout_h[t]) * h_new
        h, c = _keep_real(t, lengths, h_new, h), _keep_real(t, lengths, c_new, c)
        outs.append(_keep_real(t, lengths, h_new, torch.zeros_like(h_new)))
    return torch.stack(outs), h, c


def spec_gru_direction(xw, h0, w_hh, b_hh, ln_weight_hh, rd_mask, zoneout_h, lengths):
    """SPEC-variants.md's GRU step, forward in time over right-padded lengths."""
    hidden = h0.shape[-1]
    h, outs = h0, []
    for t in range(xw.shape[0]):
        a = _recurrent(h, rd_mask, w_hh, b_hh, ln_weight_hh)
        x_r, x_z, x_n = (xw[t][:, k * hidden : (k + 1) * hidden] for k in range(3))
        a_r, a_z, a_n = (a[:, k * hidden : (k + 1) * hidden] for k in range(3))
        r, z = torch.sigmoid(x_r + a_r), torch.sigmoid(x_z + a_z)
        n = torch.tanh(x_n + r * a_n)
        h_new = (1 - z) * n + z * h
        if zoneout_h is not None:
            h_new = zoneout_h[t] * h + (1 - zoneout_h[t]) * h_new
        h = _keep_real(t, lengths, h_new, h)
        outs.append(_keep_real(t, lengths, h_new, torch.zeros_like(h_new)))
    return torch.stack(outs), h


@pytest.fixture
def spec_kernels(monkeypatch):
    """The definition above installed as ``lstmkit.nn.fused``."""
    module = types.ModuleType("lstmkit.nn.fused")

    def without_gates(direction):
        def run(*args, return_gates=False):
            assert not return_gates, "the definition keeps no gates"
            return direction(*args)

        return run

    def linear(x, weight, bias=None, ln_weight=None):
        if ln_weight is None:
            return x @ weight.T + (0 if bias is None else bias)
        return ln(x @ weight.T, ln_weight, bias)

    module.lstm_direction = without_gates(spec_lstm_direction)
    module.gru_direction = without_gates(spec_gru_direction)
    module.linear = linear
    module.available = lambda: True
    monkeypatch.setitem(sys.modules, "lstmkit.nn.fused", module)
    return module


def keep_mask(shape, p):
    """A dropout keep-mask drawn as the SPEC says: Bernoulli(1-p) / (1-p)."""
    return torch.empty(shape, dtype=D).bernoulli_(1 - p).div_(1 - p)


def make(mode, *args, **kwargs):
    cls = lnn.LSTM if mode == "LSTM" else lnn.GRU
    return cls(*args, **kwargs).double()


def randomise(layer, seed):
    """Every parameter random (LN gains and biases away from 1 and 0 too)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.5)


def one_direction(layer, x, h0, c0, masks):
    """A one-layer, one-direction layer computed with the definition."""
    p = dict(layer.named_parameters())
    g = lambda name: p.get(f"{name}_l0")  # noqa: E731
    if layer.layer_norm:
        xw = ln(x @ g("weight_ih").T, g("ln_weight_ih"), g("bias_ih"))
    else:
        xw = x @ g("weight_ih").T + (0 if g("bias_ih") is None else g("bias_ih"))
    w_hh = g("weight_hh") if masks["dc"] is None else g("weight_hh") * masks["dc"]
    if layer.mode == "LSTM":
        return spec_lstm_direction(
            xw, h0, c0, w_hh, g("bias_hh"), g("weight_hr"), g("peephole"), g("ln_weight_hh"),
            g("ln_weight_c"), g("ln_bias_c"), masks["rd"], masks["zh"], masks["zc"], None,
        )  # fmt: skip
    return spec_gru_direction(
        xw, h0, w_hh, g("bias_hh"), g("ln_weight_hh"), masks["rd"], masks["zh"], None
    )


# ---------------------------------------------------------- each definition
@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_recurrent_dropout_mask_is_one_per_sequence(mode):
    """Training output equals the definition with ONE (batch, hidden) mask at every step."""
    torch.manual_seed(0)
    layer = make(mode, 3, 4, recurrent_dropout=0.5, backend="reference")
    randomise(layer, 1)
    x = torch.randn(6, 5, 3, dtype=D)
    torch.manual_seed(7)
    out, _ = layer(x)
    torch.manual_seed(7)
    mask = keep_mask((5, 4), 0.5)
    masks = {"dc": None, "rd": mask, "zh": None, "zc": None}
    h0 = torch.zeros(5, 4, dtype=D)
    want = one_direction(layer, x, h0, h0, masks)[0]
    torch.testing.assert_close(out, want, rtol=1e-12, atol=1e-12)
    # a fresh mask per step would give other numbers: the mask really is held
    fresh = one_direction(layer, x, h0, h0, {**masks, "rd": keep_mask((5, 4), 0.5)})[0]
    assert not torch.allclose(out[1:], fresh[1:])
    # and the mask was not trivial
    assert (mask == 0).any() and (mask == 2).any()


def test_dropconnect_is_one_weight_mask_per_call():
    torch.manual_seed(1)
    layer = make("LSTM", 3, 4, dropconnect=0.3, backend="reference")
    x = torch.randn(5, 2, 3, dtype=D)
    torch.manual_seed(3)
    out, (h, c) = layer(x)
    torch.manual_seed(3)
    mask = keep_mask((16, 4), 0.3)
    z = torch.zeros(2, 4, dtype=D)
    want, h_w, c_w = one_direction(layer, x, z, z, {"dc": mask, "rd": None, "zh": None, "zc": None})
    for a, b in ((out, want), (h[0], h_w), (c[0], c_w)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("zoneout", [0.4, (0.2, 0.6)])
def test_lstm_zoneout_training_and_eval_match_definition(zoneout):
    torch.manual_seed(2)
    layer = make("LSTM", 3, 4, zoneout=zoneout, backend="reference")
    p_h, p_c = zoneout if isinstance(zoneout, tuple) else (zoneout, zoneout)
    x = torch.randn(5, 2, 3, dtype=D)
    h0, c0 = torch.randn(1, 2, 4, dtype=D), torch.randn(1, 2, 4, dtype=D)
    torch.manual_seed(4)
    out, (h, c) = layer(x, (h0, c0))
    torch.manual_seed(4)
    zh = torch.empty(5, 2, 4, dtype=D).bernoulli_(p_h)
    zc = torch.empty(5, 2, 4, dtype=D).bernoulli_(p_c)
    want = one_direction(layer, x, h0[0], c0[0], {"dc": None, "rd": None, "zh": zh, "zc": zc})
    for a, b in zip((out, h[0], c[0]), want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    # eval: the expectation d = p at every step, no randomness
    layer.eval()
    out_e, _ = layer(x, (h0, c0))
    full = lambda p: torch.full((5, 2, 4), p, dtype=D)  # noqa: E731
    masks = {"dc": None, "rd": None, "zh": full(p_h), "zc": full(p_c)}
    want_e = one_direction(layer, x, h0[0], c0[0], masks)[0]
    torch.testing.assert_close(out_e, want_e, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_zoneout_one_keeps_the_initial_state_in_training(mode):
    torch.manual_seed(3)
    layer = make(mode, 3, 4, 2, bidirectional=True, zoneout=1.0, backend="reference")
    x = torch.randn(6, 2, 3, dtype=D)
    h0 = torch.randn(4, 2, 4, dtype=D)
    hx = (h0, torch.randn(4, 2, 4, dtype=D)) if mode == "LSTM" else h0
    out, finals = layer(x, hx, lengths=torch.tensor([6, 3]))
    finals = finals if mode == "LSTM" else (finals,)
    for got, start in zip(finals, hx if mode == "LSTM" else (hx,), strict=True):
        assert torch.equal(got, start)
    # the top layer's every real step outputs its initial h: forward h0[2], reverse h0[3]
    assert torch.equal(out[:, 0, :4], h0[2, 0].expand(6, 4))
    assert torch.equal(out[:3, 1, 4:], h0[3, 1].expand(3, 4))
    assert torch.all(out[3:, 1] == 0)


def test_gru_zoneout_and_layer_norm_match_definition():
    torch.manual_seed(4)
    layer = make("GRU", 3, 4, zoneout=0.3, layer_norm=True, backend="reference")
    randomise(layer, 2)
    x = torch.randn(5, 2, 3, dtype=D)
    h0 = torch.randn(1, 2, 4, dtype=D)
    torch.manual_seed(9)
    out, h = layer(x, h0)
    torch.manual_seed(9)
    zh = torch.empty(5, 2, 4, dtype=D).bernoulli_(0.3)
    want = one_direction(layer, x, h0[0], None, {"dc": None, "rd": None, "zh": zh, "zc": None})
    torch.testing.assert_close(out, want[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h[0], want[1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("proj", [0, 2])
def test_layer_norm_and_peepholes_match_definition(proj):
    torch.manual_seed(5)
    layer = make("LSTM", 3, 4, proj_size=proj, layer_norm=True, peepholes=True)
    randomise(layer, 3)
    x = torch.randn(5, 2, 3, dtype=D)
    h0 = torch.randn(1, 2, proj or 4, dtype=D)
    c0 = torch.randn(1, 2, 4, dtype=D)
    out, (h, c) = layer(x, (h0, c0))
    want = one_direction(layer, x, h0[0], c0[0], {"dc": None, "rd": None, "zh": None, "zc": None})
    for a, b in zip((out, h[0], c[0]), want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_layer_norm_of_the_cell_has_zero_mean_and_unit_variance_before_the_gain():
    """With gain 1 and bias 0, atanh(h / o) = LN(c) has mean 0 and variance 1 per step."""
    torch.manual_seed(6)
    layer = make("LSTM", 3, 8, layer_norm=True)
    x = torch.randn(4, 3, 3, dtype=D)
    out, _, gates = layer(x, return_gates=True)
    cn = torch.atanh(out / gates[0][0].output)
    torch.testing.assert_close(cn.mean(-1), torch.zeros(4, 3, dtype=D), atol=1e-9, rtol=0)
    var = cn.var(-1, unbiased=False)
    c = gates[0][0].cell
    # LN divides by sqrt(var + eps): the variance is var(c) / (var(c) + 1e-5)
    want = c.var(-1, unbiased=False) / (c.var(-1, unbiased=False) + 1e-5)
    torch.testing.assert_close(var, want, atol=1e-9, rtol=0)
    assert torch.all((var - 1).abs() < 1e-2)
    # and after a gain of 3 the spread triples
    with torch.no_grad():
        layer.ln_weight_c_l0.fill_(3.0)
    out3, _, gates3 = layer(x, return_gates=True)
    cn3 = torch.atanh(out3[:1] / gates3[0][0].output[:1])
    torch.testing.assert_close(cn3.std(-1, unbiased=False), 3 * var[:1].sqrt(), atol=1e-7, rtol=0)


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_layer_norm_makes_the_input_projection_scale_free(mode):
    """LN of x W_ih^T: scaling W_ih changes nothing once the variance dwarfs eps = 1e-5."""
    torch.manual_seed(7)
    layer = make(mode, 3, 4, layer_norm=True)
    x = torch.randn(5, 2, 3, dtype=D)
    with torch.no_grad():
        layer.weight_ih_l0.mul_(100.0)
    before = layer(x)[0]
    with torch.no_grad():
        layer.weight_ih_l0.mul_(10.0)
    torch.testing.assert_close(layer(x)[0], before, atol=1e-7, rtol=0)


# -------------------------------------------------- zero, eval, seeds, grads
VARIANTS = {
    "LSTM": [
        {"recurrent_dropout": 0.0},
        {"zoneout": 0.0},
        {"zoneout": (0.0, 0.0)},
        {"dropconnect": 0.0},
        {"recurrent_dropout": 0.0, "zoneout": 0.0, "dropconnect": 0.0},
    ],
    "GRU": [{"recurrent_dropout": 0.0}, {"zoneout": 0.0}, {"dropconnect": 0.0}],
}


@pytest.mark.parametrize(
    ("mode", "zero"), [(m, v) for m, vs in VARIANTS.items() for v in vs]
)  # fmt: skip
@pytest.mark.parametrize("backend", ["reference", "auto"])
def test_probability_zero_is_the_plain_layer_bit_for_bit(mode, zero, backend):
    torch.manual_seed(8)
    cfg = {"num_layers": 2, "bidirectional": True, "dropout": 0.3}
    plain = make(mode, 3, 4, **cfg, backend=backend).float()
    variant = make(mode, 3, 4, **cfg, backend=backend, **zero).float()
    variant.load_state_dict(plain.state_dict())
    x = torch.randn(5, 2, 3)
    lengths = torch.tensor([5, 3])
    for train in (True, False):
        plain.train(train), variant.train(train)
        torch.manual_seed(1)
        a = plain(x, lengths=lengths)
        torch.manual_seed(1)
        b = variant(x, lengths=lengths)
        assert torch.equal(a[0], b[0])
        for s, t in zip(states(mode, a), states(mode, b), strict=True):
            assert torch.equal(s, t)
    assert variant._pick_backend(False) == ("native" if backend == "auto" else "reference")


def states(mode, result):
    return list(result[1]) if mode == "LSTM" else [result[1]]


STOCHASTIC = {
    "LSTM": [
        {"recurrent_dropout": 0.4},
        {"zoneout": (0.3, 0.5)},
        {"dropconnect": 0.4},
        {"recurrent_dropout": 0.2, "zoneout": 0.2, "dropconnect": 0.2, "layer_norm": True},
    ],
    "GRU": [
        {"recurrent_dropout": 0.4},
        {"zoneout": 0.3},
        {"dropconnect": 0.4, "layer_norm": True},
    ],
}
STOCHASTIC_CASES = [(m, v) for m, vs in STOCHASTIC.items() for v in vs]


@pytest.mark.parametrize(("mode", "options"), STOCHASTIC_CASES)
def test_seeds_reproduce_masks_and_eval_is_deterministic(mode, options):
    torch.manual_seed(9)
    layer = make(mode, 3, 4, 2, bidirectional=True, backend="reference", **options).float()
    x = torch.randn(6, 3, 3)
    torch.manual_seed(5)
    a = layer(x)[0]
    torch.manual_seed(5)
    b = layer(x)[0]
    c = layer(x)[0]
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    layer.eval()
    e1, e2 = layer(x)[0], layer(x)[0]
    assert torch.equal(e1, e2)
    if "zoneout" not in options:  # the others are switched off in eval
        plain = (
            make(
                mode,
                3,
                4,
                2,
                bidirectional=True,
                backend="reference",
                layer_norm=options.get("layer_norm", False),
            )
            .float()
            .eval()
        )
        plain.load_state_dict(layer.state_dict())
        assert torch.equal(e1, plain(x)[0])


def test_mask_order_follows_the_spec():
    """Per layer and direction: DropConnect, recurrent dropout, zoneout h, zoneout c."""
    cell = lnn.LSTM(3, 4, proj_size=2, dropconnect=0.5, recurrent_dropout=0.5, zoneout=0.5).cell
    x = torch.zeros(7, 2, 3, dtype=D)
    torch.manual_seed(11)
    masks = sample_masks(cell, 2, 2, 2, 7, training=True, like=x)
    torch.manual_seed(11)
    for layer in range(2):
        for d in range(2):
            m = masks[layer][d]
            assert torch.equal(m.weight_hh, keep_mask((16, 2), 0.5))
            assert torch.equal(m.recurrent, keep_mask((2, 2), 0.5))
            assert torch.equal(m.zoneout[0], torch.empty(7, 2, 2, dtype=D).bernoulli_(0.5))
            assert torch.equal(m.zoneout[1], torch.empty(7, 2, 4, dtype=D).bernoulli_(0.5))
    assert sample_masks(cell, 1, 1, 2, 7, training=False, like=x)[0][0].weight_hh is None
    plain = lnn.GRU(3, 4, dropconnect=0.5).cell
    assert sample_masks(plain, 1, 1, 2, 7, training=False, like=x) is None


GRAD_CASES = [
    ("LSTM", {"layer_norm": True}),
    ("LSTM", {"peepholes": True, "proj_size": 1}),
    ("LSTM", {"recurrent_dropout": 0.5, "proj_size": 1}),
    ("LSTM", {"zoneout": (0.5, 0.5)}),
    ("LSTM", {"dropconnect": 0.5}),
    (
        "LSTM",
        {
            "layer_norm": True,
            "peepholes": True,
            "recurrent_dropout": 0.3,
            "zoneout": 0.3,
            "dropconnect": 0.3,
            "proj_size": 1,
        },
    ),
    ("GRU", {"layer_norm": True}),
    ("GRU", {"recurrent_dropout": 0.5, "zoneout": 0.5, "dropconnect": 0.5}),
]


@pytest.mark.parametrize(("mode", "options"), GRAD_CASES)
@pytest.mark.parametrize("training", [True, False])
def test_gradcheck_reference_variants_float64(mode, options, training):
    """Input, initial states and every parameter, with lengths, 2 layers, both directions."""
    torch.manual_seed(10)
    layer = make(mode, 2, 2, 2, bidirectional=True, **options)
    randomise(layer, 4)
    cell = layer.cell
    params = [p.detach().clone().requires_grad_(True) for p in layer.parameters()]
    x = torch.randn(3, 2, 2, dtype=D, requires_grad=True)
    hx = [torch.randn(4, 2, s, dtype=D, requires_grad=True) for s in cell.state_sizes]
    lengths = torch.tensor([3, 2])
    masks = sample_masks(cell, 2, 2, 2, 3, training=training, like=x)

    def run(x, *tensors):
        n = len(hx)
        it = iter(tensors[n:])
        weights = [[{base: next(it) for base in d} for d in row] for row in layer._names]
        out, finals, _ = backends.reference(
            cell, x, tuple(tensors[:n]), weights, masks=masks, lengths=lengths, training=training
        )
        return (out, *finals)

    assert torch.autograd.gradcheck(run, (x, *hx, *params))


# ------------------------------------------------------------- combinations
FUSED_CASES = [
    ("LSTM", {}),
    ("LSTM", {"layer_norm": True, "peepholes": True, "proj_size": 2}),
    ("LSTM", {"recurrent_dropout": 0.3, "zoneout": (0.2, 0.4), "dropconnect": 0.3}),
    (
        "LSTM",
        {
            "layer_norm": True,
            "recurrent_dropout": 0.3,
            "zoneout": 0.3,
            "proj_size": 2,
            "peepholes": True,
            "dropconnect": 0.2,
            "bias": False,
        },
    ),
    ("GRU", {}),
    ("GRU", {"layer_norm": True, "recurrent_dropout": 0.3}),
    ("GRU", {"zoneout": 0.3, "dropconnect": 0.3, "bias": False, "layer_norm": True}),
]


@pytest.mark.parametrize(("mode", "options"), FUSED_CASES)
@pytest.mark.parametrize("lengths", [None, [5, 2, 4]])
@pytest.mark.parametrize("training", [True, False])
def test_fused_backend_matches_reference(spec_kernels, mode, options, lengths, training):
    """Same seed, same masks: outputs, final states and every gradient agree.

    Two layers, both directions, batch_first, inter-layer dropout and given
    initial states; the reverse direction goes through reverse-within-lengths.
    """
    torch.manual_seed(12)
    cfg = {"num_layers": 2, "bidirectional": True, "batch_first": True, "dropout": 0.25}
    ref = make(mode, 3, 4, **cfg, backend="reference", **options)
    fus = make(mode, 3, 4, **cfg, backend="fused", **options)
    randomise(ref, 5)
    fus.load_state_dict(ref.state_dict())
    ref.train(training), fus.train(training)
    assert fus._pick_backend(False) == "fused"
    x = torch.randn(3, 5, 3, dtype=D, requires_grad=True)
    sizes = ref.cell.state_sizes
    hx = [torch.randn(4, 3, s, dtype=D, requires_grad=True) for s in sizes]
    hx_arg = tuple(hx) if mode == "LSTM" else hx[0]
    lengths = None if lengths is None else torch.tensor(lengths)
    results = []
    for layer in (ref, fus):
        torch.manual_seed(13)
        r = layer(x, hx_arg, lengths=lengths)
        outs = [r[0], *states(mode, r)]
        gen = torch.Generator().manual_seed(1)
        loss = sum((o * torch.randn(o.shape, generator=gen, dtype=D)).sum() for o in outs)
        grads = torch.autograd.grad(loss, [*layer.parameters(), x, *hx])
        results.append((outs, grads))
    for a, b in zip(
        results[0][0] + list(results[0][1]), results[1][0] + list(results[1][1]), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_variants_padding_values_do_not_matter_and_padded_outputs_are_zero():
    torch.manual_seed(14)
    opts = {"layer_norm": True, "zoneout": 0.3, "peepholes": True, "proj_size": 2}
    lstm = make("LSTM", 3, 4, 2, batch_first=True, bidirectional=True, **opts).eval()
    lengths = torch.tensor([2, 5])
    x = torch.randn(2, 5, 3, dtype=D)
    noisy = x.clone()
    noisy[0, 2:] = 1e3
    a, (h1, c1) = lstm(x, lengths=lengths)
    b, (h2, c2) = lstm(noisy, lengths=lengths)
    assert torch.all(a[0, 2:] == 0)
    for s, t in ((a, b), (h1, h2), (c1, c2)):
        torch.testing.assert_close(s, t)
    alone, (h_a, _) = lstm(x[:1, :2])
    torch.testing.assert_close(a[:1, :2], alone)
    torch.testing.assert_close(h1[:, :1], h_a)


def test_return_gates_with_variants_and_unbatched_input():
    torch.manual_seed(15)
    gru = lnn.GRU(3, 4, bidirectional=True, layer_norm=True, zoneout=0.2)
    out, h, gates = gru(torch.randn(5, 3), return_gates=True)
    assert out.shape == (5, 8) and h.shape == (2, 4)
    torch.testing.assert_close(gates[0][1].hidden, out[:, 4:])


# ------------------------------------------------------------ construction
@pytest.mark.parametrize(
    ("cls", "kwargs", "message"),
    [
        (lnn.GRU, {"peepholes": True}, "GRU has no peepholes"),
        (lnn.GRU, {"proj_size": 2}, "GRU has no proj_size"),
        (lnn.GRU, {"zoneout": (0.1, 0.2)}, "no cell state"),
        (lnn.LSTM, {"zoneout": (0.1, 0.2, 0.3)}, r"pair \(p_h, p_c\)"),
        (lnn.LSTM, {"zoneout": 1.5}, r"zoneout .*\[0, 1\]"),
        (lnn.LSTM, {"recurrent_dropout": 1.0}, r"recurrent_dropout .*\[0, 1\)"),
        (lnn.GRU, {"recurrent_dropout": -0.1}, "recurrent_dropout"),
        (lnn.LSTM, {"dropconnect": "0.5"}, "dropconnect"),
        (lnn.LSTM, {"dropconnect": True}, "dropconnect"),
        (lnn.LSTM, {"layer_norm": 1}, "layer_norm must be True or False"),
        (lnn.LSTM, {"peepholes": "yes"}, "peepholes must be True or False"),
        (lnn.GRU, {"hidden_size": True}, "hidden_size must be a positive integer"),
        (lnn.LSTM, {"layer_norm": True, "backend": "native"}, "backend='native'"),
        (lnn.GRU, {"zoneout": 0.1, "backend": "native"}, "backend='native'"),
    ],
)
def test_unsupported_combinations_fail_at_construction(cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cls(**{"input_size": 3, "hidden_size": 4, **kwargs})


def test_variant_parameter_names_and_plain_state_dict_to_torch():
    lstm = lnn.LSTM(3, 4, 2, bidirectional=True, proj_size=2, layer_norm=True, peepholes=True)
    names = list(lstm.state_dict())
    ours = [n for n in names if n.startswith(("ln_", "peephole"))]
    expect = [
        f"{base}_l{k}{sfx}"
        for k in range(2)
        for sfx in ("", "_reverse")
        for base in ("ln_weight_ih", "ln_weight_hh", "ln_weight_c", "ln_bias_c", "peephole")
    ]
    assert ours == expect
    assert lstm.ln_weight_hh_l1_reverse.shape == (16,)
    assert lstm.peephole_l0.shape == (3, 4)
    assert torch.all(lstm.ln_weight_c_l0 == 1) and torch.all(lstm.ln_bias_c_l0 == 0)
    # torch's own parameters still load into torch.nn.LSTM
    ref = torch.nn.LSTM(3, 4, 2, bidirectional=True, proj_size=2)
    torch_names = set(ref.state_dict())
    ref.load_state_dict({k: v for k, v in lstm.state_dict().items() if k in torch_names})
    assert set(names) - set(expect) == torch_names
    gru = lnn.GRU(3, 4, layer_norm=True)
    assert [n for n in gru.state_dict() if n.startswith("ln_")] == [
        "ln_weight_ih_l0",
        "ln_weight_hh_l0",
    ]


@pytest.mark.parametrize(
    ("cls", "options"),
    [
        (
            lnn.LSTM,
            {
                "layer_norm": True,
                "zoneout": (0.1, 0.2),
                "peepholes": True,
                "recurrent_dropout": 0.1,
                "dropconnect": 0.2,
                "proj_size": 2,
            },
        ),
        (lnn.GRU, {"layer_norm": True, "zoneout": 0.3, "recurrent_dropout": 0.1}),
    ],
)
def test_config_and_repr_carry_the_variants(cls, options):
    import json

    layer = cls(3, 4, init="keras", **options)
    config = json.loads(json.dumps(layer.get_config()))
    for key, value in options.items():
        assert config[key] == (list(value) if isinstance(value, tuple) else value)
        assert f"{key}=" in repr(layer)
    rebuilt = cls(**config)
    assert rebuilt.cell == layer.cell
    rebuilt.load_state_dict(layer.state_dict())
    layer.eval(), rebuilt.eval()
    x = torch.randn(4, 2, 3)
    torch.testing.assert_close(rebuilt(x)[0], layer(x)[0])
    if cls is lnn.LSTM:  # keras: forget-gate bias 1 still on b_ih, the LN bias
        assert torch.all(layer.bias_ih_l0[4:8] == 1)


# ------------------------------------------------------------ backend choice
def test_auto_backend_choice_with_and_without_fused(spec_kernels, monkeypatch):
    plain, variant = lnn.LSTM(2, 3), lnn.LSTM(2, 3, layer_norm=True)
    assert plain._pick_backend(False) == "native"
    assert variant._pick_backend(False) == "fused"
    assert variant._pick_backend(True) == "reference"
    spec_kernels.available = lambda: False  # the module says why itself
    assert variant._pick_backend(False) == "reference"
    fused_gru = lnn.GRU(2, 3, backend="fused")
    assert fused_gru._pick_backend(False) == "reference"
    with pytest.raises(ValueError, match="reference or fused backend"):
        fused_gru(torch.randn(4, 1, 2), return_gates=True)


def test_missing_fused_module_means_reference_said_once(monkeypatch):
    monkeypatch.setitem(sys.modules, "lstmkit.nn.fused", None)  # import raises ImportError
    monkeypatch.setattr(backends, "_warned_fused", False)
    lstm = lnn.LSTM(2, 3, recurrent_dropout=0.2, backend="fused")
    with pytest.warns(RuntimeWarning, match="fused backend cannot be imported"):
        assert lstm._pick_backend(False) == "reference"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert lstm._pick_backend(False) == "reference"
    assert lstm(torch.randn(4, 1, 2))[0].shape == (4, 1, 3)


# ------------------------------------------------------------------- cells
@pytest.mark.parametrize(
    ("mode", "options"),
    [("LSTM", {"layer_norm": True, "peepholes": True}), ("GRU", {"layer_norm": True})],
)
def test_cells_with_variants_match_one_layer_step(mode, options):
    torch.manual_seed(16)
    cell = (lnn.LSTMCell if mode == "LSTM" else lnn.GRUCell)(3, 4, **options).double()
    layer = make(mode, 3, 4, **options)
    randomise(cell, 6)
    layer.load_state_dict({f"{k}_l0": v for k, v in cell.state_dict().items()})
    x = torch.randn(2, 3, dtype=D)
    h = torch.randn(2, 4, dtype=D)
    if mode == "LSTM":
        c = torch.randn(2, 4, dtype=D)
        got = cell(x, (h, c))
        _out, want = layer(x.unsqueeze(0), (h.unsqueeze(0), c.unsqueeze(0)))
        for a, b in zip(got, want, strict=True):
            torch.testing.assert_close(a, b[0])
    else:
        torch.testing.assert_close(cell(x, h), layer(x.unsqueeze(0), h.unsqueeze(0))[1][0])


def test_cell_recurrent_dropout_mask_can_be_held_over_steps():
    torch.manual_seed(17)
    cell = lnn.LSTMCell(3, 4, recurrent_dropout=0.5, zoneout=0.0).double()
    layer = make("LSTM", 3, 4, recurrent_dropout=0.5)
    layer.load_state_dict({f"{k}_l0": v for k, v in cell.state_dict().items()})
    x = torch.randn(4, 2, 3, dtype=D)
    torch.manual_seed(3)
    masks = sample_masks(cell.spec, 1, 1, 2, 1, training=True, like=x)[0][0]
    torch.manual_seed(3)
    want, _ = layer(x)
    h = c = torch.zeros(2, 4, dtype=D)
    for t in range(4):
        h, c = cell(x[t], (h, c), masks=masks)
        torch.testing.assert_close(h, want[t])
    cell.eval()
    assert torch.equal(cell(x[0])[0], cell(x[0])[0])


@pytest.mark.parametrize("backend", ["reference", "fused"])
def test_packed_sequence_with_variants_matches_lengths(spec_kernels, backend):
    from torch.nn.utils.rnn import pack_padded_sequence

    torch.manual_seed(18)
    opts = {"layer_norm": True, "zoneout": (0.1, 0.3), "recurrent_dropout": 0.2}
    lstm = make("LSTM", 3, 4, 2, bidirectional=True, backend=backend, **opts)
    x = torch.randn(6, 3, 3, dtype=D)
    lengths = torch.tensor([4, 6, 2])
    torch.manual_seed(2)
    out, (h, c) = lstm(x, lengths=lengths)
    torch.manual_seed(2)
    packed, (h_p, c_p) = lstm(pack_padded_sequence(x, lengths, enforce_sorted=False))
    want = pack_padded_sequence(out, lengths, enforce_sorted=False).data
    torch.testing.assert_close(packed.data, want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h_p, h, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(c_p, c, rtol=1e-12, atol=1e-12)


def test_auto_runs_torch_kernel_in_eval_when_only_training_regularisers(spec_kernels):
    """Recurrent dropout and DropConnect are off in eval: the cell is plain there."""
    for cls, options in ((lnn.LSTM, {"recurrent_dropout": 0.3, "dropconnect": 0.2}),
                         (lnn.GRU, {"recurrent_dropout": 0.3})):  # fmt: skip
        layer = cls(2, 3, **options)
        assert layer._pick_backend(False) == "fused"
        layer.eval()
        assert layer._pick_backend(False) == "native"
        plain = cls(2, 3)
        plain.load_state_dict(layer.state_dict())
        x = torch.randn(5, 4, 2)
        torch.testing.assert_close(layer(x)[0], plain(x)[0], rtol=0, atol=0)
    for options in ({"zoneout": 0.2}, {"layer_norm": True}, {"peepholes": True}):
        assert lnn.LSTM(2, 3, **options).eval()._pick_backend(False) == "fused"
