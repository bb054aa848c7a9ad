"""Settings declared once: the models, the options built from them, the renamed names and
the forecast metrics on torchmetrics."""

from __future__ import annotations

import re
import sys
import typing
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_cli_forecast import run

from lstmkit.errors import LstmkitError
from lstmkit.settings import PRECISIONS, SettingsError
from lstmkit.tasks.forecasting.settings import ForecasterConfig
from lstmkit.tasks.language_model.settings import PretrainSettings
from lstmkit.tasks.text_classification.baseline import BaselineSettings
from lstmkit.tasks.text_classification.settings import TextClassifierConfig
from lstmkit.training.settings import TrainConfig

MODELS = [TrainConfig, ForecasterConfig, TextClassifierConfig, PretrainSettings, BaselineSettings]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_setting_has_a_type_and_help_text(model) -> None:
    for name, ref in model.flat_fields().items():
        assert ref.info.annotation is not None, name
        assert ref.info.description, f"{model.__name__}.{name} has no help text"


def test_the_shared_rules_are_one_rule() -> None:
    """gradient_clip_val >= 0 and precision 32 -> "32" everywhere (they differed by task)."""
    for make in (TrainConfig, ForecasterConfig, TextClassifierConfig):
        assert make(gradient_clip_val=0.0).gradient_clip_val == 0.0
        with pytest.raises(SettingsError, match="gradient_clip_val must be a number >= 0"):
            make(gradient_clip_val=-1.0)
        assert make(precision=32).precision == "32"
    assert PretrainSettings(precision=32).precision == "32"
    # pretraining shares the field (its rule and help), with its own default
    shared = PretrainSettings.model_fields["lr"]
    assert shared.description == TrainConfig.model_fields["lr"].description
    with pytest.raises(SettingsError, match="pretraining setting lr must be a number > 0"):
        PretrainSettings(lr=0)


def _choices(help_text: str, option: str) -> list[str]:
    """The choices the help lists for ``option`` (``<a|b|c>``, wrapped over lines)."""
    flat = re.sub(r"[\s│]+", "", help_text)
    found = re.search(re.escape(option) + r"<([^>]*)>", flat)
    assert found, f"{option} not in the help"
    return found.group(1).split("|")


def test_forecast_and_classify_list_the_same_precisions(capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    code, forecast, _ = run(["forecast", "--help"], capsys)
    assert code == 0
    code, classify, _ = run(["classify", "train", "--help"], capsys)
    assert code == 0
    assert _choices(forecast, "--precision") == list(PRECISIONS)
    assert _choices(classify, "--precision") == list(PRECISIONS)
    # choices, defaults and help come from the models
    assert _choices(forecast, "--rnn") == list(
        typing.get_args(ForecasterConfig.model_fields["rnn"].annotation)
    )
    assert _choices(classify, "--tokenizer") == ["word", "bpe"]
    assert "Units per recurrent layer. (an integer >= 1)" in re.sub(r"[\s│]+", " ", forecast)
    assert "[default: 300]" in re.sub(r"\s+", " ", forecast.split("--max-epochs")[1])
    # the old names are hidden from the help
    assert "--layers" not in classify and "--epochs" not in classify
    assert not re.search(r"--model\b", forecast)


def test_a_bad_choice_is_one_line_and_writes_nothing(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    code, _, err = run(["forecast", "--rnn", "lsmt", "--out", str(out)], capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ")
    assert "'lsmt' is not one of 'lstm', 'gru'" in err and not out.exists()
    code, _, err = run(["forecast", "--hidden-size", "0", "--out", str(out)], capsys)
    assert code == 2 and err.strip() == (
        "error: forecaster setting hidden_size must be an integer >= 1, got 0"
    )
    assert not out.exists()


def _air(tmp_path: Path) -> Path:
    t = np.arange(40)
    frame = pd.DataFrame({
        "month": pd.date_range("2000-01-01", periods=40, freq="MS"),
        "y": 50 + t + 10 * np.sin(2 * np.pi * t / 12),
    })  # fmt: skip
    frame.to_csv(tmp_path / "s.csv", index=False)
    return tmp_path / "s.csv"


def test_old_forecast_option_names_warn_and_still_work(tmp_path: Path, capsys) -> None:
    data = _air(tmp_path)
    argv = ["forecast", str(data), "--target", "y", "--horizon", "3", "--hidden-size", "4",
            "--max-epochs", "1", "--no-progress", "--holdout", "0", "--model", "gru",
            "--out", str(tmp_path / "out")]  # fmt: skip
    code, _, err = run(argv, capsys)
    assert code == 0, err
    assert err.splitlines()[0] == (
        "warning: --model is deprecated (it goes in the next release); use --rnn"
    )
    from lstmkit.tasks.forecasting import Forecaster

    assert Forecaster.load(tmp_path / "out" / "model").config.rnn == "gru"
    code, _, err = run([*argv[:-1], str(tmp_path / "b"), "--rnn", "gru", "--model", "lstm"],
                       capsys)  # fmt: skip
    assert code == 2 and "--model lstm and --rnn gru name the same setting" in err
    assert not (tmp_path / "b").exists()


def test_old_classify_option_names_warn_and_still_work(tmp_path: Path, capsys) -> None:
    from test_text_classifier import make_texts

    texts, labels = make_texts(60, seed=3)
    data = tmp_path / "t.csv"
    pd.DataFrame({"text": texts, "label": labels}).to_csv(data, index=False)
    out = tmp_path / "m"
    argv = ["classify", "train", str(data), "--out", str(out), "--epochs", "1", "--layers",
            "2", "--embedding-dim", "8", "--hidden-size", "8", "--no-progress",
            "--no-baseline"]  # fmt: skip
    code, _, err = run(argv, capsys)
    assert code == 0, err
    warned = [line for line in err.splitlines() if line.startswith("warning:")]
    assert warned == [
        "warning: --epochs is deprecated (it goes in the next release); use --max-epochs",
        "warning: --layers is deprecated (it goes in the next release); use --num-layers",
    ]
    from lstmkit.tasks.text_classification import TextClassifier

    clf = TextClassifier.load(out)
    assert clf.config.num_layers == 2 and len(clf.history) == 1
    code, _, err = run([*argv, "--max-epochs", "3"], capsys)
    assert code == 2 and "--epochs 1 and --max-epochs 3 name the same setting" in err


def test_renamed_settings_in_a_saved_file_load_silently() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cfg = ForecasterConfig.from_dict({"model": "gru", "train": {"progress_bar": False}})
        text = TextClassifierConfig.from_dict({"epochs": 2, "lr": 0.5, "tokenizer": "bpe"})
        pre = PretrainSettings.from_dict({"epochs": 3})
    assert (cfg.rnn, cfg.train.progress) == ("gru", False)
    assert (text.train.max_epochs, text.train.lr, text.tokenizer.kind) == (2, 0.5, "bpe")
    assert pre.max_epochs == 3


def test_flat_names_read_and_set_the_nested_settings() -> None:
    cfg = TextClassifierConfig(lr=0.25, vocab_size=500)
    assert (cfg.lr, cfg.train.lr, cfg.vocab_size) == (0.25, 0.25, 500)
    cfg.max_epochs = 7
    assert cfg.train.max_epochs == 7
    with pytest.raises(LstmkitError, match="training setting max_epochs must be an integer >= 1"):
        cfg.max_epochs = 0
    assert cfg.train.max_epochs == 7
    with pytest.raises(AttributeError):
        cfg.no_such_setting  # noqa: B018


# ---------------------------------------------------------------- forecast metrics
def _numpy_metrics(a: np.ndarray, f: np.ndarray, h: np.ndarray, m: int) -> dict[str, float]:
    """The plain formulas, written out in NumPy (what lstmkit computed before torchmetrics)."""
    keep = a != 0
    den = np.abs(a) + np.abs(f)
    ratio = np.divide(2 * np.abs(a - f), den, out=np.zeros_like(den), where=den > 0)
    mae = np.mean(np.abs(a - f))
    return {
        "MAE": mae,
        "RMSE": np.sqrt(np.mean((a - f) ** 2)),
        "MAPE": 100 * np.mean(np.abs((a[keep] - f[keep]) / a[keep])),
        "sMAPE": 100 * np.mean(ratio),
        "MASE": mae / np.mean(np.abs(h[m:] - h[:-m])),
    }


@pytest.mark.parametrize("scale", [1e-9, 1e-3, 1.0, 1e6])
def test_forecast_metrics_on_torchmetrics_keep_the_numbers(scale: float) -> None:
    """Tiny magnitudes included: torchmetrics' own MAPE clamps |actual| at 1.17e-6."""
    from lstmkit.tasks import forecast_metrics as fm

    rng = np.random.default_rng(int(np.log10(scale)) + 20)
    a = rng.normal(0, 10, 24) * scale
    f = a + rng.normal(0, 3, 24) * scale
    a[3] = 0.0  # left out of MAPE
    a[5] = f[5] = 0.0  # a perfect step: 0 in sMAPE
    h = rng.normal(0, 5, 40) * scale
    got = fm.all_metrics(a, f, h, 4)
    want = _numpy_metrics(a, f, h, 4)
    for name in fm.METRICS:
        assert got[name] == pytest.approx(want[name], rel=1e-12), name
    assert "torchmetrics" in sys.modules
    assert fm.rmse(np.array([1e300, -1e300]), np.array([-1e300, 1e300])) == pytest.approx(2e300)


# ---------------------------------------------------------------- one estimator contract
def test_text_classifier_params_clone_fit_result_and_run_settings(tmp_path: Path) -> None:
    from test_text_classifier import make_texts

    from lstmkit.tasks.text_classification import TextClassifier
    from lstmkit.training import FitResult

    clf = TextClassifier("seed003", hidden_size=8, embedding_dim=8, max_epochs=2,
                         devices=1, accelerator="cpu", progress=False)  # fmt: skip
    params = clf.get_params()
    assert (params["hidden_size"], params["max_epochs"], params["init"]) == (8, 2, "keras")
    assert (params["tokenizer"], params["max_length"], params["devices"]) == ("word", 200, 1)
    assert TextClassifier(**params).config == clf.config
    assert not clf.is_fitted and clf.fit_result is None
    texts, labels = make_texts(60, seed=5)
    clf.fit(texts, labels, baseline=False)
    copy = clf.clone()
    assert not copy.is_fitted and copy.net is None and copy.config == clf.config
    assert copy.set_params(hidden_size=4) is copy and clf.config.hidden_size == 8
    result = clf.fit_result
    assert isinstance(result, FitResult) and result.history == clf.history
    assert result.epochs_run == 2 == len(result.history)
    loaded = TextClassifier.load(clf.save(tmp_path / "m"))
    assert loaded.fit_result == result
    with pytest.warns(FutureWarning, match="run_options is deprecated"):
        assert clf.run_options["checkpoint_dir"] is None
    with pytest.warns(FutureWarning, match=r"fit\(devices=...\) is deprecated"):
        copy.fit(texts, labels, baseline=False, devices=1)
    assert copy.is_fitted and copy.config.hidden_size == 4


def test_training_settings_given_in_part_keep_the_tasks_defaults() -> None:
    """Forecaster(lr=...) keeps the forecaster's 300 epochs, TextClassifier(lr=...) the text
    task's 5 epochs and no clipping: the rest of ``train`` is the task's default, not the
    shared model's own (100 epochs, clipping at 1.0)."""
    assert ForecasterConfig(lr=0.5).train.max_epochs == 300
    assert ForecasterConfig(train={"lr": 0.5}).train.early_stopping_patience == 20
    text = TextClassifierConfig(lr=0.5)
    assert (text.train.max_epochs, text.train.gradient_clip_val) == (5, None)
    assert text.train.deterministic is False
    assert TextClassifierConfig(tokenizer={"vocab_size": 50}).tokenizer.max_length == 400
    assert TrainConfig(lr=0.5).max_epochs == 100


# ---------------------------------------------------------------- settings merged from main
@pytest.mark.parametrize(
    "settings, message",
    [
        ({"rnn": "slstm", "num_heads": 0}, "num_heads must be an integer >= 1 or None, got 0"),
        ({"rnn": "mlstm", "chunk_size": 0}, "chunk_size must be an integer >= 1 or None, got 0"),
        ({"rnn": "lstm", "num_heads": 2}, "num_heads=2 applies to rnn slstm or mlstm"),
        ({"calibrate": 1}, "calibrate must be true/false, got 1 (int)"),
        ({"predict_batch_size": 0}, "predict_batch_size must be an integer >= 1, got 0"),
        ({"id_embedding": -1}, "id_embedding must be an integer >= 0, got -1"),
        ({"ensemble": 0}, "ensemble must be an integer >= 1 or one of auto, got 0"),
        ({"baselines": "naive,nope"}, "unknown baseline 'nope'"),
        ({"combine": True, "val_size": 0}, "combine needs a validation stretch"),
        ({"combine": True, "baselines": "none"}, "combine mixes the network with the best"),
        ({"patch": 0}, "patch must be an integer >= 1 or None, got 0"),
        ({"residual": "dlinear"}, "residual must be one of nlinear, nlinear-fixed, auto or None"),
        ({"loss": "l1"}, "loss must be one of auto, mse, mae, mase, got 'l1'"),
        ({"scaler": "log10"}, "scaler must be one of minmax, standard, none, log, auto"),
        ({"instance_norm": "median"}, "must be true/false or one of mean, last, auto"),
    ],
)
def test_the_issue_17_18_forecaster_settings_are_declared_in_the_model(settings, message):
    """Each setting main added is a field of ForecasterConfig (range and help text), and a
    bad value is one line naming it."""
    for name in settings:
        assert name in ForecasterConfig.model_fields
        assert ForecasterConfig.model_fields[name].description
    with pytest.raises(SettingsError) as err:
        ForecasterConfig(**settings)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_baselines_given_as_text_are_parsed_and_saved_as_a_list() -> None:
    cfg = ForecasterConfig(baselines="snaive, NAIVE,dlinear")
    assert cfg.baselines == ["naive", "snaive", "dlinear"]
    assert ForecasterConfig.from_dict(cfg.to_dict()).baselines == cfg.baselines
    assert ForecasterConfig(baselines="none").baselines == []


def test_the_new_forecast_options_come_from_the_model(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")
    code, out, _ = run(["forecast", "--help"], capsys)
    flat = re.sub(r"[\s│]+", " ", out)
    names = ("num_heads", "chunk_size", "calibrate", "id_embedding", "ensemble", "patch",
             "residual", "loss", "scaler")  # fmt: skip
    for name in names:
        described = ForecasterConfig.model_fields[name].description
        assert described.split(";")[0] in flat, name
    target = tmp_path / "out"
    code, _, err = run(["forecast", "--ensemble", "0", "--out", str(target)], capsys)
    assert code == 2 and err.strip() == (
        "error: forecaster setting ensemble must be an integer >= 1 or one of auto, got 0"
    )
    code, _, err = run(["forecast", "--baselines", "naive,nope", "--out", str(target)], capsys)
    assert code == 2 and err.count("\n") == 1 and "unknown baseline 'nope'" in err
    code, _, err = run(["forecast", "--patch", "0", "--out", str(target)], capsys)
    assert code == 2 and err.strip() == (
        "error: forecaster setting patch must be an integer >= 1 or None, got 0"
    )
    code, _, err = run(["forecast", "--loss", "l1", "--out", str(target)], capsys)
    assert code == 2 and err.count("\n") == 1 and "'l1' is not one of" in err
    assert not target.exists()


def test_the_design_settings_round_trip_and_old_folders_read_step_by_step() -> None:
    cfg = ForecasterConfig(patch=3, residual="nlinear", loss="mase", instance_norm="last",
                           scaler="log")  # fmt: skip
    assert ForecasterConfig.from_dict(cfg.to_dict()) == cfg
    assert ForecasterConfig().patch is None  # automatic for new models
    old = {k: v for k, v in ForecasterConfig().to_dict().items() if k != "patch"}
    assert ForecasterConfig.from_dict(old).patch == 1  # saved before patching existed


def test_the_vectorised_scores_equal_the_torchmetrics_ones() -> None:
    """evaluate scores every series in one array step (scoring.metrics_many); its numbers
    are the per-series metrics of forecast_metrics (torchmetrics)."""
    from lstmkit.tasks import forecast_metrics as fm
    from lstmkit.tasks.forecasting.scoring import history_scales, metrics_many

    rng = np.random.default_rng(5)
    actual = rng.normal(0, 10, (3, 6))
    forecast = actual + rng.normal(0, 2, (3, 6))
    actual[1, 2] = 0.0
    lengths = np.array([20, 9, 30])
    history = rng.normal(0, 5, lengths.sum())
    got = metrics_many(actual, forecast, history_scales(history, lengths, 4))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    for k in range(3):
        want = fm.all_metrics(actual[k], forecast[k], history[starts[k] :][: lengths[k]], 4)
        for name in fm.METRICS:
            assert got[name][k] == pytest.approx(want[name], rel=1e-12), (k, name)
