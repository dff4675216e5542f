"""parasignal: Django-compatible signals with parallel dispatch on threads.

``from parasignal import Signal, receiver`` replaces ``from django.dispatch
import Signal, receiver``; :meth:`Signal.send_parallel` and
:meth:`Signal.send_parallel_robust` (and, from async code,
:meth:`Signal.asend_parallel` and :meth:`Signal.asend_parallel_robust`) run
receivers concurrently on threads and return the same ordered answer
:meth:`Signal.send` (or :meth:`Signal.asend`) would. Test helpers live in
:mod:`parasignal.testing`.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from . import _pool
from ._dispatch import deadline
from ._pool import PoolStats
from .dispatcher import Signal, receiver

if TYPE_CHECKING:
    from ._stress import StressReport, stress

__all__ = [
    "PoolStats",
    "Signal",
    "StressReport",
    "__version__",
    "deadline",
    "pool_stats",
    "receiver",
    "shutdown",
    "stress",
]

# The stress tool (and its argparse, json and random) loads on first use only.
_LAZY = frozenset({"StressReport", "stress"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import _stress  # noqa: PLC0415 - lazily, see _LAZY

        return getattr(_stress, name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)


def pool_stats() -> PoolStats:
    """Return the state of the shared pool, now: size, threads, busy threads, queued helpers.

    See :meth:`Signal.pool_stats`; before its first parallel dispatch the
    shared pool has no thread. Thread-safe.
    """
    return _pool.default_pool_stats()


def shutdown(wait: bool = True, *, cancel_futures: bool = False) -> None:
    """Shut down the shared default pool, for good.

    Afterwards ``send_parallel*`` and ``asend_parallel*`` raise
    :class:`RuntimeError` on every signal that uses the shared pool (those
    with their own ``executor`` or ``max_workers`` are unaffected);
    ``send``, ``send_robust``, ``asend`` and ``asend_robust`` keep working.
    Receivers already started or queued finish; with *wait*, this blocks
    until the pool's threads have exited. With *cancel_futures*, receivers
    not yet started never start, as in :meth:`Signal.shutdown`. Idempotent and thread-safe.
    """
    _pool.shutdown_default_pool(wait, cancel_futures=cancel_futures)


try:
    __version__ = version("parasignal")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
