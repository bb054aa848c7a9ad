"""Cells against torch.nn.LSTMCell / GRUCell, hand-written float64 math and gradcheck."""

import pytest
import torch

import lstmkit.nn as lnn
from lstmkit.nn import backends


def manual_lstm_step(x, h, c, cell):
    """The seed equations written out gate by gate, in float64."""
    w_ih, w_hh = cell.weight_ih.double(), cell.weight_hh.double()
    b = cell.bias_ih.double() + cell.bias_hh.double()
    hs = cell.hidden_size
    rows = {name: slice(k * hs, (k + 1) * hs) for k, name in enumerate("ifgo")}

    def pre(gate):
        r = rows[gate]
        return x @ w_ih[r].T + h @ w_hh[r].T + b[r]

    i, f, o = (torch.sigmoid(pre(g)) for g in "ifo")
    g = torch.tanh(pre("g"))
    c_new = f * c + i * g
    return o * torch.tanh(c_new), c_new


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("unbatched", [True, False])
def test_lstm_cell_matches_torch(bias, unbatched):
    torch.manual_seed(0)
    ref = torch.nn.LSTMCell(4, 6, bias=bias)
    ours = lnn.LSTMCell(4, 6, bias=bias)
    ours.load_state_dict(ref.state_dict())
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(4) if unbatched else torch.randn(3, 4)
    hx = (torch.randn(*x.shape[:-1], 6), torch.randn(*x.shape[:-1], 6))
    for state in (None, hx):
        for a, b in zip(ours(x, state), ref(x, state), strict=True):
            assert a.shape == b.shape
            torch.testing.assert_close(a, b)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("unbatched", [True, False])
def test_gru_cell_matches_torch(bias, unbatched):
    torch.manual_seed(1)
    ref = torch.nn.GRUCell(4, 6, bias=bias)
    ours = lnn.GRUCell(4, 6, bias=bias)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(4) if unbatched else torch.randn(3, 4)
    h = torch.randn(*x.shape[:-1], 6)
    for state in (None, h):
        torch.testing.assert_close(ours(x, state), ref(x, state))


def test_lstm_cell_matches_the_written_out_equations():
    torch.manual_seed(2)
    cell = lnn.LSTMCell(3, 5).double()
    x, h, c = torch.randn(2, 3).double(), torch.randn(2, 5).double(), torch.randn(2, 5).double()
    h1, c1 = cell(x, (h, c))
    h_ref, c_ref = manual_lstm_step(x, h, c, cell)
    torch.testing.assert_close(h1, h_ref)
    torch.testing.assert_close(c1, c_ref)


def test_gru_follows_pytorch_convention():
    """h_t = (1 - z) * n + z * h_{t-1}: with z saturated at 1 the state is kept."""
    cell = lnn.GRUCell(2, 3).double()
    with torch.no_grad():
        cell.bias_ih[3:6] = 50.0  # update gate z -> 1
    h = torch.randn(4, 3).double()
    torch.testing.assert_close(cell(torch.randn(4, 2).double(), h), h, atol=1e-12, rtol=0)


def test_cell_shape_errors():
    cell = lnn.LSTMCell(3, 4)
    with pytest.raises(ValueError, match="3 features"):
        cell(torch.randn(2, 5))
    with pytest.raises(ValueError, match=r"h of shape \(2, 4\)"):
        cell(torch.randn(2, 3), (torch.zeros(3, 4), torch.zeros(2, 4)))
    with pytest.raises(ValueError, match="expected input of shape"):
        cell(torch.randn(1, 2, 3))


def test_gradcheck_cells_float64():
    torch.manual_seed(3)
    lstm, gru = lnn.LSTMCell(3, 2).double(), lnn.GRUCell(3, 2).double()
    x = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    h = torch.randn(2, 2, dtype=torch.float64, requires_grad=True)
    c = torch.randn(2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, h, c: lstm(x, (h, c)), (x, h, c))
    assert torch.autograd.gradcheck(lambda x, h: gru(x, h), (x, h))
    w = lstm.weight_hh.detach().clone().requires_grad_(True)
    xw = torch.randn(2, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda xw, w: lnn.lstm_step(xw, h, c, w, None)[:2], (xw, w))


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_gradcheck_reference_layer_float64(mode):
    """Every parameter and the input, through lengths, two layers and both directions."""
    torch.manual_seed(4)
    cls = lnn.LSTM if mode == "LSTM" else lnn.GRU
    layer = cls(2, 2, num_layers=2, bidirectional=True, backend="reference").double()
    params = [p.detach().clone().requires_grad_(True) for p in layer.parameters()]
    x = torch.randn(4, 2, 2, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([4, 2])
    n_states = 2 if mode == "LSTM" else 1
    hx = tuple(torch.zeros(4, 2, 2, dtype=torch.float64) for _ in range(n_states))

    def run(x, *flat):
        it = iter(flat)
        weights = [[{base: next(it) for base in d} for d in row] for row in layer._names]
        out, finals, _ = backends.reference(layer.cell, x, hx, weights, lengths=lengths)
        return (out, *finals)

    assert torch.autograd.gradcheck(run, (x, *params))
