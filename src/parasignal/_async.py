"""Async receivers: awaited concurrently on an event loop, as Django 6.1 does.

Django runs a signal's coroutine-function receivers after its sync ones, all
at once in a ``TaskGroup`` sharing one copy of the caller's context, and then
copies the context's changes back to the caller (ticket #36714). This module
does the same without asgiref: :func:`gather` is awaited by ``asend*`` and
``asend_parallel*``; :func:`run` gives it an event loop of its own for
``send``, ``send_robust`` and ``send_parallel*``, which are called from
synchronous code.

On Python 3.10, which has neither ``TaskGroup`` nor ``ExceptionGroup`` nor
``create_task(context=...)``: each receiver runs in its own copy of the
context, whose changes are copied back in connection order, and when several
receivers fail at once the earliest-connected failure is raised (the others
are logged).
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from ._contexts import copy_back, copy_back_all
from ._unfinished import deadline_reason, emit_timeouts, group_error, receiver_error

if TYPE_CHECKING:
    from .dispatcher import Signal

__all__ = ["gather", "run"]

_SHARED_CONTEXT: Final = sys.version_info >= (3, 11)

Responses = list[tuple[Callable[..., Any], Any]]


def run(
    signal: Signal,
    receivers: Sequence[Callable[..., Any]],
    sender: object,
    named: Mapping[str, Any],
    *,
    robust: bool,
    method: str,
    deadline: float | None = None,
    timeout: float | None = None,
) -> Responses:
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
            f"{signal._display_name()}.{method}() cannot run async receivers in a thread "
            f"that is running an event loop: await {signal._display_name()}.asend() "
            "(or asend_robust()) there instead."
        )
        raise RuntimeError(msg)
    shared = contextvars.copy_context()
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(
            gather(
                signal,
                receivers,
                sender,
                named,
                robust=robust,
                method=method,
                deadline=deadline,
                timeout=timeout,
                shared=shared,
            )
        )
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
    signal: Signal,
    receivers: Sequence[Callable[..., Any]],
    sender: object,
    named: Mapping[str, Any],
    *,
    robust: bool,
    method: str,
    deadline: float | None = None,
    timeout: float | None = None,
    shared: contextvars.Context | None = None,
) -> Responses:
    """Await *receivers* concurrently; return ``[(receiver, response)]`` in order.

    All run in *shared* (a copy of the current context if not given), whose
    changes are copied back into the current context when *shared* was not
    given. Not robust: the first failure cancels the others and is raised
    (several at once raise an ``ExceptionGroup``, as ``TaskGroup`` does).
    Robust: an ``Exception`` becomes the receiver's response and is logged.
    At *deadline*, receivers still running are cancelled: not robust, raise
    :class:`TimeoutError` naming them; robust, each gets a ``TimeoutError``.
    """
    restore_here = shared is None
    context = contextvars.copy_context() if shared is None else shared
    runner = _Gathering(signal, receivers, sender, named, robust=robust, method=method)
    try:
        return await runner.run(context, deadline, timeout)
    finally:
        if restore_here:
            copy_back_all(context)


class _Gathering:
    """One concurrent await of a signal's async receivers."""

    def __init__(
        self,
        signal: Signal,
        receivers: Sequence[Callable[..., Any]],
        sender: object,
        named: Mapping[str, Any],
        *,
        robust: bool,
        method: str,
    ) -> None:
        self.signal = signal
        self.receivers = receivers
        self.sender = sender
        self.named = named
        self.robust = robust
        self.method = method
        # Python 3.10: each task's context when it ended, merged back in order.
        self.final_contexts: list[contextvars.Context | None] = [None] * len(receivers)
        # Tasks cancelled because the deadline passed (not by themselves).
        self.timed_out: set[int] = set()

    async def call(self, index: int) -> Any:
        receiver = self.receivers[index]
        started = time.perf_counter()
        try:
            return await receiver(signal=self.signal, sender=self.sender, **self.named)
        except Exception as exc:
            if not self.robust:
                raise
            self.report(receiver, exc, (time.perf_counter() - started) * 1000.0)
            return exc
        finally:
            if not _SHARED_CONTEXT:
                self.final_contexts[index] = contextvars.copy_context()

    def report(self, receiver: Callable[..., Any], exc: BaseException, duration_ms: float) -> None:
        self.signal._report_failure(
            receiver,
            exc,
            sender=self.sender,
            method=self.method,
            duration_ms=duration_ms,
            thread=threading.current_thread().name,
        )

    async def run(
        self, context: contextvars.Context, deadline: float | None, timeout: float | None
    ) -> Responses:
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
            return await self._settle(tasks, deadline, timeout, context)
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
        self,
        tasks: list[asyncio.Task[Any]],
        deadline: float | None,
        timeout: float | None,
        context: contextvars.Context,
    ) -> Responses:
        pending = await _wait_for_tasks(tasks, deadline, first_exception=not self.robust)
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
        unfinished = sorted(self.timed_out)
        if unfinished:
            self._timed_out(unfinished, timeout, context)
        return [
            (self.receivers[i], self._response(i, task, timeout)) for i, task in enumerate(tasks)
        ]

    def _response(self, index: int, task: asyncio.Task[Any], timeout: float | None) -> Any:
        if index in self.timed_out:
            return self._timeout_error(index, timeout)
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

    def _timed_out(
        self, unfinished: list[int], timeout: float | None, context: contextvars.Context
    ) -> None:
        emit_timeouts(
            context,
            self.signal,
            self.receivers,
            unfinished,
            sender=self.sender,
            method=self.method,
            timeout=timeout,
        )
        if not self.robust:
            raise group_error(
                TimeoutError, self._where(), deadline_reason(timeout), self.receivers, unfinished
            )

    def _where(self) -> str:
        return f"{self.signal._display_name()}.{self.method}()"

    def _timeout_error(self, index: int, timeout: float | None) -> Exception:
        return receiver_error(
            TimeoutError, self._where(), deadline_reason(timeout), self.receivers[index]
        )


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
            max(0.0, deadline - time.monotonic()), _resolve_unless_done, settled, context=empty
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


def _resolve_unless_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
