"""The options of a signal's parallel dispatch, checked: each bad value is refused by name.

Used by ``Signal(...)`` and by assignment to the same attributes afterwards,
so a bad value fails where it is given, with the same message either way.
"""

from __future__ import annotations

import math
import numbers
from concurrent.futures import Executor, ProcessPoolExecutor

__all__ = [
    "check_executor",
    "check_flag",
    "check_max_workers",
    "check_name",
    "check_timeout",
]


def check_name(name: object) -> str | None:
    """Return *name* if it is None or a non-blank str; else raise naming it."""
    if name is None:
        return None
    if not isinstance(name, str):
        raise TypeError(f"name must be a str or None, not {name!r}.")
    if not name.strip():
        raise ValueError(f"name must not be blank, not {name!r}.")
    return name


def check_timeout(timeout: object) -> float | None:
    """Return *timeout* as a float (None for no deadline); raise if it is not positive."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real):
        raise TypeError(f"timeout must be a number of seconds or None, not {timeout!r}.")
    seconds = float(timeout)
    if math.isnan(seconds) or seconds <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}.")
    return seconds


def check_max_workers(max_workers: object) -> int | None:
    """Return *max_workers* if it is None or an int of at least 1; else raise."""
    if max_workers is None:
        return None
    if isinstance(max_workers, bool) or not isinstance(max_workers, int):
        raise TypeError(f"max_workers must be an int or None, not {max_workers!r}.")
    if max_workers < 1:
        raise ValueError(f"max_workers must be at least 1, not {max_workers!r}.")
    return max_workers


def check_executor(executor: object) -> Executor | None:
    """Return *executor* if it is None or an in-process ``Executor``; else raise."""
    if executor is None:
        return None
    if not isinstance(executor, Executor):
        raise TypeError(
            f"executor must be a concurrent.futures.Executor or None, not {executor!r}."
        )
    if isinstance(executor, ProcessPoolExecutor):
        raise TypeError(
            f"executor must run receivers in this process (a thread pool), not {executor!r}: "
            "receivers and their arguments are not sent to other processes."
        )
    return executor


def check_flag(name: str, value: object) -> bool:
    """Return *value* if it is a bool; else raise naming the option *name*."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, not {value!r}.")
    return value
