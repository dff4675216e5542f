"""The worker threads behind ``send_parallel``: per-signal pools and the shared default.

A :class:`WorkerPool` is deliberately smaller than
:class:`concurrent.futures.ThreadPoolExecutor`: parasignal posts a few
long-lived *helper* tasks per dispatch and tracks completion itself, so it
needs no :class:`~concurrent.futures.Future` per task. Threads start lazily,
up to ``max_workers``.

Life cycle (see the README, "Life cycle"):

* Workers are daemon threads, so a receiver that never returns cannot block
  interpreter exit (the gh-80961 hang of ``ThreadPoolExecutor``). At exit,
  every pool finishes the work already queued and running for up to
  :data:`EXIT_GRACE_SECONDS`, then the process exits regardless.
* In a child process forked after pools were used, the parent's workers do not
  exist: every pool is forgotten, and the shared one and every signal's own
  are created afresh on first use.
* When callers outnumber workers, tasks wait in one FIFO queue; a dispatch
  queues at most one helper per worker, never one task per receiver, and
  withdraws the helpers still queued when it answers.
"""

from __future__ import annotations

import atexit
import collections
import itertools
import math
import os
import queue
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Final, NamedTuple, NoReturn, Protocol

from . import _events

__all__ = [
    "DEFAULT_MAX_WORKERS",
    "EXIT_GRACE_SECONDS",
    "SATURATION_EVENT_INTERVAL_S",
    "SATURATION_WAIT_S",
    "PoolOwner",
    "PoolStats",
    "Task",
    "WorkerPool",
    "add_release_hook",
    "default_pool",
    "default_pool_closed",
    "default_pool_stats",
    "on_worker_thread",
    "reset_default_pool",
    "shutdown_default_pool",
]

#: Size of the shared default pool. Receivers are expected to wait on IO, not
#: burn CPU, so this is far above ``ThreadPoolExecutor``'s ``min(32, cpu + 4)``:
#: 32 receivers each sleeping 0.2 s finish together in about 0.2 s.
DEFAULT_MAX_WORKERS: Final = 64

#: At interpreter exit, how long running and queued receivers may take to
#: finish before the process exits anyway.
EXIT_GRACE_SECONDS: Final = 2.0


#: Work that waited this long for a thread logs ``signal.pool_saturated``.
SATURATION_WAIT_S: Final = 0.1

#: At most one ``signal.pool_saturated`` event per pool in this many seconds.
SATURATION_EVENT_INTERVAL_S: Final = 1.0


class PoolStats(NamedTuple):
    """A pool's state at one moment (see :meth:`WorkerPool.stats`)."""

    #: The most threads it may have (``max_workers``).
    size: int
    #: Threads alive or starting.
    threads: int
    #: Threads running a receiver's helper right now.
    busy: int
    #: Helpers waiting for a free thread.
    queued: int


class Task(Protocol):
    """What a pool runs: ``run()`` on a worker, or ``cancel()`` if it never will.

    ``run()`` may return a callable for the worker to call once it has done
    its own bookkeeping, just before it waits for more work (a wake-up of
    whoever waits for the task: woken last, it finds the GIL free).
    """

    def run(self) -> Callable[[], None] | None: ...

    def cancel(self) -> None: ...


# What wakes a sleeping worker: "look at the queue again".
_WAKE: Final = object()

# Set on the pools' own worker threads.
_worker = threading.local()

# Every pool that may have threads, for interpreter exit and fork.
_pools: weakref.WeakSet[WorkerPool] = weakref.WeakSet()

# Called on a worker thread, without any lock, each time the worker goes idle
# (it finished a task and none is queued) and once as it exits, so that
# integrations can release what the thread holds (the Django one closes the
# thread's database connections). Appended to under _hooks_lock, once per
# integration; read without it (iterating a list others only append to is
# safe). Each hook must not raise.
_hooks_lock = threading.Lock()
_release_hooks: list[Callable[[], None]] = []


def add_release_hook(hook: Callable[[], None]) -> None:
    """Call *hook* on every pool worker thread when it goes idle and when it exits.

    Adding the same hook twice adds it once. *hook* must not raise.
    """
    with _hooks_lock:
        if hook not in _release_hooks:
            _release_hooks.append(hook)


def on_worker_thread() -> bool:
    """Whether the calling thread is a worker of a parasignal pool."""
    return bool(getattr(_worker, "active", False))


def _call_safely(call: Callable[[], None]) -> None:
    try:
        call()
    except BaseException:  # noqa: BLE001 - a task's wake-up must not kill the worker
        _report_task_failure()


def _report_task_failure() -> None:
    # A task's own failure (never a receiver's: the task records those).
    if not isinstance(sys.exc_info()[1], SystemExit):
        print("parasignal: a worker task failed unexpectedly:", file=sys.stderr)  # noqa: T201
        traceback.print_exc(file=sys.stderr)


def _release_worker() -> None:
    for hook in _release_hooks:
        hook()


class _Slot:
    """One worker thread's registration, decided under the pool's lock.

    A thread whose start was interrupted (``KeyboardInterrupt`` inside
    :meth:`threading.Thread.start`) may or may not exist. The starter, still
    holding the lock, marks the slot abandoned and uncounts it; the thread, if
    the system did start it, sees that on its first step (it needs the same
    lock) and exits without taking work. So the thread count never exceeds
    ``max_workers``, and a slot is never held by a thread that does not run.
    """

    __slots__ = ("abandoned",)

    def __init__(self) -> None:
        self.abandoned = False


class WorkerPool:
    """A bounded, lazily grown pool of daemon threads running :class:`Task` objects.

    Tasks wait in one FIFO queue, from which a dispatch can withdraw the
    helpers it no longer needs (:meth:`withdraw`), so a finished dispatch
    leaves nothing queued. A worker drops each task before it waits for the
    next, so an idle worker references nothing of any dispatch.

    Thread safety: every method may be called from any thread, including the
    pool's own workers. :meth:`post` and thread start-up tolerate a
    ``KeyboardInterrupt`` landing inside them: the thread count never exceeds
    ``max_workers`` and no worker is left asleep with work queued.
    """

    def __init__(self, max_workers: int, name_prefix: str) -> None:
        self.max_workers = max_workers
        self.name_prefix = name_prefix
        self._names = itertools.count()
        # Guards _tasks, _posted_at, _threads, _sleeping, _waking, _busy,
        # _last_saturated and _shutdown. Held only
        # for bookkeeping: never while a task runs, and no other lock is taken
        # while it is held (posting a wake-up token is a lock-free C call).
        self._lock = threading.Lock()
        self._tasks: collections.deque[Task] = collections.deque()
        # When each queued task was posted (time.monotonic()), in step with
        # _tasks: how long work waits for a thread (see note_saturated).
        self._posted_at: collections.deque[float] = collections.deque()
        self._busy = 0  # workers running a task
        self._last_saturated = -math.inf  # when signal.pool_saturated was last logged
        self._threads: set[threading.Thread] = set()
        # Workers about to block, or blocked, on _wakeups with no token sent
        # for them yet. A token sent for nobody (after an interrupted post)
        # only makes a worker look at the queue once more: harmless.
        self._sleeping = 0
        # Workers woken (a token sent, or just started) that have not yet
        # looked at the queue. While they outnumber the queued tasks, a new
        # task needs no wake-up of its own: one of them will take it. (Waking
        # a thread costs the poster a system call, about 4 us here.)
        self._waking = 0
        self._wakeups: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._shutdown = False
        # Set by shutdown(cancel_futures=True), never unset; read without the
        # lock by dispatches, which then start no more receivers.
        self.cancelling = False
        _pools.add(self)

    def post(self, task: Task) -> None:
        """Queue *task* to run on a worker thread, starting one if none is free.

        Raises :class:`RuntimeError` once the pool has been shut down, or if
        the system refuses a new thread while none is free; *task* is then
        not queued.
        """
        wake = False
        try:
            with self._lock:
                if self._shutdown:
                    self._refuse()
                if self._waking > len(self._tasks):
                    pass  # a worker on its way will take it
                elif self._sleeping:
                    self._sleeping -= 1
                    self._waking += 1
                    wake = True
                elif len(self._threads) < self.max_workers:
                    # Before queueing: if the system refuses a thread, nothing
                    # is left queued. The new thread needs this lock for its
                    # first step, so it finds the task queued below.
                    self._start_worker_locked()
                    self._waking += 1
                self._tasks.append(task)
                self._posted_at.append(time.monotonic())
            if wake:
                self._wakeups.put(_WAKE)
                wake = False
        except BaseException:
            if wake:
                # Interrupted between counting a sleeper as woken and waking
                # it: wake one anyway (a spare token is harmless).
                self._wakeups.put(_WAKE)
            raise

    def _refuse(self) -> NoReturn:
        raise RuntimeError(
            f"the worker pool {self.name_prefix!r} has been shut down and accepts no new receivers"
        )

    def withdraw(self, task: Task) -> int:
        """Remove every queued, unstarted occurrence of *task*; return how many.

        Withdrawn occurrences never run and are not cancelled: the caller
        accounts for them itself.
        """
        with self._lock:
            tasks = self._tasks
            # Counted first: a search that fails by raising would cost more
            # than the rest of a quick dispatch's withdrawal.
            count = tasks.count(task)
            if count == len(tasks):
                tasks.clear()
                self._posted_at.clear()
            else:
                for _ in range(count):
                    index = tasks.index(task)
                    del tasks[index]
                    del self._posted_at[index]
            return count

    @property
    def queued(self) -> int:
        """How many tasks wait for a free worker."""
        with self._lock:
            return len(self._tasks)

    def stats(self) -> PoolStats:
        """Return the pool's size, live threads, threads running a task, and tasks queued."""
        with self._lock:
            return PoolStats(self.max_workers, len(self._threads), self._busy, len(self._tasks))

    def note_saturated(self, waited_s: float) -> None:
        """Log ``signal.pool_saturated``: work waited *waited_s* for a thread.

        At most once per :data:`SATURATION_EVENT_INTERVAL_S` per pool, so a
        saturated pool costs a log line a second, not one per dispatch.
        Never raises.
        """
        now = time.monotonic()
        with self._lock:
            if now - self._last_saturated < SATURATION_EVENT_INTERVAL_S:
                return
            self._last_saturated = now
            stats = PoolStats(self.max_workers, len(self._threads), self._busy, len(self._tasks))
        _events.emit_pool_saturated(
            pool=self.name_prefix,
            size=stats.size,
            busy=stats.busy,
            queued=stats.queued,
            waited_ms=waited_s * 1000.0,
        )

    def _start_worker_locked(self) -> None:
        # Caller holds self._lock. Raises RuntimeError if no thread can start.
        slot = _Slot()
        thread = threading.Thread(
            target=self._work,
            args=(slot,),
            name=f"{self.name_prefix}_{next(self._names)}",
            daemon=True,
        )
        try:
            self._threads.add(thread)
            thread.start()
        except BaseException:
            # Refused, or interrupted while starting (see _Slot): the thread,
            # if it exists, has not registered yet, since that needs the lock
            # we hold, and now never will.
            slot.abandoned = True
            self._threads.discard(thread)
            raise

    def _work(self, slot: _Slot) -> None:
        # References held here: `task`, the task being run, and nothing once
        # it has returned. A task references its dispatch only until that
        # dispatch answers (see _fanout), so a worker that outlives a
        # dispatch holds nothing of it.
        me = threading.current_thread()
        with self._lock:
            if slot.abandoned:
                return
        _worker.active = True
        task: Task | None = None
        # What the last task asked to be called just before this worker
        # waits (see Task): None once called.
        after: Callable[[], None] | None = None
        worked = False  # ran a task since it last went idle
        woken = True  # counted in _waking (a new worker is, too)
        ran = False  # counted in _busy
        try:
            while True:
                task, waited, leave = self._take(woken=woken, ran=ran)
                woken = ran = False
                if after is not None:
                    _call_safely(after)
                    after = None
                if leave:
                    return
                if task is None:
                    self._idle(worked)
                    worked = False
                    woken = True
                    continue
                ran = True
                if waited > SATURATION_WAIT_S:
                    self.note_saturated(waited)
                try:
                    after = task.run()
                except BaseException:  # noqa: BLE001 - a task must not kill the worker
                    _report_task_failure()
                # Dropped before looking for the next task, so a worker that
                # then sleeps holds nothing of the dispatch it ran (the wake-up
                # it asked for is called before it sleeps).
                task = None
                worked = True
        finally:
            with self._lock:
                self._threads.discard(me)
            if _release_hooks:
                _release_worker()  # exiting

    def _take(self, *, woken: bool, ran: bool) -> tuple[Task | None, float, bool]:
        """Account for this worker's last step and take the next task, under the lock.

        Return ``(task, seconds it waited, leave)``: a task to run; or None
        and, unless the pool is shut down with nothing queued (``leave``),
        the worker counted as sleeping.
        """
        with self._lock:
            if woken:
                self._waking -= 1
            if ran:
                self._busy -= 1
            if self._tasks:
                self._busy += 1
                waited = time.monotonic() - self._posted_at.popleft()
                return self._tasks.popleft(), waited, False
            if self._shutdown:
                return None, 0.0, True
            self._sleeping += 1
            return None, 0.0, False

    def _idle(self, worked: bool) -> None:
        # Nothing is queued for this worker: release what the thread holds
        # (if it ran anything since it last went idle), then sleep until woken.
        if worked and _release_hooks:
            _release_worker()
        self._wakeups.get()

    @property
    def thread_count(self) -> int:
        """The number of worker threads currently alive or starting."""
        with self._lock:
            return len(self._threads)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting tasks and let the workers exit once the queue drains.

        With *cancel_futures*, receivers that have not started never start:
        queued helpers get ``cancel()``, and dispatches in flight see
        :attr:`cancelling` before they start another receiver. With *wait*,
        block until every worker has exited, except on a parasignal worker
        thread (from a receiver), which never waits: two receivers shutting
        down each other's pools would wait for each other forever. Safe to
        call several times and from several threads.
        """
        with self._lock:
            self._shutdown = True
            dropped: list[Task] = []
            if cancel_futures:
                self.cancelling = True
                dropped = list(self._tasks)
                self._tasks.clear()
                self._posted_at.clear()
            sleeping, self._sleeping = self._sleeping, 0
            self._waking += sleeping
        # Outside the lock: cancel() takes the dispatch's own lock.
        for task in dropped:
            task.cancel()
        del dropped
        # Every sleeping worker wakes, finds the queue empty (or drains it)
        # and, seeing the shutdown, exits.
        for _ in range(sleeping):
            self._wakeups.put(_WAKE)
        # A parasignal worker never waits for workers: two receivers shutting
        # down each other's pools (or the same one) would wait on each other.
        if wait and not getattr(_worker, "active", False):
            self.join()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the workers of a shut-down pool to exit; False if *timeout* passed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        me = threading.current_thread()
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            if thread is me or thread.ident is None:  # never started: nothing to join
                continue
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                return False
        return True

    def _forget_after_fork(self) -> None:
        # In a forked child: the parent's workers do not exist here, and the
        # lock may have been held by one of them at the fork.
        self._lock = threading.Lock()
        self._threads = set()
        self._sleeping = 0
        self._waking = 0
        self._tasks = collections.deque()
        self._posted_at = collections.deque()
        self._busy = 0
        self._wakeups = queue.SimpleQueue()
        self._shutdown = True


_default_lock = threading.Lock()  # guards _default and _default_closed
_default: WorkerPool | None = None
# Set by parasignal.shutdown(): the shared pool is gone for good.
_default_closed = False


def default_pool() -> WorkerPool:
    """Return the process-wide shared pool, creating it on first use.

    Raises :class:`RuntimeError` after :func:`shutdown_default_pool`.
    """
    global _default  # noqa: PLW0603 - the one shared pool is process-wide state by design
    pool = _default
    if pool is not None:
        return pool
    with _default_lock:
        if _default_closed:
            raise RuntimeError(
                "the shared parasignal pool has been shut down (parasignal.shutdown())"
            )
        if _default is None:
            _default = WorkerPool(DEFAULT_MAX_WORKERS, "parasignal")
        return _default


def default_pool_stats() -> PoolStats:
    """Return the shared pool's stats (all threads idle, none started, before it exists)."""
    pool = _default
    return PoolStats(DEFAULT_MAX_WORKERS, 0, 0, 0) if pool is None else pool.stats()


def default_pool_closed() -> bool:
    """Whether :func:`shutdown_default_pool` has closed the shared pool for good."""
    return _default_closed


def shutdown_default_pool(wait: bool = True, *, cancel_futures: bool = False) -> None:
    """Shut the shared pool down for good (``parasignal.shutdown``)."""
    global _default, _default_closed  # noqa: PLW0603 - see default_pool
    with _default_lock:
        pool, _default = _default, None
        _default_closed = True
    if pool is not None:
        pool.shutdown(wait, cancel_futures=cancel_futures)


def reset_default_pool(wait: bool = True) -> None:
    """Shut the shared pool down and let the next dispatch start a fresh one.

    For tests: after it, the process is as if no parallel dispatch had run.
    """
    global _default, _default_closed  # noqa: PLW0603 - see default_pool
    with _default_lock:
        pool, _default = _default, None
        _default_closed = False
    if pool is not None:
        pool.shutdown(wait)


@atexit.register
def _finish_at_exit() -> None:
    # Registered at import, so it runs after the atexit handlers the
    # application registers later (atexit is last-in, first-out), which may
    # still dispatch. Non-daemon threads have been joined by now.
    deadline = time.monotonic() + EXIT_GRACE_SECONDS
    pools = list(_pools)
    for pool in pools:
        pool.shutdown(wait=False)
    for pool in pools:
        if not pool.join(max(0.0, deadline - time.monotonic())):
            return  # out of grace: daemon workers end with the process


class PoolOwner:
    """Where one signal's parallel dispatch runs, and its shutdown.

    The user's *executor* if given (never shut down here); else, with
    *max_workers*, a pool of the signal's own, created on first use and
    shut down with the signal (or when the signal is garbage collected);
    else the shared default pool. Both settings may be changed between
    dispatches; a change of *max_workers* applies to a pool not yet created.
    """

    __slots__ = ("__weakref__", "_lock", "_pool", "closed", "executor", "max_workers")

    def __init__(self, executor: Executor | None, max_workers: int | None) -> None:
        self.executor = executor
        self.max_workers = max_workers
        # Guards _pool and _closed: creating the own pool, and shutting it down.
        self._lock = threading.Lock()
        self._pool: WorkerPool | None = None
        # Whether shutdown() was called: set under _lock, never unset. Read
        # without it on the dispatch path, where a stale False only lets a
        # dispatch reach the lock below, which then refuses it.
        self.closed = False
        _owners.add(self)

    @property
    def own_pool(self) -> WorkerPool | None:
        """The signal's own pool, if it has been created (for tests and diagnostics)."""
        return self._pool

    def ready(self) -> Executor | WorkerPool | None:
        """Return where the next dispatch runs if nothing needs checking or creating, else None.

        The dispatch path's shortcut: None sends the caller to
        :meth:`executor_for`, which checks, creates or refuses.
        """
        if self.closed:
            return None
        if self.executor is not None:
            return self.executor
        if self.max_workers is None:
            return _default
        return self._pool

    def executor_for(self, name: str) -> Executor | WorkerPool:
        """Return where the next dispatch runs; its own pool is named *name*.

        Raises :class:`RuntimeError` (a clause, to be worded by the caller)
        once shut down, or when the shared pool is.
        """
        self._check_open()
        if self.executor is not None:
            return self.executor
        if self.max_workers is None:
            return default_pool()
        pool = self._pool
        if pool is None:
            with self._lock:
                pool = self._pool
                if pool is None:
                    self._check_open()  # shut down while we waited for the lock
                    pool = self._pool = WorkerPool(self.max_workers, name)
                    # The pool's threads reference neither the owner nor the
                    # signal, so a signal that is garbage-collected (and its
                    # owner with it) can release them.
                    weakref.finalize(self, pool.shutdown, wait=False)
        return pool

    def stats(self) -> PoolStats | None:
        """Return the stats of the pool dispatch runs on; None for a user's executor."""
        if self.executor is not None:
            return None
        if self.max_workers is None:
            return default_pool_stats()
        pool = self._pool
        return PoolStats(self.max_workers, 0, 0, 0) if pool is None else pool.stats()

    def _check_open(self) -> None:
        if self.closed:
            msg = "the signal has been shut down"
            raise RuntimeError(msg)

    def shutdown(self, wait: bool, *, cancel_futures: bool) -> None:
        """Refuse every later dispatch and shut the own pool down (see Signal.shutdown)."""
        with self._lock:
            self.closed = True
            pool = self._pool
        if pool is not None:
            pool.shutdown(wait, cancel_futures=cancel_futures)

    def _forget_after_fork(self) -> None:
        self._lock = threading.Lock()
        self._pool = None


# Every pool owner, so that a forked child can renew their locks and pools.
_owners: weakref.WeakSet[PoolOwner] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    global _default, _default_lock  # noqa: PLW0603 - renewing process-wide state in a child
    _default_lock = threading.Lock()
    _default = None
    for pool in list(_pools):
        pool._forget_after_fork()
    _pools.clear()
    for owner in list(_owners):
        owner._forget_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
