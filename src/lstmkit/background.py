"""`in_background`: one function run in a daemon thread, its outcome as a future.

lstmkit runs work beside work where the two mostly wait outside Python's lock (numpy,
pyarrow, torch): `lstmkit forecast` reads its table while torch and Lightning import,
and `Forecaster.fit` fits its baselines while the networks train on one thread
(`lstmkit.training.threads`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")


def in_background(name: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
    """``fn(*args, **kwargs)`` run in a daemon thread called ``name`` (one an exit does
    not wait for: a caller that fails before it needs the result ends at once); its
    result, or the exception it raised, come from the returned future."""
    done: Future[T] = Future()

    def work() -> None:
        try:
            done.set_result(fn(*args, **kwargs))
        except BaseException as err:  # handed to the caller, as if raised there
            done.set_exception(err)

    threading.Thread(target=work, name=name, daemon=True).start()
    return done
