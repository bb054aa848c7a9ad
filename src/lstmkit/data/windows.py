"""Sliding windows over a series and strictly time-ordered splits.

Windows never cross series boundaries and splits never shuffle across time:
validation and test targets always come after every training target.
"""

from __future__ import annotations

import numpy as np


def make_windows(
    values: np.ndarray, window: int, horizon: int, stride: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Cut ``values`` (time, features) into inputs and targets.

    Column 0 is the target. Window ``i`` covers inputs ``values[s : s + window]``
    and targets ``values[s + window : s + window + horizon, 0]`` with ``s = i * stride``.

    Returns:
        inputs of shape (n, window, features) and targets of shape (n, horizon),
        ``n = (time - window - horizon) // stride + 1`` (0 if the series is too short).
    """
    values = np.asarray(values, dtype=np.float32)
    if values.ndim == 1:
        values = values[:, None]
    total = window + horizon
    if len(values) < total:
        return (
            np.zeros((0, window, values.shape[1]), np.float32),
            np.zeros((0, horizon), np.float32),
        )
    view = np.lib.stride_tricks.sliding_window_view(values, total, axis=0)[::stride]
    # view: (n, features, total)
    inputs = view[:, :, :window].transpose(0, 2, 1).copy()  # writable, contiguous
    targets = view[:, 0, window:].copy()
    return inputs, targets


def window_target_ends(length: int, window: int, horizon: int, stride: int = 1) -> np.ndarray:
    """Index (exclusive) just past the last target step of each window of `make_windows`."""
    n = max((length - window - horizon) // stride + 1, 0)
    return np.arange(n) * stride + window + horizon


def time_split(length: int, val_size: int, test_size: int = 0) -> tuple[slice, slice, slice]:
    """Split ``range(length)`` into consecutive train, validation and test slices.

    The test part is the last ``test_size`` steps, validation the ``val_size``
    steps before it, train everything earlier; no step is shared or shuffled.
    """
    if val_size < 0 or test_size < 0 or val_size + test_size >= length:
        raise ValueError(
            f"cannot split {length} steps into validation {val_size} and test {test_size} "
            "with a non-empty training part"
        )
    train_end = length - val_size - test_size
    val_end = length - test_size
    return slice(0, train_end), slice(train_end, val_end), slice(val_end, length)
