"""`Forecaster`: fit / predict / evaluate / backtest / save / load.

The estimator ties the pieces of the package together: it loads the data
(`lstmkit.data`), has `data.ForecastData` (a Lightning DataModule) check, split, scale
and window it, builds the network (`network.ForecastNet` inside
`module.ForecastModule`), trains it with the shared trainer (`lstmkit.training.fit`),
keeps what it learnt about the data in a typed `state.FittedState`, and forecasts
directly or recursively (with simulated sample paths for the band).
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch

from lstmkit.background import in_background
from lstmkit.data.scalers import SeriesScaler
from lstmkit.data.series import (
    SeriesData,
    load_series,
    season_from_freq,
    tail_times,
    truncate_series,
)
from lstmkit.errors import LstmkitError
from lstmkit.io import load_model_dir, save_model_dir
from lstmkit.settings import warn_deprecated
from lstmkit.tasks.forecast_metrics import BAND_METRICS, METRICS
from lstmkit.tasks.forecasting.baselines import LABELS, LINEAR, Baselines
from lstmkit.tasks.forecasting.calibration import fit_offsets
from lstmkit.tasks.forecasting.contexts import KINDS, Contexts, DamagedFile
from lstmkit.tasks.forecasting.data import (
    ForecastData,
    WindowSet,
    contexts,
    min_real_rows,
    static_matrix,
    static_spec,
)
from lstmkit.tasks.forecasting.evaluation import Evaluation, qname, quantile_coverage
from lstmkit.tasks.forecasting.linear import choose_ridge, fit_linear
from lstmkit.tasks.forecasting.mixture import Mixture, fit_mixture, with_baselines
from lstmkit.tasks.forecasting.module import (
    EPS,
    ForecastModule,
    roll,
    simulate_quantiles,
)
from lstmkit.tasks.forecasting.network import (
    check_model_size,
    estimate_parameters,
    make_net,
    output_steps,
)
from lstmkit.tasks.forecasting.predict import (
    PassMemo,
    PredictCore,
    combine_members,
    last_windows,
)
from lstmkit.tasks.forecasting.scoring import (
    band_metrics_many,
    history_scales,
    metrics_many,
    naive_many,
    seasonal_naive_many,
)
from lstmkit.tasks.forecasting.settings import ForecasterConfig
from lstmkit.tasks.forecasting.state import FittedState, check_context, check_scaler
from lstmkit.training import FitResult, TrainConfig, fit, require_precision_supported

KIND = "forecaster"
#: activations (windows x window steps x units x layers x directions) of one network call
#: when predicting: those of 1024 windows of 96 steps through an LSTM of 128 units
#: (`Forecaster._predict_batch`), and the most windows a call takes
PREDICT_ACTIVATIONS = 1024 * 96 * 128
PREDICT_MAX_BATCH = 16384
#: the residual NLinear map averages ridge maps over these fractions of a long window
#: (ETTh1 validation at 96-336 steps ahead: .0887/.1044/.1211 over 168-720 steps against
#: .0896/.1072/.1230 over the last 336 alone; research log a5_lookbacks)
LOOKBACK_FRACTIONS = (0.25, 0.5, 0.75, 1.0)
#: windows shorter than this use one map over the whole window
MULTI_LOOKBACK_MIN_WINDOW = 96


def loss_name(setting: str, scaler: str) -> str:
    """The loss a setting means under the fitted scaler kind: ``auto`` is ``mae`` on
    log-scaled series (a relative error, as sMAPE and MASE score it) and ``mse`` otherwise;
    any other setting is itself. Chosen on validation (benchmarks/FORECAST_DESIGN_LOG.md): on M4
    Weekly (log) MAE lowered the OWA from .833 to .776; AirPassengers (minmax) keeps MSE."""
    if setting != "auto":
        return setting
    return "mae" if scaler == "log" else "mse"


def residual_lookbacks(window: int) -> list[int]:
    """The lookbacks whose NLinear maps the residual map averages: the whole window, or
    for windows of `MULTI_LOOKBACK_MIN_WINDOW` steps or more, `LOOKBACK_FRACTIONS` of it."""
    if window < MULTI_LOOKBACK_MIN_WINDOW:
        return [window]
    return sorted({max(2, round(window * f)) for f in LOOKBACK_FRACTIONS})


def _targets(windows: WindowSet, chunk: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """The target column of every window of ``windows`` and its targets, as float64
    arrays (n, window) and (n, steps), cut ``chunk`` windows at a time."""
    xs, ys = [], []
    for start in range(0, len(windows), chunk):
        batch = windows.cut(range(start, min(start + chunk, len(windows))))
        xs.append(batch[0][:, :, 0].double().numpy())
        ys.append(batch[-1].double().numpy())
    return np.concatenate(xs), np.concatenate(ys)


def residual_map(
    prepared: ForecastData, values: Callable[[np.ndarray], np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The residual NLinear map (weight (window, steps), bias (steps,)) of the scaled
    training windows: the mean of the ridge least-squares NLinear maps over the last
    `residual_lookbacks` steps of the window, or of its newest ``residual_lookback`` steps
    where that setting is shorter (the older weights are then zero) (`linear.choose_ridge`,
    each penalty chosen on the validation windows; without two of them on every fifth
    training window, the map then refitted on all of them). ``values``: the map of the
    windows and targets through this function instead (`log_profile_map`)."""
    assert prepared.train_set is not None
    x, y = _targets(prepared.train_set)
    if values is not None:
        x, y = values(x), values(y)
    held = None
    if prepared.val_set is not None and len(prepared.val_set) >= 2:
        vx, vy = _targets(prepared.val_set)
        vy = vy[:, : y.shape[1]]
        if values is not None:
            vx, vy = values(vx), values(vy)
    else:  # no validation windows (or one): choose the penalty on held-out training ones
        held = np.arange(len(x)) % 5 == 4
        vx, vy = x[held], y[held]
    window = x.shape[1]
    weight, bias = np.zeros((window, y.shape[1])), np.zeros(y.shape[1])
    lookbacks = residual_lookbacks(min(window, prepared.cfg.residual_lookback or window))
    for lookback in lookbacks:
        if held is None:
            fitted = choose_ridge(x[:, -lookback:], y, vx[:, -lookback:], vy)
        elif held.sum() < 2:
            fitted = fit_linear(x[:, -lookback:], y)
        else:
            xs = x[:, -lookback:]
            chosen = choose_ridge(xs[~held], y[~held], vx[:, -lookback:], vy)
            fitted = fit_linear(xs, y, ridge=chosen.ridge)
        weight[-lookback:] += fitted.weights["weight"] / len(lookbacks)
        bias += fitted.weights["bias"] / len(lookbacks)
    return weight, bias


def log_profile_map(
    prepared: ForecastData, scaler: SeriesScaler, target: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float, float] | None:
    """The log profile's NLinear map of a single series (`ForecastNet.log_linear`): the
    `residual_map` of the log of the target in its own units (the scaled windows scaled
    back: value = scaled * scale + shift), with that (shift, scale); None where the
    scaler is log (the network's map is then the log map already) or a value of the
    series' ``target`` (the fit's, which its windows are cut from) is 0 or less (no log)."""
    if scaler.kind == "log" or len(scaler.params) != 1 or not (target > 0).all():
        return None
    params = next(iter(scaler.params.values()))
    shift, scale = float(params["shift"][0]), float(params["scale"][0])
    weight, bias = residual_map(prepared, lambda v: np.log(v * scale + shift))
    return weight, bias, shift, scale


#: How much steadier the log must make a series' seasonal swing relative to its level
#: (`swing_grows`): Guerrero's criterion at the log at most this share of it on the series
#: as it is; fixed before any look at the benchmark years.
SWING_RATIO = 0.5


def swing_grows(target: np.ndarray, season: int) -> bool:
    """Whether the seasonal swing of ``target`` grows with its level, by Guerrero's
    criterion for a Box-Cox lambda: the coefficient of variation, over the whole seasons
    (the newest), of each season's standard deviation over its mean to the power 1 -
    lambda. True where that is at lambda 0 (the log: swing proportional to the level) at
    most `SWING_RATIO` of it at lambda 1 (the series as it is: a constant swing). False
    with fewer than two whole seasons, a value that is not finite or at most 0, or no
    change within a season (a flat or stepped series). A series whose level does not move
    leaves the criterion about equal at both (Guerrero's lambda is then arbitrary): False.
    AirPassengers' years before 1954 to before 1960 give 0.29-0.38; 8 to 11 years of
    synthetic monthly series 0.08-0.11 where the swing is proportional to the level,
    3.5-4.2 where it is constant beside a trend, 1.07-1.09 where it is constant with no
    trend."""
    y = np.asarray(target, dtype=np.float64)
    whole = len(y) // season * season
    if whole < 2 * season or not (np.isfinite(y).all() and (y > 0).all()):
        return False
    seasons = y[len(y) - whole :].reshape(-1, season)
    mean, sd = seasons.mean(axis=1), seasons.std(axis=1)
    if not (sd > 0).all():
        return False

    def criterion(lam: float) -> float:
        ratio = sd / mean ** (1.0 - lam)
        return float(ratio.std() / ratio.mean())

    return criterion(0.0) <= SWING_RATIO * criterion(1.0)


def set_log_profile(
    module: ForecastModule, profile: tuple[np.ndarray, np.ndarray, float, float] | None
) -> None:
    """Set the network's log profile (`ForecastNet.log_linear` and ``profile``) to
    ``profile`` (`log_profile_map`); None switches it off (the network's forecast as is)."""
    net = module.net
    with torch.no_grad():
        if profile is None:
            net.profile.copy_(torch.tensor([0.0, 1.0, 0.0]))
            return
        weight, bias, shift, scale = profile
        net.log_linear.weight.copy_(torch.from_numpy(weight.T))
        net.log_linear.bias.copy_(torch.from_numpy(bias))
        net.profile.copy_(torch.tensor([shift, scale, 1.0]))


def set_residual(
    module: ForecastModule, residual: tuple[np.ndarray, np.ndarray], prepared: ForecastData
) -> tuple[float, dict[str, torch.Tensor]] | None:
    """Set the network's residual NLinear map (`ForecastNet.linear`) to ``residual``
    (`residual_map`). Returns the validation loss of the network as it starts (the map
    alone: its head starts at zero) and its weights, or None without validation."""
    weight, bias = residual
    linear = module.net.linear
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(weight.T))
        linear.bias.copy_(torch.from_numpy(bias))
    loader = prepared.val_dataloader()
    if loader is None:
        return None
    module.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        dtype = next(module.parameters()).dtype
        for batch in loader:
            n = len(batch[0])
            total += n * float(module.step_metrics([t.to(dtype) for t in batch])["loss"])
            count += n
    module.train()
    return total / max(count, 1), copy.deepcopy(module.state_dict())


def set_start_band(module: ForecastModule, prepared: ForecastData) -> None:
    """Give a network kept at its start (the residual map alone: its head is zero, so every
    quantile equals the point forecast, a band of no width) the band of the map's own
    errors: each quantile channel's head bias set, per horizon step, to that quantile of
    the map's errors on the training windows (each over its window's instance-norm scale)
    less their median, so the band spreads as the map errs around its forecast, the 0.5
    level on it. The point forecast stays the map's. These are errors on the windows the
    map was fitted on: the calibration on the validation stretch, where it has windows
    enough, widens the band further."""
    levels = [float(q) for q in module.quantiles]
    if not levels or prepared.train_set is None or len(prepared.train_set) == 0:
        return
    x, y = _targets(prepared.train_set)  # (n, window), (n, steps)
    linear = module.net.linear
    weight = linear.weight.detach().double().numpy()  # (steps, window)
    bias = linear.bias.detach().double().numpy()
    last = x[:, -1:]
    errors = y - (last + (x - last) @ weight.T + bias)
    how = module.instance_norm
    if how == "last":
        errors /= np.abs(np.diff(x, axis=1)).mean(axis=1, keepdims=True) + EPS
    elif how:
        errors /= np.sqrt(x.var(axis=1, keepdims=True) + EPS)
    offsets = np.quantile(errors, levels, axis=0) - np.median(errors, axis=0)
    outputs = module.net.n_outputs
    with torch.no_grad():
        head = module.net.head.bias.view(module.net.steps, outputs)
        head[:, 1 : 1 + len(levels)] = torch.from_numpy(offsets.T).to(head.dtype)


class Forecaster:
    """Forecast one or many series with an LSTM/GRU encoder and a dense head.

    Example::

        f = Forecaster(horizon=12).fit(df, target="passengers", time_col="month")
        f.predict()                  # the 12 months after the data
        f.evaluate(df_with_actuals)  # model vs naive and seasonal naive

    Args:
        horizon, window, ...: see `ForecasterConfig`.
        **settings: any other `ForecasterConfig` field (``rnn``, ``hidden_size``,
            ``num_layers``, ...) and the `TrainConfig` fields by their flat names
            (``max_epochs``, ``lr``, ``seed``, ``precision``, ``accelerator``, ``devices``,
            ``strategy``, ``num_nodes``, ``progress``, ``checkpoint_dir``, ``logger``, ...),
            or ``train=`` a whole `TrainConfig`. The old names ``model`` (``rnn``) and
            ``progress_bar`` (``progress``) still work, with a `FutureWarning`.

    Every setting is type-checked: ``window=14.5`` or ``lr="fast"`` raise
    `LstmkitError` with one line naming the setting. `get_params` / `set_params` /
    `clone` follow scikit-learn. After `fit` (or `load`), ``net`` is the fitted network,
    ``state`` holds what was learnt about the data (`FittedState`), ``scaler`` the
    per-series scaling, ``context`` the last window of each series and ``fit_result``
    the training history; ``is_fitted`` says whether there is one.
    """

    def __init__(self, horizon: int = 12, window: int | None = None, **settings: Any) -> None:
        self.config = ForecasterConfig(horizon=horizon, window=window, **settings)
        self.state: FittedState | None = None
        self.scaler: SeriesScaler | None = None
        #: the fitted network (a `ForecastModule`: instance normalisation around the
        #: `ForecastNet`), None before `fit` / `load`
        self.net: ForecastModule | None = None
        #: the last window of each series (`Contexts`; empty before `fit` / `load`)
        self.context: Contexts | dict[str, dict[str, Any]] = {}
        self.fit_result: FitResult | None = None
        #: what calibrating the bands did at the last fit (None: nothing asked or possible)
        self.calibration_note: str | None = None
        # issue 17: the fitted baselines, the mixture with the best one, ensemble members
        self.baselines: Baselines | None = None
        self.mixture: Mixture | None = None
        self.members: list[ForecastModule] = []
        #: the training of each network of the last fit (`fit_result` is the first's)
        self.member_results: list[FitResult] = []

    # ------------------------------------------------------------------ parameters
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's parameters (scikit-learn's convention): every setting by its
        flat name (``horizon``, ``rnn``, ``lr``, ``max_epochs``, ...). ``deep`` is accepted
        for scikit-learn; there are no nested estimators."""
        return self.config.to_flat()

    def set_params(self, **params: Any) -> Forecaster:
        """Change settings by their flat names (checked like the constructor); returns
        self. A fitted model keeps its weights until the next `fit`."""
        self.config = self.config.replace(**params)
        return self

    def clone(self) -> Forecaster:
        """An unfitted forecaster with the same settings (scikit-learn's ``clone``)."""
        return type(self)(**self.get_params())

    @property
    def module(self) -> ForecastModule | None:
        """Deprecated name of `net`."""
        warn_deprecated("Forecaster.module is deprecated; use Forecaster.net")
        return self.net

    @module.setter
    def module(self, value: ForecastModule | None) -> None:
        warn_deprecated("Forecaster.module is deprecated; use Forecaster.net")
        self.net = value

    # ------------------------------------------------------------------ data helpers
    @property
    def is_fitted(self) -> bool:
        """Whether `fit` (or `load`) has run."""
        return self.net is not None

    def require_fitted(self) -> None:
        """Raise one `LstmkitError` line unless `fit` (or `load`) has run."""
        if self.net is None:
            raise LstmkitError("the forecaster is not fitted; call fit(data) or Forecaster.load")

    def _load(self, data: Any, **kw: Any) -> SeriesData:
        if isinstance(data, SeriesData):
            return data
        if self.state is not None:
            return self._core().load(data, freq=kw.get("freq"))
        return load_series(data, **kw)

    def _core(self) -> PredictCore:
        """The torch-free prediction steps around this forecaster's network."""
        assert self.state is not None and self.scaler is not None
        return PredictCore(
            self.state,
            self.scaler,
            self.context,
            self.config.horizon,
            self.config.quantiles,
            self._forecast_scaled,
            self._predict_batch(),
            self._static_inputs if self._has_static() else None,
            self.__dict__.setdefault("_memo", PassMemo()),
            self._memo_token(),
        )

    def _memo_token(self) -> tuple[Any, ...]:
        """What this forecaster's forecasts depend on besides the windows (`PassMemo`): each
        parameter and buffer of its networks (identity, in-place version, dtype; the log
        profile's switch is a buffer), the scaler, the band shifts and the settings of a
        network pass."""
        assert self.state is not None
        cfg = self.config
        params = tuple(
            (id(p), p._version, p.dtype) for m in self.members or [self.net] if m is not None
            for p in (*m.parameters(), *m.buffers())
        )  # fmt: skip
        cal = self.state.calibration
        return (
            params, id(self.scaler), None if cal is None else tuple(map(tuple, cal)),
            cfg.horizon, tuple(cfg.quantiles or ()), cfg.method, cfg.train.seed,
        )  # fmt: skip

    def _predict_batch(self) -> int:
        """Windows per network call of predict / evaluate / backtest: ``predict_batch_size``,
        or for a small direct LSTM/GRU as many as `PREDICT_ACTIVATIONS` hold (window x
        units x layers x directions each; at most `PREDICT_MAX_BATCH`): the same forecasts,
        in fewer, larger calls (100,000 series of hidden 16: about half the time)."""
        cfg = self.config
        if cfg.method != "direct" or cfg.rnn not in ("lstm", "gru") or self.state is None:
            return cfg.predict_batch_size
        per = self.state.window * cfg.hidden_size * cfg.num_layers * (1 + cfg.bidirectional)
        return max(cfg.predict_batch_size, min(PREDICT_ACTIVATIONS // per, PREDICT_MAX_BATCH))

    def _contexts(self) -> Contexts:
        """`context` as `Contexts` (a per-series mapping set by hand: its arrays)."""
        assert self.state is not None
        return Contexts.from_dict(self.context, self.state.window, self.state.tz)

    def _has_static(self) -> bool:
        """Whether the network reads static inputs (static covariates or the id embedding)."""
        return bool(self.config.id_embedding or (self.state and self.state.static_cols))

    def _static_inputs(self, ids: list[str], values: dict[str, list[Any]] | None) -> np.ndarray:
        """The network's static inputs of the series ``ids`` (`data.static_matrix`), their
        static covariates from ``values`` (None: those stored with the context)."""
        assert self.state is not None and self.scaler is not None
        if values is None:
            values = self._contexts().static
        index = None
        if self.config.id_embedding:
            index = {sid: i for i, sid in enumerate(self.scaler.params)}
        return static_matrix(self.state, ids, values, index)

    def _static_for(self, sd: SeriesData) -> Callable[[list[str]], np.ndarray]:
        """Series ids -> the network's static inputs, from the static covariates of ``sd``."""
        return lambda ids: self._static_inputs(ids, sd.static)

    @property
    def season(self) -> int | None:
        """Seasonal period used by the baselines and MASE."""
        if self.config.season:
            return self.config.season
        return season_from_freq(self.state.freq) if self.state else None

    def _future_columns(self) -> list[int]:
        """Columns of the series values that hold known future covariates."""
        return self.state.future_columns if self.state else []

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        data: pd.DataFrame | pd.Series | str | os.PathLike[str] | SeriesData,
        target: str | None = None,
        *,
        time_col: str | None = None,
        id_col: str | None = None,
        covariates: list[str] | None = None,
        freq: str | None = None,
        future_covariates: list[str] | None = None,
        static_cols: list[str] | None = None,
        check_forecast: bool = True,
    ) -> Forecaster:
        """Train on ``data`` (all of it; the last ``val_size`` steps of each series
        validate for early stopping). Returns self; see `fit_result` for the history.

        ``check_forecast``: refuse a fit whose forecast of the last ``horizon`` steps of
        ``data`` leaves every plausible range of the series (a diverged network; see
        `check_forecast`). False leaves that to the caller: `lstmkit forecast`, which fits
        on the data before a held-out tail, checks the forecast of that tail instead (the
        windows its evaluation scores next, in the same network pass).

        ``covariates`` are extra input columns seen over the input window;
        ``future_covariates`` are also known over the horizon (calendar, planned
        prices) and `predict` then needs their next values (``future=``). Both
        methods take them: ``method="recursive"`` reads the known values of each step
        it forecasts and also forecasts the past-only covariates one step ahead (their
        loss beside the target's), feeding both back as the window rolls on.
        ``static_cols`` have one value per series (text: embedded; numbers: scaled);
        data given to `predict` / `evaluate` later must have them too."""
        require_precision_supported(self.config.train.precision, self.config.train.accelerator)
        self.state, self.context, self._memo = None, {}, PassMemo()
        sd = self._load(
            data, target=target, time_col=time_col, id_col=id_col,
            covariates=covariates, freq=freq, future_covariates=future_covariates,
            **({"static_cols": static_cols} if static_cols else {}),
        )  # fmt: skip
        prepared = ForecastData(sd, self.config)
        prepared.setup("fit")
        self.state, self.scaler, self.context = prepared.state, prepared.scaler, prepared.context
        train = self.config.train
        if self.config.combine and not prepared.val:
            raise LstmkitError(
                "combine needs a validation stretch, and these series are too short to "
                "keep one beside a training window; drop --combine or use a smaller window"
            )
        networks = self.design.ensemble
        assert isinstance(networks, int)
        if networks > 1 and train.checkpoint_dir:
            raise LstmkitError("an ensemble cannot resume from a checkpoint; drop one of them")
        self.members, self.member_results = [], []
        residual: tuple[np.ndarray, np.ndarray] | None = None  # fitted once, set in each member
        target = next(iter(sd.series.values())).values[:, 0] if self.design.log_profile else None
        profile = self._log_profile(prepared, target) if target is not None else None
        # the baselines need no network: they are fitted on the other core while the
        # networks train (a small network's training steps run on one thread,
        # `lstmkit.training.threads`; 100,000 series: 1.2 s of least squares); a refit
        # fits its own
        refit = self.config.refit and prepared.val
        baselines = None if refit else in_background(
            "lstmkit-baselines", self._baselines_for, sd, prepared.val
        )  # fmt: skip
        for k in range(networks):
            member_train = train if k == 0 else train.replace(seed=train.seed + k)
            L.seed_everything(member_train.seed, verbose=False)
            module = self._build_module(sd.n_features, prepared.window)
            if self.design.log_profile:  # before the start's validation loss: it applies there
                set_log_profile(module, profile)
            start = None
            if self.design.residual:
                if residual is None:
                    residual = self._residual_map(prepared)
                start = set_residual(module, residual, prepared)
            result = fit(
                module,
                prepared.train_dataloader(),
                prepared.val_dataloader(),
                member_train,
                prepared.fingerprint,  # computed only to checkpoint
            )
            keep_best = member_train.keep_weights == "best"  # "last": the final epoch's
            if start is not None and keep_best and not result.best_val_loss <= start[0]:
                # training never beat the linear map it started from on the validation
                # stretch: keep the start (best epoch -1, before training)
                module.load_state_dict(start[1])
                set_start_band(module, prepared)
                result.best_epoch, result.best_val_loss = -1, start[0]
            # a "-true" precision (64, 16, bf16) converted the network; it predicts, saves
            # and exports in float32 like every loaded model
            module.float().eval()
            self.members.append(module)
            self.member_results.append(result)
            if k == 0:
                self.net, self.fit_result = module, result
        self._calibrate(sd, prepared.val)
        if refit:
            self._refit(sd, check_forecast)  # the fit on every step checked its forecasts,
            return self  # fitted its baselines
        if check_forecast:
            self.check_forecast(sd)
        assert baselines is not None
        self.baselines = baselines.result()
        self.mixture = fit_mixture(self, sd, prepared.val) if self.config.combine else None
        return self

    def _refit(self, sd: SeriesData, check_forecast: bool = True) -> None:
        """``refit``: take every fitted part (networks, their training, scaling, contexts,
        baselines) of the same settings fitted on the whole series of ``sd`` (``val_size=0``:
        the windows and weights that setting gives), keeping the band's shifts fitted on the
        validation stretch (`_calibrate`). Those shifts measured the error of networks
        forecasting the horizons right after their training data, as the refitted networks
        forecast those after the data's end."""
        assert self.state is not None
        calibration, note = self.state.calibration, self.calibration_note
        # a log profile off in the fit whose validation stretch calibrated the band stays
        # off (the switch follows the same target, but a first fit with under two training
        # windows has none where the refit, with more, would)
        off = self.design.log_profile and not float(self.members[0].net.profile[2])
        full = self.clone().set_params(val_size=0, refit=False)
        full.fit(sd, check_forecast=check_forecast)
        for member in full.members if off else []:
            set_log_profile(member, None)
        vars(self).update({k: v for k, v in vars(full).items() if k != "config"})
        assert self.state is not None
        self.state.calibration = calibration
        self.calibration_note = f"{note}; networks refitted on the whole series" if note else None

    def _calibrate(self, sd: SeriesData, val: int) -> None:
        """Fit the split-conformal shifts of the quantile bands on the validation windows
        (`lstmkit.tasks.forecasting.calibration`; with too few of them, on the training
        windows, widened) when ``calibrate`` is on and there are two or more quantiles and
        a validation stretch; `calibration_note` says what was done (None when nothing was
        asked or possible)."""
        assert self.state is not None and self.scaler is not None
        cfg, qs = self.config, self.config.quantiles or []
        self.calibration_note = None
        if not cfg.calibrate or len(qs) < 2:
            return
        if not val:
            self.calibration_note = "bands not calibrated: no validation stretch (val_size 0)"
            return
        offsets, self.calibration_note = fit_offsets(
            self._forecast_scaled, sd, self.scaler, self.state.window, cfg.horizon, val, qs,
            self._future_columns(), seed=cfg.train.seed,
            static_inputs=self._static_for(sd) if self._has_static() else None,
            pad=self.state.window - min_real_rows(cfg, self.state.window) if self.state.pad else 0,
        )  # fmt: skip
        if offsets is not None:
            self.state.calibration = offsets.tolist()

    # ------------------------------------------------------------------ baselines (issue 17)
    def _baselines_for(self, sd: SeriesData, val: int) -> Baselines:
        """The configured baselines fitted on the training series ``sd`` (``val``: the
        validation stretch their ridge is chosen on)."""
        assert self.state is not None
        names, h = list(self.config.baselines or []), self.config.horizon
        histories = {s.id: s.values[:, 0] for s in sd.series.values()}
        return Baselines.fit(names, histories, h, self.season, self.state.window, val)

    def _baseline_columns(
        self, sid: str, history: np.ndarray | None, names: list[str] | None = None
    ) -> dict[str, np.ndarray | str]:
        """Each baseline's (of ``names``, default all) forecast of ``sid`` from its target
        ``history`` (None: the stored context): name -> (horizon,) or why it is n/a."""
        names = list(self.config.baselines or []) if names is None else names
        if self.baselines is None:
            return dict.fromkeys(names, "not saved with this model (fit it again)")
        return self.baselines.forecast_all(sid, history, names)

    def _shown_baselines(self) -> list[str]:
        """The baselines of the settings that apply: seasonal naive only with a season."""
        return [n for n in self.config.baselines or [] if n != "snaive" or self.season]

    def _baselines_many(
        self, series: list[Any], hist: np.ndarray, hist_len: np.ndarray, names: list[str]
    ) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
        """Each baseline's forecast of every series from its target history (``hist``, the
        histories one after the other, ``hist_len`` each): name -> (series, horizon), NaN
        rows where it is n/a; and label -> the reasons, one per series it could not
        forecast. Naive, seasonal naive and the linear maps are array steps over every
        series (`Baselines.forecast_many`); the statistical models go series by series."""
        h, m = self.config.horizon, self.season
        out: dict[str, np.ndarray] = {}
        missing: dict[str, list[str]] = {}
        for name in names:
            if name == "naive":
                out[name] = naive_many(hist, hist_len, h)
                continue
            if name == "snaive" and m:
                out[name], has = seasonal_naive_many(hist, hist_len, h, m)
                for k in np.flatnonzero(~has):
                    missing.setdefault(LABELS[name], []).append(
                        f"series {series[k].id!r}: {hist_len[k]} points, shorter than its "
                        f"season ({m})"
                    )
                continue
            if self.baselines is None:
                why = "not saved with this model (fit it again)"
                out[name] = np.full((len(series), h), np.nan)
                missing[LABELS[name]] = [f"series {s.id!r}: {why}" for s in series]
                continue
            out[name], reasons = self.baselines.forecast_many(
                name, [s.id for s in series], hist, hist_len
            )
            for k, why in reasons.items():
                missing.setdefault(LABELS[name], []).append(f"series {series[k].id!r}: {why}")
        return out, missing

    def _mix_many(
        self, net: np.ndarray, base: dict[str, np.ndarray], series: list[Any],
        hist: np.ndarray, hist_len: np.ndarray,
    ) -> np.ndarray:  # fmt: skip
        """The mixture (`Mixture.apply`) of every series at once: ``net`` (series, horizon,
        outputs) and the chosen baseline's forecasts (from ``base`` when shown, else
        computed here from the histories as in `_baselines_many`); the network alone where
        that baseline is n/a; clipped as the network is (`FittedState.clip`)."""
        assert self.mixture is not None
        b = base.get(self.mixture.baseline)
        if b is None:
            b = self._baselines_many(series, hist, hist_len, [self.mixture.baseline])[0][
                self.mixture.baseline
            ]
        assert self.state is not None  # a baseline may go below 0 (NLinear's trend)
        return self.state.clip([s.id for s in series], self.mixture.apply(net, b))

    def _rows_before_horizon(self, series: list[Any], what: str) -> np.ndarray:
        """The lengths of ``series``; one `LstmkitError` line naming the first too short for
        a window (a padded model: one real row) before the last ``horizon`` steps."""
        assert self.state is not None
        h, window = self.config.horizon, self.state.window
        lengths = np.array([len(s) for s in series])
        need = (1 if self.state.pad else window) + h
        if (lengths < need).any():
            s = series[int(np.flatnonzero(lengths < need)[0])]
            raise LstmkitError(
                f"series {s.id!r} has {len(s)} rows; {what} needs "
                + (f"window ({window})" if not self.state.pad else "one row")
                + f" + horizon ({h}) = {need}"
            )
        return lengths

    def check_forecast(
        self, data: pd.DataFrame | pd.Series | str | os.PathLike[str] | SeriesData
    ) -> None:
        """Raise `LstmkitError` when the forecast of the last ``horizon`` steps of a series
        in ``data``, from the window before them, leaves every plausible range of the
        series (`plausible_range`, every output): the mark of a diverged network (a
        learning rate far too large forecasts orders of magnitude outside it). `fit` runs
        it on its data unless told not to. The windows of all series go through the
        network together; `evaluate` of the same ``data`` forecasts the same windows and
        takes their forecast from here (`PassMemo`)."""
        self.require_fitted()
        sd = self._load(data)
        assert self.state is not None and self.scaler is not None
        h, window, fidx = self.config.horizon, self.state.window, self._future_columns()
        series = list(sd.series.values())
        lengths = self._rows_before_horizon(series, "the forecast check")
        x = last_windows([s.values[:-h] for s in series], window)
        fut = np.stack([s.values[-h:][:, fidx] for s in series]) if fidx else None
        # unclipped: a network diverged far below 0 must not pass as zeros
        ids = [s.id for s in series]
        fc = self._core().many(ids, x, fut, finite=False, static=sd.static, clip=False)
        target = np.concatenate([s.values[:, 0] for s in series])
        lo, hi = plausible_ranges(target, lengths, h, window)
        with np.errstate(invalid="ignore"):
            ok = ((fc >= lo[:, None, None]) & (fc <= hi[:, None, None])).all(axis=(1, 2))
        if not ok.all():
            s = series[int(np.flatnonzero(~ok)[0])]
            f = fc[int(np.flatnonzero(~ok)[0])]
            worst = f.flat[int(np.argmax(np.where(np.isfinite(f), np.abs(f), np.inf)))]
            label = "the forecast" if sd.id_col is None else f"the forecast of series {s.id!r}"
            raise LstmkitError(
                f"training diverged: {label} reaches {worst:.3g}, far outside the data's "
                f"range ({s.values[:, 0].min():.3g} to {s.values[:, 0].max():.3g}); lower "
                f"the learning rate (it is {self.config.train.lr:g}) or scale the data"
            )

    def _log_profile(
        self, prepared: ForecastData, target: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, float, float] | None:
        """`log_profile_map`, or None (the profile off). With ``log_profile="auto"``, off
        where the horizon holds less than a whole season (the mean over the horizon is then
        not the series' level: on 70 M4 Weekly series fitted one at a time, horizon 13,
        season 52, the profile lowered no mean sMAPE: 17.08 against 16.87 at 80-300 weeks,
        6.21 against 6.13 at 301-700) or no season is known, and where the seasonal swing of
        ``target`` (the fit's whole target, validation stretch included) does not grow with
        its level (`swing_grows`). Off with too few training windows. ``log_profile=True``
        with several series is refused."""
        assert self.scaler is not None and prepared.train_set is not None
        if len(self.scaler.params) != 1:
            raise LstmkitError(
                "log_profile needs a single series (one scaling); leave it auto or false"
            )
        if len(prepared.train_set) < 2:
            return None
        if self.config.log_profile == "auto":
            season = self.season
            if season is None or self.config.horizon < season or not swing_grows(target, season):
                return None
        return log_profile_map(prepared, self.scaler, target)

    def _residual_map(self, prepared: ForecastData) -> tuple[np.ndarray, np.ndarray]:
        """`residual_map`; with ``residual="auto"`` and too few training windows to fit
        one (under 2), the zero map: the network alone, as without the map."""
        assert prepared.train_set is not None
        if self.config.residual == "auto" and len(prepared.train_set) < 2:
            steps = output_steps(self.config)
            return np.zeros((prepared.window, steps)), np.zeros(steps)
        return residual_map(prepared)

    @property
    def design(self) -> ForecasterConfig:
        """The settings the network is built with: `config` with ``auto`` resolved for the
        fitted series (`ForecasterConfig.design`)."""
        if self.scaler is None:
            raise LstmkitError("the forecaster is not fitted; call fit(data) or Forecaster.load")
        return self.config.design(len(self.scaler.params))

    def _build_module(self, n_features: int, window: int) -> ForecastModule:
        cfg = self.design
        assert self.state is not None and self.scaler is not None
        static = static_spec(self.state, cfg.id_embedding, len(self.scaler.params))
        n_future = len(self._future_columns())
        check_model_size(
            estimate_parameters(cfg, n_features, window, n_future, static, self.state.pad),
            "hidden_size / num_layers",
        )
        mask = self.state.pad
        net = make_net(cfg, n_features, window, n_future, static, mask)
        scaler = self.scaler.kind
        past = self.state.past_columns if cfg.method == "recursive" else []
        return ForecastModule(
            net, cfg.instance_norm, cfg.quantiles, self._future_columns(),
            loss=loss_name(cfg.loss, scaler), static=bool(static), past_columns=past,
        )  # fmt: skip

    def set_context(
        self, data: pd.DataFrame | pd.Series | str | os.PathLike[str] | SeriesData
    ) -> Forecaster:
        """Make `predict()` (and a saved model) continue from the end of ``data``
        instead of the end of the training data, without retraining."""
        self.require_fitted()
        assert self.state is not None
        sd = self._load(data)
        window = self.state.window
        need = 1 if self.state.pad else window
        for s in sd.series.values():
            if len(s) < need:
                raise LstmkitError(
                    f"series {s.id!r} has {len(s)} rows; the model needs at least {need}"
                )
            if s.id not in self.scaler.params:  # type: ignore[union-attr]
                raise LstmkitError(
                    f"series {s.id!r} was not seen in training; the model knows "
                    f"{', '.join(list(self.context)[:10])}"
                )
        self.context.update(contexts(sd, window))
        if self.baselines is not None:
            self.baselines.set_context({s.id: s.values[:, 0] for s in sd.series.values()})
        return self

    # ------------------------------------------------------------------ predict
    @torch.no_grad()
    def _forecast_scaled(
        self,
        window_values: np.ndarray,
        future: np.ndarray | None = None,
        static: np.ndarray | None = None,
    ) -> np.ndarray:
        """(batch, window, features) scaled [+ future (batch, horizon, n_future) scaled]
        [+ static (batch, static inputs)] -> (batch, horizon, n_outputs) scaled."""
        assert self.net is not None
        if len(self.members) > 1:
            return combine_members(np.stack([
                self._member_scaled(m, window_values, future, static) for m in self.members
            ]))  # fmt: skip
        return self._member_scaled(self.net, window_values, future, static)

    @torch.no_grad()
    def _member_scaled(
        self,
        module: ForecastModule,
        window_values: np.ndarray,
        future: np.ndarray | None,
        static: np.ndarray | None = None,
    ) -> np.ndarray:
        """`_forecast_scaled` for one network of the ensemble. Recursive: the one-step
        network reads each step's known future covariates, and the window rolls on with
        the forecast target, those values and its forecasts of the past-only covariates
        (`module.roll`)."""
        module.eval()
        dtype = next(module.parameters()).dtype
        x = torch.as_tensor(window_values, dtype=dtype)
        st = None if static is None else torch.as_tensor(static, dtype=torch.float32)
        fut = None if future is None else torch.as_tensor(future, dtype=dtype)
        if self.config.method == "direct":
            return module(x, fut, st).numpy()
        outs = []
        start = x
        for t in range(self.config.horizon):
            ft = None if fut is None else fut[:, t : t + 1]
            step = module(x, ft, st)  # (batch, 1, n_outputs)
            outs.append(step[:, :, : module.n_target])
            x = roll(module, x, step[:, :, 0], step, ft)
        out = torch.cat(outs, dim=1)
        if len(self.config.quantiles or []) >= 2 and self.config.horizon > 1:
            # the one-step quantiles only hold for step 1; later steps take the quantiles
            # of simulated sample paths, so the band widens with the horizon
            levels = torch.tensor(self.config.quantiles or [], dtype=torch.float32)
            h, seed = self.config.horizon, self.config.train.seed
            out[:, 1:, 1:] = simulate_quantiles(module, start, levels, h, seed, st, fut)[:, 1:]
        return out.numpy()

    def predict_windows(
        self,
        windows: np.ndarray,
        series_id: str | None = None,
        batch_size: int = 1024,
        future: np.ndarray | None = None,
    ) -> np.ndarray:
        """Forecasts for many input windows of one series at once (backtests, benchmarks).

        Args:
            windows: raw values, shape (n, window, features) (target in feature 0).
            series_id: whose scaling to use (default: the only series).
            batch_size: windows per forward pass.
            future: raw known covariates over each horizon, (n, horizon, n_future);
                required when the model was fitted with ``future_covariates``.

        Returns:
            (n, horizon, outputs) in the data's units: the point forecast in
            ``[..., 0]``, then one channel per quantile.
        """
        self.require_fitted()
        return self._core().windows(windows, series_id, future=future, batch_size=batch_size)

    def predict(
        self,
        data: pd.DataFrame | pd.Series | str | os.PathLike[str] | None = None,
        future: pd.DataFrame | str | os.PathLike[str] | None = None,
        baselines: bool = False,
    ) -> pd.DataFrame:
        """Forecast the ``horizon`` steps after the end of ``data`` (default: after the
        data the model was fitted on, or the data given to `set_context`).

        ``future``: for a model fitted with ``future_covariates``, a table (or
        CSV/Parquet path) with the time (and id) column and those columns for at
        least the ``horizon`` steps after the data.

        Returns a DataFrame with (id,) time, ``forecast`` and, with quantiles,
        one ``q<percent>`` column per quantile, clipped at 0 for the series of
        `FittedState.nonnegative` (the ``nonnegative`` setting). A model fitted with
        ``combine`` forecasts the mixture (the network alone in column ``lstmkit``), clipped
        the same way. ``baselines``: also one
        column per baseline (NaN where it is n/a for a series; the reasons in
        ``table.attrs["n/a"]``).
        """
        self.require_fitted()
        core = self._core()
        if self.mixture is None and not baselines:
            return core.predict(data, future)
        if data is None:
            histories: dict[str, np.ndarray | None] = {sid: None for sid in self.context}
        else:  # read once: the network and the baselines forecast from the same history
            data = core.load(data, what="the history")
            histories = {s.id: s.values[:, 0] for s in data.series.values()}
        return self._with_baselines(core.predict(data, future), histories, baselines)

    def _with_baselines(
        self, table: pd.DataFrame, histories: dict[str, np.ndarray | None], show: bool
    ) -> pd.DataFrame:
        """`with_baselines` with this forecaster's baselines and mixture (``show``: one
        column per baseline of the settings)."""
        return with_baselines(
            table, histories, self.config.horizon, self.config.quantiles, self.baselines,
            self.mixture, self._shown_baselines() if show else [],
            None if self.state is None else self.state.clip,
        )  # fmt: skip

    # ------------------------------------------------------------------ evaluate
    def evaluate(
        self, data: pd.DataFrame | pd.Series | str | os.PathLike[str] | SeriesData
    ) -> Evaluation:
        """Hold out the last ``horizon`` steps of each series in ``data``, forecast them
        from the steps before, and score the model beside naive and seasonal naive."""
        self.require_fitted()
        assert self.state is not None
        sd = self._load(data)
        h, season, window = self.config.horizon, self.season, self.state.window
        fidx = self._future_columns()
        series = list(sd.series.values())
        lengths = self._rows_before_horizon(series, "evaluation")
        ids = [s.id for s in series]
        core = self._core()
        x = last_windows([s.values[:-h] for s in series], window)
        fut = np.stack([s.values[-h:][:, fidx] for s in series]) if fidx else None
        net = core.many(ids, x, fut, static=sd.static)
        actual = np.stack([s.values[-h:, 0] for s in series])
        hist = np.concatenate([s.values[:-h, 0] for s in series])
        hist_len = lengths - h
        scales = history_scales(hist, hist_len, season)
        names = self._shown_baselines()
        base, missing = self._baselines_many(series, hist, hist_len, names)
        fc = net if self.mixture is None else self._mix_many(net, base, series, hist, hist_len)
        forecasts = core.frames(ids, tail_times(series, h), fc)
        forecasts.insert(int(forecasts.columns.get_loc("forecast")), "actual", actual.ravel())
        qs = self.config.quantiles or []
        scores = {"lstmkit": metrics_many(actual, net[:, :, 0], scales)}
        if len(qs) >= 2:  # the band's scores too (quantile channels in level order)
            scores["lstmkit"] |= band_metrics_many(actual, net[:, :, 1:], qs, scales)
        for name in names:
            b, label = base[name], LABELS[name]
            forecasts[label] = b.ravel()
            has = np.isfinite(b).all(axis=1)
            scores[label] = (
                metrics_many(actual[has], b[has], scales[has])
                if has.any()
                else {m: np.array([np.nan]) for m in METRICS}
            )
        if self.mixture is not None:
            scores["combined"] = metrics_many(actual, fc[:, :, 0], scales)
            if len(qs) >= 2:
                scores["combined"] |= band_metrics_many(actual, fc[:, :, 1:], qs, scales)
            forecasts["lstmkit"] = net[:, :, 0].ravel()
        with warnings.catch_warnings():  # a metric undefined for every series stays NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            table = pd.DataFrame(
                {name: {m: float(np.nanmean(v)) for m, v in got.items()}
                 for name, got in scores.items()}
            ).T  # fmt: skip
        columns = list(METRICS) + (list(BAND_METRICS) if len(qs) >= 2 else [])
        table = table.reindex(columns=columns)
        table.index.name = "model"
        coverage = None
        if len(qs) >= 2:
            coverage = quantile_coverage(
                forecasts["actual"].to_numpy(),
                forecasts[qname(qs[0])].to_numpy(),
                forecasts[qname(qs[-1])].to_numpy(),
            )
        n = len(sd.series)
        notes = {
            k: f"{k} n/a for {len(v)} of {n} series ({v[0]}"
            + (", ...)" if len(v) > 1 else ")")
            + ("; its row scores the others" if len(v) < n else "")
            for k, v in missing.items()
        }
        return Evaluation(table, forecasts, season, coverage, notes)

    def backtest(
        self,
        data: pd.DataFrame | pd.Series | str | os.PathLike[str],
        folds: int = 3,
        step: int | None = None,
        refit: bool = True,
        **columns: Any,
    ) -> pd.DataFrame:
        """Rolling-origin backtest: ``folds`` origins, ``step`` apart (default horizon),
        the last one ``horizon`` steps before the end. Each fold trains on the data
        before its origin (``refit=True``, a fresh model with this config) or reuses the
        fitted model, then scores the next ``horizon`` steps.

        ``columns`` (target, time_col, id_col, covariates) describe ``data`` when the
        forecaster has not been fitted yet.

        Returns one row per fold and model with the fold number, origin time and metrics.
        """
        sd = self._load(data) if self.state else load_series(data, **columns)
        if folds < 1:
            raise LstmkitError(f"folds must be at least 1, got {folds}")
        step = step or self.config.horizon
        h = self.config.horizon
        if not refit:
            self.require_fitted()
        rows = []
        for k in range(folds):
            cut = (folds - 1 - k) * step  # steps dropped from the end
            part = truncate_series(sd, cut)
            shortest = min(len(s) for s in part.series.values())
            if shortest - h < 2:
                raise LstmkitError(
                    f"backtest fold {k + 1} leaves only {shortest} rows; use fewer folds"
                )
            model = self
            if refit:  # a fold must neither resume from nor write into the run's folders
                model = self.clone().set_params(**dict.fromkeys(TrainConfig.FOLDER_FIELDS))
                model.fit(truncate_series(part, h))
            ev = model.evaluate(part)
            origin = next(iter(part.series.values())).times[-h - 1]
            for name, metrics in ev.metrics.iterrows():
                rows.append({"fold": k + 1, "origin": origin, "model": name, **metrics.to_dict()})
        return pd.DataFrame(rows)

    # ------------------------------------------------------------------ save / load
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model directory (config, weights, scaler, context) atomically.

        The run's checkpoint and log folders are not part of the saved settings."""
        self.require_fitted()
        assert self.net is not None and self.scaler is not None
        assert self.state is not None
        settings = self.config.replace(train=self.config.train.for_saving()).to_dict()
        # the number of networks as fitted: ensemble "auto" depends on the checkpoint
        # folder, which is not saved
        config = {
            "forecaster": settings,
            "data": self.state.to_dict(),
            "networks": len(self.members) or 1,
        }
        extras = {"scaler.json": self.scaler.to_json()}
        extras["context.json"], extras["context.safetensors"] = self._contexts().to_bytes()
        if self.fit_result is not None:
            extras["history.json"] = json.dumps(self.fit_result.to_dict())
        # issue 17: baselines, mixture and the other members of an ensemble
        state_dict = dict(self.net.net.state_dict())
        for k, member in enumerate(self.members[1:], start=1):
            state_dict |= {
                f"{ENSEMBLE_PREFIX}{k}.{n}": t for n, t in member.net.state_dict().items()
            }
        if self.baselines is not None:
            extras["baselines.json"], extras["baselines.safetensors"] = self.baselines.to_bytes()
        if self.mixture is not None:
            extras["mixture.json"] = json.dumps(self.mixture.to_dict())
        return save_model_dir(path, kind=KIND, config=config, state_dict=state_dict, extras=extras)

    def export_onnx(self, path: str | os.PathLike[str]) -> Path:
        """Write the folder ``path`` with ``model.onnx`` and ``export.json`` (scaler, context,
        window, horizon, quantiles), checked against this model within 1e-5 first; load it
        with `lstmkit.runtime.load`, which predicts like `predict` without PyTorch.
        Raises `LstmkitError` (and writes nothing) when the export fails its check."""
        from lstmkit.tasks.forecasting.export import export_forecaster

        return export_forecaster(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Forecaster:
        """Read a model directory written by `save`; every file is checked, and a damaged
        one is reported in one `LstmkitError` line naming it."""
        saved = load_model_dir(path, KIND)
        root = Path(path)
        current = "config.json"
        try:
            cfg = ForecasterConfig.from_dict(copy.deepcopy(saved.config["forecaster"]))
            state = FittedState.from_dict(saved.config["data"])
            current = "scaler.json"
            scaler = SeriesScaler.from_json(saved.read_text("scaler.json"))
            check_scaler(scaler, state.n_features)
            current = "context.json"
            if (root / "context.safetensors").exists():  # saved since the arrays
                context = Contexts.from_bytes(
                    saved.read_text("context.json"), saved.read_bytes("context.safetensors"),
                    state.window, state.n_features, state.pad, state.tz, set(scaler.params),
                )  # fmt: skip
            else:  # one JSON object per series, as saved before
                meta = json.loads(saved.read_text("context.json"))
                if isinstance(meta, dict) and meta.get("times") in KINDS and "ids" in meta:
                    saved.read_bytes("context.safetensors")  # the arrays it goes with: missing
                checked = check_context(meta, state, set(scaler.params))
                context = Contexts.from_dict(checked, state.window, state.tz)
            baselines, mixture = None, None
            if (root / "baselines.json").exists():  # saved since issue 17
                current = "baselines.json"
                baselines = Baselines.from_bytes(
                    saved.read_text("baselines.json"), saved.read_bytes("baselines.safetensors")
                )
            if cfg.combine:
                current = "mixture.json"
                mixture = Mixture.from_dict(
                    json.loads(saved.read_text("mixture.json")), cfg.horizon
                )
        except (LstmkitError, KeyError, TypeError, ValueError, AttributeError) as err:
            if isinstance(err, LstmkitError) and "model directory" in str(err):
                raise  # a missing file, already said in one line
            if isinstance(err, DamagedFile):
                current = err.file
            what = str(err) if isinstance(err, LstmkitError) else f"{type(err).__name__}: {err}"
            raise LstmkitError(
                f"{root / current} is damaged ({what[:200]}); save the model again"
            ) from None
        self = cls.__new__(cls)
        self.config, self.state, self.scaler, self.context = cfg, state, scaler, context
        self.baselines, self.mixture = baselines, mixture
        if baselines is None:  # saved before issue 17: the baselines that need no fit
            first = context.window - context.rows
            recent = {sid: context.values[k, first[k] :, 0] for k, sid in enumerate(context.ids)}
            self.baselines = Baselines.fit(
                [n for n in cfg.baselines or [] if n not in LINEAR], recent, cfg.horizon,
                self.season, state.window,
            )  # fmt: skip
            for name in (n for n in cfg.baselines or [] if n in LINEAR):
                self.baselines.names.append(name)
                self.baselines.unfit[name] = "not saved with this model (fit it again)"
        self.fit_result, self.member_results = None, []
        try:
            history = json.loads(saved.read_text("history.json"))
            self.fit_result = FitResult.from_dict(history)
        except (LstmkitError, ValueError, TypeError):
            pass
        parts: dict[int, dict[str, Any]] = {0: {}}
        for name, tensor in saved.state_dict.items():
            k, key = 0, name
            if name.startswith(ENSEMBLE_PREFIX):
                head, _, key = name[len(ENSEMBLE_PREFIX) :].partition(".")
                k = int(head) if head.isdigit() else -1
            parts.setdefault(k, {})[key] = tensor
        self.members = []
        networks = saved.config.get("networks", cfg.design(len(scaler.params)).ensemble)
        try:
            if not isinstance(networks, int) or isinstance(networks, bool) or networks < 1:
                raise RuntimeError(f"networks must be a whole number >= 1, got {networks!r}")
            if cfg.ensemble != "auto" and networks != cfg.ensemble:
                raise RuntimeError(f"{networks} networks for an ensemble of {cfg.ensemble}")
            if set(parts) != set(range(networks)):
                raise RuntimeError(f"{len(parts)} networks for an ensemble of {networks}")
            for k in range(networks):
                member = self._build_module(state.n_features, state.window)
                want = {n: t.is_floating_point() for n, t in member.net.state_dict().items()}
                odd = [n for n, t in parts[k].items() if want.get(n, t.is_floating_point())
                       != t.is_floating_point()]  # fmt: skip
                if odd:  # integers would be copied into the float weights unseen
                    raise RuntimeError(f"{odd[0]} holds {parts[k][odd[0]].dtype} values")
                member.net.load_state_dict(parts[k])
                self.members.append(member.eval())
        except RuntimeError as err:
            first = str(err).splitlines()[0]
            raise LstmkitError(f"weights in {path} do not match its config: {first}") from None
        self.net = self.members[0]
        self._check_members(root / "model.safetensors")
        return self

    def _check_members(self, where: Path) -> None:
        """At load: refuse weights that are not finite, or a network whose point forecast
        from the saved last windows of the first `MEMBER_CHECK_SERIES` series lies more
        than `MEMBER_MARGIN` times the window's range (at least one scaled unit, the
        series' spread in training) outside it, in scaled units: weights edited or damaged
        by orders of magnitude (a head of 1e38 moved an ensemble's mean forecast to 1e38
        without a word; the fit-time check `check_forecast` does not run again). Known
        future covariates are unknown here and taken at zero (their scaled centre). One
        call of each network: a recursive one's first step, without its sample paths."""
        assert self.state is not None and self.scaler is not None
        for k, member in enumerate(self.members):
            if not all(torch.isfinite(t).all() for t in member.state_dict().values()):
                raise LstmkitError(f"{where} is damaged (network {k + 1} holds NaN or infinite "
                                   "weights); fit and save the model again")  # fmt: skip
        ctx = self._contexts()
        n = min(len(ctx.ids), MEMBER_CHECK_SERIES)
        ids = list(ctx.ids[:n])
        real = [ctx.values[i, ctx.window - ctx.rows[i] :] for i in range(n)]  # a padded one's
        x = last_windows([self.scaler.transform(s, v) for s, v in zip(ids, real, strict=True)],
                         ctx.window)  # fmt: skip
        steps = self.config.horizon
        fidx = self._future_columns()
        fut = np.zeros((n, steps, len(fidx))) if fidx else None
        static = self._static_inputs(ids, None) if self._has_static() else None
        target = x[:, :, 0]
        lo, hi = np.fmin.reduce(target, axis=1), np.fmax.reduce(target, axis=1)
        margin = MEMBER_MARGIN * np.maximum(hi - lo, 1.0)
        for k, member in enumerate(self.members):
            point = self._network_point(member, x, fut, static)
            with np.errstate(invalid="ignore"):
                ok = (point >= (lo - margin)[:, None]) & (point <= (hi + margin)[:, None])
            if not ok.all():
                i = int(np.flatnonzero(~ok.all(axis=1))[0])
                worst = point[i].flat[int(np.argmax(~ok[i]))]
                raise LstmkitError(
                    f"{where} is damaged: network {k + 1} of {len(self.members)} forecasts "
                    f"{worst:.3g} (scaled) for series {ids[i]!r}, whose last window lies "
                    f"between {lo[i]:.3g} and {hi[i]:.3g}; its weights were edited or "
                    "corrupted, fit and save the model again"
                )

    @torch.no_grad()
    def _network_point(
        self,
        module: ForecastModule,
        x: np.ndarray,
        future: np.ndarray | None,
        static: np.ndarray | None,
    ) -> np.ndarray:
        """One call of ``module`` on scaled windows ``x``: its point forecasts (batch,
        steps), every step of a direct network, a recursive one's next step."""
        module.eval()
        dtype = next(module.parameters()).dtype
        steps = module.net.steps
        fut = None if future is None else torch.as_tensor(future[:, :steps], dtype=dtype)
        st = None if static is None else torch.as_tensor(static, dtype=torch.float32)
        return module(torch.as_tensor(x, dtype=dtype), fut, st)[:, :, 0].numpy()


#: `Forecaster._check_members`: the series whose saved windows each network forecasts at
#: load, and how far outside such a window (in its range, at least one scaled unit) a
#: network's point forecast may lie; generous, as only weights off by orders of
#: magnitude are to be caught
MEMBER_CHECK_SERIES = 16
MEMBER_MARGIN = 1e6


#: How far outside its data a forecast may go before a fit counts as diverged, in units
#: of the data's range (its magnitude for a constant series), widened with the horizon.
PLAUSIBLE_MARGIN = 10.0


def plausible_ranges(
    values: np.ndarray, lengths: np.ndarray, horizon: int, window: int
) -> tuple[np.ndarray, np.ndarray]:
    """`plausible_range` of many series at once: ``values`` their target values one series
    after the other, ``lengths`` theirs; returns (lo, hi), one entry per series."""
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    lo = np.minimum.reduceat(values, starts)
    hi = np.maximum.reduceat(values, starts)
    span = hi - lo
    span = np.where(span > 0, span, np.maximum(np.abs(lo), np.abs(hi)))
    span = np.where(span > 0, span, 1.0)
    margin = PLAUSIBLE_MARGIN * span * (1 + horizon / window)
    return lo - margin, hi + margin


def plausible_range(values: np.ndarray, horizon: int, window: int) -> tuple[float, float]:
    """The interval a sane forecast of a series with these target ``values`` stays in:
    their min and max widened by ``PLAUSIBLE_MARGIN`` times their range, times
    ``1 + horizon / window`` (a trend across the window may go on for the horizon). For
    a constant series the range is the values' magnitude (1 for zeros). Generous on
    purpose: only a forecast far beyond anything the data suggests is refused."""
    lo, hi = float(np.min(values)), float(np.max(values))
    span = hi - lo
    if not span > 0:
        span = max(abs(lo), abs(hi)) or 1.0
    margin = PLAUSIBLE_MARGIN * span * (1 + horizon / window)
    return lo - margin, hi + margin


#: prefix of the weights of ensemble member k >= 1 in model.safetensors ("ensemble.k.")
ENSEMBLE_PREFIX = "ensemble."
