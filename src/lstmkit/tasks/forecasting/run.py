"""`forecast_run`: the whole ``lstmkit forecast`` job as one API call.

Train on the data before a held-out tail, score the tail beside the naive
baselines, optionally backtest, forecast the steps after the data, and
(`ForecastRun.write`) write every output file into a folder: ``model/``,
``forecast.csv``, ``metrics.csv``, ``future.csv``, ``backtest.csv``,
``tuning.csv``, ``forecast.png`` and ``training.png``. The CLI only parses, calls this and
prints.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lstmkit.data.series import SeriesData, truncate_series
from lstmkit.errors import LstmkitError
from lstmkit.tasks.forecasting.estimator import Forecaster
from lstmkit.tasks.forecasting.evaluation import Evaluation, qname
from lstmkit.tasks.forecasting.tuning import TuneResult, tune


@dataclass
class ForecastRun:
    """What `forecast_run` produced.

    evaluation: the held-out score (None with ``holdout=0``). ahead: the
    forecast after the data (None when known future covariates were not given).
    backtest: one row per fold and model (None without a backtest). tuning: the
    settings search (`lstmkit.tasks.forecasting.tuning.TuneResult`) or None.
    """

    forecaster: Forecaster
    data: SeriesData
    name: str
    holdout: int
    evaluation: Evaluation | None
    ahead: pd.DataFrame | None
    backtest: pd.DataFrame | None
    tuning: TuneResult | None = None

    @property
    def band(self) -> tuple[str, str] | None:
        """Columns of the outer quantiles (e.g. ``("q10", "q90")``), if there are two."""
        qs = self.forecaster.config.quantiles
        return (qname(qs[0]), qname(qs[-1])) if qs and len(qs) > 1 else None

    def _plotted(self, fc: pd.DataFrame) -> dict[str, Any]:
        """The dashed lines of the held-out plot: the best baseline (or seasonal naive) and,
        for a combined model, the network alone."""
        assert self.evaluation is not None
        rows = [r for r in self.evaluation.metrics.index if r not in ("lstmkit", "combined")]
        scores = self.evaluation.metrics.loc[rows, "MASE"].dropna() if rows else pd.Series()
        if not len(scores) and rows:
            scores = self.evaluation.metrics.loc[rows, "MAE"].dropna()
        best = str(scores.idxmin()) if len(scores) else None
        names = [n for n in (best, "lstmkit" if "combined" in self.evaluation.metrics.index
                              else None) if n and n in fc]  # fmt: skip
        return {("network alone" if n == "lstmkit" else n): fc[n].to_numpy() for n in names}

    def write(self, folder: str | os.PathLike[str]) -> list[str]:
        """Write every output into ``folder`` (an empty staging folder: see
        `lstmkit.io.staged_dir`) and return the names written, in display order."""
        folder = Path(folder)
        # the tables' text (pyarrow, mostly outside the interpreter's lock) is written in
        # another thread while the model is saved and the plots drawn here
        with ThreadPoolExecutor(1) as pool:
            held_out = None if self.evaluation is None else self.evaluation.forecasts
            csv = {"future.csv": self.ahead, "forecast.csv": held_out}
            tables = [pool.submit(write_csv, t, folder / k) for k, t in csv.items()
                      if t is not None]  # fmt: skip
            return self._write(folder, tables)

    def _write(self, folder: Path, tables: list[Future[None]]) -> list[str]:
        """`write` but for the CSV ``tables`` already being written; waits for them."""
        from lstmkit.plots.curves import plot_training_curves
        from lstmkit.plots.forecast import plot_forecast

        f, sd, h, band = self.forecaster, self.data, self.forecaster.config.horizon, self.band
        f.save(folder / "model")
        written = ["model/", "forecast.png"]
        first = next(iter(sd.series.values()))
        label = sd.target if sd.id_col is None else f"{sd.target} ({sd.id_col}={first.id})"
        if self.evaluation is not None:
            fc = self.evaluation.forecasts
            if sd.id_col:
                fc = fc[fc[sd.id_col].to_numpy() == first.id]  # ids are text
            cut = len(first) - self.holdout
            plot_forecast(
                first.times[:cut], first.values[:cut, 0], first.times[cut:][:h],
                fc["forecast"].to_numpy(), folder / "forecast.png", actual=fc["actual"].to_numpy(),
                lower=fc[band[0]].to_numpy() if band else None,
                upper=fc[band[1]].to_numpy() if band else None,
                band_label=f"{band[0]}-{band[1]}" if band else "band",
                baselines=self._plotted(fc),
                title=f"{self.name}: held-out forecast", ylabel=label,
            )  # fmt: skip
        elif self.ahead is not None:
            fut = self.ahead
            if sd.id_col:
                fut = fut[fut[sd.id_col].to_numpy() == first.id]
            plot_forecast(
                first.times, first.values[:, 0], fut[f.state.output_time_col].to_numpy(),
                fut["forecast"].to_numpy(), folder / "forecast.png",
                lower=fut[band[0]].to_numpy() if band else None,
                upper=fut[band[1]].to_numpy() if band else None,
                title=f"{self.name}: forecast", ylabel=label,
            )  # fmt: skip
        else:
            written.remove("forecast.png")
        if f.fit_result is not None and f.fit_result.history:
            plot_training_curves(
                f.fit_result.history, folder / "training.png", title=f"{self.name}: training"
            )
            written.append("training.png")
        for table in tables:  # straight to the file: 100,000 series are hundreds of MB of text
            table.result()
        if self.ahead is not None:
            written.append("future.csv")
        if self.evaluation is not None:
            (folder / "metrics.csv").write_text(self.evaluation.metrics.to_csv())
            written += ["forecast.csv", "metrics.csv"]
        if (folder / "logs").is_dir():
            written.append("logs/")
        if self.backtest is not None:
            (folder / "backtest.csv").write_text(_csv(self.backtest))
            written.append("backtest.csv")
        if self.tuning is not None:
            (folder / "tuning.csv").write_text(_csv(pd.DataFrame(self.tuning.trials)))
            written.append("tuning.csv")
        return written


def _csv(df: pd.DataFrame) -> str:
    buf = io.StringIO()
    df.to_csv(buf, index=False)
    return buf.getvalue()


#: rows `write_csv` formats at a time (their text is a few dozen MB)
CSV_ROWS = 1 << 17
#: pieces of `CSV_ROWS` rows `write_csv` formats at once, each in its own thread
CSV_THREADS = max(1, min(4, os.cpu_count() or 1))
#: characters that make pandas quote a text cell (then `write_csv` leaves the table to it)
_QUOTED = (",", '"', "\n", "\r")


def _column_text(col: pd.Series) -> Any:
    """The cells of ``col`` as a pyarrow string (or integer) array, as
    `pandas.DataFrame.to_csv` writes them, or None for a column it cannot do alike."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = col.dtype.kind
    if kind == "f":
        v = col.to_numpy(dtype=np.float64)
        text = pc.cast(pa.array(v), pa.string())  # shortest round-trip digits, like repr
        with np.errstate(invalid="ignore"):
            size = np.abs(v)
            # no whole number and no magnitude near an exponent (repr's below 1e-4 or from
            # 1e16, pyarrow's below 1e-4 or from 1e10): the digits are repr's as they are
            plain = ~((v == np.floor(v)) | (size >= 1e9) | ((size > 0) & (size < 1e-3)))
        if plain[np.isfinite(v)].all():
            return pc.if_else(pa.array(np.isnan(v)), pa.scalar(None, pa.string()), text)
        # repr writes 1.0 (not 1) and 1e-07 (not 1e-7) ...
        whole = pc.match_substring_regex(text, r"^-?\d+$")
        text = pc.if_else(whole, pc.binary_join_element_wise(text, pa.scalar(".0"), ""), text)
        text = pc.replace_substring_regex(text, r"e([+-])(\d)$", r"e\10\2")
        # ... and switches to an exponent at other magnitudes: those few cells by repr
        with np.errstate(invalid="ignore"):
            size = np.abs(v)
            python_exp = (size >= 1e16) | ((size > 0) & (size < 1e-4))
        arrow_exp = np.asarray(pc.match_substring(text, "e").fill_null(False))
        odd = np.flatnonzero(np.isfinite(v) & (python_exp != arrow_exp))
        if len(odd):
            cells = np.asarray(text.to_pylist(), dtype=object)
            cells[odd] = [repr(x) for x in v[odd].tolist()]
            text = pa.array(cells, type=pa.string())
        return pc.if_else(pa.array(np.isnan(v)), pa.scalar(None, pa.string()), text)
    if kind in "iu":
        return pa.array(col.to_numpy())
    if kind == "M":  # each distinct time formatted once, by pandas itself
        codes, uniques = pd.factorize(col)
        if (codes < 0).any():
            return None
        cells = pd.Series(uniques).to_csv(index=False, header=False, lineterminator="\n")
        return pa.array(cells.split("\n")[:-1], pa.string()).take(pa.array(codes))
    if kind == "O":  # each distinct text checked and converted once
        codes, uniques = pd.factorize(col)
        if (codes < 0).any() or not all(isinstance(v, str) for v in uniques.tolist()):
            return None
        text = pa.array(uniques, type=pa.string())
        if any(pc.any(pc.match_substring(text, c)).as_py() for c in _QUOTED):
            return None
        return text.take(pa.array(codes))
    return None


def write_csv(df: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """``df.to_csv(path, index=False)``, the same text, written by pyarrow `CSV_ROWS` rows
    at a time: pandas formats every cell in Python, a minute for the 1.2 million rows of
    100,000 series. Floats, integers, dates and plain text columns go through pyarrow; a
    table with any other column (or text that needs quotes) is left to pandas."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    def text(start: int) -> list[Any]:
        rows = df.iloc[start : start + CSV_ROWS]
        return [_column_text(rows.iloc[:, k]) for k in range(df.shape[1])]

    options = pcsv.WriteOptions(include_header=False, quoting_style="none")
    starts = range(0, len(df), CSV_ROWS)
    # the next pieces' text is made in other threads while one is written (pyarrow's
    # casts let go of the interpreter): 1.2 million rows of 11 columns, 0.9-1.0 s against
    # 1.4-1.7 s in one thread, on two cores
    with open(path, "wb") as fh, ThreadPoolExecutor(CSV_THREADS) as pool:
        fh.write(df.head(0).to_csv(index=False).encode())
        ahead = [pool.submit(text, start) for start in starts[:CSV_THREADS]]
        for k in range(len(starts)):
            cols = ahead.pop(0).result()
            if k + CSV_THREADS < len(starts):
                ahead.append(pool.submit(text, starts[k + CSV_THREADS]))
            if any(c is None for c in cols):
                for rest in ahead:
                    rest.cancel()
                break
            pcsv.write_csv(pa.table({f"c{k}": c for k, c in enumerate(cols)}), fh, options)
        else:
            return
    df.to_csv(path, index=False)  # the whole file again, by pandas


def forecast_run(
    data: SeriesData,
    forecaster: Forecaster,
    *,
    holdout: int | None = None,
    backtest: int = 0,
    future: pd.DataFrame | str | os.PathLike[str] | None = None,
    name: str = "series",
    tune_trials: int | None = None,
    tune_minutes: float | None = None,
    on_trial: Callable[[dict[str, Any]], None] | None = None,
) -> ForecastRun:
    """Fit ``forecaster`` on ``data`` without its last ``holdout`` steps (default: one
    horizon; 0: all of it), score those steps, backtest over ``backtest`` folds (refits),
    and forecast the horizon after the data (with ``future`` for known covariates).
    With ``tune_trials`` (1 or more) the settings are first searched on the validation
    stretch of the training part (`lstmkit.tasks.forecasting.tuning.tune`, at most
    ``tune_minutes``) and the best trial's model is the one scored, saved and used.

    Nothing is written; see `ForecastRun.write`. Raises `LstmkitError` for settings
    the data cannot serve.
    """
    h = forecaster.config.horizon
    holdout = h if holdout is None else holdout
    if holdout < 0:
        raise LstmkitError(f"holdout must be 0 or more, got {holdout}")
    if backtest < 0:
        raise LstmkitError(f"backtest folds must be 0 or more, got {backtest}")
    if future is not None and not data.future_covariates:
        raise LstmkitError(
            "a future table was given but no future covariates; name its columns "
            "(--future-covariates, future_covariates=) or leave the table out"
        )
    if data.future_covariates and not holdout and future is None:
        raise LstmkitError(
            "with future covariates and no holdout there is nothing to forecast; pass "
            "their values for the steps after the data (--future FILE)"
        )
    shortest = min(len(s) for s in data.series.values())
    if holdout and shortest - holdout < 2:
        raise LstmkitError(
            f"the shortest series has {shortest} rows, too few to hold out {holdout}; "
            "pass --holdout 0 or more data"
        )
    tuning = None
    if tune_trials is not None:
        tuning = tune(
            forecaster, truncate_series(data, holdout), tune_trials, minutes=tune_minutes,
            on_trial=on_trial,
        )  # fmt: skip
        forecaster = tuning.forecaster
    else:
        # with a held-out tail, the diverged-network check forecasts the windows the
        # evaluation scores (its known horizon: the tail), one network pass for both
        forecaster.fit(truncate_series(data, holdout), check_forecast=not holdout)
        if holdout:
            forecaster.check_forecast(data)
    evaluation = forecaster.evaluate(data) if holdout else None
    folds = forecaster.backtest(data, folds=backtest) if backtest > 0 else None
    forecaster.set_context(data)
    known = future is not None or not data.future_covariates
    ahead = forecaster.predict(future=future, baselines=True) if known else None
    return ForecastRun(forecaster, data, name, holdout, evaluation, ahead, folds, tuning)
