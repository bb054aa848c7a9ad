"""Forecaster settings for the encoder variants (layer_norm, recurrent_dropout, zoneout):
validation, what the built network holds, save/load (also of folders saved before the
settings existed) and deterministic eval-mode forecasts."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lstmkit import Forecaster
from lstmkit.errors import LstmkitError
from lstmkit.nn import GRU, LSTM

FAST = {"hidden_size": 8, "max_epochs": 3, "lr": 1e-2, "progress": False}
VARIANTS = {"layer_norm": True, "recurrent_dropout": 0.3, "zoneout": 0.1}


def _series(n: int = 48) -> pd.DataFrame:
    t = np.arange(n)
    y = 100 + t + 10 * np.sin(2 * np.pi * t / 12)
    return pd.DataFrame({"month": pd.date_range("2000-01-01", periods=n, freq="MS"), "y": y})


def _fit(**settings) -> Forecaster:
    f = Forecaster(horizon=6, window=12, **(FAST | settings))
    return f.fit(_series(), target="y", time_col="month")


@pytest.fixture(scope="module")
def fitted_variant() -> Forecaster:
    return _fit(**VARIANTS)


@pytest.mark.parametrize("model", ["lstm", "gru"])
def test_the_encoder_is_built_with_the_variants(model: str) -> None:
    f = _fit(rnn=model, num_layers=2, **VARIANTS)
    rnn = f.net.net.rnn
    assert isinstance(rnn, LSTM if model == "lstm" else GRU)
    config = rnn.get_config()
    assert (config["layer_norm"], config["recurrent_dropout"], config["zoneout"]) == (
        True,
        0.3,
        0.1,
    )
    names = {n for n, _ in rnn.named_parameters()}
    assert {"ln_weight_ih_l0", "ln_weight_hh_l0", "ln_weight_ih_l1", "ln_weight_hh_l1"} <= names
    assert ("ln_weight_c_l0" in names) == (model == "lstm")


def test_defaults_build_the_plain_layer() -> None:
    f = Forecaster(horizon=6, window=12, **FAST)
    assert (f.config.layer_norm, f.config.recurrent_dropout, f.config.zoneout) == (False, 0.0, 0.0)
    rnn = _fit().net.net.rnn
    assert rnn.cell.is_plain
    assert not any(n.startswith("ln_") for n, _ in rnn.named_parameters())


def test_save_load_round_trip_predicts_the_same(fitted_variant: Forecaster, tmp_path: Path) -> None:
    f = fitted_variant
    path = f.save(tmp_path / "model")
    saved = json.loads((path / "config.json").read_text())["config"]["forecaster"]
    assert (saved["layer_norm"], saved["recurrent_dropout"], saved["zoneout"]) == (True, 0.3, 0.1)
    g = Forecaster.load(path)
    assert g.config == f.config
    assert g.net.net.rnn.get_config() == f.net.net.rnn.get_config()
    pd.testing.assert_frame_equal(g.predict(), f.predict())
    for name, p in f.net.net.state_dict().items():
        torch.testing.assert_close(g.net.net.state_dict()[name], p, rtol=0, atol=0)


def test_a_folder_saved_before_the_settings_existed_loads_with_defaults(tmp_path: Path) -> None:
    f = _fit()
    path = f.save(tmp_path / "old")
    meta = json.loads((path / "config.json").read_text())
    for key in ("layer_norm", "recurrent_dropout", "zoneout"):
        del meta["config"]["forecaster"][key]
    (path / "config.json").write_text(json.dumps(meta))
    g = Forecaster.load(path)
    assert (g.config.layer_norm, g.config.recurrent_dropout, g.config.zoneout) == (False, 0.0, 0.0)
    pd.testing.assert_frame_equal(g.predict(), f.predict())


def test_eval_forecasts_are_deterministic_and_without_recurrent_dropout() -> None:
    """Recurrent dropout acts in training only: in eval the network equals a copy whose
    encoder has no recurrent dropout (an independent layer given the same weights)."""
    f = _fit(recurrent_dropout=0.5)
    torch.manual_seed(1)
    first = f.predict()
    torch.manual_seed(2)
    pd.testing.assert_frame_equal(f.predict(), first)
    rnn = f.net.net.rnn
    plain = LSTM(**(rnn.get_config() | {"recurrent_dropout": 0.0}))
    plain.load_state_dict(rnn.state_dict())
    x = torch.randn(5, 12, 1)
    with torch.no_grad():
        torch.testing.assert_close(rnn.eval()(x)[0], plain.eval()(x)[0])
        rnn.train()
        torch.manual_seed(3)
        a = rnn(x)[0]
        torch.manual_seed(4)
        b = rnn(x)[0]
        rnn.eval()
    assert not torch.allclose(a, b)  # in training the masks really apply


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"recurrent_dropout": 1.0}, "recurrent_dropout must be a number in [0, 1), got 1.0"),
        ({"recurrent_dropout": -0.1}, "recurrent_dropout must be a number in [0, 1), got -0.1"),
        ({"recurrent_dropout": "0.2"}, "recurrent_dropout must be a number in [0, 1), got '0.2'"),
        ({"recurrent_dropout": float("nan")}, "recurrent_dropout must be a finite number"),
        ({"zoneout": 1.5}, "zoneout must be a number in [0, 1), got 1.5"),
        ({"zoneout": True}, "zoneout must be a number in [0, 1), got True"),
        ({"layer_norm": 1}, "layer_norm must be true/false, got 1"),
        ({"layer_norm": "yes"}, "layer_norm must be true/false, got 'yes'"),
    ],
)
def test_bad_variant_settings_are_one_clear_line(settings: dict, message: str) -> None:
    with pytest.raises(LstmkitError) as err:
        Forecaster(horizon=6, **settings)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.native_bf16
@pytest.mark.parametrize("model", ["lstm", "gru"])
def test_variants_train_under_bf16_mixed(model: str, tmp_path: Path) -> None:
    f = _fit(rnn=model, precision="bf16-mixed", **VARIANTS)
    assert f.fit_result.epochs_run == 3
    fc = f.predict()
    assert np.isfinite(fc[["forecast", "q10", "q90"]].to_numpy()).all()
    g = Forecaster.load(f.save(tmp_path / "model"))
    assert g.config.train.precision == "bf16-mixed" and g.config.layer_norm
    pd.testing.assert_frame_equal(g.predict(), fc)


def test_bf16_mixed_is_refused_without_native_bf16(cpu_fallback, tmp_path: Path) -> None:
    f = Forecaster(horizon=6, window=12, precision="bf16-mixed", **FAST)
    with pytest.raises(LstmkitError) as err:
        f.fit(_series(), target="y", time_col="month")
    message = str(err.value)
    assert "\n" not in message and "native bfloat16" in message and "--precision 32" in message
    assert f.state is None


def test_a_bf16_trained_model_predicts_without_native_bf16(cpu_fallback, tmp_path: Path) -> None:
    # weights of a bf16-mixed run are float32; only refitting needs bf16, not predicting
    f = _fit(**VARIANTS)
    folder = f.save(tmp_path / "model")
    config = json.loads((folder / "config.json").read_text())
    config["config"]["forecaster"]["train"]["precision"] = "bf16-mixed"
    (folder / "config.json").write_text(json.dumps(config))
    g = Forecaster.load(folder)
    assert g.config.train.precision == "bf16-mixed"
    pd.testing.assert_frame_equal(g.predict(), f.predict())
