"""`Contexts`: the last window of every series a forecaster continues from, as arrays.

A fitted forecaster keeps, for each series, the last ``window`` rows of its values and
their times (a padded model: all the rows of a shorter series), and its static
covariates. `Contexts` holds them as three arrays (values, times as int64, real rows)
rather than one JSON object per series: 100,000 series are a few arrays, built, joined
(`Contexts.update`), saved and read in one step each. It still reads as the mapping the
model folder's ``context.json`` held before, series id -> ``{"values": rows of numbers,
"times": timestamps as text[, "static": values]}``, built on access (`to_dict` for all of
them: ONNX's ``export.json`` writes that).

Saved as ``context.safetensors`` (``values`` (series, window, features) float64 with NaN
rows before a short series, ``times`` (series, window) int64: nanoseconds since 1970 in
UTC for zoned dates, of the wall clock for naive ones, else the integer steps; ``rows``
(series,) int64) beside ``context.json`` (``{"ids": [...], "times": "dates" or
"integers"[, "static": {id: values}]}``); `from_files` checks both and raises
`LstmkitError` for a damaged one. A folder saved before holds the per-series
``context.json`` alone (`from_dict`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd

from lstmkit.data.series import (
    SeriesData,
    concat_times,
    tail_times,
    times_from_strings,
    tz_from_name,
)
from lstmkit.errors import LstmkitError

#: the kinds of time axis a context holds
KINDS = ("dates", "integers")


def time_strings(times: pd.Index) -> list[str]:
    """``[str(t) for t in times]``, each distinct time formatted once: the contexts of
    100,000 series hold millions of times but mostly the same few hundred."""
    if not len(times):
        return []
    keys = times.asi8 if isinstance(times, pd.DatetimeIndex) else np.asarray(times)
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    text = np.array([str(times[i]) for i in first.tolist()], dtype=object)
    return text[inverse.reshape(-1)].tolist()


class Contexts(Mapping[str, dict[str, Any]]):
    """The last window of each series (see the module doc).

    ids: the series, in order. values: (series, window, features) float64, a series with
    fewer rows (a padded model) preceded by NaN rows. times: (series, window) int64 (the
    entries before a short series' rows are 0). rows: (series,) int64, each series' real
    rows. kind: ``"dates"`` or ``"integers"``. tz: the zone of the dates (a name, as
    `lstmkit.data.series.tz_name` writes it) or None. static: each series' static
    covariates (only series that have them).
    """

    def __init__(
        self,
        ids: list[str],
        values: np.ndarray,
        times: np.ndarray,
        rows: np.ndarray,
        kind: str,
        tz: str | None = None,
        static: dict[str, list[Any]] | None = None,
    ) -> None:
        self.ids = list(ids)
        self.values = np.asarray(values, dtype=np.float64)
        self.times = np.asarray(times, dtype=np.int64)
        self.rows = np.asarray(rows, dtype=np.int64)
        self.kind, self.tz = kind, tz
        self.static = dict(static or {})
        self._pos = {sid: k for k, sid in enumerate(self.ids)}

    # ------------------------------------------------------------------ building
    @classmethod
    def from_series(cls, sd: SeriesData, window: int, tz: str | None) -> Contexts:
        """The last ``window`` rows of each series of ``sd`` (all of a shorter one's)."""
        series = list(sd.series.values())
        n_features = series[0].values.shape[1] if series else 1
        rows = np.array([min(len(s), window) for s in series], dtype=np.int64)
        times = np.zeros((len(series), window), dtype=np.int64)
        if len(series) and (rows == window).all():
            values = np.stack([s.values[len(s) - window :] for s in series])
            values = values.astype(np.float64, copy=False)
            index = tail_times(series, window)
        elif len(series):  # a padded model: the short series keep all their rows
            values = np.full((len(series), window, n_features), np.nan)
            for k, s in enumerate(series):
                values[k, window - rows[k] :] = s.values[len(s) - rows[k] :]
            index = concat_times([s.times[len(s) - n :] for s, n in zip(series, rows, strict=True)])
        else:
            values = np.full((0, window, n_features), np.nan)
        kind = "dates"
        if len(series):
            kind, ints = _ints(index)
            mask = np.arange(window) >= (window - rows)[:, None]
            times[mask] = ints
        static = {sid: list(v) for sid, v in sd.static.items() if sid in sd.series}
        return cls([s.id for s in series], values, times, rows, kind, tz, static)

    @classmethod
    def from_dict(cls, context: Mapping[str, Any], window: int, tz: str | None) -> Contexts:
        """The per-series mapping of a ``context.json`` saved before (checked by
        `lstmkit.tasks.forecasting.state.check_context`), as arrays; all its times are
        parsed in one call."""
        if isinstance(context, Contexts):
            return context
        ids = [str(sid) for sid in context]
        parts = [np.asarray(context[sid]["values"], dtype=np.float64) for sid in context]
        n_features = parts[0].shape[-1] if parts and parts[0].ndim == 2 else 1
        rows = np.array([len(p) for p in parts], dtype=np.int64)
        values = np.full((len(ids), window, n_features), np.nan)
        for k, p in enumerate(parts):
            values[k, window - rows[k] :] = p
        text = [str(t) for sid in context for t in context[sid]["times"]]
        kind, ints = _ints(times_from_strings(text, tz) if text else pd.DatetimeIndex([]))
        times = np.zeros((len(ids), window), dtype=np.int64)
        times[np.arange(window) >= (window - rows)[:, None]] = ints
        static = {str(sid): list(c["static"]) for sid, c in context.items() if "static" in c}
        return cls(ids, values, times, rows, kind, tz, static)

    def update(self, other: Contexts) -> None:  # type: ignore[override]
        """Take the contexts of ``other`` (same window and features): its series replace
        these, new ones are added after them."""
        if not len(self):
            self.kind, self.tz = other.kind, other.tz
        elif other.kind != self.kind and len(other):
            raise LstmkitError(f"the model's times are {self.kind}; these are {other.kind}")
        pos = np.array([self._pos.get(sid, -1) for sid in other.ids], dtype=np.int64)
        old = pos >= 0
        self.values[pos[old]] = other.values[old]
        self.times[pos[old]] = other.times[old]
        self.rows[pos[old]] = other.rows[old]
        if (~old).any():
            new = np.flatnonzero(~old)
            self.ids += [other.ids[k] for k in new.tolist()]
            self.values = np.concatenate([self.values, other.values[new]])
            self.times = np.concatenate([self.times, other.times[new]])
            self.rows = np.concatenate([self.rows, other.rows[new]])
            self._pos = {sid: k for k, sid in enumerate(self.ids)}
        self.static.update(other.static)

    # ------------------------------------------------------------------ reading
    @property
    def window(self) -> int:
        return int(self.values.shape[1])

    def index(self, ints: np.ndarray) -> pd.Index:
        """Times stored as int64 (``times``) as an `Index` of this context's kind: dates
        in nanoseconds, in the zone ``tz``, as the text of ``context.json`` parsed."""
        ints = np.asarray(ints, dtype=np.int64)
        if self.kind != "dates":
            return pd.Index(ints)
        out = pd.DatetimeIndex(ints.view("M8[ns]"))
        return out if self.tz is None else out.tz_localize("UTC").tz_convert(tz_from_name(self.tz))

    def series_times(self, k: int) -> pd.Index:
        """The times of series number ``k``'s rows."""
        return self.index(self.times[k, self.window - self.rows[k] :])

    def ends(self) -> tuple[pd.Index, pd.Index | None]:
        """The last time of every series and (integer times) the one before it (the last
        again for a series of one row)."""
        last = self.index(self.times[:, -1])
        if self.kind == "dates":
            return last, None
        prev = np.where(self.rows > 1, self.times[:, -2], self.times[:, -1] - 1)
        return last, self.index(prev)

    def __getitem__(self, sid: str) -> dict[str, Any]:
        k = self._pos[sid]
        out = {
            "values": self.values[k, self.window - self.rows[k] :].tolist(),
            "times": time_strings(self.series_times(k)),
        }
        if sid in self.static:
            out["static"] = list(self.static[sid])
        return out

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids)

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, sid: object) -> bool:
        return sid in self._pos

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Every series as ``context.json`` held it (JSON lists)."""
        return {sid: self[sid] for sid in self.ids}

    # ------------------------------------------------------------------ files
    def to_bytes(self) -> tuple[str, bytes]:
        """(context.json text, context.safetensors bytes)."""
        from safetensors.numpy import save

        meta: dict[str, Any] = {"ids": self.ids, "times": self.kind}
        if self.static:
            meta["static"] = self.static
        arrays = {"values": self.values, "times": self.times, "rows": self.rows}
        return json.dumps(meta), save({k: np.ascontiguousarray(v) for k, v in arrays.items()})

    @classmethod
    def from_bytes(
        cls, meta_text: str, data: bytes, window: int, n_features: int, pad: bool,
        tz: str | None, known: set[str],
    ) -> Contexts:  # fmt: skip
        """Inverse of `to_bytes`, checked: a damaged file raises `LstmkitError` (its
        message says what is wrong; the caller names the file)."""
        from safetensors.numpy import load

        try:
            arrays = load(data)
        except Exception as err:  # a damaged file, said in one line
            raise DamagedFile("context.safetensors", f"{type(err).__name__}: {err}") from None
        try:
            meta = json.loads(meta_text)
        except ValueError as err:
            raise DamagedFile("context.json", f"{type(err).__name__}: {err}") from None
        ids = meta.get("ids") if isinstance(meta, dict) else None
        static = meta.get("static", {}) if isinstance(meta, dict) else None
        if (
            not isinstance(ids, list)
            or not ids
            or not all(isinstance(s, str) for s in ids)
            or len(set(ids)) != len(ids)
            or meta.get("times") not in KINDS
            or not isinstance(static, dict)
            or not all(isinstance(v, list) for v in static.values())
        ):
            raise DamagedFile(
                "context.json", "expected the series ids (distinct, at least one), the kind "
                "of times and the static covariates of each series"
            )  # fmt: skip
        unknown = [s for s in ids if s not in known]
        if unknown:
            raise DamagedFile(
                "context.json", f"series {unknown[0]!r} has no scaling parameters in scaler.json"
            )
        n = len(ids)
        values, times, rows = (arrays.get(k) for k in ("values", "times", "rows"))
        if (
            values is None or values.dtype != np.float64 or values.shape != (n, window, n_features)
            or times is None or times.dtype != np.int64 or times.shape != (n, window)
            or rows is None or rows.dtype != np.int64 or rows.shape != (n,)
        ):  # fmt: skip
            raise DamagedFile(
                "context.safetensors", f"expected values ({n}, {window}, {n_features}) float64, "
                f"times ({n}, {window}) int64 and rows ({n},) int64"
            )  # fmt: skip
        if ((rows < 1) | (rows > window)).any() or (not pad and (rows != window).any()):
            raise DamagedFile(
                "context.safetensors", f"rows must be {window}" + (" or fewer" if pad else "")
            )
        real = np.arange(window) >= (window - rows)[:, None]
        if not np.isfinite(values[real]).all() or not np.isnan(values[~real]).all():
            raise DamagedFile(
                "context.safetensors", "values must be finite in each series' rows (NaN before)"
            )
        if meta["times"] == "dates" and (times[real] == np.iinfo(np.int64).min).any():
            raise DamagedFile("context.safetensors", "times hold a missing date")
        if (np.diff(times, axis=1)[real[:, :-1]] <= 0).any():  # the forecasts follow the last
            raise DamagedFile("context.safetensors", "times must increase along each series")
        return cls(ids, values, times, rows, meta["times"], tz, static)


class DamagedFile(LstmkitError):
    """A damaged context file: ``file`` names it (``context.json`` or
    ``context.safetensors``), the message says what is wrong."""

    def __init__(self, file: str, what: str) -> None:
        super().__init__(what[:200])
        self.file = file


def _ints(index: pd.Index) -> tuple[str, np.ndarray]:
    """(kind, int64 values) of a time `Index`: dates as nanoseconds (UTC for a zone)."""
    if isinstance(index, pd.DatetimeIndex):
        return "dates", index.as_unit("ns").asi8
    return "integers", np.asarray(index, dtype=np.int64)
