"""The one Lightning-based trainer shared by every lstmkit task.

`LstmkitModule` is the base LightningModule of the tasks (optimiser, lr decay,
metric logging). `fit` builds a Lightning ``Trainer`` from a `TrainConfig` (Adam/AdamW/RMSprop,
gradient clipping, early stopping on validation loss, best-weights restore or the last
epoch's weights, progress, seeding, precision, loggers, devices/strategy/num_nodes for DDP,
fingerprinted resume from ``last.ckpt``) and returns the per-epoch history as
a `FitResult`.

Files, each importing only those above it: ``settings.py`` (`TrainConfig`, the optimiser,
the precision check; torch-free), ``checkpoints.py`` (when and how ``last.ckpt`` is
written, the run fingerprint), ``module.py`` (`LstmkitModule`), ``progress.py``
(progress lines for log files), ``threads.py`` (the CPU threads of the training steps)
and ``trainer.py`` (`fit`, `FitResult`).

The names below are imported on first use, so that the settings import without torch.
"""

from importlib import import_module
from typing import Any

_LAZY = {
    "AtomicCheckpointIO": "checkpoints",
    "RunFingerprint": "checkpoints",
    "check_checkpoint": "checkpoints",
    "check_checkpoint_dir": "checkpoints",
    "run_fingerprint": "checkpoints",
    "TrainConfig": "settings",
    "build_optimizer": "settings",
    "require_precision_supported": "settings",
    "LstmkitModule": "module",
    "FitResult": "trainer",
    "check_diverged": "trainer",
    "fit": "trainer",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"lstmkit.training.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'lstmkit.training' has no attribute {name!r}")
