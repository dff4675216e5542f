"""The parallel fan-out engine behind ``send_parallel`` and ``send_parallel_robust``.

One dispatch is a :class:`Batch`: the receivers to call, in connection order,
and a slot for each one's outcome. Instead of one pool task per receiver (a
``submit()`` and ``result()`` each, many times the cost of calling a no-op
receiver), a batch posts a few *helper* tasks that claim receivers one at a
time, in order, until none are left.

The calling thread schedules: it posts one helper, then waits in short,
growing steps (100 us, 200 us, ...). Whenever a step ends with receivers still
unclaimed, the helpers it has are busy, so it posts more: one per unclaimed
receiver if no receiver finished during the step (they wait on IO), else up
to four per running helper (they are quick, and share the GIL). A batch of
fast receivers is drained by the first helper before the first step ends, at
the cost of one thread wake-up; slow receivers each get a thread of their own
after the first step.

Claiming in order gives ``send``'s failure semantics cheaply: when receiver
*j* fails, every receiver before it has already been claimed and will finish,
and no helper claims another one, so receivers after *j* that had not started
never start.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import CancelledError, Executor, Future
from typing import TYPE_CHECKING, Any, Final

from . import _django, _step_timer
from ._contexts import copy_back
from ._pool import WorkerPool
from ._unfinished import (
    CANCELLED_REASON,
    deadline_reason,
    emit_timeouts,
    group_error,
    receiver_error,
)

if TYPE_CHECKING:
    from .dispatcher import Signal

__all__ = ["Batch", "deadline_after", "run_batch", "run_batch_async"]

_PENDING: Final = object()  # a receiver that has not finished
_FAILED: Final = object()  # a receiver whose exception is in Batch.failures
_SKIPPED: Final = object()  # claimed as the batch stopped, and never started

# The caller's first wait before it adds helpers, and the longest step.
_FIRST_STEP_S: Final = 0.0001
_LAST_STEP_S: Final = 0.01
# How many helpers the caller may add per helper already running, per step.
_GROWTH: Final = 4

# Per-thread: how many batches this thread is draining right now (nested
# dispatches from inside a receiver make it more than one).
_local = threading.local()


def _in_helper() -> bool:
    return getattr(_local, "depth", 0) > 0


class _Failure:
    """An exception a receiver raised, with what is needed to report it later."""

    __slots__ = ("context", "duration_ms", "exc", "thread")

    def __init__(
        self, exc: BaseException, context: contextvars.Context, duration_ms: float, thread: str
    ) -> None:
        self.exc = exc
        self.context = context
        self.duration_ms = duration_ms
        self.thread = thread


class Batch:
    """The state of one parallel dispatch; shared by the caller and its helpers."""

    def __init__(
        self,
        signal: Signal,
        receivers: Sequence[Callable[..., Any]],
        sender: object,
        named: Mapping[str, Any],
        *,
        robust: bool,
        method: str,
        post: Callable[[Batch], None],
        max_helpers: int,
    ) -> None:
        self.signal = signal
        self.receivers = receivers
        self.sender = sender
        self.named = named
        self.robust = robust
        self.method = method
        self._post = post
        self.context = contextvars.copy_context()
        self.n = len(receivers)
        # Slots are written lock-free, each by the one helper that claimed it.
        self.results: list[Any] = [_PENDING] * self.n
        # Indices not yet claimed, lowest last: list.pop() is atomic under the
        # GIL, so claiming needs no lock, and len() says how many are left.
        # Receivers are claimed in order, so the first n - len() are claimed.
        self._unclaimed = list(range(self.n - 1, -1, -1))
        # Set (under _lock) once no receiver may start any more: a receiver
        # failed in a way that ends the dispatch, the deadline passed, the
        # pool was shut down with cancel_futures, or the caller answered.
        # Helpers read it without the lock, before and after each claim.
        self.stop = False
        # Guards everything below. Never held while a receiver runs or a
        # helper is posted, so receivers may dispatch and connect freely.
        self._lock = threading.Lock()
        self._max_helpers = max_helpers
        self._posted = 0  # helpers posted (or being posted)
        self._resolved = 0  # posted helpers that have started or were dropped
        self._running = 0  # helpers inside drain() right now
        self._finished = 0  # receivers counted as finished by exited helpers
        self._first_failure = self.n  # lowest index in failures
        self.failures: dict[int, _Failure] = {}
        # Receivers not yet started will never start: the pool was shut down
        # with cancel_futures, or dropped our helpers unrun.
        self.cancelled = False
        # True once the caller has answered: failures recorded after that are
        # logged by the helper that saw them, since nobody else will.
        self._abandoned = False
        self._signalled = False
        # Released exactly once, when the caller can decide its answer.
        self._done = threading.Lock()
        self._done.acquire()
        # Also called then (from whichever thread decides), for callers that
        # wait in an event loop rather than on _done.
        self.on_done: Callable[[], None] | None = None
        # With keep_contexts, each receiver's own context once it finished,
        # so that its contextvars changes can flow back to the caller (asend).
        self.contexts: list[contextvars.Context | None] | None = None
        # The parasignal pool the batch runs on, which tracks it for
        # shutdown(cancel_futures=True); None for a user's executor.
        self.pool: WorkerPool | None = None

    # -- helpers (worker side) ----------------------------------------------

    def post_helpers(self, count: int) -> int:
        """Post up to *count* more helpers; return how many were posted.

        Called without the lock. If the pool refuses (it was shut down), the
        error propagates only when no helper was ever posted; otherwise the
        helpers already posted finish the batch.
        """
        with self._lock:
            count = min(count, self._max_helpers - self._posted)
            if count <= 0:
                return 0
            self._posted += count
        posted = 0
        try:
            for _ in range(count):
                self._post(self)
                posted += 1
        except RuntimeError:
            with self._lock:
                self._posted -= count - posted
                nobody = self._posted == 0
                release = self._update_locked()
            if release:
                self._wake()
            if nobody:
                raise
        return posted

    def run(self) -> None:
        """Run as a helper on a worker thread (the pool's Task protocol)."""
        with self._lock:
            self._resolved += 1
            self._running += 1
        self.drain()

    def cancel(self) -> None:
        """Account for this helper being dropped unrun (the pool's Task protocol)."""
        with self._lock:
            self._resolved += 1
            release = self._update_locked()
        if release:
            self._wake()

    def cancel_unstarted(self) -> None:
        """Never start the receivers that have not started (shutdown with cancel_futures)."""
        with self._lock:
            self.stop = True
            self.cancelled = True
            release = self._update_locked()
        if release:
            self._wake()

    def join_as_helper(self) -> None:
        """Let the calling thread drain the batch too (re-entrant dispatch)."""
        with self._lock:
            self._posted += 1
            self._resolved += 1
            self._running += 1
        self.drain()

    def drain(self) -> None:  # noqa: PLR0912, PLR0915 - the hot loop stays in one frame, for speed
        """Claim and call receivers in order until none are left or stop is set.

        The caller has counted itself in ``_running``; this uncounts it.
        """
        depth = _local.depth = getattr(_local, "depth", 0) + 1
        # Django's per-request connection cleanup around each receiver, on a
        # pool worker outside nested dispatches; None (one cheap check per
        # helper run) when Django is not configured. One cleanup before each
        # receiver and one when the run ends: so one between two receivers,
        # serving as the first's "after" and the second's "before".
        guard = _django.worker_guard() if depth == 1 else None
        receivers = self.receivers
        results = self.results
        unclaimed = self._unclaimed
        context = self.context
        signal = self.signal
        sender = self.sender
        named = self.named
        robust = self.robust
        contexts = self.contexts
        clock = time.perf_counter
        ran = 0
        try:
            while not self.stop:
                try:
                    index = unclaimed.pop()
                except IndexError:
                    break
                # Another thread may have set stop since the loop checked it
                # (which mypy cannot know).
                if self.stop and not self._still_owed(index):  # type: ignore[unreachable]
                    # Stopped between the check and the claim: this receiver
                    # never starts. Its slot says so, rather than the index
                    # going back to the list: other helpers may have claimed
                    # later ones since, and the claimed receivers must stay
                    # the first n - len(unclaimed).
                    results[index] = _SKIPPED  # type: ignore[unreachable]
                    break
                ran += 1
                receiver = receivers[index]
                ctx = context.copy()
                if guard is not None:
                    guard.before()
                started = clock()
                try:
                    # Literal keywords when there are no named arguments: it
                    # spares building and unpacking a dict per call.
                    if named:
                        results[index] = ctx.run(receiver, signal=signal, sender=sender, **named)
                    else:
                        results[index] = ctx.run(receiver, signal=signal, sender=sender)
                except Exception as exc:  # noqa: BLE001 - every failure is reported or raised
                    duration_ms = (clock() - started) * 1000.0
                    if robust:
                        results[index] = exc
                        ctx.run(self._report, receiver, exc, duration_ms, _thread_name())
                    else:
                        self._record_failure(index, exc, ctx, duration_ms)
                except BaseException as exc:  # noqa: BLE001 - handed to the caller, never lost
                    duration_ms = (clock() - started) * 1000.0
                    self._record_failure(index, exc, ctx, duration_ms)
                if contexts is not None:
                    contexts[index] = ctx
        finally:
            if guard is not None and ran:
                guard.after()
            _local.depth -= 1
            with self._lock:
                self._finished += ran
                self._running -= 1
                release = self._update_locked()
            if release:
                self._wake()

    def _still_owed(self, index: int) -> bool:
        """Whether a receiver claimed just as the batch stopped must still run.

        It must if the stop is a later receiver's failure: it was claimed
        before that receiver, so ``send`` would have called it, and the
        caller waits for it. After a timeout or a cancellation it must not.
        """
        with self._lock:
            return not (self.cancelled or self._abandoned) and index < self._first_failure

    def _report(
        self, receiver: Callable[..., Any], exc: BaseException, duration_ms: float, thread: str
    ) -> None:
        try:
            self.signal._report_failure(
                receiver,
                exc,
                sender=self.sender,
                method=self.method,
                duration_ms=duration_ms,
                thread=thread,
            )
        except BaseException:  # noqa: BLE001 - a broken reporter must not stop the dispatch
            # On a worker thread nobody would see it, and the receivers after
            # this one would never run. Report it as logging.Handler does.
            print("parasignal: reporting a receiver failure failed:", file=sys.stderr)  # noqa: T201
            traceback.print_exc(file=sys.stderr)

    def _record_failure(
        self, index: int, exc: BaseException, ctx: contextvars.Context, duration_ms: float
    ) -> None:
        failure = _Failure(exc, ctx, duration_ms, _thread_name())
        release = False
        with self._lock:
            self.results[index] = _FAILED
            self.stop = True
            late = self._abandoned
            if not late:
                self.failures[index] = failure
                self._first_failure = min(self._first_failure, index)
                release = self._update_locked()
        if release:
            self._wake()
        if late:
            self.log_failure(index, failure)

    def log_failure(self, index: int, failure: _Failure) -> None:
        """Report a failure nobody else will see, in the receiver's own context."""
        # The receiver's context carries whatever the application bound (a
        # request id, say) into the event. The receiver has returned, so the
        # context is free to enter again, from any thread.
        failure.context.run(
            self._report,
            self.receivers[index],
            failure.exc,
            failure.duration_ms,
            failure.thread,
        )

    def _wake(self) -> None:
        # Called once, without the lock, when _update_locked() said so.
        self._done.release()
        on_done = self.on_done
        if on_done is not None:
            on_done()

    def _update_locked(self) -> bool:
        """Decide whether the caller can answer now; True means release it.

        Caller holds self._lock and, on True, must release ``_done`` once it
        has let go of the lock (so the woken caller does not block on it).
        """
        if self._signalled:
            return False
        if not self.cancelled and self._unclaimed and self._running == 0:
            # Receivers remain but no helper is running and none is left to
            # start: the pool dropped our helpers. Nothing more will start.
            self.cancelled = self._resolved >= self._posted
        first = self._first_failure
        if first < self.n:
            # After a failure that ends the dispatch, only the receivers
            # before it matter.
            done = _PENDING not in self.results[:first]
        elif self.cancelled:
            # Only the receivers that started matter.
            done = _PENDING not in self.results[: self.n - len(self._unclaimed)]
        else:
            done = self._finished >= self.n
        self._signalled = done
        return done

    # -- the caller's side ---------------------------------------------------

    def _grow(self) -> None:
        """Post more helpers: a step ended with receivers still unclaimed."""
        with self._lock:
            if self._posted > self._resolved:
                # Helpers are still waiting for a thread: more would not
                # start any sooner.
                return
            unclaimed = len(self._unclaimed)
            # Each running helper holds at most one receiver, so if no more
            # receivers were claimed than helpers run, none has finished in
            # a whole step: they are slow (IO), give each one a helper.
            # Otherwise they are quick: grow gently, the GIL is shared anyway.
            slow = self.n - unclaimed <= self._running
            count = unclaimed if slow else _GROWTH * max(1, self._running)
        if count > 0 and not self.stop:
            self.post_helpers(count)

    def growing(self) -> bool:
        """Whether receivers wait unclaimed and more helpers could take them."""
        return bool(self._unclaimed) and not self.stop and self._posted < self._max_helpers

    def wait(self, deadline: float | None) -> bool:
        """Block until the caller can answer; False if *deadline* passed first.

        While receivers remain unclaimed, wake up in growing steps to add
        helpers (see the module docstring).
        """
        done = self._done
        step = _FIRST_STEP_S
        while self.growing():
            timeout = step if deadline is None else min(step, deadline - time.monotonic())
            if timeout <= 0:
                return done.acquire(blocking=False)
            if done.acquire(timeout=timeout):
                return True
            self._grow()
            step = min(step * 2, _LAST_STEP_S)
        if deadline is None:
            done.acquire()
            return True
        return done.acquire(timeout=max(deadline - time.monotonic(), 0.0))

    def abandon(self) -> None:
        """Give up on the batch: the caller is gone (an exception interrupted its wait).

        Failures already recorded are logged here, those recorded later by the
        helpers that see them, so none is lost.
        """
        _, _, failures = self.settle(timed_out=False)
        for index, failure in failures.items():
            self.log_failure(index, failure)

    def settle(self, timed_out: bool) -> tuple[bool, list[Any], dict[int, _Failure]]:
        """Freeze the outcome: (timed out, a copy of the results, failures to report).

        From here on no receiver starts, and failures recorded later are
        logged by the helpers that see them.
        """
        with self._lock:
            if timed_out and self._signalled:
                timed_out = False  # decided just as the deadline passed
            self.stop = True
            self._abandoned = True
            self._signalled = True
            # A copy: helpers still running keep writing their own slots.
            results = list(self.results)
            failures = self.failures
            self.failures = {}
        return timed_out, results, failures


def _thread_name() -> str:
    return threading.current_thread().name


def _poster(executor: Executor | WorkerPool) -> tuple[Callable[[Batch], None], int]:
    """How to post a helper to *executor*, and how many helpers it can run at once."""
    if isinstance(executor, WorkerPool):
        return executor.post, executor.max_workers

    def submit(batch: Batch) -> None:
        future: Future[None] = executor.submit(batch.run)
        # A user's executor shut down with cancel_futures drops our helper.
        future.add_done_callback(lambda f: batch.cancel() if f.cancelled() else None)

    capacity = getattr(executor, "_max_workers", None)
    if not isinstance(capacity, int) or capacity < 1:
        capacity = 1 << 30
    return submit, capacity


def deadline_after(timeout: float | None) -> float | None:
    """Return the monotonic deadline *timeout* seconds from now; None for no deadline.

    Beyond ``threading.TIMEOUT_MAX`` (about 292 years) a lock cannot wait, so
    such a timeout means no deadline.
    """
    if timeout is None or timeout >= threading.TIMEOUT_MAX:
        return None
    return time.monotonic() + timeout


def start_batch(
    signal: Signal,
    receivers: Sequence[Callable[..., Any]],
    sender: object,
    named: Mapping[str, Any],
    *,
    robust: bool,
    method: str,
    executor: Executor | WorkerPool,
    keep_contexts: bool = False,
    on_done: Callable[[], None] | None = None,
) -> Batch:
    """Create a batch and post its first helper; the caller then waits and finishes it.

    Raises :class:`RuntimeError` naming the signal if the pool refuses work.
    """
    post, capacity = _poster(executor)
    batch = Batch(
        signal,
        receivers,
        sender,
        named,
        robust=robust,
        method=method,
        post=post,
        max_helpers=min(len(receivers), capacity),
    )
    batch.on_done = on_done
    if keep_contexts:
        batch.contexts = [None] * batch.n
    nested = _in_helper()
    pool = executor if isinstance(executor, WorkerPool) else None
    if pool is not None:
        pool.track(batch)
        batch.pool = pool
    try:
        batch.post_helpers(2 if nested else 1)
    except RuntimeError as exc:
        if not nested:
            if pool is not None:
                pool.untrack(batch)
            msg = f"{signal._display_name()}.{method}() could not start its receivers: {exc}."
            raise RuntimeError(msg) from exc
    if nested:
        # Re-entrancy: this thread is itself a parasignal worker, and its pool
        # may have no other free thread (max_workers=1, or all busy the same
        # way). Work on the batch here instead of only waiting for helpers
        # that might never get a thread.
        batch.join_as_helper()
    return batch


def finish_batch(
    batch: Batch, *, finished: bool, timeout: float | None
) -> list[tuple[Callable[..., Any], Any]]:
    """Settle a batch the caller has waited for, and give its answer (or raise)."""
    try:
        timed_out, results, failures = batch.settle(not finished)
    finally:
        if batch.pool is not None:
            batch.pool.untrack(batch)
    return _answer(batch, results, failures, timed_out, timeout)


def abandon_batch(batch: Batch) -> None:
    """Give up on a batch whose caller was interrupted: start nothing more, lose nothing."""
    try:
        batch.abandon()
    finally:
        if batch.pool is not None:
            batch.pool.untrack(batch)


def run_batch(
    signal: Signal,
    receivers: Sequence[Callable[..., Any]],
    sender: object,
    named: Mapping[str, Any],
    *,
    robust: bool,
    method: str,
    executor: Executor | WorkerPool,
    timeout: float | None,
    deadline: float | None,
) -> list[tuple[Callable[..., Any], Any]]:
    """Call *receivers* on *executor* and return ``send``'s ordered answer.

    Blocks the calling thread. See :meth:`parasignal.Signal.send_parallel`
    for the full contract.
    """
    batch = start_batch(
        signal, receivers, sender, named, robust=robust, method=method, executor=executor
    )
    try:
        finished = batch.wait(deadline)
    except BaseException:
        # KeyboardInterrupt, a signal handler's exception, a task framework's
        # time limit...: the caller will not answer.
        abandon_batch(batch)
        raise
    return finish_batch(batch, finished=finished, timeout=timeout)


async def run_batch_async(
    signal: Signal,
    receivers: Sequence[Callable[..., Any]],
    sender: object,
    named: Mapping[str, Any],
    *,
    robust: bool,
    method: str,
    executor: Executor | WorkerPool,
    timeout: float | None,
    deadline: float | None,
) -> list[tuple[Callable[..., Any], Any]]:
    """Like :func:`run_batch`, awaited from an event loop without blocking it.

    The contextvars changes each finished receiver made flow back into the
    awaiting task's context, in connection order, whether the call returns
    or raises (as Django's ``sync_to_async`` does). If the awaiting task is
    cancelled, nothing more starts and the cancellation propagates. Called
    on a parasignal worker thread (an event loop run inside a receiver),
    this thread drains the batch itself first, as :func:`run_batch` does.
    """
    loop = asyncio.get_running_loop()
    decided = loop.create_future()

    def on_done() -> None:
        # From a worker thread (or this one): hand the news to the loop.
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(_resolve, decided)

    batch = start_batch(
        signal,
        receivers,
        sender,
        named,
        robust=robust,
        method=method,
        executor=executor,
        keep_contexts=True,
        on_done=on_done,
    )
    try:
        finished = await _wait_in_loop(batch, decided, deadline)
    except BaseException:
        abandon_batch(batch)
        raise
    try:
        return finish_batch(batch, finished=finished, timeout=timeout)
    finally:
        for context in list(batch.contexts or ()):
            if context is not None:
                copy_back(context, batch.context)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _wait_in_loop(
    batch: Batch, decided: asyncio.Future[None], deadline: float | None
) -> bool:
    """Batch.wait(), for an event loop: the same growing steps, awaited.

    The loop's own timers cannot time a 100 us step (epoll counts whole
    milliseconds, so every step under 1 ms would take 1 ms, and slow
    receivers would get their threads a millisecond late). So each step is
    timed by a wait on the batch's ``_done`` lock on a thread of
    ``_step_timer``, which returns at the step's end or as soon as the
    batch is decided; the loop keeps running meanwhile, and also wakes the
    moment ``decided`` resolves. In this mode nothing else acquires
    ``_done`` (the loop learns of the answer through ``on_done``). An
    abandoned step ends on its own within one step (at most 10 ms).
    """
    loop = asyncio.get_running_loop()
    step = _FIRST_STEP_S
    while batch.growing():
        timeout = step if deadline is None else min(step, deadline - time.monotonic())
        if timeout <= 0:
            return decided.done()
        try:
            nap: asyncio.Future[bool] = loop.run_in_executor(
                _step_timer.executor(), functools.partial(batch._done.acquire, timeout=timeout)
            )
        except RuntimeError:  # interpreter exit shut the executor down: coarse timers, then
            nap = loop.create_task(asyncio.sleep(timeout, result=False))
        waits: set[asyncio.Future[Any]] = {decided, nap}
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        if decided.done():
            return True
        if nap.result():
            # Released: on_done has been called, decided resolves next.
            await decided
            return True
        batch._grow()
        step = min(step * 2, _LAST_STEP_S)
    remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
    done, _ = await asyncio.wait({decided}, timeout=remaining)
    return bool(done)


def _answer(
    batch: Batch,
    results: list[Any],
    failures: dict[int, _Failure],
    timed_out: bool,
    timeout: float | None,
) -> list[tuple[Callable[..., Any], Any]]:
    """Turn a settled batch into ``send``'s answer, or the exception to raise."""
    signal = batch.signal
    receivers = batch.receivers
    unfinished = [i for i, r in enumerate(results) if r is _PENDING or r is _SKIPPED]
    raised: int | None = None
    if failures:
        first = min(failures)
        if not any(i < first for i in unfinished):
            raised = first
    for index, failure in failures.items():
        if index != raised:
            batch.log_failure(index, failure)
    if raised is not None:
        exc = failures.pop(raised).exc
        failures.clear()
        try:
            raise exc
        finally:
            # Break the exception -> traceback -> this frame -> exception cycle.
            del exc, failures
    if not unfinished:
        return list(zip(receivers, results, strict=True))
    where = f"{signal._display_name()}.{batch.method}()"
    if timed_out:
        # In the context the dispatch started with, which is the one every
        # receiver started from (the receivers' own copies may still be in
        # use on their threads).
        emit_timeouts(
            batch.context,
            signal,
            receivers,
            unfinished,
            sender=batch.sender,
            method=batch.method,
            timeout=timeout,
        )
        error: type[Exception] = TimeoutError
        reason = deadline_reason(timeout)
    else:
        error = CancelledError
        reason = CANCELLED_REASON
    if not batch.robust:
        raise group_error(error, where, reason, receivers, unfinished)
    for index in unfinished:
        results[index] = receiver_error(error, where, reason, receivers[index])
    return list(zip(receivers, results, strict=True))
