"""The seed example scripts run end to end (shortened with their own options)."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize(
    ("script", "args", "outputs"),
    [
        ("seed_004_air_passengers.py", ["--epochs", "2"],
         ["forecast_seed.png", "forecast_default.png", "training_seed.png"]),
        ("seed_002_stacked_regression.py", ["--epochs", "2", "--rows", "400"],
         ["loss_curves.png"]),
    ],
)  # fmt: skip
def test_example_runs(tmp_path: Path, script: str, args: list[str], outputs: list[str]) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script), "--out", str(out), *args],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in outputs:
        assert (out / name).read_bytes()[:4] == b"\x89PNG", name
    assert "MAPE" in proc.stdout or "test RMSE" in proc.stdout
