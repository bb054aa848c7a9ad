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
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch

from lstmkit.data.scalers import SeriesScaler
from lstmkit.data.series import SeriesData, load_series, season_from_freq, truncate_series
from lstmkit.errors import LstmkitError
from lstmkit.io import load_model_dir, save_model_dir
from lstmkit.settings import warn_deprecated
from lstmkit.tasks.forecast_metrics import (
    METRICS,
    all_metrics,
    naive_forecast,
    seasonal_naive_forecast,
)
from lstmkit.tasks.forecasting.data import ForecastData
from lstmkit.tasks.forecasting.evaluation import Evaluation, qname, quantile_coverage
from lstmkit.tasks.forecasting.module import ForecastModule, simulate_quantiles
from lstmkit.tasks.forecasting.network import check_model_size, estimate_parameters, make_net
from lstmkit.tasks.forecasting.predict import PredictCore
from lstmkit.tasks.forecasting.settings import ForecasterConfig
from lstmkit.tasks.forecasting.state import FittedState, check_context, check_scaler
from lstmkit.training import FitResult, TrainConfig, fit, require_precision_supported

KIND = "forecaster"


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
        self.context: dict[str, dict[str, Any]] = {}
        self.fit_result: FitResult | None = None

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
        )

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
    ) -> Forecaster:
        """Train on ``data`` (all of it; the last ``val_size`` steps of each series
        validate for early stopping). Returns self; see `fit_result` for the history.

        ``covariates`` are extra input columns seen over the input window;
        ``future_covariates`` are also known over the horizon (calendar, planned
        prices) and `predict` then needs their next values (``future=``)."""
        require_precision_supported(self.config.train.precision, self.config.train.accelerator)
        self.state, self.context = None, {}
        sd = self._load(
            data, target=target, time_col=time_col, id_col=id_col,
            covariates=covariates, freq=freq, future_covariates=future_covariates,
        )  # fmt: skip
        prepared = ForecastData(sd, self.config)
        prepared.setup("fit")
        self.state, self.scaler, self.context = prepared.state, prepared.scaler, prepared.context
        train = self.config.train
        L.seed_everything(train.seed, verbose=False)
        self.net = self._build_module(sd.n_features, prepared.window)
        self.fit_result = fit(
            self.net,
            prepared.train_dataloader(),
            prepared.val_dataloader(),
            train,
            prepared.fingerprint(),
        )
        # a "-true" precision (64, 16, bf16) converted the network; it predicts, saves and
        # exports in float32 like every loaded model
        self.net.float().eval()
        self._check_plausible(sd)
        return self

    def _check_plausible(self, sd: SeriesData) -> None:
        """Refuse a fit whose forecast leaves any plausible range of the data: from the last
        window with a known horizon after it, each series' forecast (every output) must
        stay within `plausible_range` of its target values. A network thrown off by a
        learning rate that is far too large forecasts orders of magnitude outside it."""
        assert self.state is not None and self.scaler is not None
        h, window, fidx = self.config.horizon, self.state.window, self._future_columns()
        for s in sd.series.values():
            x = s.values[None, -(window + h) : -h]
            fut = s.values[None, -h:][..., fidx] if fidx else None
            try:
                fc = self._core().windows(x, s.id, future=fut)
            except LstmkitError:  # not finite
                fc = np.array([np.nan])
            lo, hi = plausible_range(s.values[:, 0], h, window)
            if not ((fc >= lo) & (fc <= hi)).all():
                worst = fc.flat[int(np.argmax(np.where(np.isfinite(fc), np.abs(fc), np.inf)))]
                label = "the forecast" if sd.id_col is None else f"the forecast of series {s.id!r}"
                raise LstmkitError(
                    f"training diverged: {label} reaches {worst:.3g}, far outside the data's "
                    f"range ({s.values[:, 0].min():.3g} to {s.values[:, 0].max():.3g}); lower "
                    f"the learning rate (it is {self.config.train.lr:g}) or scale the data"
                )

    def _build_module(self, n_features: int, window: int) -> ForecastModule:
        cfg = self.config
        check_model_size(
            estimate_parameters(cfg, n_features, window, len(self._future_columns())),
            "hidden_size / num_layers",
        )
        net = make_net(cfg, n_features, window, len(self._future_columns()))
        return ForecastModule(net, cfg.instance_norm, cfg.quantiles, self._future_columns())

    def set_context(
        self, data: pd.DataFrame | pd.Series | str | os.PathLike[str] | SeriesData
    ) -> Forecaster:
        """Make `predict()` (and a saved model) continue from the end of ``data``
        instead of the end of the training data, without retraining."""
        self.require_fitted()
        assert self.state is not None
        sd = self._load(data)
        window = self.state.window
        for s in sd.series.values():
            if len(s) < window:
                raise LstmkitError(
                    f"series {s.id!r} has {len(s)} rows; the model needs at least {window}"
                )
            if s.id not in self.scaler.params:  # type: ignore[union-attr]
                raise LstmkitError(
                    f"series {s.id!r} was not seen in training; the model knows "
                    f"{', '.join(list(self.context)[:10])}"
                )
            self.context[s.id] = {
                "values": s.values[-window:].tolist(),
                "times": [str(t) for t in s.times[-window:]],
            }
        return self

    # ------------------------------------------------------------------ predict
    @torch.no_grad()
    def _forecast_scaled(
        self, window_values: np.ndarray, future: np.ndarray | None = None
    ) -> np.ndarray:
        """(batch, window, features) scaled [+ future (batch, horizon, n_future) scaled]
        -> (batch, horizon, n_outputs) scaled."""
        assert self.net is not None
        self.net.eval()
        dtype = next(self.net.parameters()).dtype
        x = torch.as_tensor(window_values, dtype=dtype)
        if self.config.method == "direct":
            fut = None if future is None else torch.as_tensor(future, dtype=dtype)
            return self.net(x, fut).numpy()
        outs = []
        start = x
        for _ in range(self.config.horizon):
            step = self.net(x)  # (batch, 1, n_outputs)
            outs.append(step)
            x = torch.cat([x[:, 1:], step[:, :, :1]], dim=1)
        out = torch.cat(outs, dim=1)
        if len(self.config.quantiles or []) >= 2 and self.config.horizon > 1:
            # the one-step quantiles only hold for step 1; later steps take the quantiles
            # of simulated sample paths, so the band widens with the horizon
            levels = torch.tensor(self.config.quantiles or [], dtype=torch.float32)
            h, seed = self.config.horizon, self.config.train.seed
            out[:, 1:, 1:] = simulate_quantiles(self.net, start, levels, h, seed)[:, 1:]
        return out.numpy()

    def _forecast_series(
        self, sid: str, history: np.ndarray, future: np.ndarray | None = None
    ) -> np.ndarray:
        """Forecast from the raw history (time, features) of one series (and the known
        covariates over the horizon, (horizon, n_future)): (horizon, n_outputs)."""
        return self._core().series(sid, history, future)

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
    ) -> pd.DataFrame:
        """Forecast the ``horizon`` steps after the end of ``data`` (default: after the
        data the model was fitted on, or the data given to `set_context`).

        ``future``: for a model fitted with ``future_covariates``, a table (or
        CSV/Parquet path) with the time (and id) column and those columns for at
        least the ``horizon`` steps after the data.

        Returns a DataFrame with (id,) time, ``forecast`` and, with quantiles,
        one ``q<percent>`` column per quantile.
        """
        self.require_fitted()
        return self._core().predict(data, future)

    # ------------------------------------------------------------------ evaluate
    def evaluate(
        self, data: pd.DataFrame | pd.Series | str | os.PathLike[str] | SeriesData
    ) -> Evaluation:
        """Hold out the last ``horizon`` steps of each series in ``data``, forecast them
        from the steps before, and score the model beside naive and seasonal naive."""
        self.require_fitted()
        sd = self._load(data)
        h = self.config.horizon
        season = self.season
        rows: dict[str, list[dict[str, float]]] = {"lstmkit": [], "naive": []}
        if season:
            rows["seasonal_naive"] = []
        frames = []
        assert self.state is not None
        window = self.state.window
        for s in sd.series.values():
            if len(s) < window + h:
                raise LstmkitError(
                    f"series {s.id!r} has {len(s)} rows; evaluation needs window ({window}) + "
                    f"horizon ({h}) = {window + h}"
                )
            hist, actual = s.values[:-h], s.values[-h:, 0]
            fidx = self._future_columns()
            fc = self._forecast_series(s.id, hist, s.values[-h:, fidx] if fidx else None)
            frame = self._core().frame(s.id, s.times[-h:], fc)
            frame.insert(int(frame.columns.get_loc("forecast")), "actual", actual)
            target_hist = hist[:, 0]
            baselines = {"naive": naive_forecast(target_hist, h)}
            if season and len(target_hist) >= season:
                baselines["seasonal_naive"] = seasonal_naive_forecast(target_hist, h, season)
            rows["lstmkit"].append(
                all_metrics(actual, frame["forecast"].to_numpy(), target_hist, season)
            )
            for name, b in baselines.items():
                rows[name].append(all_metrics(actual, b, target_hist, season))
                frame[name] = b
            frames.append(frame)
        table = pd.DataFrame({name: pd.DataFrame(r).mean() for name, r in rows.items() if r}).T[
            list(METRICS)
        ]
        table.index.name = "model"
        forecasts = pd.concat(frames, ignore_index=True)
        coverage = None
        qs = self.config.quantiles or []
        if len(qs) >= 2:
            coverage = quantile_coverage(
                forecasts["actual"].to_numpy(),
                forecasts[qname(qs[0])].to_numpy(),
                forecasts[qname(qs[-1])].to_numpy(),
            )
        return Evaluation(table, forecasts, season, coverage)

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
        config = {"forecaster": settings, "data": self.state.to_dict()}
        extras = {
            "scaler.json": self.scaler.to_json(),
            "context.json": json.dumps(self.context),
        }
        if self.fit_result is not None:
            extras["history.json"] = json.dumps(self.fit_result.to_dict())
        return save_model_dir(
            path, kind=KIND, config=config, state_dict=self.net.net.state_dict(), extras=extras
        )

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
            context = check_context(
                json.loads(saved.read_text("context.json")), state, set(scaler.params)
            )
        except (LstmkitError, KeyError, TypeError, ValueError, AttributeError) as err:
            if isinstance(err, LstmkitError) and "model directory" in str(err):
                raise  # a missing file, already said in one line
            what = str(err) if isinstance(err, LstmkitError) else f"{type(err).__name__}: {err}"
            raise LstmkitError(
                f"{root / current} is damaged ({what[:200]}); save the model again"
            ) from None
        self = cls.__new__(cls)
        self.config, self.state, self.scaler, self.context = cfg, state, scaler, context
        self.fit_result = None
        try:
            history = json.loads(saved.read_text("history.json"))
            self.fit_result = FitResult.from_dict(history)
        except (LstmkitError, ValueError, TypeError):
            pass
        self.net = self._build_module(state.n_features, state.window)
        try:
            self.net.net.load_state_dict(saved.state_dict)
        except RuntimeError as err:
            first = str(err).splitlines()[0]
            raise LstmkitError(f"weights in {path} do not match its config: {first}") from None
        self.net.eval()
        return self


#: How far outside its data a forecast may go before a fit counts as diverged, in units
#: of the data's range (its magnitude for a constant series), widened with the horizon.
PLAUSIBLE_MARGIN = 10.0


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
