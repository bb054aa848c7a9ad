"""The ETTh1 benchmark's data handling (benchmarks/etth1.py): validation folds read only
their own rows, and the file's other columns become extra series standardised on their own
training rows, OT alone scored."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "etth1.py"
COLUMNS = ["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"]


def _module():
    spec = importlib.util.spec_from_file_location("etth1_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _csv(path: Path, rows: int, readable: int) -> None:
    """An ETTh1-shaped file whose rows from ``readable`` on cannot be parsed as numbers."""
    t = np.arange(rows)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"date": pd.date_range("2016-07-01", periods=rows, freq="h")})
    for k, col in enumerate(COLUMNS):
        frame[col] = (10 + k + np.sin(2 * np.pi * t / 24) + rng.normal(0, 0.1, rows)).astype(object)
    frame.loc[readable:, "OT"] = "test months"
    frame.loc[readable:, "HUFL"] = "test months"
    frame.to_csv(path, index=False)


def test_standardise_reads_the_training_rows_only_and_the_long_frame_puts_ot_first() -> None:
    bench = _module()
    raw = pd.DataFrame({"OT": [1.0, 3.0, 100.0], "HUFL": [2.0, 2.0 + 2.0, -50.0]})
    z = bench.standardise(raw, ["OT", "HUFL"], train=2)
    np.testing.assert_allclose(z["OT"], [-1.0, 1.0, 98.0])  # mean 2, std 1 of rows 0-1
    np.testing.assert_allclose(z["HUFL"], [-1.0, 1.0, -53.0])  # mean 3, std 1
    dates = pd.Series(pd.date_range("2020-01-01", periods=3, freq="h"))
    frame = bench.fit_frame(dates, z, rows=2)
    assert list(frame.columns) == ["date", "series", "value"]
    assert list(frame["series"]) == ["OT", "OT", "HUFL", "HUFL"]
    np.testing.assert_allclose(frame["value"], [-1.0, 1.0, -1.0, 1.0])
    alone = bench.fit_frame(dates, {"OT": z["OT"]}, rows=2)
    assert list(alone.columns) == ["date", "OT"] and len(alone) == 2


def test_validation_fold_a_with_extra_series_never_reads_later_rows(tmp_path: Path) -> None:
    """Fold A fits on rows [0, 5760) and validates on [5760, 8640): a file whose later rows
    are not numbers runs, with the six loads as extra series, and scores OT."""
    data = tmp_path / "ETTh1.csv"
    _csv(data, rows=12000, readable=8640)
    args = [
        sys.executable, str(SCRIPT), "--data", str(data), "--validation", "--fold", "A",
        "--horizons", "24", "--window", "48", "--threads", "1", "--extra-series", "all",
        "--set", "hidden_size=4", "batches_per_epoch=2", "patch=8",
        'train={"max_epochs": 1, "lr": 0.01, "early_stopping_patience": 1}',
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(SCRIPT.parents[1] / "src")}
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "extra series: HUFL, HULL, MUFL, MULL, LUFL, LULL" in proc.stdout
    assert "fold A H=24 validation: lstmkit MSE" in proc.stdout
    # the control: fold B reads rows up to 11520, and those rows are not numbers
    proc = subprocess.run(
        [*args[:6], "B", *args[7:]], capture_output=True, text=True, timeout=300, env=env
    )
    assert proc.returncode != 0 and "test months" in proc.stderr


def test_an_unknown_extra_series_is_one_error_line(tmp_path: Path) -> None:
    data = tmp_path / "ETTh1.csv"
    _csv(data, rows=100, readable=100)
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--data", str(data), "--validation",
         "--extra-series", "HUFL", "TEMP"],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(SCRIPT.parents[1] / "src")},
    )  # fmt: skip
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        "error: --extra-series: no column 'TEMP'; use HUFL, HULL, MUFL, MULL, LUFL, LULL"
    ]
