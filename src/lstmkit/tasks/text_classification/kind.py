"""The text task's entries in the registry of model kinds (`lstmkit.kinds`): which code of
this package loads, exports, predicts from ONNX and serves a ``"text_classifier"``, and
loads a ``"text_encoder"`` (an encoder pretrained as a language model, which is
fine-tuned into a classifier but neither exported nor served itself).

Import paths only: declaring the kinds imports nothing (no torch).
"""

from lstmkit.kinds import ModelKind

TEXT_CLASSIFIER = ModelKind(
    name="text_classifier",
    title="text classifier",
    estimator="lstmkit.tasks.text_classification.estimator:TextClassifier",
    exporter="lstmkit.tasks.text_classification.export:export_text_classifier",
    onnx_predictor="lstmkit.tasks.text_classification.runtime:TextPredictor",
    torch_predictor="lstmkit.tasks.text_classification.serving:TorchTextPredictor",
    serving="lstmkit.tasks.text_classification.serving:SERVING",
)

TEXT_ENCODER = ModelKind(
    name="text_encoder",
    title="pretrained text encoder",
    estimator="lstmkit.tasks.text_classification.estimator:PretrainedTextEncoder",
    instead=(
        "it predicts nothing itself; fine-tune a classifier from it with 'lstmkit classify "
        "train DATA --pretrained FOLDER --out MODEL' and use that model"
    ),
)
