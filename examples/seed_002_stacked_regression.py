"""Seed 002 on lstmkit: a stacked LSTM regressor on scaled, time-ordered windows.

The seed program MinMax-scales a multivariate series, cuts it into
(samples, steps, features) windows, splits them in time order (no shuffling
across time), trains LSTM(64, all steps) -> LSTM(32) -> Dense(1) with Adam and
MSE for up to 100 epochs in batches of 32 against a validation split, and plots
the training and validation loss curves. Here the layers are `lstmkit.nn.LSTM`,
the training loop is `lstmkit.training.fit` (early stopping, best weights) and
the curves come from `lstmkit.plots.curves`.

The series: by default a generated 3-feature hourly series (two drivers and a
target that responds to them with a lag), so the script runs anywhere; pass
``--csv FILE --target COL`` to use your own numeric columns instead (e.g.
ETTh1.csv --target OT).

    python examples/seed_002_stacked_regression.py [--out runs/seed_002] [--epochs 100]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # small models on a shared CPU

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lstmkit.data.scalers import SeriesScaler
from lstmkit.data.windows import make_windows, time_split
from lstmkit.nn import LSTM
from lstmkit.plots.curves import plot_training_curves
from lstmkit.training import LstmkitModule, TrainConfig, fit


class StackedRegressor(LstmkitModule):
    """LSTM(64, every step) -> LSTM(32, last step) -> Dense(1).

    Input (batch, steps, features); output (batch, 1), the next target value.
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        self.lstm1 = LSTM(features, 64, batch_first=True, init="keras")
        self.lstm2 = LSTM(64, 32, batch_first=True, init="keras")
        self.dense = nn.Linear(32, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq, _ = self.lstm1(x)  # (batch, steps, 64): "return sequences"
        _, (h, _) = self.lstm2(seq)  # h: (1, batch, 32), the last step
        return self.dense(h[-1])

    def step_metrics(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        x, y = batch
        return {"loss": nn.functional.mse_loss(self(x), y)}  # logged as train_/val_loss


def generated_series(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    """Two drivers (daily cycle, slow random walk) and a target lagging behind them."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    daily = np.sin(2 * np.pi * t / 24)
    walk = np.cumsum(rng.normal(0, 0.05, n))
    target = 0.8 * np.roll(daily, 3) + 0.5 * np.roll(walk, 6) + rng.normal(0, 0.05, n)
    return pd.DataFrame({"daily": daily, "walk": walk, "target": target}).iloc[24:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, default=None, help="CSV with numeric columns")
    parser.add_argument("--target", default="target")
    parser.add_argument("--rows", type=int, default=3000, help="use the first N rows")
    parser.add_argument("--steps", type=int, default=24, help="window length")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("runs/seed_002"))
    args = parser.parse_args()

    df = pd.read_csv(args.csv) if args.csv else generated_series()
    df = df.select_dtypes("number").iloc[: args.rows]
    cols = [args.target] + [c for c in df.columns if c != args.target]  # target first
    values = df[cols].to_numpy(dtype=np.float64)

    # time-ordered split of the rows: 70% train, 15% validation, 15% test
    n = len(values)
    train_part, val_part, test_part = time_split(n, val_size=int(0.15 * n), test_size=int(0.15 * n))
    scaler = SeriesScaler("minmax")  # MinMax fitted on the training rows only
    scaler.fit_series("s", values[train_part])
    scaled = scaler.transform("s", values)

    def loader(part: slice, shuffle: bool) -> DataLoader:
        # windows inside one part: inputs of `steps` rows -> the next target value
        x, y = make_windows(scaled[part], args.steps, 1)
        return DataLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
                          batch_size=32, shuffle=shuffle)  # fmt: skip

    train = loader(train_part, shuffle=True)  # shuffles windows inside the training part only
    val, test = loader(val_part, False), loader(test_part, False)

    model = StackedRegressor(len(cols))
    result = fit(model, train, val, TrainConfig(max_epochs=args.epochs, early_stopping_patience=10,
                                                progress=False))  # fmt: skip
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(x) for x, _ in test]).numpy()[:, 0]
        true = torch.cat([y for _, y in test]).numpy()[:, 0]
    pred_units = scaler.inverse_transform("s", pred)
    true_units = scaler.inverse_transform("s", true)
    last = scaled[test_part][args.steps - 1 : -1, 0]  # persistence: the previous value
    rmse = float(np.sqrt(np.mean((pred_units - true_units) ** 2)))
    rmse_last = float(np.sqrt(np.mean((scaler.inverse_transform("s", last) - true_units) ** 2)))

    args.out.mkdir(parents=True, exist_ok=True)
    path = plot_training_curves(result.history, args.out / "loss_curves.png",
                                title="LSTM 64 -> LSTM 32 -> Dense 1")  # fmt: skip
    print(
        f"{result.epochs_run} epochs in {result.fit_seconds:.1f}s, best epoch {result.best_epoch}"
    )
    print(f"test RMSE {rmse:.4f} (previous-value baseline {rmse_last:.4f}), {len(true)} windows")
    print(f"loss curves: {path}")


if __name__ == "__main__":
    main()
