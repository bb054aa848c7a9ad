"""lstmkit: LSTM sequence models built from the gate equations.

- ``lstmkit.nn``: the layers (LSTM, GRU, cells, pooling), drop-in compatible
  with ``torch.nn.LSTM`` / ``torch.nn.GRU``.
- ``lstmkit.Forecaster``: time-series forecasting (``fit`` / ``predict``).
- ``lstmkit.TextClassifier``: text classification (``fit`` / ``predict``).

The task classes are imported lazily so that ``import lstmkit.nn`` stays light.
"""

import os
from importlib import import_module
from typing import Any

# Small recurrent models run many short OpenMP regions; when the cores are shared,
# busy-waiting OpenMP threads slow training down up to ~100x (measured on the 2-core
# dev machine). torch reads this at import, so it is set before torch loads (a script
# that imports torch first keeps libgomp's spinning default); a value the user set wins.
# Passive waiting makes each region wake its threads, so a small LSTM or GRU trains on
# one thread (`lstmkit.training.threads`).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

_LAZY = {
    "Forecaster": "lstmkit.tasks.forecasting",
    "TextClassifier": "lstmkit.tasks.text_classification",
}

__all__ = ["Forecaster", "TextClassifier", "__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lstmkit' has no attribute {name!r}")
