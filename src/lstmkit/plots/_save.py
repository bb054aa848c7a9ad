"""PNG saving for matplotlib figures (Agg backend, no screen needed), atomic through
`lstmkit.io.atomic_write`."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from lstmkit.io.atomic import atomic_write


def save_figure(fig: Figure, path: str | os.PathLike[str], dpi: int = 120) -> Path:
    """Save ``fig`` as PNG at ``path`` atomically (temp file + rename) and close it."""
    try:
        return atomic_write(
            path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
        )
    finally:
        plt.close(fig)
