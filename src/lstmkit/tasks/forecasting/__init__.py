"""Time-series forecasting: `Forecaster` and the pieces it is built from.

The model is an LSTM or GRU encoder from `lstmkit.nn` over an input window of
``window`` steps (target plus any covariate columns) and a dense head that
reads the encoder's last state together with the (normalised) input window
(plus any known future covariates over the horizon) and emits all ``horizon``
steps at once (``method="direct"``, default) or one step that is fed back
``horizon`` times (``method="recursive"``, seed 004's method; its band comes
from simulated sample paths). Preprocessing lives with the model: per-series
scaling fitted on the training part, reversible instance normalisation of
each input window, windowing and a strictly time-ordered validation split.
With ``quantiles`` the head also predicts those quantiles (pinball loss).

Files of this package:

- ``estimator.py``  `Forecaster` (fit / predict / evaluate / backtest / save / load)
- ``config.py``     `ForecasterConfig`, every setting (round-trips JSON)
- ``network.py``    `ForecastNet` (encoder + head) and its size check
- ``module.py``     `ForecastModule` (LightningModule: instance norm, loss) and
  the sample-path simulation of recursive bands
- ``state.py``      `FittedState`, what a fit learnt about the data (typed, JSON)
- ``evaluation.py`` `Evaluation` and band coverage
- ``run.py``        `forecast_run`: train, hold out, score, backtest, forecast ahead
  and write every output file (what ``lstmkit forecast`` calls)
"""

from lstmkit.data.series import truncate_series
from lstmkit.tasks.forecasting.config import ForecasterConfig
from lstmkit.tasks.forecasting.estimator import KIND, Forecaster
from lstmkit.tasks.forecasting.evaluation import Evaluation, qname, quantile_coverage
from lstmkit.tasks.forecasting.module import (
    ForecastModule,
    pinball_loss,
    simulate_quantiles,
)
from lstmkit.tasks.forecasting.network import (
    ForecastNet,
    check_model_size,
    estimate_parameters,
)
from lstmkit.tasks.forecasting.state import FittedState

_truncate = truncate_series  # the name older code imported

__all__ = [
    "KIND",
    "Evaluation",
    "FittedState",
    "ForecastModule",
    "ForecastNet",
    "Forecaster",
    "ForecasterConfig",
    "check_model_size",
    "estimate_parameters",
    "pinball_loss",
    "qname",
    "quantile_coverage",
    "simulate_quantiles",
    "truncate_series",
]
