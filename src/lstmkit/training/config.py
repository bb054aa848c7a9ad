"""`TrainConfig`: how a task is trained (optimiser, stopping, seeding, precision, devices,
checkpoints, loggers), and what is built from it before any Trainer: the optimiser
(`build_optimizer`) and the check that the machine can train in the precision asked for
(`require_precision_supported`).

Both the trainer (`lstmkit.training.trainer`) and the tasks' LightningModule base
(`lstmkit.training.module`) read it; it imports neither.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from lstmkit.config import check_field_types, dataclass_from_dict
from lstmkit.errors import LstmkitError

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "rmsprop": torch.optim.RMSprop}
PRECISIONS = ("32", "32-true", "64", "64-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true")
BF16_PRECISIONS = ("bf16-mixed", "bf16-true")
LOGGERS = ("csv", "tensorboard")


@dataclass
class TrainConfig:
    """How to train: optimiser, stopping, seeding, hardware. Round-trips through JSON.

    ``checkpoint_dir`` enables resuming: ``last.ckpt`` is written there every
    epoch (and every ``checkpoint_every_n_steps`` steps if set, for long
    epochs) and a later `fit` of the same run with the same directory continues
    from it (see the module docstring). ``precision`` is Lightning's
    (``"32"``, ``"bf16-mixed"``, ``"16-mixed"``, ...). ``logger``: ``None``,
    ``"csv"`` or ``"tensorboard"`` (Lightning's loggers, written under
    ``log_dir``, default ``lightning_logs``). ``lr_decay``: ``"none"`` or
    ``"linear"`` (to 0 over the whole run; `LstmkitModule` applies it).
    """

    max_epochs: int = 100
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"
    gradient_clip_val: float | None = 1.0
    early_stopping_patience: int | None = 10
    seed: int = 0
    accelerator: str = "cpu"
    devices: int | str = 1
    strategy: str = "auto"
    num_nodes: int = 1
    progress_bar: bool = True
    deterministic: bool = True
    checkpoint_dir: str | None = None
    checkpoint_every_n_steps: int | None = None
    precision: str = "32"
    logger: str | None = None
    log_dir: str | None = None
    lr_decay: str = "none"

    def __post_init__(self) -> None:
        if isinstance(self.precision, int) and not isinstance(self.precision, bool):
            self.precision = str(self.precision)
        check_field_types(self, "training")
        if self.optimizer.lower() not in OPTIMIZERS:
            raise LstmkitError(
                f"optimizer must be one of {sorted(OPTIMIZERS)}, got {self.optimizer!r}"
            )
        if self.max_epochs < 1:
            raise LstmkitError(f"max_epochs must be at least 1, got {self.max_epochs}")
        if not self.lr > 0:
            raise LstmkitError(f"lr (learning rate) must be a positive number, got {self.lr}")
        if self.weight_decay < 0:
            raise LstmkitError(f"weight_decay must be 0 or more, got {self.weight_decay}")
        if self.gradient_clip_val is not None and self.gradient_clip_val < 0:
            raise LstmkitError(
                f"gradient_clip_val must be 0 or more (0 or None: no clipping), "
                f"got {self.gradient_clip_val}"
            )
        if self.early_stopping_patience is not None and self.early_stopping_patience < 1:
            raise LstmkitError(
                f"early_stopping_patience must be 1 or more or None, "
                f"got {self.early_stopping_patience}"
            )
        if self.checkpoint_every_n_steps is not None and self.checkpoint_every_n_steps < 1:
            raise LstmkitError(
                f"checkpoint_every_n_steps must be 1 or more or None, "
                f"got {self.checkpoint_every_n_steps}"
            )
        if self.precision not in PRECISIONS:
            raise LstmkitError(
                f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        if self.lr_decay not in ("none", "linear"):
            raise LstmkitError(f"lr_decay must be 'none' or 'linear', got {self.lr_decay!r}")
        if self.logger is not None and self.logger not in LOGGERS:
            raise LstmkitError(f"logger must be csv, tensorboard or None, got {self.logger!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of `to_dict`; unknown keys are rejected."""
        return dataclass_from_dict(cls, data, "TrainConfig")


def build_optimizer(params: Any, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser named in ``config`` over ``params`` with its lr and weight decay."""
    cls = OPTIMIZERS[config.optimizer.lower()]
    return cls(params, lr=config.lr, weight_decay=config.weight_decay)


def require_precision_supported(precision: str, accelerator: str = "cpu") -> None:
    """Refuse a bf16 precision on a CPU without native bf16 (one `LstmkitError` line).

    There bf16 products run through generic code tens of times slower than float32, and
    torch's own oneDNN LSTM cannot run under bf16 autocast; see ``lstmkit.nn.cpu``. Other
    accelerators decide for themselves. Estimators call this before any work or output.
    """
    if str(precision) not in BF16_PRECISIONS or accelerator not in ("cpu", "auto"):
        return
    if accelerator == "auto" and torch.cuda.is_available():
        return
    from lstmkit.nn import cpu

    if not cpu.native_bf16():
        raise LstmkitError(
            f"precision {precision} needs a CPU with native bfloat16: "
            f"{cpu.bf16_unsupported_reason()}; use --precision 32 (precision='32')"
        )
