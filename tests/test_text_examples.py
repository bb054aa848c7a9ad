"""The seed example that needs no data runs as a script and checks the (32, 5) shape."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("pooling", ["mean", "attention"])
def test_seed_001_runs(pooling, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["seed_001_mean_pooling.py", "--pooling", pooling])
    runpy.run_path(str(EXAMPLES / "seed_001_mean_pooling.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "input (32, 10, 100) -> output (32, 5)" in out
    assert "padding check passed" in out
