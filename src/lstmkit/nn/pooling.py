"""Sequence pooling: turn ``(batch, time, features)`` into ``(batch, features)``.

Seed 001 §4 lists the ways to summarise an LSTM's outputs for a many-to-one
task: the last step, the mean or the max over time, or an attention-weighted
sum. Every pool here takes optional ``lengths`` for right-padded batches and
ignores the padded steps exactly (they get no weight, never win a max and
never count in a mean).
"""

import torch
from torch import Tensor, nn

POOLS = ("last", "mean", "max", "attention")


def lengths_to_mask(lengths: Tensor | None, batch: int, time: int, device=None) -> Tensor:
    """Boolean mask ``(batch, time)``, True on real steps (all True without lengths)."""
    steps = torch.arange(time, device=device)
    if lengths is None:
        return torch.ones(batch, time, dtype=torch.bool, device=device)
    lengths = torch.as_tensor(lengths, device=device)
    if lengths.shape != (batch,):
        raise ValueError(f"expected lengths of shape ({batch},), got {tuple(lengths.shape)}")
    if int(lengths.min()) < 1 or int(lengths.max()) > time:
        raise ValueError(f"every length must be between 1 and {time}, got {lengths.tolist()}")
    return steps.unsqueeze(0) < lengths.unsqueeze(1)


def _check(x: Tensor) -> None:
    if x.dim() != 3:
        raise ValueError(f"pooling expects (batch, time, features), got {tuple(x.shape)}")


class LastPool(nn.Module):
    """Output at each sequence's last real step.

    With ``bidirectional=True`` the features are taken as two halves
    ``[forward, backward]``: the forward half is read at the last real step
    and the backward half at step 0, where the backward direction has read the
    whole sequence (the same values as ``h_n`` of a one-layer bidirectional
    LSTM).
    """

    def __init__(self, bidirectional: bool = False) -> None:
        super().__init__()
        self.bidirectional = bidirectional

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        _check(x)
        batch, time, features = x.shape
        if lengths is None:
            last = x[:, -1]
        else:
            lengths_to_mask(lengths, batch, time)  # validates
            idx = (torch.as_tensor(lengths, device=x.device) - 1).view(batch, 1, 1)
            last = x.gather(1, idx.expand(batch, 1, features)).squeeze(1)
        if not self.bidirectional:
            return last
        half = features // 2
        return torch.cat([last[:, :half], x[:, 0, half:]], dim=-1)


class MeanPool(nn.Module):
    """Mean over the real steps."""

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        _check(x)
        if lengths is None:
            return x.mean(dim=1)
        mask = lengths_to_mask(lengths, x.shape[0], x.shape[1], x.device).unsqueeze(-1)
        total = torch.where(mask, x, torch.zeros_like(x)).sum(dim=1)
        return total / mask.sum(dim=1).to(x.dtype)


class MaxPool(nn.Module):
    """Element-wise maximum over the real steps."""

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        _check(x)
        if lengths is None:
            return x.amax(dim=1)
        mask = lengths_to_mask(lengths, x.shape[0], x.shape[1], x.device).unsqueeze(-1)
        return x.masked_fill(~mask, float("-inf")).amax(dim=1)


class AttentionPool(nn.Module):
    """Additive attention pooling: ``a = softmax_t(v · tanh(W x_t + b))``, ``sum_t a_t x_t``.

    Args:
        features: size of each step's vector.
        attention_size: width of the scoring layer (default: ``features``).

    ``forward(x, lengths=None, return_weights=False)`` returns the pooled
    ``(batch, features)``, and the weights ``(batch, time)`` (exactly 0 on
    padded steps, summing to 1) when ``return_weights``.
    """

    def __init__(self, features: int, attention_size: int | None = None) -> None:
        super().__init__()
        self.proj = nn.Linear(features, attention_size or features)
        self.score = nn.Linear(attention_size or features, 1, bias=False)

    def forward(
        self, x: Tensor, lengths: Tensor | None = None, return_weights: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        _check(x)
        scores = self.score(torch.tanh(self.proj(x))).squeeze(-1)
        mask = lengths_to_mask(lengths, x.shape[0], x.shape[1], x.device)
        weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=1)
        pooled = torch.bmm(weights.unsqueeze(1), x).squeeze(1)
        return (pooled, weights) if return_weights else pooled


def make_pool(name: str, features: int, bidirectional: bool = False) -> nn.Module:
    """Build a pooling module by name: ``"last"``, ``"mean"``, ``"max"`` or ``"attention"``."""
    if name == "last":
        return LastPool(bidirectional)
    if name == "mean":
        return MeanPool()
    if name == "max":
        return MaxPool()
    if name == "attention":
        return AttentionPool(features)
    raise ValueError(f"unknown pooling {name!r}; choose one of {', '.join(POOLS)}")
