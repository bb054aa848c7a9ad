"""``lstmkit forecast`` and ``lstmkit predict``: the forecasting command line.

``lstmkit forecast`` with no data runs the embedded AirPassengers demo: train,
hold out the last 12 months, print the model beside naive and seasonal naive,
write ``forecast.csv`` (held-out forecast with actuals and baselines),
``future.csv`` (the steps after the data), ``metrics.csv``, ``forecast.png``,
``training.png`` and the model directory ``model/`` under ``--out`` (plus
``backtest.csv`` with ``--backtest K`` and ``logs/`` with ``--logger``). The
work is `lstmkit.tasks.forecasting.run.forecast_run`; this module parses,
calls it and prints. The whole ``--out`` folder is built in a temporary
sibling and swapped in at the end (`lstmkit.io.staged_dir`), so a failure
leaves the previous output as it was. ``lstmkit predict`` forecasts with a
saved model of any forecasting kind (a forecaster, a baseline forecaster: it asks
`lstmkit.kinds`) or with an ONNX export folder of one (`lstmkit.runtime`, no torch).
Bad input prints one ``error: ...`` line and exits with 2.
"""

from __future__ import annotations

import gc
import io
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from lstmkit.background import in_background
from lstmkit.cli import app
from lstmkit.cli.options import defaults, deprecated_option, option, take_deprecated
from lstmkit.errors import LstmkitError
from lstmkit.tasks.forecasting.settings import ForecasterConfig as F

if TYPE_CHECKING:  # the CLI starts without torch
    from lstmkit.tasks.forecasting import Forecaster
    from lstmkit.tasks.forecasting.run import ForecastRun

console = Console(stderr=False)

#: the forecaster's settings' defaults, which the options show and take
FD = defaults(F)
#: --pad takes auto/true/false (the setting: "auto" or a bool)
PAD_DEFAULT = str(FD["pad"]).lower()
#: --nonnegative takes auto/true/false too
NONNEGATIVE_DEFAULT = str(FD["nonnegative"]).lower()
LOG_PROFILE_DEFAULT = str(FD["log_profile"]).lower()
QUANTILES = ",".join(str(q) for q in FD["quantiles"])
DEVICES = str(FD["devices"])


def _fail(err: LstmkitError) -> typer.Exit:
    typer.echo(f"error: {err}", err=True)
    return typer.Exit(2)


def _floats(text: str | None, what: str) -> list[float] | None:
    if text is None or text.strip().lower() in ("", "none"):
        return None
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise LstmkitError(
            f"{what} must be comma-separated numbers like 0.1,0.5,0.9, got {text!r}"
        ) from None


def _names(text: str | None) -> list[str] | None:
    """Comma-separated column names -> list (None when empty)."""
    names = [c.strip() for c in (text or "").split(",") if c.strip()]
    return names or None


#: the baselines ``lstmkit forecast`` shows unless --baselines says otherwise: the cheap
#: ones (the statistical models cost seconds to import alone; see --baselines)
CLI_BASELINES = "naive,snaive,nlinear,dlinear"

# What `lstmkit forecast` writes into --out; a folder holding anything else is not replaced.
OUTPUT_NAMES = {
    "forecast.csv", "metrics.csv", "future.csv", "backtest.csv", "tuning.csv", "forecast.png",
    "training.png",
    "model", "logs",
}  # fmt: skip


def _check_out(out: Path) -> None:
    """Refuse an --out that is a file, holds files this command did not write, or holds
    a model of another kind; the whole folder is replaced at the end."""
    from lstmkit.io import check_model_target, recover_dir

    recover_dir(out)
    if out.exists() and not out.is_dir():
        raise LstmkitError(f"--out {out} is a file; give a folder for the outputs")
    if not out.is_dir():
        return
    foreign = sorted(p.name for p in out.iterdir() if p.name not in OUTPUT_NAMES)
    if foreign:
        listed = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise LstmkitError(
            f"--out {out} holds files lstmkit forecast did not write ({listed}) and would be "
            "replaced as a whole; choose a new or empty folder"
        )
    if (out / "model").exists():
        check_model_target(out / "model", "forecaster")


def _point_metrics(metrics: pd.DataFrame) -> pd.DataFrame:
    """The point-forecast columns of a metrics table (the band's are printed on a line of
    their own, and all are in metrics.csv)."""
    from lstmkit.tasks.forecast_metrics import METRICS

    return metrics[[c for c in metrics.columns if c in METRICS]]


#: columns where the lowest value is not the best: a band's coverage should be near its
#: nominal level, and a narrow band is only better at equal coverage
_NOT_RANKED = ("coverage", "width")


def _metrics_table(metrics: pd.DataFrame, title: str, best: str | None = None) -> Table:
    """The metrics as a table: the lowest of each column in bold, the ``best`` row marked."""
    table = Table(title=title)
    table.add_column("model")
    for col in metrics.columns:
        table.add_column(col, justify="right")
    for name, row in metrics.iterrows():
        cells = []
        for col, v in row.items():
            if not np.isfinite(v):
                cells.append("n/a")
                continue
            text = (
                f"{v:.2f}%"
                if col in ("MAPE", "sMAPE")
                else f"{v:.0%}"
                if col == "coverage"
                else f"{v:.3g}"
                if abs(v) >= 1e6
                else f"{v:.3f}"
            )
            best_cell = col not in _NOT_RANKED and v == metrics[col].min()
            cells.append(f"[bold]{text}[/bold]" if best_cell else text)
        table.add_row(f"{name} (best)" if name == best else str(name), *cells)
    return table


# Why a metric can be undefined (n/a): said under the table instead of a NaN.
UNDEFINED = {
    "MAPE": "MAPE n/a: every actual value is 0",
    "MASE": "MASE n/a: the training history never changes (no naive error to scale by)",
}


def _undefined_notes(metrics: pd.DataFrame) -> list[str]:
    return [note for col, note in UNDEFINED.items() if col in metrics and metrics[col].isna().any()]


def _csv(df: pd.DataFrame) -> str:
    buf = io.StringIO()
    df.to_csv(buf, index=False)
    return buf.getvalue()


@app.command("forecast")
def forecast_cmd(
    data: Annotated[
        Path | None,
        typer.Argument(help="CSV or Parquet file; omit to run the AirPassengers demo."),
    ] = None,
    target: Annotated[str | None, typer.Option(help="Column to forecast.")] = None,
    time_col: Annotated[
        str | None, typer.Option(help="Timestamp column (guessed if omitted).")
    ] = None,
    id_col: Annotated[str | None, typer.Option(help="Series id column (long format).")] = None,
    covariates: Annotated[
        str | None, typer.Option(help="Comma-separated extra input columns.")
    ] = None,
    future_covariates: Annotated[
        str | None,
        typer.Option(help="Comma-separated input columns known in advance (calendar, prices)."),
    ] = None,
    future: Annotated[
        Path | None,
        typer.Option(help="CSV/Parquet with the future covariates for the steps after the data."),
    ] = None,
    horizon: option(F, "horizon") = FD["horizon"],
    window: option(F, "window") = FD["window"],
    holdout: Annotated[
        int | None,
        typer.Option(help="Final steps held out for the test (default: horizon; 0: none)."),
    ] = None,
    rnn: option(F, "rnn") = FD["rnn"],
    hidden_size: option(F, "hidden_size") = FD["hidden_size"],
    num_layers: option(F, "num_layers") = FD["num_layers"],
    method: option(F, "method") = FD["method"],
    layer_norm: option(F, "layer_norm") = FD["layer_norm"],
    recurrent_dropout: option(F, "recurrent_dropout") = FD["recurrent_dropout"],
    zoneout: option(F, "zoneout") = FD["zoneout"],
    num_heads: option(F, "num_heads") = FD["num_heads"],
    chunk_size: option(F, "chunk_size") = FD["chunk_size"],
    quantiles: option(
        F, "quantiles", cli_type=str, help="Quantiles for the band, e.g. 0.1,0.5,0.9 ('none': MSE)."
    ) = QUANTILES,
    calibrate: option(F, "calibrate") = FD["calibrate"],
    instance_norm: option(
        F,
        "instance_norm",
        cli_type=Literal["auto", "mean", "last", "off"],
        help="Per-window reversible normalisation: mean (less the mean, over the spread), "
        "last (less the last value, over the mean step-to-step change), off; auto: last for "
        "a single series, mean for several.",
    ) = FD["instance_norm"],
    no_instance_norm: Annotated[
        bool, typer.Option("--no-instance-norm", hidden=True, help="Same as --instance-norm off.")
    ] = False,
    patch: option(F, "patch") = FD["patch"],
    residual: option(
        F,
        "residual",
        cli_type=Literal["auto", "nlinear", "nlinear-fixed", "none"],
    ) = FD["residual"],
    log_profile: option(
        F,
        "log_profile",
        cli_type=Literal["auto", "true", "false"],
        help="Give the point forecast the profile over the horizon of a ridge NLinear map "
        "of the log target, at the network's level (seasonality that grows with the level); "
        "auto: for a single series forecast directly whose horizon holds a whole season "
        "and whose values are all above 0, where its seasonal swing grows with its level.",
    ) = LOG_PROFILE_DEFAULT,
    pad: option(
        F,
        "pad",
        cli_type=Literal["auto", "true", "false"],
        help="Left-pad series shorter than the window (their first value, a mask input "
        "marking the real points); auto: for several series when the shortest cannot hold "
        "the preferred window.",
    ) = PAD_DEFAULT,
    recent: option(F, "recent") = FD["recent"],
    nonnegative: option(
        F,
        "nonnegative",
        cli_type=Literal["auto", "true", "false"],
        help="Clip the forecasts (point and band) at 0: true for every series, false for "
        "none; auto: for each series whose training values are all 0 or more.",
    ) = NONNEGATIVE_DEFAULT,
    batch_size: option(F, "batch_size") = FD["batch_size"],
    batches_per_epoch: option(F, "batches_per_epoch") = FD["batches_per_epoch"],
    loss: option(F, "loss") = FD["loss"],
    scaler: option(F, "scaler") = FD["scaler"],
    season: option(F, "season") = FD["season"],
    max_epochs: option(F, "max_epochs") = FD["max_epochs"],
    keep_weights: option(F, "keep_weights") = FD["keep_weights"],
    lr: option(F, "lr") = FD["lr"],
    precision: option(F, "precision") = FD["precision"],
    logger: option(
        F, "logger", help="Also log training to --out/logs with Lightning's csv or tensorboard."
    ) = FD["logger"],
    seed: option(F, "seed") = FD["seed"],
    devices: option(F, "devices", cli_type=str) = DEVICES,
    accelerator: option(F, "accelerator") = FD["accelerator"],
    threads: option(F, "threads", optional=True) = None,
    out: Annotated[
        Path | None, typer.Option(help="Output folder (default runs/<data name>).")
    ] = None,
    progress: option(F, "progress") = FD["progress"],
    checkpoint_dir: option(
        F,
        "checkpoint_dir",
        cli_type=Path,
        help="Keep last.ckpt here; rerunning with it resumes an interrupted fit.",
    ) = None,
    backtest: Annotated[
        int,
        typer.Option(help="Also run a rolling-origin backtest over this many folds (refits)."),
    ] = 0,
    tune: Annotated[
        int | None,
        typer.Option(
            help="Search the settings over this many trials (Optuna, seeded) on the "
            "validation stretch; the best trial's model is kept. Writes tuning.csv."
        ),
    ] = None,
    tune_minutes: Annotated[
        float | None, typer.Option(help="Wall-time budget of --tune, in minutes.")
    ] = None,
    table_format: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="long (a row a time step) or m4-wide (a row a series: id, then values); "
            "default: m4-wide for a header V1, V2, ..., else long.",
        ),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(help="m4-wide: the first date of every series (default: steps 0, 1, ...)."),
    ] = None,
    freq: Annotated[
        str | None,
        typer.Option(help="Pandas frequency (default: inferred; with --start: D)."),
    ] = None,
    static_cols: Annotated[
        str | None,
        typer.Option(help="Comma-separated columns with one value per series (text: embedded)."),
    ] = None,
    id_embedding: option(F, "id_embedding") = FD["id_embedding"],
    baselines: option(
        F,
        "baselines",
        cli_type=str,
        help="Baselines shown beside the model, comma-separated: naive, snaive, nlinear, "
        "dlinear, ets, theta, arima ('none': none).",
    ) = CLI_BASELINES,
    combine: option(F, "combine") = FD["combine"],
    ensemble: option(F, "ensemble", cli_type=str, metavar="auto|K") = FD["ensemble"],
    val_size: option(F, "val_size") = FD["val_size"],
    refit: option(F, "refit") = FD["refit"],
    model: deprecated_option("--model", str) = None,
) -> None:
    """Train a forecaster, score it on held-out data beside naive baselines, save it all."""
    try:
        rnn = take_deprecated(rnn, model, "--rnn", "--model", FD["rnn"])
        # every option named after a setting of ForecasterConfig goes to the Forecaster
        given = locals()
        settings = {name: given[name] for name in F.flat_fields() if name in given}
        settings["quantiles"] = _floats(quantiles, "--quantiles")
        settings["instance_norm"] = _instance_norm(instance_norm, no_instance_norm)
        settings["residual"] = None if residual == "none" else residual
        settings["pad"] = {"true": True, "false": False}.get(pad, pad)
        settings["log_profile"] = {"true": True, "false": False}.get(log_profile, log_profile)
        settings["nonnegative"] = {"true": True, "false": False}.get(nonnegative, nonnegative)
        settings["ensemble"] = _ensemble(ensemble)
        settings["devices"] = int(devices) if devices.isdigit() else devices
        thresholds, frozen = gc.get_threshold(), gc.get_freeze_count()
        try:
            _forecast(settings, data, target, time_col, id_col, covariates, future_covariates,
                      future, holdout, out, backtest, tune, tune_minutes, table_format, start,
                      freq, static_cols)  # fmt: skip
        finally:  # the collector as it was (the command may run inside a longer process)
            if not frozen:
                gc.unfreeze()
            gc.set_threshold(*thresholds)
    except LstmkitError as err:
        raise _fail(err) from None


def _instance_norm(choice: str, off: bool) -> bool | str:
    """``--instance-norm`` as the setting takes it (``off``: False); ``--no-instance-norm``
    is ``off`` (it was a flag before the choices came)."""
    if off and choice not in ("off", FD["instance_norm"]):
        raise LstmkitError(f"--no-instance-norm contradicts --instance-norm {choice}; give one")
    return False if off or choice == "off" else choice


def _ensemble(value: str) -> int | str:
    """``--ensemble``: auto or a whole number of networks (at least 1)."""
    text = value.strip().lower()
    if text == "auto":
        return "auto"
    if not text.isdigit():  # "0" goes on: the setting's own message asks for >= 1
        raise LstmkitError(
            f"--ensemble must be auto or a whole number of networks >= 1, got {value!r}"
        )
    return int(text)


def _forecast(
    settings: dict[str, Any], data: Path | None, target: str | None, time_col: str | None,
    id_col: str | None, covariates: str | None, future_covariates: str | None,
    future: Path | None, holdout: int | None, out: Path | None, backtest: int,
    tune: int | None, tune_minutes: float | None, table_format: str | None,
    start: str | None, freq: str | None, static_cols: str | None,
) -> None:  # fmt: skip
    from lstmkit.data.air_passengers import load_air_passengers
    from lstmkit.data.series import load_series
    from lstmkit.io import check_outside, staged_dir

    # Thousands of series are millions of small Python objects (contexts, tables): with
    # the start-up's objects frozen and collections rarer, the cyclic collector stops
    # rescanning them (100,000 series: their contexts took 12 s instead of 3.5)
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    if data is None:
        frame: Any = load_air_passengers()
        name = "air_passengers"
        target, time_col = target or "passengers", time_col or "month"
    else:
        frame, name = data, data.stem
    # The table is read in another thread while torch and Lightning are imported here
    # (seconds of the interpreter's own work; decoding a table is mostly pyarrow's and
    # numpy's, outside its lock): importing and reading 100,000 series of 200 days took
    # 5.6-6.3 s against 7.3-7.7 s one after the other. Its result, or its error, is taken
    # after the settings' checks, so they still come first.
    reading = in_background(
        "lstmkit-read", load_series, frame, target, time_col=time_col, id_col=id_col,
        covariates=_names(covariates), future_covariates=_names(future_covariates), freq=freq,
        format=table_format, start=start, static_cols=_names(static_cols),
    )  # fmt: skip
    from lstmkit.tasks.forecasting import Forecaster
    from lstmkit.tasks.forecasting.run import forecast_run
    from lstmkit.training import check_checkpoint_dir, require_precision_supported

    # before anything is written
    require_precision_supported(settings["precision"], settings["accelerator"])
    from lstmkit.tasks.forecasting.baselines import parse_names

    settings["baselines"] = parse_names(settings["baselines"])  # an unknown name: now
    checkpoint_dir: Path | None = settings["checkpoint_dir"]
    out = out or Path("runs") / name
    if checkpoint_dir is not None:
        check_outside(checkpoint_dir, "--checkpoint-dir", out, "--out")
    _check_out(out)
    if checkpoint_dir is not None:
        check_checkpoint_dir(checkpoint_dir, "--checkpoint-dir")
    # The whole output is built in a temporary sibling of --out (created now, so an
    # unwritable location fails before training) and swapped in only at the end.
    with staged_dir(out) as stage:
        sd = reading.result()
        log_dir = str(stage / "logs") if settings["logger"] else None
        forecaster = Forecaster(**settings, log_dir=log_dir)
        run = forecast_run(
            sd, forecaster, holdout=holdout, backtest=backtest, future=future, name=name,
            tune_trials=tune, tune_minutes=tune_minutes, on_trial=_print_trial,
        )  # fmt: skip
        forecaster = run.forecaster
        written = run.write(stage)
    _print_run(run, forecaster, name, settings["horizon"], backtest, checkpoint_dir)
    console.print(f"wrote {out}/: {', '.join(written)}")


def _print_trial(record: dict[str, Any]) -> None:
    """One line per finished tuning trial."""
    settings = ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in record.items()
        if k not in ("trial", "score", "state", "reason", "seconds")
    )
    result = (
        f"validation MAE {record['score']:.4f}"
        if record["state"] == "complete"
        else f"failed: {record['reason']}"
    )
    console.print(f"trial {record['trial']}: {settings}: {result} ({record['seconds']:.0f} s)")


def _print_run(
    run: ForecastRun,
    forecaster: Forecaster,
    name: str,
    horizon: int,
    backtest: int,
    checkpoint_dir: Path | None,
) -> None:
    """What `lstmkit forecast` prints after a run: the held-out scores, the band's
    coverage, where it resumed, the training summary and the backtest."""
    evaluation, result, band, holdout = run.evaluation, forecaster.fit_result, run.band, run.holdout
    if evaluation is not None:
        scored = "" if holdout == horizon else f", scored on the final {horizon}"
        console.print(_metrics_table(
            _point_metrics(evaluation.metrics),
            f"{name}: last {holdout} steps held out{scored} (season {evaluation.season or '-'})",
            best=evaluation.best,
        ))  # fmt: skip
    for note in _undefined_notes(evaluation.metrics) if evaluation is not None else []:
        console.print(note)
    for note in evaluation.notes.values() if evaluation is not None else []:
        console.print(note)
    mixture = forecaster.mixture
    if mixture is not None:
        weights = ", ".join(f"{w:.2f}" for w in mixture.weights)
        console.print(
            f"combined: the model mixed with {mixture.baseline} (chosen on validation); the "
            f"model's weight per step: {weights}"
        )
    if evaluation is not None and evaluation.coverage is not None and band:
        scores = evaluation.metrics.loc["lstmkit"]
        extra = ""
        if "width" in scores:
            extra = (
                f" (mean width {scores['width']:.4g}; scaled quantile loss {scores['SQL']:.3f},"
                f" weighted quantile loss {scores['WQL']:.3f})"
            )
        console.print(
            f"{band[0]}-{band[1]} band holds {evaluation.coverage:.0%} of the held-out "
            f"actuals{extra}"
        )
    note = getattr(forecaster, "calibration_note", None)
    if note:
        console.print(note)
    if result is not None and result.resumed_from_epoch is not None:
        console.print(
            f"resumed from the checkpoint in {checkpoint_dir} after epoch "
            f"{result.resumed_from_epoch + 1}"  # epochs count from 1 on screen, as in classify
        )
    results = forecaster.member_results
    if len(results) > 1:  # a seed ensemble: every network's training
        seed = forecaster.config.train.seed
        console.print(
            f"trained {len(results)} networks (seeds {seed}-{seed + len(results) - 1}) for "
            f"{'/'.join(str(r.epochs_run) for r in results)} epochs in "
            f"{sum(r.fit_seconds for r in results):.1f} s (best epochs "
            f"{'/'.join(str(r.best_epoch + 1) for r in results)}, window "
            f"{forecaster.state.window})"
        )
    elif result is not None:
        console.print(
            f"trained {result.epochs_run} epochs in {result.fit_seconds:.1f} s "
            f"(best epoch {result.best_epoch + 1}, window {forecaster.state.window})"
        )
    if run.tuning is not None:
        chosen = ", ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in run.tuning.best.items()
        )
        done = sum(r["state"] == "complete" for r in run.tuning.trials)
        console.print(
            f"tuned over {len(run.tuning.trials)} trials ({done} trained): chose {chosen} "
            f"(validation MAE {run.tuning.score:.4f}, scaled units)"
        )
    if run.backtest is not None:
        mean = run.backtest.drop(columns=["fold", "origin"]).groupby("model", sort=False).mean()
        mean = _point_metrics(mean)
        best = mean["MASE"].dropna() if mean["MASE"].notna().any() else mean["MAE"].dropna()
        console.print(_metrics_table(
            mean, f"{name}: backtest, mean over {backtest} folds",
            best=str(best.idxmin()) if len(best) else None,
        ))  # fmt: skip


@app.command("predict")
def predict_cmd(
    model: Annotated[Path, typer.Option("--model", "-m", help="Model folder from forecast.")],
    data: Annotated[
        Path | None, typer.Option(help="CSV/Parquet with recent history (default: saved end).")
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write a CSV here.")] = None,
    future: Annotated[
        Path | None,
        typer.Option(help="CSV/Parquet with known future covariates (if the model uses them)."),
    ] = None,
) -> None:
    """Forecast the next horizon steps with a saved model (a forecaster or a baseline
    forecaster) or its ONNX export (the export folder itself)."""
    try:
        from lstmkit import kinds
        from lstmkit.io import atomic_write_text
        from lstmkit.io.model_dir import CONFIG_FILE
        from lstmkit.runtime.session import EXPORT_FILE

        if (model / EXPORT_FILE).is_file() and not (model / CONFIG_FILE).exists():
            from lstmkit import runtime

            predictor = runtime.load(model)  # an export folder: no torch
            _forecasting(kinds.get(predictor.kind), model)
            ahead = predictor.predict(data, future)
        else:
            kind = kinds.of_model_folder(model)
            _forecasting(kind, model)
            ahead = kind.load(model).predict(data, future=future, baselines=True)
        if output is not None:
            atomic_write_text(output, _csv(ahead))
    except LstmkitError as err:
        raise _fail(err) from None
    from lstmkit.tasks.forecasting.baselines import LABELS

    # the model's forecast, then the baselines beside it in a table of their own
    others = [c for c in ahead.columns if c in LABELS.values()]
    keys = [c for c in ahead.columns if c not in others and c != "forecast" and c != "lstmkit"]
    keys = [c for c in keys if not (c.startswith("q") and c[1:].replace(".", "").isdigit())]
    console.print(_frame_table(ahead.drop(columns=others), f"forecast from {model}"))
    if others:
        cols = [*keys, *(["lstmkit"] if "lstmkit" in ahead else []), *others]
        console.print(_frame_table(ahead[cols], "baselines (lstmkit: the network alone)"
                                   if "lstmkit" in ahead else "baselines"))  # fmt: skip
    for label, reason in ahead.attrs.get("n/a", {}).items():
        console.print(f"{label} n/a ({reason})")
    if output is not None:
        console.print(f"wrote {output}")


def _forecasting(kind: Any, model: Path) -> None:
    """Refuse, in one line, a model that ``lstmkit predict`` does not forecast with."""
    if kind.task != "forecasting":
        raise LstmkitError(
            f"{model} holds a {kind.title}, not a forecaster; lstmkit predict forecasts with a "
            "model of lstmkit forecast or a baseline forecaster"
        )


def _frame_table(frame: pd.DataFrame, title: str) -> Table:
    """A forecast table for the terminal (numbers to 3 decimals, NaN as n/a)."""
    from lstmkit.data.series import format_time

    table = Table(title=title)
    for col in frame.columns:
        table.add_column(str(col), justify="right")
    for _, row in frame.iterrows():
        table.add_row(*[
            ("n/a" if not np.isfinite(v) else f"{v:.3f}")
            if isinstance(v, float | np.floating)
            else format_time(v)
            for v in row
        ])  # fmt: skip
    return table
