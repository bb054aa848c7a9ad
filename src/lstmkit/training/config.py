"""Deprecated: the training settings are `lstmkit.training.settings` (``settings.py`` in
every package). This module re-exports them for one release, with a `FutureWarning`."""

import warnings

from lstmkit.training.settings import (  # noqa: F401
    BF16_PRECISIONS,
    LOGGERS,
    OPTIMIZERS,
    PRECISIONS,
    TrainConfig,
    build_optimizer,
    require_precision_supported,
)

warnings.warn(
    "lstmkit.training.config is deprecated; import from lstmkit.training.settings",
    FutureWarning,
    stacklevel=2,
)
