"""The thread engine behind ``send_parallel*`` and ``asend_parallel*``.

One dispatch is a :class:`Batch`: the receivers to call, in connection order,
and a slot for each one's outcome. *Runners* claim receivers one at a time,
in order, and call them: the calling thread (when it takes part) and
*helpers*, pool tasks that run the same loop on worker threads. No task per
receiver: a ``submit()`` and ``result()`` each would cost many times a quick
receiver. A claim is a ticket drawn from a counter (``next()``, atomic under
the GIL), so claims take no lock; the receivers claimed are always the first
ones, and a claimed receiver always runs.

Who runs receivers: the caller taking part
------------------------------------------
Without a deadline (the signal has no ``timeout``), and unless the signal
says ``caller_runs=False``, the calling thread is a runner: it claims and
runs receivers like any helper, then waits for those helpers still run. A
dispatch of one receiver, or of quick ones, then costs about what ``send``
costs (100 no-op receivers: 0.9 to 1.0x Django's ``send`` here, where
handing them to a worker costs 3x: a thread wake-up is 15 to 40 us). Those
receivers run on the caller's thread, with its thread-locals (a Django
database connection is the caller's, as in ``send``).

With a deadline the caller never runs a receiver (one that hangs would keep
it past the deadline): it posts the first helper and waits until the answer
is decided or the deadline passes. The same holds for ``asend_parallel*``
(the event loop never runs a sync receiver) and for ``caller_runs=False``.
A dispatch made from inside a receiver on a pool worker thread (re-entrancy)
always takes part: its pool may have no other free thread (``max_workers=1``),
and a worker waiting for helpers that cannot start would wait forever.

The scheduler: one rule, the wake chain
---------------------------------------
Whenever a runner claims a receiver and others are still unclaimed, it makes
sure one helper is on its way: if none is pending (posted, not yet started)
and the dispatch may have more, it posts one. A helper that starts clears the
pending mark, claims, and so passes the chain on. So:

* Slow receivers (blocked on IO, so the GIL is free) hold their runner, and
  each new helper claims the next receiver and wakes the next helper: every
  slow receiver gets a thread within one wake-up of the previous one, and no
  more threads wake than receivers wait. (32 receivers sleeping 10 ms each:
  within a few percent of releasing 32 parked threads that each sleep 10 ms;
  see the README's figures.)
* Quick receivers are run by whoever runs first: a helper woken for them
  needs the GIL, which the runner holds until it is done, and finds little
  or nothing left. With the GIL a second thread cannot make them faster.
* At most one helper per dispatch waits in a pool's queue, so a saturated
  pool holds one queued task per dispatch, not one per receiver.

When the chain starts: at the first claim if the caller takes part (it
cannot watch for slow receivers: it may be running one) or waits in an event
loop (which cannot time short steps). A caller blocked on a deadline waits in
growing steps instead (100 us, doubling up to 6.4 ms) and starts the chain
only after a step in which no receiver finished while some wait unclaimed:
quick receivers are then run by the first helper alone, and no other woken
thread competes with the caller for the GIL when they are done (100 no-op
receivers with a deadline: about 40 us sooner here).

Claiming in order gives ``send``'s failure semantics: when receiver *j*
fails, every receiver before it has been claimed and will finish, and runners
claim no more once they see the batch stopped, so receivers after *j* that
had not started never start (one claimed just as *j* failed still runs,
concurrently with it, as if claimed a moment earlier).

Reference lifetimes (nothing outlives a dispatch)
-------------------------------------------------
Everything a dispatch is about (its receivers, the :class:`Dispatch` value
with the sender and named arguments, the results, the exceptions and the
contexts) lives in one ``_Work`` value, referenced by ``Batch.work`` and by
nobody else for long:

* The caller holds it, in its frames, until it answers (returns or raises,
  an interrupt included): ``Batch.settle`` then detaches it
  (``work = None``) under the batch's lock, waits out any helper still in a
  window (below), and withdraws a helper still queued
  (``WorkerPool.withdraw``, or ``Future.cancel`` on a user's executor). The
  caller's frames drop it on return; its own loop (``_run_as_caller``)
  clears its locals before it leaves, so that no failure's traceback keeps
  them.
* A helper touches ``work`` only inside a *window*, marked by its
  ``_Slot.holding`` flag: to claim a receiver (taking out the receiver, the
  dispatch value and a copy of the context) and to store its outcome. It
  lets go of ``work`` before it closes the window and calls the receiver,
  and of the receiver, its context and outcome before it counts it finished.
  The caller, once it has detached ``work``, waits while any helper's flag
  is up (a window lasts a few bytecodes). So once the caller has answered,
  no helper holds anything of the dispatch, except a receiver still running
  (past the deadline, or after a failure was raised), whose helper frame
  holds that receiver, its context and the dispatch value (the call's
  arguments) until it returns. Late outcomes find ``work`` gone and are
  dropped outside the window (a finalizer may dispatch); a late failure is
  logged by the helper that saw it.
* Queued helpers are the ``Batch`` itself, which after settling holds only
  counters, its locks and the executor: a helper that starts late finds
  ``work`` gone and returns at once. Pool workers drop each task before they
  wait for the next (``WorkerPool._work``); the wake-up a task hands back to
  its worker (to call just before it sleeps) refers to the batch alone.
* Cycles: none on the success path. On failure paths the exception's
  traceback holds the frames that caught it, which have cleared their
  locals of the dispatch by then; ``_answer`` deletes its own references to
  the exception before raising it.

Locks (none is held while a receiver runs, is waited on, or is posted)
----------------------------------------------------------------------
========================  ==============================================  =====================
lock                      guards                                          taken by
========================  ==============================================  =====================
``Batch._lock``           ``work``'s detachment, ``stop``, ``failures``,  the caller, helpers
                          ``cancelled``, the runner and helper counts,    (start, failure,
                          ``_futures``, the decision                      exit), pool callbacks
``Batch._done``           not a mutex: released once, when the answer     runners (release),
                          is decided, to wake the caller                  the caller (acquire)
``WorkerPool._lock``      the task queue, threads, sleepers, workers on   posters, workers,
                          their way, the shutdown flags                   shutdown
``Receivers.lock``        the receiver bookkeeping (``Signal.lock``)      connect, dispatch
========================  ==============================================  =====================

No lock is taken while another is held: helpers are posted and withdrawn
only after the batch's lock is released, ``WorkerPool.shutdown`` cancels
dropped helpers only after releasing the pool's, and futures of a user's
executor are cancelled outside the batch's lock (cancelling runs their
callbacks, which take it). Windows are not locks: the caller waits one out
by sleeping, holding no lock. Weakref callbacks only raise a flag
(``_receivers``).
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import CancelledError, Executor, Future
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from . import _django
from ._contexts import copy_back
from ._dispatch import CANCELLED_REASON, EXPIRED_REASON, Unfinished, not_started_reason
from ._pool import WorkerPool

if TYPE_CHECKING:
    from ._dispatch import Dispatch, Responses

__all__ = [
    "Batch",
    "answer_expired",
    "call_alone",
    "finish_batch",
    "in_helper",
    "run_alone",
    "run_batch",
]

_PENDING: Final = object()  # a receiver that has not started
_RUNNING: Final = object()  # a receiver a helper started, not finished
_FAILED: Final = object()  # a receiver whose exception is in Batch.failures
_UNTIMED: Final = math.nan  # the start of a receiver whose failure cannot be logged


def _unfinished(result: object) -> bool:
    return result is _PENDING or result is _RUNNING


# Per-thread: how many helper runs this thread is inside right now (a helper
# whose receiver dispatches again, on the same thread, makes it two).
_local = threading.local()


def in_helper() -> bool:
    """Whether this thread is running receivers as a helper (so a nested dispatch must join)."""
    return getattr(_local, "depth", 0) > 0


class _Work:
    """What one dispatch is about, owned by its batch until the caller answers.

    Lifetimes: the batch holds the only lasting reference (``Batch.work``);
    the caller detaches it when it answers (``Batch.settle``) and drops it on
    return. Runners never keep it across a receiver call: they take the
    receiver, its context and the dispatch value out of it, under the
    batch's lock, and let go.
    """

    __slots__ = ("context", "contexts", "dispatch", "receivers", "results")

    def __init__(
        self, dispatch: Dispatch, receivers: Sequence[Callable[..., Any]], keep_contexts: bool
    ) -> None:
        self.receivers = receivers
        self.dispatch = dispatch
        self.context = contextvars.copy_context()
        n = len(receivers)
        # Each slot is written by the one runner that claimed it, under the
        # batch's lock (see Batch._run).
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
        receiver: Callable[..., Any],
        dispatch: Dispatch,
        context: contextvars.Context,
        started: float,
    ) -> None:
        self.exc = exc
        self.receiver = receiver
        self.dispatch = dispatch
        self.context = context
        self.duration_ms = (time.perf_counter() - started) * 1000.0
        self.thread = threading.current_thread().name

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
            duration_ms=self.duration_ms,
            thread=self.thread,
        )


class _Settled(NamedTuple):
    """A batch's outcome as frozen by the caller (see :meth:`Batch.settle`)."""

    timed_out: bool
    complete: bool  # every receiver finished, none failed in a way that is raised
    helper_queued: bool  # a helper was still waiting for a thread
    work: _Work
    results: list[Any]
    failures: dict[int, _Failure]


# The waiting caller's first step, and its longest (see Batch.wait).
_FIRST_STEP_S: Final = 0.0001
_LAST_STEP_S: Final = 0.0064


class _Slot:
    """Whether one helper is inside a window in which it may hold ``work``."""

    __slots__ = ("holding",)

    def __init__(self) -> None:
        self.holding = False


# How long the caller sleeps while waiting out a helper's window (see
# Batch.settle): windows last a few bytecodes, so one wait nearly always does.
_WINDOW_WAIT_S: Final = 0.00002


class Batch:
    """The state of one parallel dispatch; shared by the caller and its helpers.

    Two words name its end: it is *decided* once the caller may answer (every
    receiver finished; or every receiver before the first failure; or, once
    nothing more may start, every receiver that started), and *answered*
    once the caller has settled it (``work`` is then None).

    Receivers are claimed with tickets (``next()`` on a counter, atomic under
    the GIL) and counted finished the same way, so the caller's own loop
    needs no lock per receiver; helpers take the lock per receiver anyway,
    for the reference lifetimes (module docstring).
    """

    __slots__ = (
        "_answered",
        "_caller_finished",
        "_complete",
        "_decided",
        "_done",
        "_executor",
        "_first_failure",
        "_futures",
        "_helper_finishes",
        "_keep_contexts",
        "_last_claimed",
        "_lock",
        "_max_helpers",
        "_pending",
        "_pool",
        "_posted",
        "_runners",
        "_slots",
        "_tickets",
        "caller_runs",
        "cancelled",
        "chaining",
        "failures",
        "n",
        "on_done",
        "robust",
        "stop",
        "work",
    )

    def __init__(
        self,
        dispatch: Dispatch,
        receivers: Sequence[Callable[..., Any]],
        executor: Executor | WorkerPool | None,
        *,
        caller_runs: bool,
        chaining: bool = False,
        keep_contexts: bool = False,
    ) -> None:
        # Creating a batch has no side effect: nothing is posted until
        # start(), so a caller interrupted before it leaks nothing.
        self.robust = dispatch.robust
        self.n = n = len(receivers)
        # The dispatch's receivers, arguments, context and outcomes; None
        # once the caller has answered (see _Work).
        self.work: _Work | None = _Work(dispatch, receivers, keep_contexts)
        self._keep_contexts = keep_contexts
        # Guards the fields below marked "lock", and work's detachment. Never
        # held while a receiver runs or a helper is posted, so receivers may
        # dispatch and connect freely; no other lock is taken while it is held.
        self._lock = threading.Lock()
        # next() gives the index of the next receiver to claim (>= n: none
        # left). A claimed receiver always runs (unless the caller answered
        # first), so the first k claimed are the first k started.
        self._tickets = itertools.count()
        # Receivers finished: by the caller, counted by itself and published
        # as it leaves its loop (None until then; 0 when it runs none), and
        # by helpers, one append each (atomic under the GIL).
        self._caller_finished: int | None = None if caller_runs else 0
        self._helper_finishes: list[None] = []
        self._first_failure = n  # lock: lowest index in failures
        self.failures: dict[int, _Failure] = {}  # lock
        # lock: set once no receiver may start any more: a receiver failed in
        # a way that ends the dispatch, the pool cancelled or dropped its
        # work, or the caller answered. Runners read it before each claim.
        self.stop = False
        # lock: unstarted receivers will never start because the pool
        # cancelled or dropped our helpers (answered with CancelledError).
        self.cancelled = False
        self.caller_runs = caller_runs
        # Whether runners pass the wake chain on (module docstring). From the
        # start when the caller takes part (it cannot watch for slow
        # receivers: it may be running one) or waits in an event loop (which
        # cannot time short steps); else from the first step of the caller's
        # wait in which no receiver finished (see wait()).
        self.chaining = caller_runs or chaining
        # The index helpers claimed last, written without the lock: the
        # waiting caller's hint that receivers remain unclaimed.
        self._last_claimed = -1
        self._runners = 0  # lock: threads claiming receivers now, the caller included
        # Appended under the lock, once per helper run; read by the caller
        # when it answers (iterating a list others only append to is safe).
        self._slots: list[_Slot] = []
        self._pending = 0  # lock: helpers posted that have neither started nor been dropped
        self._posted = 0  # lock: helpers posted in all
        self._executor = executor
        self._pool = executor if isinstance(executor, WorkerPool) else None
        if executor is None:
            self._max_helpers = 0  # inline: the caller runs everything
        else:
            if self._pool is not None:
                capacity = self._pool.max_workers
            else:
                found = getattr(executor, "_max_workers", None)
                capacity = found if isinstance(found, int) and found >= 1 else 1 << 30
            # The caller taking part needs one helper fewer.
            self._max_helpers = max(0, min(n - caller_runs, capacity))
        # lock: futures of helpers submitted to a user's executor, cancelled
        # when the caller answers (those not yet started then never run).
        self._futures: list[Future[None]] = []
        self._decided = False  # lock
        self._complete = False  # lock: every receiver finished
        self._answered = False  # lock
        # Released exactly once, when the answer is decided.
        self._done = threading.Lock()
        self._done.acquire()
        # Also called then (from whichever thread decides), for callers that
        # wait in an event loop rather than on _done. Dropped on answer.
        self.on_done: Callable[[], None] | None = None

    # -- the caller as a runner -----------------------------------------------------

    def _run_as_caller(self) -> None:  # noqa: PLR0912, PLR0915 - the hot loop stays in one frame
        """Claim and call receivers in order on the calling thread, until none are left.

        No lock per receiver: the caller holds the dispatch anyway (until it
        answers, after this returns), so it keeps what it needs in locals and
        counts what it finished itself, publishing the count as it leaves.
        Only failures, stopping and the wake chain take the lock.
        """
        with self._lock:
            self._runners += 1
        work = self.work
        assert work is not None  # noqa: S101 - nobody answers before the caller runs
        receivers = work.receivers
        results = work.results
        contexts = work.contexts
        context = work.context
        dispatch = work.dispatch
        del work
        signal = dispatch.signal
        sender = dispatch.sender
        named = dispatch.named
        robust = self.robust
        n = self.n
        tickets = self._tickets
        pool = self._pool
        chain = self._max_helpers > 0
        clock = time.perf_counter
        # Helpers that have started, each appended before its first claim.
        slots = self._slots
        mine = 0  # receivers this thread finished
        try:
            # A for loop draws the tickets: cheaper than next() per receiver.
            for index in tickets:
                if index >= n:
                    break
                if not self._pending:
                    # No helper is queued: post one for the receivers after
                    # this one, and see a cancelling shutdown for ourselves
                    # (with a helper queued, the shutdown drops it, which
                    # stops the batch: see cancel()).
                    if pool is not None and pool.cancelling:
                        self._cancel_unstarted()
                        break
                    if chain and index + 1 < n:
                        self._chain()
                receiver = receivers[index]
                ctx = context.copy()
                # A failure's start time is read only to log it. Not robust,
                # a failure is logged only if an earlier receiver failed too;
                # with no helper started when this ticket was drawn, every
                # earlier receiver ran here and succeeded, so this failure
                # would be raised: its clock (a tenth of a quick receiver's
                # cost) is skipped.
                started = clock() if robust or slots else _UNTIMED
                try:
                    # Literal keywords when there are no named arguments: it
                    # spares building and unpacking a dict per call.
                    if named:
                        value = ctx.run(receiver, signal=signal, sender=sender, **named)
                    else:
                        value = ctx.run(receiver, signal=signal, sender=sender)
                except Exception as exc:  # noqa: BLE001 - every failure is reported or raised
                    if not robust:
                        mine += 1
                        self._fail(index, _Failure(exc, receiver, dispatch, ctx, started))
                        break
                    value = exc
                    _report_robust(ctx, dispatch, receiver, exc, started)
                except BaseException as exc:  # noqa: BLE001 - handed to the caller, never lost
                    mine += 1
                    self._fail(index, _Failure(exc, receiver, dispatch, ctx, started))
                    break
                results[index] = value
                if contexts is not None:
                    contexts[index] = ctx
                mine += 1
                # Read after the store (a failure recorded elsewhere scans
                # the results after setting stop): one of the two sees the other.
                if self.stop:
                    break
        finally:
            # A robust failure's traceback holds this frame: without the
            # dispatch's lists in it, the answer and its exceptions form no
            # cycle through it.
            del receivers, results, contexts, context, dispatch, named, sender
            receiver = ctx = value = None  # type: ignore[assignment]
            with self._lock:
                self._caller_finished = mine
                self._runners -= 1
                decided = self._decide_locked()
            if decided:
                self._wake()

    def _chain(self) -> None:
        """Post a helper for the receivers after this one, unless one is on its way."""
        with self._lock:
            post = not self._pending and self._posted < self._max_helpers and not self.stop
            if post:
                self._pending = 1
                self._posted += 1
        if post:
            # try/except, not contextlib.suppress: this runs in most
            # dispatches, and the context manager costs a tenth of a quick one.
            try:  # noqa: SIM105 - see above
                self._post_one()
            except RuntimeError:
                pass  # refused: the runners we have finish

    def _fail(self, index: int, failure: _Failure) -> None:
        """Record a failure the caller's loop caught (the caller counts it finished)."""
        with self._lock:
            work = self.work
            if work is not None:
                self._record_failure_locked(index, failure, work)
        del work, failure

    def _cancel_unstarted(self) -> None:
        """Start nothing more: the pool was shut down with cancel_futures."""
        with self._lock:
            if not self.stop:
                self.stop = self.cancelled = True

    # -- helpers -----------------------------------------------------------------

    def run(self) -> Callable[[], None] | None:
        """Run as a helper on a worker thread (the pool's Task protocol).

        Return the caller's wake-up if this helper decided the answer: the
        pool calls it as the last thing before its worker waits for more
        work, so that the woken caller does not then wait for this thread
        to let go of the GIL (about 10 us here).
        """
        depth = _local.depth = getattr(_local, "depth", 0) + 1
        try:
            # Django's per-request connection cleanup around each receiver,
            # on a pool worker outside nested dispatches; None (one cheap
            # check per helper run) when Django is not configured.
            decided = self._run_as_helper(_django.worker_guard() if depth == 1 else None)
        finally:
            _local.depth -= 1
        return self._wake if decided else None

    def _run_and_wake(self) -> None:
        # What a user's executor runs: the helper, then the wake-up at once.
        wake = self.run()
        if wake is not None:
            wake()

    def cancel(self) -> None:
        """Account for this helper being dropped unrun (the pool's Task protocol).

        Only a cancelling shutdown of the executor drops a helper (ours are
        withdrawn without this), so no receiver may start any more: those
        that did not start are answered with ``CancelledError``.
        """
        with self._lock:
            self._pending -= 1
            if not self.stop:
                self.stop = self.cancelled = True
            decided = self._decide_locked()
        if decided:
            self._wake()

    def _run_as_helper(self, guard: _django.ReceiverGuard | None) -> bool:  # noqa: PLR0912, PLR0915 - the hot loop stays in one frame
        """Claim and call receivers in order until none are left or ``stop`` is set.

        References: this frame touches ``work`` only inside windows marked
        by ``slot.holding`` (claiming a receiver, storing its outcome), and
        holds nothing of the dispatch outside them except, while a receiver
        runs, that receiver, its context and the dispatch value. The caller
        waits out an open window before it answers (:meth:`settle`), so once
        it has answered no helper holds anything more (module docstring).

        Return whether this helper decided the answer: the caller is then to
        be woken (:meth:`_wake`), which it leaves to its own caller.
        """
        slot = _Slot()
        with self._lock:
            self._runners += 1
            self._pending -= 1
            self._slots.append(slot)
        n = self.n
        keep = self._keep_contexts
        pool = self._pool
        tickets = self._tickets
        finishes = self._helper_finishes
        clock = time.perf_counter
        index = -1  # the receiver whose outcome is still to be stored
        ran = False
        work: _Work | None = None
        receiver: Callable[..., Any] | None = None
        dispatch: Dispatch | None = None
        ctx: contextvars.Context | None = None
        value: Any = None
        failure: _Failure | None = None
        discard: Any = None
        decided = False  # this helper decided the answer: its caller wakes the caller
        try:
            while True:
                # Let go, before the window, of what storing the outcome does
                # not need: if this was the last reference (the caller
                # answered), finalizers run now, outside the window.
                receiver = dispatch = None
                if not keep:
                    ctx = None
                if failure is not None:
                    decided = self._store_failure(index, failure)
                    index = -1
                    failure = None
                    if decided or self.stop:
                        break  # it ended the dispatch (stop is set): wake on the way out
                slot.holding = True  # -- window: work may be held from here
                work = self.work
                if index >= 0:
                    # Store the last receiver's outcome and let go of it.
                    if work is not None:
                        work.results[index] = value
                        if keep:
                            work.contexts[index] = ctx  # type: ignore[index]
                    else:
                        # A late outcome, nowhere to go: dropped after the window.
                        discard = (value, ctx)
                    value = ctx = None
                    index = -1
                    finishes.append(None)
                    mine = self._caller_finished
                    if (mine is not None and mine + len(finishes) >= n) or self.stop:
                        # Nothing left to claim (the caller counted its own
                        # when it left), or nothing may start: leave, and
                        # decide on the way out.
                        work = None
                        slot.holding = False  # -- window closed
                        break
                if work is None or self.stop or (pool is not None and pool.cancelling):
                    work = None
                    slot.holding = False  # -- window closed
                    break
                index = next(tickets)
                if index >= n:
                    index = -1
                    work = None
                    slot.holding = False  # -- window closed
                    break
                receiver = work.receivers[index]
                dispatch = work.dispatch
                ctx = work.context.copy()
                # Marked started, for a deadline's answer (receivers the caller
                # runs itself always finish before it answers).
                work.results[index] = _RUNNING
                work = None
                slot.holding = False  # -- window closed
                discard = None
                self._last_claimed = index
                if (
                    self.chaining
                    and not self._pending
                    and index + 1 < n
                    and self._posted < self._max_helpers
                ):
                    # The wake chain: the receivers after this one get a
                    # helper on its way (see the module docstring).
                    self._chain()
                if guard is not None and not ran:
                    # Django's cleanup before this helper's first receiver;
                    # each one's cleanup after it is the next one's before.
                    ran = True
                    guard.before()
                started = clock()
                try:
                    # Literal keywords when there are no named arguments: it
                    # spares building and unpacking a dict per call.
                    if dispatch.named:
                        value = ctx.run(
                            receiver,
                            signal=dispatch.signal,
                            sender=dispatch.sender,
                            **dispatch.named,
                        )
                    else:
                        value = ctx.run(receiver, signal=dispatch.signal, sender=dispatch.sender)
                except Exception as exc:  # noqa: BLE001 - every failure is reported or raised
                    if self.robust:
                        value = exc
                        _report_robust(ctx, dispatch, receiver, exc, started)
                    else:
                        failure = _Failure(exc, receiver, dispatch, ctx, started)
                except BaseException as exc:  # noqa: BLE001 - handed to the caller, never lost
                    failure = _Failure(exc, receiver, dispatch, ctx, started)
                if guard is not None:
                    # Before the outcome is stored: once the caller sees every
                    # receiver finished, their connections are closed too.
                    guard.after()
        finally:
            # Drop every reference to the dispatch before reporting the end.
            slot.holding = False
            work = receiver = dispatch = ctx = value = None
            del discard
            if index >= 0:  # pragma: no cover - an interrupt inside this frame's own code
                decided = self._store_failure(index, failure) or decided
            failure = None
            with self._lock:
                self._runners -= 1
                decided = self._decide_locked() or decided
        return decided

    def _store_failure(self, index: int, failure: _Failure | None) -> bool:
        """Record a helper's failure, or log it if the caller answered; count it finished.

        *failure* None: the helper was interrupted before it could store an
        outcome (an asynchronous exception in this module's own code): its
        receiver only counts as finished, so the caller is not left waiting.
        Return whether the answer is now decided: the helper wakes the caller
        once it holds nothing of the dispatch any more.
        """
        late = None
        with self._lock:
            work = self.work
            if failure is not None:
                if work is None:
                    late = failure
                else:
                    self._record_failure_locked(index, failure, work)
            self._helper_finishes.append(None)
            decided = self._decide_locked()
        del work, failure
        if late is not None:
            # Recorded after the caller answered: nobody will answer with it.
            # Logged here, in the receiver's context (no longer in use: the
            # receiver has returned).
            late.log()
            late = None
        return decided

    def _record_failure_locked(self, index: int, failure: _Failure, work: _Work) -> None:
        """Record a receiver's failure (caller holds the lock)."""
        work.results[index] = _FAILED
        self.stop = True
        self.failures[index] = failure
        self._first_failure = min(self._first_failure, index)

    def _decide_locked(self) -> bool:
        """Decide whether the caller can answer now; True means wake it.

        Caller holds the lock and, on True, must call :meth:`_wake` once it
        has let go of the lock and of everything of the dispatch.
        """
        work = self.work
        if self._decided or work is None:
            return False
        caller = self._caller_finished
        if caller is not None and caller + len(self._helper_finishes) >= self.n:
            done = self._complete = True
        elif self.cancelled:
            # The pool cancelled our work: every receiver that started has
            # finished once no runner is left (one claimed just as the
            # cancel came may never have started).
            done = not self._runners
        elif self._first_failure < self.n:
            # After a failure that ends the dispatch, only the receivers
            # before it matter (all of them were claimed, so all will finish).
            results = work.results
            done = not any(_unfinished(results[i]) for i in range(self._first_failure))
        elif self.stop:
            # Nothing more may start: once no runner is left, every receiver
            # that started has finished.
            done = not self._runners
        elif not self._runners and not self._pending and self._posted:
            # No runner left and no helper on its way, with receivers never
            # claimed: the pool dropped our helpers. Nothing more starts.
            done = self.stop = self.cancelled = True
        else:
            done = False
        self._decided = done
        return done

    def _wake(self) -> None:
        # Called once, without the lock, when _decide_locked() said so.
        self._done.release()
        on_done = self.on_done
        if on_done is not None:
            on_done()

    # -- posting helpers ---------------------------------------------------------

    def _post_one(self) -> None:
        """Post one helper (already counted as pending and posted, under the lock).

        If the executor refuses (it was shut down), the helper is uncounted
        and :class:`RuntimeError` propagates.
        """
        executor = self._executor
        try:
            if isinstance(executor, WorkerPool):
                executor.post(self)
                return
            assert executor is not None  # noqa: S101 - inline batches post no helper
            future: Future[None] = executor.submit(self._run_and_wake)
        except RuntimeError:
            with self._lock:
                self._pending -= 1
                self._posted -= 1
                decided = self._decide_locked()
            if decided:
                self._wake()
            raise
        # A user's executor shut down with cancel_futures drops our helper.
        future.add_done_callback(self._helper_done)
        with self._lock:
            late = self._answered
            if not late:
                self._futures.append(future)
        if late:
            # The caller answered while we submitted. Cancelled outside the
            # lock: cancel() runs _helper_done, which takes it.
            future.cancel()

    def _helper_done(self, future: Future[None]) -> None:
        if future.cancelled():
            self.cancel()

    # -- the caller's side -------------------------------------------------------

    def start(self) -> None:
        """Begin: run receivers if the caller takes part, else post the first helper.

        Raises :class:`RuntimeError` if the executor refuses the first helper
        and nobody else can run the receivers. The caller must
        :meth:`abandon` the batch if this raises anything (an interrupt), and
        may always: abandoning is idempotent and undoes a partial start.
        """
        if self.caller_runs:
            # The caller claims the first receiver and, through the wake
            # chain, posts the first helper itself.
            self._run_as_caller()
            return
        with self._lock:
            self._pending = self._posted = 1
        self._post_one()

    def wait(self, deadline: float | None) -> bool:
        """Block until the caller can answer; False if *deadline* passed first.

        Until the wake chain runs, wait in growing steps (100 us, 200 us, ...
        up to 6.4 ms): a step in which no receiver finished while receivers
        wait unclaimed means the helpers are held by slow receivers, so the
        chain starts. Quick receivers are then run by one helper, and no
        other thread wakes to compete with the caller for the GIL when they
        are done (measured here: 100 no-op receivers answer about 40 us
        sooner than with a chain from the start).
        """
        done = self._done
        step = _FIRST_STEP_S
        seen = 0
        while not self.chaining:
            timeout = step if deadline is None else min(step, deadline - time.monotonic())
            if timeout <= 0:
                return done.acquire(blocking=False)
            if done.acquire(timeout=timeout):
                return True
            finished = len(self._helper_finishes)
            if finished == seen and self._last_claimed + 1 < self.n:
                self._start_chain()
            seen = finished
            step = min(step * 2, _LAST_STEP_S)
        if deadline is None:
            done.acquire()
            return True
        return done.acquire(timeout=max(deadline - time.monotonic(), 0.0))

    def _start_chain(self) -> None:
        """Let runners pass the wake chain on, and start it with one helper."""
        with self._lock:
            self.chaining = True
            post = (
                not self._pending
                and self._posted < self._max_helpers
                and not self.stop
                and self.work is not None
            )
            if post:
                self._pending = 1
                self._posted += 1
        if post:
            with contextlib.suppress(RuntimeError):  # refused: the runners we have finish
                self._post_one()

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
        by the helpers that see them, and a helper still queued is
        withdrawn. Returns None if it was settled before.
        """
        with self._lock:
            work = self.work
            if work is None:
                settled = None
            else:
                if timed_out and self._decided:
                    timed_out = False  # decided just as the deadline passed
                # A copy, unless every receiver finished: helpers still
                # running write to the original list (and drop what they
                # wrote with it).
                complete = self._complete and not self.failures
                results = work.results if self._complete else list(work.results)
                settled = _Settled(
                    timed_out, complete, self._pending > 0, work, results, self.failures
                )
            self.stop = True
            self._answered = self._decided = True
            self.work = None
            self.failures = {}
            self.on_done = None
            pending = self._pending
            futures, self._futures = self._futures, []
        del work
        # A helper that read work just before we detached it may still hold
        # it, for a few bytecodes: wait it out, so that once we answer no
        # helper holds anything of the dispatch.
        for slot in self._slots:
            while slot.holding:
                time.sleep(_WINDOW_WAIT_S)
        if pending or futures:
            self._withdraw(futures)
        return settled

    def _withdraw(self, futures: list[Future[None]]) -> None:
        # A helper still queued would only find the batch answered: take it
        # back, so nothing of a finished dispatch stays queued.
        if self._pool is not None:
            withdrawn = self._pool.withdraw(self)
            if withdrawn:
                with self._lock:
                    self._pending -= withdrawn
        for future in futures:
            future.cancel()


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
    dispatch: Dispatch,
    receivers: Sequence[Callable[..., Any]],
    executor: Executor | WorkerPool | None,
    *,
    caller_runs: bool,
) -> Responses:
    """Call *receivers* and return ``send``'s ordered answer (or raise its exception).

    Blocks the calling thread until the answer, or the dispatch's deadline.
    With *caller_runs* this thread runs receivers too (see the module
    docstring); with *executor* None it runs all of them (inline mode).
    See :meth:`parasignal.Signal.send_parallel` for the full contract.
    Whether it returns or raises (an interrupt included, wherever it lands
    after the batch exists), the batch is settled on the way out, so
    nothing of the dispatch stays referenced.
    """
    if dispatch.deadline is not None and dispatch.deadline <= time.monotonic():
        return answer_expired(dispatch, receivers)
    batch = Batch(dispatch, receivers, executor, caller_runs=caller_runs or executor is None)
    # With the caller taking part, the deadline bounds only its wait for the
    # receivers helpers run (a nested dispatch on a worker); inline, every
    # receiver has run by then.
    deadline = dispatch.deadline
    del dispatch
    try:
        try:
            batch.start()
        except RuntimeError as exc:
            if batch._posted:  # pragma: no cover - only the first post raises here
                raise
            msg = f"{batch_where(batch)} could not start its receivers: {exc}."
            raise RuntimeError(msg) from exc
        finished = batch.wait(deadline)
        return finish_batch(batch, finished=finished)
    except BaseException:
        # KeyboardInterrupt, a signal handler's exception, a task framework's
        # time limit, a refusing pool...: the caller will not answer.
        # (Also after finish_batch raised the answer: abandon is idempotent,
        # and an interrupt before settle detached the work is covered.)
        batch.abandon()
        raise


def batch_where(batch: Batch) -> str:
    """How messages name the batch's dispatch (while it is not answered)."""
    work = batch.work
    return work.dispatch.where if work is not None else "a parallel dispatch"


def call_alone(
    receiver: Callable[..., Any], signal: object, sender: object, named: Mapping[str, Any]
) -> Responses:
    """Call one receiver on this thread, in a copy of the context: :func:`run_alone`, lean.

    For a dispatch without a deadline that is not robust: nothing can
    expire and a failure simply propagates, so no :class:`Dispatch` value
    is needed (making one is a third of the cost of such a dispatch).
    """
    ctx = contextvars.copy_context()
    # Literal keywords when there are no named arguments (see the loops).
    if named:
        return [(receiver, ctx.run(receiver, signal=signal, sender=sender, **named))]
    return [(receiver, ctx.run(receiver, signal=signal, sender=sender))]


def run_alone(dispatch: Dispatch, receiver: Callable[..., Any]) -> Responses:
    """Call one receiver on this thread, in a copy of the context, with the engine's rules.

    What :func:`run_batch` does for a single receiver when the caller takes
    part, without a batch: nothing else could run beside it anyway.
    """
    if dispatch.deadline is not None and dispatch.deadline <= time.monotonic():
        return answer_expired(dispatch, [receiver])
    ctx = contextvars.copy_context()
    named = dispatch.named
    started = time.perf_counter()
    try:
        # Literal keywords when there are no named arguments (see the loops).
        if named:
            value = ctx.run(receiver, signal=dispatch.signal, sender=dispatch.sender, **named)
        else:
            value = ctx.run(receiver, signal=dispatch.signal, sender=dispatch.sender)
    except Exception as exc:
        if not dispatch.robust:
            raise
        _report_robust(ctx, dispatch, receiver, exc, started)
        value = exc
    try:
        return [(receiver, value)]
    finally:
        # A robust failure's traceback holds this frame: no cycle through it.
        del value, dispatch, named


def _report_robust(
    ctx: contextvars.Context,
    dispatch: Dispatch,
    receiver: Callable[..., Any],
    exc: BaseException,
    started: float,
) -> None:
    """Report a robust dispatch's receiver failure, in the receiver's context, on its thread."""
    ctx.run(
        dispatch.report_failure,
        receiver,
        exc,
        duration_ms=(time.perf_counter() - started) * 1000.0,
        thread=threading.current_thread().name,
    )


def _answer(batch: Batch, settled: _Settled) -> Responses:
    """Turn a settled batch into ``send``'s answer, or the exception to raise."""
    work = settled.work
    dispatch = work.dispatch
    receivers = work.receivers
    results = settled.results
    failures = settled.failures
    timed_out = settled.timed_out
    complete = settled.complete
    helper_queued = settled.helper_queued
    del settled
    if complete:
        # The common case, with no receiver left to account for.
        return list(zip(receivers, results, strict=True))
    running = [i for i, r in enumerate(results) if r is _RUNNING]
    not_started = [i for i, r in enumerate(results) if r is _PENDING]
    raised: int | None = None
    if failures:
        first = min(failures)
        # Robust, a failure recorded here is not an Exception (SystemExit...):
        # it propagates, as in send_robust, whatever else is unfinished.
        if batch.robust or not any(i < first for i in (*running, *not_started)):
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
    if not (running or not_started):
        return list(zip(receivers, results, strict=True))
    error: type[Exception]
    if timed_out:
        reason = _not_started_reason(batch, dispatch, helper_queued=helper_queued)
        unfinished = Unfinished(running, not_started, reason)
        # In the context the dispatch started with, which is the one every
        # receiver started from (the receivers' own copies may still be in
        # use on their threads).
        work.context.run(dispatch.report_unfinished, receivers, unfinished)
        error = TimeoutError
    else:
        unfinished = Unfinished(running, not_started, CANCELLED_REASON)
        error = CancelledError
    if not batch.robust:
        raise dispatch.unfinished_error(error, receivers, unfinished)
    for index, response in dispatch.unfinished_responses(error, receivers, unfinished).items():
        results[index] = response
    return list(zip(receivers, results, strict=True))


def _not_started_reason(batch: Batch, dispatch: Dispatch, *, helper_queued: bool) -> str:
    """Why receivers never started before the deadline: the pool was busy, or time ran out."""
    pool = batch._pool
    if pool is not None:
        stats = pool.stats()
        if helper_queued:
            # Our helper was still waiting for one of the pool's threads.
            pool.note_saturated(waited_s=dispatch.timeout or 0.0)
        if stats.busy >= stats.size:
            return not_started_reason(dispatch.timeout, stats.size)
    return not_started_reason(dispatch.timeout, None)


def answer_expired(dispatch: Dispatch, receivers: Sequence[Callable[..., Any]]) -> Responses:
    """Answer a dispatch whose deadline passed before it began: no receiver starts.

    Not robust: raise :class:`TimeoutError` naming them. Robust: each gets a
    ``TimeoutError`` as its response. Logged as one timed-out dispatch.
    """
    unfinished = Unfinished([], list(range(len(receivers))), EXPIRED_REASON)
    contextvars.copy_context().run(dispatch.report_unfinished, receivers, unfinished)
    if not dispatch.robust:
        raise dispatch.unfinished_error(TimeoutError, receivers, unfinished)
    responses = dispatch.unfinished_responses(TimeoutError, receivers, unfinished)
    return [(receiver, responses[i]) for i, receiver in enumerate(receivers)]
