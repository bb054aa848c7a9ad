"""`TextPredictor`: an exported text classifier on onnxruntime (no PyTorch).

Texts go through the model's own Hugging Face tokenizer with its truncation settings
(`lstmkit.data.tokenize.TextTokenizer`, the code `TextClassifier` uses), are sorted by
length and padded per batch as `TextClassifier.predict_proba` does, and the graph returns
the class probabilities; padding is skipped exactly (the graph's LSTM/GRU reads the
lengths), so a text's scores do not depend on its batch.

A model trained with its bag-of-words mixture exports the baseline beside the graph
(``baseline.json`` and ``baseline.safetensors``, the files of the model folder's
``baseline/``: arrays and JSON, no pickle), and ``predict_proba(..., combined=True)``
mixes the graph's probabilities with it as `TextClassifier.predict_proba` does, with the
same `BagOfWordsBaseline` code (scikit-learn's tokenisation, NumPy/SciPy math).

The class also describes the kind's export.json (``FIELDS``, ``FILES``, `check_export`,
`graph_spec`, `probe`; see `lstmkit.runtime.meta.ExportedKind`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lstmkit.data.labelled import Label
from lstmkit.data.text import as_sequence, check_batch_size, validate_texts
from lstmkit.data.tokenize import PAD_ID, TextTokenizer, TokenizerConfig
from lstmkit.errors import LstmkitError
from lstmkit.runtime.meta import Damaged, GraphSpec, inside, integer, json_object
from lstmkit.tasks.text_classification.baseline import (
    NO_MIXTURE,
    SETTINGS_FILE,
    WEIGHTS_FILE,
    BagOfWordsBaseline,
)

#: the file of an export holding the model's tokenizer
TOKENIZER_FILE = "tokenizer.json"
#: the keys of export.json's ``mixture`` object: the baseline's two files
MIXTURE_KEYS = ("settings_file", "weights_file")


class TextPredictor:
    """Predict labels and class probabilities of texts with an exported classifier.

    Attributes: ``kind`` = "text_classifier", ``backend`` = "onnx", ``labels`` (the
    classes, in the column order of `predict_proba`), ``tokenizer``, ``mixture_weight``
    (the network's weight in its mixture with the baseline; None: no mixture), ``info``
    (kind, lstmkit_version, backend, config, labels, vocab_size, max_length,
    mixture_weight).
    """

    kind = "text_classifier"
    backend = "onnx"
    #: the fields of a text classifier's export.json besides the common ones
    FIELDS = ("labels", "vocab_size", "tokenizer", "tokenizer_file", "mixture")
    #: the files its export holds besides export.json and the graph
    FILES = (TOKENIZER_FILE, SETTINGS_FILE, WEIGHTS_FILE)

    def __init__(self, folder: Path, meta: dict[str, Any], session: Any) -> None:
        """``meta``: export.json as `lstmkit.runtime.meta.read_export` checked it."""
        self.folder = folder
        self.session = session
        self.labels: list[Label] = list(meta["labels"])
        self.config: dict[str, Any] = dict(meta["config"])
        where = inside(folder, meta, "tokenizer_file")
        try:
            text = where.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise LstmkitError(f"{where}: cannot read ({err}); export the model again") from None
        self.tokenizer = TextTokenizer.from_json(text, TokenizerConfig.from_dict(meta["tokenizer"]))
        if self.tokenizer.vocab_size != meta["vocab_size"]:
            raise LstmkitError(
                f"vocab_size {meta['vocab_size']} differs from the {self.tokenizer.vocab_size} "
                f"tokens of {where.name}"
            )
        self.baseline: BagOfWordsBaseline | None = None
        mixture = meta["mixture"]
        if mixture is not None:
            self.baseline = BagOfWordsBaseline.read(
                inside(folder, mixture, "settings_file"),
                inside(folder, mixture, "weights_file"),
                len(self.labels),
                folder,
                "export the model again",
            )
            if self.baseline.network_weight is None:
                raise LstmkitError(
                    f"{folder}: the exported mixture's baseline has no network_weight; export "
                    "the model again"
                )
        self.mixture_weight = None if self.baseline is None else self.baseline.network_weight
        self.batch_size = self.config["batch_size"] * 2  # as TextClassifier.predict_proba
        self.info: dict[str, Any] = {
            "kind": self.kind,
            "lstmkit_version": meta["lstmkit_version"],
            "backend": self.backend,
            "config": self.config,
            "labels": list(self.labels),
            "vocab_size": int(meta["vocab_size"]),
            "max_length": self.tokenizer.config.max_length,
            "mixture_weight": self.mixture_weight,
        }

    # ------------------------------------------------------------ export.json
    @classmethod
    def check_export(cls, folder: Path, meta: dict[str, Any]) -> None:
        """Check the text classifier's fields of export.json (`Damaged` for the first
        wrong one): labels, vocab_size, tokenizer settings and file, the mixture's files,
        and ``config.batch_size``."""
        labels = meta["labels"]
        if not isinstance(labels, list) or len(labels) < 2:
            raise Damaged(f"labels must list at least two classes, got {labels!r}")
        for label in labels:
            name = isinstance(label, str) and bool(label.strip())
            if not name and (isinstance(label, bool) or not isinstance(label, int)):
                raise Damaged(f"labels must be class names or integers, got {label!r}")
        if len({type(label) for label in labels}) > 1:
            raise Damaged(f"labels mix names and integers: {labels!r}")
        if len(set(labels)) != len(labels):
            raise Damaged(f"labels must be distinct, got {labels!r}")
        integer(meta, "vocab_size", 3)
        try:
            TokenizerConfig.from_dict(json_object(meta, "tokenizer"))
        except Damaged:
            raise
        except LstmkitError as err:
            raise Damaged(f"tokenizer: {err}") from None
        inside(folder, meta, "tokenizer_file")
        mixture = meta["mixture"]
        if mixture is not None:
            if not isinstance(mixture, dict) or sorted(mixture) != sorted(MIXTURE_KEYS):
                shown = repr(mixture)[:100]
                raise Damaged(
                    f"mixture must be null or an object of {list(MIXTURE_KEYS)}, got {shown}"
                )
            for key in MIXTURE_KEYS:
                inside(folder, mixture, key)
        config = meta["config"]
        if "batch_size" not in config:
            raise Damaged("config names no batch_size")
        integer(config, "batch_size", 1)  # the runtime's default batch is twice this
        if "tokenizer" in config and config["tokenizer"] != meta["tokenizer"]:
            raise Damaged("config tokenizer differs from the tokenizer field")

    @classmethod
    def graph_spec(cls, meta: dict[str, Any]) -> tuple[GraphSpec, GraphSpec]:
        """Inputs ``ids`` (batch, time) and ``lengths`` (batch,) int64; outputs ``logits``
        (batch, 1 for two classes else classes) and ``probabilities`` (batch, classes)."""
        n = len(meta["labels"])
        inputs: GraphSpec = {
            "ids": ("tensor(int64)", (None, None)),
            "lengths": ("tensor(int64)", (None,)),
        }
        outputs: GraphSpec = {
            "logits": ("tensor(float)", (None, 1 if n == 2 else n)),
            "probabilities": ("tensor(float)", (None, n)),
        }
        return inputs, outputs

    @classmethod
    def probe(cls, meta: dict[str, Any], inputs: GraphSpec) -> dict[str, np.ndarray]:
        """One text of one token, the highest id of the vocabulary."""
        ids = np.full((1, 1), meta["vocab_size"] - 1, dtype=np.int64)
        return {"ids": ids, "lengths": np.ones(1, dtype=np.int64)}

    # ------------------------------------------------------------ predictions
    def require_mixture(self) -> BagOfWordsBaseline:
        """The baseline the network is mixed with for ``combined=True``; one `LstmkitError`
        line (the estimator's) for a model exported without a mixture."""
        if self.baseline is None:
            raise LstmkitError(NO_MIXTURE)
        return self.baseline

    def predict_proba(
        self, texts: Sequence[str], batch_size: int | None = None, *, combined: bool = False
    ) -> np.ndarray:
        """Class probabilities, shape (n, classes), columns in the order of ``labels``.

        ``texts``: n non-empty strings (a single bare string, a mapping or a set is refused,
        as is a text holding a lone surrogate). ``batch_size``: texts per graph call, an
        integer >= 1 (None: twice the training batch, as `TextClassifier` predicts).
        ``combined``: the mixture ``w * network + (1 - w) * baseline`` with the exported
        bag-of-words baseline (float64), as `TextClassifier.predict_proba(combined=True)`;
        one `LstmkitError` line for an export without a mixture.
        """
        data = validate_texts(as_sequence(texts, "texts"), "texts")
        size = check_batch_size(batch_size) or self.batch_size
        baseline = self.require_mixture() if combined else None
        ids = self.tokenizer.encode(data.texts)
        lengths = np.array([len(s) for s in ids], dtype=np.int64)
        order = np.argsort(-lengths, kind="stable")  # longest first, as TextClassifier batches
        proba = np.empty((len(ids), len(self.labels)), dtype=np.float32)
        for start in range(0, len(ids), size):
            rows = order[start : start + size]
            width = int(lengths[rows].max())
            batch = np.full((len(rows), width), PAD_ID, dtype=np.int64)
            for r, i in enumerate(rows):
                batch[r, : lengths[i]] = ids[i]
            feeds = {"ids": batch, "lengths": lengths[rows]}
            proba[rows] = self.session.run(["probabilities"], feeds)[0]
        if not np.isfinite(proba).all():
            raise LstmkitError(
                "the model produced non-finite probabilities; its weights are damaged, "
                "export the model again"
            )
        if baseline is not None:
            return baseline.mix(proba, baseline.predict_proba(data.texts))
        return proba

    def predict(
        self, texts: Sequence[str], batch_size: int | None = None, *, combined: bool = False
    ) -> list[Label]:
        """Predicted labels (n), strings or integers as the model was trained with;
        ``combined`` as in `predict_proba`."""
        proba = self.predict_proba(texts, batch_size, combined=combined)
        return [self.labels[i] for i in proba.argmax(axis=1)]
