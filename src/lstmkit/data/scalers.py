"""Per-series scalers (MinMax to [-1, 1] as in seed 004, standard, or log) with a JSON
round trip.

A scaler holds one (shift, scale) pair per series and column; ``transform``
computes ``(x - shift) / scale`` and ``inverse_transform`` undoes it. ``log`` first
takes the natural log of the target (column 0; it must be positive), then scales every
column as ``minmax`` does: the model then works with relative changes (a forecast
scaled back with ``exp``). Fitting uses only the training part of each series.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lstmkit.config import dataclass_from_dict
from lstmkit.errors import LstmkitError

SCALERS = ("minmax", "standard", "none", "log")


@dataclass
class SeriesScaler:
    """Scaling parameters per series id: ``params[id] = {"shift": [...], "scale": [...]}``,
    one entry per column (target first, then covariates)."""

    kind: str = "minmax"
    params: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in SCALERS:
            raise LstmkitError(f"scaler must be one of {', '.join(SCALERS)}, got {self.kind!r}")

    def fit_series(self, series_id: str, values: np.ndarray) -> None:
        """Fit the parameters of one series from its training values, shape (time, columns)."""
        values = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
        if self.kind == "log":
            values = values.copy()
            values[:, 0] = _log_target(series_id, values[:, 0])
        if self.kind in ("minmax", "log"):
            lo, hi = values.min(axis=0), values.max(axis=0)
            shift = hi / 2.0 + lo / 2.0  # halves first: no overflow near the float64 limit
            scale = hi / 2.0 - lo / 2.0
        elif self.kind == "standard":
            shift, scale = values.mean(axis=0), values.std(axis=0)
        else:
            shift, scale = np.zeros(values.shape[1]), np.ones(values.shape[1])
        scale = np.where(scale > 1e-12, scale, 1.0)  # a constant column is only shifted
        self.params[str(series_id)] = {"shift": shift.tolist(), "scale": scale.tolist()}

    def fit_many(
        self, ids: list[str], values: np.ndarray, lengths: np.ndarray, fit_lengths: np.ndarray
    ) -> None:
        """`fit_series` for many series at once: ``values`` (rows, columns) holds series
        ``ids[k]`` in ``lengths[k]`` rows one after the other, fitted on its first
        ``fit_lengths[k]`` rows (at least 1)."""
        self._fit_logged(ids, self.log_target(ids, values, lengths), lengths, fit_lengths)

    def fit_transform_many(
        self, ids: list[str], values: np.ndarray, lengths: np.ndarray, fit_lengths: np.ndarray
    ) -> np.ndarray:
        """`fit_many` then `transform_many` (the same numbers), the log taken once."""
        values = self.log_target(ids, values, lengths)
        shift, scale = self._fit_logged(ids, values, lengths, fit_lengths)
        out = values - np.repeat(shift, lengths, axis=0)
        out /= np.repeat(scale, lengths, axis=0)
        return out

    def _fit_logged(
        self, ids: list[str], values: np.ndarray, lengths: np.ndarray, fit_lengths: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """`fit_many` of values already through `log_target`; returns (shift, scale), each
        (series, columns)."""
        lengths, fit_lengths = np.asarray(lengths), np.asarray(fit_lengths)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        # reduce over [start, start + fit) by reduceat over the pairs (start, start + fit)
        # with a spare row at the end (where the last pair ends there), keeping the even
        # segments
        cuts = np.stack([starts, starts + fit_lengths], axis=1).ravel()
        spare = len(cuts) and cuts[-1] >= len(values)
        padded = np.concatenate([values, values[:1]]) if spare else values
        if self.kind in ("minmax", "log"):
            lo = np.minimum.reduceat(padded, cuts, axis=0)[::2]
            hi = np.maximum.reduceat(padded, cuts, axis=0)[::2]
            shift = hi / 2.0 + lo / 2.0  # halves first: no overflow near the float64 limit
            scale = hi / 2.0 - lo / 2.0
        elif self.kind == "standard":
            n = fit_lengths[:, None].astype(np.float64)
            shift = np.add.reduceat(padded, cuts, axis=0)[::2] / n
            centre = np.repeat(shift, lengths, axis=0)
            centre = np.concatenate([centre, shift[:1]]) if spare else centre
            dev = (padded - centre) ** 2
            scale = np.sqrt(np.add.reduceat(dev, cuts, axis=0)[::2] / n)
        else:
            shift = np.zeros((len(ids), values.shape[1]))
            scale = np.ones((len(ids), values.shape[1]))
        scale = np.where(scale > 1e-12, scale, 1.0)  # a constant column is only shifted
        for sid, sh, sc in zip(ids, shift.tolist(), scale.tolist(), strict=True):
            self.params[str(sid)] = {"shift": sh, "scale": sc}
        return shift.astype(np.float64), scale.astype(np.float64)

    def log_target(self, ids: list[str], values: np.ndarray, lengths: Any = None) -> np.ndarray:
        """``values`` as float64 with, for the ``log`` kind, the target (column 0 of the
        last axis) replaced by its log (a copy; a value <= 0 is refused naming its series).
        ``values`` is (rows, columns) laid out as in `fit_many` when ``lengths`` is given,
        else (len(ids), ..., columns), one leading row per series of ``ids``."""
        values = np.asarray(values, dtype=np.float64)
        if lengths is not None:
            values = values.reshape(len(values), -1)
        if self.kind != "log":
            return values
        target = values[..., 0]
        bad = ~(target > 0) & ~np.isnan(target)  # NaN: a padded window's blank rows
        if bad.any():
            row = np.unravel_index(int(np.flatnonzero(bad)[0]), bad.shape)[0]
            k = row if lengths is None else int(np.searchsorted(np.cumsum(lengths), row, "right"))
            _log_target(ids[k], target.ravel()[bad.ravel()])
        values = values.copy()
        values[..., 0] = np.log(target)
        return values

    def exp_target(self, values: np.ndarray) -> np.ndarray:
        """Undo `log_target` on target values already scaled back (``exp`` for the ``log``
        kind; the values as float64 otherwise)."""
        values = np.asarray(values, dtype=np.float64)
        if self.kind != "log":
            return values
        with np.errstate(over="ignore"):
            return np.exp(values)

    def stacked(self, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(shift, scale) of the series ``ids``, each (len(ids), columns)."""
        try:
            ps = [self.params[str(sid)] for sid in ids]
        except KeyError as err:
            raise LstmkitError(
                f"series {err.args[0]!r} was not seen in training; known series: "
                f"{', '.join(list(self.params)[:10])}"
            ) from None
        shift = np.array([p["shift"] for p in ps], dtype=np.float64)
        scale = np.array([p["scale"] for p in ps], dtype=np.float64)
        return shift, scale

    def transform_many(self, ids: list[str], values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """`transform` for many series at once (``values`` laid out as in `fit_many`)."""
        shift, scale = self.stacked(ids)
        values = self.log_target(ids, values, lengths)
        return (values - np.repeat(shift, lengths, axis=0)) / np.repeat(scale, lengths, axis=0)

    def _get(
        self, series_id: str, columns: slice | list[int] | None
    ) -> tuple[np.ndarray, np.ndarray]:
        try:
            p = self.params[str(series_id)]
        except KeyError:
            raise LstmkitError(
                f"series {series_id!r} was not seen in training; known series: "
                f"{', '.join(list(self.params)[:10])}"
            ) from None
        shift, scale = np.asarray(p["shift"]), np.asarray(p["scale"])
        if columns is not None:
            shift, scale = shift[columns], scale[columns]
        return shift, scale

    def transform(
        self, series_id: str, values: np.ndarray, columns: slice | list[int] | None = None
    ) -> np.ndarray:
        """Scale ``values`` (..., columns) or (time,) of one series; ``columns`` picks
        which fitted columns the last axis holds (default: all, in order)."""
        shift, scale = self._get(series_id, columns)
        values = np.asarray(values, dtype=np.float64)
        if values.ndim == 1:
            if self.kind == "log":
                values = _log_target(series_id, values)
            return (values - shift[0]) / scale[0]
        if self.kind == "log":
            picked = np.arange(len(self.params[str(series_id)]["shift"]))
            picked = picked if columns is None else picked[columns]
            target = np.flatnonzero(np.atleast_1d(picked) == 0)
            if target.size:
                values = values.copy()
                values[..., target[0]] = _log_target(series_id, values[..., target[0]])
        return (values - shift) / scale

    def inverse_transform(self, series_id: str, values: np.ndarray, column: int = 0) -> np.ndarray:
        """Undo the scaling of column ``column`` (default: the target) for any array shape."""
        shift, scale = self._get(series_id, None)
        out = np.asarray(values, dtype=np.float64) * scale[column] + shift[column]
        if self.kind == "log" and column == 0:
            with np.errstate(over="ignore"):
                return np.exp(out)
        return out

    def to_dict(self) -> dict:
        """JSON-serialisable dict."""
        return {"kind": self.kind, "params": self.params}

    @classmethod
    def from_dict(cls, data: dict) -> SeriesScaler:
        """Inverse of `to_dict`; unknown or missing keys are refused (`LstmkitError`)."""
        scaler = dataclass_from_dict(cls, data, "scaler")
        if not isinstance(scaler.params, dict):
            raise LstmkitError(f"scaler params must be an object, got {scaler.params!r}")
        scaler.params = {str(k): v for k, v in scaler.params.items()}
        return scaler

    def to_json(self) -> str:
        """The scaler as a JSON string (stored as ``scaler.json`` in a model directory)."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> SeriesScaler:
        """Inverse of `to_json`."""
        return cls.from_dict(json.loads(text))


def _log_target(series_id: str, values: np.ndarray) -> np.ndarray:
    """The natural log of target values, refusing (`LstmkitError`) any value <= 0."""
    values = np.asarray(values, dtype=np.float64)
    if not (values > 0).all():
        raise LstmkitError(
            f"scaler='log' needs positive target values; series {series_id!r} has "
            f"{np.nanmin(values):.6g}; use scaler='minmax' or 'standard'"
        )
    return np.log(values)
