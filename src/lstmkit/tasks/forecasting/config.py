"""Deprecated: the forecaster's settings are `lstmkit.tasks.forecasting.settings` (every
task names its settings module ``settings.py``). Re-exported for one release."""

import warnings

from lstmkit.tasks.forecasting.settings import ForecasterConfig  # noqa: F401

warnings.warn(
    "lstmkit.tasks.forecasting.config is deprecated; import from "
    "lstmkit.tasks.forecasting.settings",
    FutureWarning,
    stacklevel=2,
)
