"""Everything awaited: ``asend*``, ``asend_parallel*``, and async receivers anywhere.

:class:`AsyncSending` is the part of ``Signal`` with those four methods; the
functions below do the work, on a :class:`~parasignal._dispatch.Dispatch`:

* :func:`asend`: Django 6.1's ``asend``. The sync receivers one after
  another in one call on one thread (:func:`call_on_one_thread`: asgiref's
  ``sync_to_async(thread_sensitive=True)`` when it is importable), then the
  async receivers concurrently (:func:`gather`).
* :func:`asend_parallel`: the sync receivers on the thread engine
  (``_fanout``), awaited without blocking the loop (:func:`_wait_in_loop`),
  then the async receivers concurrently.
* :func:`run`: an event loop of its own, for the async receivers of
  ``send``, ``send_robust`` and ``send_parallel*``, which are called from
  synchronous code.

Async receivers run as Django 6.1 runs them: after the sync ones, all at once
(as in a ``TaskGroup``) sharing one copy of the caller's context whose
changes are copied back (ticket #36714). On Python 3.10, which has neither
``TaskGroup`` nor ``ExceptionGroup`` nor ``create_task(context=...)``: each
receiver runs in its own copy of the context, whose changes are copied back
in connection order, and when several receivers fail at once the
earliest-connected failure is raised (the others are logged).

asgiref is looked up lazily, on the first call, and the answer is cached:
importing parasignal never imports asgiref (nor Django).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import math
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

from . import _remote
from ._contexts import copy_back, copy_back_all
from ._dispatch import (
    Dispatch,
    Responses,
    Unfinished,
    call_in_order,
    dispatch_deadline,
    signal_among_named,
)
from ._fanout import Batch, finish_batch, in_helper

if TYPE_CHECKING:
    from ._pool import PoolOwner, WorkerPool
    from ._receivers import Receivers

__all__ = [
    "AsyncSending",
    "asend",
    "asend_parallel",
    "asgiref_sync_to_async",
    "call_on_one_thread",
    "gather",
    "run",
]

_SHARED_CONTEXT: Final = sys.version_info >= (3, 11)

_T = TypeVar("_T")


# -- asend: Django's semantics ------------------------------------------------------


async def asend(
    dispatch: Dispatch,
    sync: Sequence[Callable[..., Any]],
    async_: Sequence[Callable[..., Any]],
) -> Responses:
    """Django 6.1's ``asend``/``asend_robust`` (see ``Signal.asend``)."""
    responses: Responses = []
    if sync:
        # One call on one thread, as Django's sync_to_async(sync_send). The
        # partial holds the receivers (strongly) until it returns.
        responses = await call_on_one_thread(functools.partial(call_in_order, dispatch, sync))
    if async_:
        responses += await gather(dispatch, async_)
    return responses


@functools.cache
def asgiref_sync_to_async() -> Callable[..., Any] | None:
    """Return ``asgiref.sync.sync_to_async``, or None when asgiref is not importable.

    Looked up once, on first use, then cached (``cache_clear()`` forgets it).
    """
    try:
        from asgiref.sync import sync_to_async  # noqa: PLC0415 - optional, and lazy by design
    except ImportError:
        return None
    return sync_to_async


class _Box(Generic[_T]):
    """A callable, then its result or exception, for code that may hold on to it."""

    __slots__ = ("_error", "_func", "_result")

    def __init__(self, func: Callable[[], _T]) -> None:
        self._func: Callable[[], _T] | None = func
        self._result: _T | None = None
        self._error: BaseException | None = None

    def run(self) -> None:
        func = self._func
        if func is None:  # pragma: no cover - run() is called exactly once
            return
        try:
            self._result = func()
        except BaseException as exc:  # noqa: BLE001 - re-raised to the caller by outcome()
            self._error = exc

    def outcome(self) -> _T:
        """Return the result, or raise the exception, that run() recorded."""
        error = self._error
        if error is not None:
            try:
                raise error
            finally:
                del error  # no cycle through this frame
        return self._result  # type: ignore[return-value]

    def clear(self) -> None:
        self._func = self._result = self._error = None


async def call_on_one_thread(func: Callable[[], _T]) -> _T:
    """Await *func()* run on one thread that is not the event loop's, as Django's ``asend`` does.

    *func* runs in a copy of the awaiting task's context; the variables it
    changed are set in the awaiting task's context afterwards, whether it
    returns or raises. With asgiref, this is
    ``sync_to_async(func, thread_sensitive=True)()``, with all its rules: the
    thread Django's thread-sensitive calls use (under ASGI, the request's
    own; inside ``async_to_sync``, the thread that called it), and a
    cancelled await does not stop *func*, which finishes on its thread.
    Without it, *func* runs on the loop's default executor, and a cancelled
    await likewise leaves it to finish there.
    """
    sync_to_async = asgiref_sync_to_async()
    if sync_to_async is not None:
        # asgiref's wrapper holds what it calls and what it returns, and on
        # some versions a reference cycle keeps the wrapper's frame alive
        # until the garbage collector runs (asgiref 3.12 on Python 3.10: a
        # caught AttributeError's traceback in asgiref.local). So all that
        # goes through it is a box, emptied before this returns: the
        # callable in, its result or exception out. Then asgiref holds
        # nothing of the caller's (receivers, arguments, responses).
        box = _Box(func)
        try:
            await sync_to_async(box.run, thread_sensitive=True)()
            return box.outcome()
        finally:
            box.clear()
    context = contextvars.copy_context()
    loop = asyncio.get_running_loop()
    try:
        return await loop.run_in_executor(None, context.run, func)
    finally:
        # What asgiref's _restore_context does: the caller sees the changes.
        copy_back_all(context)


# -- asend_parallel: the thread engine, awaited ----------------------------------------


async def asend_parallel(
    dispatch: Dispatch,
    sync: Sequence[Callable[..., Any]],
    async_: Sequence[Callable[..., Any]],
    executor: Executor | WorkerPool | None,
) -> Responses:
    """``asend_parallel``/``asend_parallel_robust`` (see ``Signal.asend_parallel``).

    *executor* runs the sync receivers: on the thread engine, or in other
    processes when it is an out-of-process executor (``_remote``). None means inline mode
    (``parasignal.testing.inline()``): they run through the same engine on
    the thread ``asend`` would use, so a test's transaction is visible to
    them.
    """
    responses: Responses = []
    if sync:
        if type(executor) in _remote.OUT_OF_PROCESS_TYPES:
            # Receivers in other processes, awaited without blocking the loop.
            responses = await _remote.await_receivers(dispatch, sync, executor)
        elif executor is None:
            responses = await call_on_one_thread(
                functools.partial(_run_inline_keeping_contexts, dispatch, sync)
            )
        else:
            responses = await run_batch_async(dispatch, sync, executor)
    if async_:
        responses += await gather(dispatch, async_)
    return responses


def _run_inline_keeping_contexts(
    dispatch: Dispatch, receivers: Sequence[Callable[..., Any]]
) -> Responses:
    """Run *receivers* inline and return ``send_parallel``'s answer (or raise its exception).

    As ``asend_parallel`` does, the contextvars changes each receiver made
    are then set in the current context, in connection order, whether the
    call returns or raises.
    """
    batch = Batch(dispatch, receivers, None, caller_runs=True, keep_contexts=True)
    del dispatch
    try:
        batch.start()
    except BaseException:
        batch.abandon()
        raise
    # Every receiver that will ever run has run, on this thread, inside
    # start(). Contexts flow back in finish_batch().
    return finish_batch(batch, finished=True)


async def run_batch_async(
    dispatch: Dispatch, receivers: Sequence[Callable[..., Any]], executor: Executor | WorkerPool
) -> Responses:
    """``_fanout.run_batch``, awaited from an event loop without blocking it.

    The loop never runs a receiver: helpers do (the wake chain grows them
    as in ``run_batch``), and the loop learns of the answer through the
    batch's ``on_done``, or stops waiting at the dispatch's deadline. The
    contextvars changes each finished receiver made flow back into the
    awaiting task's context, in connection order, whether the call returns
    or raises (as Django's ``sync_to_async`` does). If the awaiting task is
    cancelled, nothing more starts and the cancellation propagates. Called
    on a thread that is running receivers as a helper (an event loop run
    inside a receiver), this thread runs the receivers itself, as
    ``run_batch`` does there: its pool may have no other free thread.
    """
    loop = asyncio.get_running_loop()
    decided = loop.create_future()

    def on_done() -> None:
        # From a worker thread (or this one): hand the news to the loop.
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(_resolve, decided)

    # The loop cannot time short steps (epoll counts whole milliseconds), so
    # the wake chain runs from the start (see _fanout).
    batch = Batch(
        dispatch, receivers, executor, caller_runs=in_helper(), chaining=True, keep_contexts=True
    )
    deadline = dispatch.deadline
    del dispatch
    batch.on_done = on_done
    try:
        batch.start()  # nested in a helper, this runs receivers here first
        finished = await _wait_in_loop(decided, deadline)
        return finish_batch(batch, finished=finished)
    except BaseException:
        batch.abandon()
        raise


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _wait_in_loop(decided: asyncio.Future[None], deadline: float | None) -> bool:
    """Wait for *decided*; False if *deadline* (``time.monotonic()``) passed first."""
    if deadline is None:
        await decided
        return True
    if decided.done():
        return True
    loop = asyncio.get_running_loop()
    remaining = max(deadline - time.monotonic(), 0.0)
    expired = loop.create_future()
    # An explicit empty context: a cancelled TimerHandle keeps its context
    # in loop._scheduled until its due time.
    timer = loop.call_later(remaining, _resolve, expired, context=contextvars.Context())
    try:
        await asyncio.wait({decided, expired}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        timer.cancel()
    return decided.done()


# -- async receivers ------------------------------------------------------------------


def run(dispatch: Dispatch, receivers: Sequence[Callable[..., Any]]) -> Responses:
    """Await *receivers* concurrently on a new event loop in this thread.

    Contextvars changes the receivers make flow back to the caller. Raises
    :class:`RuntimeError` if this thread is already running an event loop
    (as Django's ``async_to_sync`` does): ``await signal.asend()`` there.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        msg = (
            f"{dispatch.where} cannot run async receivers in a thread that is running an "
            f"event loop: await {dispatch.name}.asend() (or asend_robust()) there instead."
        )
        raise RuntimeError(msg)
    shared = contextvars.copy_context()
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(gather(dispatch, receivers, shared=shared))
    finally:
        try:
            _cancel_leftovers(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()
            copy_back_all(shared)


def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    # A KeyboardInterrupt or SystemExit from a receiver leaves the loop at
    # once, with the other receivers' tasks pending: cancel and finish them
    # before the loop closes, as asyncio.run() does.
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))


async def gather(
    dispatch: Dispatch,
    receivers: Sequence[Callable[..., Any]],
    *,
    shared: contextvars.Context | None = None,
) -> Responses:
    """Await *receivers* concurrently; return ``[(receiver, response)]`` in order.

    All run in *shared* (a copy of the current context if not given), whose
    changes are copied back into the current context when *shared* was not
    given. Not robust: the first failure cancels the others and is raised
    (several at once raise an ``ExceptionGroup``, as ``TaskGroup`` does).
    Robust: an ``Exception`` becomes the receiver's response and is logged.
    At the dispatch's deadline, receivers still running are cancelled: not
    robust, raise :class:`TimeoutError` naming them; robust, each gets a
    ``TimeoutError``.
    """
    restore_here = shared is None
    context = contextvars.copy_context() if shared is None else shared
    runner = _Gathering(dispatch, receivers)
    try:
        return await runner.run(context)
    finally:
        if restore_here:
            copy_back_all(context)


class _Gathering:
    """One concurrent await of a signal's async receivers."""

    def __init__(self, dispatch: Dispatch, receivers: Sequence[Callable[..., Any]]) -> None:
        self.dispatch = dispatch
        self.receivers = receivers
        # Python 3.10: each task's context when it ended, merged back in order.
        self.final_contexts: list[contextvars.Context | None] = [None] * len(receivers)
        # Tasks cancelled because the deadline passed (not by themselves).
        self.timed_out: set[int] = set()

    async def call(self, index: int) -> Any:
        receiver = self.receivers[index]
        dispatch = self.dispatch
        started = time.perf_counter()
        try:
            return await receiver(signal=dispatch.signal, sender=dispatch.sender, **dispatch.named)
        except Exception as exc:
            if not dispatch.robust:
                raise
            self.report(receiver, exc, (time.perf_counter() - started) * 1000.0)
            return exc
        finally:
            if not _SHARED_CONTEXT:
                self.final_contexts[index] = contextvars.copy_context()

    def report(self, receiver: Callable[..., Any], exc: BaseException, duration_ms: float) -> None:
        self.dispatch.report_failure(
            receiver,
            exc,
            duration_ms=duration_ms,
            thread=threading.current_thread().name,
        )

    async def run(self, context: contextvars.Context) -> Responses:
        loop = asyncio.get_running_loop()
        base = context.copy()  # what each task started from, on 3.10
        tasks: list[asyncio.Task[Any]] = []
        for index in range(len(self.receivers)):
            coro = self.call(index)
            if _SHARED_CONTEXT:
                tasks.append(loop.create_task(coro, context=context))  # type: ignore[call-arg,unused-ignore]
            else:
                tasks.append(context.run(loop.create_task, coro))
        try:
            return await self._settle(tasks, context)
        finally:
            # Whatever happened (our caller was cancelled, say), nothing
            # keeps running behind its back.
            pending = [t for t in tasks if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
            if not _SHARED_CONTEXT:
                for final in self.final_contexts:
                    if final is not None:
                        context.run(copy_back, final, base)

    async def _settle(
        self, tasks: list[asyncio.Task[Any]], context: contextvars.Context
    ) -> Responses:
        pending = await _wait_for_tasks(
            tasks, self.dispatch.deadline, first_exception=not self.dispatch.robust
        )
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
        failed = any(t.done() and not t.cancelled() and t.exception() for t in tasks)
        if not failed:
            self.timed_out = {i for i, t in enumerate(tasks) if t in pending and t.cancelled()}
        failures = [
            (index, task.exception())
            for index, task in enumerate(tasks)
            if not task.cancelled() and task.exception() is not None
        ]
        if failures:
            self._raise(failures)
        timed_out: dict[int, Exception] = {}
        if self.timed_out:
            # Every async receiver started (as a task): those still running
            # at the deadline were cancelled.
            unfinished = Unfinished(sorted(self.timed_out), [], "")
            context.run(self.dispatch.report_unfinished, self.receivers, unfinished)
            if not self.dispatch.robust:
                raise self.dispatch.unfinished_error(TimeoutError, self.receivers, unfinished)
            timed_out = self.dispatch.unfinished_responses(TimeoutError, self.receivers, unfinished)
        return [
            (self.receivers[i], timed_out[i] if i in timed_out else self._response(task))
            for i, task in enumerate(tasks)
        ]

    def _response(self, task: asyncio.Task[Any]) -> Any:
        if task.cancelled():
            # The receiver cancelled itself: Django's TaskGroup leaves None.
            return None
        return task.result()

    def _raise(self, failures: list[tuple[int, BaseException | None]]) -> None:
        excs = [exc for _, exc in failures if exc is not None]
        if len(excs) == 1:
            raise excs[0]
        if sys.version_info < (3, 11):  # pragma: no cover - no ExceptionGroup before 3.11
            for index, exc in failures[1:]:
                if exc is not None:
                    self.report(self.receivers[index], exc, math.nan)
            raise excs[0]
        # What asyncio.TaskGroup raises, and so Django.
        raise BaseExceptionGroup("unhandled errors in a TaskGroup", excs)  # noqa: F821 - 3.11+


async def _wait_for_tasks(
    tasks: Sequence[asyncio.Task[Any]], deadline: float | None, *, first_exception: bool
) -> set[asyncio.Task[Any]]:
    """Wait until every task is done (or, with *first_exception*, one raised) or *deadline*.

    Return the tasks not done. Like ``asyncio.wait(tasks, timeout=...)``,
    but nothing it leaves behind holds a context of the caller's:
    ``asyncio.wait``'s own timer carries a copy of the awaiting task's
    context and, once cancelled, stays in the loop's schedule with it until
    its due time (up to the signal's whole timeout). Here the timer and the
    done-callbacks run in an empty context and are removed on the way out.
    """
    loop = asyncio.get_running_loop()
    settled: asyncio.Future[None] = loop.create_future()
    left = len(tasks)

    def on_done(task: asyncio.Task[Any]) -> None:
        nonlocal left
        left -= 1
        if settled.done():
            return
        if left == 0 or (first_exception and not task.cancelled() and task.exception() is not None):
            settled.set_result(None)

    empty = contextvars.Context()
    for task in tasks:
        task.add_done_callback(on_done, context=empty)
    timer = None
    if deadline is not None:
        timer = loop.call_later(
            max(0.0, deadline - time.monotonic()), _resolve, settled, context=empty
        )
    try:
        if tasks:
            await settled
    finally:
        if timer is not None:
            timer.cancel()
        for task in tasks:
            task.remove_done_callback(on_done)
    return {task for task in tasks if not task.done()}


# -- Signal's async methods ---------------------------------------------------------


class AsyncSending:
    """The part of :class:`~parasignal.Signal` that is awaited, and its own-loop runner.

    Each method takes the receivers for the sender from the signal's
    snapshot, builds the dispatch value and hands it to the functions above;
    nothing here is kept after the call returns.
    """

    if TYPE_CHECKING:
        # Signal's (and Options'): declared for the type checker only.
        _muted: int
        _connections: Receivers
        _pools: PoolOwner
        _timeout: float | None

        def _display_name(self) -> str: ...
        def _live_receivers(
            self, sender: object
        ) -> tuple[list[Callable[..., Any]], list[Callable[..., Any]]]: ...
        def _dispatch(  # noqa: PLR0917
            self,
            method: str,
            sender: object,
            named: Mapping[str, Any],
            robust: bool = False,
            timeout: float | None = None,
            deadline: float | None = None,
        ) -> Dispatch: ...
        def _executor(self, method: str) -> Executor | WorkerPool | None: ...

    def _run_async(self, getters: Sequence[Callable[[], Any]], dispatch: Dispatch) -> Responses:
        # The async receivers of a send from sync code: on a loop of their own.
        receivers = [r for get in getters if (r := get()) is not None]
        if not receivers:
            return []
        return run(dispatch, receivers)

    async def asend(self, sender: object, **named: Any) -> list[tuple[Callable[..., Any], Any]]:
        """Send from async code, exactly as Django 6.1's ``asend`` does.

        The sync receivers are called one after another, in connection
        order, in one call on one thread: with asgiref installed (every
        Django install), one ``asgiref.sync.sync_to_async(thread_sensitive=True)``
        call, so they run on the thread Django's own thread-sensitive calls
        use and share its database connection; without asgiref, one thread
        of the running loop's default executor. Never on the event loop's
        thread. They share one copy of the caller's :mod:`contextvars`
        context, so each sees the changes the ones before it made, and the
        changes flow back to the caller, even when one raises. Then the async
        receivers are awaited concurrently on the running loop, sharing
        another copy, whose changes flow back too.

        Return ``[(receiver, response), ...]``: the sync receivers first,
        then the async ones, each group in connection order.

        Failure: a sync receiver's exception propagates at once; later sync
        receivers and every async one are never called. The first async
        receiver to fail cancels the others and is raised (several at once:
        an ``ExceptionGroup``, as ``asyncio.TaskGroup`` raises).

        The signal's *timeout* is not applied (Django's ``asend`` has no
        deadline); use :meth:`asend_parallel` for one. If the awaiting task
        is cancelled, async receivers still running are cancelled; a sync
        receiver already running finishes on its thread, as with
        ``sync_to_async``. Safe to call from any number of tasks and loops.
        """
        return await self._asend(sender, named, robust=False, method="asend")

    async def asend_robust(
        self, sender: object, **named: Any
    ) -> list[tuple[Callable[..., Any], Any]]:
        """Like :meth:`asend`, but failures become responses, as in Django 6.1.

        Every receiver is called. A receiver that raises an ``Exception``
        gets the exception instance as its response and is reported through
        :meth:`_log_robust_failure` (a ``signal.receiver_failed`` event),
        on the thread it ran on. Exceptions that are not ``Exception``
        subclasses propagate. No deadline, as in :meth:`asend`.
        """
        return await self._asend(sender, named, robust=True, method="asend_robust")

    async def _asend(
        self, sender: object, named: Mapping[str, Any], *, robust: bool, method: str
    ) -> Responses:
        if self._muted:
            return []  # see muted()
        if not self._connections.entries:
            return []
        sync, async_ = self._live_receivers(sender)
        if not (sync or async_):
            return []
        # No deadline: Django's asend has none.
        return await asend(self._dispatch(method, sender, named, robust=robust), sync, async_)

    async def asend_parallel(
        self, sender: object, **named: Any
    ) -> list[tuple[Callable[..., Any], Any]]:
        """Send from async code: sync receivers in parallel, then async ones concurrently.

        The concurrent twin of :meth:`asend`, as :meth:`send_parallel` is of
        :meth:`send`. The sync receivers run concurrently on the signal's
        pool (see :class:`Signal`), each in its own copy of the caller's
        :mod:`contextvars` context, with :meth:`send_parallel`'s rules: they
        start in connection order; the exception :meth:`send` would raise is
        raised once every receiver before it has finished; later ones never
        start; failures nobody sees are logged. Then the async receivers are
        awaited concurrently on the running loop, as in :meth:`asend`. The
        event loop is never blocked while sync receivers run.

        Return ``[(receiver, response), ...]`` ordered as :meth:`asend`
        orders it. The contextvars changes each sync receiver made flow back
        to the caller in connection order (even when one raises), then those
        of the async receivers; sync receivers do not see each other's
        changes while they run.

        Deadline: the signal's *timeout* bounds the whole call. Unfinished
        sync receivers are named in a :class:`TimeoutError` (and logged as
        ``signal.receiver_timeout``); async ones still running are
        cancelled. If the awaiting task is cancelled, no receiver starts
        after that and async receivers still running are cancelled.

        Threads: sync receivers run on worker threads, not the caller's, so
        anything bound to a thread is not the caller's. With Django
        configured, database connections on parasignal's worker threads are
        handled as Django handles a request's (see the README, "Django").
        Raise :class:`RuntimeError` if the signal or its pool has been shut
        down and there are receivers.
        """
        return await self._asend_parallel(sender, named, robust=False, method="asend_parallel")

    async def asend_parallel_robust(
        self, sender: object, **named: Any
    ) -> list[tuple[Callable[..., Any], Any]]:
        """Like :meth:`asend_parallel`, but failures become responses, as in ``send_robust``.

        A receiver that raises an ``Exception`` gets the exception instance as
        its response and is logged as ``signal.receiver_failed``; at the
        deadline, each unfinished receiver gets a :class:`TimeoutError` and is
        logged as ``signal.receiver_timeout``.
        """
        return await self._asend_parallel(
            sender, named, robust=True, method="asend_parallel_robust"
        )

    async def _asend_parallel(
        self, sender: object, named: Mapping[str, Any], *, robust: bool, method: str
    ) -> Responses:
        if self._muted:
            return []  # see muted()
        if self._pools.closed:
            self._executor(method)  # raises, naming the signal
        if "signal" in named:
            raise signal_among_named(self._display_name(), method)
        began = time.monotonic()  # the deadline counts from the call, as send_parallel's
        if not self._connections.entries:
            return []
        sync, async_ = self._live_receivers(sender)
        if not (sync or async_):
            return []
        executor = self._executor(method) if sync else None  # None when inline
        deadline, timeout = dispatch_deadline(self._timeout, began)
        dispatch = self._dispatch(method, sender, named, robust, timeout, deadline)
        return await asend_parallel(dispatch, sync, async_, executor)
