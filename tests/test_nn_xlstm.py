"""xLSTM in lstmkit.nn: the sLSTM and mLSTM cells, layers, fused kernel and forms.

Independent references, none of them lstmkit code:
- two steps of each cell computed by hand here from the paper's unstabilised equations
  (plain ``math``), so the stabiliser, the layouts and the gate order are all checked;
- finite differences (float64 gradcheck) for the fused kernel's hand-written backward and
  the chunkwise form's autograd (padding with -inf gates included);
- for directions and lengths, the one-direction layer run on each sequence cut to its
  length (and reversed) on its own;
- the saved activations' bytes, counted by autograd's hooks, for the chunkwise form's memory;
- the reference package ``xlstm`` (optional: those tests skip, with the reason, without it).
"""

import dataclasses
import math
import sys

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import lstmkit.nn as lnn
from lstmkit.nn import cpu, fused
from lstmkit.nn.xlstm_cells import mlstm_chunkwise

D64 = torch.float64
HAVE_FUSED = fused.available()
needs_fused = pytest.mark.skipif(not HAVE_FUSED, reason="fused kernel unavailable")
BACKENDS = ["reference", "fused"] if HAVE_FUSED else ["reference"]

try:
    import xlstm

    XLSTM_REASON = ""
except ImportError as err:  # optional: pip install 'lstmkit[xlstm]'
    xlstm = None
    XLSTM_REASON = f"the optional package xlstm is not importable ({err})"
needs_xlstm = pytest.mark.skipif(xlstm is None, reason=XLSTM_REASON or "xlstm")


def sig(v: float) -> float:
    return 1 / (1 + math.exp(-v))


def fill(module: torch.nn.Module, seed: int, scale: float = 0.5) -> None:
    """Every parameter random normal (so recurrent weights and gains are not trivial)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * scale)


# ------------------------------------------------------------------ hand-computed steps
def test_slstm_two_steps_by_hand():
    """Two steps of a 2-unit, 2-head sLSTM (d = 1) from the unstabilised equations:
    c = f c + i z, n = f n + i with i = exp(ĩ), f = σ(f̃); h = σ(õ) c / n. The stabilised
    states follow the docstring: m_1 = ĩ_1 (n_0 = 0), then max(log f + m, ĩ)."""
    x = [0.5, -1.0]
    w_ih = [0.3, -0.2, 0.1, 0.4, -0.5, 0.6, 0.2, -0.3]  # rows i0 i1 f0 f1 z0 z1 o0 o1
    b = [0.1, 0.9, 2.0, -0.5, 0.0, 0.3, -0.2, 0.1]
    r = [[0.7, -0.4, 0.5, 0.2], [-0.6, 0.3, 0.8, -0.1]]  # r[head][gate]: d = 1
    cell = lnn.SLSTMCell(1, 2, num_heads=2, group_norm=False, init="torch", dtype=D64)
    with torch.no_grad():
        cell.weight_ih.copy_(torch.tensor(w_ih, dtype=D64).view(8, 1))
        cell.bias_ih.copy_(torch.tensor(b, dtype=D64))
        cell.weight_hh.copy_(torch.tensor(r, dtype=D64).view(2, 4, 1))
    h, c, n, m = [0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]
    cu, nu = [0.0, 0.0], [0.0, 0.0]  # unstabilised
    state = None
    for xt in x:
        hn, cn, nn_, mn = [], [], [], []
        for u in range(2):
            pre = [w_ih[g * 2 + u] * xt + b[g * 2 + u] + r[u][g] * h[u] for g in range(4)]
            ir, fr, zr, orr = pre
            lf = math.log(sig(fr))
            m_new = ir if n[u] == 0 else max(lf + m[u], ir)
            i_s, f_s = math.exp(ir - m_new), min(math.exp(lf + m[u] - m_new), 1.0)
            cn.append(f_s * c[u] + i_s * math.tanh(zr))
            nn_.append(f_s * n[u] + i_s)
            mn.append(m_new)
            cu[u] = sig(fr) * cu[u] + math.exp(ir) * math.tanh(zr)
            nu[u] = sig(fr) * nu[u] + math.exp(ir)
            hn.append(sig(orr) * cu[u] / nu[u])
        h, c, n, m = hn, cn, nn_, mn
        out, state = cell(torch.tensor([xt], dtype=D64), state)
        assert out.tolist() == pytest.approx(h, abs=1e-12)
        for got, want in zip(state, (h, c, n, m), strict=True):
            assert got.tolist() == pytest.approx(want, abs=1e-12)
    # both branches of the stabiliser were taken at step 2: unit 0 kept its memory's scale
    assert m[0] != pytest.approx(w_ih[0] * x[1] + b[0] + r[0][0] * 0.0, abs=1e-3)
    # the layer's backends agree with the cell on the same two steps
    for backend in BACKENDS:
        layer = lnn.SLSTM(1, 2, num_heads=2, group_norm=False, backend=backend, dtype=D64)
        layer.load_state_dict({f"{k}_l0": v for k, v in cell.state_dict().items()})
        out, fin = layer(torch.tensor(x, dtype=D64).view(2, 1, 1))
        assert out[-1, 0].tolist() == pytest.approx(h, abs=1e-12)
        assert fin[3][0, 0].tolist() == pytest.approx(m, abs=1e-12)


def test_slstm_exp_forget_gate_and_group_norm_by_hand():
    """Exponential forget gate (log f = f̃), and the head-wise group norm of the output."""
    torch.manual_seed(0)
    x = torch.randn(3, 1, 2, dtype=D64)
    plain = lnn.SLSTM(2, 4, num_heads=2, forget_gate="exp", group_norm=False, dtype=D64)
    fill(plain, 1)
    normed = lnn.SLSTM(2, 4, num_heads=2, forget_gate="exp", dtype=D64)
    normed.load_state_dict(plain.state_dict(), strict=False)
    with torch.no_grad():
        normed.gn_weight_l0.copy_(torch.tensor([0.5, 2.0, -1.0, 3.0]))
    w_ih, b = plain.weight_ih_l0.tolist(), plain.bias_ih_l0.tolist()
    R = plain.weight_hh_l0.detach()  # (2, 8, 2)
    h, cu, nu = [0.0] * 4, [0.0] * 4, [0.0] * 4
    for t in range(3):
        xt = x[t, 0].tolist()
        new = []
        for u in range(4):
            k, j = divmod(u, 2)
            pre = []
            for g in range(4):
                rec = sum(float(R[k, g * 2 + j, i]) * h[k * 2 + i] for i in range(2))
                pre.append(sum(w_ih[g * 4 + u][a] * xt[a] for a in range(2)) + b[g * 4 + u] + rec)
            ir, fr, zr, orr = pre
            cu[u] = math.exp(fr) * cu[u] + math.exp(ir) * math.tanh(zr)
            nu[u] = math.exp(fr) * nu[u] + math.exp(ir)
            new.append(sig(orr) * cu[u] / nu[u])
        h = new
    for backend in BACKENDS:
        plain.backend = normed.backend = backend
        assert plain(x)[0][-1, 0].tolist() == pytest.approx(h, abs=1e-10)
        want = []
        for k in range(2):
            head = h[2 * k : 2 * k + 2]
            mean = sum(head) / 2
            var = sum((v - mean) ** 2 for v in head) / 2
            gain = [0.5, 2.0, -1.0, 3.0][2 * k : 2 * k + 2]
            want += [
                (v - mean) / math.sqrt(var + 1e-5) * g for v, g in zip(head, gain, strict=True)
            ]
        assert normed(x)[0][-1, 0].tolist() == pytest.approx(want, abs=1e-8)


def test_mlstm_two_steps_by_hand():
    """Two steps of the bare mLSTM cell (1 head, d = 2) from the unstabilised equations:
    C = f C + i k v^T, n = f n + i k (k / sqrt(d)), h = σ(õ) C^T q / max(|n^T q|, 1)."""
    x = [0.8, -0.6]
    w = [1.5, -1.3, 1.2, 1.7, -1.4, 1.6, 0.3, -0.2, 0.9, -0.5]  # q0 q1 k0 k1 v0 v1 o0 o1 i f
    b = [0.9, 1.2, -1.1, 1.3, 2.0, -1.2, 0.1, 0.0, 0.4, 1.5]
    C, n = [[0.0, 0.0], [0.0, 0.0]], [0.0, 0.0]
    m = 0.0
    hs, ms = [], []
    for xt in x:
        p = [wi * xt + bi for wi, bi in zip(w, b, strict=True)]
        q, k, v, o = p[0:2], [a / math.sqrt(2) for a in p[2:4]], p[4:6], p[6:8]
        i, f = math.exp(p[8]), sig(p[9])
        C = [[f * C[a][c] + i * k[a] * v[c] for c in range(2)] for a in range(2)]
        n = [f * n[a] + i * k[a] for a in range(2)]
        m = max(math.log(f) + m, p[8])
        den = max(abs(sum(n[a] * q[a] for a in range(2))), 1.0)
        hs.append([sig(o[c]) * sum(q[a] * C[a][c] for a in range(2)) / den for c in range(2)])
        ms.append(m)
    cell = lnn.MLSTMCell(1, 2, num_heads=1, init="torch", dtype=D64)
    with torch.no_grad():
        cell.weight_ih.copy_(torch.tensor(w, dtype=D64).view(10, 1))
        cell.bias_ih.copy_(torch.tensor(b, dtype=D64))
    state = None
    for t, xt in enumerate(x):
        out, state = cell(torch.tensor([xt], dtype=D64), state)
        assert out.tolist() == pytest.approx(hs[t], abs=1e-6)  # eps 1e-6 in the denominator
        assert float(state[2].detach()) == pytest.approx(ms[t], abs=1e-12)
    # the stabilised state times exp(m) is the unstabilised memory
    assert (state[0] * math.exp(ms[-1])).tolist() == pytest.approx([*C[0], *C[1]], abs=1e-12)
    for form in ("recurrent", "chunkwise", "parallel"):
        layer = lnn.MLSTM(1, 2, num_heads=1, block=False, form=form, chunk_size=1, dtype=D64)
        layer.load_state_dict({f"{k}_l0": v for k, v in cell.state_dict().items()})
        out, fin = layer(torch.tensor(x, dtype=D64).view(2, 1, 1))
        assert out[:, 0].flatten().tolist() == pytest.approx([*hs[0], *hs[1]], abs=1e-6)
        assert float(fin[2][0, 0, 0].detach()) == pytest.approx(ms[-1], abs=1e-12)


# -------------------------------------------------------------------------- gradients
def _slstm_inputs(T=4, B=3, heads=2, d=2, seed=0, layout="gate"):
    g = torch.Generator().manual_seed(seed)
    H = heads * d

    def r(*s, scale=0.7):
        return (torch.randn(*s, generator=g, dtype=D64) * scale).requires_grad_()

    if layout == "head":  # the head-wise projection's layout, read as a strided view
        xw = r(heads, T, B, 4, d)
        xw_in = xw.permute(1, 2, 3, 0, 4)
    else:
        xw = xw_in = r(T, B, 4 * H)
    n0 = (torch.rand(B, H, generator=g, dtype=D64) + 0.5).requires_grad_()
    return xw, xw_in, r(B, H), r(B, H), n0, r(B, H), r(heads, 4 * d, d)


@needs_fused
@pytest.mark.parametrize("exp_forget", [False, True])
@pytest.mark.parametrize("layout", ["gate", "head"])
def test_fused_slstm_gradcheck(exp_forget, layout):
    """The kernel's hand-written backward against finite differences (lengths included)."""
    xw, _, h0, c0, n0, m0, w = _slstm_inputs(layout=layout)
    lengths = torch.tensor([4, 1, 3])

    def f(xw, h0, c0, n0, m0, w):
        x5 = xw.permute(1, 2, 3, 0, 4) if layout == "head" else xw
        return fused.slstm_direction(x5, h0, c0, n0, m0, w, lengths, exp_forget=exp_forget)

    assert torch.autograd.gradcheck(f, (xw, h0, c0, n0, m0, w))


@needs_fused
@pytest.mark.parametrize("exp_forget", [False, True])
def test_fused_slstm_matches_the_step_equations(exp_forget):
    """Forward, every final state and every gradient of the kernel against ``slstm_step``
    run step by step with autograd, in float32 (a zero normaliser row included: the first
    step's stabiliser is then ĩ)."""
    xw, _, h0, c0, n0, m0, w = (t.detach().float() for t in _slstm_inputs(T=6, B=5, seed=3))
    with torch.no_grad():
        n0[1] = 0.0
        c0[1] = 0.0
    args = [t.requires_grad_() for t in (xw, h0, c0, n0, m0, w)]
    forget = "exp" if exp_forget else "sigmoid"
    got = fused.slstm_direction(*args, exp_forget=exp_forget)
    h, c, n, m = args[1:5]
    outs = []
    for t in range(xw.shape[0]):
        h, c, n, m, _ = lnn.slstm_step(args[0][t], h, c, n, m, args[5], forget)
        outs.append(h)
    want = (torch.stack(outs), h, c, n, m)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    weights = [torch.randn_like(t) for t in want]
    g1 = torch.autograd.grad(sum((a * v).sum() for a, v in zip(got, weights, strict=True)), args)
    g2 = torch.autograd.grad(sum((a * v).sum() for a, v in zip(want, weights, strict=True)), args)
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("chunk", [2, 3, None])
def test_mlstm_chunkwise_gradcheck(chunk):
    """Autograd through the chunkwise form (padding chunks, -inf input gates of padded
    steps, an initial state) against finite differences: no NaN or missing path."""
    g = torch.Generator().manual_seed(0)

    def r(*s):
        return (torch.randn(*s, generator=g, dtype=D64) * 0.6).requires_grad_()

    B, NH, T, d = 2, 2, 5, 2
    q, k, v, i_raw, f_raw = r(B, NH, T, d), r(B, NH, T, d), r(B, NH, T, d), r(B, NH, T), r(B, NH, T)
    C0, n0, m0 = r(B, NH, d, d), r(B, NH, d), r(B, NH)
    real = torch.tensor([[True] * 5, [True, True, True, False, False]]).view(B, 1, T)

    def f(q, k, v, i_raw, f_raw, C0, n0, m0):
        i_m = torch.where(real, i_raw, torch.full_like(i_raw, -math.inf))
        lf = torch.where(real, torch.nn.functional.logsigmoid(f_raw), torch.zeros_like(f_raw))
        h, (C, n, m), _ = mlstm_chunkwise(q, k, v, i_m, lf, C0, n0, m0, chunk)
        return h, C, n, m

    assert torch.autograd.gradcheck(f, (q, k, v, i_raw, f_raw, C0, n0, m0))


# -------------------------------------------------------------- layers: backends, forms
def _lengths_and_x(T, B, F, seed, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T, B, F, generator=g, dtype=dtype)
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    lengths[0] = T
    return x, lengths


@needs_fused
@pytest.mark.parametrize(
    "opts",
    [
        {"num_layers": 2, "bidirectional": True},
        {"headwise_input": True, "forget_gate": "exp", "bidirectional": True},
        {"group_norm": False, "num_layers": 2, "bias": False},
    ],
)
def test_slstm_fused_equals_reference(opts):
    """Outputs, final states and every gradient: fused kernel = reference loop (float64),
    with lengths and given initial states."""
    x, lengths = _lengths_and_x(5, 4, 8, 0, D64)
    ref = lnn.SLSTM(8, 8, num_heads=2, backend="reference", dtype=D64, **opts)
    fill(ref, 2)
    fus = lnn.SLSTM(8, 8, num_heads=2, backend="fused", dtype=D64, **opts)
    fus.load_state_dict(ref.state_dict())
    rows = ref.num_layers * (2 if ref.bidirectional else 1)
    g = torch.Generator().manual_seed(1)
    hx = [torch.randn(rows, 4, 8, generator=g, dtype=D64) for _ in range(4)]
    hx[2] = hx[2].abs() + 0.5  # a normaliser state is positive
    results = []
    for layer in (ref, fus):
        x_ = x.clone().requires_grad_()
        h_ = [t.clone().requires_grad_() for t in hx]
        out, fin = layer(x_, tuple(h_), lengths=lengths)
        loss = (out * torch.linspace(-1, 1, out.shape[-1], dtype=D64)).sum()
        loss = loss + sum((f * (i + 1)).sum() for i, f in enumerate(fin))
        grads = torch.autograd.grad(loss, [x_, *h_, *layer.parameters()])
        results.append((out, fin, grads))
    (o1, f1, g1), (o2, f2, g2) = results
    torch.testing.assert_close(o1, o2, atol=1e-10, rtol=1e-10)
    for a, b in zip((*f1, *g1), (*f2, *g2), strict=True):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-9)


@needs_fused
@pytest.mark.parametrize("dtype", [torch.float32, D64])
def test_slstm_fused_inference_keeps_nothing_and_gives_the_same(dtype):
    """Without autograd the kernel keeps one step's buffers only: same outputs and states."""
    x, lengths = _lengths_and_x(7, 9, 8, 23, dtype)
    layer = lnn.SLSTM(8, 8, num_heads=2, bidirectional=True, backend="fused", dtype=dtype)
    fill(layer, 10)
    out, fin = layer(x, lengths=lengths)
    with torch.no_grad():
        out2, fin2 = layer(x, lengths=lengths)
    torch.testing.assert_close(out2, out.detach(), atol=0, rtol=0)
    for a, b in zip(fin2, fin, strict=True):
        torch.testing.assert_close(a, b.detach(), atol=0, rtol=0)


@needs_fused
def test_slstm_fused_on_two_threads_equals_reference():
    """float32 with rows split over two threads (each runs every step on its own rows,
    forward and backward): the same outputs and gradients as the reference loop."""
    x, lengths = _lengths_and_x(6, 40, 8, 21)
    ref = lnn.SLSTM(8, 8, num_heads=2, headwise_input=True, backend="reference")
    fill(ref, 9)
    fus = lnn.SLSTM(8, 8, num_heads=2, headwise_input=True, backend="fused")
    fus.load_state_dict(ref.state_dict())
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        results = []
        for layer in (ref, fus):
            out, fin = layer(x, lengths=lengths)
            loss = out.square().sum() + sum(f.sum() for f in fin)
            results.append((out, torch.autograd.grad(loss, list(layer.parameters()))))
    finally:
        torch.set_num_threads(before)
    torch.testing.assert_close(results[1][0], results[0][0], atol=1e-5, rtol=1e-5)
    for a, b in zip(results[1][1], results[0][1], strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_slstm_directions_and_lengths_against_one_sequence_at_a_time(backend):
    """A bidirectional layer on a padded batch = its two directions run as one-direction
    layers on each sequence cut to its length (the reverse one on the sequence reversed)."""
    x, lengths = _lengths_and_x(6, 3, 4, 5)
    bi = lnn.SLSTM(4, 6, num_heads=3, bidirectional=True, backend=backend)
    fill(bi, 4)
    fwd, rev = (lnn.SLSTM(4, 6, num_heads=3, backend=backend) for _ in range(2))
    state = bi.state_dict()
    fwd.load_state_dict({k: v for k, v in state.items() if not k.endswith("_reverse")})
    rev.load_state_dict({k.removesuffix("_reverse"): v for k, v in state.items() if "reverse" in k})
    out, fin = bi(x, lengths=lengths)
    for b, n in enumerate(lengths.tolist()):
        seq = x[:n, b : b + 1]
        of, sf = fwd(seq)
        orv, sr = rev(seq.flip(0))
        torch.testing.assert_close(out[:n, b, :6], of[:, 0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out[:n, b, 6:], orv.flip(0)[:, 0], atol=1e-5, rtol=1e-5)
        assert out[n:, b].abs().max() == 0 if n < 6 else True
        for a, s1, s2 in zip(fin, sf, sr, strict=True):
            torch.testing.assert_close(a[0, b], s1[0, 0], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(a[1, b], s2[0, 0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_slstm_packed_batch_first_unbatched_and_states(backend):
    """PackedSequence = lengths=; batch_first transposes; unbatched input is one sequence;
    final states fed back continue the sequence exactly."""
    x, lengths = _lengths_and_x(5, 3, 4, 7)
    layer = lnn.SLSTM(4, 4, num_heads=2, num_layers=2, backend=backend)
    fill(layer, 8)
    out, fin = layer(x, lengths=lengths)
    packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
    pout, pfin = layer(packed)
    torch.testing.assert_close(
        pout.data, pack_padded_sequence(out, lengths, enforce_sorted=False).data
    )
    for a, b in zip(fin, pfin, strict=True):
        torch.testing.assert_close(a, b)
    bf = lnn.SLSTM(4, 4, num_heads=2, num_layers=2, backend=backend, batch_first=True)
    bf.load_state_dict(layer.state_dict())
    torch.testing.assert_close(bf(x.transpose(0, 1), lengths=lengths)[0], out.transpose(0, 1))
    one, one_fin = layer(x[:, 0])
    torch.testing.assert_close(one, out[:, 0])
    assert one_fin[0].shape == (2, 4)
    head, mid = layer(x[:2])
    tail, end = layer(x[2:], mid)
    whole, whole_fin = layer(x)
    torch.testing.assert_close(torch.cat([head, tail]), whole, atol=1e-6, rtol=1e-5)
    for a, b in zip(end, whole_fin, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


@needs_fused
def test_slstm_return_gates_fused_equals_reference_and_the_equations():
    x, lengths = _lengths_and_x(5, 3, 4, 9)
    layers = {}
    for backend in ("reference", "fused"):
        layers[backend] = lnn.SLSTM(4, 4, num_heads=2, group_norm=False, backend=backend)
        fill(layers[backend], 3)
    layers["fused"].load_state_dict(layers["reference"].state_dict())
    results = {b: m(x, lengths=lengths, return_gates=True) for b, m in layers.items()}
    gates = results["fused"][2][0][0]
    for a, b in zip(results["reference"][2][0][0], gates, strict=True):
        torch.testing.assert_close(a, b.to(a.dtype), atol=1e-5, rtol=1e-5)
    # the equations hold between the gates: c_t = f' c_{t-1} + i' z, h = o c / n
    real = (torch.arange(5)[:, None] < lengths[None]).unsqueeze(-1)
    c_prev = torch.cat([torch.zeros(1, 3, 4), gates.cell[:-1]])
    n_prev = torch.cat([torch.zeros(1, 3, 4), gates.normalizer[:-1]])
    c_want = gates.forget * c_prev + gates.input * gates.candidate
    n_want = gates.forget * n_prev + gates.input
    torch.testing.assert_close(gates.cell, c_want * real, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gates.normalizer, n_want * real, atol=1e-5, rtol=1e-5)
    h = torch.where(real, gates.output * gates.cell / gates.normalizer.clamp_min(1e-30), 0)
    torch.testing.assert_close(results["fused"][0], h, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_slstm_dropout_between_layers(backend):
    x, _ = _lengths_and_x(4, 2, 4, 11)
    layer = lnn.SLSTM(4, 4, num_heads=2, num_layers=2, dropout=0.5, backend=backend)
    fill(layer, 1)
    layer.eval()
    plain = layer(x)[0]
    layer.train()
    torch.manual_seed(0)
    a = layer(x)[0]
    torch.manual_seed(0)
    b = layer(x)[0]
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, plain)


@pytest.mark.parametrize("block", [True, False])
def test_mlstm_forms_agree(block):
    """Recurrent = chunkwise (a chunk size that pads the last chunk) = parallel, in float32
    within 1e-5: outputs, final states (conv included) and gradients; with lengths, two
    directions, two layers and given initial states."""
    x, lengths = _lengths_and_x(11, 3, 6, 13)
    layers = []
    for form in ("recurrent", "chunkwise", "parallel"):
        layer = lnn.MLSTM(
            6, 8, num_heads=2, block=block, form=form, chunk_size=4, num_layers=2,
            bidirectional=True, inner_size=8 if block else None, qkv_blocksize=2,
        )  # fmt: skip
        layers.append(layer)
    fill(layers[0], 5, 0.4)
    for layer in layers[1:]:
        layer.load_state_dict(layers[0].state_dict())
    g = torch.Generator().manual_seed(2)
    hx = tuple(torch.randn(4, 3, s, generator=g) * 0.3 for s in layers[0].cell.state_sizes)
    results = []
    for layer in layers:
        xg = x.clone().requires_grad_()
        out, fin, gates = layer(xg, hx, lengths=lengths, return_gates=True)
        loss = out.square().sum() + sum(f.sum() for f in fin)
        grads = torch.autograd.grad(loss, [xg, *layer.parameters()])
        results.append((out, fin, grads, gates[1][1]))
    for other in results[1:]:
        torch.testing.assert_close(other[0], results[0][0], atol=1e-5, rtol=1e-5)
        for a, b in zip(other[1], results[0][1], strict=True):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        for a, b in zip(other[2], results[0][2], strict=True):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
        for a, b in zip(other[3], results[0][3], strict=True):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("form", ["recurrent", "chunkwise"])
def test_mlstm_block_directions_lengths_and_conv_state(form):
    """The block's reverse direction convolves the reversed sequence; per-sequence runs
    agree with the padded batch; the final states continue a sequence exactly (the
    convolution's last inputs included)."""
    x, lengths = _lengths_and_x(7, 3, 4, 17)
    kw = {"num_heads": 2, "inner_size": 8, "qkv_blocksize": 2, "form": form, "chunk_size": 3}
    bi = lnn.MLSTM(4, 4, bidirectional=True, **kw)
    fill(bi, 6, 0.4)
    fwd, rev = lnn.MLSTM(4, 4, **kw), lnn.MLSTM(4, 4, **kw)
    state = bi.state_dict()
    fwd.load_state_dict({k: v for k, v in state.items() if not k.endswith("_reverse")})
    rev.load_state_dict({k.removesuffix("_reverse"): v for k, v in state.items() if "reverse" in k})
    out, fin = bi(x, lengths=lengths)
    for b, n in enumerate(lengths.tolist()):
        seq = x[:n, b : b + 1]
        of, sf = fwd(seq)
        orv, _ = rev(seq.flip(0))
        torch.testing.assert_close(out[:n, b, :4], of[:, 0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out[:n, b, 4:], orv.flip(0)[:, 0], atol=1e-5, rtol=1e-5)
        for a, s1 in zip(fin, sf, strict=True):
            torch.testing.assert_close(a[0, b], s1[0, 0], atol=1e-5, rtol=1e-5)
    head, mid = fwd(x[:3])
    tail, end = fwd(x[3:], mid)
    whole, whole_fin = fwd(x)
    torch.testing.assert_close(torch.cat([head, tail]), whole, atol=1e-5, rtol=1e-5)
    for a, b in zip(end, whole_fin, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def _saved_bytes(layer, x) -> int:
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        layer(x)[0].sum()
    return total


def test_mlstm_chunkwise_memory_is_linear_in_the_sequence_length():
    """Saved activations for backward: doubling T doubles them in the chunkwise form and
    about quadruples them in the parallel form (the T x T matrices)."""
    torch.manual_seed(0)
    chunk = lnn.MLSTM(8, 8, num_heads=2, block=False, chunk_size=16)
    par = lnn.MLSTM(8, 8, num_heads=2, block=False, form="parallel")
    par.load_state_dict(chunk.state_dict())
    x1, x2 = torch.randn(256, 2, 8), torch.randn(512, 2, 8)
    c1, c2 = _saved_bytes(chunk, x1), _saved_bytes(chunk, x2)
    p1, p2 = _saved_bytes(par, x1), _saved_bytes(par, x2)
    assert 1.8 < c2 / c1 < 2.2
    assert p2 / p1 > 3.5
    assert p2 > 8 * c2


def test_cells_equal_one_layer_step():
    x = torch.randn(3, 5)
    for cell, layer in (
        (lnn.SLSTMCell(5, 4, num_heads=2), lnn.SLSTM(5, 4, num_heads=2)),
        (lnn.MLSTMCell(5, 4, num_heads=2), lnn.MLSTM(5, 4, num_heads=2, block=False)),
    ):
        fill(cell, 3)
        layer.load_state_dict({f"{k}_l0": v for k, v in cell.state_dict().items()})
        out, state = cell(x)
        lout, lfin = layer(x.unsqueeze(0))
        torch.testing.assert_close(out, lout[0], atol=1e-6, rtol=1e-5)
        for a, b in zip(state, lfin, strict=True):
            torch.testing.assert_close(a, b[0], atol=1e-6, rtol=1e-5)
        one, one_state = cell(x[0])  # unbatched
        torch.testing.assert_close(one, out[0])
        assert len(one_state) == len(state)


def test_config_round_trip_and_state_dict_names():
    s = lnn.SLSTM(6, 8, num_heads=2, num_layers=2, bidirectional=True, forget_gate="exp")
    assert type(s)(**s.get_config()).get_config() == s.get_config()
    assert "forget_gate='exp'" in repr(s)
    assert set(s.state_dict()) >= {"weight_ih_l1_reverse", "weight_hh_l0", "gn_weight_l1"}
    assert s.weight_hh_l0.shape == (2, 16, 4)
    m = lnn.MLSTM(6, 8, num_heads=2, chunk_size=16, conv_kernel=2)
    assert type(m)(**m.get_config()).get_config() == m.get_config()
    assert m.get_config()["inner_size"] is None and m.inner_size == 16


def test_xlstm_init_keeps_memory():
    """The package's initialisation: zero recurrent weights, forget gates open at the start."""
    s = lnn.SLSTM(8, 8, num_heads=2, num_layers=2)
    assert s.weight_hh_l0.abs().max() == 0
    f_bias = s.bias_ih_l0.detach().view(4, 2, 4)[1]
    assert f_bias[0].tolist() == pytest.approx([5.0, 5 - 12 / 3**0.3, 5 - 12 * (2 / 3) ** 0.3, -7])
    assert s.bias_ih_l1.detach().view(4, 2, 4)[1, 0, 1] == pytest.approx(5 - 12 / 3**1.6)
    m = lnn.MLSTM(8, 8, num_heads=2)
    assert m.bias_gates_l0[2:].tolist() == pytest.approx([3.0, 6.0])
    assert m.weight_gates_l0.abs().max() == 0 and m.skip_l0.tolist() == [1.0] * 16


# ------------------------------------------------------------------------- bad input
def test_bad_settings_raise_one_clear_value_error():
    with pytest.raises(ValueError, match=r"num_heads \(3\) must divide hidden_size \(8\)"):
        lnn.SLSTM(4, 8, num_heads=3)
    with pytest.raises(ValueError, match=r"num_heads \(3\) must divide inner_size \(16\)"):
        lnn.MLSTM(4, 8, num_heads=3)
    with pytest.raises(ValueError, match=r"num_heads \(3\) must divide hidden_size \(8\)"):
        lnn.MLSTM(4, 8, num_heads=3, block=False)
    with pytest.raises(ValueError, match=r"num_heads \(2\) must divide the input size"):
        lnn.SLSTM(5, 8, num_heads=2, headwise_input=True)
    with pytest.raises(ValueError, match="chunk_size must be a positive integer, got 0"):
        lnn.MLSTM(4, 8, chunk_size=0)
    with pytest.raises(ValueError, match="forget_gate must be one of"):
        lnn.SLSTM(4, 8, forget_gate="tanh")
    with pytest.raises(ValueError, match="form must be one of"):
        lnn.MLSTM(4, 8, form="fast")
    with pytest.raises(ValueError, match="backend must be one of"):
        lnn.SLSTM(4, 8, backend="native")
    with pytest.raises(ValueError, match="hx must be a tuple"):
        lnn.SLSTM(4, 8)(torch.randn(3, 2, 4), torch.zeros(1, 2, 8))


def test_bf16_without_native_support_is_refused(cpu_fallback):
    with pytest.raises(ValueError, match=r"dtype=torch.bfloat16 needs a CPU with native bf16"):
        lnn.SLSTM(4, 8, dtype=torch.bfloat16)
    with pytest.raises(ValueError, match=r"dtype=torch.bfloat16 needs a CPU with native bf16"):
        lnn.MLSTM(4, 8, dtype=torch.bfloat16)
    with pytest.raises(ValueError, match=r"SLSTMCell: dtype=torch.bfloat16 needs a CPU"):
        lnn.SLSTMCell(4, 8, dtype=torch.bfloat16)
    layer = lnn.SLSTM(4, 8).to(torch.bfloat16)
    with pytest.raises(ValueError, match=r"parameter dtype=torch\.bfloat16"):
        layer(torch.randn(3, 2, 4, dtype=torch.bfloat16))
    with pytest.raises(ValueError, match=r"input dtype=torch\.bfloat16"):
        lnn.MLSTM(4, 8)(torch.randn(3, 2, 4, dtype=torch.bfloat16))
    # under a bf16 autocast the layers compute in float32 instead (one warning)
    layer = lnn.SLSTM(4, 8)
    with (
        pytest.warns(RuntimeWarning, match="computes in float32"),
        torch.autocast("cpu", dtype=torch.bfloat16),
    ):
        out = layer(torch.randn(3, 2, 4))[0]
    assert out.dtype == torch.float32 and cpu.native_bf16() is False


@pytest.mark.native_bf16
@needs_fused
def test_fused_slstm_bf16_close_to_float32():
    x, lengths = _lengths_and_x(6, 4, 8, 19)
    f32 = lnn.SLSTM(8, 8, num_heads=2, backend="fused")
    b16 = lnn.SLSTM(8, 8, num_heads=2, backend="fused", dtype=torch.bfloat16)
    b16.load_state_dict(f32.state_dict())
    out = b16(x.bfloat16(), lengths=lengths)[0]
    out.float().sum().backward()
    torch.testing.assert_close(out.float(), f32(x, lengths=lengths)[0], atol=5e-2, rtol=5e-2)
    assert b16.weight_hh_l0.grad.dtype == torch.bfloat16


@needs_fused
def test_build_key_covers_every_file_under_csrc(tmp_path, monkeypatch):
    """Editing slstm.h (not only fused_rnn.cpp) must rebuild the kernel."""
    for f in fused._CSRC.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    monkeypatch.setattr(fused, "_CSRC", tmp_path)
    before = fused._build_key(["-O3"])
    (tmp_path / "slstm.h").write_text((tmp_path / "slstm.h").read_text() + "\n// edited\n")
    assert fused._build_key(["-O3"]) != before


# --------------------------------------------------------------- the reference package
def _xlstm_slstm(width=16, heads=4, seed=0, **cfg):
    torch.manual_seed(seed)
    config = xlstm.sLSTMLayerConfig(
        embedding_dim=width, num_heads=heads, conv1d_kernel_size=0, backend="vanilla", **cfg
    )
    layer = xlstm.sLSTMLayer(config)
    fill(layer, seed)
    return layer


@needs_xlstm
@pytest.mark.parametrize("backend", BACKENDS)
def test_slstm_from_xlstm_matches_the_package(backend):
    layer = _xlstm_slstm()
    x = torch.randn(3, 9, 16, requires_grad=True)
    want, state = layer(x, return_last_state=True)
    ours = lnn.SLSTM.from_xlstm(layer, backend=backend)
    x2 = x.detach().clone().requires_grad_()
    got, fin = ours(x2)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    for a, b in zip(fin, state["slstm_state"], strict=True):  # h, c, n, m
        torch.testing.assert_close(a[0], b, atol=1e-5, rtol=1e-5)
    g = torch.randn_like(want)
    (gw,) = torch.autograd.grad(want, x, g)
    (gg,) = torch.autograd.grad(got, x2, g)
    torch.testing.assert_close(gg, gw, atol=1e-4, rtol=1e-4)
    back = ours.to_xlstm()
    torch.testing.assert_close(back(x), want, atol=1e-6, rtol=1e-6)


@needs_xlstm
def test_slstm_to_xlstm_after_changing_the_weights():
    ours = lnn.SLSTM(8, 8, num_heads=2, headwise_input=True, batch_first=True)
    fill(ours, 7)
    x = torch.randn(2, 5, 8)
    torch.testing.assert_close(ours.to_xlstm()(x), ours(x)[0], atol=1e-5, rtol=1e-5)


@needs_xlstm
@pytest.mark.parametrize("bias", [False, True])
def test_mlstm_from_xlstm_matches_the_package(bias):
    torch.manual_seed(0)
    config = xlstm.mLSTMLayerConfig(
        embedding_dim=16, num_heads=4, context_length=9, conv1d_kernel_size=4,
        qkv_proj_blocksize=4, proj_factor=2.0, bias=bias,
    )  # fmt: skip
    layer = xlstm.mLSTMLayer(config)
    fill(layer, 1, 0.3)
    x = torch.randn(3, 9, 16)
    want = layer(x)
    for form in ("chunkwise", "parallel", "recurrent"):
        ours = lnn.MLSTM.from_xlstm(layer, form=form, chunk_size=4)
        torch.testing.assert_close(ours(x)[0], want, atol=1e-5, rtol=1e-5)
    back = ours.to_xlstm(context_length=9)
    torch.testing.assert_close(back(x), want, atol=1e-6, rtol=1e-6)


@needs_xlstm
def test_from_xlstm_refuses_what_it_cannot_read():
    conv = xlstm.sLSTMLayer(
        xlstm.sLSTMLayerConfig(
            embedding_dim=8, num_heads=2, conv1d_kernel_size=4, backend="vanilla"
        )
    )
    with pytest.raises(ValueError, match=r"convolution \(conv1d_kernel_size=4\)"):
        lnn.SLSTM.from_xlstm(conv)
    from xlstm.blocks.slstm.cell import sLSTMCell_cuda

    layer = _xlstm_slstm(8, 2)
    cuda_cfg = dataclasses.replace(layer.slstm_cell.config, backend="cuda")
    layer.slstm_cell = sLSTMCell_cuda(cuda_cfg, skip_backend_init=True)  # as built on a GPU
    with pytest.raises(ValueError, match="backend='sLSTMCell_cuda'"):
        lnn.SLSTM.from_xlstm(layer)
    with pytest.raises(ValueError, match="expected the xlstm package's mLSTMLayer"):
        lnn.MLSTM.from_xlstm(conv)
    with pytest.raises(ValueError, match="expected the xlstm package's sLSTMLayer"):
        lnn.SLSTM.from_xlstm(torch.nn.LSTM(8, 8))
    with pytest.raises(ValueError, match="one layer and one direction, headwise_input=True"):
        lnn.SLSTM(8, 8, bidirectional=True).to_xlstm()
    with pytest.raises(ValueError, match="block=True"):
        lnn.MLSTM(8, 8, block=False).to_xlstm(context_length=4)


def test_to_xlstm_without_the_package_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "xlstm", None)  # as if it were not installed
    layer = lnn.SLSTM(8, 8, num_heads=2, headwise_input=True)
    with pytest.raises(ImportError, match=r"pip install 'lstmkit\[xlstm\]'"):
        layer.to_xlstm()
