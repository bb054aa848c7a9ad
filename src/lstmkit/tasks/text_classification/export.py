"""ONNX export of a fitted `TextClassifier` (``TextClassifier.export_onnx``, ``lstmkit
export``); `lstmkit.tasks.text_classification.runtime.TextPredictor` runs the result.

The folder holds ``model.onnx`` (``ids``, ``lengths`` -> ``logits``, ``probabilities``;
dynamic batch and length), ``tokenizer.json`` (the model's tokenizer), ``export.json``
(the labels, vocabulary size, truncation settings and the task config) and, for a model
with a mixture, its bag-of-words baseline (``baseline.json``, ``baseline.safetensors``:
JSON and arrays, no pickle), which ``predict_proba(..., combined=True)`` of the runtime
mixes with the graph's probabilities. The shared steps (a recurrent layer ONNX can run,
the exporter, the check against PyTorch, the atomic write) are `lstmkit.export.onnx`'s.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from lstmkit.errors import LstmkitError
from lstmkit.export.onnx import Feeds, export_graph, exportable_rnn, verify, write_export
from lstmkit.runtime.session import GRAPH_FILE
from lstmkit.tasks.text_classification.baseline import (
    SETTINGS_FILE,
    WEIGHTS_FILE,
    BagOfWordsBaseline,
)
from lstmkit.tasks.text_classification.runtime import TOKENIZER_FILE, TextPredictor


class _TextGraph(nn.Module):
    """ids (batch, time) int64, lengths (batch,) int64 -> logits (batch, outputs),
    probabilities (batch, classes)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, ids: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        logits = self.net(ids, lengths)
        return logits, self.net.probabilities(logits)


def _text_cases(vocab_size: int, rng: np.random.Generator) -> list[Feeds]:
    """Token batches for the self-check: batch sizes 1, 2 and 7 at several padded lengths,
    the longest row of each batch unpadded, the others padded with 0 (``[PAD]``)."""
    cases = []
    for batch, time in ((1, 1), (1, 9), (2, 5), (7, 13), (7, 31)):
        lengths = rng.integers(1, time + 1, size=batch)
        lengths[rng.integers(batch)] = time
        ids = rng.integers(1, vocab_size, size=(batch, time))  # [UNK] and real tokens
        ids[np.arange(time)[None, :] >= lengths[:, None]] = 0
        cases.append({"ids": ids.astype(np.int64), "lengths": lengths.astype(np.int64)})
    return cases


def export_text_classifier(clf: Any, out: str | os.PathLike[str]) -> Path:
    """Export a fitted `TextClassifier` to the folder ``out`` (see the module docstring).

    Graph: ``ids`` (batch, time) int64 right-padded with 0 and ``lengths`` (batch,) int64
    -> ``logits`` (batch, 1 for two classes else classes) and ``probabilities``
    (batch, classes). A model with a mixture (``clf.baseline.network_weight``) also
    writes its baseline's two files, checked to score as the model's own baseline.
    Raises `LstmkitError` for a model that cannot be exported or whose export does not
    match PyTorch.
    """
    tokenizer, net = clf.require_fitted()
    net.eval()
    graph_net = copy.deepcopy(net)
    graph_net.rnn = exportable_rnn(net.rnn, fixed_time=False, what="text classifier")
    model = _TextGraph(graph_net).eval()
    inputs, outputs = ("ids", "lengths"), ("logits", "probabilities")
    cases = _text_cases(tokenizer.vocab_size, np.random.default_rng(0))
    has_mixture = clf.baseline is not None and clf.baseline.network_weight is not None
    mixed = clf.baseline if has_mixture else None

    @torch.inference_mode()
    def reference(feeds: Feeds) -> list[np.ndarray]:
        logits = net(torch.from_numpy(feeds["ids"]), torch.from_numpy(feeds["lengths"]))
        return [logits.numpy(), net.probabilities(logits).numpy()]

    def describe(feeds: Feeds) -> str:
        return f"batch {len(feeds['ids'])}, lengths {feeds['lengths'].tolist()}"

    def build(tmp: Path) -> tuple[dict[str, Any], dict[str, str]]:
        sample = cases[3]
        export_graph(
            model,
            (torch.from_numpy(sample["ids"]), torch.from_numpy(sample["lengths"])),
            tmp / GRAPH_FILE,
            inputs,
            outputs,
            {
                "ids": {0: "batch", 1: "time"},
                "lengths": {0: "batch"},
                "logits": {0: "batch"},
                "probabilities": {0: "batch"},
            },
        )
        check = verify(tmp / GRAPH_FILE, cases, reference, outputs, describe)
        mixture = None
        if mixed is not None:
            mixed.save(tmp)  # baseline.json and baseline.safetensors, beside the graph
            _verify_baseline(mixed, tmp, len(clf.classes))
            mixture = {"settings_file": SETTINGS_FILE, "weights_file": WEIGHTS_FILE}
        meta = {
            "inputs": list(inputs),
            "outputs": list(outputs),
            "config": clf.config.to_dict(),
            "labels": [c.item() if isinstance(c, np.generic) else c for c in clf.classes],
            "vocab_size": tokenizer.vocab_size,
            "tokenizer": tokenizer.config.to_dict(),
            "tokenizer_file": TOKENIZER_FILE,
            "mixture": mixture,
            "verification": check,
        }
        return meta, {TOKENIZER_FILE: tokenizer.to_json()}

    return write_export(out, TextPredictor.kind, build, TextPredictor.FILES)


def _verify_baseline(baseline: BagOfWordsBaseline, folder: Path, num_classes: int) -> None:
    """The baseline as the runtime reads it back from ``folder`` must score texts made of
    its own n-grams exactly as ``baseline`` does; else `LstmkitError`."""
    copy = BagOfWordsBaseline.read(
        folder / SETTINGS_FILE, folder / WEIGHTS_FILE, num_classes, folder, "nothing was written"
    )
    rng = np.random.default_rng(0)
    vocab = baseline.vocabulary
    texts = [" ".join(vocab[:40]), " ".join(vocab[-40:]), "unheard-of"]
    texts += [" ".join(rng.choice(vocab, size=min(len(vocab), 30))) for _ in range(5)]
    want, got = baseline.predict_proba(texts), copy.predict_proba(texts)
    if copy.network_weight != baseline.network_weight or not np.array_equal(got, want):
        raise LstmkitError(
            "ONNX export check failed: the exported bag-of-words baseline does not score as "
            "the model's own; nothing was written"
        )
