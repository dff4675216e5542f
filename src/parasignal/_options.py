"""The options of a signal's parallel dispatch, checked: each bad value is refused by name.

:class:`Options` is the part of :class:`~parasignal.Signal` that holds them
(``name``, ``executor``, ``max_workers``, ``timeout``, ``caller_runs``): set
by ``Signal(...)`` and by assignment to the same attributes afterwards,
through the same checks, so a bad value fails where it is given, with the
same message either way.
"""

from __future__ import annotations

import math
import numbers
from concurrent.futures import Executor
from typing import TYPE_CHECKING, NoReturn

from . import _inline, _remote
from ._pool import PoolOwner

if TYPE_CHECKING:
    from ._pool import PoolStats, WorkerPool

__all__ = [
    "Options",
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
    """Return *executor* if it is None or an ``Executor``; else raise naming it.

    A ``distributed.Client`` stands for its ``get_executor()``, which is
    returned. An executor whose tasks run in other processes (a
    ``ProcessPoolExecutor``, dask's) is recorded as such, so that dispatch
    sends receivers there (see ``_remote``).
    """
    if executor is None:
        return None
    executor = _remote.as_executor(executor)
    if not isinstance(executor, Executor):
        raise TypeError(
            f"executor must be a concurrent.futures.Executor (or a distributed.Client) or None, "
            f"not {executor!r}."
        )
    _remote.check_out_of_process(executor)
    return executor


def check_flag(name: str, value: object) -> bool:
    """Return *value* if it is a bool; else raise naming the option *name*."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, not {value!r}.")
    return value


def _exclusive(executor: object, max_workers: object) -> None:
    if executor is not None and max_workers is not None:
        raise ValueError(
            f"Pass either executor or max_workers, not both (got executor={executor!r} "
            f"and max_workers={max_workers!r})."
        )


class Options:
    """A signal's options for parallel dispatch, checked on construction and assignment.

    Where parallel dispatch runs (*executor*, *max_workers*) lives in a
    :class:`~parasignal._pool.PoolOwner`, which also owns the signal's pool;
    :meth:`_executor` picks it for one dispatch.
    """

    _name: str | None
    _timeout: float | None
    _caller_runs: bool
    _pools: PoolOwner

    if TYPE_CHECKING:

        def _display_name(self) -> str: ...  # Signal's

    def _init_options(
        self,
        name: object,
        executor: object,
        max_workers: object,
        timeout: object,
        caller_runs: object,
    ) -> None:
        name = check_name(name)
        executor = check_executor(executor)
        max_workers = check_max_workers(max_workers)
        _exclusive(executor, max_workers)
        self._timeout = check_timeout(timeout)
        self._caller_runs = check_flag("caller_runs", caller_runs)
        self._name = name
        # Where parallel dispatch runs, and its shutdown.
        self._pools = PoolOwner(executor, max_workers)

    @property
    def name(self) -> str | None:
        """How events and messages name the signal (None: found from its definition)."""
        return self._name

    @name.setter
    def name(self, value: str | None) -> None:
        self._name = check_name(value)

    @property
    def timeout(self) -> float | None:
        """Seconds a whole parallel dispatch may take; None waits for every receiver."""
        return self._timeout

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        self._timeout = check_timeout(value)

    @property
    def caller_runs(self) -> bool:
        """Whether, without a timeout, the calling thread runs receivers too."""
        return self._caller_runs

    @caller_runs.setter
    def caller_runs(self, value: bool) -> None:
        self._caller_runs = check_flag("caller_runs", value)

    @property
    def executor(self) -> Executor | None:
        """The user's executor that parallel dispatch runs on, if any."""
        return self._pools.executor

    @executor.setter
    def executor(self, value: Executor | None) -> None:
        executor = check_executor(value)
        _exclusive(executor, self._pools.max_workers)
        self._pools.executor = executor

    @property
    def max_workers(self) -> int | None:
        """The size of the signal's own pool, if it has one."""
        return self._pools.max_workers

    @max_workers.setter
    def max_workers(self, value: int | None) -> None:
        max_workers = check_max_workers(value)
        _exclusive(self._pools.executor, max_workers)
        self._pools.max_workers = max_workers

    def _executor(self, method: str) -> Executor | WorkerPool | None:
        """Return where a parallel dispatch runs, or raise RuntimeError naming the signal.

        None in inline mode (``parasignal.testing.inline()``): the calling
        thread runs every receiver.
        """
        executor = self._pools.ready()
        if executor is None:
            try:
                executor = self._pools.executor_for(f"parasignal-{self._display_name()}")
            except RuntimeError as exc:
                self._refuse(method, exc)
        if _inline.depth:
            # parasignal.testing.inline(): on this thread, one receiver
            # after another, through the same engine (same answer, same
            # failure rules, same events).
            return None
        return executor

    def _refuse(self, method: str, exc: RuntimeError) -> NoReturn:
        where = f"{self._display_name()}.{method}()"
        if self._pools.closed:
            msg = (
                f"{where} cannot run: the signal has been shut down (Signal.shutdown()). "
                "send(), send_robust(), asend() and asend_robust() still work."
            )
        else:
            msg = f"{where} cannot run: {exc}."
        raise RuntimeError(msg) from exc

    def pool_stats(self) -> PoolStats | None:
        """Return the state of the pool this signal's parallel dispatch runs on, now.

        A :class:`~parasignal.PoolStats`: ``size`` (its ``max_workers``),
        ``threads`` (alive), ``busy`` (running receivers) and ``queued``
        (helpers waiting for a free thread: receivers that cannot start
        yet). The signal's own pool (*max_workers*) or the shared one; None
        with a user's *executor*, whose queue parasignal cannot see.
        Thread-safe; a snapshot, stale as soon as it is returned.
        """
        return self._pools.stats()
