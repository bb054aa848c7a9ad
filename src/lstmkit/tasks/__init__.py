"""One package per application: forecasting (``Forecaster``), text classification
(``TextClassifier``) and the language model its encoder is pretrained with
(``language_model.pretrain``), each with its model, LightningModule and high-level API."""
