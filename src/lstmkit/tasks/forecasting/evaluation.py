"""`Evaluation` (a held-out score beside the baselines) and quantile-band coverage."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass
class Evaluation:
    """Result of `Forecaster.evaluate`.

    metrics: one row per model (``lstmkit``, the network alone; one per baseline, e.g.
    ``naive``, ``seasonal_naive``, ``nlinear``; ``combined`` with a mixture), columns MAE,
    RMSE, MAPE, sMAPE, MASE (averaged over the series each model could forecast).
    forecasts: long table with id, time, actual, forecast (and quantile
    columns), one column per baseline (NaN where it is n/a) and, with a mixture,
    ``lstmkit`` (the network alone; ``forecast`` is then the mixture).
    coverage: with two or more quantiles, the share of actual values inside the
    band between the lowest and highest quantile (e.g. q10-q90), else None.
    notes: baseline -> why it is n/a for some series (one line).
    """

    metrics: pd.DataFrame
    forecasts: pd.DataFrame
    season: int | None
    coverage: float | None = None
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def best(self) -> str | None:
        """The row with the lowest MASE (MAE where MASE is undefined), None if none."""
        for col in ("MASE", "MAE"):
            v = self.metrics[col].dropna() if col in self.metrics else pd.Series()
            if len(v):
                return str(v.idxmin())
        return None


def qname(q: float) -> str:
    """Column name of quantile ``q`` in forecast tables: 0.1 -> ``q10``."""
    return f"q{round(q * 100):g}"


def quantile_coverage(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """Share of ``actual`` values inside [lower, upper]."""
    a = np.asarray(actual)
    return float(np.mean((a >= lower) & (a <= upper))) if len(a) else math.nan
