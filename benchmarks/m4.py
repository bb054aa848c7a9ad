"""M4 Weekly (359 series, horizon 13) through the long-CSV path, as a user runs it.

The competition's Weekly-train file is turned into a long CSV (id, week, value; the
file has no dates, so every series gets weekly dates from 2000-01-03) and forecast as
``lstmkit forecast long.csv --id-col id --horizon 13 --season 52 --holdout 0`` does it
(`lstmkit.tasks.forecasting.run.forecast_run` with the CLI's defaults, plus any
``--set key=json`` overrides); the ``future.csv`` forecast (`ForecastRun.ahead`) is
scored with the competition's own definitions (M4 `Benchmarks and Evaluation.R`):
sMAPE = mean 200|y-f|/(|y|+|f|); MASE = mean |y-f| over the in-sample mean absolute
change at the series' frequency, which M4-info gives as 1 for weekly data; OWA = the
mean of sMAPE and MASE relative to Naive2's, Naive2 being the naive forecast of the
seasonally adjusted series, for frequency 1 the plain naive (no seasonality test).

``--validation`` (the only mode run while choosing the design): the last 13 weeks of each
training series are held out and scored; the test file is never opened. Without it the
model is fitted on the whole training file and scored on Weekly-test once (for the
final table only). (With 13 weeks held out the shortest series has 67 weeks, too few for
the default window of 52 plus a validation stretch, so validation-mode fits train without
early stopping on validation; the full run keeps 13 weeks of validation.)

    python benchmarks/m4.py --validation [--set patch=4 loss='"mase"'] [--threads 1]

The design chosen on validation (benchmarks/M4_DESIGN.md) adds these overrides to the
defaults:

    --set pad=true batch_size=256 lr=0.001 batches_per_epoch=25 max_epochs=100 recent=20 \
          val_size=39 refit=true ensemble=3

(the window of 104 = two seasons, series too short for it left-padded with a mask input;
2,500 steps of 256 windows drawn from the last 20 horizons of each series, three seeds
averaged; the band calibrated on the last 39 weeks of each series, then the networks
trained again on every week (``refit``: as ``val_size=0``, so the weights of the epoch with
the lowest training loss, late in training, are kept rather than an early validation-loss
minimum) with the shifts kept.)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI does; see cli/forecast.py

import numpy as np
import pandas as pd
import torch

from lstmkit import Forecaster
from lstmkit.data.series import load_series
from lstmkit.tasks.forecasting.run import forecast_run

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "m4"
H = 13
#: M4's published Naive2 for weekly data (test), for reference
NAIVE2_TEST = {"smape": 9.161, "mase": 2.777}


def read_wide(path: Path) -> tuple[list[str], list[np.ndarray]]:
    """The ids and value arrays of an M4 wide CSV (one row a series, NaN-padded)."""
    frame = pd.read_csv(path)
    rows = frame.iloc[:, 1:].to_numpy(dtype=float)
    return frame.iloc[:, 0].astype(str).tolist(), [r[~np.isnan(r)] for r in rows]


def long_frame(ids: list[str], series: list[np.ndarray]) -> pd.DataFrame:
    """(id, week, value) rows: each series on weekly dates from 2000-01-03."""
    parts = []
    for sid, values in zip(ids, series, strict=True):
        weeks = pd.date_range("2000-01-03", periods=len(values), freq="W-MON")
        parts.append(pd.DataFrame({"id": sid, "week": weeks, "value": values}))
    return pd.concat(parts, ignore_index=True)


def smape(y: np.ndarray, f: np.ndarray) -> float:
    return float(np.mean(200 * np.abs(y - f) / (np.abs(y) + np.abs(f))))


def mase(insample: list[np.ndarray], y: np.ndarray, f: np.ndarray, m: int = 1) -> float:
    scale = np.array([np.mean(np.abs(s[m:] - s[:-m])) for s in insample])
    return float(np.mean(np.abs(y - f) / scale[:, None]))


def score(insample: list[np.ndarray], y: np.ndarray, f: np.ndarray) -> dict[str, float]:
    """sMAPE, MASE and OWA (against Naive2 on the same data) of forecasts ``f``."""
    naive2 = np.stack([np.repeat(s[-1], H) for s in insample])
    s, m = smape(y, f), mase(insample, y, f)
    s0, m0 = smape(y, naive2), mase(insample, y, naive2)
    return {"smape": s, "mase": m, "owa": 0.5 * (s / s0 + m / m0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument(
        "--validation",
        action="store_true",
        help="hold out the last 13 training weeks (the test file is not read)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--set", nargs="*", default=[], help="Forecaster overrides key=json")
    parser.add_argument(
        "--save",
        type=Path,
        default=None,
        help="write the forecasts (.npy) and, beside them (.band.npz), the quantiles, the "
        "band's calibration shifts and each series' target scaling",
    )
    parser.add_argument(
        "--ets",
        action="store_true",
        help="also statsforecast's AutoETS (season 1, as M4's weekly frequency) with its 80%% "
        "interval, scored the same way",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    train_path = args.data / "Weekly-train.csv.gz"
    if not train_path.exists():
        sys.exit(f"error: {train_path} not found; pass --data path/to/m4")
    ids, series = read_wide(train_path)
    if args.validation:
        insample = [s[:-H] for s in series]
        actual = np.stack([s[-H:] for s in series])
    else:
        test_ids, test = read_wide(args.data / "Weekly-test.csv.gz")
        assert test_ids == ids
        insample, actual = series, np.stack(test)
    overrides = {k: json.loads(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "weekly.csv"
        long_frame(ids, insample).to_csv(csv, index=False)
        sd = load_series(csv, "value", time_col="week", id_col="id")
        f = Forecaster(horizon=H, season=52, seed=args.seed, progress=False, **overrides)
        run = forecast_run(sd, f, holdout=0, backtest=0, future=None, name="weekly")
    seconds = time.perf_counter() - start
    ahead = run.ahead
    assert ahead is not None
    ahead = ahead.assign(id=ahead["id"].astype(str))
    fc = np.stack([ahead.loc[ahead["id"] == sid, "forecast"].to_numpy() for sid in ids])
    result = score(insample, actual, fc)
    mode = "validation (last 13 training weeks)" if args.validation else "TEST"
    print(
        f"M4 Weekly {mode}: sMAPE {result['smape']:.3f} MASE {result['mase']:.3f} OWA "
        f"{result['owa']:.3f} | {seconds:.0f}s, {f.fit_result.epochs_run} epochs, window "
        f"{f.state.window}{' (padded)' if f.state.pad else ''}, load "
        f"{os.getloadavg()[0]:.1f} | seed {args.seed} {json.dumps(overrides)}",
        flush=True,
    )
    levels = f.config.quantiles or []
    if len(levels) >= 2:
        cols = [f"q{round(q * 100):g}" for q in levels]
        qs = np.stack([ahead.loc[ahead["id"] == sid, cols].to_numpy() for sid in ids])
        print(f"lstmkit {band_text(insample, actual, qs, levels)}", flush=True)
        print(f"lstmkit {f.calibration_note or 'bands not calibrated'}", flush=True)
    if args.save:
        np.save(args.save, fc)
        shift, scale = f.scaler.stacked(ids)
        np.savez(
            args.save.with_suffix(".band.npz"),
            quantiles=qs if len(levels) >= 2 else np.zeros(0),
            calibration=np.asarray(f.state.calibration or [], dtype=float),
            shift=shift[:, 0],
            scale=scale[:, 0],
        )
    if args.ets:
        start = time.perf_counter()
        point, lo, hi = ets_forecasts(insample)
        qs = np.stack([lo, point, hi], axis=-1)
        got = score(insample, actual, point)
        print(
            f"AutoETS {mode}: sMAPE {got['smape']:.3f} MASE {got['mase']:.3f} OWA "
            f"{got['owa']:.3f} | {time.perf_counter() - start:.0f}s; "
            f"{band_text(insample, actual, qs, [0.1, 0.5, 0.9])} (its mean as the 0.5 level)",
            flush=True,
        )


def band_text(insample: list[np.ndarray], y: np.ndarray, qs: np.ndarray, levels: list) -> str:
    """The band's coverage and mean width (outer levels) and the scaled quantile loss, as
    lstmkit's evaluation computes them (`band_metrics`, season 1), averaged over series."""
    from lstmkit.tasks.forecast_metrics import band_metrics

    rows = [band_metrics(y[i], qs[i], levels, insample[i], 1) for i in range(len(y))]
    frame = pd.DataFrame(rows).mean()
    outer = f"{round(levels[0] * 100)}-{round(levels[-1] * 100)}"
    return (
        f"{outer} band: coverage {frame['coverage']:.1%}, mean width {frame['width']:.1f}, "
        f"scaled quantile loss {frame['SQL']:.3f}"
    )


def ets_forecasts(insample: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """statsforecast's AutoETS per series: mean, 80% lower and upper, each (series, H)."""
    from statsforecast.models import AutoETS

    out = [AutoETS(season_length=1).forecast(y=s, h=H, level=[80]) for s in insample]
    return tuple(np.stack([o[key] for o in out]) for key in ("mean", "lo-80", "hi-80"))


if __name__ == "__main__":
    main()
