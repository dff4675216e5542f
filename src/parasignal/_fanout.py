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

Reference lifetimes (nothing outlives a dispatch)
--------------------------------------------------
Everything a dispatch is about (its receivers, the sender and named
arguments, the results, the exceptions and the contexts) lives in one
``_Work`` value, referenced by ``Batch.work`` and by nobody else for long:

* The caller holds it while it waits. When it answers (returns or raises,
  an interrupt included), ``Batch.settle`` detaches it (``work = None``),
  withdraws the helpers still queued (``WorkerPool.withdraw``, or
  ``Future.cancel`` on a user's executor) and untracks the batch; the
  caller's frames drop it on return.
* A helper touches ``work`` only while it holds ``Batch._lock`` (under
  which the caller detaches it): for each receiver it takes out the
  receiver, a copy of the context and the ``CallArguments`` and lets go of
  ``work`` before releasing the lock and calling; afterwards, in one hold of
  the lock, it stores the outcome and lets go of the receiver, its
  arguments, context and outcome, before claiming the next. While a
  receiver runs, its helper frame holds that receiver, its context and the
  arguments, which the receiver needs anyway, and nothing else; a
  receiver still running after the answer (past the deadline, after an
  earlier failure, or after an interrupt) keeps only those until it
  returns. Since a receiver counts as finished only once
  its helper let go of it, under the lock, a caller that answers (its
  settling takes the lock) leaves no helper holding anything of the
  dispatch, not even for an instant; late outcomes find ``work`` gone and
  are dropped (a late failure is logged from the ``_Failure``, which holds
  its own receiver and sender).
* Queued helpers are the ``Batch`` itself, which after settling holds only
  counters, its lock and the signal: a helper that starts late finds
  ``work`` gone and returns at once. Pool workers drop each task before
  waiting for the next (``WorkerPool._work``).
* Cycles: none on the success path. On failure paths the exception's
  traceback holds the frames that caught it (``drain``), which have cleared
  their locals by then; ``_answer`` deletes its own references to the
  exception before raising it, and loops over failures by index so that no
  loop variable keeps one.

Locks (none is held while a receiver runs, is waited on, or is posted)
----------------------------------------------------------------------
========================  ==============================================  =====================
lock                      guards                                          taken by
========================  ==============================================  =====================
``Batch._lock``           ``work`` detachment, ``stop``, the counters,    the caller, helpers,
                          ``failures``, ``cancelled``, ``_futures``        pool callbacks
``Batch._done``           not a mutex: released once to wake the caller    helpers (release),
                                                                          the caller (acquire)
``WorkerPool._lock``      the task queue, threads, sleepers, tracked       posters, workers,
                          batches, the shutdown flag                       shutdown
``Signal.lock``           the receiver bookkeeping (``dispatcher``)        connect, dispatch
========================  ==============================================  =====================

No lock is taken while another is held: ``WorkerPool.shutdown`` calls
``cancel_unstarted`` and ``cancel`` only after releasing the pool's lock,
``Batch.settle`` withdraws helpers only after releasing the batch's, so
``Batch._lock`` and ``WorkerPool._lock`` never nest either way; futures of a
user's executor are cancelled outside ``Batch._lock`` too, since cancelling
runs their callbacks. Weakref callbacks only raise a flag (``dispatcher``).
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Executor, Future
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from . import _django
from ._contexts import copy_back
from ._pool import WorkerPool

if TYPE_CHECKING:
    from ._dispatch import CallArguments, Dispatch, Responses

__all__ = ["FIRST_STEP_S", "LAST_STEP_S", "Batch", "finish_batch", "run_batch"]

_PENDING: Final = object()  # a receiver that has not finished
_FAILED: Final = object()  # a receiver whose exception is in Batch.failures

# The caller's first wait before it adds helpers, and the longest step.
FIRST_STEP_S: Final = 0.0001
LAST_STEP_S: Final = 0.01
# How many helpers the caller may add per helper already running, per step.
_GROWTH: Final = 4

# Per-thread: how many batches this thread is draining right now (nested
# dispatches from inside a receiver make it more than one).
_local = threading.local()


def _in_helper() -> bool:
    return getattr(_local, "depth", 0) > 0


class _Work:
    """What one dispatch is about, owned by its batch until the caller answers.

    Lifetimes: the batch holds the only reference (``Batch.work``) while the
    dispatch runs; the caller detaches it when it answers (``Batch.settle``)
    and drops it on return. Helpers never keep it across a receiver call:
    they take the receiver, its context and the arguments out of it and let
    go, so a receiver still running after the answer holds what it needs
    and nothing else of the dispatch.
    """

    __slots__ = ("context", "contexts", "dispatch", "receivers", "results")

    def __init__(
        self, dispatch: Dispatch, receivers: Sequence[Callable[..., Any]], keep_contexts: bool
    ) -> None:
        self.receivers = receivers
        self.dispatch = dispatch
        self.context = contextvars.copy_context()
        n = len(receivers)
        # Each slot is written by the one helper that claimed it, under the
        # batch's lock (see Batch.drain).
        self.results: list[Any] = [_PENDING] * n
        # With keep_contexts, each receiver's own context once it finished,
        # so that its contextvars changes can flow back to the caller (asend).
        self.contexts: list[contextvars.Context | None] | None = (
            [None] * n if keep_contexts else None
        )


class _Failure:
    """An exception a receiver raised, with what is needed to report it later.

    Holds its own receiver and dispatch, so a failure recorded after the
    caller answered can be logged by the helper that saw it; it is dropped
    once logged or raised.
    """

    __slots__ = ("context", "dispatch", "duration_ms", "exc", "receiver", "thread")

    def __init__(
        self,
        exc: BaseException,
        *,
        receiver: Callable[..., Any],
        dispatch: Dispatch,
        context: contextvars.Context,
        duration_ms: float,
        thread: str,
    ) -> None:
        self.exc = exc
        self.receiver = receiver
        self.dispatch = dispatch
        self.context = context
        self.duration_ms = duration_ms
        self.thread = thread

    def log(self) -> None:
        """Report it (nobody raises it) in the receiver's own context.

        The context carries whatever the application bound (a request id,
        say) into the event. The receiver has returned, so the context is
        free to enter again, from any thread.
        """
        self.context.run(
            self.dispatch.report_failure,
            self.receiver,
            self.exc,
            sender=self.dispatch.arguments.sender,
            duration_ms=self.duration_ms,
            thread=self.thread,
        )


class _Settled(NamedTuple):
    """A batch's outcome as frozen by the caller (see :meth:`Batch.settle`)."""

    timed_out: bool
    work: _Work
    results: list[Any]
    failures: dict[int, _Failure]


class Batch:
    """The state of one parallel dispatch; shared by the caller and its helpers."""

    def __init__(
        self,
        dispatch: Dispatch,
        receivers: Sequence[Callable[..., Any]],
        executor: Executor | WorkerPool,
        *,
        keep_contexts: bool = False,
    ) -> None:
        # Creating a batch has no side effect: nothing is posted or tracked
        # until start(), so a caller interrupted before it leaks nothing.
        # The signal (what receivers get as signal=) outlives every dispatch.
        self.signal = dispatch.signal
        self.robust = dispatch.robust
        self.where = dispatch.where
        self.n = n = len(receivers)
        # The dispatch's receivers, arguments, context and outcomes; None
        # once the caller has answered (see _Work).
        self.work: _Work | None = _Work(dispatch, receivers, keep_contexts)
        # Indices not yet claimed, lowest last, popped under _lock; len(),
        # read without it, says how many are left. Receivers are claimed in
        # order, so the first n - len() are claimed.
        self._unclaimed = list(range(n - 1, -1, -1))
        # Set (under _lock) once no receiver may start any more: a receiver
        # failed in a way that ends the dispatch, the deadline passed, the
        # pool was shut down with cancel_futures, or the caller answered.
        # Helpers claim under the lock, so none claims after it is set.
        self.stop = False
        # Guards everything below and Batch.work's detachment. Never held
        # while a receiver runs or a helper is posted, so receivers may
        # dispatch and connect freely; the pool's lock is never taken while
        # it is held, nor it while the pool's is.
        self._lock = threading.Lock()
        if isinstance(executor, WorkerPool):
            self.pool: WorkerPool | None = executor
            capacity = executor.max_workers
        else:
            # The parasignal pool the batch runs on tracks it for
            # shutdown(cancel_futures=True); a user's executor does not.
            self.pool = None
            found = getattr(executor, "_max_workers", None)
            capacity = found if isinstance(found, int) and found >= 1 else 1 << 30
        self._executor = executor
        self._max_helpers = min(n, capacity)
        # Futures of helpers submitted to a user's executor, cancelled when
        # the caller answers (those not yet started then never run).
        self._futures: list[Future[None]] = []
        self._posted = 0  # helpers posted (or being posted)
        self._resolved = 0  # posted helpers that have started or were dropped
        self._running = 0  # helpers inside drain() right now
        self._finished = 0  # receivers counted as finished by exited helpers
        self._first_failure = n  # lowest index in failures
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
        # wait in an event loop rather than on _done. Dropped on answer.
        self.on_done: Callable[[], None] | None = None
        # Whether each receiver's context is kept (in work.contexts) once it finished.
        self._keep_contexts = keep_contexts

    # -- helpers (worker side) ----------------------------------------------

    def _post(self) -> None:
        executor = self._executor
        if isinstance(executor, WorkerPool):
            executor.post(self)
            return
        future: Future[None] = executor.submit(self.run)
        # A user's executor shut down with cancel_futures drops our helper.
        future.add_done_callback(self._helper_done)
        with self._lock:
            late = self._abandoned
            if not late:
                self._futures.append(future)
        if late:
            # The caller answered while we submitted. Cancelled outside the
            # lock: cancel() runs _helper_done, which takes it.
            future.cancel()

    def _helper_done(self, future: Future[None]) -> None:
        if future.cancelled():
            self.cancel()

    def post_helpers(self, count: int) -> int:
        """Post up to *count* more helpers; return how many were posted.

        Called without the lock. If the pool refuses (it was shut down), the
        error propagates only when no helper was ever posted; otherwise the
        helpers already posted finish the batch.
        """
        with self._lock:
            count = min(count, self._max_helpers - self._posted)
            if count <= 0 or self._abandoned:
                return 0
            self._posted += count
        posted = 0
        try:
            for _ in range(count):
                self._post()
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

    def drain(self) -> None:  # noqa: PLR0912, PLR0915 - the hot loop stays in one frame
        """Claim and call receivers in order until none are left or stop is set.

        The caller has counted itself in ``_running``; this uncounts it.

        References: while a receiver runs, this frame holds the batch, that
        receiver, its context and the call arguments, and nothing else of the
        dispatch (no other receiver, no result). It touches ``work`` only
        while it holds the batch's lock, under which the caller detaches it,
        and it lets go of a receiver's receiver, arguments, context and
        outcome in the same hold of the lock in which it stores the outcome:
        so by the time any thread can see a receiver finished, no helper
        holds anything of it, and a caller that answers (under that lock)
        leaves no helper holding anything of the dispatch.
        """
        depth = _local.depth = getattr(_local, "depth", 0) + 1
        # Django's per-request connection cleanup around each receiver, on a
        # pool worker outside nested dispatches; None (one cheap check per
        # helper run) when Django is not configured. One cleanup before each
        # receiver and one when the run ends: so one between two receivers,
        # serving as the first's "after" and the second's "before".
        guard = _django.worker_guard() if depth == 1 else None
        lock = self._lock
        unclaimed = self._unclaimed
        signal = self.signal
        robust = self.robust
        clock = time.perf_counter
        ran = 0
        index = -1  # the receiver whose outcome is still to be stored
        work: _Work | None = None
        receiver: Callable[..., Any] | None = None
        dispatch: Dispatch | None = None
        arguments: CallArguments | None = None
        ctx: contextvars.Context | None = None
        value: Any = None
        failure: _Failure | None = None
        late: _Failure | None = None  # recorded after the caller answered: ours to log
        # Set when a failure decided the answer: the caller is woken only
        # once this frame has left the loop.
        decided = False
        discard: Any = None
        try:
            while True:
                # Let go, before taking the lock, of what storing the outcome
                # does not need: if this was the last reference (the caller
                # answered), finalizers (__del__, weakref callbacks) run now,
                # never under the lock, where one that dispatches or shuts
                # a pool down would block or deadlock.
                receiver = dispatch = arguments = None
                if not self._keep_contexts:
                    ctx = None
                with lock:
                    work = self.work
                    if index >= 0:
                        # Store the last receiver's outcome, then let go of
                        # everything of it before the lock is released.
                        if failure is not None:
                            if self._abandoned:
                                late = failure
                            else:
                                decided |= self._record_failure_locked(index, failure)
                        elif work is not None:
                            # None once the caller has answered (a late
                            # receiver): the outcome is then dropped.
                            work.results[index] = value
                            if work.contexts is not None:
                                work.contexts[index] = ctx
                        index = -1
                        if work is None:
                            # A late outcome, nowhere to go: dropped once the
                            # lock is released, for the same reason.
                            discard = (value, ctx)
                        value = ctx = failure = None
                    if work is None or self.stop or not unclaimed:
                        work = None
                        break
                    # Claimed under the lock, so no receiver is claimed once
                    # the batch stopped, and the claimed receivers are always
                    # the first n - len(unclaimed).
                    index = unclaimed.pop()
                    receiver = work.receivers[index]
                    dispatch = work.dispatch
                    arguments = dispatch.arguments
                    ctx = work.context.copy()
                    work = None
                discard = None
                ran += 1
                if guard is not None:
                    guard.before()
                started = clock()
                try:
                    # Literal keywords when there are no named arguments: it
                    # spares building and unpacking a dict per call.
                    if arguments.named:
                        value = ctx.run(
                            receiver, signal=signal, sender=arguments.sender, **arguments.named
                        )
                    else:
                        value = ctx.run(receiver, signal=signal, sender=arguments.sender)
                except Exception as exc:  # noqa: BLE001 - every failure is reported or raised
                    duration_ms = (clock() - started) * 1000.0
                    if robust:
                        value = exc
                        ctx.run(
                            dispatch.report_failure,
                            receiver,
                            exc,
                            sender=arguments.sender,
                            duration_ms=duration_ms,
                            thread=_thread_name(),
                        )
                    else:
                        failure = _failure(exc, receiver, dispatch, ctx, started)
                except BaseException as exc:  # noqa: BLE001 - handed to the caller, never lost
                    failure = _failure(exc, receiver, dispatch, ctx, started)
        finally:
            # Drop every reference to the dispatch before reporting the end.
            work = receiver = dispatch = arguments = ctx = value = failure = None
            del discard
            if late is not None:
                # Recorded after the caller answered (so the loop stopped):
                # nobody will answer with it. Logged here, in the receiver's
                # context (no longer in use: the receiver has returned).
                late.log()
                late = None
            if guard is not None and ran:
                guard.after()
            _local.depth -= 1
            with lock:
                self._finished += ran
                self._running -= 1
                release = self._update_locked() or decided
            if release:
                self._wake()

    def _record_failure_locked(self, index: int, failure: _Failure) -> bool:
        """Record a failure (caller holds the lock); True if it decided the answer.

        The waking is left to the calling helper, which does it once it has
        left its loop, holding nothing of the dispatch any more.
        """
        work = self.work
        if work is not None:
            work.results[index] = _FAILED
        del work
        self.stop = True
        self.failures[index] = failure
        self._first_failure = min(self._first_failure, index)
        return self._update_locked()

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
        work = self.work
        if work is None:  # pragma: no cover - detached only once signalled
            return False
        if not self.cancelled and self._unclaimed and self._running == 0:
            # Receivers remain but no helper is running and none is left to
            # start: the pool dropped our helpers. Nothing more will start.
            self.cancelled = self._resolved >= self._posted
        first = self._first_failure
        if first < self.n:
            # After a failure that ends the dispatch, only the receivers
            # before it matter.
            done = not any(r is _PENDING for r in work.results[:first])
        elif self.cancelled:
            # Only the receivers that started matter.
            done = not any(r is _PENDING for r in work.results[: self.n - len(self._unclaimed)])
        else:
            done = self._finished >= self.n
        self._signalled = done
        return done

    # -- the caller's side ---------------------------------------------------

    def start(self) -> None:
        """Track the batch and post its first helper(s); on a worker, join in.

        Raises :class:`RuntimeError` naming the signal if the pool refuses
        work. The caller must :meth:`abandon` the batch if this raises
        anything else (an interrupt), and may always: abandoning is
        idempotent and undoes a partial start.
        """
        nested = _in_helper()
        if self.pool is not None:
            self.pool.track(self)
        try:
            self.post_helpers(2 if nested else 1)
        except RuntimeError as exc:
            if not nested:
                msg = f"{self.where} could not start its receivers: {exc}."
                raise RuntimeError(msg) from exc
        if nested:
            # Re-entrancy: this thread is itself a parasignal worker, and its
            # pool may have no other free thread (max_workers=1, or all busy
            # the same way). Work on the batch here instead of only waiting
            # for helpers that might never get a thread.
            self.join_as_helper()

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
        step = FIRST_STEP_S
        while self.growing():
            timeout = step if deadline is None else min(step, deadline - time.monotonic())
            if timeout <= 0:
                return done.acquire(blocking=False)
            if done.acquire(timeout=timeout):
                return True
            self._grow()
            step = min(step * 2, LAST_STEP_S)
        if deadline is None:
            done.acquire()
            return True
        return done.acquire(timeout=max(deadline - time.monotonic(), 0.0))

    def abandon(self) -> None:
        """Give up on the batch: the caller is gone (an exception interrupted it).

        Nothing more starts; failures already recorded are logged here, those
        recorded later by the helpers that see them, so none is lost.
        Idempotent, and safe after a partial :meth:`start`.
        """
        settled = self.settle(timed_out=False)
        failures = settled.failures if settled is not None else {}
        del settled
        for failure in failures.values():
            failure.log()

    def settle(self, timed_out: bool) -> _Settled | None:
        """Freeze the outcome and detach the dispatch from the batch.

        From here on no receiver starts, failures recorded later are logged
        by the helpers that see them, helpers still queued are withdrawn, and
        the pool forgets the batch. Returns None if it was settled before.
        """
        with self._lock:
            work = self.work
            if work is None:
                settled = None
            else:
                if timed_out and self._signalled:
                    timed_out = False  # decided just as the deadline passed
                # A copy: helpers still running write to the original list
                # (and drop what they wrote with it).
                settled = _Settled(timed_out, work, list(work.results), self.failures)
            self.stop = True
            self._abandoned = True
            self._signalled = True
            self.work = None
            self.failures = {}
            self.on_done = None
            futures, self._futures = self._futures, []
        del work
        try:
            self._withdraw(futures)
        finally:
            if self.pool is not None:
                self.pool.untrack(self)
        return settled

    def _withdraw(self, futures: list[Future[None]]) -> None:
        # Helpers still queued would only find the batch stopped: take them
        # back, so nothing of a finished dispatch stays queued.
        if self.pool is not None:
            withdrawn = self.pool.withdraw(self)
            if withdrawn:
                with self._lock:
                    self._resolved += withdrawn
        for future in futures:
            future.cancel()


def _thread_name() -> str:
    return threading.current_thread().name


def _failure(
    exc: BaseException,
    receiver: Callable[..., Any],
    dispatch: Dispatch,
    ctx: contextvars.Context,
    started: float,
) -> _Failure:
    """Wrap a receiver's exception with what reporting it later needs."""
    return _Failure(
        exc,
        receiver=receiver,
        dispatch=dispatch,
        context=ctx,
        duration_ms=(time.perf_counter() - started) * 1000.0,
        thread=_thread_name(),
    )


def finish_batch(batch: Batch, *, finished: bool) -> Responses:
    """Settle a batch the caller has waited for, and give its answer (or raise).

    With ``keep_contexts``, the contextvars changes each finished receiver
    made are then set in the current context, in connection order, whether
    this returns or raises.
    """
    settled = batch.settle(not finished)
    if settled is None:  # pragma: no cover - only the caller settles, once
        msg = "a parallel dispatch was answered twice"
        raise AssertionError(msg)
    try:
        return _answer(batch, settled)
    finally:
        work = settled.work
        context = None
        for context in list(work.contexts or ()):
            if context is not None:
                copy_back(context, work.context)
        # A raised answer's traceback keeps this frame: nothing of it may stay.
        del work, settled, context


def run_batch(
    dispatch: Dispatch, receivers: Sequence[Callable[..., Any]], executor: Executor | WorkerPool
) -> Responses:
    """Call *receivers* on *executor* and return ``send``'s ordered answer.

    Blocks the calling thread until the answer or the dispatch's deadline.
    See :meth:`parasignal.Signal.send_parallel` for the full contract.
    Whether it returns or raises (an interrupt included, wherever it lands
    after the batch exists), the batch is settled on the way out, so
    nothing of the dispatch stays referenced.
    """
    batch = Batch(dispatch, receivers, executor)
    deadline = dispatch.deadline
    del dispatch
    try:
        batch.start()
        finished = batch.wait(deadline)
        return finish_batch(batch, finished=finished)
    except BaseException:
        # KeyboardInterrupt, a signal handler's exception, a task framework's
        # time limit, a refusing pool...: the caller will not answer.
        # (Also after finish_batch raised the answer: abandon is idempotent,
        # and an interrupt before settle detached the work is covered.)
        batch.abandon()
        raise


def _answer(batch: Batch, settled: _Settled) -> Responses:
    """Turn a settled batch into ``send``'s answer, or the exception to raise."""
    work = settled.work
    dispatch = work.dispatch
    receivers = work.receivers
    results = settled.results
    failures = settled.failures
    timed_out = settled.timed_out
    del settled
    unfinished = [i for i, r in enumerate(results) if r is _PENDING]
    raised: int | None = None
    if failures:
        first = min(failures)
        if not any(i < first for i in unfinished):
            raised = first
    for index in sorted(failures):
        if index != raised:
            failures[index].log()
    if raised is not None:
        exc = failures.pop(raised).exc
        failures.clear()
        try:
            raise exc
        finally:
            # Break the exception -> traceback -> this frame -> exception cycle.
            del exc, failures, work, results, dispatch
    if not unfinished:
        return list(zip(receivers, results, strict=True))
    if timed_out:
        # In the context the dispatch started with, which is the one every
        # receiver started from (the receivers' own copies may still be in
        # use on their threads).
        work.context.run(dispatch.report_unfinished, receivers, unfinished)
        error: type[Exception] = TimeoutError
    else:
        error = CancelledError
    if not batch.robust:
        raise dispatch.unfinished_error(error, receivers, unfinished)
    for index in unfinished:
        results[index] = dispatch.unfinished_response(error, receivers[index])
    return list(zip(receivers, results, strict=True))
