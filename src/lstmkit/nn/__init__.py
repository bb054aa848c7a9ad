"""lstmkit.nn: LSTM and GRU built from the gate equations, with regularised variants; xLSTM.

- ``cells.py``: the equations (``lstm_step`` / ``gru_step``), the cell specs
  (``LSTMSpec`` / ``GRUSpec``: state, parameters, one step), the mask sampler
  and the ``LSTMCell`` / ``GRUCell`` modules.
- ``layers.py``: ``LSTM`` / ``GRU`` (stacking, directions, lengths, variants,
  backend choice).
- ``backends.py``: the generic reference loop over any cell spec, torch's
  kernel (``native``) and the layer-level driver of our fused kernels
  (``fused``, kernels in ``lstmkit.nn.fused``), all with one signature.
- ``pooling.py``: last / mean / max / attention pooling over time.
- ``xlstm_cells.py`` / ``xlstm_layers.py``: xLSTM's sLSTM and mLSTM (Beck et al. 2024):
  equations, cell specs and cells, and the ``SLSTM`` / ``MLSTM`` layers (sLSTM on the
  fused kernel, mLSTM chunkwise-parallel); ``xlstm_interop.py``: weights to and from the
  reference package ``xlstm`` (optional).

The plain layers and cells are drop-ins for the matching ``torch.nn`` modules;
the variants are keyword options of the same classes::

    lstm = LSTM(32, 64, num_layers=2, layer_norm=True, recurrent_dropout=0.25)
    gru = GRU(32, 64, zoneout=0.1, dropconnect=0.3)
"""

from lstmkit.nn.cells import (
    CellSpec,
    DirectionMasks,
    GRUCell,
    GRUGates,
    GRUSpec,
    LSTMCell,
    LSTMGates,
    LSTMSpec,
    gru_step,
    lstm_step,
    sample_masks,
)
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
from lstmkit.nn.xlstm_cells import (
    MLSTMCell,
    MLSTMGates,
    MLSTMSpec,
    SLSTMCell,
    SLSTMGates,
    SLSTMSpec,
    mlstm_chunkwise,
    mlstm_step,
    slstm_step,
)
from lstmkit.nn.xlstm_layers import MLSTM, SLSTM

__all__ = [
    "GRU",
    "LSTM",
    "MLSTM",
    "POOLS",
    "SLSTM",
    "AttentionPool",
    "CellSpec",
    "DirectionMasks",
    "GRUCell",
    "GRUGates",
    "GRUSpec",
    "LSTMCell",
    "LSTMGates",
    "LSTMSpec",
    "LastPool",
    "MLSTMCell",
    "MLSTMGates",
    "MLSTMSpec",
    "MaxPool",
    "MeanPool",
    "SLSTMCell",
    "SLSTMGates",
    "SLSTMSpec",
    "gru_step",
    "lengths_to_mask",
    "lstm_step",
    "make_pool",
    "mlstm_chunkwise",
    "mlstm_step",
    "sample_masks",
    "slstm_step",
]
