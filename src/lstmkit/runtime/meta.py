"""``export.json``, checked: every field of an export folder's description, and its graph.

An export is checked as strictly as a saved model folder, all of it at load, so that a
damaged or edited export is one `LstmkitError` line from `lstmkit.runtime.load`, never
an exception from onnxruntime or numpy at the first prediction:

- `read_export` reads ``export.json`` and checks every field: its JSON type (booleans
  are not numbers, floats not integers), its range, and its agreement with the other
  fields (no unknown or missing field). The fields every export has (`COMMON_FIELDS`)
  are checked here; those of its kind by the kind's ONNX predictor class
  (`ExportedKind`, found through `lstmkit.kinds`), with the helpers below. Every file a
  field names must lie inside the folder (`inside`): a relative path without ``..``
  whose real path, links followed, is in the folder. Every file listed in
  ``checksums`` (the graph and the kind's files, as exported) must still have its
  SHA-256 (`check_checksums`): another graph of the same shapes put in its place is
  refused, naming the file. Exports written before the field have none and load.
- `check_graph` checks the graph against the description: input and output names,
  element types, ranks and fixed sizes (the kind's ``graph_spec``), then one tiny run
  (its ``probe``) whose output shape must be the one the description implies.

``config`` (the model's training settings, whose classes need PyTorch) must be an
object; the kind checks the fields of it that its runtime uses. `export_kind` reads only
the kind, for `lstmkit export` deciding whether a folder may be replaced. No torch here.
"""

from __future__ import annotations

import json
import numbers
import re
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from lstmkit import kinds
from lstmkit.errors import LstmkitError
from lstmkit.io.checksum import file_checksum
from lstmkit.io.version import check_version
from lstmkit.runtime.session import EXPORT_FILE, FORMAT

#: the fields of every export.json, all required (a kind adds its own, `ExportedKind.FIELDS`)
COMMON_FIELDS = ("kind", "lstmkit_version", "format", "opset", "graph", "inputs", "outputs",
                 "config", "verification")  # fmt: skip
#: the field holding the SHA-256 of every file of the export but export.json (name -> hex
#: digest); optional, as exports written before it have none (they load unchecked)
CHECKSUMS = "checksums"
#: graph inputs or outputs: name -> (ONNX element type, dims), a dim None where free
GraphSpec = dict[str, tuple[str, tuple[int | None, ...]]]


class ExportedKind(Protocol):
    """What `read_export`, `check_graph` and `lstmkit.runtime.load` need of a kind's ONNX
    predictor class (``ModelKind.onnx_predictor``).

    ``FIELDS``: the export.json fields of this kind besides `COMMON_FIELDS` (all
    required); ``OPTIONAL_FIELDS`` (where the class has it): those an export may leave
    out, such as a part that only some of the kind's models have. ``FILES``: the files
    its export holds (or may hold) besides export.json and the graph.
    ``check_export(folder, meta)``: check those fields (raise `Damaged`). ``graph_spec(meta)``:
    the graph's inputs and outputs, in order, as the checked description implies them.
    ``probe(meta, inputs)``: one tiny input for the check run. ``cls(folder, meta,
    session)``: the predictor on a checked export.
    """

    kind: ClassVar[str]
    backend: ClassVar[str]
    FIELDS: ClassVar[tuple[str, ...]]
    FILES: ClassVar[tuple[str, ...]]

    def __init__(self, folder: Path, meta: dict[str, Any], session: Any) -> None: ...

    @classmethod
    def check_export(cls, folder: Path, meta: dict[str, Any]) -> None:
        """Check the kind's own fields of ``meta``; `Damaged` names the first wrong one."""
        ...

    @classmethod
    def graph_spec(cls, meta: dict[str, Any]) -> tuple[GraphSpec, GraphSpec]:
        """The graph's inputs and outputs, in order, as the checked ``meta`` implies them."""
        ...

    @classmethod
    def probe(cls, meta: dict[str, Any], inputs: GraphSpec) -> dict[str, np.ndarray]:
        """One tiny input (batch 1) for the graph check's run."""
        ...


class Damaged(LstmkitError):
    """A field of export.json is wrong; `read_export` says which file in front of it."""


def integer(meta: dict[str, Any], key: str, low: int, high: int | None = None) -> int:
    """Field ``key`` of ``meta``: an integer (not a boolean, not a float) in [low, high]."""
    value = meta[key]
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise Damaged(f"{key} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise Damaged(f"{key} must be {bound}, got {value}")
    return int(value)


def names(meta: dict[str, Any], key: str) -> list[str]:
    """Field ``key`` of ``meta``: a list of strings."""
    value = meta[key]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Damaged(f"{key} must be a list of names, got {value!r}")
    return value


def json_object(meta: dict[str, Any], key: str) -> dict[str, Any]:
    """Field ``key`` of ``meta``: a JSON object."""
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
    known = sorted(name for name in kinds.names() if kinds.get(name).exportable)
    if kind not in known:
        raise LstmkitError(f"{where}: unknown kind {kind!r}; expected one of {known}")
    return meta


def export_kind(folder: Path) -> str | None:
    """The kind of the export in ``folder`` (e.g. "forecaster"), or None when its
    export.json is missing, unreadable or not an lstmkit export."""
    try:
        return str(read_json(folder)["kind"])
    except LstmkitError:
        return None


def exported_kind(meta: dict[str, Any]) -> type[ExportedKind]:
    """The ONNX predictor class of the kind that `read_json` found in ``meta``."""
    return kinds.get(meta["kind"]).onnx_predictor_class()


def read_export(folder: Path) -> dict[str, Any]:
    """``folder/export.json`` with every field checked (see the module docstring).

    Raises `LstmkitError` in one line naming the file and the first wrong field.
    """
    meta = read_json(folder)
    where = folder / EXPORT_FILE
    try:
        _check_fields(folder, meta, exported_kind(meta))
    except Damaged as err:
        raise LstmkitError(
            f"{where} is damaged ({str(err)[:300]}); export the model again"
        ) from None
    check_checksums(folder, meta)
    return meta


def folder_checksums(folder: Path) -> dict[str, str]:
    """The ``checksums`` field for an export being written in ``folder``: the SHA-256 of
    every file in it but export.json, by name (sorted)."""
    return {
        path.name: file_checksum(path)
        for path in sorted(folder.iterdir())
        if path.is_file() and path.name != EXPORT_FILE
    }


def check_checksums(folder: Path, meta: dict[str, Any]) -> None:
    """Check every file that ``checksums`` lists against its SHA-256: a file changed after
    the export (another model's graph of the same shapes, an edited tokenizer) is one
    `LstmkitError` line naming it (a missing one is left to what reads it). An export
    without the field (written before it) is not checked. export.json itself is the
    reference: whoever edits it can edit the checksums too, so this guards against
    swapped or corrupted files, not against an edited description (which the field
    checks cover)."""
    for name, want in meta.get(CHECKSUMS, {}).items():
        path = folder / name
        if not path.is_file():
            continue  # missing: what reads it says so ("no such file; the export is incomplete")
        try:
            got = file_checksum(path)
        except OSError as err:
            raise LstmkitError(f"{path}: cannot read ({err}); export the model again") from None
        if got != want:
            raise LstmkitError(
                f"{path} does not match {EXPORT_FILE}'s checksum: the folder was changed after "
                "export; export the model again"
            )


def _check_checksums_field(folder: Path, meta: dict[str, Any]) -> None:
    """The optional ``checksums`` field: an object of files inside the folder (export.json
    not among them), each with a SHA-256 in lowercase hex."""
    if CHECKSUMS not in meta:
        return
    sums = json_object(meta, CHECKSUMS)
    for name, digest in sums.items():
        inside(folder, {CHECKSUMS: name}, CHECKSUMS)
        if name == EXPORT_FILE or not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise Damaged(
                f"{CHECKSUMS} must give each file but {EXPORT_FILE} a SHA-256 in hex, got "
                f"{name!r}: {digest!r}"[:200]
            )


_SHA256 = re.compile(r"[0-9a-f]{64}")


def _check_fields(folder: Path, meta: dict[str, Any], exported: type[ExportedKind]) -> None:
    required = (*COMMON_FIELDS, *exported.FIELDS)
    optional = {CHECKSUMS, *getattr(exported, "OPTIONAL_FIELDS", ())}
    unknown = sorted(set(meta) - {*required, *optional})
    missing = [key for key in required if key not in meta]
    if unknown:
        raise Damaged(f"unknown fields {unknown}")
    if missing:
        raise Damaged(f"missing fields {missing}")
    integer(meta, "opset", 1)
    inside(folder, meta, "graph")
    _check_checksums_field(folder, meta)
    inputs, outputs = names(meta, "inputs"), names(meta, "outputs")
    json_object(meta, "config")
    verification = json_object(meta, "verification")
    for key, value in verification.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise Damaged(f"verification {key} must be a number, got {value!r}")
    exported.check_export(folder, meta)
    want_in, want_out = (list(spec) for spec in exported.graph_spec(meta))
    title = kinds.get(meta["kind"]).title
    if inputs != want_in:
        raise Damaged(f"inputs must be {want_in} for this {title}, got {inputs}")
    if outputs != want_out:
        raise Damaged(f"outputs must be {want_out} for a {title}, got {outputs}")


# ---------------------------------------------------------------- the graph
def check_graph(folder: Path, meta: dict[str, Any], session: Any) -> None:
    """Check the graph of ``session`` against the checked description ``meta`` (see the
    module docstring); one `LstmkitError` line naming export.json otherwise."""
    where = folder / EXPORT_FILE
    graph = folder / meta["graph"]
    exported = exported_kind(meta)
    inputs, outputs = exported.graph_spec(meta)

    def compare(found: list[Any], want: dict[str, tuple], what: str) -> None:
        found_names = [arg.name for arg in found]
        if what == "inputs" and sorted(found_names) != sorted(want):
            raise LstmkitError(
                f"{where} does not match its graph {graph.name}: the graph takes the inputs "
                f"{found_names}, the export describes {list(want)}; export the model again"
            )
        by_name = {arg.name: arg for arg in found}
        for name, (kind, dims) in want.items():
            arg = by_name.get(name)
            if arg is None:
                raise LstmkitError(
                    f"{where} does not match its graph {graph.name}: the graph has no output "
                    f"{name!r} (it has {found_names}); export the model again"
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
    feeds = exported.probe(meta, inputs)
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
        want = [1 if d is None else d for d in dims]  # the probe's batch of 1
        if list(value.shape) != want:
            raise LstmkitError(
                f"{where} does not match its graph {graph.name}: output {name!r} has shape "
                f"{list(value.shape)} for one input, expected {want}; export the model again"
            )
