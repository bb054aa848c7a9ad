"""`ForecasterConfig`: every setting that defines a forecaster (round-trips JSON)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from lstmkit.config import check_field_types, dataclass_from_dict
from lstmkit.errors import LstmkitError
from lstmkit.tasks.rnn import RNNS, check_rnn_settings
from lstmkit.training import TrainConfig


@dataclass
class ForecasterConfig:
    """Everything that defines a forecaster; round-trips through JSON.

    horizon: steps to forecast. window: input steps (None: chosen from the
    season and horizon at fit time). model: "lstm" | "gru" | "slstm" | "mlstm"
    (`lstmkit.tasks.rnn`). method: "direct" |
    "recursive". instance_norm: per-window reversible normalisation. scaler:
    "minmax" | "standard" | "none" (per series, fitted on training data).
    quantiles: e.g. (0.1, 0.5, 0.9) for a pinball-loss band, or None for MSE.
    skip: the head also reads the normalised input window (a linear path
    beside the recurrent one). val_size: validation steps at the end of each
    series (None: about a tenth of the shortest series in whole horizons, 1 to
    20 of them; 0: no validation). batches_per_epoch: at most this many
    batches, drawn at random, between two validations (None: every window
    each epoch), so that long series get checked and early-stopped in steps of
    a bounded size rather than of one full pass. season: seasonal period for
    baselines and MASE (None: inferred from the frequency). calibrate: shift each
    quantile, per horizon step, so that it holds on the validation windows (split
    conformal; needs two or more quantiles and a validation stretch of at least
    20 whole-horizon windows over all series). predict_batch_size:
    windows (one per series) per network call in predict, evaluate and backtest.
    id_embedding: width of a learnt embedding of the series id fed to the head
    (0: none); such a model forecasts only the series it was trained on.

    Variants of the encoder (`lstmkit.nn.LSTM` / `GRU` options): layer_norm:
    layer-normalised gates (Ba et al. 2016). recurrent_dropout: probability in
    [0, 1) of dropping each unit of the previous hidden state, one mask per
    sequence (Gal & Ghahramani 2016; training only). zoneout: probability in
    [0, 1) that each unit keeps its previous state at a step (Krueger et al.
    2016; its expectation in eval). All off by default; model folders saved
    before these settings existed load with these defaults. They apply to the
    LSTM and GRU only.

    xLSTM encoders (model "slstm" / "mlstm", `lstmkit.nn.SLSTM` / `MLSTM`):
    num_heads: heads of the layer, dividing hidden_size (None: the largest of
    4, 2, 1 that does). chunk_size: steps per chunk of the mLSTM's chunkwise
    form (None: 64). Both None for an LSTM/GRU.
    """

    horizon: int = 12
    window: int | None = None
    model: str = "lstm"
    hidden_size: int = 64
    num_layers: int = 1
    dropout: float = 0.0
    bidirectional: bool = False
    layer_norm: bool = False
    recurrent_dropout: float = 0.0
    zoneout: float = 0.0
    num_heads: int | None = None
    chunk_size: int | None = None
    method: str = "direct"
    instance_norm: bool = True
    scaler: str = "minmax"
    quantiles: list[float] | None = field(default_factory=lambda: [0.1, 0.5, 0.9])
    skip: bool = True
    batch_size: int = 32
    val_size: int | None = None
    batches_per_epoch: int | None = 100
    season: int | None = None
    calibrate: bool = True
    predict_batch_size: int = 1024
    id_embedding: int = 0
    # --- issue 17 (i17-baselines): baselines, combination, seed ensembles -------------
    # baselines: names shown beside the network (`baselines.NAMES`; None or []: none).
    # combine: mix the network with the best baseline, one weight per horizon step fitted
    # on the validation stretch (needs val_size != 0). ensemble: networks trained with
    # seeds seed, seed + 1, ...; their forecasts averaged (quantiles: the median).
    baselines: list[str] | None = field(default_factory=lambda: ["naive", "snaive"])
    combine: bool = False
    ensemble: int = 1
    # --- end of the issue 17 baselines block --------------------------------------------
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(max_epochs=300, lr=1e-2, early_stopping_patience=20)
    )

    def __post_init__(self) -> None:
        if isinstance(self.train, dict):
            self.train = TrainConfig.from_dict(self.train)
        if not isinstance(self.train, TrainConfig):
            raise LstmkitError(
                f"forecaster setting train must be a TrainConfig or dict, got {self.train!r}"
            )
        check_field_types(self, "forecaster")
        if self.quantiles is not None:
            self.quantiles = sorted(float(q) for q in self.quantiles)
        checks = [
            (isinstance(self.horizon, int) and self.horizon >= 1, "horizon must be >= 1"),
            (self.window is None or self.window >= 2, "window must be >= 2"),
            (self.model in RNNS, f"model must be one of {', '.join(RNNS)}"),
            (self.method in ("direct", "recursive"), "method must be 'direct' or 'recursive'"),
            (self.hidden_size >= 1 and self.num_layers >= 1, "hidden_size/num_layers >= 1"),
            (0.0 <= self.dropout < 1.0, "dropout must be in [0, 1)"),
            (
                0.0 <= self.recurrent_dropout < 1.0,
                f"recurrent_dropout must be in [0, 1), got {self.recurrent_dropout!r}",
            ),
            (0.0 <= self.zoneout < 1.0, f"zoneout must be in [0, 1), got {self.zoneout!r}"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.predict_batch_size >= 1, "predict_batch_size must be >= 1"),
            (self.id_embedding >= 0, "id_embedding must be 0 (none) or a width >= 1"),
            (
                self.batches_per_epoch is None or self.batches_per_epoch >= 1,
                "batches_per_epoch must be >= 1 or None",
            ),
            (self.val_size is None or self.val_size >= 0, "val_size must be >= 0"),
            (self.season is None or self.season >= 1, "season must be >= 1"),
            (
                self.quantiles is None
                or (
                    all(0 < q < 1 for q in self.quantiles)
                    and len(set(self.quantiles)) == len(self.quantiles)
                ),
                "quantiles must be distinct values strictly between 0 and 1",
            ),
        ]
        for ok, msg in checks:
            if not ok:
                raise LstmkitError(f"invalid forecaster setting: {msg}")
        check_rnn_settings(
            self.model, self.hidden_size, self.num_heads, self.chunk_size, option="model",
            variants={"layer_norm": self.layer_norm, "recurrent_dropout": self.recurrent_dropout,
                      "zoneout": self.zoneout},
        )  # fmt: skip
        # --- issue 17 (i17-baselines) ---
        from lstmkit.tasks.forecasting.baselines import parse_names

        self.baselines = parse_names(self.baselines)
        if not (isinstance(self.ensemble, int) and self.ensemble >= 1):
            raise LstmkitError(f"ensemble must be an integer >= 1, got {self.ensemble!r}")
        if self.combine and self.val_size == 0:
            raise LstmkitError(
                "combine needs a validation stretch to fit its weights on; leave val_size "
                "unset or above 0 (--val-size), or drop --combine"
            )
        if self.combine and not self.baselines:
            raise LstmkitError("combine mixes the network with the best baseline; name some")
        # --- end of the issue 17 block ---
        if self.scaler not in ("minmax", "standard", "none"):
            raise LstmkitError(f"scaler must be minmax, standard or none, got {self.scaler!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (the train config nested)."""
        d = asdict(self)
        d["train"] = self.train.to_dict()
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ForecasterConfig:
        """Inverse of `to_dict`."""
        return dataclass_from_dict(cls, data, "ForecasterConfig")
