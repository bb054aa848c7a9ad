"""``export.json``, checked: every field of an export folder's description, and its graph.

An export is checked as strictly as a saved model folder, all of it at load, so that a
damaged or edited export is one `LstmkitError` line from `lstmkit.runtime.load`, never
an exception from onnxruntime or numpy at the first prediction:

- `read_export` reads ``export.json`` and checks every field: its JSON type (booleans
  are not numbers, floats not integers), its range, and its agreement with the other
  fields (no unknown or missing field). Labels are plain strings or integers;
  quantiles ascending numbers in (0, 1); a recursive forecaster has one step, no
  covariates and no ``future`` input. Every file it names (``graph``,
  ``tokenizer_file``) must lie inside the folder: a relative path without ``..`` whose
  real path, links followed, is in the folder.
- `check_graph` checks the graph against the description: input and output names,
  element types, ranks and fixed sizes, then one tiny run (a text of the highest token
  id; an all-zero window) whose output shape must be the one the description implies.

The settings objects themselves (``data``, ``scaler``, ``context``, ``tokenizer``) are
checked by their own classes when the predictors build them. ``config`` (the model's
training settings, whose classes need PyTorch) must be an object whose fields that the
runtime uses, or that repeat a field above, agree with it. `export_kind` reads only the
kind, for `lstmkit export` deciding whether a folder may be replaced. No torch here.
"""

from __future__ import annotations

import itertools
import json
import numbers
from pathlib import Path
from typing import Any

import numpy as np

from lstmkit.data.tokenize import TokenizerConfig
from lstmkit.errors import LstmkitError
from lstmkit.io.version import check_version
from lstmkit.runtime.session import EXPORT_FILE, FORMAT
from lstmkit.tasks.forecasting.state import FittedState

KINDS = ("text_classifier", "forecaster")
METHODS = ("direct", "recursive")
_COMMON = ("kind", "lstmkit_version", "format", "opset", "graph", "inputs", "outputs", "config",
           "verification")  # fmt: skip
#: the fields of export.json for each kind, all required
FIELDS = {
    "text_classifier": (*_COMMON, "labels", "vocab_size", "tokenizer", "tokenizer_file"),
    "forecaster": (*_COMMON, "data", "window", "horizon", "steps", "method", "quantiles", "seed",
                   "sample_paths", "max_path_batch", "scaler", "context"),
}  # fmt: skip
#: the most windows one recursive sample-path call may hold (the export writes 16384)
PATH_BATCH_LIMIT = 1 << 20


class Damaged(LstmkitError):
    """A field of export.json is wrong; `read_export` says which file in front of it."""


def _integer(meta: dict[str, Any], key: str, low: int, high: int | None = None) -> int:
    value = meta[key]
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise Damaged(f"{key} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise Damaged(f"{key} must be {bound}, got {value}")
    return int(value)


def _names(meta: dict[str, Any], key: str) -> list[str]:
    value = meta[key]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Damaged(f"{key} must be a list of names, got {value!r}")
    return value


def _object(meta: dict[str, Any], key: str) -> dict[str, Any]:
    value = meta[key]
    if not isinstance(value, dict):
        raise Damaged(f"{key} must be an object, got {type(value).__name__}")
    return value


def inside(folder: Path, meta: dict[str, Any], key: str) -> Path:
    """The file named by field ``key``, which must lie inside ``folder``: a relative path
    without ``..`` whose real path (links followed) is in the real ``folder``."""
    name = meta[key]
    if not isinstance(name, str) or not name.strip() or "\0" in name:
        raise Damaged(f"{key} must name a file of the export folder, got {name!r}")
    rel = Path(name)
    if rel.is_absolute() or ".." in rel.parts or "\\" in name:
        raise Damaged(
            f"{key} {name!r} points outside the export folder (an absolute path or '..'); "
            "only files inside it are read"
        )
    path = folder / rel
    try:
        real = path.resolve()
        real.relative_to(folder.resolve())
    except (OSError, RuntimeError, ValueError):
        raise Damaged(
            f"{key} {name!r} is a link leading outside the export folder; only files inside "
            "it are read"
        ) from None
    return path


def read_json(folder: Path) -> dict[str, Any]:
    """``folder/export.json`` as an object that says it is an lstmkit ONNX export of a known
    kind, written by this major version or an older one; else one `LstmkitError` line."""
    where = folder / EXPORT_FILE
    try:
        meta = json.loads(where.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise LstmkitError(
            f"{where} is not readable JSON ({err}); export the model again"
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise LstmkitError(f"{where} does not describe an lstmkit ONNX export; export again")
    if "lstmkit_version" not in meta:
        raise LstmkitError(f"{where} names no lstmkit_version; export the model again")
    check_version(meta["lstmkit_version"], str(where), "export the model again")
    kind = meta.get("kind")
    if kind not in KINDS:
        raise LstmkitError(f"{where}: unknown kind {kind!r}; expected one of {sorted(KINDS)}")
    return meta


def export_kind(folder: Path) -> str | None:
    """The kind of the export in ``folder`` ("text_classifier" / "forecaster"), or None
    when its export.json is missing, unreadable or not an lstmkit export."""
    try:
        return str(read_json(folder)["kind"])
    except LstmkitError:
        return None


def read_export(folder: Path) -> dict[str, Any]:
    """``folder/export.json`` with every field checked (see the module docstring).

    Raises `LstmkitError` in one line naming the file and the first wrong field.
    """
    meta = read_json(folder)
    where = folder / EXPORT_FILE
    try:
        _check_fields(folder, meta)
    except Damaged as err:
        raise LstmkitError(
            f"{where} is damaged ({str(err)[:300]}); export the model again"
        ) from None
    return meta


def _check_fields(folder: Path, meta: dict[str, Any]) -> None:
    kind = meta["kind"]
    known = FIELDS[kind]
    unknown = sorted(set(meta) - set(known))
    missing = [key for key in known if key not in meta]
    if unknown:
        raise Damaged(f"unknown fields {unknown}")
    if missing:
        raise Damaged(f"missing fields {missing}")
    _integer(meta, "opset", 1)
    inside(folder, meta, "graph")
    inputs, outputs = _names(meta, "inputs"), _names(meta, "outputs")
    config = _object(meta, "config")
    verification = _object(meta, "verification")
    for key, value in verification.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise Damaged(f"verification {key} must be a number, got {value!r}")
    if kind == "text_classifier":
        _check_text(folder, meta, config)
        want_in, want_out = ["ids", "lengths"], ["logits", "probabilities"]
    else:
        _check_forecaster(meta, config)
        future = bool(meta["data"].get("future_covariates")) and meta["method"] == "direct"
        want_in, want_out = (["x", "future"] if future else ["x"]), ["forecast"]
    if inputs != want_in:
        raise Damaged(f"inputs must be {want_in} for this {kind.replace('_', ' ')}, got {inputs}")
    if outputs != want_out:
        raise Damaged(f"outputs must be {want_out} for a {kind.replace('_', ' ')}, got {outputs}")


def _check_text(folder: Path, meta: dict[str, Any], config: dict[str, Any]) -> None:
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
    _integer(meta, "vocab_size", 3)
    try:
        TokenizerConfig.from_dict(_object(meta, "tokenizer"))
    except Damaged:
        raise
    except LstmkitError as err:
        raise Damaged(f"tokenizer: {err}") from None
    inside(folder, meta, "tokenizer_file")
    if "batch_size" not in config:
        raise Damaged("config names no batch_size")
    _integer(config, "batch_size", 1)  # the runtime's default batch is twice this
    if "tokenizer" in config and config["tokenizer"] != meta["tokenizer"]:
        raise Damaged("config tokenizer differs from the tokenizer field")


def _quantiles(value: Any) -> list[float] | None:
    if value is None:
        return None
    ok = isinstance(value, list) and all(
        isinstance(q, numbers.Real) and not isinstance(q, bool) for q in value
    )
    if not ok:
        raise Damaged(f"quantiles must be null or a list of numbers, got {value!r}")
    levels = [float(q) for q in value]
    if not all(0.0 < q < 1.0 for q in levels):  # NaN fails too
        raise Damaged(f"quantiles must lie strictly between 0 and 1, got {value!r}")
    if any(b <= a for a, b in itertools.pairwise(levels)):
        raise Damaged(f"quantiles must be distinct and ascending, got {value!r}")
    return levels


def _all_numbers(value: Any) -> bool:
    """Whether ``value`` is a number or a (nested) list of numbers; booleans are not."""
    if isinstance(value, list):
        return all(_all_numbers(v) for v in value)
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _series_parts(meta: dict[str, Any], key: str, parts: tuple[str, str]) -> None:
    """``scaler`` (its ``params``) or ``context``: an object of series, each an object whose
    ``parts`` are lists, of numbers but for the context's times (their sizes and
    finiteness are checked by `check_scaler` / `check_context` when the predictor is built)."""
    value = _object(meta, key)
    series = value.get("params") if key == "scaler" else value
    if not isinstance(series, dict):
        raise Damaged(f"{key} params must be an object of series, got {series!r}"[:200])
    for sid, entry in series.items():
        ok = isinstance(entry, dict) and all(isinstance(entry.get(part), list) for part in parts)
        if ok and not all(_all_numbers(entry[part]) for part in parts if part != "times"):
            ok = False
        if not ok:
            raise Damaged(
                f"{key} of series {sid!r} must be an object with the lists {list(parts)} (of "
                f"numbers), got {entry!r}"[:200]
            )


def _check_forecaster(meta: dict[str, Any], config: dict[str, Any]) -> None:
    try:
        state = FittedState.from_dict(_object(meta, "data"))
    except Damaged:
        raise
    except LstmkitError as err:
        raise Damaged(f"data: {err}") from None
    _series_parts(meta, "scaler", ("shift", "scale"))
    _series_parts(meta, "context", ("values", "times"))
    window = _integer(meta, "window", 2)
    if state.window != window:
        raise Damaged(f"window {window} differs from the data's window {state.window}")
    horizon = _integer(meta, "horizon", 1)
    method = meta["method"]
    if method not in METHODS:
        raise Damaged(f"method must be one of {list(METHODS)}, got {method!r}")
    steps = _integer(meta, "steps", 1)
    want = horizon if method == "direct" else 1
    if steps != want:
        raise Damaged(
            f"steps must be {want} for the {method} method with horizon {horizon}, got {steps}"
        )
    if method == "recursive" and state.covariates:
        raise Damaged("a recursive forecaster has no covariates (their future is unknown)")
    quantiles = _quantiles(meta["quantiles"])
    _integer(meta, "seed", 0, 2**32 - 1)  # numpy's RandomState takes 32 bits
    batch = _integer(meta, "max_path_batch", 1, PATH_BATCH_LIMIT)
    _integer(meta, "sample_paths", 1, batch)
    for key, value in (("horizon", horizon), ("method", method), ("window", window)):
        given = config.get(key, value)
        if (key != "window" or given is not None) and (type(given), given) != (type(value), value):
            raise Damaged(f"config {key} {given!r} differs from the {key} field {value!r}")
    if "quantiles" in config:
        try:
            same = _quantiles(config["quantiles"]) == quantiles
        except Damaged:
            same = False
        if not same:
            raise Damaged(
                f"config quantiles {config['quantiles']!r} differ from the quantiles field "
                f"{meta['quantiles']!r}"
            )


# ---------------------------------------------------------------- the graph
def _spec(meta: dict[str, Any]) -> tuple[dict[str, tuple], dict[str, tuple]]:
    """The inputs and outputs the description implies: name -> (element type, dims), a
    dim None where the graph may leave it free."""
    if meta["kind"] == "text_classifier":
        n = len(meta["labels"])
        inputs = {"ids": ("tensor(int64)", (None, None)), "lengths": ("tensor(int64)", (None,))}
        return inputs, {
            "logits": ("tensor(float)", (None, 1 if n == 2 else n)),
            "probabilities": ("tensor(float)", (None, n)),
        }
    data, steps = meta["data"], meta["steps"]
    n_features = 1 + len(data["covariates"])
    outputs = {"forecast": ("tensor(float)", (None, steps, 1 + len(meta["quantiles"] or [])))}
    inputs = {"x": ("tensor(float)", (None, meta["window"], n_features))}
    if "future" in meta["inputs"]:
        inputs["future"] = (
            "tensor(float)",
            (None, steps, len(data.get("future_covariates") or [])),
        )
    return inputs, outputs


def _probe(meta: dict[str, Any], inputs: dict[str, tuple]) -> dict[str, np.ndarray]:
    """One tiny input: a text of the highest token id, or all-zero windows."""
    if meta["kind"] == "text_classifier":
        ids = np.full((1, 1), meta["vocab_size"] - 1, dtype=np.int64)
        return {"ids": ids, "lengths": np.ones(1, dtype=np.int64)}
    return {name: np.zeros((1, *dims[1:]), dtype=np.float32) for name, (_, dims) in inputs.items()}


def check_graph(folder: Path, meta: dict[str, Any], session: Any) -> None:
    """Check the graph of ``session`` against the checked description ``meta`` (see the
    module docstring); one `LstmkitError` line naming export.json otherwise."""
    where = folder / EXPORT_FILE
    graph = folder / meta["graph"]
    inputs, outputs = _spec(meta)

    def compare(found: list[Any], want: dict[str, tuple], what: str) -> None:
        names = [arg.name for arg in found]
        if what == "inputs" and sorted(names) != sorted(want):
            raise LstmkitError(
                f"{where} does not match its graph {graph.name}: the graph takes the inputs "
                f"{names}, the export describes {list(want)}; export the model again"
            )
        by_name = {arg.name: arg for arg in found}
        for name, (kind, dims) in want.items():
            arg = by_name.get(name)
            if arg is None:
                raise LstmkitError(
                    f"{where} does not match its graph {graph.name}: the graph has no output "
                    f"{name!r} (it has {names}); export the model again"
                )
            shape = list(arg.shape)
            fits = arg.type == kind and len(shape) == len(dims)
            fits = fits and all(
                d is None or not isinstance(s, int) or s == d
                for s, d in zip(shape, dims, strict=False)
            )
            if not fits:
                raise LstmkitError(
                    f"{where} does not match its graph {graph.name}: {what[:-1]} {name!r} is "
                    f"{arg.type} {shape} in the graph, the export describes {kind} "
                    f"{['batch' if d is None else d for d in dims]}; export the model again"
                )

    compare(session.get_inputs(), inputs, "inputs")
    compare(session.get_outputs(), outputs, "outputs")
    feeds = _probe(meta, inputs)
    import onnxruntime as ort

    quiet = ort.RunOptions()
    quiet.log_severity_level = 4  # the failure is reported below, in one line, not logged too
    try:
        got = session.run(list(outputs), feeds, quiet)
    except Exception as err:  # onnxruntime raises its own exception types
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise LstmkitError(
            f"{where} does not match its graph {graph.name}: a test input fails ({first}); "
            "export the model again"
        ) from None
    for (name, (_, dims)), value in zip(outputs.items(), got, strict=True):
        want = [1, *dims[1:]]
        if list(value.shape) != want:
            raise LstmkitError(
                f"{where} does not match its graph {graph.name}: output {name!r} has shape "
                f"{list(value.shape)} for one input, expected {want}; export the model again"
            )
