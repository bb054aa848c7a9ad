"""`TextPredictor`: an exported text classifier on onnxruntime (no PyTorch).

Texts go through the model's own Hugging Face tokenizer with its truncation settings
(`lstmkit.data.tokenize.TextTokenizer`, the code `TextClassifier` uses), are sorted by
length and padded per batch as `TextClassifier.predict_proba` does, and the graph returns
the class probabilities; padding is skipped exactly (the graph's LSTM/GRU reads the
lengths), so a text's scores do not depend on its batch.
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
from lstmkit.runtime.meta import inside


class TextPredictor:
    """Predict labels and class probabilities of texts with an exported classifier.

    Attributes: ``kind`` = "text_classifier", ``backend`` = "onnx", ``labels`` (the
    classes, in the column order of `predict_proba`), ``info`` (kind, lstmkit_version,
    backend, config, labels, vocab_size, max_length).
    """

    kind = "text_classifier"
    backend = "onnx"

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
        self.batch_size = self.config["batch_size"] * 2  # as TextClassifier.predict_proba
        self.info: dict[str, Any] = {
            "kind": self.kind,
            "lstmkit_version": meta["lstmkit_version"],
            "backend": self.backend,
            "config": self.config,
            "labels": list(self.labels),
            "vocab_size": int(meta["vocab_size"]),
            "max_length": self.tokenizer.config.max_length,
        }

    def predict_proba(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Class probabilities, shape (n, classes), columns in the order of ``labels``.

        ``texts``: n non-empty strings (a single bare string, a mapping or a set is refused,
        as is a text holding a lone surrogate). ``batch_size``: texts per graph call, an
        integer >= 1 (None: twice the training batch, as `TextClassifier` predicts).
        """
        data = validate_texts(as_sequence(texts, "texts"), "texts")
        size = check_batch_size(batch_size) or self.batch_size
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
        return proba

    def predict(self, texts: Sequence[str], batch_size: int | None = None) -> list[Label]:
        """Predicted labels (n), strings or integers as the model was trained with."""
        proba = self.predict_proba(texts, batch_size)
        return [self.labels[i] for i in proba.argmax(axis=1)]
