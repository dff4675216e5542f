"""The worker threads behind ``send_parallel``: per-signal pools and the shared default.

A :class:`WorkerPool` is deliberately smaller than
:class:`concurrent.futures.ThreadPoolExecutor`: parasignal posts a handful of
long-lived *helper* tasks per dispatch and tracks completion itself, so it
needs no :class:`~concurrent.futures.Future` per task. Posting costs a lock
round-trip and a queue put; threads start lazily, up to ``max_workers``, and
are daemon threads so that a receiver that never returns cannot block
interpreter exit (the gh-80961 hang of ``ThreadPoolExecutor``).
"""

from __future__ import annotations

import itertools
import queue
import sys
import threading
import traceback
from typing import Protocol

__all__ = ["DEFAULT_MAX_WORKERS", "Task", "WorkerPool", "default_pool", "shutdown_default_pool"]

#: Size of the shared default pool. Receivers are expected to wait on IO, not
#: burn CPU, so this is far above ``ThreadPoolExecutor``'s ``min(32, cpu + 4)``:
#: 32 receivers each sleeping 0.2 s finish together in about 0.2 s.
DEFAULT_MAX_WORKERS = 64


class Task(Protocol):
    """What a pool runs: ``run()`` on a worker, or ``cancel()`` if it never will."""

    def run(self) -> None: ...

    def cancel(self) -> None: ...


class WorkerPool:
    """A bounded, lazily grown pool of daemon threads running :class:`Task` objects.

    Thread safety: every method may be called from any thread, including the
    pool's own workers.
    """

    def __init__(self, max_workers: int, name_prefix: str) -> None:
        self.max_workers = max_workers
        self.name_prefix = name_prefix
        self._queue: queue.SimpleQueue[Task | None] = queue.SimpleQueue()
        self._names = itertools.count()
        # Guards _threads, _idle, _backlog and _shutdown. Held only for
        # bookkeeping: never while a task runs.
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()
        # Workers that have promised to take the next queued task without a new
        # thread being started for it.
        self._idle = 0
        # Tasks queued while every worker was busy and no thread could start.
        self._backlog = 0
        self._shutdown = False

    def post(self, task: Task) -> None:
        """Queue *task* to run on a worker thread.

        Raises :class:`RuntimeError` once the pool has been shut down.
        """
        with self._lock:
            if self._shutdown:
                raise RuntimeError(
                    f"The parasignal worker pool {self.name_prefix!r} has been shut down; "
                    "it cannot run new receivers."
                )
            self._queue.put(task)
            if self._idle:
                self._idle -= 1
            elif len(self._threads) < self.max_workers:
                self._start_worker_locked()
            else:
                self._backlog += 1

    def _start_worker_locked(self) -> None:
        # Caller holds self._lock.
        thread = threading.Thread(
            target=self._work,
            name=f"{self.name_prefix}_{next(self._names)}",
            daemon=True,
        )
        self._threads.add(thread)
        thread.start()

    def _work(self) -> None:
        get = self._queue.get
        while True:
            task = get()
            if task is None:
                break
            try:
                task.run()
            except Exception:  # noqa: BLE001 - a task bug must not kill the worker
                print("parasignal: a worker task failed unexpectedly:", file=sys.stderr)  # noqa: T201
                traceback.print_exc(file=sys.stderr)
            del task
            with self._lock:
                if self._backlog:
                    self._backlog -= 1
                else:
                    self._idle += 1
        with self._lock:
            self._threads.discard(threading.current_thread())

    @property
    def thread_count(self) -> int:
        """The number of worker threads currently alive or starting."""
        with self._lock:
            return len(self._threads)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting tasks and let the workers exit once the queue drains.

        With *cancel_futures*, tasks still queued are not run: each gets
        ``cancel()`` instead. With *wait*, block until every worker has exited
        (a worker calling this on its own pool never waits for itself). It is
        safe to call this several times and from several threads.
        """
        with self._lock:
            self._shutdown = True
            threads = list(self._threads)
        if cancel_futures:
            while True:
                try:
                    task = self._queue.get_nowait()
                except queue.Empty:
                    break
                if task is not None:
                    task.cancel()
        # One sentinel per worker that may still be reading the queue: each
        # worker consumes exactly one and exits.
        for _ in threads:
            self._queue.put(None)
        if wait:
            me = threading.current_thread()
            for thread in threads:
                if thread is not me:
                    thread.join()


_default_lock = threading.Lock()  # guards _default
_default: WorkerPool | None = None


def default_pool() -> WorkerPool:
    """Return the process-wide shared pool, creating it on first use."""
    global _default  # noqa: PLW0603 - the one shared pool is process-wide state by design
    pool = _default
    if pool is not None:
        return pool
    with _default_lock:
        if _default is None:
            _default = WorkerPool(DEFAULT_MAX_WORKERS, "parasignal")
        return _default


def shutdown_default_pool(wait: bool = True, *, cancel_futures: bool = False) -> None:
    """Shut down the shared pool; the next ``send_parallel`` starts a fresh one."""
    global _default
    with _default_lock:
        pool, _default = _default, None
    if pool is not None:
        pool.shutdown(wait, cancel_futures=cancel_futures)
