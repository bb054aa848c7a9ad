"""The M4 competition's wide format (one row a series) read directly, from the API and
the command line; ragged rows refused in one line."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_cli_forecast import run

from lstmkit.data.series import load_series
from lstmkit.errors import LstmkitError

#: three series of 30, 26 and 28 values, as the M4 files write them: every cell quoted,
#: shorter rows padded with empty quoted cells to the width of the longest
LENGTHS = {"W1": 30, "W2": 26, "W3": 28}


def _values(k: int, n: int) -> list[float]:
    t = np.arange(n)
    return np.round(100 * (k + 1) + 5 * np.sin(2 * np.pi * t / 4) + 0.5 * t, 3).tolist()


def _m4(path: Path, lengths: dict[str, int] = LENGTHS, hole: str | None = None) -> Path:
    width = max(lengths.values())
    lines = [",".join(f'"V{i + 1}"' for i in range(width + 1))]
    for k, (sid, n) in enumerate(lengths.items()):
        cells = [f'"{v}"' for v in _values(k, n)] + ['""'] * (width - n)
        if sid == hole:
            cells[3] = '""'  # a gap inside the series
        lines.append(",".join([f'"{sid}"', *cells]))
    text = "\n".join(lines) + "\n"
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def test_m4_wide_file_is_detected_and_read_row_by_row(tmp_path: Path) -> None:
    sd = load_series(_m4(tmp_path / "Weekly-train.csv.gz"))
    assert (sd.target, sd.id_col, sd.time_col, sd.freq) == ("value", "id", None, None)
    assert list(sd.series) == list(LENGTHS)
    for k, (sid, n) in enumerate(LENGTHS.items()):
        s = sd.series[sid]
        np.testing.assert_array_equal(s.values[:, 0], _values(k, n))  # the padding dropped
        assert list(s.times) == list(range(n))
    dated = load_series(tmp_path / "Weekly-train.csv.gz", format="m4-wide", start="2020-01-05",
                        freq="W-SUN")  # fmt: skip
    assert dated.freq == "W-SUN" and dated.time_col == "date"
    times = dated.series["W2"].times
    assert times[0] == pd.Timestamp("2020-01-05") and times[-1] == pd.Timestamp("2020-06-28")
    assert len(times) == 26


def test_m4_wide_refuses_a_gap_inside_a_row_and_named_columns(tmp_path: Path) -> None:
    path = _m4(tmp_path / "holes.csv", hole="W2")
    with pytest.raises(LstmkitError, match=r"series 'W2' \(row 2\) has an empty cell in column V5"):
        load_series(path)
    with pytest.raises(LstmkitError, match="has no columns to name"):
        load_series(_m4(tmp_path / "ok.csv"), target="V2", format="m4-wide")
    # a long table whose columns are not V1, V2, ... stays long
    long = pd.DataFrame({"id": ["a"] * 3, "value": [1.0, 2.0, 3.0]})
    assert load_series(long, "value", id_col="id").id_col == "id"


def test_cli_forecasts_an_m4_wide_file_and_refuses_a_ragged_one(tmp_path: Path, capsys) -> None:
    data = _m4(tmp_path / "Weekly-train.csv")
    out = tmp_path / "out"
    code, _, err = run([
        "forecast", str(data), "--horizon", "4", "--window", "8", "--season", "4",
        "--max-epochs", "1", "--hidden-size", "4", "--no-progress", "--out", str(out),
    ], capsys)  # fmt: skip
    assert code == 0, err
    future = pd.read_csv(out / "future.csv")
    assert list(future.columns[:3]) == ["id", "step", "forecast"]
    # each series continues from its own last step
    for sid, n in LENGTHS.items():
        assert future.loc[future["id"] == sid, "step"].tolist() == list(range(n, n + 4))

    bad = _m4(tmp_path / "ragged.csv", hole="W3")
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    argv = ["forecast", str(bad), "--format", "m4-wide", "--horizon", "4", "--max-epochs", "1",
            "--no-progress", "--out", str(out)]  # fmt: skip
    code, _, err = run(argv, capsys)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and "series 'W3'" in err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
