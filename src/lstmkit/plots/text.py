"""Figures for text classification: confusion matrix, gate heat map, attention weights.

`plot_confusion_matrix` draws counts (row = true class, column = predicted) with
row percentages; `plot_gates` draws, for one text, a heat map per gate (input,
forget, output for an LSTM; reset, update for a GRU) and of the cell state
(hidden units x tokens), plus a bar of attention weights over the tokens when
the model pools with attention. Both render the PNG in memory (`figure_png`, also
used to store figures inside a model directory) and write it with
`lstmkit.io.atomic_write_bytes` (temporary file in the same folder, then a rename).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lstmkit.errors import LstmkitError
from lstmkit.io.atomic import atomic_write_bytes
from lstmkit.plots._save import plt

LSTM_PANELS = (
    ("input", "input gate i_t"),
    ("forget", "forget gate f_t"),
    ("output", "output gate o_t"),
    ("cell", "cell state C_t"),
)
GRU_PANELS = (
    ("reset", "reset gate r_t"),
    ("update", "update gate z_t"),
    ("candidate", "candidate h̃_t"),
    ("hidden", "hidden state h_t"),
)
#: an mLSTM's gates are per head (units = heads); an sLSTM's are the LSTM's panels
MLSTM_PANELS = (
    ("input", "input gate i'_t (per head)"),
    ("forget", "forget gate f'_t (per head)"),
    ("stabilizer", "stabiliser m_t (per head)"),
)
PANELS = {"lstm": LSTM_PANELS, "gru": GRU_PANELS, "slstm": LSTM_PANELS, "mlstm": MLSTM_PANELS}


def figure_png(fig, dpi: int = 120) -> bytes:
    """PNG bytes of ``fig`` (closed afterwards)."""
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    return buf.getvalue()


def confusion_figure(cm: np.ndarray, classes: Sequence[object], title: str | None = None):
    """Figure of a (classes, classes) confusion matrix, counts and row percentages."""
    cm = np.asarray(cm)
    k = len(classes)
    size = max(3.5, 0.7 * k + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of true class")
    labels = [str(c) for c in classes]
    ax.set_xticks(range(k), labels, rotation=45 if k > 4 else 0, ha="right" if k > 4 else "center")
    ax.set_yticks(range(k), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(k):
        for j in range(k):
            color = "white" if share[i, j] > 0.5 else "black"
            ax.text(
                j,
                i,
                f"{cm[i, j]}\n{share[i, j]:.0%}",
                ha="center",
                va="center",
                color=color,
                fontsize=9,
            )
    accuracy = np.trace(cm) / max(cm.sum(), 1)
    ax.set_title(title or f"confusion matrix (accuracy {accuracy:.1%}, n={cm.sum()})")
    return fig


def plot_confusion_matrix(
    cm: np.ndarray,
    classes: Sequence[object],
    path: str | os.PathLike[str],
    title: str | None = None,
) -> Path:
    """Save the confusion matrix (classes, classes) as a PNG at ``path``."""
    return atomic_write_bytes(path, figure_png(confusion_figure(cm, classes, title)))


def gates_figure(trace, max_tokens: int = 120):
    """Figure of a `GateTrace`: one heat map per gate/state (units x tokens), attention bars.

    Long texts show their first ``max_tokens`` tokens (at least 1).
    """
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise LstmkitError(f"max_tokens must be a positive integer, got {max_tokens!r}")
    panels = PANELS.get(trace.rnn, GRU_PANELS)
    panels = [(k, label) for k, label in panels if k in trace.gates]
    tokens = trace.tokens[:max_tokens]
    t = len(tokens)
    hidden = next(iter(trace.gates.values())).shape[1]
    n_rows = len(panels) + (trace.attention is not None)
    width = min(max(6.0, 0.28 * t + 2.5), 40.0)
    heights = [max(1.6, min(hidden, 64) * 0.05 + 1.2)] * len(panels)
    if trace.attention is not None:
        heights.append(1.4)
    fig, axes = plt.subplots(
        n_rows,
        1,
        figsize=(width, sum(heights) + 1.2),
        squeeze=False,
        gridspec_kw={"height_ratios": heights},
        sharex=True,
        layout="constrained",
    )
    axes = axes[:, 0]
    for ax, (key, label) in zip(axes, panels, strict=False):
        values = trace.gates[key][:t].T  # (hidden, tokens)
        if key in ("cell", "hidden", "candidate"):
            bound = float(np.abs(values).max()) or 1.0
            im = ax.imshow(
                values,
                aspect="auto",
                cmap="RdBu_r",
                vmin=-bound,
                vmax=bound,
                interpolation="nearest",
            )
        else:
            im = ax.imshow(
                values, aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest"
            )
        ax.set_ylabel(f"{label}\nunit")
        fig.colorbar(im, ax=ax, fraction=0.02, pad=0.01)
    if trace.attention is not None:
        ax = axes[-1]
        ax.bar(range(t), trace.attention[:t], color="tab:orange")
        ax.set_xlim(-0.5, t - 0.5)
        ax.set_ylabel("attention")
    axes[-1].set_xticks(range(t), tokens, rotation=90, fontsize=8)
    proba = ", ".join(
        f"{c}: {p:.2f}" for c, p in zip(trace.classes, trace.probabilities, strict=True)
    )
    direction = "backward" if trace.direction == 1 else "forward"
    more = f", first {t} of {len(trace.tokens)} tokens" if len(trace.tokens) > t else ""
    fig.suptitle(
        f"{trace.rnn.upper()} layer {trace.layer} ({direction}) on this text{more}: "
        f"predicted {trace.predicted!s} ({proba})"
    )
    return fig


def plot_gates(trace, path: str | os.PathLike[str], max_tokens: int = 120) -> Path:
    """Save the gate heat map of a `GateTrace` as a PNG at ``path``."""
    return atomic_write_bytes(path, figure_png(gates_figure(trace, max_tokens)))


def perplexity_png(
    history: Sequence[dict[str, float]], steps: Sequence[dict[str, float]] = ()
) -> bytes:
    """PNG of a language model's perplexity: the training curve over the tokens seen
    (``steps`` rows: tokens, train_loss) and the validation perplexity after each
    epoch (``history`` rows: val_loss, tokens). Losses are mean negative
    log-likelihoods per token, perplexity is their exponential (log scale)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    pts = [(r["tokens"], np.exp(min(r["train_loss"], 50.0))) for r in steps if "tokens" in r]
    if pts:
        xs, ys = zip(*pts, strict=True)
        ax.plot(xs, ys, "-", lw=1.2, label="training (running mean)")
    val = [
        (r.get("tokens", i + 1), np.exp(min(r["val_loss"], 50.0)))
        for i, r in enumerate(history)
        if "val_loss" in r and np.isfinite(r["val_loss"])
    ]
    if val:
        xs, ys = zip(*val, strict=True)
        ax.plot(xs, ys, "o--", label="validation (end of epoch)")
    ax.set_xlabel("training tokens seen" if pts else "epoch")
    ax.set_ylabel("perplexity")
    ax.set_yscale("log")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    ax.set_title("language-model pretraining")
    return figure_png(fig)
