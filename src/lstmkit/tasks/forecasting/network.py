"""`ForecastNet`: the recurrent encoder and dense head, and its size before it is built.

`make_net` builds it from a `ForecasterConfig`; `estimate_parameters` counts its
weights on the meta device, without allocating them; `check_model_size` refuses a
network whose training state (weights, gradients, Adam's moments) cannot fit in the
machine's memory.
"""

from __future__ import annotations

import os

import torch
from torch import Tensor, nn

from lstmkit.errors import LstmkitError
from lstmkit.nn import GRU, LSTM, make_pool
from lstmkit.tasks.forecasting.settings import ForecasterConfig


class ForecastNet(nn.Module):
    """Recurrent encoder + dense head.

    Input (batch, window, features) with the target in feature 0; output
    (batch, steps, n_outputs) where steps is the horizon (direct) or 1 and the
    outputs are the point forecast followed by any quantiles. ``layer_norm``,
    ``recurrent_dropout`` and ``zoneout`` are passed to the encoder (see
    `lstmkit.nn.LSTM`); with their defaults it is the plain layer.
    """

    def __init__(
        self,
        n_features: int,
        window: int,
        steps: int,
        n_outputs: int,
        model: str = "lstm",
        hidden_size: int = 64,
        num_layers: int = 1,
        dropout: float = 0.0,
        bidirectional: bool = False,
        skip: bool = True,
        n_future: int = 0,
        layer_norm: bool = False,
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
    ) -> None:
        super().__init__()
        rnn_cls = LSTM if model == "lstm" else GRU
        self.rnn = rnn_cls(
            n_features,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
            bidirectional=bidirectional,
            layer_norm=layer_norm,
            recurrent_dropout=recurrent_dropout,
            zoneout=zoneout,
        )
        width = hidden_size * (2 if bidirectional else 1)
        self.pool = make_pool("last", width, bidirectional=bidirectional)
        self.dropout = nn.Dropout(dropout)
        self.steps, self.n_outputs = steps, n_outputs
        head_in = width + (window if skip else 0) + steps * n_future
        self.head = nn.Linear(head_in, steps * n_outputs)
        self.skip, self.n_future = skip, n_future

    def forward(self, x: Tensor, future: Tensor | None = None) -> Tensor:
        """x (batch, window, features), future (batch, steps, n_future) known covariates
        over the horizon -> (batch, steps, n_outputs)."""
        out, _ = self.rnn(x)
        parts = [self.dropout(self.pool(out))]
        if self.skip:
            parts.append(x[:, :, 0])
        if self.n_future:
            if future is None:
                raise ValueError("this model needs the future covariates over the horizon")
            parts.append(future.reshape(x.shape[0], -1))
        return self.head(torch.cat(parts, dim=1)).view(x.shape[0], self.steps, self.n_outputs)


def output_steps(cfg: ForecasterConfig) -> int:
    """Steps the network forecasts at once: the horizon (direct) or 1 (recursive)."""
    return cfg.horizon if cfg.method == "direct" else 1


def make_net(cfg: ForecasterConfig, n_features: int, window: int, n_future: int) -> ForecastNet:
    """The `ForecastNet` of ``cfg`` for ``n_features`` input columns, an input window of
    ``window`` steps and ``n_future`` known future covariates."""
    return ForecastNet(
        n_features,
        window,
        output_steps(cfg),
        1 + len(cfg.quantiles or []),
        model=cfg.rnn,
        hidden_size=cfg.hidden_size,
        num_layers=cfg.num_layers,
        dropout=cfg.dropout,
        bidirectional=cfg.bidirectional,
        skip=cfg.skip,
        n_future=n_future,
        layer_norm=cfg.layer_norm,
        recurrent_dropout=cfg.recurrent_dropout,
        zoneout=cfg.zoneout,
    )


def estimate_parameters(cfg: ForecasterConfig, n_features: int, window: int, n_future: int) -> int:
    """Number of weights of the network `make_net` builds for ``cfg``: the network is
    built on the meta device (no memory allocated) and its parameters counted, so every
    cell of `lstmkit.nn` (and any variant option) is counted as its layer owns it."""
    with torch.device("meta"):
        net = make_net(cfg, n_features, window, n_future)
    return sum(p.numel() for p in net.parameters())


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_model_size(parameters: int, knobs: str) -> None:
    """Refuse a network whose training state cannot fit in this machine's memory.

    Training holds each float32 weight about four times (weights, gradients and
    Adam's two moments): 16 bytes per parameter, before any activations.
    """
    need = 16 * parameters
    have = _memory_bytes()
    if have is not None and need > have:
        raise LstmkitError(
            f"the model would have {parameters:,} parameters, about {need / 2**30:,.0f} GiB to "
            f"train (weights, gradients, optimiser state), more than this machine's "
            f"{have / 2**30:,.0f} GiB; use a smaller {knobs}"
        )
