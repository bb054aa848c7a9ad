"""Tests of the fused CPU kernel (lstmkit.nn.fused) against an independent float64 loop.

The reference below is written here from SPEC-variants.md with plain torch ops and autograd,
one step at a time, so the fused forward and its hand-written backward are compared with
torch's own differentiation of the same math; plain LSTM is also checked against
torch.nn.LSTM. Everything skips (with the reason) only when the kernel cannot be built.
"""

import os

import pytest
import torch
import torch.nn.functional as F

from lstmkit.nn import cpu, fused

if not fused.available():
    pytest.skip(f"fused kernel unavailable: {fused._state['error']}", allow_module_level=True)

EPS = 1e-5


def _ln(v, g, b):
    return F.layer_norm(v, v.shape[-1:], g, b, EPS)


def ref_lstm(xw, h0, c0, w_hh, b_hh, w_hr, peep, lnw, lnwc, lnbc, rd, zh, zc, lengths):
    """SPEC's LSTM step in a plain loop (any dtype); returns out, h_n, c_n."""
    steps = xw.shape[0]
    h, c, outs = h0, c0, []
    for t in range(steps):
        hd = h * rd if rd is not None else h
        ah = hd @ w_hh.t()
        if lnw is not None:
            ah = _ln(ah, lnw, b_hh)
        elif b_hh is not None:
            ah = ah + b_hh
        zi, zf, zg, zo = (xw[t] + ah).chunk(4, -1)
        if peep is not None:
            zi = zi + peep[0] * c
            zf = zf + peep[1] * c
        i, f, g = torch.sigmoid(zi), torch.sigmoid(zf), torch.tanh(zg)
        ct = f * c + i * g
        if peep is not None:
            zo = zo + peep[2] * ct
        o = torch.sigmoid(zo)
        cn = _ln(ct, lnwc, lnbc) if lnwc is not None else ct
        ht = o * torch.tanh(cn)
        if w_hr is not None:
            ht = ht @ w_hr.t()
        cnew = zc[t] * c + (1 - zc[t]) * ct if zc is not None else ct
        hnew = zh[t] * h + (1 - zh[t]) * ht if zh is not None else ht
        if lengths is not None:
            m = (t < lengths).unsqueeze(1)
            cnew = torch.where(m, cnew, c)
            hnew = torch.where(m, hnew, h)
            outs.append(torch.where(m, hnew, torch.zeros_like(hnew)))
        else:
            outs.append(hnew)
        h, c = hnew, cnew
    return torch.stack(outs), h, c


def ref_gru(xw, h0, w_hh, b_hh, lnw, rd, zh, lengths):
    """SPEC's GRU step in a plain loop; returns out, h_n."""
    h, outs = h0, []
    for t in range(xw.shape[0]):
        hd = h * rd if rd is not None else h
        ah = hd @ w_hh.t()
        if lnw is not None:
            ah = _ln(ah, lnw, b_hh)
        elif b_hh is not None:
            ah = ah + b_hh
        ar, az, an = ah.chunk(3, -1)
        xr, xz, xn = xw[t].chunk(3, -1)
        r, z = torch.sigmoid(xr + ar), torch.sigmoid(xz + az)
        n = torch.tanh(xn + r * an)
        ht = (1 - z) * n + z * h
        hnew = zh[t] * h + (1 - zh[t]) * ht if zh is not None else ht
        if lengths is not None:
            m = (t < lengths).unsqueeze(1)
            hnew = torch.where(m, hnew, h)
            outs.append(torch.where(m, hnew, torch.zeros_like(hnew)))
        else:
            outs.append(hnew)
        h = hnew
    return torch.stack(outs), h


LSTM_GRAD = ("xw", "h0", "c0", "w_hh", "b_hh", "w_hr", "peephole", "lnw", "lnwc", "lnbc")
LSTM_ARGS = (*LSTM_GRAD, "rd", "zh", "zc", "lengths")
GRU_GRAD = ("xw", "h0", "w_hh", "b_hh", "lnw")
GRU_ARGS = (*GRU_GRAD, "rd", "zh", "lengths")


def make_lstm(variants, T=5, B=4, H=6, P=None, dtype=torch.float64, seed=0, lengths=None):
    """Random inputs for one LSTM direction with the named variants switched on."""
    g = torch.Generator().manual_seed(seed)
    P = P or H

    def r(*s, scale=0.5):
        return (torch.randn(*s, generator=g, dtype=torch.float64) * scale).to(dtype)

    a = dict.fromkeys(LSTM_ARGS)
    a.update(xw=r(T, B, 4 * H), h0=r(B, P), c0=r(B, H), w_hh=r(4 * H, P), b_hh=r(4 * H))
    if "proj" in variants:
        a["w_hr"] = r(P, H)
    if "peep" in variants:
        a["peephole"] = r(3, H)
    if "ln" in variants:
        a["lnw"] = 1 + r(4 * H, scale=0.2)
        a["lnwc"] = 1 + r(H, scale=0.2)
        a["lnbc"] = r(H, scale=0.2)
    if "rd" in variants:
        keep = torch.rand(B, P, generator=g) > 0.3
        a["rd"] = (keep / 0.7).to(dtype)
    if "zone" in variants:
        a["zh"] = (torch.rand(T, B, P, generator=g) < 0.3).to(dtype)
        a["zc"] = (torch.rand(T, B, H, generator=g) < 0.4).to(dtype)
    if "zone_eval" in variants:
        a["zh"] = torch.tensor(0.3, dtype=dtype).expand(T, B, P)
        a["zc"] = torch.tensor(0.2, dtype=dtype).expand(T, B, H)
    if lengths is not None:
        a["lengths"] = torch.tensor(lengths, dtype=torch.int64)
    for k in LSTM_GRAD:
        if a[k] is not None:
            a[k].requires_grad_(True)
    return a


def make_gru(variants, T=5, B=4, H=6, dtype=torch.float64, seed=0, lengths=None):
    g = torch.Generator().manual_seed(seed)

    def r(*s, scale=0.5):
        return (torch.randn(*s, generator=g, dtype=torch.float64) * scale).to(dtype)

    a = dict.fromkeys(GRU_ARGS)
    a.update(xw=r(T, B, 3 * H), h0=r(B, H), w_hh=r(3 * H, H), b_hh=r(3 * H))
    if "ln" in variants:
        a["lnw"] = 1 + r(3 * H, scale=0.2)
    if "rd" in variants:
        a["rd"] = ((torch.rand(B, H, generator=g) > 0.3) / 0.7).to(dtype)
    if "zone" in variants:
        a["zh"] = (torch.rand(T, B, H, generator=g) < 0.3).to(dtype)
    if "zone_eval" in variants:
        a["zh"] = torch.tensor(0.25, dtype=dtype).expand(T, B, H)
    if lengths is not None:
        a["lengths"] = torch.tensor(lengths, dtype=torch.int64)
    for k in GRU_GRAD:
        if a[k] is not None:
            a[k].requires_grad_(True)
    return a


def _as64(a):
    return {
        k: (
            v.detach().double().requires_grad_(v.requires_grad)
            if v is not None and v.is_floating_point()
            else v
        )
        for k, v in a.items()
    }


def _run_and_grads(fn, a, names, seed=1):
    outs = fn(*(a[k] for k in names))
    g = torch.Generator().manual_seed(seed)
    weights = [torch.randn(o.shape, generator=g, dtype=torch.float64) for o in outs]
    loss = sum((o.double() * w).sum() for o, w in zip(outs, weights, strict=True))
    wrt = [k for k in names if a.get(k) is not None and a[k].requires_grad]
    grads = torch.autograd.grad(loss, [a[k] for k in wrt])
    return outs, dict(zip(wrt, grads, strict=True))


def _fused_lstm(*args):
    return fused.lstm_direction(*args)


def _fused_gru(*args):
    return fused.gru_direction(*args)


def _check_close(name, got, ref, tol, same_dtype_err):
    """|got - ref| within tol, or within 8x the error torch's own loop makes in got's dtype
    (float32 gradients of an ill-conditioned layer norm are far from float64 for torch too)."""
    err = (got.double() - ref).abs().max().item()
    bound = tol * max(1.0, ref.abs().max().item())
    if same_dtype_err is not None:
        bound = max(bound, 8 * same_dtype_err)
    assert err <= bound, f"{name}: max error {err:.3g} > {bound:.3g}"


def compare(kind, a, tol):
    """Fused (inputs as given) vs the float64 reference: outputs, states, every gradient."""
    names = LSTM_ARGS if kind == "lstm" else GRU_ARGS
    ref_fn = ref_lstm if kind == "lstm" else ref_gru
    fz_fn = _fused_lstm if kind == "lstm" else _fused_gru
    ref_out, ref_g = _run_and_grads(ref_fn, _as64(a), names)
    fz_out, fz_g = _run_and_grads(fz_fn, a, names)
    low = a["xw"].dtype != torch.float64
    if low:  # the same loop in the same low precision, for the conditioning of this case
        lo_out, lo_g = _run_and_grads(ref_fn, a, names)
    for i, (r, f) in enumerate(zip(ref_out, fz_out, strict=True)):
        assert f.dtype == a["xw"].dtype
        lo = (lo_out[i].double() - r).abs().max().item() if low else None
        _check_close(f"output {i}", f, r.detach(), tol, lo)
    assert set(fz_g) == set(ref_g)
    for k in ref_g:
        assert fz_g[k].dtype == a[k].dtype, k
        lo = (lo_g[k].double() - ref_g[k]).abs().max().item() if low else None
        _check_close(k, fz_g[k], ref_g[k], tol, lo)


LSTM_CASES = {
    "plain": (),
    "proj": ("proj",),
    "peep": ("peep",),
    "ln": ("ln",),
    "rd": ("rd",),
    "zone": ("zone",),
    "zone_eval": ("zone_eval",),
    "all": ("proj", "peep", "ln", "rd", "zone"),
    "all_noproj": ("peep", "ln", "rd", "zone"),
}
GRU_CASES = {
    "plain": (),
    "ln": ("ln",),
    "rd": ("rd",),
    "zone": ("zone",),
    "zone_eval": ("zone_eval",),
    "all": ("ln", "rd", "zone"),
}


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
@pytest.mark.parametrize("case", list(LSTM_CASES))
def test_lstm_matches_reference(case, dtype, tol):
    P = 4 if "proj" in LSTM_CASES[case] else None
    compare("lstm", make_lstm(LSTM_CASES[case], P=P, dtype=dtype), tol)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
@pytest.mark.parametrize("case", list(GRU_CASES))
def test_gru_matches_reference(case, dtype, tol):
    compare("gru", make_gru(GRU_CASES[case], dtype=dtype), tol)


@pytest.mark.parametrize("lengths", [[5, 3, 1, 4], [5, 5, 5, 5], [1, 1, 2, 1]])
@pytest.mark.parametrize("case", ["plain", "all", "all_noproj"])
def test_lstm_lengths(case, lengths):
    P = 4 if "proj" in LSTM_CASES[case] else None
    compare("lstm", make_lstm(LSTM_CASES[case], P=P, lengths=lengths), 1e-10)


@pytest.mark.parametrize("lengths", [[5, 3, 1, 4], [5, 5, 5, 5]])
@pytest.mark.parametrize("case", ["plain", "all"])
def test_gru_lengths(case, lengths):
    compare("gru", make_gru(GRU_CASES[case], lengths=lengths), 1e-10)


def test_lengths_padding_is_zero_and_state_is_last_real_step():
    a = make_lstm(("ln", "peep"), lengths=[5, 2, 1, 3])
    out, h_n, _ = fused.lstm_direction(*(a[k] for k in LSTM_ARGS))
    for b, n in enumerate([5, 2, 1, 3]):
        assert torch.all(out[n:, b] == 0)
        torch.testing.assert_close(h_n[b], out[n - 1, b])


def test_gradients_only_for_inputs_that_require_them():
    a = make_lstm(("ln", "peep"))
    for k in ("w_hh", "b_hh", "c0"):
        a[k] = a[k].detach()
    out, _, c_n = fused.lstm_direction(*(a[k] for k in LSTM_ARGS))
    (out.sum() + c_n.sum()).backward()
    assert a["w_hh"].grad is None and a["c0"].grad is None
    assert a["xw"].grad is not None and a["lnw"].grad is not None


def _gradcheck(fn, a, names):
    a = _as64(a)
    args = [a[k] for k in names]
    assert torch.autograd.gradcheck(lambda *x: fn(*x), args, eps=1e-6, atol=1e-6)


def test_gradcheck_lstm_all_variants():
    a = make_lstm(("proj", "peep", "ln", "rd", "zone"), T=3, B=2, H=3, P=2, lengths=[3, 2])
    _gradcheck(fused.lstm_direction, a, LSTM_ARGS)


def test_gradcheck_lstm_eval_zoneout():
    a = make_lstm(("peep", "ln", "rd", "zone_eval"), T=3, B=2, H=3)
    _gradcheck(fused.lstm_direction, a, LSTM_ARGS)


def test_gradcheck_gru_all_variants():
    a = make_gru(("ln", "rd", "zone"), T=3, B=2, H=3, lengths=[3, 1])
    _gradcheck(fused.gru_direction, a, GRU_ARGS)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_zero_probability_masks_equal_plain(kind):
    make, names, fn = (
        (make_lstm, LSTM_ARGS, fused.lstm_direction)
        if kind == "lstm"
        else (make_gru, GRU_ARGS, fused.gru_direction)
    )
    a = make((), dtype=torch.float32)
    plain = fn(*(a[k] for k in names))
    T, B = a["xw"].shape[:2]
    H = a["h0"].shape[1]
    a["rd"] = torch.ones(B, H)
    a["zh"] = torch.zeros(T, B, H)
    if kind == "lstm":
        a["zc"] = torch.zeros(T, B, H)
    masked = fn(*(a[k] for k in names))
    for p, m in zip(plain, masked, strict=True):
        torch.testing.assert_close(m, p, atol=1e-6, rtol=0)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_plain_lstm_matches_torch_nn_lstm(dtype, tol):
    torch.manual_seed(0)
    T, B, n_in, H = 7, 3, 5, 8
    lstm = torch.nn.LSTM(n_in, H).to(dtype)
    x = torch.randn(T, B, n_in, dtype=dtype, requires_grad=True)
    h0 = torch.randn(1, B, H, dtype=dtype, requires_grad=True)
    c0 = torch.randn(1, B, H, dtype=dtype, requires_grad=True)
    out, (h_n, c_n) = lstm(x, (h0, c0))
    loss = out.pow(2).sum() + h_n.sum() + 2 * c_n.sum()
    params = [lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0]
    ref_g = torch.autograd.grad(loss, [x, h0, c0, *params])

    xw = x @ lstm.weight_ih_l0.t() + lstm.bias_ih_l0
    fo, fh, fc = fused.lstm_direction(xw, h0[0], c0[0], lstm.weight_hh_l0, lstm.bias_hh_l0)
    floss = fo.pow(2).sum() + fh.sum() + 2 * fc.sum()
    f_g = torch.autograd.grad(floss, [x, h0, c0, *params])
    torch.testing.assert_close(fo, out, atol=tol, rtol=tol)
    torch.testing.assert_close(fh, h_n[0], atol=tol, rtol=tol)
    torch.testing.assert_close(fc, c_n[0], atol=tol, rtol=tol)
    for r, f in zip(ref_g, f_g, strict=True):
        torch.testing.assert_close(f, r, atol=tol * 10, rtol=tol * 10)


def test_bad_shape_is_a_clear_error():
    a = make_lstm(())
    with pytest.raises(ValueError, match="w_hh must have shape"):
        fused.lstm_direction(a["xw"], a["h0"], a["c0"], a["w_hh"][:, :3])
    with pytest.raises(ValueError, match="at least one step"):
        fused.lstm_direction(a["xw"][:0], a["h0"], a["c0"], a["w_hh"])
    with pytest.raises(ValueError, match="float32, float64 or bfloat16"):
        fused.gru_direction(
            torch.zeros(2, 1, 6, dtype=torch.float16), torch.zeros(1, 2), torch.zeros(6, 2)
        )


@pytest.mark.parametrize("with_ln", [False, True])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_linear_matches_functional_linear(dtype, tol, with_ln):
    g = torch.Generator().manual_seed(3)

    def r(*s):
        return torch.randn(*s, generator=g, dtype=torch.float64).requires_grad_(True)

    x, w, b, lnw = r(5, 3, 7), r(8, 7), r(8), r(8)
    dy = torch.randn(5, 3, 8, generator=g, dtype=torch.float64)
    ins = (x, w, b, lnw) if with_ln else (x, w, b)
    ref = F.layer_norm(F.linear(x, w), (8,), lnw, b, 1e-5) if with_ln else F.linear(x, w, b)
    ref_g = torch.autograd.grad(ref, ins, dy)
    mine = [t.detach().to(dtype).requires_grad_(True) for t in ins]
    out = fused.linear(*mine)
    got_g = torch.autograd.grad(out, mine, dy.to(dtype))
    torch.testing.assert_close(out.double(), ref.detach(), atol=tol, rtol=tol)
    for a, f in zip(ref_g, got_g, strict=True):
        assert f.dtype == dtype
        torch.testing.assert_close(f.double(), a, atol=tol * 10, rtol=tol * 10)


def test_linear_under_no_grad_matches_functional_layer_norm():
    """Without autograd the input layer norm runs in place and keeps no statistics."""
    g = torch.Generator().manual_seed(4)
    x, w, b, lnw = (torch.randn(*s, generator=g) for s in ((6, 2, 7), (40, 7), (40,), (40,)))
    ref = F.layer_norm(F.linear(x.double(), w.double()), (40,), lnw.double(), b.double(), 1e-5)
    with torch.no_grad():
        out = fused.linear(x, w, b, lnw)
        plain = fused.linear(x, w, b)
    torch.testing.assert_close(out.double(), ref, atol=1e-5, rtol=1e-5)
    ref_plain = F.linear(x.double(), w.double(), b.double())
    torch.testing.assert_close(plain.double(), ref_plain, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("grad", [False, True])
def test_float32_rows_split_over_threads_match_reference(threads, grad):
    """float32 without projection runs each thread's rows through all steps with the kernel's
    own product: 21 rows (tiles of 8 and a remainder) and 4H = 40 (a partial 32-column
    panel), with lengths, against the float64 loop, under no_grad and with autograd."""
    a = make_lstm(
        ("peep", "ln", "rd", "zone"), T=6, B=21, H=10, dtype=torch.float32, seed=5,
        lengths=[6, 3, 1, 6, 5, 2, 6, 4, 6, 6, 1, 2, 3, 4, 5, 6, 6, 5, 4, 3, 2],
    )  # fmt: skip
    a64 = _as64(a)
    ref = ref_lstm(*(a64[k] for k in LSTM_ARGS))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        with torch.set_grad_enabled(grad):
            got = fused.lstm_direction(*(a[k] for k in LSTM_ARGS))
    finally:
        torch.set_num_threads(before)
    for name, x, y in zip(("out", "h_n", "c_n"), got, ref, strict=True):
        _check_close(name, x, y.detach(), 1e-5, None)


@pytest.mark.parametrize("case", ["plain", "all", "all_noproj"])
def test_lstm_bfloat16_inputs(case):
    """bf16 products, float32 gate math and cell state: close to float64 to bf16 accuracy."""
    P = 4 if "proj" in LSTM_CASES[case] else None
    compare("lstm", make_lstm(LSTM_CASES[case], P=P, H=8, dtype=torch.bfloat16), 3e-2)


@pytest.mark.parametrize("case", ["plain", "all"])
def test_gru_bfloat16_inputs(case):
    compare("gru", make_gru(GRU_CASES[case], H=8, dtype=torch.bfloat16), 3e-2)


@pytest.mark.native_bf16
def test_lstm_under_bf16_autocast_returns_bf16_and_float32_grads():
    a = make_lstm(("ln", "peep", "rd"), H=8, dtype=torch.float32, lengths=[5, 3, 1, 5])
    ref_out, ref_g = _run_and_grads(ref_lstm, _as64(a), LSTM_ARGS)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, got_g = _run_and_grads(fused.lstm_direction, a, LSTM_ARGS)
    assert out[0].dtype == torch.bfloat16
    for k, g in got_g.items():
        assert g.dtype == torch.float32, k
        _check_close(k, g, ref_g[k], 3e-2, None)
    for r, f in zip(ref_out, out, strict=True):
        _check_close("output", f, r.detach(), 3e-2, None)


def test_results_do_not_depend_on_thread_count():
    """Rows are split over threads and per-thread sums are added: 1 and 2 threads agree."""
    # 70 rows of 4*64 gates: three chunks of rows, so both threads get work
    a = make_lstm(("ln", "peep", "rd", "zone"), T=4, B=70, H=64, dtype=torch.float64)
    before = torch.get_num_threads()
    try:
        results = []
        for n in (1, 2):
            torch.set_num_threads(n)
            results.append(_run_and_grads(fused.lstm_direction, a, LSTM_ARGS))
    finally:
        torch.set_num_threads(before)
    (o1, g1), (o2, g2) = results
    for x, y in zip(o1, o2, strict=True):
        torch.testing.assert_close(x, y, atol=1e-12, rtol=1e-12)
    for k in g1:
        torch.testing.assert_close(g1[k], g2[k], atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_inference_without_grad_matches_training_forward(kind):
    """Under no_grad the kernel keeps one step of buffers; the results are the same."""
    if kind == "lstm":
        a, names, fn = (
            make_lstm(("proj", "peep", "ln", "rd", "zone"), P=4, lengths=[5, 2, 1, 4]),
            LSTM_ARGS,
            fused.lstm_direction,
        )
    else:
        a, names, fn = (
            make_gru(("ln", "rd", "zone"), lengths=[5, 2, 1, 4]),
            GRU_ARGS,
            fused.gru_direction,
        )
    train = fn(*(a[k] for k in names))
    with torch.no_grad():
        infer = fn(*(a[k] for k in names))
    for x, y in zip(train, infer, strict=True):
        assert not y.requires_grad
        torch.testing.assert_close(y, x.detach(), atol=0, rtol=0)


def test_buffer_cache_reuse_keeps_results_and_frees():
    """Work buffers come back from a cache: two graphs alive at once must not share them,
    and a later call reusing freed blocks gives the same numbers."""
    a = make_lstm(("ln", "peep", "proj"), T=40, B=16, H=64, P=32, dtype=torch.float32)
    first = _run_and_grads(fused.lstm_direction, a, LSTM_ARGS)  # blocks freed after backward
    outs1 = fused.lstm_direction(*(a[k] for k in LSTM_ARGS))
    outs2 = fused.lstm_direction(*(a[k] for k in LSTM_ARGS))  # both graphs alive
    g1 = torch.autograd.grad(outs1[0].sum(), a["w_hh"])[0]
    g2 = torch.autograd.grad(outs2[0].sum(), a["w_hh"])[0]
    torch.testing.assert_close(g1, g2, atol=0, rtol=0)
    again = _run_and_grads(fused.lstm_direction, a, LSTM_ARGS)
    for x, y in zip(first[0], again[0], strict=True):
        torch.testing.assert_close(x, y, atol=0, rtol=0)
    for k in first[1]:
        torch.testing.assert_close(first[1][k], again[1][k], atol=0, rtol=0)
    assert fused.empty_cache() > 0
    assert fused.empty_cache() == 0


def test_unbuildable_source_warns_once_and_reports_unavailable(tmp_path, monkeypatch, capsys):
    """The no-compiler path: available() is False, one warning names the compiler error."""
    bad = tmp_path / "broken.cpp"
    bad.write_text("this is not C++\n")
    monkeypatch.setattr(fused, "_SOURCE", bad)
    monkeypatch.setenv("LSTMKIT_EXT_DIR", str(tmp_path / "ext"))
    saved = dict(fused._state)
    fused._state.update(tried=False, ext=None, error=None)
    try:
        with pytest.warns(RuntimeWarning, match="could not be built") as record:
            assert fused.available() is False
            assert fused.available() is False
        assert sum("could not be built" in str(w.message) for w in record) == 1
        # the build was announced once, before it was tried
        assert capsys.readouterr().err.count(fused.BUILD_NOTICE) == 1
        assert "error:" in fused._state["error"]
        with pytest.raises(RuntimeError, match="unavailable"):
            fused.lstm_direction(
                torch.zeros(2, 1, 4), torch.zeros(1, 1), torch.zeros(1, 1), torch.zeros(4, 1)
            )
    finally:
        fused._state.clear()
        fused._state.update(saved)


def _ref_lstm_gates(a):
    """i, f, g, o, c_t of the reference loop, recomputed step by step (float64)."""
    a = {k: (v.detach() if isinstance(v, torch.Tensor) else v) for k, v in _as64(a).items()}
    steps = a["xw"].shape[0]
    outs = []
    h, c = a["h0"], a["c0"]
    for t in range(steps):
        # one step of the reference with T=1, reading its gates from the definition
        hd = h * a["rd"] if a["rd"] is not None else h
        ah = hd @ a["w_hh"].t()
        ah = _ln(ah, a["lnw"], a["b_hh"]) if a["lnw"] is not None else ah + a["b_hh"]
        zi, zf, zg, zo = (a["xw"][t] + ah).chunk(4, -1)
        pp = a["peephole"]
        i = torch.sigmoid(zi + (pp[0] * c if pp is not None else 0))
        f = torch.sigmoid(zf + (pp[1] * c if pp is not None else 0))
        g = torch.tanh(zg)
        ct = f * c + i * g
        o = torch.sigmoid(zo + (pp[2] * ct if pp is not None else 0))
        sl = {
            k: (v[t : t + 1] if k in ("xw", "zh", "zc") and v is not None else v)
            for k, v in a.items()
        }
        sl["h0"], sl["c0"], sl["lengths"] = h, c, None
        _, h1, c1 = ref_lstm(*(sl[k] for k in LSTM_ARGS))
        m = (t < a["lengths"]).unsqueeze(1).double() if a["lengths"] is not None else 1.0
        outs.append([v * m for v in (i, f, g, o, c1)])
        h = h1 if a["lengths"] is None else torch.where(m > 0, h1, h)
        c = c1 if a["lengths"] is None else torch.where(m > 0, c1, c)
    return [torch.stack(x) for x in zip(*outs, strict=True)]


def test_lstm_return_gates_match_the_definition():
    a = make_lstm(("ln", "peep", "rd", "zone"), lengths=[5, 2, 1, 4])
    *_, gates = fused.lstm_direction(*(a[k] for k in LSTM_ARGS), return_gates=True)
    assert type(gates).__name__ == "LSTMGates"
    for got, want in zip(gates, _ref_lstm_gates(a), strict=True):
        assert not got.requires_grad
        torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10)


def test_gru_return_gates_under_no_grad():
    a = make_gru(("ln", "rd"), lengths=[5, 2, 1, 4])
    with torch.no_grad():
        out, _, gates = fused.gru_direction(*(a[k] for k in GRU_ARGS), return_gates=True)
    torch.testing.assert_close(gates.hidden, out, atol=0, rtol=0)
    # r, z, n at step 0 from the definition (h0 masked by rd, layer norm of the product)
    x = a["xw"][0].detach()
    ah = _ln(
        (a["h0"] * a["rd"]).detach() @ a["w_hh"].detach().t(), a["lnw"].detach(), a["b_hh"].detach()
    )
    r = torch.sigmoid(x[:, :6] + ah[:, :6])
    z = torch.sigmoid(x[:, 6:12] + ah[:, 6:12])
    n = torch.tanh(x[:, 12:] + r * ah[:, 12:])
    for got, want in ((gates.reset, r), (gates.update, z), (gates.candidate, n)):
        torch.testing.assert_close(got[0], want, atol=1e-12, rtol=1e-12)
    assert torch.all(gates.reset[2:, 2] == 0)  # row 2 has length 1


# ---------------------------------------------------- the layers on the real kernel
LAYER_CASES = [
    ("LSTM", {}),
    (
        "LSTM",
        {
            "layer_norm": True,
            "peepholes": True,
            "zoneout": (0.1, 0.2),
            "recurrent_dropout": 0.2,
            "dropconnect": 0.1,
            "proj_size": 3,
        },
    ),
    ("GRU", {"layer_norm": True, "zoneout": 0.1, "recurrent_dropout": 0.2}),
]


@pytest.mark.parametrize(("mode", "options"), LAYER_CASES)
@pytest.mark.parametrize("training", [True, False])
def test_fused_layer_matches_reference_layer(mode, options, training):
    """lstmkit.nn.LSTM/GRU(backend="fused") on the compiled kernel vs the reference loop:
    2 layers, both directions, lengths, initial states, same seed (same masks); outputs,
    final states and every gradient in float64, and the gates return_gates gives."""
    import lstmkit.nn as lnn

    cls = lnn.LSTM if mode == "LSTM" else lnn.GRU
    cfg = {"num_layers": 2, "bidirectional": True, "batch_first": True, **options}
    ref = cls(3, 5, backend="reference", **cfg).double().train(training)
    fus = cls(3, 5, backend="fused", **cfg).double().train(training)
    fus.load_state_dict(ref.state_dict())
    assert fus._pick_backend(False) == "fused"
    x = torch.randn(4, 6, 3, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([6, 2, 5, 1])
    results = []
    for layer in (ref, fus):
        torch.manual_seed(3)
        out, state, gates = layer(x, lengths=lengths, return_gates=True)
        states = list(state) if isinstance(state, tuple) else [state]
        gen = torch.Generator().manual_seed(1)
        loss = sum((t * torch.randn(t.shape, generator=gen, dtype=t.dtype)).sum()
                   for t in [out, *states])  # fmt: skip
        grads = torch.autograd.grad(loss, [*layer.parameters(), x])
        flat_gates = [g for lay in gates for d in lay for g in d]
        results.append(([out, *states], grads, flat_gates))
    for a, b in zip(*(r[0] + list(r[1]) for r in results), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    for a, b in zip(results[0][2], results[1][2], strict=True):
        assert not b.requires_grad
        torch.testing.assert_close(a.detach(), b, rtol=1e-9, atol=1e-9)


def test_auto_picks_the_kernel_for_variants():
    import lstmkit.nn as lnn

    assert lnn.LSTM(2, 3, layer_norm=True)._pick_backend(False) == "fused"
    assert lnn.GRU(2, 3, recurrent_dropout=0.2)._pick_backend(False) == "fused"
    assert lnn.LSTM(2, 3)._pick_backend(False) == "native"


# ------------------------------------------------ the fallback products (any CPU)
@pytest.mark.parametrize("case", ["plain", "proj", "ln", "rd", "zone", "all", "all_noproj"])
def test_lstm_fallback_products_match_reference(cpu_fallback, case):
    """Without oneDNN products (ATen's mm and our own product) float32 and float64 agree
    with the float64 loop, outputs and every gradient."""
    assert fused.products() == ()
    P = 4 if "proj" in LSTM_CASES[case] else None
    compare("lstm", make_lstm(LSTM_CASES[case], P=P, dtype=torch.float32), 1e-5)
    compare("lstm", make_lstm(LSTM_CASES[case], P=P, dtype=torch.float64), 1e-10)


@pytest.mark.parametrize("case", ["plain", "ln", "rd", "all"])
def test_gru_fallback_products_match_reference(cpu_fallback, case):
    compare("gru", make_gru(GRU_CASES[case], dtype=torch.float32), 1e-5)


def test_products_follow_the_cpu_check(cpu_fallback):
    """ATen's oneDNN matmul entry only where torch says oneDNN's bf16 path runs (ATen
    raises elsewhere, float32 included); nothing of oneDNN under the fallback switch."""
    assert fused.products() == ()
    os.environ.pop("LSTMKIT_CPU_FALLBACK")
    caps = cpu.refresh()
    used = fused.products()
    assert ("dnnl_matmul" in used) == (
        torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    )
    assert ("dnnl_matmul" in used) == caps.dnnl_matmul
    assert ("dnnl_packed" in used) == (caps.dnnl_packed and torch.backends.mkldnn.is_available())
    # the products in use give the same layer as the fallback products
    a = make_lstm(LSTM_CASES["all_noproj"], H=8, B=5, dtype=torch.float32)
    native_out = fused.lstm_direction(*(a[k] for k in LSTM_ARGS))
    os.environ["LSTMKIT_CPU_FALLBACK"] = "1"
    cpu.refresh()
    assert fused.products() == ()
    fallback_out = fused.lstm_direction(*(a[k] for k in LSTM_ARGS))
    for x, y in zip(native_out, fallback_out, strict=True):
        torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-5)


def test_bf16_autocast_without_native_bf16_computes_in_float32(cpu_fallback):
    """Under a bf16 autocast the kernel computes in float32 (the products bf16 would take
    are many times slower there), with one warning."""
    a = make_lstm(("ln", "peep", "rd"), H=8, dtype=torch.float32, lengths=[5, 3, 1, 5])
    want = fused.lstm_direction(*(a[k] for k in LSTM_ARGS))
    warns = pytest.warns(RuntimeWarning, match="computes in float32")
    with warns as record, torch.autocast("cpu", dtype=torch.bfloat16):
        got = fused.lstm_direction(*(a[k] for k in LSTM_ARGS))
        again = fused.gru_direction(*(make_gru(("ln",), dtype=torch.float32)[k] for k in GRU_ARGS))
    assert sum("computes in float32" in str(w.message) for w in record) == 1
    assert again[0].dtype == torch.float32
    for x, y in zip(got, want, strict=True):
        assert x.dtype == torch.float32
        torch.testing.assert_close(x, y, atol=0, rtol=0)


def test_a_first_forward_under_inference_mode_leaves_training_possible():
    """A fresh process whose first fused forward runs under torch.inference_mode() (an
    export's reference check does that) must still train afterwards: the kernel module's
    placeholder for unused saved buffers used to be created there as an inference tensor,
    and every later backward failed ("Inference tensors cannot be saved for backward")."""
    import subprocess
    import sys
    import textwrap

    if not fused.available():
        pytest.skip("the fused kernel is unavailable here")
    script = textwrap.dedent(
        """
        import sys, torch
        assert "lstmkit.nn.fused" not in sys.modules
        from lstmkit.nn import LSTM
        m = LSTM(3, 8, num_layers=2, batch_first=True, layer_norm=True,
                 recurrent_dropout=0.3, zoneout=0.1)
        x = torch.randn(4, 12, 3)
        with torch.inference_mode():
            m.eval()
            m(x)
        assert "lstmkit.nn.fused" in sys.modules  # imported under inference mode
        m.train()
        out, _ = m(x)
        out.sum().backward()
        assert all(p.grad is not None for p in m.parameters())
        print("trained")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 and "trained" in done.stdout, done.stderr[-2000:]
