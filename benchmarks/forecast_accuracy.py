"""AirPassengers accuracy benchmark: last 12 months held out, several seeds.

Trains the default `Forecaster` (the model ``lstmkit forecast`` uses) on
1949-01 .. 1959-12, forecasts 1960 and reports MAPE (and the other metrics)
per seed beside the seasonal naive and naive forecasts, with the fit time.
Target: median MAPE over 5 seeds at or below 4.0 %, every seed better than
seasonal naive, fit under 30 s on 2 cores. Writes the ``forecast_accuracy``
section of benchmarks/RESULTS.md (unless ``--no-write``); with ``--precision
bf16-mixed`` (training under Lightning's bfloat16 autocast) it writes its own
section, ``forecast_accuracy_bf16``, without the validation table, so that the
float32 figures stay.

    python benchmarks/forecast_accuracy.py [--seeds 5] [--threads N] [--set key=value ...]
        [--precision bf16-mixed]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI does; see cli/forecast.py

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import write_section

from lstmkit import Forecaster
from lstmkit.data.air_passengers import load_air_passengers

# The CLI's defaults (lstmkit forecast): quantile band on.
DEFAULTS = {"horizon": 12, "quantiles": [0.1, 0.5, 0.9]}
#: every baseline lstmkit has, shown beside the network in the main table
ALL_BASELINES = ["naive", "snaive", "nlinear", "dlinear", "ets", "theta", "arima"]
#: the rows of the strongest simple models in the evaluation table
STRONG = ("nlinear", "dlinear", "ets", "theta", "arima")
# Choices checked on validation years 1957, 1958, 1959 (each trained on the years
# before it), never on the test year 1960.
ABLATIONS = {
    "default": {},
    "no log profile (the default before 2026-12-07 evening)": {"log_profile": False},
    "12 months of validation, not 36 (the default before 2026-12-07 pm)": {"val_size": 12},
    "one network, not a seed ensemble of 3 (the default before 2026-12-07)": {"ensemble": 1},
    "a seed ensemble of 5": {"ensemble": 5},
    "one network, mean instance norm, no NLinear map (the default before 2026-12-06)": {
        "instance_norm": "mean",
        "residual": None,
        "ensemble": 1,
    },
    "no NLinear map": {"residual": None},
    "mean instance norm": {"instance_norm": "mean"},
    "no instance norm": {"instance_norm": False},
    "no linear skip in the head": {"skip": False},
    "recursive one-step (one network: auto gives one for it)": {"method": "recursive"},
    "GRU encoder": {"rnn": "gru"},
}


#: every earlier look at the test year 1960, disclosed beside the figures
TEST_LOOKS = (
    "Looks at the test year: 1960 is the README demo's year and has been scored for every "
    "default so far: mean instance normalisation without the NLinear map, 3.08%; two looks at "
    "loss options (benchmarks/FORECAST_DESIGN_LOG.md); one network with last-value "
    "normalisation and the fixed NLinear map, 2.67% (2026-12-06); a seed ensemble of 3 such "
    "networks, 2.62% (2026-12-07, morning; while it was built, the demo (seed 0) showed 1960 "
    "once more, 2.84%); a single series validating on three horizons (36 months) instead of "
    "one, chosen on the validation years below only (2026-12-07, afternoon), 2.85%; the log "
    "profile kept only where the networks forecast the validation stretch better with it "
    "(2026-12-07, evening), 2.84% (that check left it off in every 1960 fit). The present "
    "default keeps the log profile where the training data's seasonal swing grows with its "
    "level (Guerrero's criterion; `swing_grows`), chosen on the validation years 1955-59 and "
    "on synthetic series only (2026-12-07, 10:00 UTC), and was scored on 1960 once, for this "
    "table."
)
#: seeds of the runs: 0, 3, 6, ... so that no two seed ensembles of 3 share a network (an
#: ensemble with seed s trains seeds s, s + 1, s + 2)
SEED_STEP = 3


def validation_ablation(seeds: int, kwargs: dict) -> list[str]:
    """Validation MAPE of each design choice: a rolling-origin backtest over the years
    1957, 1958 and 1959 (mean over the 3 years), median over ``seeds`` seeds."""
    df = load_air_passengers().iloc[:-12]  # 1949..1959; 1960 stays unseen
    lines = [
        "",
        "Design choices, chosen on validation years only: rolling origin over 1957, 1958 and "
        "1959 (each year forecast by a model trained on the years before it; 1960 unused), "
        f"mean MAPE over the 3 years, median over {seeds} seeds:",
        "",
        "| variant | median of mean MAPE % | per seed |",
        "| --- | --- | --- |",
    ]
    for name, change in ABLATIONS.items():
        means = []
        for seed in range(seeds):
            f = Forecaster(**(kwargs | change), seed=seed, progress=False)
            bt = f.backtest(df, folds=3, target="passengers", time_col="month")
            means.append(bt.loc[bt["model"] == "lstmkit", "MAPE"].mean())
        per = ", ".join(f"{m:.2f}" for m in means)
        print(f"validation {name}: median MAPE {statistics.median(means):.2f}% ({per})")
        lines.append(f"| {name} | {statistics.median(means):.2f} | {per} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    parser.add_argument("--set", nargs="*", default=[], help="Forecaster overrides key=json")
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    parser.add_argument("--no-ablation", action="store_true", help="skip the validation table")
    parser.add_argument(
        "--precision",
        default="32",
        help="Lightning training precision (32, bf16-mixed, ...); other than 32 the results "
        "go to their own RESULTS.md section, forecast_accuracy_<bf16|16|64>",
    )
    args = parser.parse_args()
    float32 = args.precision in ("32", "32-true")
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = {k: json.loads(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    kwargs = DEFAULTS | overrides | ({} if float32 else {"precision": args.precision})

    df = load_air_passengers()
    rows = []
    for seed in range(0, args.seeds * SEED_STEP, SEED_STEP):
        start = time.perf_counter()
        f = Forecaster(**kwargs, seed=seed, progress=False, baselines=ALL_BASELINES)
        f.fit(df.iloc[:-12], target="passengers", time_col="month")
        seconds = time.perf_counter() - start
        ev = f.evaluate(df)
        m = ev.metrics
        rows.append(
            {
                "seed": seed,
                "MAPE": m.loc["lstmkit", "MAPE"],
                "sMAPE": m.loc["lstmkit", "sMAPE"],
                "MAE": m.loc["lstmkit", "MAE"],
                "RMSE": m.loc["lstmkit", "RMSE"],
                "MASE": m.loc["lstmkit", "MASE"],
                "epochs": "/".join(str(r.epochs_run) for r in f.member_results),
                "fit_s": seconds,
                "snaive": m.loc["seasonal_naive", "MAPE"],
                "naive": m.loc["naive", "MAPE"],
                "window": f.state.window,
                **{f"b_{b}": m.loc[b, "MAPE"] for b in STRONG},
            }
        )
        r = rows[-1]
        print(
            f"seed {seed}: MAPE {r['MAPE']:.2f}%  (seasonal naive {r['snaive']:.2f}%, "
            f"naive {r['naive']:.2f}%)  fit {seconds:.1f}s, {r['epochs']} epochs",
            flush=True,
        )
    mapes = [r["MAPE"] for r in rows]
    fits = [r["fit_s"] for r in rows]
    snaive = rows[0]["snaive"]
    beats = sum(m < snaive for m in mapes)
    med = statistics.median(mapes)
    sd = statistics.stdev(mapes) if len(mapes) > 1 else 0.0
    print(
        f"median MAPE {med:.2f}% (mean {statistics.mean(mapes):.2f}%), "
        f"median fit {statistics.median(fits):.1f}s, beats seasonal naive {beats}/{len(rows)}"
    )

    skip_ablation = args.no_ablation or not float32  # design choices are judged in float32
    ablation = [] if skip_ablation else validation_ablation(min(args.seeds, 3), kwargs)
    if args.no_write:
        return
    cfg = f.design.to_dict()  # the settings with `auto` resolved for this one series
    norm = {True: "mean", False: "off"}.get(cfg["instance_norm"], cfg["instance_norm"])
    profile = ""
    if cfg["log_profile"] and float(f.net.net.profile[2]):  # the switch: on for this series
        profile = "the point forecast given the profile over the year of a ridge NLinear map "
        profile += "of the log target at the network's level (log_profile), "
    setting = (
        f"{cfg['rnn'].upper()}({cfg['hidden_size']}) x {cfg['num_layers']}, window "
        f"{rows[0]['window']}, {cfg['method']} multi-horizon head correcting "
        f"{'a fixed ridge NLinear map' if cfg['residual'] else 'nothing'}, instance norm "
        f"{norm}, {f.scaler.kind} scaling, {profile}quantiles "
        f"{cfg['quantiles']}, Adam lr {cfg['train']['lr']}, up to {cfg['train']['max_epochs']} "
        f"epochs, early stopping patience {cfg['train']['early_stopping_patience']} on the last "
        f"12 training months; a seed ensemble of {len(f.members)} such networks (seeds s, s + 1, "
        "..., the mean of their forecasts and the median of their quantiles; epochs and fit "
        "time below are all of them)"
    )
    tag = args.precision.split("-")[0]
    section = "forecast_accuracy" if float32 else f"forecast_accuracy_{tag}"
    title = "" if float32 else f", precision {args.precision}"
    lines = [
        f"## AirPassengers, last 12 months held out{title} (`{section}`)",
        "",
        f"Model: `Forecaster` defaults as used by `lstmkit forecast` ({setting}). "
        f"Trained on 1949-01..1959-12, scored on 1960. torch threads: {torch.get_num_threads()}, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')} (as `lstmkit forecast` sets it).",
        "",
        *(
            []
            if float32
            else [
                f"Training precision `{args.precision}` (Lightning; weights stay float32, the "
                "forward and backward passes run under `torch.autocast`); the forecasts are "
                "computed in float32. Same model, split and seeds as the float32 table in the "
                "`forecast_accuracy` section. Fit times were measured on a machine shared with "
                "other jobs, so they are noisy; compare them only loosely with that table.",
                "",
            ]
        ),
        "| seed | MAPE % | sMAPE % | MAE | RMSE | MASE | epochs | fit s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['seed']} | {r['MAPE']:.2f} | {r['sMAPE']:.2f} | {r['MAE']:.1f} | "
            f"{r['RMSE']:.1f} | {r['MASE']:.3f} | {r['epochs']} | {r['fit_s']:.1f} |"
        )
    lines += [
        "",
        f"**Median MAPE {med:.2f}%** (mean {statistics.mean(mapes):.2f}%, sd {sd:.2f}, range "
        f"{min(mapes):.2f}-{max(mapes):.2f}%) over {len(rows)} seeds; median fit "
        f"{statistics.median(fits):.1f} s (max {max(fits):.1f} s). Baselines on the same split: "
        f"seasonal naive {snaive:.2f}%, naive {rows[0]['naive']:.2f}%. The model beats "
        f"seasonal naive on {beats}/{len(rows)} seeds. Targets: median MAPE <= 4.0%, fit < 30 s "
        "(this benchmark); at most 2.5% with sd at most 0.5 (issue 17).",
        "",
        "The strongest simple models on the same split, computed by lstmkit's own "
        "baselines (deterministic, the same for every seed), MAPE: "
        + ", ".join(f"{b} {rows[0]['b_' + b]:.2f}%" for b in STRONG)
        + f". The LSTM alone beats {sum(rows[0]['b_' + b] > med for b in STRONG)} of these "
        f"{len(STRONG)} at its median.",
        "",
        "Reference figures measured for the same split (from the issue): neuralforecast LSTM "
        "median 2.7%, darts BlockRNNModel(LSTM) 4.8-8.1%.",
        "",
        TEST_LOOKS,
        *ablation,
    ]
    write_section(section, "\n".join(lines))


if __name__ == "__main__":
    main()
