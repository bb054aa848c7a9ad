"""Pooling over time honours padding: property tests against per-sequence math."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lstmkit.nn as lnn


@st.composite
def padded_batches(draw):
    batch = draw(st.integers(1, 5))
    time = draw(st.integers(1, 7))
    features = draw(st.integers(1, 4))
    lengths = draw(st.lists(st.integers(1, time), min_size=batch, max_size=batch))
    seed = draw(st.integers(0, 2**16))
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, time, features, generator=gen, dtype=torch.float64)
    return x, torch.tensor(lengths)


def with_garbage_padding(x, lengths):
    noisy = x.clone()
    for b, n in enumerate(lengths.tolist()):
        noisy[b, n:] = 1e6
    return noisy


@settings(max_examples=40, deadline=None)
@given(padded_batches())
def test_mean_max_last_ignore_padding(batch):
    x, lengths = batch
    noisy = with_garbage_padding(x, lengths)
    for b, n in enumerate(lengths.tolist()):
        real = x[b, :n]
        torch.testing.assert_close(lnn.MeanPool()(noisy, lengths)[b], real.mean(0))
        torch.testing.assert_close(lnn.MaxPool()(noisy, lengths)[b], real.max(0).values)
        torch.testing.assert_close(lnn.LastPool()(noisy, lengths)[b], real[-1])


@settings(max_examples=30, deadline=None)
@given(padded_batches())
def test_attention_weights_zero_on_padding(batch):
    x, lengths = batch
    torch.manual_seed(0)
    pool = lnn.AttentionPool(x.shape[-1]).double()
    pooled, w = pool(with_garbage_padding(x, lengths), lengths, return_weights=True)
    torch.testing.assert_close(w.sum(1), torch.ones(len(lengths), dtype=torch.float64))
    for b, n in enumerate(lengths.tolist()):
        assert torch.all(w[b, n:] == 0)
        alone, w_alone = pool(x[b : b + 1, :n], return_weights=True)
        torch.testing.assert_close(pooled[b], alone[0])
        torch.testing.assert_close(w[b, :n], w_alone[0])


def test_bidirectional_last_pool_equals_h_n():
    torch.manual_seed(1)
    lstm = lnn.LSTM(3, 4, bidirectional=True, batch_first=True)
    x, lengths = torch.randn(3, 6, 3), torch.tensor([6, 2, 4])
    out, (h_n, _) = lstm(x, lengths=lengths)
    pooled = lnn.LastPool(bidirectional=True)(out, lengths)
    torch.testing.assert_close(pooled, torch.cat([h_n[0], h_n[1]], dim=-1))


def test_no_lengths_means_full_sequences():
    x = torch.randn(2, 5, 3)
    torch.testing.assert_close(lnn.MeanPool()(x), x.mean(1))
    torch.testing.assert_close(lnn.MaxPool()(x), x.amax(1))
    torch.testing.assert_close(lnn.LastPool()(x), x[:, -1])


def test_make_pool_and_errors():
    assert isinstance(lnn.make_pool("attention", 4), lnn.AttentionPool)
    assert isinstance(lnn.make_pool("last", 4, bidirectional=True), lnn.LastPool)
    with pytest.raises(ValueError, match="unknown pooling"):
        lnn.make_pool("median", 4)
    with pytest.raises(ValueError, match=r"\(batch, time, features\)"):
        lnn.MeanPool()(torch.randn(3, 4))
    with pytest.raises(ValueError, match="between 1 and 4"):
        lnn.MaxPool()(torch.randn(2, 4, 3), torch.tensor([0, 2]))
