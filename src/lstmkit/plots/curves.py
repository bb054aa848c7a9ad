"""Training curves: train and validation values of each metric against the epoch."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from lstmkit.plots._save import plt, save_figure


def plot_training_curves(
    history: Sequence[dict[str, float]],
    path: str | os.PathLike[str],
    metrics: Sequence[str] = ("loss",),
    title: str | None = None,
) -> Path:
    """Plot ``train_<m>`` and ``val_<m>`` against ``epoch`` for each metric, side by side.

    Args:
        history: `FitResult.history` rows (``epoch`` plus metric values).
        path: PNG file to write (atomically).
        metrics: metric names without the ``train_`` / ``val_`` prefix.
        title: optional figure title.
    """
    if not history:
        raise ValueError("history is empty: nothing to plot")
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.6), squeeze=False)
    epochs = [row.get("epoch", i) + 1 for i, row in enumerate(history)]  # 1-based for people
    for ax, metric in zip(axes[0], metrics, strict=True):
        for split, style in (("train", "-"), ("val", "--")):
            key = f"{split}_{metric}"
            pts = [
                (e, row[key])
                for e, row in zip(epochs, history, strict=True)
                if key in row and math.isfinite(row[key])
            ]
            if pts:
                xs, ys = zip(*pts, strict=True)
                ax.plot(xs, ys, style, marker="." if len(pts) < 30 else None, label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        if len(metrics) > 1:
            ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)
