"""Inline mode: parallel dispatch run on the calling thread, for tests.

While :func:`parasignal.testing.inline` is active, ``send_parallel*`` and
``asend_parallel*`` hand their sync receivers to :data:`EXECUTOR` instead of
a pool. It runs the fan-out engine's helper on the calling thread the moment
it is posted, so that one helper calls every receiver, one after another, in
connection order, through exactly the code that runs them on workers: the
answer, the failure rules (the exception ``send`` would raise; later
receivers never start) and the structured events are the same. Only the
thread differs, which is the point: a Django ``TestCase``'s transaction, and
its database connection, belong to the test's thread.

The signal's *timeout* is not applied to the sync receivers: one thread
cannot stop a receiver, so they all run to completion.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import ParamSpec, TypeVar

__all__ = ["EXECUTOR", "active", "enter", "leave"]

_P = ParamSpec("_P")
_T = TypeVar("_T")

# Guards _depth: how many inline() blocks are open, in any thread. Process-wide
# on purpose: a test's dispatches may come from threads the test started.
_lock = threading.Lock()
_depth = 0


def active() -> bool:
    """Whether inline mode is on (read without the lock: one int, atomically)."""
    return _depth > 0


def enter() -> None:
    """Turn inline mode on; nestable, it stays on until each call has been undone."""
    global _depth  # noqa: PLW0603 - inline mode is process-wide state by design
    with _lock:
        _depth += 1


def leave() -> None:
    """Undo one :func:`enter`."""
    global _depth  # noqa: PLW0603 - see enter()
    with _lock:
        if _depth <= 0:
            msg = "parasignal inline mode was left more often than it was entered."
            raise RuntimeError(msg)
        _depth -= 1


class _CallingThreadExecutor(Executor):
    """An executor that runs each task at once, on the thread that submits it.

    The fan-out engine posts one helper per dispatch (two when nested); the
    first calls every receiver before ``submit`` returns, so later helpers
    find nothing left to claim. Exceptions from the task itself (never a
    receiver's: the helper records those) propagate out of ``submit``.
    """

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
        future: Future[_T] = Future()
        future.set_running_or_notify_cancel()
        future.set_result(fn(*args, **kwargs))
        return future


#: The executor parallel dispatch uses while inline mode is on.
EXECUTOR: Executor = _CallingThreadExecutor()
