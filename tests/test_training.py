"""The shared trainer: history, best-weights restore, early stopping, seeding, resume."""

import json
import sys
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from lstmkit.errors import LstmkitError
from lstmkit.plots.curves import plot_training_curves
from lstmkit.training import FitResult, LstmkitModule, TrainConfig, build_optimizer, fit

W = torch.tensor([[1.0], [2.0], [-1.0]])


class Linear(LstmkitModule):
    """y = x @ w fitted by MSE; logs loss and MAE per epoch (through the task base class)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(3, 1)

    def step_metrics(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        x, y = batch
        pred = self.lin(x)
        return {"loss": F.mse_loss(pred, y), "mae": (pred - y).abs().mean()}


def _loaders(flip_val: bool = False, shuffle: bool = False) -> tuple[DataLoader, DataLoader]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, generator=g)
    xv = torch.randn(32, 3, generator=g)
    yv = xv @ (-W if flip_val else W)
    train = DataLoader(TensorDataset(x, x @ W), batch_size=16, shuffle=shuffle)
    return train, DataLoader(TensorDataset(xv, yv), batch_size=32)


def _cfg(**kw) -> TrainConfig:
    base = {"max_epochs": 6, "lr": 0.05, "progress": False}
    return TrainConfig(**(base | kw))


def _mse(module: Linear, loader: DataLoader) -> float:
    x, y = next(iter(loader))
    with torch.no_grad():
        return float(((module.lin(x) - y) ** 2).mean())


def test_history_and_metrics() -> None:
    torch.manual_seed(0)
    model = Linear()
    train, val = _loaders()
    res = fit(model, train, val, _cfg())
    assert isinstance(res, FitResult)
    assert res.epochs_run == 6 and [r["epoch"] for r in res.history] == list(range(6))
    for row in res.history:
        assert {"train_loss", "val_loss", "train_mae", "val_mae"} <= row.keys()
    losses = [r["train_loss"] for r in res.history]
    assert losses[-1] < losses[0] / 2
    assert res.best_epoch == 5 and res.best_val_loss == res.history[5]["val_loss"]
    # the validation loss reported equals an independent computation on the final weights
    assert _mse(model, val) == pytest.approx(res.best_val_loss, rel=1e-5)
    assert res.fit_seconds > 0
    assert not torch.are_deterministic_algorithms_enabled()  # global flag restored after fit


class Recorded(Linear):
    """`Linear` that records each training batch's loss and items, and its ``log`` calls."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[tuple[int, float, float]] = []  # (epoch, items, loss)
        self.logged: list[str] = []

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        self.batches.append((self.current_epoch, len(batch[0]), float(loss.detach())))
        return loss

    def log(self, name, *args, **kwargs):
        self.logged.append(name)
        super().log(name, *args, **kwargs)


def test_epoch_means_weigh_each_batch_by_its_items_and_are_logged_once_an_epoch() -> None:
    """Batches of 16, 16 and 8 (the last one short): each epoch's train_loss is the
    items-weighted mean of its batches' losses (as Lightning's per-step logging gave); each
    metric is handed to Lightning once an epoch, not once a step."""
    torch.manual_seed(0)
    model = Recorded()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, 3, generator=g)
    train = DataLoader(TensorDataset(x, x @ W), batch_size=16)
    _, val = _loaders()
    res = fit(model, train, val, _cfg(max_epochs=3))
    for row in res.history:
        seen = [(n, loss) for e, n, loss in model.batches if e == row["epoch"]]
        assert [n for n, _ in seen] == [16, 16, 8]
        want = sum(n * loss for n, loss in seen) / 40
        assert row["train_loss"] == pytest.approx(want, rel=1e-6)
    assert _mse(model, val) == pytest.approx(res.history[-1]["val_loss"], rel=1e-5)
    assert sorted(model.logged) == sorted(["train_loss", "train_mae", "val_loss", "val_mae"] * 3)


def test_best_weights_restored_and_early_stopping() -> None:
    torch.manual_seed(0)
    model = Linear()
    with torch.no_grad():
        model.lin.weight.zero_()
        model.lin.bias.zero_()
    train, val = _loaders(flip_val=True)  # learning the train target makes val worse
    res = fit(model, train, val, _cfg(max_epochs=50, early_stopping_patience=3))
    vals = [r["val_loss"] for r in res.history]
    assert res.best_epoch == 0 and res.best_val_loss == min(vals)
    assert res.epochs_run == 4  # best at epoch 0, then 3 epochs without improvement
    assert vals[-1] > vals[0]
    assert _mse(model, val) == pytest.approx(vals[0], rel=1e-5)


def test_keep_last_weights_returns_the_final_epoch_and_trains_every_epoch() -> None:
    # the setting of the test above: the validation loss is lowest after the first epoch
    def run(**kw) -> tuple[Linear, FitResult]:
        torch.manual_seed(0)
        model = Linear()
        with torch.no_grad():
            model.lin.weight.zero_()
            model.lin.bias.zero_()
        train, val = _loaders(flip_val=True)
        settings = {"max_epochs": 8, "early_stopping_patience": 3} | kw
        return model, fit(model, train, val, _cfg(**settings))

    model, res = run(keep_weights="last")
    vals = [r["val_loss"] for r in res.history]
    assert res.epochs_run == 8  # no early stopping: every epoch ran
    assert min(vals) == vals[0] < vals[-1]
    assert (res.best_epoch, res.best_val_loss) == (7, vals[-1])  # the epoch kept, its loss
    _, val = _loaders(flip_val=True)
    assert _mse(model, val) == pytest.approx(vals[-1], rel=1e-5)
    # the weights are those of an uninterrupted 8 epochs; "best" restores epoch 0
    best, best_res = run(keep_weights="best", early_stopping_patience=None)
    assert best_res.epochs_run == 8 and best_res.best_epoch == 0
    assert _mse(best, val) == pytest.approx(vals[0], rel=1e-5)
    assert not torch.equal(best.lin.weight, model.lin.weight)


def test_without_validation_monitors_train_loss() -> None:
    torch.manual_seed(0)
    model = Linear()
    train, _ = _loaders()
    res = fit(model, train, None, _cfg(max_epochs=3))
    assert res.epochs_run == 3 and "val_loss" not in res.history[0]
    assert res.best_val_loss == min(r["train_loss"] for r in res.history)


def test_seeded_runs_are_reproducible() -> None:
    def run(seed: int) -> list[float]:
        torch.manual_seed(1)
        train, val = _loaders(shuffle=True)
        return [r["train_loss"] for r in fit(Linear(), train, val, _cfg(seed=seed)).history]

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_own_configure_optimizers_is_kept() -> None:
    class WithSGD(Linear):
        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

    torch.manual_seed(0)
    model = WithSGD()
    before = model.lin.weight.detach().clone()
    train, val = _loaders()
    fit(model, train, val, _cfg(max_epochs=2))
    assert torch.equal(model.lin.weight, before)  # lr 0: the module's optimiser was used


def test_plain_module_without_optimizer_is_refused() -> None:
    class Plain(L.LightningModule):
        def training_step(self, batch, batch_idx):
            return None

    train, val = _loaders()
    with pytest.raises(TypeError, match=r"must subclass lstmkit\.training\.LstmkitModule"):
        fit(Plain(), train, val, _cfg(max_epochs=1))


def test_linear_lr_decay_reaches_zero() -> None:
    train, val = _loaders()
    model = Linear()
    seen: list[float] = []

    class Spy(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            seen.append(trainer.optimizers[0].param_groups[0]["lr"])

    model.configure_callbacks = lambda: [Spy()]
    fit(model, train, val, _cfg(max_epochs=2, lr=0.08, lr_decay="linear"))
    # 4 batches per epoch, 8 steps: lr 0.08 * (1 - step / 8)
    assert seen == pytest.approx([0.08 * (1 - k / 8) for k in range(8)])


def test_resume_from_last_checkpoint(tmp_path: Path) -> None:
    train, val = _loaders()
    torch.manual_seed(0)
    full = fit(Linear(), train, val, _cfg(max_epochs=5))
    torch.manual_seed(0)
    ckpt = tmp_path / "ckpt"
    first = fit(Linear(), train, val, _cfg(max_epochs=3, checkpoint_dir=str(ckpt)))
    assert (ckpt / "last.ckpt").exists() and first.epochs_run == 3
    resumed_model = Linear()  # fresh weights: resume must load them from the checkpoint
    second = fit(resumed_model, train, val, _cfg(max_epochs=5, checkpoint_dir=str(ckpt)))
    assert [r["epoch"] for r in second.history] == list(range(5))
    for a, b in zip(full.history, second.history, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)


def test_the_tasks_fingerprint_is_computed_only_for_a_run_that_checkpoints(tmp_path: Path):
    """A task's digest of its data (half a second for 100,000 series) given as a function
    is called only when checkpoints record it, and then a checkpoint of a run with another
    digest is refused as before."""
    train, val = _loaders()
    calls: list[str] = []

    def digest(value: str):
        return lambda: (calls.append(value), value)[1]

    fit(Linear(), train, val, _cfg(max_epochs=2), fingerprint=digest("a"))
    assert calls == []
    ckpt = str(tmp_path / "ckpt")
    fit(Linear(), train, val, _cfg(max_epochs=2, checkpoint_dir=ckpt), fingerprint=digest("a"))
    assert calls == ["a"]
    with pytest.raises(LstmkitError, match="belongs to a run with other data or settings"):
        fit(Linear(), train, val, _cfg(max_epochs=3, checkpoint_dir=ckpt), fingerprint=digest("b"))
    assert calls == ["a", "b"]


def test_resume_after_interruption_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    # shuffled batches: the resumed run must restore the random state, not only the weights
    train, val = _loaders(shuffle=True)
    torch.manual_seed(0)
    ref = Linear()
    full = fit(ref, train, val, _cfg(max_epochs=6))
    ckpt = tmp_path / "ckpt"
    torch.manual_seed(0)
    fit(Linear(), train, val, _cfg(max_epochs=3, checkpoint_dir=str(ckpt)))
    resumed = Linear()
    second = fit(resumed, train, val, _cfg(max_epochs=6, checkpoint_dir=str(ckpt)))
    assert second.resumed_from_epoch == 2
    assert [r["train_loss"] for r in second.history] == [r["train_loss"] for r in full.history]
    assert torch.equal(resumed.lin.weight, ref.lin.weight)
    assert not list(ckpt.glob("*.tmp-*"))


def test_checkpoint_written_every_epoch(tmp_path: Path) -> None:
    class Spy(L.Callback):
        def __init__(self) -> None:
            self.seen: list[int] = []

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            path = tmp_path / "ckpt" / "last.ckpt"
            epoch = torch.load(path, weights_only=True)["epoch"] if path.exists() else -1
            self.seen.append(int(epoch))

    train, val = _loaders()
    spy = Spy()
    model = Linear()
    model.configure_callbacks = lambda: [spy]
    fit(model, train, val, _cfg(max_epochs=4, checkpoint_dir=str(tmp_path / "ckpt")))
    assert spy.seen == [-1, 0, 1, 2]  # a checkpoint exists after every epoch, not just the last


def test_checkpoint_of_another_run_is_refused(tmp_path: Path) -> None:
    train, val = _loaders()
    ckpt = str(tmp_path / "ckpt")
    fit(Linear(), train, val, _cfg(max_epochs=2, checkpoint_dir=ckpt))
    other_train, other_val = _loaders(flip_val=True)
    with pytest.raises(LstmkitError, match="other data or settings") as info:
        fit(Linear(), other_train, other_val, _cfg(max_epochs=4, checkpoint_dir=ckpt))
    assert "\n" not in str(info.value)
    with pytest.raises(LstmkitError, match="other data or settings"):
        fit(Linear(), train, val, _cfg(max_epochs=4, lr=0.01, checkpoint_dir=ckpt))


@pytest.mark.parametrize("damage", ["truncated", "garbage", "foreign"])
def test_damaged_or_foreign_checkpoint_is_a_clear_error(tmp_path: Path, damage: str) -> None:
    train, val = _loaders()
    ckpt = tmp_path / "ckpt"
    fit(Linear(), train, val, _cfg(max_epochs=1, checkpoint_dir=str(ckpt)))
    path = ckpt / "last.ckpt"
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a checkpoint at all")
    else:
        torch.save({"state_dict": {}, "epoch": 3}, path)
    expected = "not written by lstmkit" if damage == "foreign" else "damaged or not a checkpoint"
    with pytest.raises(LstmkitError, match=expected):
        fit(Linear(), train, val, _cfg(max_epochs=2, checkpoint_dir=str(ckpt)))


def test_non_finite_loss_is_an_error() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 3, generator=g) * 1e30
    train = DataLoader(TensorDataset(x, x @ W), batch_size=16)
    with pytest.raises(LstmkitError, match=r"diverged: train_loss became (nan|inf) in epoch 0"):
        fit(Linear(), train, None, _cfg(max_epochs=2))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"lr": -1.0}, r"training setting lr must be a number > 0, got -1\.0$"),
        ({"lr": float("nan")}, "lr must be a finite number"),
        ({"lr": "fast"}, r"lr must be a number > 0, got 'fast' \(str\)"),
        ({"max_epochs": 2.5}, r"max_epochs must be an integer >= 1, got 2\.5 \(float\)"),
        ({"max_epochs": True}, r"max_epochs must be an integer >= 1, got True \(bool\)"),
        ({"lr": 1}, None),  # an int is a number
        ({"precision": "8-bit"}, "precision must be one of 32, 32-true, 64"),
        ({"logger": "wandb"}, "logger must be one of csv, tensorboard or None"),
        ({"gradient_clip_val": -0.5}, "gradient_clip_val must be a number >= 0 or None"),
        ({"seed": -1}, r"seed must be an integer in \[0, 4294967295\]"),
        ({"optimizer": "Adam"}, "optimizer must be one of adam, adamw, rmsprop, got 'Adam'"),
        ({"keep_weights": "final"}, "keep_weights must be one of best, last, got 'final'"),
    ],
)
def test_bad_settings_are_user_errors(settings: dict, message: str | None) -> None:
    if message is None:
        TrainConfig(**settings)
        return
    with pytest.raises(LstmkitError, match=message) as info:
        TrainConfig(**settings)
    assert "\n" not in str(info.value)
    assert info.value.setting == next(iter(settings))  # the setting, for the CLI's option


def test_numpy_scalars_are_the_numbers_they_hold() -> None:
    cfg = TrainConfig(max_epochs=np.int64(4), lr=np.float32(0.5), deterministic=np.bool_(False))
    assert (cfg.max_epochs, cfg.lr, cfg.deterministic) == (4, 0.5, False)
    assert type(cfg.max_epochs) is int and type(cfg.deterministic) is bool


def test_assignment_is_checked_and_paths_are_text(tmp_path: Path) -> None:
    cfg = TrainConfig(checkpoint_dir=tmp_path)
    assert cfg.checkpoint_dir == str(tmp_path)
    with pytest.raises(LstmkitError, match="training setting lr must be a number > 0"):
        cfg.lr = 0.0
    assert cfg.lr == 1e-3


def test_progress_bar_is_a_deprecated_alias_of_progress() -> None:
    with pytest.warns(FutureWarning, match="progress_bar is deprecated; use progress"):
        cfg = TrainConfig(progress_bar=False)
    assert cfg.progress is False and "progress_bar" not in cfg.to_dict()
    # a saved config of the old name loads without a warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert TrainConfig.from_dict({"progress_bar": False}).progress is False
    with pytest.warns(FutureWarning, match="lstmkit.training.settings"):
        sys.modules.pop("lstmkit.training.config", None)
        import lstmkit.training.config as old

    assert old.TrainConfig is TrainConfig


@pytest.mark.native_bf16
def test_bf16_mixed_precision_trains() -> None:
    train, val = _loaders()
    model = Linear()
    result = fit(model, train, val, _cfg(max_epochs=3, precision="bf16-mixed"))
    assert all(np.isfinite(r["train_loss"]) for r in result.history)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert model.lin.weight.dtype == torch.float32  # mixed: the weights stay float32


@pytest.mark.parametrize("precision", ["bf16-mixed", "bf16-true"])
def test_bf16_is_refused_without_native_bf16(cpu_fallback, precision: str) -> None:
    train, val = _loaders()
    with pytest.raises(LstmkitError, match="native bfloat16") as err:
        fit(Linear(), train, val, _cfg(max_epochs=1, precision=precision))
    assert "\n" not in str(err.value)


def test_csv_logger_writes_metrics(tmp_path: Path) -> None:
    train, val = _loaders()
    fit(Linear(), train, val, _cfg(max_epochs=2, logger="csv", log_dir=str(tmp_path)))
    (metrics,) = tmp_path.glob("lstmkit/version_*/metrics.csv")
    assert "val_loss" in metrics.read_text().splitlines()[0]


def test_config_json_round_trip_and_optimizers() -> None:
    cfg = TrainConfig(
        max_epochs=7, lr=3e-3, optimizer="rmsprop", devices=2, strategy="ddp", keep_weights="last"
    )
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    opt = build_optimizer(Linear().parameters(), cfg)
    assert isinstance(opt, torch.optim.RMSprop) and opt.defaults["lr"] == 3e-3
    assert isinstance(
        build_optimizer([torch.zeros(1, requires_grad=True)], TrainConfig(optimizer="adamw")),
        torch.optim.AdamW,
    )
    with pytest.raises(LstmkitError, match="optimizer must be one of"):
        TrainConfig(optimizer="lbfgs")
    with pytest.raises(LstmkitError, match="unknown training setting 'epochs'; known: "):
        TrainConfig.from_dict({"epochs": 3})
    with pytest.raises(LstmkitError, match="training settings must be a JSON object"):
        TrainConfig.from_dict([3])


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_adam_is_fused_where_it_can_be_and_updates_as_unfused(name: str) -> None:
    """Dense CPU float parameters get torch's fused kernel; its updates are the plain
    (single-tensor) Adam's to float rounding over 50 steps with weight decay; a sparse
    parameter keeps the unfused one."""
    torch.manual_seed(0)
    cfg = TrainConfig(optimizer=name, lr=1e-2, weight_decay=0.01)
    mine = [torch.nn.Parameter(torch.randn(7, 3)), torch.nn.Parameter(torch.randn(3))]
    ref = [torch.nn.Parameter(p.detach().clone()) for p in mine]
    start = [p.detach().clone() for p in mine]
    opt = build_optimizer(iter(mine), cfg)  # a generator, as module.parameters() is
    assert opt.defaults["fused"] is True
    cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
    plain = cls(ref, lr=1e-2, weight_decay=0.01, foreach=False)
    for _ in range(50):
        for a, b in zip(mine, ref, strict=True):
            a.grad = torch.randn_like(a)
            b.grad = a.grad.clone()
        opt.step()
        plain.step()
    for a, b, before in zip(mine, ref, start, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        assert (a - before).abs().min() > 1e-3  # every entry moved
    sparse = torch.nn.Parameter(torch.zeros(3, 2).to_sparse())
    assert not build_optimizer([sparse], cfg).defaults.get("fused")
    # Lightning's mixed-precision plugin refuses to clip gradients with a fused optimizer
    mixed = cfg.replace(precision="bf16-mixed")
    assert not build_optimizer([torch.nn.Parameter(torch.zeros(2))], mixed).defaults.get("fused")


def test_plot_training_curves(tmp_path: Path) -> None:
    hist = [
        {"epoch": i, "train_loss": 1 / (i + 1), "val_loss": 1.2 / (i + 1), "train_acc": 0.5}
        for i in range(4)
    ]
    out = plot_training_curves(hist, tmp_path / "c.png", metrics=("loss", "acc"), title="t")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["c.png"]
    with pytest.raises(ValueError, match="empty"):
        plot_training_curves([], tmp_path / "d.png")


def test_unavailable_accelerator_is_a_user_error() -> None:
    model = Linear()
    train, val = _loaders()
    with pytest.raises(LstmkitError, match="cannot train with accelerator='mps'"):
        fit(model, train, val, _cfg(accelerator="mps"))
    assert "configure_optimizers" not in vars(model)  # the temporary optimiser hook is gone


def test_rerun_of_a_finished_fit_returns_the_same_model(tmp_path: Path) -> None:
    train, val = _loaders(flip_val=True)  # validation gets worse: early stopping fires
    ckpt = str(tmp_path / "ckpt")
    torch.manual_seed(0)
    first_model = Linear()
    first = fit(first_model, train, val, _cfg(max_epochs=20, early_stopping_patience=2,
                                              checkpoint_dir=ckpt))  # fmt: skip
    assert first.epochs_run < 20
    again_model = Linear()
    again = fit(again_model, train, val, _cfg(max_epochs=20, early_stopping_patience=2,
                                              checkpoint_dir=ckpt))  # fmt: skip
    assert again.history == first.history  # no further epoch was trained
    assert torch.equal(again_model.lin.weight, first_model.lin.weight)


def test_checkpoint_every_n_steps_within_long_epochs(tmp_path: Path) -> None:
    path = tmp_path / "ckpt" / "last.ckpt"
    seen: list[int] = []

    class Spy(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            if trainer.current_epoch == 0:
                step = torch.load(path, weights_only=True)["global_step"] if path.exists() else -1
                seen.append(int(step))

    train, val = _loaders()  # 4 batches per epoch
    model = Linear()
    model.configure_callbacks = lambda: [Spy()]
    fit(model, train, val, _cfg(max_epochs=1, checkpoint_dir=str(path.parent),
                                checkpoint_every_n_steps=2))  # fmt: skip
    assert seen == [-1, -1, 2, 2]  # saved after step 2, inside the first epoch


def test_tensorboard_logger_without_the_package_is_one_line(tmp_path: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX"):
        pytest.skip("tensorboard is installed here")
    train, val = _loaders()
    with pytest.raises(LstmkitError, match="needs the tensorboard package") as info:
        fit(Linear(), train, val, _cfg(logger="tensorboard", log_dir=str(tmp_path)))
    assert "\n" not in str(info.value)


def test_progress_is_printed_as_lines_when_stderr_is_not_a_terminal(capsys, monkeypatch):
    """Logs written to a file get plain progress lines (a live bar would show nothing)."""
    import sys as _sys

    from lstmkit import TextClassifier
    from lstmkit.training import progress

    _sys.path.insert(0, str(Path(__file__).parent))
    from test_text_classifier import make_texts

    monkeypatch.setattr(progress, "EVERY_SECONDS", 0.0)
    texts, labels = make_texts(200, seed=1)
    clf = TextClassifier(embedding_dim=8, hidden_size=8, max_epochs=2, batch_size=64)
    clf.fit(texts, labels, progress=True, baseline=False)
    err = capsys.readouterr().err
    assert "epoch 1/2: batch 1/" in err and "batches/s" in err
    done = [line for line in err.splitlines() if " done in " in line]
    assert [line.split(" done")[0] for line in done] == ["epoch 1/2", "epoch 2/2"]
    assert "val_loss" in done[-1] and "train_loss" in done[-1]
    clf.fit(texts, labels, progress=False, baseline=False)
    assert "epoch" not in capsys.readouterr().err  # no progress asked: nothing printed


def test_atomic_checkpoint_io_keeps_the_previous_checkpoint_when_a_save_fails(
    tmp_path: Path,
) -> None:
    from lstmkit.training import AtomicCheckpointIO

    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"epoch": 1, "w": torch.ones(3)}, path)
    before = path.read_bytes()
    with pytest.raises(Exception):  # noqa: B017 - pickling a lambda fails (type varies)
        io.save_checkpoint({"epoch": 2, "bad": lambda: None}, path)
    assert path.read_bytes() == before  # still the whole previous checkpoint
    assert torch.load(path, weights_only=True)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary file left
    io.save_checkpoint({"epoch": 3}, path)
    assert torch.load(path, weights_only=True)["epoch"] == 3


def test_fingerprint_callback_refuses_another_runs_checkpoint_on_load(tmp_path: Path) -> None:
    from lstmkit.training import RunFingerprint

    saved: dict = {}
    RunFingerprint("run-a").on_save_checkpoint(None, None, saved)  # type: ignore[arg-type]
    assert saved == {"lstmkit": {"fingerprint": "run-a"}}
    RunFingerprint("run-a").on_load_checkpoint(None, None, saved)  # type: ignore[arg-type]
    with pytest.raises(LstmkitError, match="other data or settings"):
        RunFingerprint("run-b").on_load_checkpoint(None, None, saved)  # type: ignore[arg-type]
    with pytest.raises(LstmkitError, match="not written by lstmkit"):
        RunFingerprint("run-a").on_load_checkpoint(None, None, {"epoch": 1})  # type: ignore[arg-type]


def test_training_modules_import_each_other_in_one_direction() -> None:
    """No circle inside lstmkit.training: each module imports only those before it."""
    import ast

    import lstmkit.training

    order = [
        "settings", "config", "checkpoints", "module", "progress", "threads", "trainer",
    ]  # fmt: skip
    folder = Path(lstmkit.training.__file__).parent
    for i, name in enumerate(order):
        tree = ast.parse((folder / f"{name}.py").read_text())
        imported = {
            node.module.rsplit(".", 1)[-1]
            for node in ast.walk(tree)  # function-level imports count too
            if isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("lstmkit.training.")
        }
        assert imported <= set(order[:i]), (name, imported - set(order[:i]))


@pytest.mark.filterwarnings("ignore:Be aware that when using `ckpt_path`")  # a bare Trainer
def test_lightning_resuming_another_runs_checkpoint_is_refused_by_the_callback(
    tmp_path: Path,
) -> None:
    """The fingerprint is checked where Lightning loads the checkpoint too, not only by
    fit's look at the file before training."""
    from lstmkit.training import RunFingerprint

    train, val = _loaders()
    ckpt = tmp_path / "ckpt"
    fit(Linear(), train, val, _cfg(max_epochs=1, checkpoint_dir=str(ckpt)))
    module = Linear()
    module.train_config = _cfg()
    trainer = L.Trainer(max_epochs=2, callbacks=[RunFingerprint("another run")], logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)  # fmt: skip
    with pytest.raises(LstmkitError, match="other data or settings"):
        trainer.fit(module, train, val, ckpt_path=ckpt / "last.ckpt", weights_only=True)
