"""Seed 001 on lstmkit: a many-to-one LSTM module with mean pooling over time.

The seed builds LSTM(input 100, hidden 128, batch_first) -> mean over the time
steps -> Linear(5) and checks that a batch of shape (32, 10, 100) gives logits
of shape (32, 5). Here the pooling is `lstmkit.nn.make_pool`, so the same module
also runs with last / max / attention pooling and with right-padded batches
(``lengths``), where the padding is ignored exactly.

    python examples/seed_001_mean_pooling.py
    python examples/seed_001_mean_pooling.py --pooling attention
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from lstmkit.nn import LSTM, POOLS, make_pool


class SequenceClassifier(nn.Module):
    """LSTM -> pooling over time -> Linear: (batch, time, input) -> (batch, classes)."""

    def __init__(
        self, input_size: int = 100, hidden_size: int = 128, classes: int = 5, pooling: str = "mean"
    ) -> None:
        super().__init__()
        self.lstm = LSTM(input_size, hidden_size, batch_first=True)
        self.pool = make_pool(pooling, hidden_size)
        self.fc = nn.Linear(hidden_size, classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        out, _ = self.lstm(x, lengths=lengths)  # (batch, time, hidden)
        return self.fc(self.pool(out, lengths))  # (batch, classes)


def main() -> None:
    parser = argparse.ArgumentParser(description="Seed 001: LSTM + pooling, shape check.")
    parser.add_argument("--pooling", choices=POOLS, default="mean")
    parser.add_argument("--quick", action="store_true", help="accepted for symmetry; already fast")
    args = parser.parse_args()

    torch.manual_seed(0)
    model = SequenceClassifier(pooling=args.pooling)
    x = torch.randn(32, 10, 100)
    logits = model(x)
    print(f"input {tuple(x.shape)} -> output {tuple(logits.shape)}")
    assert logits.shape == (32, 5), logits.shape

    # Right-padded batch: sequence 0 has 6 real steps; the 4 padded steps change nothing.
    lengths = torch.full((32,), 10, dtype=torch.int64)
    lengths[0] = 6
    padded = x.clone()
    padded[0, 6:] = 123.0
    with torch.no_grad():
        alone = model(x[:1, :6])
        in_batch = model(padded, lengths)[:1]
    assert torch.allclose(alone, in_batch, atol=1e-5)
    print(f"padding check passed ({args.pooling} pooling): padded batch == unpadded sequence")


if __name__ == "__main__":
    main()
