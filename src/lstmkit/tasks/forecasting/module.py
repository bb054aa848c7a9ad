"""`ForecastModule`: the LightningModule around `ForecastNet` (instance normalisation and
the loss), and the sample paths that give recursive forecasts their widening band.

Loss: MSE, MAE or MASE-like (absolute error over the window's mean absolute
step-to-step change) of the point forecast (``ForecasterConfig.loss``) plus, with
quantiles, the pinball loss, on the per-series scaled values after undoing the instance
normalisation. A network with a ``residual`` NLinear map adds it to its output here.
A recursive network with past-only covariates also forecasts their next values (extra
output channels, `network.make_net`), with their own loss beside the target's; `roll`
feeds them back, with the known future covariates of each step, as the window moves on.
Training itself (optimiser, logging) is the shared `lstmkit.training.LstmkitModule`'s.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lstmkit.tasks.forecasting.network import ForecastNet
from lstmkit.training import LstmkitModule

EPS = 1e-5


def _instance_stats(x: Tensor, how: bool | str = "mean") -> tuple[Tensor, Tensor]:
    """Centre and scale of the target (feature 0) of each window, (batch, 1): its mean and
    standard deviation, or (``how="last"``) its last value and mean absolute change."""
    target = x[:, :, 0]
    if how == "last":
        change = (target[:, 1:] - target[:, :-1]).abs().mean(dim=1, keepdim=True)
        return target[:, -1:], change + EPS
    mean = target.mean(dim=1, keepdim=True)
    std = torch.sqrt(target.var(dim=1, keepdim=True, unbiased=False) + EPS)
    return mean, std


def fill_padding(x: Tensor) -> tuple[Tensor, Tensor]:
    """Windows whose leading rows may be padding (NaN in the target, `data.last_windows`)
    -> the windows with those rows set to the first real row, and the mask (batch,
    window, 1), 1.0 on real rows. A window without padding comes back as it is."""
    real = ~torch.isnan(x[:, :, :1])  # (batch, window, 1)
    lead = (torch.cumsum(real.to(torch.int64), dim=1) == 0).sum(dim=1, keepdim=True)
    lead = lead.clamp(max=x.shape[1] - 1).expand(-1, 1, x.shape[2])
    first = torch.gather(x, 1, lead)  # (batch, 1, features): the first real row
    return torch.where(real, x, first), real.to(x.dtype)


def _masked_stats(x: Tensor, mask: Tensor, how: bool | str = "mean") -> tuple[Tensor, Tensor]:
    """`_instance_stats` over the real rows of filled windows (``mask`` from
    `fill_padding`): the padding adds nothing to the centre or the spread."""
    target, m = x[:, :, 0], mask[:, :, 0]
    count = m.sum(dim=1, keepdim=True)
    if how == "last":  # the filled rows change by 0: divide by the real changes only
        change = (target[:, 1:] - target[:, :-1]).abs().sum(dim=1, keepdim=True)
        return target[:, -1:], change / (count - 1).clamp(min=1) + EPS
    mean = (target * m).sum(dim=1, keepdim=True) / count
    var = (((target - mean) * m) ** 2).sum(dim=1, keepdim=True) / count
    return mean, torch.sqrt(var + EPS)


def _change_scale(x: Tensor) -> Tensor:
    """Mean absolute step-to-step change of each window's target, (batch, 1): the
    denominator of the ``mase`` loss (a flat window counts with a tiny floor)."""
    target = x[:, :, 0]
    return (target[:, 1:] - target[:, :-1]).abs().mean(dim=1, keepdim=True) + 1e-3


def pinball_loss(pred: Tensor, y: Tensor, quantiles: Tensor) -> Tensor:
    """Mean pinball loss: pred (batch, steps, q), y (batch, steps), quantiles (q,)."""
    diff = y.unsqueeze(-1) - pred
    return torch.maximum(quantiles * diff, (quantiles - 1) * diff).mean()


class ForecastModule(LstmkitModule):
    """LightningModule wrapping `ForecastNet` with instance normalisation and the loss.

    Loss: ``loss`` ("mse", "mae" or "mase") of the point forecast (output channel 0)
    plus, with quantiles, the pinball loss of channels 1.., computed on the per-series
    scaled values after undoing the instance normalisation.
    """

    def __init__(
        self,
        net: ForecastNet,
        instance_norm: bool | str,
        quantiles: list[float] | None,
        future_columns: list[int] | None = None,
        loss: str = "mse",
        static: bool = False,
        past_columns: list[int] | None = None,
    ):
        super().__init__()
        self.net = net
        self.static = static  # batches carry each window's static inputs
        # positions of the known-future covariates among the covariates (feature - 1)
        self.future_columns = [c - 1 for c in future_columns or []]
        # recursive: the past-only covariates the network forecasts (feature - 1), in the
        # order of its output channels after the point forecast and quantiles
        self.past_columns = [c - 1 for c in past_columns or []]
        self.n_target = 1 + len(quantiles or [])  # output channels of the target
        self.instance_norm = instance_norm
        self.loss = loss
        q = torch.tensor(quantiles or [], dtype=torch.float32)
        self.register_buffer("quantiles", q, persistent=False)

    def forward(
        self, x: Tensor, future: Tensor | None = None, static: Tensor | None = None
    ) -> Tensor:
        """x (batch, window, features) scaled [, future (batch, steps, n_future)] [, static
        (batch, static inputs)] -> forecast (batch, steps, n_outputs) scaled: the target's
        channels (point, quantiles), then any past-only covariates' next values. In eval
        mode a network with ``log_profile`` gives its point forecast the log map's profile
        (`profiled`)."""
        out = self._forward(x, future, static)
        if getattr(self.net, "log_profile", False) and not self.training:
            out = self.profiled(x, out)
        return out

    def profiled(self, x: Tensor, out: Tensor) -> Tensor:
        """The forecast ``out`` (batch, steps, outputs) of the scaled windows ``x`` with its
        point forecast given the profile over the horizon of the network's log NLinear map
        (`ForecastNet.log_linear`, in the target's own units) at the network's level: in
        those units, ``map * mean(point) / mean(map)`` over the steps; the quantiles move
        with the point (the same shift), any other channel stays. A window with a value at
        or below 0, or whose profiled forecast is not finite, keeps the network's, as does
        every window when the profile is off (the ``on`` entry of `ForecastNet.profile`):
        multiplicative seasonality (a summer peak that grows with the level) with the
        network's trend."""
        shift, scale, on = self.net.profile.to(x.dtype).unbind()
        k = self.n_target
        raw = x[:, :, 0] * scale + shift
        ok = (raw > 0).all(dim=1, keepdim=True) & (on > 0)
        logs = torch.log(torch.where(ok, raw, torch.ones_like(raw)))
        last = logs[:, -1:]
        curve = torch.exp(last + self.net.log_linear(logs - last))
        point = out[..., 0] * scale + shift
        shaped = curve * (point.mean(dim=1, keepdim=True) / curve.mean(dim=1, keepdim=True))
        delta = (shaped - point) / scale
        delta = torch.where(ok & torch.isfinite(delta), delta, torch.zeros_like(delta))
        return torch.cat([out[..., :k] + delta.unsqueeze(-1), out[..., k:]], dim=-1)

    def _forward(
        self, x: Tensor, future: Tensor | None = None, static: Tensor | None = None
    ) -> Tensor:
        """`forward` before any log profile."""
        extra = {} if static is None else {"static": static}
        base = self.net.nlinear(x[:, :, 0]).unsqueeze(-1) if self.net.residual else None
        k = self.n_target
        mask = None
        if self.net.mask:
            x, mask = fill_padding(x)
        if not self.instance_norm:
            out = self.net(x if mask is None else torch.cat([x, mask], dim=2), future, **extra)
            if base is None:
                return out
            if not self.past_columns:
                return out + base
            return torch.cat([out[..., :k] + base, out[..., k:]], dim=-1)
        if mask is None:
            mean, std = _instance_stats(x, self.instance_norm)
        else:
            mean, std = _masked_stats(x, mask, self.instance_norm)
        # covariates are centred on their window means (kept at their scale: a flag that
        # is 0 all window long must not be divided by a zero spread)
        cov_mean = x[:, :, 1:].mean(dim=1, keepdim=True)
        xn = torch.cat([(x[:, :, :1] - mean.unsqueeze(-1)) / std.unsqueeze(-1),
                        x[:, :, 1:] - cov_mean], dim=2)  # fmt: skip
        if future is not None:
            future = future - cov_mean[:, :, self.future_columns]
        if mask is not None:
            xn = torch.cat([xn, mask], dim=2)
        out = self.net(xn, future, **extra)
        covariates = None
        if self.past_columns:  # their forecasts come back to the inputs' centre
            covariates = out[..., k:] + cov_mean[:, :, self.past_columns]
            out = out[..., :k]
        out = out * std.unsqueeze(-1)
        out = out + (mean.unsqueeze(-1) if base is None else base)
        return out if covariates is None else torch.cat([out, covariates], dim=-1)

    def _filled(self, x: Tensor) -> Tensor:
        """``x`` with any padding filled (`fill_padding`)."""
        return fill_padding(x)[0] if self.net.mask else x

    def step_metrics(self, batch: tuple[Tensor, ...]) -> dict[str, Tensor]:
        """Batch (x, [future,] [past-only covariates ahead,] [static,] y) -> {"loss":
        MSE / MAE / MASE of the point forecast [+ pinball] [+ the covariates' loss]}.

        The forecasts of past-only covariates (recursive) add their mean squared error
        (loss ``mse``) or mean absolute error (``mae``, ``mase``) in the per-series scaled
        values; never over the window's change as MASE divides, which a flag that stays 0
        all window long would make near zero."""
        x, y = batch[0], batch[-1]
        rest = list(batch[1:-1])
        static = rest.pop() if self.static else None
        ahead = rest.pop() if self.past_columns else None
        pred = self(x, rest[0] if rest else None, static)
        cov_loss = None
        if ahead is not None:
            cov_err = pred[..., self.n_target :] - ahead
            pred = pred[..., : self.n_target]
            cov_loss = torch.mean(cov_err**2) if self.loss == "mse" else cov_err.abs().mean()
        err = pred[..., 0] - y
        if self.loss == "mae":
            loss = err.abs().mean()
        elif self.loss == "mase":
            loss = (err.abs() / _change_scale(self._filled(x))).mean()
        else:
            loss = torch.mean(err**2)
        if len(self.quantiles):
            if self.loss == "mase":
                scale = _change_scale(self._filled(x))
                pred, y = pred / scale.unsqueeze(-1), y / scale
            loss = loss + pinball_loss(pred[..., 1:], y, self.quantiles)
        if cov_loss is not None:
            loss = loss + cov_loss
        return {"loss": loss}


def roll(
    module: ForecastModule, x: Tensor, target: Tensor, out: Tensor, future: Tensor | None
) -> Tensor:
    """The window ``x`` (batch, window, features) one step on, as a recursive forecast
    feeds it back: its first row dropped and the forecast step's row appended, which
    holds ``target`` (batch, 1) in feature 0, the known future covariates of that step
    (``future`` (batch, 1, n_future)) and the network's forecasts of the past-only
    covariates (``out[..., n_target:]`` of the step's output ``out`` (batch, 1,
    outputs)). Every covariate of a recursive forecaster is one or the other."""
    row = torch.zeros_like(x[:, -1:])
    row[:, :, 0] = target
    if module.future_columns:
        row[:, :, [c + 1 for c in module.future_columns]] = future
    if module.past_columns:
        row[:, :, [c + 1 for c in module.past_columns]] = out[:, :, module.n_target :]
    return torch.cat([x[:, 1:], row], dim=1)


SAMPLE_PATHS = 500  # recursive forecasts: sample paths per window for the band
MAX_PATH_BATCH = 16384  # windows per forward pass while simulating them


def _quantile_function(values: Tensor, levels: Tensor, u: Tensor) -> Tensor:
    """Evaluate piecewise-linear quantile functions at ``u``.

    values (n, q) ascending quantile values at ``levels`` (q,) ascending, u (n,) in
    (0, 1) -> (n,): linear between neighbouring levels, and beyond the outer levels
    linear with the slope of the outer segments.
    """
    k = torch.searchsorted(levels, u.contiguous()).clamp(1, len(levels) - 1)  # right end
    lo_l, hi_l = levels[k - 1], levels[k]
    rows = torch.arange(len(u))
    lo_v, hi_v = values[rows, k - 1], values[rows, k]
    return lo_v + (hi_v - lo_v) * (u - lo_l) / (hi_l - lo_l)


@torch.no_grad()
def simulate_quantiles(
    module: ForecastModule,
    x: Tensor,
    levels: Tensor,
    horizon: int,
    seed: int,
    static: Tensor | None = None,
    future: Tensor | None = None,
) -> Tensor:
    """Quantiles at ``levels`` of ``SAMPLE_PATHS`` recursive sample paths from each window.

    Each path feeds back a draw from the model's one-step predictive distribution at
    every step: its quantile function (`_quantile_function`) at a uniform draw. The
    draws are seeded with ``seed`` and shared by the windows (path ``p`` of every window
    takes the same uniform draws), so a forecast is reproducible and does not depend on
    the other windows batched with it. Covariates roll with the target (`roll`): the
    known future values of each step, and the network's point forecasts of the past-only
    ones along each path (their own uncertainty is not sampled).

    Args:
        module: a one-step model (``steps=1``) predicting the point and ``levels``.
        x: (batch, window, features) scaled input windows.
        static: (batch, static inputs) of each window's series, if the model has any.
        future: (batch, horizon, n_future) scaled known future covariates, if any.
        levels: (q,) ascending quantile levels the module predicts.
        horizon: steps to simulate.
        seed: random seed of the draws.

    Returns:
        (batch, horizon, q) the quantiles of the paths at each step.
    """
    n = SAMPLE_PATHS
    chunk = max(1, MAX_PATH_BATCH // n)
    result = []
    for begin in range(0, len(x), chunk):
        xs = x[begin : begin + chunk].repeat_interleave(n, dim=0)
        st = None if static is None else static[begin : begin + chunk].repeat_interleave(n, dim=0)
        fs = None if future is None else future[begin : begin + chunk].repeat_interleave(n, dim=0)
        # every window's paths take the same draws, whatever the batch it is in: a window
        # forecast alone or among thousands of series gets the same band
        gen = torch.Generator().manual_seed(seed)
        draws = []
        for t in range(horizon):
            ft = None if fs is None else fs[:, t : t + 1]
            out = module(xs, ft, st)
            q = torch.sort(out[:, 0, 1 : module.n_target], dim=-1).values  # (paths, q)
            u = torch.rand(n, generator=gen).repeat(len(xs) // n)
            draw = _quantile_function(q, levels, u)
            draws.append(draw)
            xs = roll(module, xs, draw.view(-1, 1), out, ft)
        paths = torch.stack(draws, dim=1).view(-1, n, horizon)  # (chunk, paths, horizon)
        result.append(torch.quantile(paths, levels, dim=1).permute(1, 2, 0))
    return torch.cat(result)
