"""`Evaluation` (a held-out score beside the baselines) and quantile-band coverage."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass
class Evaluation:
    """Result of `Forecaster.evaluate`.

    metrics: one row per model (``lstmkit``, ``naive``, ``seasonal_naive``),
    columns MAE, RMSE, MAPE, sMAPE, MASE (averaged over series).
    forecasts: long table with id, time, actual, forecast (and quantile
    columns), naive, seasonal_naive.
    coverage: with two or more quantiles, the share of actual values inside the
    band between the lowest and highest quantile (e.g. q10-q90), else None.
    """

    metrics: pd.DataFrame
    forecasts: pd.DataFrame
    season: int | None
    coverage: float | None = None


def qname(q: float) -> str:
    """Column name of quantile ``q`` in forecast tables: 0.1 -> ``q10``."""
    return f"q{round(q * 100):g}"


def quantile_coverage(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """Share of ``actual`` values inside [lower, upper]."""
    a = np.asarray(actual)
    return float(np.mean((a >= lower) & (a <= upper))) if len(a) else math.nan
