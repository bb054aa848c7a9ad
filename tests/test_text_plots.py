"""Text-classification figures: confusion matrix and gate heat map PNGs, written atomically."""

from __future__ import annotations

import numpy as np
import pytest

from lstmkit.plots.text import figure_png, gates_figure, plot_confusion_matrix, plot_gates
from lstmkit.tasks.text_classification import GateTrace

PNG = b"\x89PNG\r\n\x1a\n"


def _trace(rnn: str, attention: bool, tokens: int = 7, hidden: int = 5) -> GateTrace:
    rng = np.random.default_rng(0)
    names = ("input", "forget", "candidate", "output", "cell")
    if rnn == "gru":
        names = ("reset", "update", "candidate", "hidden")
    gates = {n: rng.uniform(0, 1, (tokens, hidden)) for n in names}
    weights = rng.dirichlet(np.ones(tokens)) if attention else None
    return GateTrace(
        tokens=[f"w{i}" for i in range(tokens)],
        gates=gates,
        attention=weights,
        probabilities=np.array([0.3, 0.7]),
        predicted="pos",
        classes=["neg", "pos"],
        layer=0,
        direction=0,
        rnn=rnn,
    )


def test_confusion_png(tmp_path):
    cm = np.array([[5, 1, 0], [2, 7, 1], [0, 0, 4]])
    path = plot_confusion_matrix(cm, ["a", "b", "c"], tmp_path / "sub" / "cm.png")
    assert path.read_bytes().startswith(PNG)
    assert [p.name for p in path.parent.iterdir()] == ["cm.png"]  # no temp file left


@pytest.mark.parametrize(("rnn", "attention"), [("lstm", False), ("lstm", True), ("gru", True)])
def test_gate_heat_map_png(tmp_path, rnn, attention):
    trace = _trace(rnn, attention)
    fig = gates_figure(trace)
    expected_rows = 4 + attention
    assert len([ax for ax in fig.axes if ax.get_label() != "<colorbar>"]) == expected_rows
    labels = [t.get_text() for t in fig.axes[expected_rows - 1].get_xticklabels()]
    assert labels == trace.tokens
    assert figure_png(fig).startswith(PNG)
    path = plot_gates(trace, tmp_path / "gates.png")
    assert path.read_bytes().startswith(PNG)


def test_long_text_is_cut_to_max_tokens():
    trace = _trace("lstm", False, tokens=300)
    fig = gates_figure(trace, max_tokens=50)
    assert len(fig.axes[3].get_xticklabels()) == 50
    assert "first 50 of 300 tokens" in fig._suptitle.get_text()


@pytest.mark.parametrize("bad", [0, -3, 2.5, "10"])
def test_max_tokens_must_be_a_positive_integer(tmp_path, bad):
    """Defect 5 (issue 8): max_tokens 0 ended in a matplotlib traceback."""
    from lstmkit.errors import LstmkitError

    with pytest.raises(LstmkitError, match="max_tokens must be a positive integer"):
        plot_gates(_trace("lstm", False), tmp_path / "g.png", max_tokens=bad)
    assert not list(tmp_path.iterdir())
