"""Training threads (`lstmkit.training.threads`): one thread for the training and
validation steps of a small LSTM or GRU (each by its own batch size), torch's count for
large networks, for xLSTM cells and where the user chose."""

import pytest
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from lstmkit.nn import GRU, LSTM, MLSTM, SLSTM
from lstmkit.training import LstmkitModule, TrainConfig, fit
from lstmkit.training.checkpoints import run_fingerprint
from lstmkit.training.threads import (
    ONE_THREAD_BELOW,
    batch_size_of,
    choose_threads,
    step_work,
)


@pytest.fixture
def two_threads(monkeypatch):
    """torch on two threads for the test (the suite runs on one), OMP_NUM_THREADS unset."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_step_work_is_the_batch_times_the_largest_recurrent_weight() -> None:
    assert step_work(LSTM(3, 16), 32) == 32 * 64 * 16
    assert step_work(GRU(3, 16), 32) == 32 * 48 * 16
    # stacked and bidirectional: the largest weight_hh of any layer and direction
    assert step_work(LSTM(3, 16, num_layers=2, bidirectional=True), 8) == 8 * 64 * 16
    assert step_work(LSTM(3, 32, proj_size=8), 4) == 4 * 128 * 8
    # nested inside a model, found by its name's last part; the largest of several layers
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), LSTM(3, 256), GRU(3, 300))
    assert step_work(model, 64) == 64 * 900 * 300
    # the xLSTM cells (the sLSTM's block-diagonal weight is 3-D) and plain layers: none
    assert step_work(SLSTM(3, 16), 32) is None
    assert step_work(MLSTM(3, 16), 32) is None
    assert step_work(torch.nn.Linear(3, 3), 32) is None


def test_batch_size_is_the_first_dimension_of_the_first_tensor() -> None:
    x = torch.zeros(7, 5, 2)
    assert batch_size_of(x) == 7
    assert batch_size_of((x[:3], torch.zeros(9))) == 3
    assert batch_size_of({"ids": torch.zeros(4, 10), "lengths": torch.zeros(4)}) == 4
    assert batch_size_of([[], (torch.zeros(2),)]) == 2
    assert batch_size_of((torch.tensor(1.0), "text")) is None
    assert batch_size_of("text") is None


def test_the_rule(two_threads, monkeypatch) -> None:
    small, large = LSTM(1, 16), LSTM(1, 256)
    assert step_work(small, 32) < ONE_THREAD_BELOW <= step_work(large, 64)
    assert choose_threads(None, small, 32) == 1
    assert choose_threads(None, GRU(1, 16), 32) == 1
    assert choose_threads(None, large, 64) == 2  # a large product: both threads
    assert choose_threads(None, SLSTM(1, 16), 32) == 2  # its kernel has no per-step region
    assert choose_threads(None, small, None) == 2  # batch unknown: torch's count
    assert choose_threads(3, small, 32) == 3  # the setting wins
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the user's count stands
    assert choose_threads(None, small, 32) == 2


class _Recurrent(LstmkitModule):
    """A small LSTM regressor that records the threads of its training and validation
    steps."""

    def __init__(self, hidden: int = 8, fail_at: int | None = None) -> None:
        super().__init__()
        self.rnn = LSTM(1, hidden, batch_first=True)
        self.head = torch.nn.Linear(hidden, 1)
        self.seen: dict[str, set[int]] = {"train": set(), "val": set()}
        self.fail_at = fail_at

    def step_metrics(self, batch):
        x, y = batch
        out, _ = self.rnn(x)
        return {"loss": F.mse_loss(self.head(out[:, -1]), y)}

    def training_step(self, batch, idx):
        self.seen["train"].add(torch.get_num_threads())
        if self.fail_at is not None and idx == self.fail_at:
            raise RuntimeError("stop here")
        return super().training_step(batch, idx)

    def validation_step(self, batch, idx):
        self.seen["val"].add(torch.get_num_threads())
        return super().validation_step(batch, idx)


def _loaders(val_batch: int = 16) -> tuple[DataLoader, DataLoader]:
    g = torch.Generator().manual_seed(0)
    x, xv = torch.randn(64, 6, 1, generator=g), torch.randn(val_batch, 6, 1, generator=g)
    train = DataLoader(TensorDataset(x, x.sum(1)), batch_size=16)
    return train, DataLoader(TensorDataset(xv, xv.sum(1)), batch_size=val_batch)


def _cfg(**kw) -> TrainConfig:
    return TrainConfig(**({"max_epochs": 2, "lr": 0.01, "progress": False} | kw))


def test_a_small_network_trains_and_validates_on_one_thread(two_threads) -> None:
    torch.manual_seed(0)
    model = _Recurrent()
    result = fit(model, *_loaders(), _cfg())
    assert model.seen == {"train": {1}, "val": {1}}
    assert result.threads == 1
    assert torch.get_num_threads() == 2  # torch's count is back after the fit


def test_large_validation_batches_run_on_torchs_count(two_threads) -> None:
    # hidden 64: a training batch of 16 is 16 x 256 x 64 multiply-adds a step (one
    # thread), a validation batch of 512 is 8.4 million (both threads)
    torch.manual_seed(0)
    model = _Recurrent(hidden=64)
    assert step_work(model, 16) < ONE_THREAD_BELOW <= step_work(model, 512)
    result = fit(model, *_loaders(val_batch=512), _cfg())
    assert model.seen == {"train": {1}, "val": {2}} and result.threads == 1
    assert torch.get_num_threads() == 2


def test_the_setting_chooses_the_training_threads(two_threads) -> None:
    torch.manual_seed(0)
    model = _Recurrent()
    result = fit(model, *_loaders(), _cfg(threads=2))
    assert model.seen == {"train": {2}, "val": {2}} and result.threads == 2
    # the same result on one thread either way: the count changes the speed, not the loss
    torch.manual_seed(0)
    again = _Recurrent()
    fit(again, *_loaders(), _cfg(threads=1))
    for a, b in zip(model.parameters(), again.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_torchs_count_is_back_after_a_failed_fit(two_threads) -> None:
    torch.manual_seed(0)
    with pytest.raises(RuntimeError, match="stop here"):
        fit(_Recurrent(fail_at=2), *_loaders(), _cfg())
    assert torch.get_num_threads() == 2


def test_a_ddp_worker_keeps_its_share_of_the_cores(two_threads, monkeypatch) -> None:
    from lstmkit.training.threads import TrainingThreads

    callback = TrainingThreads(None)  # built before the launch, on 2 threads
    # what Lightning's DDP launchers do in each process before the fit
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    callback.setup(None, None, "fit")
    callback._use("train", LSTM(1, 256), torch.zeros(64, 3, 1))  # a large network
    assert torch.get_num_threads() == 1 and callback.chosen == {"train": 1}
    callback.teardown(None, None, "fit")
    assert torch.get_num_threads() == 1
    callback.restore()  # the calling process gets its own count back
    assert torch.get_num_threads() == 2


def test_threads_are_a_setting_of_the_run() -> None:
    assert TrainConfig(threads=3).threads == 3
    with pytest.raises(ValueError, match="threads"):
        TrainConfig(threads=0)
    # a run resumed on another count of threads is the same run
    model = _Recurrent()
    train, val = _loaders()
    assert run_fingerprint(model, train, val, _cfg(threads=1)) == run_fingerprint(
        model, train, val, _cfg(threads=2)
    )
