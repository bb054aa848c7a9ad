"""lstmkit.nn.LSTM / GRU against torch.nn.LSTM / GRU with copied weights.

Random configurations (layers, directions, batch_first, bias, proj_size,
unbatched input, given initial states, lengths vs PackedSequence) compare
outputs, final states and the gradients of every parameter and of the input,
for both of our backends.
"""

import random

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import lstmkit.nn as lnn
from lstmkit.nn import backends

ATOL = 1e-5


def random_config(seed: int, mode: str) -> dict:
    rng = random.Random(seed)
    hidden = rng.choice([3, 5, 8])
    cfg = {
        "input_size": rng.choice([1, 4, 7]),
        "hidden_size": hidden,
        "num_layers": rng.choice([1, 2, 3]),
        "bias": rng.random() < 0.75,
        "batch_first": rng.random() < 0.5,
        "bidirectional": rng.random() < 0.5,
    }
    if mode == "LSTM" and rng.random() < 0.3:
        cfg["proj_size"] = rng.randint(1, hidden - 1)
    return cfg


def make_pair(mode: str, cfg: dict, backend: str):
    ours_cls, torch_cls = (lnn.LSTM, torch.nn.LSTM) if mode == "LSTM" else (lnn.GRU, torch.nn.GRU)
    ref = torch_cls(**cfg)
    ours = ours_cls(**cfg, backend=backend)
    ours.load_state_dict(ref.state_dict())
    return ours, ref


def initial_state(mode: str, cfg: dict, batch: int | None, gen: torch.Generator):
    rows = cfg["num_layers"] * (2 if cfg["bidirectional"] else 1)
    lead = (rows,) if batch is None else (rows, batch)
    h_size = cfg.get("proj_size", 0) or cfg["hidden_size"]
    h0 = torch.randn(*lead, h_size, generator=gen, requires_grad=True)
    if mode == "GRU":
        return h0
    return (h0, torch.randn(*lead, cfg["hidden_size"], generator=gen, requires_grad=True))


def as_weights(layer, flat):
    """``weights[layer][direction]`` for the backends, from tensors in parameters() order."""
    it = iter(flat)
    return [[{base: next(it) for base in d} for d in row] for row in layer._names]


def states_of(mode, result):
    return list(result[1]) if mode == "LSTM" else [result[1]]


def grads(module, x, outputs):
    """Gradients of a fixed random functional of all outputs w.r.t. params and input."""
    gen = torch.Generator().manual_seed(123)
    loss = sum((o * torch.randn(o.shape, generator=gen)).sum() for o in outputs)
    params = [p for _, p in sorted(module.named_parameters())]
    return torch.autograd.grad(loss, [*params, x])


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
@pytest.mark.parametrize("backend", ["native", "reference"])
@pytest.mark.parametrize("seed", range(12))
def test_matches_torch_on_random_configs(mode, seed, backend):
    cfg = random_config(seed, mode)
    torch.manual_seed(seed)
    ours, ref = make_pair(mode, cfg, backend)
    gen = torch.Generator().manual_seed(seed)
    unbatched = seed % 4 == 3
    batch, time = 3, 6
    if unbatched:
        shape = (time, cfg["input_size"])
    elif cfg["batch_first"]:
        shape = (batch, time, cfg["input_size"])
    else:
        shape = (time, batch, cfg["input_size"])
    x = torch.randn(*shape, generator=gen, requires_grad=True)
    hx = initial_state(mode, cfg, None if unbatched else batch, gen) if seed % 2 else None

    r_ours, r_ref = ours(x, hx), ref(x, hx)
    torch.testing.assert_close(r_ours[0], r_ref[0], atol=ATOL, rtol=1e-4)
    for a, b in zip(states_of(mode, r_ours), states_of(mode, r_ref), strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, atol=ATOL, rtol=1e-4)
    outs_ours = [r_ours[0], *states_of(mode, r_ours)]
    outs_ref = [r_ref[0], *states_of(mode, r_ref)]
    for g1, g2 in zip(grads(ours, x, outs_ours), grads(ref, x, outs_ref), strict=True):
        torch.testing.assert_close(g1, g2, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
@pytest.mark.parametrize("backend", ["native", "reference"])
@pytest.mark.parametrize("seed", range(8))
def test_lengths_and_packed_match_torch_packed(mode, backend, seed):
    cfg = random_config(100 + seed, mode)
    torch.manual_seed(seed)
    ours, ref = make_pair(mode, cfg, backend)
    gen = torch.Generator().manual_seed(seed)
    batch, time, bf = 4, 7, cfg["batch_first"]
    lengths = torch.tensor([5, 7, 1, 3])
    shape = (batch, time, cfg["input_size"]) if bf else (time, batch, cfg["input_size"])
    x = torch.randn(*shape, generator=gen, requires_grad=True)
    hx = initial_state(mode, cfg, batch, gen) if seed % 2 else None

    packed = pack_padded_sequence(x, lengths, batch_first=bf, enforce_sorted=False)
    r_ref = ref(packed, hx)
    out_ref, _ = pad_packed_sequence(r_ref[0], batch_first=bf, total_length=time)

    # lengths= on the padded tensor
    r_len = ours(x, hx, lengths=lengths)
    torch.testing.assert_close(r_len[0], out_ref, atol=ATOL, rtol=1e-4)
    for a, b in zip(states_of(mode, r_len), states_of(mode, r_ref), strict=True):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=1e-4)
    g_ours = grads(ours, x, [r_len[0], *states_of(mode, r_len)])
    g_ref = grads(ref, x, [out_ref, *states_of(mode, r_ref)])
    for g1, g2 in zip(g_ours, g_ref, strict=True):
        torch.testing.assert_close(g1, g2, atol=1e-4, rtol=1e-4)

    # PackedSequence in, PackedSequence out
    r_pk = ours(packed, hx)
    assert torch.equal(r_pk[0].batch_sizes, r_ref[0].batch_sizes)
    torch.testing.assert_close(r_pk[0].data, r_ref[0].data, atol=ATOL, rtol=1e-4)
    for a, b in zip(states_of(mode, r_pk), states_of(mode, r_ref), strict=True):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=1e-4)


def test_padded_positions_are_zero_and_padding_values_do_not_matter():
    torch.manual_seed(0)
    lstm = lnn.LSTM(3, 4, 2, batch_first=True, bidirectional=True, backend="reference")
    lengths = torch.tensor([2, 5])
    x = torch.randn(2, 5, 3)
    noisy = x.clone()
    noisy[0, 2:] = 1e3 * torch.randn(3, 3)
    out1, (h1, c1) = lstm(x, lengths=lengths)
    out2, (h2, c2) = lstm(noisy, lengths=lengths)
    assert torch.all(out1[0, 2:] == 0)
    torch.testing.assert_close(out1, out2)
    torch.testing.assert_close(h1, h2)
    torch.testing.assert_close(c1, c2)
    # each sequence alone, unpadded, gives the same numbers
    out_a, (h_a, _) = lstm(x[:1, :2])
    torch.testing.assert_close(out1[:1, :2], out_a)
    torch.testing.assert_close(h1[:, :1], h_a)


def test_gates_reconstruct_the_states():
    """The returned gates satisfy the seed equations and give back h and c."""
    torch.manual_seed(1)
    lstm = lnn.LSTM(2, 3, 1, batch_first=True)
    x = torch.randn(2, 4, 2)
    out, (_h_n, c_n), gates = lstm(x, return_gates=True)
    g = gates[0][0]
    assert g.input.shape == (2, 4, 3)
    c_prev = torch.zeros(2, 3)
    for t in range(4):
        c_t = g.forget[:, t] * c_prev + g.input[:, t] * g.candidate[:, t]
        torch.testing.assert_close(g.cell[:, t], c_t)
        torch.testing.assert_close(out[:, t], g.output[:, t] * torch.tanh(c_t))
        c_prev = c_t
    torch.testing.assert_close(c_n[0], g.cell[:, -1])
    for name in ("input", "forget", "output"):
        v = getattr(g, name)
        assert torch.all((v > 0) & (v < 1))


def test_gru_gates_and_padding_in_gate_trace():
    torch.manual_seed(2)
    gru = lnn.GRU(2, 3, 2, bidirectional=True)
    x = torch.randn(5, 2, 2)
    out, _h_n, gates = gru(x, lengths=torch.tensor([5, 3]), return_gates=True)
    assert len(gates) == 2 and len(gates[0]) == 2
    g = gates[1][0]
    assert g.hidden.shape == (5, 2, 3)
    torch.testing.assert_close(g.hidden, out[..., :3])
    assert torch.all(g.update[3:, 1] == 0)


def test_return_gates_needs_reference_backend():
    lstm = lnn.LSTM(2, 3, backend="native")
    with pytest.raises(ValueError, match="reference or fused backend"):
        lstm(torch.randn(4, 1, 2), return_gates=True)


def test_dropout_only_in_training():
    torch.manual_seed(3)
    for backend in ("native", "reference"):
        lstm = lnn.LSTM(4, 8, 3, dropout=0.5, backend=backend)
        plain = lnn.LSTM(4, 8, 3, dropout=0.0, backend=backend)
        plain.load_state_dict(lstm.state_dict())
        x = torch.randn(6, 2, 4)
        lstm.eval()
        torch.testing.assert_close(lstm(x)[0], plain(x)[0])
        torch.testing.assert_close(lstm(x)[0], lstm(x)[0])
        lstm.train()
        a, b = lstm(x)[0], lstm(x)[0]
        assert not torch.allclose(a, b)
        assert not torch.allclose(a, plain(x)[0])


def test_single_layer_dropout_has_no_effect():
    """Dropout sits between layers, never after the last, as in torch."""
    torch.manual_seed(4)
    lstm = lnn.LSTM(3, 4, 1, dropout=0.9, backend="reference")
    x = torch.randn(5, 2, 3)
    torch.testing.assert_close(lstm(x)[0], lstm(x)[0])


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_state_dict_round_trip_both_ways(mode):
    cfg = {"input_size": 3, "hidden_size": 4, "num_layers": 2, "bidirectional": True}
    if mode == "LSTM":
        cfg["proj_size"] = 2
    ours_cls, torch_cls = (lnn.LSTM, torch.nn.LSTM) if mode == "LSTM" else (lnn.GRU, torch.nn.GRU)
    ours, ref = ours_cls(**cfg), torch_cls(**cfg)
    assert list(ours.state_dict()) == list(ref.state_dict())
    for k, v in ours.state_dict().items():
        assert v.shape == ref.state_dict()[k].shape, k
    ref.load_state_dict(ours.state_dict())
    back = ours_cls(**cfg)
    back.load_state_dict(ref.state_dict())
    for k, v in back.state_dict().items():
        assert torch.equal(v, ours.state_dict()[k])
    rebuilt = ours_cls(**ours.get_config())
    rebuilt.load_state_dict(ours.state_dict())
    x = torch.randn(5, 2, 3)
    torch.testing.assert_close(rebuilt(x)[0], ours(x)[0])


def test_keras_init_preset():
    torch.manual_seed(5)
    lstm = lnn.LSTM(6, 4, 2, init="keras")
    h = 4
    b_ih = lstm.bias_ih_l0
    assert torch.all(b_ih[h : 2 * h] == 1) and torch.all(b_ih[:h] == 0)
    assert torch.all(lstm.bias_hh_l1 == 0)
    for block in lstm.weight_hh_l0.detach().split(h):
        torch.testing.assert_close(block @ block.T, torch.eye(h), atol=1e-5, rtol=0)
    bound = (6 / (6 + 4 * h)) ** 0.5
    assert lstm.weight_ih_l0.abs().max() <= bound
    gru = lnn.GRU(3, 4, init="keras")
    assert torch.all(gru.bias_ih_l0 == 0)


def test_torch_default_init_range():
    torch.manual_seed(6)
    lstm = lnn.LSTM(3, 16, 2)
    bound = 16**-0.5
    for p in lstm.parameters():
        assert p.abs().max() <= bound
        assert p.abs().max() > 0.8 * bound


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: m(torch.randn(2, 3, 4, 5)), "expected input of shape"),
        (lambda m: m(torch.randn(4, 2, 7)), "Expected 3, got 7"),
        (lambda m: m(torch.randn(4, 2, 3), lengths=torch.tensor([4, 0])), "between 1 and"),
        (lambda m: m(torch.randn(4, 2, 3), lengths=torch.tensor([5, 2])), "between 1 and"),
        (lambda m: m(torch.randn(4, 2, 3), lengths=torch.tensor([4])), "lengths of shape"),
        (lambda m: m(torch.randn(4, 2, 3), lengths=torch.tensor([4.0, 2.0])), "integers"),
        (
            lambda m: m(torch.randn(4, 2, 3), (torch.zeros(2, 3, 5), torch.zeros(2, 2, 5))),
            r"h_0 of shape \(2, 2, 5\)",
        ),
        (
            lambda m: m(torch.randn(4, 2, 3), (torch.zeros(2, 2, 5), torch.zeros(1, 2, 5))),
            r"c_0 of shape \(2, 2, 5\)",
        ),
        (lambda m: m(torch.randn(4, 2, 3), torch.zeros(2, 2, 5)), "tuple"),
    ],
)
def test_bad_input_messages(call, message):
    lstm = lnn.LSTM(3, 5, 2)
    with pytest.raises(ValueError, match=message):
        call(lstm)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"input_size": 0, "hidden_size": 3}, "input_size"),
        ({"input_size": 2, "hidden_size": 3, "num_layers": 0}, "num_layers"),
        ({"input_size": 2, "hidden_size": 3, "dropout": 1.5}, "dropout"),
        ({"input_size": 2, "hidden_size": 3, "proj_size": 3}, "proj_size"),
        ({"input_size": 2, "hidden_size": 3, "backend": "cuda"}, "backend"),
        ({"input_size": 2, "hidden_size": 3, "init": "xavier"}, "init"),
    ],
)
def test_bad_constructor_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        lnn.LSTM(**kwargs)


def test_auto_backend_choice():
    lstm = lnn.LSTM(2, 3)
    assert lstm._pick_backend(False) == "native"
    assert lstm._pick_backend(True) == "reference"
    assert lnn.LSTM(2, 3, backend="reference")._pick_backend(False) == "reference"


def test_drop_in_inside_a_model():
    """A model written for torch.nn.LSTM runs unchanged with lstmkit.nn.LSTM."""

    class Model(torch.nn.Module):
        def __init__(self, rnn_cls):
            super().__init__()
            self.lstm = rnn_cls(100, 128, batch_first=True)
            self.fc = torch.nn.Linear(128, 5)

        def forward(self, x):
            out, _ = self.lstm(x)
            return self.fc(out.mean(dim=1))

    torch.manual_seed(7)
    theirs = Model(torch.nn.LSTM)
    ours = Model(lnn.LSTM)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(32, 10, 100)
    assert ours(x).shape == (32, 5)
    torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("backend", ["native", "reference"])
def test_full_lengths_equal_no_lengths(backend):
    torch.manual_seed(8)
    lstm = lnn.LSTM(3, 4, 2, bidirectional=True, backend=backend)
    x = torch.randn(5, 3, 3)
    out_a, (h_a, c_a) = lstm(x, lengths=torch.tensor([5, 5, 5]))
    out_b, (h_b, c_b) = lstm(x)
    for a, b in ((out_a, out_b), (h_a, h_b), (c_a, c_b)):
        torch.testing.assert_close(a, b)


def test_reverse_within_lengths_keeps_padding_and_inverts():
    from lstmkit.nn.backends import reverse_within_lengths

    x = torch.arange(8.0).view(4, 2, 1)  # time 4, batch 2
    lengths = torch.tensor([4, 2])
    r = reverse_within_lengths(x, lengths)
    assert r[:, 0, 0].tolist() == [6.0, 4.0, 2.0, 0.0]
    assert r[:, 1, 0].tolist() == [3.0, 1.0, 5.0, 7.0]
    assert torch.equal(reverse_within_lengths(r, lengths), x)


def test_unbatched_input_refuses_lengths():
    with pytest.raises(ValueError, match="needs a batch"):
        lnn.LSTM(3, 4)(torch.randn(5, 3), lengths=torch.tensor([3]))


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
@pytest.mark.parametrize("seed", range(3))
def test_lengths_without_autograd_match_torch(mode, seed):
    """Inference takes another native path (torch's packed kernel); same numbers."""
    cfg = random_config(200 + seed, mode)
    torch.manual_seed(seed)
    ours, ref = make_pair(mode, cfg, "native")
    gen = torch.Generator().manual_seed(seed)
    bf, lengths = cfg["batch_first"], torch.tensor([2, 6, 6, 4])
    x = torch.randn(*((4, 6) if bf else (6, 4)), cfg["input_size"], generator=gen)
    hx = initial_state(mode, cfg, 4, gen) if seed % 2 else None
    with torch.no_grad():
        r_ours = ours(x, hx, lengths=lengths)
        r_ref = ref(pack_padded_sequence(x, lengths, batch_first=bf, enforce_sorted=False), hx)
    out_ref, _ = pad_packed_sequence(r_ref[0], batch_first=bf, total_length=6)
    torch.testing.assert_close(r_ours[0], out_ref)
    for a, b in zip(states_of(mode, r_ours), states_of(mode, r_ref), strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("proj", [0, 2])
def test_gradcheck_native_lengths_float64(proj):
    """Padded-kernel path with lengths (c_n recomputed from outputs): gradcheck in float64."""
    torch.manual_seed(5)
    layer = lnn.LSTM(2, 3, num_layers=2, bidirectional=True, proj_size=proj).double()
    params = [p.detach().clone().requires_grad_(True) for p in layer.parameters()]
    x = torch.randn(5, 3, 2, dtype=torch.float64, requires_grad=True)
    h_size = proj or 3
    h0 = torch.randn(4, 3, h_size, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(4, 3, 3, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([5, 1, 3])

    def run(x, h0, c0, *flat):
        weights = as_weights(layer, flat)
        out, finals, _ = backends.native(layer.cell, x, (h0, c0), weights, lengths=lengths)
        return (out, *finals)

    assert torch.autograd.gradcheck(run, (x, h0, c0, *params))


def test_native_lengths_long_sequences_match_float64_reference():
    """Over hundreds of steps the recomputed c_n stays within float32 rounding of float64."""
    torch.manual_seed(6)
    lstm = lnn.LSTM(8, 16, batch_first=True, bidirectional=True)
    x = torch.randn(6, 400, 8)
    lengths = torch.tensor([400, 399, 250, 17, 1, 333])
    _, (h, c) = lstm(x, lengths=lengths)  # grad mode on: the padded-kernel path
    ref = lnn.LSTM(8, 16, batch_first=True, bidirectional=True, backend="reference").double()
    ref.load_state_dict(lstm.state_dict())
    with torch.no_grad():
        _, (h_ref, c_ref) = ref(x.double(), lengths=lengths)
    torch.testing.assert_close(c.double(), c_ref, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(h.double(), h_ref, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
@pytest.mark.parametrize("lengths", [[3, 3], [2, 4], [1, 6]])
def test_native_lengths_edge_cases_match_reference(mode, lengths):
    """Equal lengths, all shorter than the padding, and one full-length sequence, with autograd."""
    torch.manual_seed(7)
    cls = lnn.LSTM if mode == "LSTM" else lnn.GRU
    native = cls(3, 4, num_layers=2, bidirectional=True, batch_first=True)
    ref = cls(3, 4, num_layers=2, bidirectional=True, batch_first=True, backend="reference")
    ref.load_state_dict(native.state_dict())
    x = torch.randn(2, 6, 3, requires_grad=True)
    lengths = torch.tensor(lengths)
    got, want = native(x, lengths=lengths), ref(x, lengths=lengths)
    torch.testing.assert_close(got[0], want[0], atol=ATOL, rtol=1e-4)
    for a, b in zip(states_of(mode, got), states_of(mode, want), strict=True):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=1e-4)
    for g1, g2 in zip(grads(native, x, [got[0], *states_of(mode, got)]),
                      grads(ref, x, [want[0], *states_of(mode, want)]), strict=True):  # fmt: skip
        torch.testing.assert_close(g1, g2, atol=1e-4, rtol=1e-4)
