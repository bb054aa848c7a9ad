"""Seed 004 on lstmkit: forecast the airline passengers' last 12 months with an LSTM.

The seed program scales the series to [-1, 1] with MinMax fitted on the
training months, cuts sliding windows of 12 months -> next month, trains
LSTM(hidden 100) -> Linear(1) with MSE and Adam (lr 1e-3), forecasts the held-out
year recursively (each prediction fed back as input) and plots the whole series
and the last 12 months. Here that is one `Forecaster` call; the script also
trains lstmkit's default model (direct 12-month head, per-window
normalisation) on the same split so the two can be compared with the
seasonal naive baseline.

    python examples/seed_004_air_passengers.py [--out runs/seed_004] [--epochs 300]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # small models on a shared CPU

from lstmkit import Forecaster
from lstmkit.data.air_passengers import load_air_passengers
from lstmkit.plots.curves import plot_training_curves
from lstmkit.plots.forecast import plot_forecast


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/seed_004"))
    parser.add_argument("--epochs", type=int, default=300)
    args = parser.parse_args()

    df = load_air_passengers()  # 144 months, 1949-01 .. 1960-12
    train = df.iloc[:-12]  # the seed holds out the last 12 months

    seed_model = Forecaster(
        horizon=12,
        window=12,  # 12 months in, one month out ...
        method="recursive",  # ... fed back 12 times
        hidden_size=100,
        scaler="minmax",  # MinMax to [-1, 1] fitted on the training months
        instance_norm=False,  # the seed scales the series only
        skip=False,  # LSTM -> Linear(1), nothing else
        quantiles=None,  # MSE loss
        lr=1e-3,
        max_epochs=args.epochs,
        early_stopping_patience=None,  # the seed trains a fixed number of epochs
        val_size=0,
        progress=False,
    ).fit(train, target="passengers", time_col="month")
    default_model = Forecaster(horizon=12, progress=False).fit(
        train, target="passengers", time_col="month"
    )

    args.out.mkdir(parents=True, exist_ok=True)
    print(f"{'model':<40} {'MAPE':>7} {'RMSE':>7}  fit")
    for name, model in (("seed 004 (window 12, recursive, LSTM 100)", seed_model),
                        ("lstmkit default (direct, instance norm)", default_model)):  # fmt: skip
        ev = model.evaluate(df)
        m = ev.metrics
        print(
            f"{name:<40} {m.loc['lstmkit', 'MAPE']:6.2f}% {m.loc['lstmkit', 'RMSE']:7.2f}  "
            f"{model.fit_result.fit_seconds:.1f}s"
        )
        tag = "seed" if model is seed_model else "default"
        fc = ev.forecasts
        plot_forecast(
            df["month"].iloc[:-12], df["passengers"].to_numpy()[:-12],
            fc["month"], fc["forecast"].to_numpy(), args.out / f"forecast_{tag}.png",
            actual=fc["actual"].to_numpy(),
            lower=fc["q10"].to_numpy() if "q10" in fc else None,
            upper=fc["q90"].to_numpy() if "q90" in fc else None, band_label="q10-q90",
            title=name, ylabel="passengers (thousands)",
        )  # fmt: skip
        plot_training_curves(model.fit_result.history, args.out / f"training_{tag}.png", title=name)
    print(f"{'seasonal naive':<40} {m.loc['seasonal_naive', 'MAPE']:6.2f}%")
    print(f"plots in {args.out}/")


if __name__ == "__main__":
    main()
