"""The one Lightning-based trainer shared by every lstmkit task.

`fit` builds a Lightning ``Trainer`` from a `TrainConfig` (Adam/AdamW/RMSprop,
gradient clipping, early stopping on validation loss, best-weights restore,
progress bar, seeding, devices/strategy/num_nodes for DDP, resume from
``last.ckpt``) and returns the per-epoch history as a `FitResult`.
"""

from lstmkit.training.trainer import FitResult, TrainConfig, build_optimizer, fit

__all__ = ["FitResult", "TrainConfig", "build_optimizer", "fit"]
