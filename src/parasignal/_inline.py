"""Inline mode: parallel dispatch run on the calling thread, for tests.

While :func:`parasignal.testing.inline` is active, ``send_parallel*`` and
``asend_parallel*`` give the fan-out engine no executor: the calling thread
(for ``asend_parallel*``, the thread ``asend`` would use) is its only runner,
and calls every receiver, one after another, in connection order, through
exactly the code that runs them on workers: the answer, the failure rules
(the exception ``send`` would raise; later receivers never start) and the
structured events are the same. Only the thread differs, which is the point:
a Django ``TestCase``'s transaction, and its database connection, belong to
the test's thread.

The signal's *timeout* is not applied to the sync receivers: one thread
cannot stop a receiver, so they all run to completion.
"""

from __future__ import annotations

import threading

__all__ = ["active", "enter", "leave"]

# Guards depth: how many inline() blocks are open, in any thread. Process-wide
# on purpose: a test's dispatches may come from threads the test started.
_lock = threading.Lock()
#: How many inline() blocks are open; nonzero means inline mode is on. Read
#: without the lock (one int, atomically), on every parallel dispatch.
depth = 0


def active() -> bool:
    """Whether inline mode is on."""
    return depth > 0


def enter() -> None:
    """Turn inline mode on; nestable, it stays on until each call has been undone."""
    global depth  # noqa: PLW0603 - inline mode is process-wide state by design
    with _lock:
        depth += 1


def leave() -> None:
    """Undo one :func:`enter`."""
    global depth  # noqa: PLW0603 - see enter()
    with _lock:
        if depth <= 0:
            msg = "parasignal inline mode was left more often than it was entered."
            raise RuntimeError(msg)
        depth -= 1
