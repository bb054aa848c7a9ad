"""Time-series forecasting: `Forecaster` and the pieces it is built from.

The model is an LSTM or GRU encoder from `lstmkit.nn` over an input window of
``window`` steps (target plus any covariate columns) and a dense head that
reads the encoder's last state together with the (normalised) input window
(plus any known future covariates over the horizon) and emits all ``horizon``
steps at once (``method="direct"``, default) or one step that is fed back
``horizon`` times (``method="recursive"``, seed 004's method; its band comes
from simulated sample paths; each step reads the known future covariates of the
step it forecasts, and the network also forecasts the past-only covariates, which
are fed back with the target). Static covariates work in both. Preprocessing lives
with the model: per-series scaling fitted on the training part, reversible instance
normalisation of each input window, windowing and a strictly time-ordered validation
split.
With ``quantiles`` the head also predicts those quantiles (pinball loss), and
the band is then calibrated per horizon step on the validation windows (split
conformal, ``calibrate=True``).

Files of this package:

- ``estimator.py``  `Forecaster` (fit / predict / evaluate / backtest / save / load)
- ``settings.py``   `ForecasterConfig`, every setting declared once (round-trips JSON)
- ``data.py``       `ForecastData`, the Lightning DataModule of a fit: checks, time
  split, per-series scaling, windows and loaders
- ``network.py``    `ForecastNet` (encoder + head) and its size check
- ``module.py``     `ForecastModule` (LightningModule: instance norm, loss) and
  the sample-path simulation of recursive bands
- ``state.py``      `FittedState`, what a fit learnt about the data (typed, JSON)
- ``evaluation.py`` `Evaluation` and band coverage
- ``calibration.py`` split-conformal shifts of the quantile bands, per horizon step
- ``tuning.py``     `tune`: the Optuna search of ``--tune`` on the validation stretch
- ``run.py``        `forecast_run`: train, hold out, score, backtest, forecast ahead
  and write every output file (what ``lstmkit forecast`` calls)
- ``predict.py``    the torch-free half of `Forecaster.predict` (histories, scaling,
  forecast tables), shared with the ONNX runtime
- ``kind.py``       the forecaster's entry in the registry of kinds (`lstmkit.kinds`),
  which names the three modules below
- ``linear.py``     closed-form ridge NLinear / DLinear (`fit_linear`, `choose_ridge`)
- ``baselines.py``  `Baselines`: naive, seasonal naive, NLinear, DLinear, AutoETS,
  AutoTheta, AutoARIMA beside every forecast (n/a with the reason per series)
- ``baseline_model.py`` `BaselineForecaster`: one baseline as a model (kind
  ``baseline_forecaster``)
- ``baseline_export.py`` `export_baseline`, its ONNX export (naive, snaive, nlinear,
  dlinear; `BaselineForecaster.export_onnx`)
- ``baseline_runtime.py`` `BaselinePredictor`: that export on onnxruntime (no torch)
- ``baseline_serving.py`` what ``lstmkit serve`` needs of a baseline forecaster
- ``mixture.py``    `Mixture`: the network mixed with its best baseline (``combine``)
- ``export.py``     `export_forecaster`, the ONNX export (`Forecaster.export_onnx`)
- ``runtime.py``    `ForecastPredictor`: the export on onnxruntime (no torch) and the
  checks of its export.json
- ``serving.py``    what ``lstmkit serve`` needs: `TorchForecastPredictor` and the
  request, response and ``/model`` models

The names below are imported on first use, so that the torch-free modules
(``state``, ``evaluation``, ``calibration``, ``predict``, ``kind``, ``runtime``, ``serving``,
``linear``, ``baselines``, ``baseline_model``, ``baseline_runtime``, ``baseline_serving``)
import without torch.
"""

from importlib import import_module
from typing import Any

_LAZY = {
    "KIND": "estimator",
    "Forecaster": "estimator",
    "ForecasterConfig": "settings",
    "ForecastData": "data",
    "Evaluation": "evaluation",
    "qname": "evaluation",
    "quantile_coverage": "evaluation",
    "conformal_offsets": "calibration",
    "ForecastModule": "module",
    "pinball_loss": "module",
    "simulate_quantiles": "module",
    "ForecastNet": "network",
    "check_model_size": "network",
    "estimate_parameters": "network",
    "make_net": "network",
    "FittedState": "state",
    "BaselineForecaster": "baseline_model",
    "Baselines": "baselines",
    "LinearMap": "linear",
    "fit_linear": "linear",
    "choose_ridge": "linear",
    "Mixture": "mixture",
}

__all__ = [*_LAZY, "truncate_series"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"lstmkit.tasks.forecasting.{_LAZY[name]}"), name)
    if name == "truncate_series":
        return import_module("lstmkit.data.series").truncate_series
    raise AttributeError(f"module 'lstmkit.tasks.forecasting' has no attribute {name!r}")
