"""The forecaster's entry in the registry of model kinds (`lstmkit.kinds`): which code of
this package loads, exports, predicts from ONNX and serves a ``"forecaster"``.

Import paths only: declaring the kind imports nothing (no torch).
"""

from lstmkit.kinds import ModelKind

FORECASTER = ModelKind(
    name="forecaster",
    title="forecaster",
    estimator="lstmkit.tasks.forecasting.estimator:Forecaster",
    exporter="lstmkit.tasks.forecasting.export:export_forecaster",
    onnx_predictor="lstmkit.tasks.forecasting.runtime:ForecastPredictor",
    torch_predictor="lstmkit.tasks.forecasting.serving:TorchForecastPredictor",
    serving="lstmkit.tasks.forecasting.serving:SERVING",
)

#: one baseline as a model of its own (`baseline_model.BaselineForecaster`): loaded and
#: predicted from, neither exported nor served
BASELINE_FORECASTER = ModelKind(
    name="baseline_forecaster",
    title="baseline forecaster",
    estimator="lstmkit.tasks.forecasting.baseline_model:BaselineForecaster",
    instead="its forecasts come from BaselineForecaster.load(folder).predict()",
)
