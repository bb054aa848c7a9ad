"""One module per application: forecasting (``Forecaster``) and text classification
(``TextClassifier``), each with its model, LightningModule and fit/predict API."""
