"""Forecast figure: the history, the held-out actuals and the forecast with its band.

Two panels as in seed 004: the whole series on the left, a close-up of the
forecast period (with some context) on the right.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from lstmkit.plots._save import plt, save_figure


def plot_forecast(
    history_times: Sequence,
    history: np.ndarray,
    forecast_times: Sequence,
    forecast: np.ndarray,
    path: str | os.PathLike[str],
    *,
    actual: np.ndarray | None = None,
    lower: np.ndarray | None = None,
    upper: np.ndarray | None = None,
    band_label: str = "band",
    baselines: dict[str, np.ndarray] | None = None,
    title: str | None = None,
    ylabel: str = "value",
) -> Path:
    """Draw and save (atomically) the forecast figure.

    Args:
        history_times, history: the series before the forecast, shape (n,).
        forecast_times, forecast: the forecast, shape (horizon,).
        actual: held-out actual values at ``forecast_times`` (test period), if known.
        lower, upper: band edges (e.g. the 10% and 90% quantiles), shape (horizon,).
        baselines: extra dashed lines, name -> values at ``forecast_times``.
    """
    history_times = pd.Index(history_times)
    forecast_times = pd.Index(forecast_times)
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2), gridspec_kw={"width_ratios": [2, 1]})
    context = min(len(history), 3 * len(forecast))
    for ax, start in ((axes[0], 0), (axes[1], len(history) - context)):
        ax.plot(history_times[start:], history[start:], color="0.25", lw=1.4, label="history")
        if actual is not None:
            ax.plot(forecast_times, actual, color="tab:green", lw=1.6, marker=".", label="actual")
        if lower is not None and upper is not None:
            ax.fill_between(
                forecast_times, lower, upper, color="tab:blue", alpha=0.22, label=band_label
            )
        for i, (name, values) in enumerate((baselines or {}).items()):
            ax.plot(forecast_times, values, ls="--", lw=1.0, color=f"C{i + 3}", label=name)
        ax.plot(forecast_times, forecast, color="tab:blue", lw=1.8, marker=".", label="forecast")
        ax.grid(alpha=0.3)
        ax.set_ylabel(ylabel)
    axes[0].set_title("whole series")
    axes[1].set_title("forecast period")
    axes[1].legend(fontsize=8, loc="best")
    for ax in axes:
        for label in ax.get_xticklabels():
            label.set_rotation(30)
            label.set_horizontalalignment("right")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)
