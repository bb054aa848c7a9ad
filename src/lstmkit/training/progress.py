"""Progress for logs that are not a terminal: plain lines instead of a live bar.

Lightning's live progress bar redraws one line in place; written to a file or a pipe
(``nohup ... > run.log``) it shows nothing useful until training ends. `LineProgress`
takes its place there (`lstmkit.training.fit` picks it when stderr is not a terminal):
every ``every_seconds`` it prints the epoch, the batch, the share done, the speed and
the time left of the epoch, and after each epoch its time and metrics (epochs shorter
than a second: at most one such line every ``every_seconds``), on stderr, from the
first process only.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any, TextIO

from lightning.pytorch.callbacks.progress import ProgressBar

#: seconds between progress lines (an epoch line also comes whenever an epoch took a second+)
EVERY_SECONDS = 30.0


class LineProgress(ProgressBar):
    """A Lightning progress bar that prints a line every ``every_seconds`` and per epoch."""

    def __init__(self, every_seconds: float | None = None, stream: TextIO | None = None) -> None:
        super().__init__()
        self.every_seconds = EVERY_SECONDS if every_seconds is None else every_seconds
        self._stream = stream
        self._enabled = True
        self._epoch_start = self._last = 0.0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def _print(self, trainer: Any, text: str) -> None:
        if self._enabled and trainer.is_global_zero:
            print(text, file=self._stream or sys.stderr, flush=True)

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self._epoch_start = self._last = time.monotonic()

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        now = time.monotonic()
        if now - self._last < self.every_seconds:
            return
        self._last = now
        done, total = batch_idx + 1, self.total_train_batches
        rate = done / max(now - self._epoch_start, 1e-9)
        where = f"batch {done:,}"
        if isinstance(total, int) or (isinstance(total, float) and math.isfinite(total)):
            left = max(int(total) - done, 0) / rate
            where += f"/{int(total):,} ({done / max(int(total), 1):.0%}, {left:.0f} s left)"
        self._print(
            trainer,
            f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}: {where}, "
            f"{rate:.2f} batches/s",
        )

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        now = time.monotonic()
        seconds = now - self._epoch_start
        if seconds < 1.0 and now - self._last < self.every_seconds:
            return  # many short epochs (a small forecaster): a line every every_seconds
        self._last = now
        metrics = ", ".join(
            f"{name} {float(value):.4f}"
            for name, value in sorted(trainer.callback_metrics.items())
            if getattr(value, "numel", lambda: 1)() == 1
        )
        self._print(
            trainer,
            f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs} done in {seconds:.0f} s"
            + (f": {metrics}" if metrics else ""),
        )
