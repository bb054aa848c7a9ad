"""ONNX export of trained lstmkit models: the shared machinery (the PyTorch side;
`lstmkit.runtime` runs the result).

Each task's exporter (``tasks/<task>/export.py``, a baseline forecaster's
``baseline_export.py``; behind its estimator's ``export_onnx`` and named by its
`lstmkit.kinds` entry) builds the graph module and its sample inputs and
calls what is here: `exportable_rnn` (a recurrent layer ONNX can run), `export_graph`
(torch's exporter), `verify` (onnxruntime against PyTorch) and `write_export` (the whole
folder, atomically, never over a user's files). `export_model` exports a saved model
folder of any kind (``lstmkit export``), asking the registry which code does it. An
export folder holds::

    model.onnx      the network: dynamic batch (and, for text, dynamic length)
    export.json     kind, lstmkit_version, format, opset, input/output names, the task
                    config, what predicting needs (the kind's own fields) and the
                    SHA-256 of every other file (``checksums``, checked at load)
    ...             the files of the kind (a text classifier's tokenizer.json and the
                    baseline of its mixture)

How: a copy of the network in which each plain lstmkit LSTM/GRU layer is replaced by a
``torch.nn.LSTM`` / ``torch.nn.GRU`` holding the same ``state_dict`` (our parameter names
are torch's), with ``lengths`` given to it as a packed sequence, goes through torch's
TorchScript exporter (``dynamo=False``). That exporter turns the layer into ONNX
``LSTM`` / ``GRU`` nodes whose ``sequence_lens`` are the real lengths, so padded steps are
skipped exactly as `lstmkit.nn` skips them (both directions), and the pooling masks follow
from the same lengths; it also gives truly dynamic batch and time axes in well under a
second. (torch's dynamo exporter also emits LSTM nodes, but takes seconds and fixes the
time axis of the outputs' declared shapes.) Layers with ``layer_norm``, ``zoneout`` or
``peepholes`` have no ONNX node: a forecaster's encoder then goes in as our reference
loop unrolled over its fixed input window (dynamic batch still); a text classifier's
length is not fixed, so there they raise `LstmkitError` naming the option. ONNX has no
sLSTM/mLSTM operator either: a forecaster's ``SLSTM`` / ``MLSTM`` goes in the same way
(the mLSTM in its recurrent form, which equals the chunkwise one); a text classifier's is
refused in one line that names the PyTorch server as the alternative.

Every export checks itself before anything is written: onnxruntime runs the graph on
sample inputs (batch sizes 1, 2 and 7; for text several lengths with padding) and each
output must match the PyTorch model's within ``|onnx - torch| <= 1e-5 + 1e-5 |torch|``
(float32), else `LstmkitError` says which output differed by how much and the target
folder is left as it was.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lstmkit import __version__, kinds
from lstmkit.errors import LstmkitError
from lstmkit.io import recover_dir, staged_dir
from lstmkit.nn import GRU, LSTM, MLSTM, SLSTM
from lstmkit.runtime.meta import CHECKSUMS, export_kind, folder_checksums
from lstmkit.runtime.session import (
    DEFAULT_SUBFOLDER,
    EXPORT_FILE,
    FORMAT,
    GRAPH_FILE,
    open_session,
)

OPSET = 17
#: the self-check: |onnx - torch| <= ATOL + RTOL * |torch| for every output value
ATOL = 1e-5
RTOL = 1e-5
#: batch sizes the self-check runs
CHECK_BATCHES = (1, 2, 7)
#: the files of every export; a kind adds its own (``ExportedKind.FILES``)
COMMON_FILES = (EXPORT_FILE, GRAPH_FILE)

#: a graph's inputs for one run: input name -> array
Feeds = dict[str, np.ndarray]


class _TorchRNN(nn.Module):
    """``torch.nn.LSTM`` / ``GRU`` with a plain lstmkit layer's weights and its ``lengths=``.

    forward(x (batch, time, features) with batch_first, lengths (batch,) int64 or None) ->
    (output, final states) as the lstmkit layer returns them; with lengths the input is
    packed, which the exporter turns into the ONNX node's ``sequence_lens``.
    """

    def __init__(self, layer: LSTM | GRU) -> None:
        super().__init__()
        kwargs: dict[str, Any] = {
            "input_size": layer.input_size,
            "hidden_size": layer.hidden_size,
            "num_layers": layer.num_layers,
            "bias": layer.bias,
            "batch_first": layer.batch_first,
            "bidirectional": layer.bidirectional,
        }
        if isinstance(layer, LSTM):
            self.rnn: nn.Module = nn.LSTM(**kwargs, proj_size=layer.proj_size)
        else:
            self.rnn = nn.GRU(**kwargs)
        self.rnn.load_state_dict(layer.state_dict())
        self.rnn.eval()
        self.batch_first = layer.batch_first

    def forward(self, x: Tensor, hx: Any = None, *, lengths: Tensor | None = None) -> Any:
        if lengths is None:
            return self.rnn(x, hx)
        bf = self.batch_first
        packed = pack_padded_sequence(x, lengths, batch_first=bf, enforce_sorted=False)
        out, state = self.rnn(packed, hx)
        total = x.shape[1] if bf else x.shape[0]
        out, _ = pad_packed_sequence(out, batch_first=bf, total_length=total)
        return out, state


def _variants(layer: LSTM | GRU) -> list[str]:
    """The options of ``layer`` that change its eval-mode arithmetic from torch's cell."""
    cell = layer.cell
    found = []
    if cell.layer_norm:
        found.append("layer_norm")
    if any(cell.zoneout_p):
        found.append("zoneout")
    if getattr(cell, "peepholes", False):
        found.append("peepholes")
    return found


def exportable_rnn(layer: LSTM | GRU | SLSTM | MLSTM, *, fixed_time: bool, what: str) -> nn.Module:
    """A module computing ``layer`` in eval mode that torch's ONNX exporter can trace.

    Plain layers (recurrent dropout and DropConnect are off in eval) become `_TorchRNN`
    (ONNX LSTM/GRU nodes, any length). Layers with ``layer_norm``, ``zoneout`` or
    ``peepholes`` have no ONNX node: they run on a copy forced onto our reference loop,
    which the tracer unrolls step by step, so the graph's time axis is fixed; where it
    must not be (``fixed_time`` False) they raise `LstmkitError` naming the options.
    ``SLSTM`` / ``MLSTM`` layers (no ONNX operator) go the same way. ``what`` names the
    model in the message.
    """
    if isinstance(layer, SLSTM | MLSTM):
        # no ONNX node computes an sLSTM/mLSTM: our reference step loop, unrolled
        if not fixed_time:
            raise LstmkitError(
                f"cannot export this {what} to ONNX: ONNX has no {layer.mode} operator (only "
                "LSTM/GRU nodes) and its step loop unrolls only over a fixed length; serve "
                "the saved model with PyTorch instead (lstmkit serve MODEL)"
            )
        loop = copy.deepcopy(layer)
        loop.backend = "reference"
        return loop.eval()
    variants = _variants(layer)
    if not variants:
        return _TorchRNN(layer)
    if not fixed_time:
        raise LstmkitError(
            f"cannot export this {what} to ONNX: its {layer.mode} uses {', '.join(variants)}, "
            "which ONNX's LSTM/GRU nodes do not compute and which unroll only over a fixed "
            f"length; train it without {' / '.join(variants)} to export it"
        )
    loop = copy.deepcopy(layer)
    loop.backend = "reference"
    return loop.eval()


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence what torch's C++ exporter prints straight to file descriptor 2 (shape
    inference notes) and its Python deprecation warnings; errors still raise."""
    with tempfile.TemporaryFile() as sink, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        saved = os.dup(2)
        try:
            os.dup2(sink.fileno(), 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def export_graph(
    model: nn.Module,
    args: tuple[Tensor, ...],
    path: Path,
    inputs: Sequence[str],
    outputs: Sequence[str],
    dynamic_axes: dict[str, dict[int, str]],
) -> None:
    """Trace ``model`` on ``args`` and write the ONNX graph to ``path`` (opset `OPSET`,
    torch's TorchScript exporter); a failure is one `LstmkitError` line."""
    model.eval()
    try:
        with torch.no_grad(), _quiet_stderr():
            torch.onnx.export(
                model,
                args,
                str(path),
                dynamo=False,
                opset_version=OPSET,
                input_names=list(inputs),
                output_names=list(outputs),
                dynamic_axes=dynamic_axes,
                do_constant_folding=True,
            )
    except LstmkitError:
        raise
    except Exception as err:  # the exporter raises many kinds; say it in one line
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
        raise LstmkitError(
            f"torch could not export the model to ONNX ({type(err).__name__}: {first}); "
            "nothing was written"
        ) from None


def verify(
    graph: str | os.PathLike[str],
    cases: Sequence[Feeds],
    reference: Callable[[Feeds], Sequence[np.ndarray]],
    outputs: Sequence[str],
    describe: Callable[[Feeds], str],
) -> dict[str, Any]:
    """Run the exported graph on every case and compare it with PyTorch.

    Args:
        graph: the ``.onnx`` file.
        cases: input feeds (name -> array) to run.
        reference: the PyTorch model on the same feeds, one array per output.
        outputs: the graph's output names, in order.
        describe: a short description of a case for the error message.

    Returns:
        {"cases": n, "max_abs_diff": largest difference seen, "atol", "rtol"}.

    Raises:
        LstmkitError: an output's shape differs, or a value differs by more than
        ``ATOL + RTOL * |torch|``, or is not finite.
    """
    sess = open_session(graph)
    worst = 0.0
    for feeds in cases:
        got = sess.run(list(outputs), feeds)
        want = reference(feeds)
        for name, g, w in zip(outputs, got, want, strict=True):
            w = np.asarray(w, dtype=np.float32)
            if g.shape != w.shape:
                raise LstmkitError(
                    f"ONNX export check failed: output {name!r} has shape {list(g.shape)} in "
                    f"onnxruntime but {list(w.shape)} in PyTorch ({describe(feeds)}); nothing "
                    "was written"
                )
            diff = np.abs(g.astype(np.float64) - w.astype(np.float64))
            bad = ~(diff <= ATOL + RTOL * np.abs(w.astype(np.float64)))
            if bad.any():
                raise LstmkitError(
                    f"ONNX export check failed: output {name!r} differs from PyTorch by up to "
                    f"{np.nanmax(np.where(np.isfinite(diff), diff, np.inf)):.3g} "
                    f"({describe(feeds)}; allowed {ATOL:g} + {RTOL:g} x |value|); nothing "
                    "was written"
                )
            worst = max(worst, float(diff.max()) if diff.size else 0.0)
    return {"cases": len(cases), "max_abs_diff": worst, "atol": ATOL, "rtol": RTOL}


def check_target(out: str | os.PathLike[str], kind: str, files: Sequence[str]) -> Path:
    """Refuse, before any work, an export folder whose replacement would lose something.

    ``out`` may be new, an empty folder or an earlier export of the same ``kind`` holding
    only the files its export writes (`COMMON_FILES` and ``files``, the kind's own); the
    new export replaces it whole. A file, a folder with other content (a user's own files
    beside an export are named), an export of another kind or one whose export.json is
    not readable raises `LstmkitError`: lstmkit never empties a folder it did not write.
    """
    out = Path(out)
    recover_dir(out)
    if out.exists() and not out.is_dir():
        raise LstmkitError(f"--out {out} is a file; give a folder for the ONNX export")
    if not out.is_dir():
        return out
    names = sorted(p.name for p in out.iterdir())
    if not names:
        return out
    if EXPORT_FILE not in names:
        raise LstmkitError(
            f"--out {out} exists and is not an lstmkit export (no {EXPORT_FILE}); choose a new "
            "or empty folder"
        )
    found = export_kind(out)
    if found is None:
        raise LstmkitError(
            f"--out {out}: its {EXPORT_FILE} is not a readable lstmkit export, so what it holds "
            "is unknown; delete the folder first or choose another"
        )
    if found != kind:
        raise LstmkitError(
            f"cannot export a {kinds.get(kind).title} to {out}: it holds the export of a "
            f"{kinds.get(found).title}, which would be lost; choose another folder or delete "
            "it first"
        )
    foreign = [name for name in names if name not in (*COMMON_FILES, *files)]
    if foreign:
        shown = ", ".join(foreign[:5]) + (
            f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        )
        raise LstmkitError(
            f"--out {out} holds files an export does not write ({shown}), which replacing the "
            "export would delete; move them away or choose another folder"
        )
    return out


def write_export(
    out: str | os.PathLike[str],
    kind: str,
    build: Callable[[Path], tuple[dict[str, Any], dict[str, str]]],
    files: Sequence[str],
) -> Path:
    """Write an export folder atomically: ``build(tmp)`` writes ``tmp/model.onnx`` (and
    any other file of the kind) and verifies it, then returns the kind's export.json
    fields and extra text files (name -> text); the folder replaces ``out`` only when all
    of it succeeded, and only if ``out`` may still be replaced then (`check_target` with
    the kind's ``files``, run before and again after the build)."""
    out = check_target(out, kind, files)
    with staged_dir(out) as tmp:
        meta, files = build(tmp)
        for name, text in files.items():
            (tmp / name).write_text(text, encoding="utf-8")
        meta = {
            "kind": kind,
            "lstmkit_version": __version__,
            "format": FORMAT,
            "opset": OPSET,
            "graph": GRAPH_FILE,
            **meta,
            CHECKSUMS: folder_checksums(tmp),  # checked at load: a file swapped since is refused
        }
        (tmp / EXPORT_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")
        check_target(out, kind, files)  # a file put into ``out`` during the build is kept
    return out


# ---------------------------------------------------------------- a saved model folder
def export_model(
    model: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, fmt: str = FORMAT
) -> tuple[str, Path]:
    """Export the saved model folder ``model`` (of any kind that exports: `lstmkit.kinds`)
    to ``out`` (default: ``model/onnx``, where `lstmkit.runtime.load` and the server look).

    Returns (kind, the export folder). Raises `LstmkitError` for another format, a folder
    that is no lstmkit model, a kind that does not export, or a model that cannot be
    exported; nothing is written then.
    """
    if fmt != FORMAT:
        raise LstmkitError(f"--format must be {FORMAT!r} (the only export format), got {fmt!r}")
    kind = kinds.of_model_folder(model)
    files = kind.onnx_predictor_class().FILES
    target = Path(out) if out is not None else Path(model) / DEFAULT_SUBFOLDER
    check_target(target, kind.name, files)
    return kind.name, kind.export(kind.load(model), target)
