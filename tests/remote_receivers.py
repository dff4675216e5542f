"""Receivers for tests/test_remote.py, importable by worker processes.

A process pool (with :mod:`pickle`) finds receivers by module and name, so
they live at module level here; the workers import this module from the
``tests`` directory, which pytest puts on ``sys.path`` and worker processes
inherit. Receivers that must wait are released through files rather than
sleeps, so that a test ends as soon as it has what it needs and no worker is
left busy for the next one.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from parasignal import Signal

#: A signal bound to a module attribute: workers find their own copy of it.
module_signal = Signal(name="remote_receivers.module_signal")

WAIT_LIMIT = 20.0  # seconds a released receiver waits at most for its file


def double(sender: object, x: int = 0, **kwargs: Any) -> int:
    return x * 2


def pid(**kwargs: Any) -> int:
    return os.getpid()


def describe_call(sender: object, **kwargs: Any) -> tuple[object, list[str]]:
    """Return the sender and the names of the keyword arguments the receiver got."""
    return sender, sorted(kwargs)


def signal_seen(signal: object, **kwargs: Any) -> tuple[str, bool]:
    """Return ``repr(signal)`` and whether it is this module's signal, in the worker."""
    return repr(signal), signal is module_signal


def fail_value(**kwargs: Any) -> None:
    msg = "value failed"
    raise ValueError(msg)


def fail_key(**kwargs: Any) -> None:
    raise KeyError("key failed")


def fail_after(*, delay: float = 0.3, **kwargs: Any) -> None:
    """Raise ValueError after *delay* seconds."""
    time.sleep(delay)
    msg = "failed late"
    raise ValueError(msg)


def wait_for_release(*, release: str, **kwargs: Any) -> str:
    """Return once the file *release* exists (or after WAIT_LIMIT seconds)."""
    path = Path(release)
    deadline = time.monotonic() + WAIT_LIMIT
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return "released"


def mark(*, marks: str, delay: float = 0.2, **kwargs: Any) -> str:
    """Wait *delay* seconds, then create a file in the directory *marks*; return its name."""
    time.sleep(delay)
    name = f"{os.getpid()}-{time.monotonic_ns()}"
    (Path(marks) / name).touch()
    return name


def unpicklable_response(**kwargs: Any) -> threading.Lock:
    return threading.Lock()


class LockedError(Exception):
    """An exception that holds a lock, so it cannot be pickled."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()


def raise_unpicklable(**kwargs: Any) -> None:
    msg = "holding a lock"
    raise LockedError(msg)


def exit_process(**kwargs: Any) -> None:
    """End the worker process at once, as a crash would."""
    os._exit(3)


class Unpicklable:
    """A callable receiver holding a lock: no pickler can send it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def __call__(self, **kwargs: Any) -> str:
        return "never called"


def system_exit(**kwargs: Any) -> None:
    """Raise an exception that is not an Exception."""
    raise SystemExit(7)


def where_am_i(**kwargs: Any) -> str:
    """Return this dask worker's address."""
    import distributed  # noqa: PLC0415 - only ever called on a dask worker

    return str(distributed.get_worker().address)


def mark_when_released(*, release: str, marks: str, **kwargs: Any) -> str:
    """Wait for the file *release*, then leave a mark: a receiver that ran to its end."""
    wait_for_release(release=release)
    return mark(marks=marks, delay=0.0)
