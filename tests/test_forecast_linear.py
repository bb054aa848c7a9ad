"""Closed-form ridge NLinear / DLinear (`lstmkit.tasks.forecasting.linear`)."""

from __future__ import annotations

import numpy as np
import pytest

from lstmkit.errors import LstmkitError
from lstmkit.tasks.forecasting.linear import (
    LinearMap,
    Moments,
    choose_ridge,
    fit_linear,
    fit_moments,
    moving_average_matrix,
)


def _ar_windows(n: int, L: int, H: int, seed: int = 0):
    """Windows of a random walk and targets that are a known linear map of them."""
    rng = np.random.default_rng(seed)
    X = np.cumsum(rng.normal(size=(n, L)), axis=1)
    maps = np.random.default_rng(100)  # the same map for every sample of windows
    W = maps.normal(scale=0.3, size=(L, H))
    b = maps.normal(size=H)
    last = X[:, -1:]
    return X, (X - last) @ W + b + last, W, b


def test_nlinear_least_squares_matches_numpy_lstsq():
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(50, 6)), rng.normal(size=(50, 3))
    m = fit_linear(X, Y, "nlinear", ridge=0.0)
    last = X[:, -1:]
    A = np.hstack([X - last, np.ones((50, 1))])
    sol = np.linalg.lstsq(A, Y - last, rcond=None)[0]
    np.testing.assert_allclose(m.weights["weight"], sol[:-1], atol=1e-10)
    np.testing.assert_allclose(m.weights["bias"], sol[-1], atol=1e-10)
    np.testing.assert_allclose(m.predict(X), A @ sol + last, atol=1e-10)


def test_ridge_penalises_the_map_but_not_the_intercept():
    # the ridge solution of the centred problem, by hand: (F'F + lam I)^-1 F'T
    rng = np.random.default_rng(2)
    X, Y = rng.normal(size=(40, 5)), rng.normal(size=(40, 2)) + 7.0
    lam = 3.0
    m = fit_linear(X, Y, "nlinear", ridge=lam)
    F, T = X - X[:, -1:], Y - X[:, -1:]
    Fc, Tc = F - F.mean(0), T - T.mean(0)
    W = np.linalg.solve(Fc.T @ Fc + lam * np.eye(5), Fc.T @ Tc)
    np.testing.assert_allclose(m.weights["weight"], W, atol=1e-10)
    np.testing.assert_allclose(m.weights["bias"], T.mean(0) - F.mean(0) @ W, atol=1e-10)


def test_tiny_case_by_hand():
    # y = x1 - x0 + last (window 2, horizon 1): NLinear's features are (x0 - x1, 0), so the
    # map is weight[0] = -1 with no intercept; two windows determine it exactly
    X = np.array([[1.0, 2.0], [5.0, 3.0], [0.0, 4.0]])
    Y = (X[:, 1] - X[:, 0] + X[:, 1])[:, None]
    m = fit_linear(X, Y, "nlinear")
    assert m.weights["weight"][0, 0] == pytest.approx(-1.0)
    assert m.weights["bias"][0] == pytest.approx(0.0, abs=1e-12)
    assert m.predict(np.array([[10.0, 11.0]]))[0, 0] == pytest.approx(12.0)


def test_nlinear_recovers_a_known_linear_process():
    X, Y, W, b = _ar_windows(400, 12, 4)
    m = fit_linear(X, Y, "nlinear", ridge=0.0)
    np.testing.assert_allclose(m.weights["weight"][:-1], W[:-1], atol=1e-8)
    np.testing.assert_allclose(m.weights["bias"], b, atol=1e-8)
    Xn, Yn, _, _ = _ar_windows(50, 12, 4, seed=7)
    np.testing.assert_allclose(m.predict(Xn[:5]), Yn[:5], atol=1e-8)


def test_moving_average_matrix_is_the_edge_padded_mean():
    x = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    trend = x @ moving_average_matrix(5, 3)
    want = [(1 + 1 + 2) / 3, (1 + 2 + 4) / 3, (2 + 4 + 8) / 3, (4 + 8 + 16) / 3, (8 + 16 + 16) / 3]
    np.testing.assert_allclose(trend, want)
    assert moving_average_matrix(4, 25).sum(axis=0) == pytest.approx(np.ones(4))


def test_dlinear_matches_lstsq_on_trend_and_remainder():
    rng = np.random.default_rng(3)
    X, Y = np.cumsum(rng.normal(size=(80, 7)), axis=1), rng.normal(size=(80, 2))
    m = fit_linear(X, Y, "dlinear", ridge=0.0, kernel=3)
    P = moving_average_matrix(7, 3)
    A = np.hstack([X @ P, X - X @ P, np.ones((80, 1))])
    sol = np.linalg.lstsq(A, Y, rcond=None)[0]
    np.testing.assert_allclose(m.predict(X), A @ sol, atol=1e-8)


@pytest.mark.parametrize("kind", ["nlinear", "dlinear"])
def test_effective_map_and_round_trip(kind):
    X, Y, _, _ = _ar_windows(100, 30, 5)
    m = fit_linear(X, Y, kind, ridge=1.0)
    M, c = m.effective()
    assert M.shape == (30, 5)
    np.testing.assert_allclose(X @ M + c, m.predict(X), atol=1e-9)
    d = m.to_dict()
    assert all(isinstance(v, np.ndarray) for v in d["weights"].values())
    again = LinearMap.from_dict(d)
    np.testing.assert_array_equal(again.predict(X), m.predict(X))
    assert (again.window, again.horizon, again.ridge) == (30, 5, 1.0)


def test_choose_ridge_keeps_the_best_validation_penalty():
    rng = np.random.default_rng(4)
    X, Y, _, _ = _ar_windows(60, 40, 3)
    Y = Y + rng.normal(scale=5.0, size=Y.shape)  # noisy and few windows: some ridge helps
    Xv, Yv, _, _ = _ar_windows(200, 40, 3, seed=8)
    grid = (0.0, 1.0, 100.0, 1e4)
    m = choose_ridge(X, Y, Xv, Yv, grid=grid, relative=False)
    by_hand = {r: np.mean((fit_linear(X, Y, ridge=r).predict(Xv) - Yv) ** 2) for r in grid}
    assert m.ridge == min(by_hand, key=by_hand.get)
    assert m.val_mse == pytest.approx(min(by_hand.values()))


def test_bad_input_is_one_error():
    with pytest.raises(LstmkitError, match="linear kind"):
        fit_linear(np.zeros((3, 2)), np.zeros((3, 1)), "cubic")
    with pytest.raises(LstmkitError, match="NaN"):
        fit_linear(np.array([[np.nan, 1.0], [1.0, 2.0]]), np.zeros((2, 1)))
    with pytest.raises(LstmkitError, match="match X"):
        fit_linear(np.zeros((3, 2)), np.zeros((4, 1)))
    m = fit_linear(np.random.default_rng(0).normal(size=(5, 3)), np.zeros((5, 1)))
    with pytest.raises(LstmkitError, match="reads windows of 3"):
        m.predict(np.zeros((1, 4)))
    with pytest.raises(LstmkitError, match="weights"):
        LinearMap.from_dict({"kind": "nlinear", "ridge": 0, "weights": {"weight": np.zeros(3)}})


@pytest.mark.parametrize("kind", ["nlinear", "dlinear"])
def test_moments_add_up_series_by_series(kind):
    # the moments of two sets added equal those of both at once, and their MSE formula
    # equals the MSE of the predictions
    X, Y, _, _ = _ar_windows(90, 30, 4)
    Y = Y + 50.0  # far from zero: the pairwise update must not lose the spread
    both = Moments.of(X, Y, kind)
    parts = Moments.of(X[:25], Y[:25], kind) + Moments.of(X[25:], Y[25:], kind)
    for key in ("mf", "mt", "ff", "ft"):
        np.testing.assert_allclose(getattr(parts, key), getattr(both, key), rtol=1e-9, atol=1e-9)
    assert parts.tt == pytest.approx(both.tt)
    m = fit_moments(parts, kind, 30, ridge=2.0)
    np.testing.assert_allclose(m.predict(X), fit_linear(X, Y, kind, ridge=2.0).predict(X))
    W = m.weights["weight"] if kind == "nlinear" else np.vstack(
        [m.weights["trend_weight"], m.weights["remainder_weight"]]
    )  # fmt: skip
    direct = np.mean((m.predict(X) - Y) ** 2)
    assert both.mse(W, m.weights["bias"]) == pytest.approx(direct, rel=1e-9)
