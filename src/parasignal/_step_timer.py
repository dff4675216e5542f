"""Precise short waits for code running in an event loop.

``asend_parallel`` decides, in growing steps from 100 us, when to give slow
receivers threads of their own (see ``_fanout``). An event loop cannot time
such a step: epoll counts whole milliseconds, so asyncio rounds every
timeout under 1 ms up to 1 ms. The loop therefore hands each step to a
thread of :func:`executor`, which waits on a lock with the operating
system's precision while the loop keeps running.

The executor is process-wide, started lazily, and its threads live across
event loops (``asyncio.run`` per dispatch would otherwise start and join a
default-executor thread each time, about 0.5 ms). Each step lasts at most
10 ms, so its threads never hold up interpreter exit for long
(``ThreadPoolExecutor`` joins them at exit). A forked child starts afresh.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Final

__all__ = ["MAX_THREADS", "executor"]

#: Steps waiting at once beyond this queue behind one another; the loop
#: still wakes as soon as its dispatch is decided, so a late step only
#: delays growth, never the answer.
MAX_THREADS: Final = 8

_lock = threading.Lock()  # guards _executor
_executor: ThreadPoolExecutor | None = None


def executor() -> ThreadPoolExecutor:
    """Return the process-wide step executor, creating it on first use."""
    global _executor  # noqa: PLW0603 - one process-wide executor by design
    current = _executor
    if current is None:
        with _lock:
            if _executor is None:
                _executor = ThreadPoolExecutor(MAX_THREADS, thread_name_prefix="parasignal-step")
            current = _executor
    return current


def _after_fork_in_child() -> None:
    # The parent's threads do not exist here; the lock may have been held.
    global _executor, _lock  # noqa: PLW0603 - renewing process-wide state in a child
    _lock = threading.Lock()
    _executor = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
