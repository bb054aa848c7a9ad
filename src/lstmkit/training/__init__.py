"""The one Lightning-based trainer shared by every lstmkit task.

`LstmkitModule` is the base LightningModule of the tasks (optimiser, lr decay,
metric logging). `fit` builds a Lightning ``Trainer`` from a `TrainConfig` (Adam/AdamW/RMSprop,
gradient clipping, early stopping on validation loss, best-weights restore,
progress bar, seeding, precision, loggers, devices/strategy/num_nodes for DDP,
fingerprinted resume from ``last.ckpt``) and returns the per-epoch history as
a `FitResult`.

Files, each importing only those above it: ``config.py`` (`TrainConfig`, the optimiser,
the precision check), ``checkpoints.py`` (when and how ``last.ckpt`` is written, the run
fingerprint), ``module.py`` (`LstmkitModule`), ``progress.py`` (progress lines for log
files) and ``trainer.py`` (`fit`).
"""

from lstmkit.training.checkpoints import (
    AtomicCheckpointIO,
    RunFingerprint,
    check_checkpoint,
    check_checkpoint_dir,
    run_fingerprint,
)
from lstmkit.training.config import TrainConfig, build_optimizer, require_precision_supported
from lstmkit.training.module import LstmkitModule
from lstmkit.training.trainer import FitResult, check_diverged, fit

__all__ = [
    "AtomicCheckpointIO",
    "FitResult",
    "LstmkitModule",
    "RunFingerprint",
    "TrainConfig",
    "build_optimizer",
    "check_checkpoint",
    "check_checkpoint_dir",
    "check_diverged",
    "fit",
    "require_precision_supported",
    "run_fingerprint",
]
