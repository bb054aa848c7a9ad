"""Closed-form ridge NLinear and DLinear: the linear forecasters every LSTM must beat.

Both map an input window of ``L`` steps to ``H`` forecast steps with one linear map each
(Zeng et al. 2023, "Are Transformers Effective for Time Series Forecasting?"), fitted here
not by gradient descent but by solving the ridge normal equations in float64, which takes
seconds even for long windows:

- ``nlinear``: subtract the window's last value, apply one map ``W`` (L, H) plus an
  intercept ``b`` (H,), add the last value back.
- ``dlinear``: split the window into a moving-average trend (kernel 25 as in the paper,
  the window's ends repeated as padding) and the remainder, apply one map to each
  (``W_trend``, ``W_remainder``) plus an intercept.

The intercept is never penalised (the features and targets are centred before solving).
`choose_ridge` fits every penalty of a grid from one eigendecomposition and keeps the one
with the lowest validation MSE. Both kinds are linear in the window, so a `LinearMap` is
also ``X @ M + c`` for one (L, H) matrix (`LinearMap.effective`): what an ONNX export or a
network's linear skip needs. Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from lstmkit.errors import LstmkitError

KINDS = ("nlinear", "dlinear")
#: the paper's moving-average kernel
DLINEAR_KERNEL = 25
#: default ridge grid, relative to the mean diagonal of the centred feature Gram matrix
#: (so one grid serves any number of windows and any scale of the data)
RIDGE_GRID = tuple(float(10.0**k) for k in np.arange(-6.0, 1.01, 0.5))


def moving_average_matrix(window: int, kernel: int = DLINEAR_KERNEL) -> np.ndarray:
    """P (window, window) with ``trend = X @ P``: the mean over ``kernel`` steps centred on
    each step, the window's first and last values repeated beyond its ends (DLinear's
    padding). The kernel is cut to the window's length. Read-only (computed once)."""
    return _moving_average_matrix(int(window), int(kernel))


@lru_cache(maxsize=16)
def _moving_average_matrix(window: int, kernel: int) -> np.ndarray:
    k = max(1, min(int(kernel), window))
    front, back = (k - 1) // 2, k - 1 - (k - 1) // 2
    P = np.zeros((window, window))
    for t in range(window):
        for j in range(t - front, t + back + 1):
            P[min(max(j, 0), window - 1), t] += 1.0 / k
    P.flags.writeable = False
    return P


def _check_xy(X: Any, Y: Any | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] < 1:
        raise LstmkitError(f"X must be a (windows, steps) array, got shape {X.shape}")
    if not np.isfinite(X).all():
        raise LstmkitError("X holds NaN or infinite values; pass finite values only")
    if Y is None:
        return X, None
    Y = np.asarray(Y, dtype=np.float64)
    if Y.ndim != 2 or len(Y) != len(X) or Y.shape[1] < 1:
        raise LstmkitError(f"Y must be ({len(X)}, horizon) to match X, got shape {Y.shape}")
    if not np.isfinite(Y).all():
        raise LstmkitError("Y holds NaN or infinite values; pass finite values only")
    if len(X) < 2:
        raise LstmkitError(f"a linear map needs at least 2 windows to fit, got {len(X)}")
    return X, Y


def _features(X: np.ndarray, kind: str, kernel: int) -> tuple[np.ndarray, np.ndarray]:
    """(features (n, p), offset (n, 1) added back to the forecast)."""
    if kind == "nlinear":
        last = X[:, -1:]
        return X - last, last
    trend = X @ moving_average_matrix(X.shape[1], kernel)
    return np.hstack([trend, X - trend]), np.zeros((len(X), 1))


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise LstmkitError(f"linear kind must be one of {', '.join(KINDS)}, got {kind!r}")
    return kind


@dataclass
class LinearMap:
    """A fitted NLinear or DLinear map from ``window`` steps to ``horizon`` steps.

    kind: "nlinear" | "dlinear". weights: nlinear ``{"weight": (L, H), "bias": (H,)}``;
    dlinear ``{"trend_weight": (L, H), "remainder_weight": (L, H), "bias": (H,)}``.
    ridge: the penalty it was fitted with. kernel: DLinear's moving-average kernel.
    val_mse: the validation MSE that chose the ridge (`choose_ridge`), else None.
    """

    kind: str
    weights: dict[str, np.ndarray]
    ridge: float
    kernel: int = DLINEAR_KERNEL
    val_mse: float | None = None
    scores: dict[float, float] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        _check_kind(self.kind)
        want = ("weight", "bias") if self.kind == "nlinear" else (
            "trend_weight", "remainder_weight", "bias"
        )  # fmt: skip
        if set(self.weights) != set(want):
            raise LstmkitError(
                f"{self.kind} weights must be {list(want)}, got {list(self.weights)}"
            )
        self.weights = {k: np.asarray(v, dtype=np.float64) for k, v in self.weights.items()}
        mats = [self.weights[k] for k in want[:-1]]
        L, H = mats[0].shape if mats[0].ndim == 2 else (0, 0)
        if (
            L < 1
            or any(m.shape != (L, H) for m in mats)
            or self.weights["bias"].shape != (H,)
            or not all(np.isfinite(v).all() for v in self.weights.values())
        ):
            raise LstmkitError(
                f"{self.kind} weights must be finite (window, horizon) maps and a (horizon,) "
                f"bias, got shapes {[tuple(np.shape(v)) for v in self.weights.values()]}"
            )

    @property
    def window(self) -> int:
        """Input steps."""
        key = "weight" if self.kind == "nlinear" else "trend_weight"
        return int(self.weights[key].shape[0])

    @property
    def horizon(self) -> int:
        """Forecast steps."""
        return int(self.weights["bias"].shape[0])

    def effective(self) -> tuple[np.ndarray, np.ndarray]:
        """(M (window, horizon), c (horizon,)) with ``predict(X) == X @ M + c``."""
        w = self.weights
        if self.kind == "nlinear":
            M = w["weight"].copy()
            M[-1] += 1.0 - w["weight"].sum(axis=0)  # - last * sum(W) + last
            return M, w["bias"].copy()
        P = moving_average_matrix(self.window, self.kernel)
        M = P @ w["trend_weight"] + (np.eye(self.window) - P) @ w["remainder_weight"]
        return M, w["bias"].copy()

    def predict(self, X: Any) -> np.ndarray:
        """Forecasts (n, horizon) for the windows X (n, window), in float64."""
        X, _ = _check_xy(X)
        if X.shape[1] != self.window:
            raise LstmkitError(
                f"this {self.kind} map reads windows of {self.window} steps, got {X.shape[1]}"
            )
        feats, offset = _features(X, self.kind, self.kernel)
        w = self.weights
        W = w["weight"] if self.kind == "nlinear" else np.vstack(
            [w["trend_weight"], w["remainder_weight"]]
        )  # fmt: skip
        return feats @ W + w["bias"] + offset

    def to_dict(self) -> dict[str, Any]:
        """{"kind", "ridge", "kernel", "val_mse", "weights": {name: float64 array}}: the
        arrays for a safetensors file, the rest for JSON."""
        return {
            "kind": self.kind,
            "ridge": float(self.ridge),
            "kernel": int(self.kernel),
            "val_mse": self.val_mse,
            "weights": {k: v.copy() for k, v in self.weights.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LinearMap:
        """Inverse of `to_dict` (checks the kind and the weights' shapes)."""
        try:
            return cls(
                kind=data["kind"],
                weights=dict(data["weights"]),
                ridge=float(data["ridge"]),
                kernel=int(data.get("kernel", DLINEAR_KERNEL)),
                val_mse=None if data.get("val_mse") is None else float(data["val_mse"]),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise LstmkitError(f"not a linear map: {type(err).__name__}: {err}") from None


@dataclass
class Moments:
    """The centred second moments of one set of windows in a kind's feature space: all a
    ridge fit (and its MSE on other windows) needs, so that windows can be added series by
    series and never all held at once.

    n: windows. mf (p,), mt (H,): means of the features and of the targets (the targets
    less the kind's offset). ff (p, p), ft (p, H): centred cross products. tt: the
    centred targets' total sum of squares.
    """

    n: int
    mf: np.ndarray
    mt: np.ndarray
    ff: np.ndarray
    ft: np.ndarray
    tt: float

    @classmethod
    def of(cls, X: Any, Y: Any, kind: str, kernel: int = DLINEAR_KERNEL) -> Moments:
        """The moments of windows X (n, L) with targets Y (n, H) for ``kind``."""
        X, Y = np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)
        feats, offset = _features(X, kind, kernel)
        T = Y - offset
        mf, mt = feats.mean(axis=0), T.mean(axis=0)
        F, Tc = feats - mf, T - mt
        ff, ft = F.T @ F, F.T @ Tc
        return cls(len(X), mf, mt, ff, ft, float(np.sum(Tc * Tc)))

    def __add__(self, other: Moments) -> Moments:
        """The moments of both sets together (Chan et al.'s pairwise update)."""
        if self.n == 0:
            return other
        if other.n == 0:
            return self
        n = self.n + other.n
        df, dt = other.mf - self.mf, other.mt - self.mt
        w = self.n * other.n / n
        return Moments(
            n, self.mf + df * (other.n / n), self.mt + dt * (other.n / n),
            self.ff + other.ff + w * np.outer(df, df), self.ft + other.ft + w * np.outer(df, dt),
            self.tt + other.tt + w * float(dt @ dt),
        )  # fmt: skip

    def mse(self, W: np.ndarray, b: np.ndarray) -> float:
        """Mean squared error over these windows (and steps) of ``features @ W + b``."""
        mean_err = self.mf @ W + b - self.mt
        sq = float(np.sum(W * (self.ff @ W))) - 2 * float(np.sum(W * self.ft)) + self.tt
        return max(sq + self.n * float(mean_err @ mean_err), 0.0) / (self.n * len(b))


class _Solver:
    """The centred normal equations of one training set, decomposed once: solves for any
    ridge penalty in O(p^2 H)."""

    def __init__(self, m: Moments, kind: str, kernel: int, window: int) -> None:
        self.m = m
        self.scale = float(np.trace(m.ff)) / m.ff.shape[0] or 1.0
        self.evals, self.evecs = np.linalg.eigh(m.ff)
        self.proj = self.evecs.T @ m.ft
        self.kind, self.kernel, self.L = kind, kernel, window

    def solve(self, ridge: float) -> LinearMap:
        denom = np.maximum(self.evals, 0.0) + ridge
        if ridge <= 0:  # least squares: the pseudo-inverse on the non-null part
            tol = self.evals.max(initial=0.0) * 1e-12 * len(self.evals)
            denom = np.where(self.evals > tol, self.evals, np.inf)
        W = self.evecs @ (self.proj / denom[:, None])
        b = self.m.mt - self.m.mf @ W
        if self.kind == "nlinear":
            weights = {"weight": W, "bias": b}
        else:
            weights = {"trend_weight": W[: self.L], "remainder_weight": W[self.L :], "bias": b}
        return LinearMap(self.kind, weights, float(ridge), self.kernel)


def _flat(m: LinearMap) -> np.ndarray:
    w = m.weights
    return w["weight"] if m.kind == "nlinear" else np.vstack(
        [w["trend_weight"], w["remainder_weight"]]
    )  # fmt: skip


def fit_linear(
    X: Any, Y: Any, kind: str = "nlinear", ridge: float = 0.0, kernel: int = DLINEAR_KERNEL
) -> LinearMap:
    """Fit ``kind`` ("nlinear" | "dlinear") on windows X (n, L) and targets Y (n, H) by ridge
    least squares with the absolute penalty ``ridge`` >= 0 on the maps (0: ordinary least
    squares, minimum-norm where the features are collinear); the intercept is free."""
    _check_kind(kind)
    X, Y = _check_xy(X, Y)
    return fit_moments(Moments.of(X, Y, kind, kernel), kind, X.shape[1], ridge, kernel)


def fit_moments(
    m: Moments, kind: str, window: int, ridge: float = 0.0, kernel: int = DLINEAR_KERNEL
) -> LinearMap:
    """`fit_linear` from the `Moments` of the windows (``window``: their steps)."""
    _check_kind(kind)
    if not (np.isfinite(ridge) and ridge >= 0):
        raise LstmkitError(f"ridge must be a finite number >= 0, got {ridge!r}")
    if m.n < 2:
        raise LstmkitError(f"a linear map needs at least 2 windows to fit, got {m.n}")
    return _Solver(m, kind, kernel, window).solve(float(ridge))


def choose_ridge(
    X_train: Any,
    Y_train: Any,
    X_val: Any,
    Y_val: Any,
    kind: str = "nlinear",
    grid: tuple[float, ...] | None = None,
    relative: bool = True,
    kernel: int = DLINEAR_KERNEL,
) -> LinearMap:
    """Fit ``kind`` on the training windows for every penalty of ``grid`` and return the map
    with the lowest MSE on the validation windows (its ``val_mse`` and, in ``scores``, every
    penalty's). ``relative``: the grid is in units of the mean diagonal of the centred
    feature Gram matrix (default grid `RIDGE_GRID`); else absolute penalties."""
    _check_kind(kind)
    X_train, Y_train = _check_xy(X_train, Y_train)
    X_val, _ = _check_xy(X_val)
    Y_val = np.asarray(Y_val, dtype=np.float64)
    if X_val.shape[1] != X_train.shape[1] or Y_val.shape != (len(X_val), Y_train.shape[1]):
        raise LstmkitError(
            f"validation windows {X_val.shape}/{Y_val.shape} do not match the training "
            f"windows {X_train.shape}/{Y_train.shape}"
        )
    if not np.isfinite(Y_val).all():
        raise LstmkitError("Y_val holds NaN or infinite values; pass finite values only")
    train = Moments.of(X_train, Y_train, kind, kernel)
    val = Moments.of(X_val, Y_val, kind, kernel)
    return choose_ridge_moments(train, val, kind, X_train.shape[1], grid, relative, kernel)


def choose_ridge_moments(
    train: Moments,
    val: Moments,
    kind: str,
    window: int,
    grid: tuple[float, ...] | None = None,
    relative: bool = True,
    kernel: int = DLINEAR_KERNEL,
) -> LinearMap:
    """`choose_ridge` from the `Moments` of the training and validation windows."""
    _check_kind(kind)
    grid = tuple(grid) if grid is not None else RIDGE_GRID
    if not grid or not all(np.isfinite(r) and r >= 0 for r in grid):
        raise LstmkitError(f"the ridge grid must be finite numbers >= 0, got {grid!r}")
    if train.n < 2 or val.n < 1:
        raise LstmkitError(
            f"choosing a ridge needs 2 training windows and 1 validation window, got "
            f"{train.n} and {val.n}"
        )
    solver = _Solver(train, kind, kernel, window)
    best: LinearMap | None = None
    scores: dict[float, float] = {}
    for r in grid:
        lam = r * solver.scale if relative else r
        m = solver.solve(lam)
        mse = val.mse(_flat(m), m.weights["bias"])
        scores[lam] = mse
        if best is None or mse < (best.val_mse or np.inf):
            m.val_mse = mse
            best = m
    assert best is not None
    best.scores = scores
    return best
