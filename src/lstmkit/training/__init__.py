"""The one Lightning-based trainer shared by every lstmkit task.

`LstmkitModule` is the base LightningModule of the tasks (optimiser, lr decay,
metric logging). `fit` builds a Lightning ``Trainer`` from a `TrainConfig` (Adam/AdamW/RMSprop,
gradient clipping, early stopping on validation loss, best-weights restore,
progress bar, seeding, precision, loggers, devices/strategy/num_nodes for DDP,
fingerprinted resume from ``last.ckpt``) and returns the per-epoch history as
a `FitResult`.
"""

from lstmkit.training.module import LstmkitModule
from lstmkit.training.trainer import (
    FitResult,
    TrainConfig,
    build_optimizer,
    check_checkpoint,
    check_checkpoint_dir,
    check_diverged,
    fit,
    require_precision_supported,
    run_fingerprint,
)

__all__ = [
    "FitResult",
    "LstmkitModule",
    "TrainConfig",
    "build_optimizer",
    "check_checkpoint",
    "check_checkpoint_dir",
    "check_diverged",
    "fit",
    "require_precision_supported",
    "run_fingerprint",
]
