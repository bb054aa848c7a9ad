"""`ForecasterConfig`: every setting that defines a forecaster, declared once (a
`lstmkit.settings.Settings` model: type, range, default and help text of each field).

The `Forecaster`, its saved ``config.json`` and the ``lstmkit forecast`` options are read
from it. Torch-free to import (the CLI reads the fields for its options).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from lstmkit.errors import LstmkitError
from lstmkit.settings import RNN, ChunkSize, NumHeads, Settings
from lstmkit.training.settings import TrainConfig

#: a probability of dropping (or keeping) a unit: in [0, 1)
Probability = Annotated[float, Field(ge=0.0, lt=1.0)]
#: a quantile level, strictly between 0 and 1
Level = Annotated[float, Field(gt=0.0, lt=1.0)]


def default_train() -> TrainConfig:
    """The forecaster's training defaults (the shared rules, its own values)."""
    return TrainConfig(max_epochs=300, lr=1e-2, early_stopping_patience=20)


class ForecasterConfig(Settings):
    """Everything that defines a forecaster; round-trips through JSON (`to_dict` /
    `from_dict`). ``train`` holds the shared training settings (`TrainConfig`), which
    the `Forecaster` also takes by their flat names (``lr=``, ``max_epochs=``).

    Model folders saved before a setting existed load with its default; those saved
    with a renamed setting (``model``, now ``rnn``) load under the new name.
    """

    what: ClassVar[str] = "forecaster"
    renamed: ClassVar[dict[str, str]] = {"model": "rnn"}

    horizon: int = Field(12, ge=1, description="Steps to forecast.")
    window: int | None = Field(
        None, ge=2, description="Input steps (None: chosen from the season and horizon)."
    )
    rnn: RNN = Field(
        "lstm", description="Recurrent layer of the encoder (slstm, mlstm: xLSTM layers)."
    )
    hidden_size: int = Field(64, ge=1, description="Units per recurrent layer.")
    num_layers: int = Field(1, ge=1, description="Stacked recurrent layers.")
    dropout: Probability = Field(0.0, description="Dropout between stacked layers.")
    bidirectional: bool = Field(False, description="Read each window in both directions.")
    layer_norm: bool = Field(False, description="Layer-normalised gates (Ba et al. 2016).")
    recurrent_dropout: Probability = Field(
        0.0,
        description="Variational dropout on the previous hidden state, one mask per "
        "sequence (Gal & Ghahramani 2016; training only).",
    )
    zoneout: Probability = Field(
        0.0,
        description="Probability that a unit keeps its previous state at a step "
        "(Krueger et al. 2016).",
    )
    num_heads: NumHeads = None
    chunk_size: ChunkSize = None
    method: Literal["direct", "recursive"] = Field(
        "direct",
        description="direct: all horizon steps at once; recursive: one step fed back.",
    )
    instance_norm: bool | Literal["mean", "last", "auto"] = Field(
        "auto",
        description="Reversible normalisation of each input window: true or mean (less "
        "the window's mean, over its standard deviation), last (less the last value, over "
        "the mean absolute step-to-step change, MASE's scale), false (none); auto: last for "
        "a single series, mean for several.",
    )
    scaler: Literal["minmax", "standard", "none", "log", "auto"] = Field(
        "auto",
        description="Per-series scaling, fitted on the training part (log: the log of the "
        "positive target, then minmax; auto: log for several series whose targets are all "
        "positive, else minmax).",
    )
    quantiles: list[Level] | None = Field(
        default_factory=lambda: [0.1, 0.5, 0.9],
        description="Quantile levels of the band (pinball loss), or None for MSE only.",
    )
    skip: bool = Field(
        True, description="The head also reads the normalised input window (linear path)."
    )
    patch: int | None = Field(
        None,
        ge=1,
        description="Steps per patch of the window, one recurrent step each (None: 4 for "
        "windows of 48 steps or more, else 1; 1: step by step).",
    )
    residual: Literal["nlinear", "nlinear-fixed", "auto"] | None = Field(
        "auto",
        description="A closed-form ridge NLinear fitted before training, which the network "
        "corrects (nlinear: training refines it too; nlinear-fixed: kept fixed; auto: "
        "nlinear-fixed for a single series, none for several).",
    )
    residual_lookback: int | None = Field(
        None,
        ge=2,
        description="Steps the residual NLinear map reads, the newest of the window (None "
        "or more than the window: all of it); the network still reads the whole window.",
    )
    log_profile: bool | Literal["auto"] = Field(
        "auto",
        description="Give the point forecast (the band moves with it) the profile over the "
        "horizon of a ridge NLinear map of the log target, at the network's level (its mean "
        "over the horizon): seasonality that grows with the level, the network's trend; only "
        "where the training target values are all above 0 and the scaler is not log. auto: "
        "for a single series forecast directly (not padded) whose horizon holds a whole "
        "season and whose seasonal swing grows with its level (the log makes the swing at "
        "least twice as steady relative to the level, by Guerrero's criterion); true: also "
        "for a shorter horizon or a constant swing (a single series only).",
    )
    pad: bool | Literal["auto"] = Field(
        False,
        description="Left-pad series shorter than the window with their first value and "
        "give the network a mask input marking the real points, so a long window serves "
        "short series too (training inputs keep at least a horizon of real points); auto: "
        "for several series when the shortest cannot hold the window (by default two "
        "seasons or horizons), its horizon and its validation stretch; never with a residual. "
        "Off by default: on M4 Weekly it helps with recent windows and longer training "
        "(benchmarks/M4_DESIGN.md), not with the default training.",
    )
    recent: int | None = Field(
        None,
        ge=1,
        description="Train only on the windows whose targets start within the last this "
        "many horizons of each series' training part (None: every window).",
    )
    nonnegative: bool | Literal["auto"] = Field(
        "auto",
        description="Clip the forecasts (the point and every quantile) at 0: true for every "
        "series, false for none; auto: for each series whose training target values are all "
        "0 or more (a count, price or demand), decided series by series.",
    )
    loss: Literal["auto", "mse", "mae", "mase"] = Field(
        "auto",
        description="Loss of the point forecast on the scaled values (mase: absolute error "
        "over the window's mean absolute step-to-step change; auto: mae on log-scaled "
        "series, mse otherwise).",
    )
    batch_size: int = Field(32, ge=1, description="Windows per training batch.")
    val_size: int | None = Field(
        None,
        ge=0,
        description="Validation steps at the end of each series (None: about a tenth of "
        "the shortest series in whole horizons, at least three horizons for a single series "
        "long enough to keep its window and a few dozen training windows; 0: no validation).",
    )
    batches_per_epoch: int | None = Field(
        100,
        ge=1,
        description="At most this many random batches between two validations, unless "
        "there are more series than they hold windows: then one random window of every "
        "series, and validation one fixed window of every series (None: every window "
        "each epoch).",
    )
    season: int | None = Field(
        None, ge=1, description="Seasonal period for baselines and MASE (None: from the frequency)."
    )
    calibrate: bool = Field(
        True,
        description="Shift each quantile, per horizon step, so that it holds on the "
        "validation windows (split conformal; needs two or more quantiles and at least 20 "
        "whole-horizon validation windows over all series, else the training windows "
        "calibrate it, widened).",
    )
    predict_batch_size: int = Field(
        1024,
        ge=1,
        description="Windows (one per series) per network call in predict, evaluate and backtest.",
    )
    id_embedding: int = Field(
        0,
        ge=0,
        description="Width of a learnt embedding of the series id fed to the head (0: none; "
        "such a model forecasts only the series it was trained on).",
    )
    baselines: list[str] = Field(
        default_factory=lambda: ["naive", "snaive"],
        description="Baselines scored beside the network, comma-separated (none: no baselines).",
    )
    combine: bool = Field(
        False,
        description="Mix the network with the best baseline, one weight per horizon step "
        "fitted on the validation stretch.",
    )
    ensemble: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        "auto",
        description="Networks trained with seeds seed, seed + 1, ...; their forecasts "
        "averaged (quantiles: the median); auto: 3 for a single series forecast directly "
        "(1 with a checkpoint folder, which holds one run), else 1.",
    )
    refit: bool = Field(
        False,
        description="After calibrating the bands on the validation stretch, train the "
        "networks again on the whole series with the same settings (no validation) and keep "
        "the shifts: the forecasts learn from the latest steps and the band stays "
        "calibrated, for twice the training time.",
    )
    train: TrainConfig = Field(
        default_factory=default_train, description="The shared training settings."
    )

    @classmethod
    def from_dict(cls, data: Any) -> ForecasterConfig:
        """Saved settings (see `Settings.from_dict`); those saved before ``patch``,
        ``residual``, ``instance_norm``, ``ensemble``, ``nonnegative`` or ``log_profile``
        existed load with the values their networks were built with (patch 1, no residual
        map, mean normalisation, one network, forecasts not clipped, no log profile), not
        today's defaults."""
        if isinstance(data, Mapping):
            # settings saved before an option existed: the network as it was built then
            before = {"patch": 1, "residual": None, "instance_norm": True, "ensemble": 1,
                      "nonnegative": False, "log_profile": False}  # fmt: skip
            data = {**{k: v for k, v in before.items() if k not in data}, **data}
        return super().from_dict(data)

    def design(self, n_series: int) -> ForecasterConfig:
        """These settings with ``auto`` resolved for data of ``n_series`` series:
        ``instance_norm`` last and ``residual`` nlinear-fixed for one series (none with
        ``pad=True``), mean and none for several. Chosen on validation
        (benchmarks/FORECAST_DESIGN_LOG.md): on AirPassengers' rolling-origin years 1957-59 the
        last-value normalisation with the fixed NLinear map the network corrects scored a
        median MAPE of 5.11% against 6.62% with mean normalisation and no map (NLinear
        alone 5.17%); on M4 Weekly's 359 series both scored worse (OWA .916 with the map
        against .869; .789 with last against .776). ``ensemble``: 3 networks for one series
        (AirPassengers' validation years: 4.85% against 5.11% for one network and 4.87%
        for five), one for several (the fit time grows with the series), for the recursive
        method (not measured; each network rolls its own window and simulates its own
        sample paths, K times the cost) or with a checkpoint folder (it resumes one run).
        ``log_profile``: on for one series forecast directly, not padded (the estimator
        then applies it where the horizon holds a whole season, the values are all above
        0 and the seasonal swing grows with the level: `swing_grows`). On AirPassengers'
        rolling-origin years (5 seeds, mean MAPE over the years, median over the seeds),
        where that gate is on for every fold, 1957-59 scored 3.05% against 3.57% without
        it and 1955-57 5.49% against 6.08% (no seed overlaps): per year 1955 5.03 / 5.52,
        1956 8.55 / 8.62, 1957 2.87 / 4.14, 1958 3.62 / 3.28 (the year growth stalled:
        worse), 1959 2.67 / 3.48 (with / without). The gate it replaced, the networks with
        and without the profile on the validation stretch, scored 3.36% and 5.50%: that
        stretch held 1958 for the 1959 fold and the 1960 fit, which switched it off. On
        synthetic monthly series of 11 years (3 seeds, last 3 years) the profile hurt a
        trend beside a constant swing (1.42% against 0.93%), where the gate leaves it off.
        The log scaler itself, which also extrapolates the log's growth, scored 7.09% and
        3.77% (1958: 12.57%)."""
        update: dict[str, Any] = {}
        if self.ensemble == "auto":
            one = n_series == 1 and self.method == "direct" and self.train.checkpoint_dir is None
            update["ensemble"] = 3 if one else 1
        if self.instance_norm == "auto":
            update["instance_norm"] = "last" if n_series == 1 else "mean"
        if self.residual == "auto":  # a padded window has no whole window for the map
            whole = n_series == 1 and self.pad is not True
            update["residual"] = "nlinear-fixed" if whole else None
        if self.log_profile == "auto":
            one = n_series == 1 and self.method == "direct" and self.pad is not True
            update["log_profile"] = one
        return self.model_copy(update=update) if update else self

    @field_validator("quantiles")
    @classmethod
    def _sorted_distinct(cls, value: list[float] | None) -> list[float] | None:
        if value is None:
            return None
        if len(set(value)) != len(value):
            raise ValueError("must be distinct values strictly between 0 and 1")
        return sorted(value)

    @field_validator("baselines", mode="before")
    @classmethod
    def _baseline_names(cls, value: object) -> list[str]:
        from lstmkit.tasks.forecasting.baselines import parse_names

        if isinstance(value, tuple):
            value = list(value)
        if value is not None and not isinstance(value, str | list):
            raise ValueError(f"must be names separated by commas or a list, got {value!r}")
        return parse_names(value)  # type: ignore[arg-type]

    @model_validator(mode="after")
    def _together(self) -> ForecasterConfig:
        from lstmkit.tasks.rnn import check_rnn_settings

        check_rnn_settings(
            self.rnn, self.hidden_size, self.num_heads, self.chunk_size,
            variants={"layer_norm": self.layer_norm, "recurrent_dropout": self.recurrent_dropout,
                      "zoneout": self.zoneout},
        )  # fmt: skip
        if self.combine and self.val_size == 0:
            raise LstmkitError(
                "combine needs a validation stretch to fit its weights on; leave val_size "
                "unset or above 0 (--val-size), or drop --combine"
            )
        if self.refit and self.val_size == 0:
            raise LstmkitError(
                "refit calibrates on the validation stretch before training again without it; "
                "leave val_size unset or above 0 (--val-size), or drop --refit"
            )
        if self.refit and self.train.checkpoint_dir:
            raise LstmkitError("refit cannot resume from a checkpoint; drop one of them")
        if self.refit and self.combine:
            raise LstmkitError(
                "refit and combine cannot go together (the mixture's weights are fitted on "
                "the validation stretch, which refit trains on); drop one of them"
            )
        if self.pad is True and self.residual not in (None, "auto"):
            raise LstmkitError(
                "pad and residual cannot go together (the residual's linear map needs whole "
                "windows); drop one of them"
            )
        if self.combine and not self.baselines:
            raise LstmkitError("combine mixes the network with the best baseline; name some")
        return self
