"""lstmkit.nn: LSTM and GRU built from the gate equations.

- ``cells.py``: the equations (one step), ``LSTMCell`` / ``GRUCell``.
- ``layers.py``: ``LSTM`` / ``GRU`` (stacking, directions, lengths, backend choice).
- ``backends.py``: the reference step loop and torch's fused kernel.
- ``pooling.py``: last / mean / max / attention pooling over time.

Everything is a drop-in for the matching ``torch.nn`` module.
"""

from lstmkit.nn.cells import GRUCell, GRUGates, LSTMCell, LSTMGates, gru_step, lstm_step
from lstmkit.nn.layers import GRU, LSTM
from lstmkit.nn.pooling import (
    POOLS,
    AttentionPool,
    LastPool,
    MaxPool,
    MeanPool,
    lengths_to_mask,
    make_pool,
)

__all__ = [
    "GRU",
    "LSTM",
    "POOLS",
    "AttentionPool",
    "GRUCell",
    "GRUGates",
    "LSTMCell",
    "LSTMGates",
    "LastPool",
    "MaxPool",
    "MeanPool",
    "gru_step",
    "lengths_to_mask",
    "lstm_step",
    "make_pool",
]
