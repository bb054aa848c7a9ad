"""Damaged and edited ONNX exports: every one is one `LstmkitError` line from `runtime.load`.

Real exports (a text classifier; a direct forecaster with covariates, a known future
covariate and a band; a recursive forecaster with a band) are copied and damaged in one
way each: a field of export.json of the wrong type, out of range or disagreeing with
another field or with the graph, a file named outside the folder (``..``, an absolute
path, a link leading out), another model's graph or tokenizer. Each must be refused at
load, in one line naming the export, never with another exception type and never later,
at the first prediction; the undamaged copy (and a link that stays inside the folder)
must load and predict.

The damaged copies drop export.json's ``checksums`` (as an export written before them has
none), so that each damage reaches the check made for it; the checksums themselves are
tested at the end: a file changed after the export (another model's graph of the same
shapes, an edited tokenizer or baseline) is refused by them, naming the file.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from lstmkit import runtime
from lstmkit.data.tokenize import TextTokenizer
from lstmkit.errors import LstmkitError

sys.path.insert(0, str(Path(__file__).parent))
from test_export_onnx import WORDS, fit_forecaster, make_series, make_texts, untrained_classifier

from lstmkit.tasks.text_classification.baseline import BagOfWordsBaseline

Edit = Callable[[dict[str, Any], Path, dict[str, Any]], None]


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, Any]:
    """The four exports (a text classifier without and with its mixture), a graph of each
    kind and a tokenizer with a larger vocabulary."""
    root = tmp_path_factory.mktemp("exports")
    clf = untrained_classifier(["neg", "pos"])
    clf.export_onnx(root / "text")
    texts, labels = make_texts(80, seed=4)  # the same with a mixture (its baseline exported)
    clf.baseline = BagOfWordsBaseline().fit(texts, [clf.classes.index(y) for y in labels], 2)
    clf.baseline.network_weight = 0.4
    clf.export_onnx(root / "mixed")
    fit_forecaster(
        make_series(), max_epochs=1, covariates=["temp", "promo"], future_covariates=["promo"]
    ).export_onnx(root / "direct")
    fit_forecaster(make_series(), max_epochs=1, method="recursive").export_onnx(root / "recursive")
    fit_forecaster(  # the same shapes as "direct", other weights
        make_series(seed=1), max_epochs=1, covariates=["temp", "promo"],
        future_covariates=["promo"], seed=7,
    ).export_onnx(root / "direct-other")  # fmt: skip
    extra = [" ".join(WORDS + [f"word{i}" for i in range(40)])]
    bigger = TextTokenizer.train(extra, clf.tokenizer.config)
    assert bigger.vocab_size > clf.tokenizer.vocab_size
    return {"root": root, "bigger_tokenizer": bigger.to_json(), "bigger": bigger.vocab_size}


def damaged_copy(
    exports: dict[str, Any], kind: str, tmp_path: Path, edit: Edit, checksums: bool = False
) -> Path:
    """A copy of the ``kind`` export at tmp_path/a/export (so that ../../x is tmp_path/x),
    with ``edit(meta, folder, exports)`` applied to its export.json and files; without
    its ``checksums`` (as written before them) unless ``checksums``."""
    folder = tmp_path / "a" / "export"
    shutil.copytree(exports["root"] / kind, folder)
    meta = json.loads((folder / "export.json").read_text())
    if not checksums:
        del meta["checksums"]
    edit(meta, folder, exports)
    (folder / "export.json").write_text(json.dumps(meta))
    return folder


def outside(folder: Path, name: str) -> Path:
    """A real copy of the export's file ``name`` outside the folder (tmp_path/outside-*)."""
    copy = folder.parent.parent / f"outside-{name}"
    shutil.copy(folder / name, copy)
    return copy


def setting(**values: Any) -> Edit:
    def edit(meta: dict, folder: Path, exports: dict) -> None:
        meta.update(values)

    return edit


def nested(part: str, **values: Any) -> Edit:
    def edit(meta: dict, folder: Path, exports: dict) -> None:
        meta[part].update(values)

    return edit


def drop(key: str) -> Edit:
    return lambda meta, folder, exports: meta.pop(key)


def graph_parent(meta, folder, exports):
    outside(folder, "model.onnx")
    meta["graph"] = "../../outside-model.onnx"


def graph_absolute(meta, folder, exports):
    meta["graph"] = str(outside(folder, "model.onnx").resolve())


def graph_symlink_out(meta, folder, exports):
    target = outside(folder, "model.onnx")
    (folder / "model.onnx").unlink()
    (folder / "model.onnx").symlink_to(target)


def tokenizer_parent(meta, folder, exports):
    outside(folder, "tokenizer.json")
    meta["tokenizer_file"] = "../../outside-tokenizer.json"


def tokenizer_absolute(meta, folder, exports):
    meta["tokenizer_file"] = str(outside(folder, "tokenizer.json").resolve())


def tokenizer_symlink_out(meta, folder, exports):
    target = outside(folder, "tokenizer.json")
    (folder / "tokenizer.json").unlink()
    (folder / "tokenizer.json").symlink_to(target)


def tokenizer_missing(meta, folder, exports):
    (folder / "tokenizer.json").unlink()


def tokenizer_garbage(meta, folder, exports):
    (folder / "tokenizer.json").write_text('{"not": "a tokenizer"}')


def tokenizer_bigger(meta, folder, exports):
    """A tokenizer with more tokens than the graph's embedding has rows, vocab_size agreeing."""
    (folder / "tokenizer.json").write_text(exports["bigger_tokenizer"])
    meta["vocab_size"] = exports["bigger"]


def mixture_parent(meta, folder, exports):
    outside(folder, "baseline.json")
    meta["mixture"]["settings_file"] = "../../outside-baseline.json"


def mixture_absolute(meta, folder, exports):
    meta["mixture"]["weights_file"] = str(outside(folder, "baseline.safetensors").resolve())


def mixture_symlink_out(meta, folder, exports):
    target = outside(folder, "baseline.safetensors")
    (folder / "baseline.safetensors").unlink()
    (folder / "baseline.safetensors").symlink_to(target)


def baseline_file(name: str, content: bytes | None) -> Edit:
    """The export's baseline file ``name`` replaced by ``content`` (None: deleted)."""

    def edit(meta, folder, exports):
        if content is None:
            (folder / name).unlink()
        else:
            (folder / name).write_bytes(content)

    return edit


def baseline_setting(**values: Any) -> Edit:
    """baseline.json of the export with ``values`` set."""

    def edit(meta, folder, exports):
        settings = json.loads((folder / "baseline.json").read_text())
        (folder / "baseline.json").write_text(json.dumps(settings | values))

    return edit


def graph_of(kind: str) -> Edit:
    def edit(meta, folder, exports):
        shutil.copy(exports["root"] / kind / "model.onnx", folder / "model.onnx")

    return edit


def config_tokenizer(meta, folder, exports):
    meta["tokenizer"]["max_length"] = "long"
    meta["config"]["tokenizer"]["max_length"] = "long"


def labels_three(meta, folder, exports):
    meta["labels"] = ["neg", "pos", "meh"]


def no_batch_size(meta, folder, exports):
    del meta["config"]["batch_size"]


def horizon_everywhere(value: int) -> Edit:
    """horizon, steps and config.horizon all agreeing with each other, not with the graph."""

    def edit(meta, folder, exports):
        meta["horizon"] = meta["steps"] = meta["config"]["horizon"] = value

    return edit


def quantiles_everywhere(value: Any) -> Edit:
    def edit(meta, folder, exports):
        meta["quantiles"] = meta["config"]["quantiles"] = value

    return edit


def window_everywhere(meta, folder, exports):
    meta["window"] = meta["data"]["window"] = meta["config"]["window"] = 13


def covariates_dropped(meta, folder, exports):
    """A description without covariates (inputs ["x"]) over a graph that takes 3 features
    and a future input."""
    meta["data"]["covariates"] = meta["data"]["future_covariates"] = []
    meta["inputs"] = ["x"]
    for series in meta["scaler"]["params"].values():
        series["shift"], series["scale"] = series["shift"][:1], series["scale"][:1]
    for ctx in meta["context"].values():
        ctx["values"] = [row[:1] for row in ctx["values"]]


def covariates_added(meta, folder, exports):
    meta["data"]["covariates"] = ["temp"]


def scaler_part(key: str, value: Any) -> Edit:
    def edit(meta, folder, exports):
        for series in meta["scaler"]["params"].values():
            series[key] = value

    return edit


def context_values(value: Any) -> Edit:
    def edit(meta, folder, exports):
        for ctx in meta["context"].values():
            ctx["values"] = value

    return edit


def context_times_reversed(meta, folder, exports):
    for ctx in meta["context"].values():  # the forecasts were dated from the first time
        ctx["times"] = ctx["times"][::-1]


def context_series_list(meta, folder, exports):
    meta["context"] = {sid: [1, 2] for sid in meta["context"]}


def context_unknown_series(meta, folder, exports):
    meta["context"] = {"elsewhere": next(iter(meta["context"].values()))}


COMMON: list[tuple[str, Edit]] = [
    ("kind-number", setting(kind=3)),
    ("no-kind", drop("kind")),
    ("format", setting(format="tflite")),
    ("version-number", setting(lstmkit_version=0.1)),
    ("version-newer", setting(lstmkit_version="99.0.0")),
    ("no-version", drop("lstmkit_version")),
    ("opset-string", setting(opset="17")),
    ("opset-bool", setting(opset=True)),
    ("opset-negative", setting(opset=-1)),
    ("graph-parent", graph_parent),
    ("graph-absolute", graph_absolute),
    ("graph-symlink-out", graph_symlink_out),
    ("graph-number", setting(graph=5)),
    ("graph-empty", setting(graph="")),
    ("graph-missing", setting(graph="nothing.onnx")),
    ("graph-is-json", setting(graph="export.json")),
    ("inputs-string", setting(inputs="x")),
    ("outputs-renamed", setting(outputs=["scores"])),
    ("config-list", setting(config=[])),
    ("verification-string", setting(verification="ok")),
    ("verification-junk", setting(verification={"cases": "three"})),
    ("unknown-field", setting(surprise=1)),
    ("no-config", drop("config")),
]

TEXT: list[tuple[str, Edit]] = [
    ("kind-forecaster", setting(kind="forecaster")),
    ("inputs-swapped", setting(inputs=["lengths", "ids"])),
    ("outputs-forecast", setting(outputs=["forecast"])),
    ("labels-3-vs-2-output-graph", labels_three),
    ("labels-objects", setting(labels=[{"name": "neg"}, {"name": "pos"}])),
    ("labels-lists", setting(labels=[["neg"], ["pos"]])),
    ("labels-fractions", setting(labels=[0.5, 1.5])),
    ("labels-bools", setting(labels=[True, False])),
    ("labels-null", setting(labels=[None, "pos"])),
    ("labels-mixed", setting(labels=["neg", 1])),
    ("labels-duplicate", setting(labels=["pos", "pos"])),
    ("labels-one", setting(labels=["pos"])),
    ("labels-string", setting(labels="neg,pos")),
    ("labels-blank", setting(labels=[" ", "pos"])),
    ("vocab-negative", setting(vocab_size=-1)),
    ("vocab-string", setting(vocab_size="13")),
    ("vocab-mismatch", setting(vocab_size=999)),
    ("tokenizer-settings-junk", config_tokenizer),
    ("tokenizer-not-object", setting(tokenizer="word")),
    ("tokenizer-config-differs", nested("tokenizer", max_length=7)),
    ("tokenizer-file-parent", tokenizer_parent),
    ("tokenizer-file-absolute", tokenizer_absolute),
    ("tokenizer-file-symlink-out", tokenizer_symlink_out),
    ("tokenizer-file-number", setting(tokenizer_file=7)),
    ("tokenizer-missing", tokenizer_missing),
    ("tokenizer-garbage", tokenizer_garbage),
    ("tokenizer-larger-than-graph", tokenizer_bigger),
    ("batch-size-0", nested("config", batch_size=0)),
    ("batch-size-negative", nested("config", batch_size=-4)),
    ("batch-size-fraction", nested("config", batch_size=1.5)),
    ("batch-size-string", nested("config", batch_size="64")),
    ("no-batch-size", no_batch_size),
    ("graph-of-a-forecaster", graph_of("recursive")),
    ("no-mixture-field", drop("mixture")),
    ("mixture-string", setting(mixture="baseline.json")),
    ("mixture-list", setting(mixture=["baseline.json", "baseline.safetensors"])),
    ("mixture-of-missing-files", setting(mixture={"settings_file": "baseline.json",
                                                  "weights_file": "baseline.safetensors"})),
]  # fmt: skip

MIXED: list[tuple[str, Edit]] = [
    ("mixture-parent", mixture_parent),
    ("mixture-absolute", mixture_absolute),
    ("mixture-symlink-out", mixture_symlink_out),
    ("mixture-one-file", setting(mixture={"settings_file": "baseline.json"})),
    ("mixture-extra-key", nested("mixture", pickle="baseline.pkl")),
    ("mixture-file-number", nested("mixture", weights_file=3)),
    ("baseline-weights-missing", baseline_file("baseline.safetensors", None)),
    ("baseline-weights-garbage", baseline_file("baseline.safetensors", b"\x80\x04pickle")),
    ("baseline-json-garbage", baseline_file("baseline.json", b"{not json")),
    ("baseline-no-weight", baseline_setting(network_weight=None)),
    ("baseline-weight-out-of-range", baseline_setting(network_weight=1.5)),
    ("baseline-three-classes", baseline_setting(num_classes=3)),
    ("baseline-format", baseline_setting(format="sklearn-pickle")),
    ("baseline-vocabulary-short", baseline_setting(vocabulary=["good"])),
]

DIRECT: list[tuple[str, Edit]] = [
    ("kind-text", setting(kind="text_classifier")),
    ("graph-of-a-text-classifier", graph_of("text")),
    ("horizon-negative", setting(horizon=-3)),
    ("scaler-negative-scale", scaler_part("scale", [-1.0, 1.0, 1.0])),  # a band upside down
    ("context-times-reversed", context_times_reversed),
    ("horizon-zero", setting(horizon=0)),
    ("horizon-float", setting(horizon=6.0)),
    ("horizon-bool", setting(horizon=True)),
    ("horizon-huge", setting(horizon=10**30)),
    ("horizon-vs-steps", setting(horizon=7)),
    ("horizon-vs-graph", horizon_everywhere(7)),
    ("horizon-vs-config", nested("config", horizon=12)),
    ("steps-zero", setting(steps=0)),
    ("steps-string", setting(steps="6")),
    ("window-1", setting(window=1)),
    ("window-vs-data", setting(window=13)),
    ("window-vs-graph", window_everywhere),
    ("window-string", setting(window="12")),
    ("quantiles-junk", setting(quantiles="junk")),
    ("quantiles-strings", setting(quantiles=["a", "b", "c"])),
    ("quantiles-unsorted", setting(quantiles=[0.9, 0.1, 0.5])),
    ("quantiles-out-of-range", setting(quantiles=[0, 0.5, 1])),
    ("quantiles-duplicate", setting(quantiles=[0.1, 0.1, 0.9])),
    ("quantiles-bools", setting(quantiles=[True, 0.5, 0.9])),
    ("quantiles-nan", setting(quantiles=[math.nan, 0.5, 0.9])),
    ("quantiles-objects", setting(quantiles=[{"q": 0.1}, 0.5, 0.9])),
    ("quantiles-vs-config", setting(quantiles=[0.2, 0.5, 0.8])),
    ("quantiles-fewer-than-graph", quantiles_everywhere([0.1, 0.9])),
    ("quantiles-none-vs-graph", quantiles_everywhere(None)),
    ("method-unknown", setting(method="sideways")),
    ("method-number", setting(method=1)),
    ("method-recursive", setting(method="recursive")),
    ("method-vs-config", nested("config", method="recursive")),
    ("seed-negative", setting(seed=-1)),
    ("seed-too-large", setting(seed=2**40)),
    ("seed-fraction", setting(seed=0.5)),
    ("sample-paths-string", setting(sample_paths="500")),
    ("inputs-without-future", setting(inputs=["x"])),
    ("inputs-extra", setting(inputs=["x", "future", "y"])),
    ("inputs-renamed", setting(inputs=["x", "fut"])),
    ("inputs-text", setting(inputs=["ids", "lengths"])),
    ("covariates-dropped", covariates_dropped),
    ("data-not-object", setting(data="y")),
    ("data-unknown-field", nested("data", colour="red")),
    ("data-future-not-covariate", nested("data", future_covariates=["rain"])),
    ("scaler-not-object", setting(scaler="minmax")),
    ("scaler-kind", nested("scaler", kind="cube")),
    ("scaler-short", scaler_part("shift", [1.0])),
    ("scaler-zero-scale", scaler_part("scale", [0.0, 1.0, 1.0])),
    ("scaler-strings", scaler_part("scale", ["a", "b", "c"])),
    ("context-list", setting(context=[])),
    ("context-empty", setting(context={})),
    ("context-series-list", context_series_list),
    ("context-strings", context_values("x")),
    ("context-short", context_values([[1.0, 2.0, 3.0]])),
    ("context-unknown-series", context_unknown_series),
]

RECURSIVE: list[tuple[str, Edit]] = [
    ("method-direct", setting(method="direct")),
    ("steps-horizon", setting(steps=6)),
    ("sample-paths-zero", setting(sample_paths=0)),
    ("sample-paths-negative", setting(sample_paths=-5)),
    ("sample-paths-fraction", setting(sample_paths=1.5)),
    ("sample-paths-huge", setting(sample_paths=10**9)),
    ("max-path-batch-zero", setting(max_path_batch=0)),
    ("max-path-batch-huge", setting(max_path_batch=10**12)),
    ("inputs-future", setting(inputs=["x", "future"])),
    ("covariates-added", covariates_added),
    ("graph-of-the-direct-forecaster", graph_of("direct")),
]

CASES = (
    [("text", name, edit) for name, edit in COMMON + TEXT]
    + [("direct", name, edit) for name, edit in COMMON + DIRECT]
    + [("recursive", name, edit) for name, edit in RECURSIVE]
    + [("mixed", name, edit) for name, edit in MIXED]
)


@pytest.mark.parametrize(
    "kind, edit", [(k, e) for k, _, e in CASES], ids=[f"{k}-{n}" for k, n, _ in CASES]
)
def test_a_damaged_export_is_one_line_at_load(exports, tmp_path, kind, edit):
    folder = damaged_copy(exports, kind, tmp_path, edit)
    with pytest.raises(LstmkitError) as err:
        runtime.load(folder)  # not a predictor that fails later: refused here
    message = str(err.value)
    assert type(err.value) is LstmkitError and "\n" not in message
    assert str(folder) in message  # names the export (its export.json or the file)


def predict(pred) -> Any:
    if pred.kind == "text_classifier":
        return pred.predict_proba(["a good film", "bad"], combined=pred.mixture_weight is not None)
    future = None
    if "future" in pred.inputs:
        times = pd.date_range("2008-01-01", periods=6, freq="MS")
        future = pd.DataFrame({"month": times, "promo": [0.0, 1.0, 0.0, 0.0, 1.0, 0.0]})
    return pred.predict(future=future)


def alias_inside(meta, folder, exports):
    (folder / "alias.onnx").symlink_to("model.onnx")  # a link that stays in the folder
    meta["graph"] = "alias.onnx"


@pytest.mark.parametrize("edit", [setting(), alias_inside], ids=["untouched", "link-inside"])
@pytest.mark.parametrize("kind", ["text", "mixed", "direct", "recursive"])
def test_an_intact_copy_loads_and_predicts(exports, tmp_path, kind, edit):
    folder = damaged_copy(exports, kind, tmp_path, edit)
    pred = runtime.load(folder)
    got = predict(pred)
    assert len(got) == (2 if kind in ("text", "mixed") else 6)
    if kind in ("text", "mixed"):
        assert pred.mixture_weight == (0.4 if kind == "mixed" else None)


def test_the_graph_outside_is_never_opened(exports, tmp_path):
    """'../../outside-model.onnx' names a usable graph: it is refused, not read."""
    folder = damaged_copy(exports, "text", tmp_path, graph_parent)
    assert (folder / "../../outside-model.onnx").is_file()
    with pytest.raises(LstmkitError, match=r"graph '\.\./\.\./outside-model\.onnx' points outside"):
        runtime.load(folder)


# ---------------------------------------------------------------- checksums
EXPORTED_FILES = {
    "text": ["model.onnx", "tokenizer.json"],
    "mixed": ["baseline.json", "baseline.safetensors", "model.onnx", "tokenizer.json"],
    "direct": ["model.onnx"],
    "recursive": ["model.onnx"],
}


@pytest.mark.parametrize("kind", sorted(EXPORTED_FILES))
def test_an_export_records_the_sha256_of_each_of_its_files(exports, kind):
    folder = exports["root"] / kind
    meta = json.loads((folder / "export.json").read_text())
    assert sorted(meta["checksums"]) == EXPORTED_FILES[kind]
    on_disk = sorted(p.name for p in folder.iterdir())
    assert on_disk == sorted([*EXPORTED_FILES[kind], "export.json"])
    for name, digest in meta["checksums"].items():
        assert digest == hashlib.sha256((folder / name).read_bytes()).hexdigest()


def file_replaced(name: str, by: Callable[[dict[str, Any]], bytes]) -> Edit:
    def edit(meta, folder, exports):
        (folder / name).write_bytes(by(exports))

    return edit


def other_direct_graph(exports):
    """The graph of a forecaster of the same shapes fitted on other data with another seed."""
    return (exports["root"] / "direct-other" / "model.onnx").read_bytes()


def baseline_weight(meta, folder, exports):
    settings = json.loads((folder / "baseline.json").read_text())
    (folder / "baseline.json").write_text(json.dumps(settings | {"network_weight": 0.9}))


SWAPPED: list[tuple[str, str, str, Edit]] = [
    ("direct", "graph-of-the-same-shapes", "model.onnx",
     file_replaced("model.onnx", other_direct_graph)),
    ("text", "tokenizer-bigger", "tokenizer.json", tokenizer_bigger),
    ("text", "graph-truncated", "model.onnx",
     lambda meta, folder, exports: (folder / "model.onnx").write_bytes(b"")),
    ("mixed", "baseline-weight-edited", "baseline.json", baseline_weight),
]  # fmt: skip


@pytest.mark.parametrize(
    "kind, name, edit", [(k, f, e) for k, _, f, e in SWAPPED], ids=[c[1] for c in SWAPPED]
)
def test_a_file_changed_after_export_is_refused_by_its_checksum(
    exports, tmp_path, kind, name, edit
):
    folder = damaged_copy(exports, kind, tmp_path, edit, checksums=True)
    with pytest.raises(LstmkitError) as err:
        runtime.load(folder)
    assert type(err.value) is LstmkitError
    assert str(err.value) == (
        f"{folder / name} does not match export.json's checksum: the folder was changed after "
        "export; export the model again"
    )


def test_a_same_shape_graph_loads_unseen_without_checksums(exports, tmp_path):
    """What the checksum closes: the other forecaster's graph passes every other check (an
    export written before checksums still loads so) and forecasts differently."""
    swap = file_replaced("model.onnx", other_direct_graph)
    own = predict(runtime.load(damaged_copy(exports, "direct", tmp_path / "own", setting())))
    got = predict(runtime.load(damaged_copy(exports, "direct", tmp_path / "swap", swap)))
    assert not np.allclose(got["forecast"], own["forecast"])


def checksum_of(name: str, value: Any) -> Edit:
    def edit(meta, folder, exports):
        meta["checksums"][name] = value

    return edit


BAD_CHECKSUMS: list[tuple[str, Edit]] = [
    ("not-an-object", setting(checksums=["model.onnx"])),
    ("digest-number", checksum_of("model.onnx", 5)),
    ("digest-short", checksum_of("model.onnx", "ab12")),
    ("digest-upper", checksum_of("model.onnx", "A" * 64)),
    ("of-export-json", checksum_of("export.json", "0" * 64)),
    ("file-outside", checksum_of("../../x.onnx", "0" * 64)),
    ("digest-wrong", checksum_of("model.onnx", "0" * 64)),
]


@pytest.mark.parametrize("edit", [e for _, e in BAD_CHECKSUMS], ids=[n for n, _ in BAD_CHECKSUMS])
def test_a_damaged_checksums_field_is_one_line_at_load(exports, tmp_path, edit):
    folder = damaged_copy(exports, "direct", tmp_path, edit, checksums=True)
    with pytest.raises(LstmkitError) as err:
        runtime.load(folder)
    message = str(err.value)
    assert type(err.value) is LstmkitError and "\n" not in message and str(folder) in message


@pytest.mark.parametrize("kind", ["text", "mixed", "direct", "recursive"])
def test_an_intact_copy_with_its_checksums_loads_and_predicts(exports, tmp_path, kind):
    folder = damaged_copy(exports, kind, tmp_path, setting(), checksums=True)
    assert len(predict(runtime.load(folder))) == (2 if kind in ("text", "mixed") else 6)


def test_a_series_without_scaling_is_named_with_the_export_s_scaler_field(exports, tmp_path):
    """An export has no scaler.json, which the message used to name."""
    folder = damaged_copy(exports, "direct", tmp_path, context_unknown_series)
    with pytest.raises(LstmkitError) as err:
        runtime.load(folder)
    assert str(err.value) == (
        f"{folder / 'export.json'} is damaged (series 'elsewhere' has no scaling parameters in "
        "the export's scaler field); export the model again"
    )
