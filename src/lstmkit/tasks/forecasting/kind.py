"""The forecasting kinds' entries in the registry of model kinds (`lstmkit.kinds`): which code of
this package loads, exports, predicts from ONNX and serves a ``"forecaster"`` and a
``"baseline_forecaster"``.

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
    task="forecasting",
)

#: one baseline as a model of its own (`baseline_model.BaselineForecaster`): naive, snaive,
#: nlinear and dlinear export to ONNX (the exporter refuses ets, theta and arima in one
#: line); a saved folder of any baseline and an export are served like a forecaster
BASELINE_FORECASTER = ModelKind(
    name="baseline_forecaster",
    title="baseline forecaster",
    estimator="lstmkit.tasks.forecasting.baseline_model:BaselineForecaster",
    exporter="lstmkit.tasks.forecasting.baseline_export:export_baseline",
    onnx_predictor="lstmkit.tasks.forecasting.baseline_runtime:BaselinePredictor",
    torch_predictor="lstmkit.tasks.forecasting.baseline_serving:TorchBaselinePredictor",
    serving="lstmkit.tasks.forecasting.baseline_serving:BASELINE_SERVING",
    task="forecasting",
)
