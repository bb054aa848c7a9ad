"""`TrainConfig`: how a task is trained (optimiser, stopping, seeding, precision, devices,
checkpoints, loggers, progress), declared once for every task; and what is built from it
before any Trainer: the optimiser (`build_optimizer`) and the check that the machine can
train in the precision asked for (`require_precision_supported`).

Each task nests a `TrainConfig` in its own settings (``ForecasterConfig.train``,
``TextClassifierConfig.train``, ``PretrainSettings.train``) with its own defaults; the
rules are these. Torch-free to import (the CLI reads the fields for its options).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from lstmkit.errors import LstmkitError
from lstmkit.settings import PRECISIONS, PathText, Precision, Settings

if TYPE_CHECKING:
    import torch

OPTIMIZERS = ("adam", "adamw", "rmsprop")
BF16_PRECISIONS = ("bf16-mixed", "bf16-true")
LOGGERS = ("csv", "tensorboard")

__all__ = [
    "BF16_PRECISIONS",
    "LOGGERS",
    "OPTIMIZERS",
    "PRECISIONS",
    "TrainConfig",
    "build_optimizer",
    "fused_adam",
    "require_precision_supported",
]


class TrainConfig(Settings):
    """How to train: optimiser, stopping, seeding, hardware, checkpoints, logs. Round-trips
    JSON (`to_dict` / `from_dict`).

    ``checkpoint_dir`` enables resuming: ``last.ckpt`` is written there every epoch (and
    every ``checkpoint_every_n_steps`` steps if set, for long epochs) and a later fit of
    the same run with the same folder continues from it (see `lstmkit.training.trainer`).
    The settings in `RUN_FIELDS` belong to one run (where it runs and writes), not to
    the model: a saved model keeps none of its folders (`for_saving`).
    """

    what: ClassVar[str] = "training"
    renamed: ClassVar[dict[str, str]] = {"progress_bar": "progress"}
    #: settings of the run rather than of the model: the hardware, the progress display,
    #: the checkpoint and log folders
    RUN_FIELDS: ClassVar[tuple[str, ...]] = (
        "accelerator", "devices", "strategy", "num_nodes", "progress", "checkpoint_dir",
        "checkpoint_every_n_steps", "logger", "log_dir", "threads",
    )  # fmt: skip
    #: the run's folders, which a saved model does not keep
    FOLDER_FIELDS: ClassVar[tuple[str, ...]] = ("checkpoint_dir", "logger", "log_dir")

    max_epochs: int = Field(100, ge=1, description="Most training epochs.")
    lr: float = Field(1e-3, gt=0, description="Learning rate.")
    weight_decay: float = Field(0.0, ge=0, description="Weight decay (L2) of the optimiser.")
    optimizer: Literal["adam", "adamw", "rmsprop"] = Field("adam", description="Optimiser.")
    gradient_clip_val: float | None = Field(
        1.0, ge=0, description="Clip the gradient norm to this (0 or None: no clipping)."
    )
    early_stopping_patience: int | None = Field(
        10,
        ge=1,
        description="Stop after this many epochs without a better validation loss "
        "(None: never early).",
    )
    keep_weights: Literal["best", "last"] = Field(
        "best",
        description="Weights kept after training: best, those of the epoch with the lowest "
        "validation loss (training loss without validation); last, those of the final "
        "epoch, training all max_epochs (no early stopping).",
    )
    seed: int = Field(
        0,
        ge=0,
        le=2**32 - 1,
        description="Random seed (split, initial weights, batch order, dropout).",
    )
    accelerator: Literal["cpu", "gpu", "cuda", "mps", "auto"] = Field(
        "cpu", description="Where to train (Lightning's accelerator)."
    )
    devices: int | str = Field(
        1, description="Devices for Lightning: a count (CPU processes under DDP), 'auto' or ids."
    )
    strategy: str = Field("auto", description="Lightning's strategy, e.g. 'ddp'.")
    num_nodes: int = Field(1, ge=1, description="Machines to train on (DDP).")
    progress: bool = Field(True, description="Show the training progress.")
    threads: int | None = Field(
        None,
        ge=1,
        description="CPU threads for the training and validation steps (None: one for a "
        "small LSTM or GRU, batch x hidden x 4 hidden under 8 million, where waking a second "
        "thread costs more than it saves; torch's count otherwise).",
    )
    deterministic: bool = Field(True, description="Ask torch for deterministic algorithms.")
    checkpoint_dir: PathText | None = Field(
        None,
        description="Keep last.ckpt here every epoch; a later fit of the same run with the "
        "same folder resumes from it.",
    )
    checkpoint_every_n_steps: int | None = Field(
        None, ge=1, description="Also checkpoint every N optimiser steps (long epochs)."
    )
    precision: Precision = Field(
        "32",
        description="Training precision (Lightning's); bf16 needs a CPU with native bfloat16.",
    )
    logger: Literal["csv", "tensorboard"] | None = Field(
        None, description="Also log the metrics with Lightning's csv or tensorboard logger."
    )
    log_dir: PathText | None = Field(
        None, description="Folder of the logger's files (default lightning_logs)."
    )
    lr_decay: Literal["none", "linear"] = Field(
        "none", description="Learning-rate schedule: none, or linear to 0 over the run."
    )

    def for_saving(self) -> TrainConfig:
        """These settings without the run's folders (`FOLDER_FIELDS`), as a saved model
        keeps them: a model loaded later must neither resume from nor write into them."""
        return self.replace(**dict.fromkeys(self.FOLDER_FIELDS))


def fused_adam(params: list[Any], precision: str = "32") -> dict[str, bool]:
    """``{"fused": True}`` where torch's fused Adam/AdamW kernel takes ``params`` (dense
    floating tensors, all on the CPU or all on CUDA) and Lightning lets it clip gradients
    (not under a ``-mixed`` ``precision``: its mixed-precision plugin refuses to clip with
    an optimizer that unscales gradients itself), else ``{}``. One kernel for every tensor
    instead of a dozen small ops each: an Adam step over the forecaster's LSTM of hidden 16
    took 54 against 192 µs, over an embedding of 8,000 x 128 beside a BiLSTM of 128 825
    against 7,011 µs (one thread of a 2-core AMD EPYC, 2026-12-07); the same updates to
    float rounding (tests/test_training.py)."""
    import torch

    tensors = [
        p for group in params for p in (group["params"] if isinstance(group, dict) else [group])
    ]
    devices = {p.device.type for p in tensors}
    floating = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
    ok = tensors and len(devices) == 1 and devices <= {"cpu", "cuda"}
    ok = ok and not str(precision).endswith("-mixed")
    ok = ok and all(p.dtype in floating and not p.is_sparse for p in tensors)
    return {"fused": True} if ok else {}


def build_optimizer(params: Any, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser named in ``config`` over ``params`` with its lr and weight decay
    (Adam and AdamW fused where they can be, `fused_adam`)."""
    import torch

    params = list(params)
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=config.lr, weight_decay=config.weight_decay)
    cls = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    fused = fused_adam(params, config.precision)
    return cls(params, lr=config.lr, weight_decay=config.weight_decay, **fused)


def require_precision_supported(precision: str, accelerator: str = "cpu") -> None:
    """Refuse a bf16 precision on a CPU without native bf16 (one `LstmkitError` line).

    There bf16 products run through generic code tens of times slower than float32, and
    torch's own oneDNN LSTM cannot run under bf16 autocast; see ``lstmkit.nn.cpu``. Other
    accelerators decide for themselves. Estimators call this before any work or output.
    """
    if str(precision) not in BF16_PRECISIONS or accelerator not in ("cpu", "auto"):
        return
    import torch

    if accelerator == "auto" and torch.cuda.is_available():
        return
    from lstmkit.nn import cpu

    if not cpu.native_bf16():
        raise LstmkitError(
            f"precision {precision} needs a CPU with native bfloat16: "
            f"{cpu.bf16_unsupported_reason()}; use --precision 32 (precision='32')"
        )
