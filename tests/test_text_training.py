"""How a TextClassifier trains: the shared LstmkitModule and TrainConfig, against a plain
torch loop; checkpoints and resume; precision and loggers; the recurrent variants."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import forget_digests

from lstmkit import TextClassifier
from lstmkit.data.text_batches import make_loader
from lstmkit.data.tokenize import TextTokenizer
from lstmkit.errors import LstmkitError
from lstmkit.tasks.text_classification import TextClassifierModule, make_config
from lstmkit.tasks.text_classification.network import build_net
from lstmkit.training import LstmkitModule

sys.path.insert(0, str(Path(__file__).parent))
from test_text_classifier import make_texts

TINY = dict(embedding_dim=8, hidden_size=8, batch_size=16, seed=3)


def test_module_uses_the_shared_base():
    assert issubclass(TextClassifierModule, LstmkitModule)
    assert "configure_optimizers" not in vars(TextClassifierModule)


def test_train_config_is_built_in_one_place():
    cfg = make_config("imdb", max_epochs=7, early_stopping_patience=2)
    train = cfg.train_config(progress=False, devices=1)
    assert (train.max_epochs, train.lr, train.lr_decay, train.gradient_clip_val) == (
        7, 4e-3, "linear", 1.0,
    )  # fmt: skip
    assert (train.early_stopping_patience, train.seed, train.progress) == (2, 0, False)
    # the text task keeps its own clipping default: none (the trainer's default is 1.0)
    assert make_config().train_config().gradient_clip_val is None
    # the old name epochs is a deprecated alias of max_epochs, read and written
    with pytest.warns(FutureWarning, match="the setting epochs is deprecated; use max_epochs"):
        cfg = make_config(epochs=4)
    assert cfg.max_epochs == 4 and cfg.train.max_epochs == 4 and "epochs" not in cfg.to_dict()
    with pytest.warns(FutureWarning, match="epochs is deprecated"):
        assert cfg.epochs == 4
    with (
        pytest.raises(LstmkitError, match="epochs=3 and max_epochs=4 name the same setting"),
        pytest.warns(FutureWarning),
    ):
        make_config(epochs=3, max_epochs=4)


def test_training_equals_a_plain_torch_loop():
    """fit (Lightning, LstmkitModule, linear lr decay, clipping) = Adam in a hand loop."""
    texts, labels = make_texts(64, seed=5)
    val_texts, val_labels = make_texts(24, seed=6)
    kw = dict(TINY, max_epochs=3, lr=5e-3, lr_decay="linear", gradient_clip_val=0.5)
    clf = TextClassifier(**kw).fit(
        texts, labels, val_texts=val_texts, val_labels=val_labels, progress=False
    )

    cfg = clf.config
    classes = sorted(set(labels))
    torch.manual_seed(cfg.seed)
    tokenizer = TextTokenizer.train(texts, cfg.tokenizer)
    net = build_net(tokenizer.vocab_size, 2, cfg)
    y = [classes.index(label) for label in labels]
    loader = make_loader(tokenizer.encode(texts), y, cfg.batch_size, shuffle=True, seed=cfg.seed)
    val = make_loader(
        tokenizer.encode(val_texts), [classes.index(v) for v in val_labels], 32, shuffle=False
    )
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    total, step = cfg.max_epochs * len(loader), 0
    train_losses, val_losses, states = [], [], []
    for _ in range(cfg.max_epochs):
        net.train()
        losses, sizes = [], []
        for batch in loader:
            for group in opt.param_groups:
                group["lr"] = cfg.lr * (1 - step / total)
            loss = net.loss(net(batch["ids"], batch["lengths"]), batch["labels"])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 0.5)
            opt.step()
            step += 1
            losses.append(float(loss.detach()))
            sizes.append(len(batch["labels"]))
        train_losses.append(np.average(losses, weights=sizes))
        net.eval()
        with torch.no_grad():
            vl = [(float(net.loss(net(b["ids"], b["lengths"]), b["labels"])), len(b["labels"]))
                  for b in val]  # fmt: skip
        val_losses.append(np.average([v for v, _ in vl], weights=[n for _, n in vl]))
        states.append({k: v.clone() for k, v in net.state_dict().items()})

    got = [row["train_loss"] for row in clf.history]
    np.testing.assert_allclose(got, train_losses, rtol=0, atol=1e-6)
    np.testing.assert_allclose([r["val_loss"] for r in clf.history], val_losses, atol=1e-6)
    best = int(np.argmin(val_losses))
    assert clf.fit_info.best_epoch == best
    net.load_state_dict(states[best])
    net.eval()
    ids = tokenizer.encode(val_texts)
    with torch.no_grad():
        want = np.stack([
            net.probabilities(net(torch.tensor([s]), torch.tensor([len(s)])))[0].numpy()
            for s in ids
        ])  # fmt: skip
    np.testing.assert_allclose(clf.predict_proba(val_texts), want, atol=1e-6)


@pytest.mark.native_bf16
def test_bf16_mixed_trains_and_predicts_finite_probabilities():
    texts, labels = make_texts(96, seed=7)
    clf = TextClassifier(**TINY, max_epochs=2, precision="bf16-mixed")
    clf.fit(texts, labels, progress=False)
    proba = clf.predict_proba(texts[:16])
    assert proba.dtype == np.float32 and np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert all(np.isfinite(row["train_loss"]) for row in clf.history)
    assert clf.config.precision == "bf16-mixed"
    # bf16 training is not the float32 run: the setting reached the trainer
    ref = TextClassifier(**TINY, max_epochs=2).fit(texts, labels, progress=False)
    assert clf.history[0]["train_loss"] != ref.history[0]["train_loss"]


def test_bf16_mixed_is_refused_without_native_bf16(cpu_fallback):
    texts, labels = make_texts(32, seed=7)
    clf = TextClassifier(**TINY, max_epochs=1, precision="bf16-mixed")
    with pytest.raises(LstmkitError, match="needs a CPU with native bfloat16") as err:
        clf.fit(texts, labels, progress=False)
    assert "--precision 32" in str(err.value) and clf.net is None and clf.tokenizer is None


def test_csv_logger_writes_the_epoch_metrics(tmp_path):
    texts, labels = make_texts(64, seed=8)
    clf = TextClassifier(**TINY, max_epochs=2, logger="csv", log_dir=tmp_path / "logs")
    clf.fit(texts, labels, progress=False)
    (metrics,) = (tmp_path / "logs").rglob("metrics.csv")
    table = pd.read_csv(metrics)
    for name in ("train_loss", "train_acc", "val_loss", "val_acc"):
        logged = table[name].dropna().to_numpy()
        np.testing.assert_allclose(logged, [row[name] for row in clf.history], rtol=1e-6)


def test_run_options_are_checked_and_not_saved(tmp_path):
    with pytest.raises(LstmkitError, match="logger must be one of csv, tensorboard or None"):
        TextClassifier(logger="wandb")
    with pytest.raises(LstmkitError, match="precision must be one of"):
        TextClassifier(precision="8")
    texts, labels = make_texts(64, seed=9)
    clf = TextClassifier(**TINY, max_epochs=1, checkpoint_dir=tmp_path / "ck", logger="csv",
                         log_dir=tmp_path / "logs")  # fmt: skip
    clf.fit(texts, labels, progress=False).save(tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "config.json").read_text())["config"]["model"]
    assert saved["train"]["precision"] == "32"
    assert saved["train"]["checkpoint_dir"] is None and saved["train"]["logger"] is None
    assert saved["train"]["log_dir"] is None and clf.config.train.logger == "csv"


def test_variants_reach_the_recurrent_layer_and_round_trip(tmp_path):
    texts, labels = make_texts(64, seed=10)
    clf = TextClassifier(**TINY, max_epochs=1, layer_norm=True, recurrent_dropout=0.3, zoneout=0.1)
    clf.fit(texts, labels, progress=False)
    layer = clf.net.rnn.get_config()
    assert (layer["layer_norm"], layer["recurrent_dropout"], layer["zoneout"]) == (True, 0.3, 0.1)
    names = {name for name, _ in clf.net.rnn.named_parameters()}
    assert {"ln_weight_ih_l0", "ln_weight_hh_l0", "ln_weight_c_l0"} <= names
    # recurrent dropout and zoneout draw masks in training only
    ids, lengths = torch.tensor([[5, 6, 7, 8, 9, 10]]), torch.tensor([6])
    clf.net.train()
    torch.manual_seed(0)
    a, b = clf.net(ids, lengths), clf.net(ids, lengths)
    clf.net.eval()
    assert not torch.equal(a, b)
    assert torch.equal(clf.net(ids, lengths), clf.net(ids, lengths))

    clf.save(tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "config.json").read_text())["config"]["model"]
    assert (saved["layer_norm"], saved["recurrent_dropout"], saved["zoneout"]) == (True, 0.3, 0.1)
    back = TextClassifier.load(tmp_path / "m")
    assert back.config == clf.config
    assert back.net.rnn.get_config() == layer
    np.testing.assert_array_equal(back.predict_proba(texts), clf.predict_proba(texts))

    # weights of a layer-normalised model under a config without layer norm: refused
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    meta["config"]["model"]["layer_norm"] = False
    (tmp_path / "m" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(LstmkitError, match="unexpected"):
        TextClassifier.load(tmp_path / "m")


def test_gru_variants():
    texts, labels = make_texts(48, seed=11)
    clf = TextClassifier(**TINY, max_epochs=1, rnn="gru", layer_norm=True, recurrent_dropout=0.2)
    clf.fit(texts, labels, progress=False)
    assert {"ln_weight_ih_l0", "ln_weight_hh_l0"} <= dict(clf.net.rnn.named_parameters()).keys()
    assert np.isfinite(clf.predict_proba(texts)).all()


def test_model_folder_without_the_new_settings_loads_with_defaults(tmp_path):
    """Folders saved before precision and the variants existed lack their keys."""
    texts, labels = make_texts(48, seed=12)
    clf = TextClassifier(**TINY, max_epochs=1).fit(texts, labels, progress=False)
    forget_digests(clf.save(tmp_path / "m"))  # those folders had no digests
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    model = meta["config"]["model"]
    # the form of those folders: the training settings flat, epochs for max_epochs
    model.update(model.pop("train"))
    model["epochs"] = model.pop("max_epochs")
    for key in ("layer_norm", "recurrent_dropout", "zoneout", "precision", "accelerator",
                "devices", "strategy", "num_nodes", "progress", "deterministic",
                "checkpoint_dir", "checkpoint_every_n_steps", "logger", "log_dir"):  # fmt: skip
        del model[key]
    (tmp_path / "m" / "config.json").write_text(json.dumps(meta))
    record = json.loads((tmp_path / "m" / "training.json").read_text())
    del record["info"]["resumed_from_epoch"]
    (tmp_path / "m" / "training.json").write_text(json.dumps(record))
    back = TextClassifier.load(tmp_path / "m")
    cfg = back.config
    assert (cfg.layer_norm, cfg.recurrent_dropout, cfg.zoneout, cfg.precision) == (
        False, 0.0, 0.0, "32",
    )  # fmt: skip
    assert cfg.train.max_epochs == 1 and cfg.train == clf.config.train.for_saving()
    assert back.fit_info.resumed_from_epoch is None
    np.testing.assert_array_equal(back.predict_proba(texts), clf.predict_proba(texts))


@pytest.mark.parametrize(
    ("setting", "value", "expect"),
    [
        ("recurrent_dropout", 1.0, "recurrent_dropout must be a number in [0, 1), got 1.0"),
        ("zoneout", -0.1, "zoneout must be a number in [0, 1), got -0.1"),
        ("layer_norm", "yes", "layer_norm must be"),
        ("recurrent_dropout", "0.2", "recurrent_dropout must be a number"),
    ],
)
def test_variant_settings_are_checked(setting, value, expect):
    with pytest.raises(LstmkitError, match=expect.replace("[", r"\[").replace(")", r"\)")):
        TextClassifier(**{setting: value})


def test_setting_types_are_checked_by_the_one_shared_checker():
    """Model and tokenizer settings go through lstmkit.config.check_field_types."""
    with pytest.raises(LstmkitError) as err:
        TextClassifier(hidden_size="8")
    assert str(err.value) == (
        "text classifier setting hidden_size must be an integer >= 1, got '8' (str)"
    )
    with pytest.raises(LstmkitError, match="tokenizer setting lowercase must be true/false"):
        TextClassifier(lowercase="no")
    clf = TextClassifier(bidirectional=np.True_, lr=np.float32(0.5), num_layers=np.int64(2))
    cfg = clf.config
    assert (type(cfg.bidirectional), type(cfg.lr), type(cfg.num_layers)) == (bool, float, int)
