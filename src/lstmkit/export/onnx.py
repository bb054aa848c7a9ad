"""ONNX export of trained lstmkit models (the PyTorch side; `lstmkit.runtime` runs the result).

`export_text_classifier` and `export_forecaster` (behind `TextClassifier.export_onnx` and
`Forecaster.export_onnx`) write a folder::

    model.onnx      the network: dynamic batch (and, for text, dynamic length)
    export.json     kind, lstmkit_version, format, opset, input/output names, the task
                    config and what predicting needs (labels and truncation for text;
                    fitted data, scaler, context, horizon, quantiles for forecasts)
    tokenizer.json  (text only) the Hugging Face tokenizer the model was trained with

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
length is not fixed, so there they raise `LstmkitError` naming the option.

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

from lstmkit import __version__
from lstmkit.errors import LstmkitError
from lstmkit.io import recover_dir, staged_dir
from lstmkit.nn import GRU, LSTM
from lstmkit.runtime.meta import export_kind
from lstmkit.runtime.session import (
    DEFAULT_SUBFOLDER,
    EXPORT_FILE,
    EXPORT_FILES,
    FORMAT,
    GRAPH_FILE,
    TOKENIZER_FILE,
    open_session,
)
from lstmkit.tasks.forecasting.module import MAX_PATH_BATCH, SAMPLE_PATHS

OPSET = 17
#: the self-check: |onnx - torch| <= ATOL + RTOL * |torch| for every output value
ATOL = 1e-5
RTOL = 1e-5
#: batch sizes the self-check runs
CHECK_BATCHES = (1, 2, 7)

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


def exportable_rnn(layer: LSTM | GRU, *, fixed_time: bool, what: str) -> nn.Module:
    """A module computing ``layer`` in eval mode that torch's ONNX exporter can trace.

    Plain layers (recurrent dropout and DropConnect are off in eval) become `_TorchRNN`
    (ONNX LSTM/GRU nodes, any length). Layers with ``layer_norm``, ``zoneout`` or
    ``peepholes`` have no ONNX node: they run on a copy forced onto our reference loop,
    which the tracer unrolls step by step, so the graph's time axis is fixed; where it
    must not be (``fixed_time`` False) they raise `LstmkitError` naming the options.
    ``what`` names the model in the message.
    """
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


def _export_graph(
    model: nn.Module,
    args: tuple[Tensor, ...],
    path: Path,
    inputs: Sequence[str],
    outputs: Sequence[str],
    dynamic_axes: dict[str, dict[int, str]],
) -> None:
    """Trace ``model`` on ``args`` and write the ONNX graph to ``path``."""
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


def check_target(out: str | os.PathLike[str], kind: str) -> Path:
    """Refuse, before any work, an export folder whose replacement would lose something.

    ``out`` may be new, an empty folder or an earlier export of the same ``kind`` holding
    only the files an export writes (`EXPORT_FILES`); the new export replaces it whole.
    A file, a folder with other content (a user's own files beside an export are named),
    an export of the other kind or one whose export.json is not readable raises
    `LstmkitError`: lstmkit never empties a folder it did not write.
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
    foreign = [name for name in names if name not in EXPORT_FILES]
    if foreign:
        shown = ", ".join(foreign[:5]) + (
            f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        )
        raise LstmkitError(
            f"--out {out} holds files an export does not write ({shown}), which replacing the "
            "export would delete; move them away or choose another folder"
        )
    found = export_kind(out)
    if found is None:
        raise LstmkitError(
            f"--out {out}: its {EXPORT_FILE} is not a readable lstmkit export, so what it holds "
            "is unknown; delete the folder first or choose another"
        )
    if found != kind:
        raise LstmkitError(
            f"cannot export a {kind.replace('_', ' ')} to {out}: it holds the export of a "
            f"{found.replace('_', ' ')}, which would be lost; choose another folder or delete "
            "it first"
        )
    return out


def write_export(
    out: str | os.PathLike[str],
    kind: str,
    build: Callable[[Path], tuple[dict[str, Any], dict[str, str]]],
) -> Path:
    """Write an export folder atomically: ``build(tmp)`` writes ``tmp/model.onnx`` and
    verifies it, then returns the export.json content and extra text files; the folder
    replaces ``out`` only when all of it succeeded, and only if ``out`` may still be
    replaced then (`check_target`, run before and again after the build)."""
    out = check_target(out, kind)
    with staged_dir(out) as tmp:
        meta, files = build(tmp)
        meta = {
            "kind": kind,
            "lstmkit_version": __version__,
            "format": FORMAT,
            "opset": OPSET,
            "graph": GRAPH_FILE,
            **meta,
        }
        (tmp / EXPORT_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")
        for name, text in files.items():
            (tmp / name).write_text(text, encoding="utf-8")
        check_target(out, kind)  # a file put into ``out`` during the build is not lost
    return out


# ---------------------------------------------------------------- text classifier
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
    (batch, classes). Raises `LstmkitError` for a model that cannot be exported or whose
    export does not match PyTorch.
    """
    tokenizer, net = clf._require_fitted()
    net.eval()
    graph_net = copy.deepcopy(net)
    graph_net.rnn = exportable_rnn(net.rnn, fixed_time=False, what="text classifier")
    model = _TextGraph(graph_net).eval()
    inputs, outputs = ("ids", "lengths"), ("logits", "probabilities")
    cases = _text_cases(tokenizer.vocab_size, np.random.default_rng(0))

    @torch.inference_mode()
    def reference(feeds: Feeds) -> list[np.ndarray]:
        logits = net(torch.from_numpy(feeds["ids"]), torch.from_numpy(feeds["lengths"]))
        return [logits.numpy(), net.probabilities(logits).numpy()]

    def describe(feeds: Feeds) -> str:
        return f"batch {len(feeds['ids'])}, lengths {feeds['lengths'].tolist()}"

    def build(tmp: Path) -> tuple[dict[str, Any], dict[str, str]]:
        sample = cases[3]
        _export_graph(
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
        meta = {
            "inputs": list(inputs),
            "outputs": list(outputs),
            "config": clf.config.to_dict(),
            "labels": [c.item() if isinstance(c, np.generic) else c for c in clf.classes],
            "vocab_size": tokenizer.vocab_size,
            "tokenizer": tokenizer.config.to_dict(),
            "tokenizer_file": TOKENIZER_FILE,
            "verification": check,
        }
        return meta, {TOKENIZER_FILE: tokenizer.to_json()}

    return write_export(out, "text_classifier", build)


# ---------------------------------------------------------------- forecaster
class _ForecastGraph(nn.Module):
    """x (batch, window, features) scaled [, future (batch, steps, n_future) scaled] ->
    forecast (batch, steps, outputs) scaled: `ForecastModule.forward` (instance
    normalisation, encoder, head, de-normalisation)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: Tensor, future: Tensor | None = None) -> Tensor:
        return self.module(x, future)


def export_forecaster(fc: Any, out: str | os.PathLike[str]) -> Path:
    """Export a fitted `Forecaster` to the folder ``out`` (see the module docstring).

    Graph: ``x`` (batch, window, features) float32, scaled by the series' scaler, target
    in feature 0 [and ``future`` (batch, steps, n_future) float32, the scaled known
    covariates over the horizon] -> ``forecast`` (batch, steps, 1 + quantiles) scaled,
    where steps is the horizon (direct) or 1 (recursive: `lstmkit.runtime` feeds it back
    and simulates the band's sample paths as `Forecaster` does, same seed).
    """
    fc._require_fitted()
    module, cfg, state = fc.module, fc.config, fc.state
    module.eval()
    graph_module = copy.deepcopy(module)
    graph_module.net.rnn = exportable_rnn(module.net.rnn, fixed_time=True, what="forecaster")
    model = _ForecastGraph(graph_module).eval()
    steps, n_future = module.net.steps, module.net.n_future
    window, n_features = state.window, state.n_features
    inputs = ("x", "future") if n_future else ("x",)
    outputs = ("forecast",)
    rng = np.random.default_rng(0)
    cases: list[Feeds] = []
    contexts = [
        fc.scaler.transform(sid, np.asarray(ctx["values"], dtype=np.float64))
        for sid, ctx in fc.context.items()
    ]
    for batch in CHECK_BATCHES:
        x = rng.normal(size=(batch, window, n_features))
        x[0] = contexts[batch % len(contexts)]  # a real window beside random ones
        feeds = {"x": x.astype(np.float32)}
        if n_future:
            feeds["future"] = rng.normal(size=(batch, steps, n_future)).astype(np.float32)
        cases.append(feeds)

    @torch.inference_mode()
    def reference(feeds: Feeds) -> list[np.ndarray]:
        fut = torch.from_numpy(feeds["future"]) if n_future else None
        return [module(torch.from_numpy(feeds["x"]), fut).numpy()]

    def describe(feeds: Feeds) -> str:
        return f"batch {len(feeds['x'])}"

    def build(tmp: Path) -> tuple[dict[str, Any], dict[str, str]]:
        sample = cases[-1]
        args = tuple(torch.from_numpy(sample[name]) for name in inputs)
        axes = {name: {0: "batch"} for name in (*inputs, *outputs)}
        _export_graph(model, args, tmp / GRAPH_FILE, inputs, outputs, axes)
        check = verify(tmp / GRAPH_FILE, cases, reference, outputs, describe)
        settings = cfg.to_dict()
        for key in ("checkpoint_dir", "logger", "log_dir"):  # the run's folders, as save() drops
            settings["train"][key] = None
        meta = {
            "inputs": list(inputs),
            "outputs": list(outputs),
            "config": settings,
            "data": state.to_dict(),
            "window": window,
            "horizon": cfg.horizon,
            "steps": steps,
            "method": cfg.method,
            "quantiles": cfg.quantiles,
            "seed": cfg.train.seed,
            "sample_paths": SAMPLE_PATHS,
            "max_path_batch": MAX_PATH_BATCH,
            "scaler": fc.scaler.to_dict(),
            "context": fc.context,
            "verification": check,
        }
        return meta, {}

    return write_export(out, "forecaster", build)


# ---------------------------------------------------------------- a saved model folder
def export_model(
    model: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, fmt: str = FORMAT
) -> tuple[str, Path]:
    """Export the saved model folder ``model`` (a forecaster or a text classifier) to
    ``out`` (default: ``model/onnx``, where `lstmkit.runtime.load` and the server look).

    Returns (kind, the export folder). Raises `LstmkitError` for another format, a folder
    that is no lstmkit model, or a model that cannot be exported; nothing is written then.
    """
    if fmt != FORMAT:
        raise LstmkitError(f"--format must be {FORMAT!r} (the only export format), got {fmt!r}")
    model = Path(model)
    where = model / "config.json"
    if not model.is_dir():
        raise LstmkitError(f"--model {model} is not a folder; pass a model folder saved by lstmkit")
    try:
        kind = json.loads(where.read_text(encoding="utf-8"))["kind"]
    except (OSError, ValueError, KeyError, TypeError):
        raise LstmkitError(
            f"--model {model} is not an lstmkit model folder (no readable config.json with a "
            "kind); pass a folder written by 'lstmkit forecast' or 'lstmkit classify train'"
        ) from None
    if kind not in ("forecaster", "text_classifier"):
        raise LstmkitError(
            f"{where}: unknown model kind {kind!r}; expected forecaster/text_classifier"
        )
    target = Path(out) if out is not None else model / DEFAULT_SUBFOLDER
    check_target(target, kind)
    if kind == "forecaster":
        from lstmkit.tasks.forecasting import Forecaster

        return kind, Forecaster.load(model).export_onnx(target)
    from lstmkit.tasks.text_classification import TextClassifier

    return kind, TextClassifier.load(model).export_onnx(target)
