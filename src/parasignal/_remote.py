"""Receivers in other processes: ``send_parallel*`` on a process pool or a dask cluster.

A signal whose *executor* runs its tasks in other processes (see
:func:`runs_elsewhere`) dispatches here instead of on the thread engine
(``_fanout``), with the same answer and the same rules, as far as another
process allows.

Which executors
---------------
Out of process: a :class:`concurrent.futures.ProcessPoolExecutor` (or a
subclass), and dask.distributed's ``Client.get_executor()`` (a
``distributed.cfexecutor.ClientExecutor``); a ``distributed.Client`` given as
the executor is taken as ``client.get_executor()`` (:func:`as_executor`).
Both are recognised by type, dask's by the module and name of a class in the
executor's MRO, so nothing here imports dask or distributed: ``import
parasignal`` never loads them, and neither does a dispatch on threads. Every
other executor runs receivers in this process, on the thread engine, as
before. ``Signal`` records the types it is given in
:data:`OUT_OF_PROCESS_TYPES` (:func:`check_out_of_process`), so its dispatch
path tells them apart with one set lookup.

A process pool gets its tasks through ``submit`` (:class:`_PoolTasks`).
dask is driven through the ``Client`` behind its executor
(:class:`_DaskTasks`: ``client.submit`` per receiver, each end relayed into a
future of parasignal's own, one ``client.cancel`` per dispatch), because the
executor's own futures log an ``InvalidStateError`` whenever a task ends just
as it is cancelled.

One dispatch
------------
1. Everything is pickled first, on the calling thread: each receiver, then the
   sender and the named arguments together (once, shared by every task). A
   process pool gets :mod:`pickle` (its receivers must be importable, as its
   own tasks must be); dask gets cloudpickle, as dask itself uses. Anything
   that does not pickle raises :class:`TypeError` naming it and the signal
   (the receiver by name; the sender by its ``repr``; a named argument by its
   keyword and type, never its value) before any task is submitted: nothing
   is half-sent.
2. One task per receiver, submitted in connection order
   (:func:`run_in_worker`, which calls the receiver in the worker and sends
   its outcome back pickled). Not chunks: a task per receiver keeps
   ``send_parallel``'s per-receiver rules (each one cancelled, timed out and
   reported on its own) and balances uneven receivers. Its price, measured
   by ``benchmarks/remote.py`` (``docs/beyond-one-machine.md``): about 2 ms
   per task beyond the first on a 2-worker ``LocalCluster``, 0.05 ms on a
   process pool; 8 receivers in 2 chunks would save dask about 12 ms of a
   dispatch of 8 CPU-bound receivers of 100 ms that takes about 460 ms. On
   dask each task is submitted with ``pure=False`` (a dispatch is never
   served from dask's cache of an earlier one) under a key named after the
   receiver.
3. The caller waits for outcomes as they arrive, without polling
   (:func:`concurrent.futures.as_completed`; awaited: done-callbacks feeding
   an :class:`asyncio.Queue`, so the event loop is never blocked), until the
   answer is decided or the dispatch's deadline passes.

The answer and failures, as ``send_parallel*``
---------------------------------------------
* ``[(receiver, response), ...]`` in connection order, each ``receiver`` the
  caller's own object (the pickled copies stay in the workers).
* Not robust: the earliest-connected failure is raised once every receiver
  before it has finished; tasks not finished are then cancelled (a task that
  has not started never starts). Every other failure is logged as
  ``signal.receiver_failed``.
* Robust: an ``Exception`` a receiver raised is its response, logged as
  ``signal.receiver_failed``. An exception that is not an ``Exception``
  (``SystemExit``...) is raised, as on threads.
* A receiver's exception comes back with the worker's formatted traceback
  as its ``__cause__`` (a :class:`RemoteTraceback`, as
  ``ProcessPoolExecutor`` does it). Events carry the worker's address
  (``"tcp://10.0.0.5:39001"`` on dask, ``"pid 1234"`` in a process pool) in
  ``thread_name``, and the duration measured in the worker.
* A response or exception that cannot be pickled back, or unpickled here, is
  that receiver's failure: a :class:`TypeError` (response) or
  :class:`RuntimeError` (exception) naming the receiver and the worker.
* Deadline: the signal's ``timeout`` (and ``parasignal.deadline()``) bound
  the call. At the deadline every unfinished task is cancelled and the
  dispatch answers as on threads (``signal.dispatch_timeout`` and capped
  ``signal.receiver_timeout`` events; :class:`TimeoutError` naming the
  unfinished receivers, or one per receiver when robust). A process pool
  tells queued tasks (cancelled: "never started") from running ones; dask
  does not say, so every unfinished receiver there "did not finish".
* Lost receivers: a task the engine fails or cancels by itself (the cluster
  or its scheduler went away, a worker process died, the pool broke or was
  shut down) is its receiver's failure, a
  :class:`concurrent.futures.BrokenExecutor` naming the receiver and chained
  from what the engine said, under the rules above: not robust, raised
  (the earliest-connected); robust, one per lost receiver, each logged. Both
  engines fail or cancel every pending task as soon as they lose their
  workers or scheduler, so nothing waits on a cluster that is gone. A dask
  cluster that is up but has no worker left waits for one, as dask does:
  give the signal a timeout to bound that.
* An executor that refuses the first task (shut down, broken, client
  closed) raises :class:`RuntimeError` naming the signal, as the thread
  engine does; tasks it refuses later are lost receivers.
* Interrupted caller (an exception in the wait, or the awaiting task
  cancelled): unfinished tasks are cancelled, and failures already known are
  logged.

What receivers get, and what they do not
----------------------------------------
Receivers are called in the worker as ``receiver(signal=..., sender=...,
**named)`` with unpickled copies. ``signal`` is the worker's own copy of the
signal when the signal is a module attribute (imported there by module and
name, as pickle finds functions); otherwise a :class:`RemoteSignal` stand-in
carrying its name. The caller's :mod:`contextvars` do not travel, nor do
thread-locals; changes a receiver makes to its arguments stay in the worker.
A receiver on a dask worker should not dispatch to the same cluster and wait:
with one thread per worker, that is dask's classic deadlock.

Reference lifetimes
-------------------
Everything a dispatch is about lives in one :class:`_Flight`, a local of the
call that drops it on return (or raise: its frames clear what they hold
before the answer is raised, so a raised exception's traceback keeps no
argument alive). Nothing here keeps any of it after the call returns, with
one exception, as on threads: a task still running on a process pool when the
caller answered (past the deadline, or after a failure was raised) has a
done-callback (:class:`_LateFailure`) holding its receiver, the signal's
failure hook, the caller's context (for the event's bound variables) and a
``repr`` of the sender, never the sender or named arguments themselves, so
that its failure is still logged; it goes when the task ends. The executor
keeps the pickled bytes of a task it has not finished, in its own queue,
until it ends. On dask every unfinished task is cancelled (a running one
finishes on its worker and is discarded there, unlogged), and the dispatch
drops its dask futures when it answers, so dask frees their results on the
workers. The awaited path's done-callback (:class:`_Arrivals`) is closed
when the dispatch answers: tasks that end later find nobody waiting.

Locks: none of parasignal's. A :class:`_Flight` belongs to the calling
thread (or task) alone. Done-callbacks run on other threads and touch only
what they hold and thread-safe objects: :func:`_relay` (on dask's callback
thread) completes a :class:`~concurrent.futures.Future`, whose own lock
makes its first completion win over the caller's ``cancel()``;
:class:`_Arrivals` hands futures to the loop with ``call_soon_threadsafe``;
:class:`_LateFailure` logs. :data:`OUT_OF_PROCESS_TYPES` only grows, one
``set.add`` at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import importlib
import math
import os
import pickle
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import (
    BrokenExecutor,
    Executor,
    Future,
    ProcessPoolExecutor,
    as_completed,
)
from concurrent.futures import TimeoutError as FuturesTimeoutError
from typing import Any, Final, NamedTuple, cast

from . import _events
from ._dispatch import Dispatch, Responses, Unfinished, not_started_reason, receiver_error
from ._dispatch import report_failure as _report_failure
from ._fanout import answer_expired
from ._inspect import describe_receiver, describe_sender, find_module_name

__all__ = [
    "OUT_OF_PROCESS_TYPES",
    "RemoteSignal",
    "RemoteTraceback",
    "as_executor",
    "await_receivers",
    "run_in_worker",
    "runs_elsewhere",
    "send_parallel",
]

#: Executor types whose tasks run in other processes, as :func:`runs_elsewhere`
#: found them (process-wide; it only grows). ``Signal`` checks every executor
#: it is given, so the dispatch path needs only a set lookup on its type.
OUT_OF_PROCESS_TYPES: set[type] = set()

# Where dask keeps the classes parasignal recognises (matched by name: dask is
# never imported here).
_DASK_EXECUTOR: Final = ("distributed.cfexecutor", "ClientExecutor")
_DASK_CLIENT: Final = ("distributed.client", "Client")

_PROTOCOL: Final = pickle.HIGHEST_PROTOCOL


def _has_class(kind: type, module: str, qualname: str) -> bool:
    # Whether kind is, or derives from, the class module.qualname (by name).
    return any(c.__module__ == module and c.__qualname__ == qualname for c in kind.__mro__)


def _is_dask(kind: type) -> bool:
    return _has_class(kind, *_DASK_EXECUTOR)


def runs_elsewhere(executor: object) -> bool:
    """Tell whether *executor* runs its tasks in other processes (see the module docstring).

    True for a :class:`~concurrent.futures.ProcessPoolExecutor` and dask's
    ``ClientExecutor`` (and their subclasses), whose types are then added to
    :data:`OUT_OF_PROCESS_TYPES`. Never imports dask. Thread-safe.
    """
    kind = type(executor)
    if kind in OUT_OF_PROCESS_TYPES:
        return True
    if isinstance(executor, ProcessPoolExecutor) or _is_dask(kind):
        OUT_OF_PROCESS_TYPES.add(kind)
        return True
    return False


def as_executor(value: object) -> object:
    """Return ``value.get_executor()`` for a ``distributed.Client``; any other *value* as is.

    So ``Signal(executor=client)`` reads as ``Signal(executor=client.get_executor())``,
    which is what the signal then holds (and ``signal.executor`` returns).
    """
    if value is not None and _has_class(type(value), *_DASK_CLIENT):
        executor: object = value.get_executor()  # type: ignore[attr-defined]
        return executor
    return value


# -- what travels -----------------------------------------------------------------------


class RemoteSignal:
    """What a receiver in another process gets as ``signal=`` when the real one can't go.

    A signal that is a module attribute reaches the worker as the worker's
    own copy of that attribute. Any other signal (one made inside a
    function, say) cannot be looked up there, so its receivers get this
    stand-in, which carries the signal's :attr:`name` and nothing else.
    """

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<RemoteSignal {self.name} (a stand-in: the signal is not a module attribute)>"

    def __reduce__(self) -> tuple[type[RemoteSignal], tuple[str]]:
        return (RemoteSignal, (self.name,))


class _SignalByName:
    """A module-level signal, pickled as where to find it (as pickle sends functions)."""

    __slots__ = ("attribute", "module", "name")

    def __init__(self, module: str, attribute: str, name: str) -> None:
        self.module = module
        self.attribute = attribute
        self.name = name

    def __reduce__(self) -> tuple[Callable[[str, str, str], object], tuple[str, str, str]]:
        return (_find_signal, (self.module, self.attribute, self.name))


def _find_signal(module: str, attribute: str, name: str) -> object:
    """In the worker: the signal bound to *module*.*attribute*, or a :class:`RemoteSignal`.

    Imports *module* if need be (an import error is the receiver's failure,
    as its own module's would be). A script's ``__main__`` in a dask worker
    is the worker's, which has no such attribute: the stand-in then.
    """
    found = getattr(importlib.import_module(module), attribute, None)
    if found is None or not hasattr(found, "send_parallel"):
        return RemoteSignal(name)
    return found


def _signal_reference(signal: object, name: str) -> _SignalByName | RemoteSignal:
    """Return what stands for *signal* in the pickled arguments (see :class:`_SignalByName`)."""
    origin = getattr(signal, "_origin", None)  # (module, line) where the Signal was made
    found = find_module_name(signal, origin[0]) if origin else None
    if found is None:
        return RemoteSignal(name)
    module, _, attribute = found.rpartition(".")
    return _SignalByName(module, attribute, name)


class RemoteTraceback(Exception):  # noqa: N818 - named as concurrent.futures.process names its own
    """The formatted traceback of an exception raised in another process.

    Set as the ``__cause__`` of a receiver's exception that came back from a
    worker, so tracebacks print where it was raised, as
    :class:`~concurrent.futures.ProcessPoolExecutor` shows them.
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f'\n"""\n{self.text}"""'


# -- the task ---------------------------------------------------------------------------

# What a task's outcome says happened (see run_in_worker).
_RETURNED: Final = 0
_RAISED: Final = 1  # an Exception: robust dispatches answer with it
_RAISED_BASE: Final = 2  # a BaseException that is not an Exception: always raised


class _Outcome(NamedTuple):
    """A task's outcome as it travels back: plain values, and the pickled value apart.

    *blob* is the pickled response or exception (None if it would not
    pickle: *why* says why); *text* is ``"Type: message"`` of an exception
    and *trace* its formatted traceback, so a failure is told even when the
    exception itself cannot travel.
    """

    kind: int
    blob: bytes | None
    where: str
    duration_ms: float
    text: str
    trace: str
    why: str


def _here() -> str:
    """Return this worker's address: a dask worker's, else ``"pid N"``."""
    distributed = sys.modules.get("distributed")
    if distributed is not None:
        try:
            return str(distributed.get_worker().address)
        except ValueError:  # not in a dask worker
            pass
    return f"pid {os.getpid()}"


def _dumps_for(*, by_value: bool) -> Callable[[object], bytes]:
    """Return the pickler: cloudpickle where the engine uses it (dask), else :mod:`pickle`."""
    if by_value:
        cloudpickle: Any = importlib.import_module("cloudpickle")
        return functools.partial(cloudpickle.dumps, protocol=_PROTOCOL)
    return functools.partial(pickle.dumps, protocol=_PROTOCOL)


def _exception_text(exc: BaseException) -> str:
    try:
        return f"{type(exc).__qualname__}: {exc}"
    except Exception:  # noqa: BLE001 - a broken __str__ must not hide the failure
        return type(exc).__qualname__


def run_in_worker(receiver_blob: bytes, arguments_blob: bytes, by_value: bool) -> bytes:
    """Call one receiver in this (worker) process, as one task; return its outcome, pickled.

    *receiver_blob* is the pickled receiver, *arguments_blob* the pickled
    ``(signal, sender, named)`` every task of the dispatch shares. Whatever
    the receiver does, this returns: its response, or the exception it
    raised, goes back inside the outcome (see :class:`_Outcome`), with this
    worker's address, the time the receiver took and, for an exception,
    its formatted traceback. A response or exception that does not pickle
    is sent back as text, for the caller to report.
    """
    where = _here()
    kind = _RETURNED
    value: object = None
    started = time.perf_counter()
    try:
        try:
            receiver = pickle.loads(receiver_blob)  # noqa: S301 - our own caller pickled it
            signal, sender, named = pickle.loads(arguments_blob)  # noqa: S301 - as above
        except Exception as exc:
            if hasattr(exc, "add_note"):  # Python 3.11+
                exc.add_note(f"(parasignal: unpickling a receiver or its arguments in {where})")
            raise
        value = receiver(signal=signal, sender=sender, **named)
    except Exception as exc:  # noqa: BLE001 - every failure goes back to the caller
        kind, value = _RAISED, exc
    except BaseException as exc:  # noqa: BLE001 - handed to the caller, as threads do
        kind, value = _RAISED_BASE, exc
    duration_ms = (time.perf_counter() - started) * 1000.0
    text = trace = why = ""
    if isinstance(value, BaseException) and kind != _RETURNED:
        text = _exception_text(value)
        trace = "".join(traceback.format_exception(type(value), value, value.__traceback__))
        value.__traceback__ = None  # pickle drops it anyway; the text above keeps it
    blob: bytes | None
    try:
        blob = _dumps_for(by_value=by_value)(value)
    except Exception as exc:  # noqa: BLE001 - an outcome that will not travel is told as text
        blob, why = None, _exception_text(exc)
    del value
    return pickle.dumps(_Outcome(kind, blob, where, duration_ms, text, trace, why), _PROTOCOL)


# -- the caller's side ------------------------------------------------------------------


class _Tasks:
    """How one kind of out-of-process executor runs a dispatch's tasks.

    Made per dispatch, owned by its :class:`_Flight`. Every task is a
    :class:`concurrent.futures.Future` of the pickled outcome, which the
    caller waits on, whatever the engine.
    """

    #: Whether receivers and arguments are pickled with cloudpickle.
    by_value = False
    #: Whether a task that cannot be cancelled has started.
    tells_started = False
    #: How events and messages name the executor when no worker is known.
    label = "an executor"

    def __init__(self) -> None:
        self.dumps = _dumps_for(by_value=self.by_value)

    def submit(self, receiver: Callable[..., Any], blob: bytes, arguments: bytes) -> Future[bytes]:
        """Submit *receiver*'s task; raise whatever the executor raises to refuse it."""
        raise NotImplementedError

    def cancel(self, futures: Sequence[Future[bytes]]) -> list[bool]:
        """Cancel *futures*; return for each whether it was cancelled (it will not run)."""
        return [future.cancel() for future in futures]

    def release(self) -> None:
        """Let go of anything held for the dispatch's tasks."""


class _PoolTasks(_Tasks):
    """A :class:`~concurrent.futures.ProcessPoolExecutor`: pickle, and tasks it reports started.

    Its futures say when a task has started (been moved into the pool's call
    queue, which holds up to ``max_workers + 1`` tasks ahead of its workers,
    or taken by a worker): those cannot be cancelled, the rest can.
    """

    by_value = False
    tells_started = True
    label = "a process pool"

    def __init__(self, executor: Executor) -> None:
        super().__init__()
        self.executor = executor

    def submit(self, receiver: Callable[..., Any], blob: bytes, arguments: bytes) -> Future[bytes]:
        del receiver  # the pool has nowhere to name it
        return self.executor.submit(run_in_worker, blob, arguments, self.by_value)


class _DaskTasks(_Tasks):
    """dask.distributed, through the ``Client`` behind a ``ClientExecutor``.

    Tasks go through ``client.submit`` rather than the executor's own
    futures, whose wrapper logs an ``InvalidStateError`` whenever a task
    ends just as it is cancelled, and cancels one task per round trip.
    Here each dask future's end is relayed (:func:`_relay`, on dask's
    callback thread, which also fetches the result there) into a
    :class:`~concurrent.futures.Future` of parasignal's own, and
    cancelling a dispatch's tasks is one ``client.cancel`` call. dask's
    futures cancel until they finish, so whether a task had started is not
    known. The executor's own submit options (``get_executor(workers=...,
    resources=..., retries=...)``) apply to every task.

    What is read from the ``ClientExecutor``: ``_client``, ``_kwargs`` and
    ``_shutdown``, which distributed's ``ClientExecutor`` has kept since
    2017; :func:`check_out_of_process` refuses one without a client.
    """

    by_value = True
    tells_started = False

    def __init__(self, executor: Executor) -> None:
        super().__init__()
        self.client: Any = getattr(executor, "_client", None)
        self.options: dict[str, Any] = dict(getattr(executor, "_kwargs", None) or {})
        self.shut_down = bool(getattr(executor, "_shutdown", False))
        address = getattr(getattr(self.client, "scheduler", None), "address", None)
        self.label = f"the dask scheduler at {address}" if address else "a dask cluster"
        # Each relay's dask future, until the dispatch lets go of them.
        self.tasks: dict[Future[bytes], Any] = {}

    def submit(self, receiver: Callable[..., Any], blob: bytes, arguments: bytes) -> Future[bytes]:
        if self.shut_down:
            msg = "cannot schedule new futures after shutdown"  # as the executor says it
            raise RuntimeError(msg)
        task = self.client.submit(
            run_in_worker,
            blob,
            arguments,
            self.by_value,
            # Named after the receiver on dask's dashboard; pure=False: a
            # dispatch runs its receivers, never reuses an earlier one's results.
            key=f"{describe_receiver(receiver)}-{uuid.uuid4().hex}",
            pure=False,
            **self.options,
        )
        relay: Future[bytes] = Future()
        self.tasks[relay] = task
        task.add_done_callback(functools.partial(_relay, relay))
        return relay

    def cancel(self, futures: Sequence[Future[bytes]]) -> list[bool]:
        cancelled = super().cancel(futures)
        doomed = [self.tasks[f] for f, done in zip(futures, cancelled, strict=True) if done]
        if doomed:
            # Only sends a message (no round trip); a client already gone has
            # nothing left to cancel.
            with contextlib.suppress(Exception):
                self.client.cancel(doomed)
        return cancelled

    def release(self) -> None:
        # Dropping the dask futures lets dask free the results on the workers.
        self.tasks = {}


def _relay(relay: Future[bytes], task: Any) -> None:
    """Pass the end of a dask future *task* to *relay*; a done-callback on dask's thread.

    Always completes *relay* (unless the caller cancelled it first), so the
    caller never waits for a task dask has given up on: finished, with the
    fetched outcome; failed, with dask's exception; cancelled or lost (the
    client or cluster went away), cancelled. Never raises.
    """
    try:
        status = task.status
        if status == "finished":
            data = task.result()
            if relay.set_running_or_notify_cancel():
                relay.set_result(data)
            return
        if status == "error":
            error = task.exception()
            if relay.set_running_or_notify_cancel():
                relay.set_exception(error)
            return
    except BaseException as exc:  # noqa: BLE001 - on dask's thread: handed to the caller
        # The outcome could not be fetched (the client closed meanwhile...).
        if relay.set_running_or_notify_cancel():
            relay.set_exception(exc)
        return
    # Cancelled (the client lost its scheduler, or was closed), or lost.
    if relay.cancel():
        relay.set_running_or_notify_cancel()


def check_out_of_process(executor: object) -> None:
    """Record whether *executor* runs tasks elsewhere; refuse a dask one parasignal can't drive.

    Called on every executor a signal is given. Raises :class:`TypeError`
    naming a dask ``ClientExecutor`` that has no ``Client`` behind it (a
    version of distributed parasignal does not know).
    """
    reachable = getattr(executor, "_client", None) is not None
    if runs_elsewhere(executor) and _is_dask(type(executor)) and not reachable:
        msg = (
            f"executor {executor!r} is a dask executor without a Client that parasignal "
            "can reach: pass the distributed.Client itself as the executor."
        )
        raise TypeError(msg)


def _tasks_for(executor: Executor) -> _Tasks:
    if _is_dask(type(executor)):
        return _DaskTasks(executor)
    return _PoolTasks(executor)


def _pack(
    dispatch: Dispatch, receivers: Sequence[Callable[..., Any]], dumps: Callable[[object], bytes]
) -> tuple[list[bytes], bytes]:
    """Pickle every receiver, then the arguments; raise TypeError naming what will not pickle."""
    blobs = []
    for receiver in receivers:
        try:
            blobs.append(dumps(receiver))
        except Exception as exc:  # noqa: BLE001, PERF203 - any pickling failure; the first stops the loop
            msg = (
                f"{dispatch.where} cannot send receiver {describe_receiver(receiver)} to another "
                f"process: it cannot be pickled ({_exception_text(exc)}). Receivers of a signal "
                "whose executor runs in other processes must pickle: module-level functions, "
                "or picklable callables."
            )
            raise TypeError(msg) from exc.with_traceback(None)
    reference = _signal_reference(dispatch.signal, dispatch.name)
    try:
        # No local holds the arguments: a failure's traceback shows none.
        arguments = dumps((reference, dispatch.sender, dispatch.named))
    except Exception as exc:  # noqa: BLE001 - re-raised just below, naming the culprit
        culprit = _culprit(dispatch, dumps)
        what, cause = culprit if culprit is not None else ("its arguments", exc)
        msg = (
            f"{dispatch.where} cannot send {what} to another process: it cannot be pickled "
            f"({_exception_text(cause)})."
        )
        raise TypeError(msg) from cause.with_traceback(None)
    return blobs, arguments


def _culprit(
    dispatch: Dispatch, dumps: Callable[[object], bytes]
) -> tuple[str, BaseException] | None:
    """Name the sender or named argument that will not pickle, and its error.

    A named argument is named by keyword and type, never by value (events
    and messages never carry argument values).
    """
    try:
        dumps(dispatch.sender)
    except Exception as exc:  # noqa: BLE001 - this is what is being looked for
        return f"its sender {describe_sender(dispatch.sender)}", exc
    named = dispatch.named
    for key in named:
        try:
            dumps(named[key])
        except Exception as exc:  # noqa: BLE001, PERF203 - as above; the first ends the search
            return f"its named argument {key!r} (a {type(named[key]).__qualname__})", exc
    return None


class _Failure(NamedTuple):
    """A failure that is raised or logged once the answer is known."""

    exc: BaseException
    where: str
    duration_ms: float


_PENDING: Final = object()  # a receiver whose task has not finished


class _Flight:
    """One dispatch to other processes: its tasks and what came back.

    Owned by the calling thread (or task) alone: no lock. Done-callbacks
    never touch it.
    """

    __slots__ = (
        "answered",
        "dispatch",
        "failures",
        "first_open",
        "futures",
        "index",
        "receivers",
        "results",
        "tasks",
    )

    def __init__(
        self, dispatch: Dispatch, receivers: Sequence[Callable[..., Any]], executor: Executor
    ) -> None:
        self.dispatch = dispatch
        self.receivers = receivers
        self.tasks = _tasks_for(executor)
        n = len(receivers)
        self.futures: list[Future[bytes] | None] = [None] * n
        self.index: dict[Future[bytes], int] = {}
        self.results: list[Any] = [_PENDING] * n
        # Failures raised or logged at the answer: not robust, every one;
        # robust, those that are not Exceptions. By receiver index.
        self.failures: dict[int, _Failure] = {}
        # The first receiver whose task has not finished (n: none).
        self.first_open = 0
        self.answered = False

    # -- submitting ----------------------------------------------------------------

    def launch(self) -> None:
        """Pickle everything, then submit one task per receiver, in connection order.

        Raises :class:`TypeError` before submitting anything if something
        does not pickle, and :class:`RuntimeError` if the executor refuses
        the first task; a task refused later is a lost receiver.
        """
        dispatch, tasks = self.dispatch, self.tasks
        blobs, arguments = _pack(dispatch, self.receivers, tasks.dumps)
        for i, receiver in enumerate(self.receivers):
            try:
                future = tasks.submit(receiver, blobs[i], arguments)
            except Exception as exc:  # whatever the executor refuses with
                if i == 0:
                    msg = f"{dispatch.where} could not start its receivers: {exc}."
                    raise RuntimeError(msg) from exc
                for j in range(i, len(self.receivers)):
                    self._lose(j, "was never started: the executor refused its task", exc)
                return
            self.futures[i] = future
            self.index[future] = i

    # -- taking outcomes -----------------------------------------------------------

    def take(self, future: Future[bytes]) -> bool:
        """Record the outcome of a finished task; return whether the answer is decided."""
        index = self.index[future]
        if future.cancelled():
            # Not by us: we cancel only once the answer is decided.
            self._lose(
                index,
                "was lost: the executor cancelled its task before it finished (the cluster or "
                "its scheduler went away, or the executor was shut down)",
                None,
            )
        elif (error := future.exception()) is not None:
            self._lose(index, f"was lost: the executor failed its task ({error!r})", error)
        else:
            self._record(index, future.result())
        return self._decided()

    def _record(self, index: int, data: bytes) -> None:
        receiver = self.receivers[index]
        outcome: _Outcome = pickle.loads(data)  # noqa: S301 - from our own task
        value, raised = _unpack(outcome, receiver, self.dispatch.where)
        if not raised:
            self.results[index] = value
        elif self.dispatch.robust and outcome.kind != _RAISED_BASE:
            self.results[index] = value
            self.dispatch.report_failure(
                receiver, value, duration_ms=outcome.duration_ms, thread=outcome.where
            )
        else:
            self.failures[index] = _Failure(value, outcome.where, outcome.duration_ms)
            self.results[index] = None
        del value

    def _lose(self, index: int, reason: str, cause: BaseException | None) -> None:
        """Record a receiver the executor failed, cancelled or refused: a BrokenExecutor."""
        dispatch = self.dispatch
        receiver = self.receivers[index]
        error = receiver_error(BrokenExecutor, dispatch.where, reason, receiver)
        error.__cause__ = cause
        label = self.tasks.label
        if dispatch.robust:
            self.results[index] = error
            dispatch.report_failure(receiver, error, duration_ms=math.nan, thread=label)
        else:
            self.failures[index] = _Failure(error, label, math.nan)
            self.results[index] = None

    def _decided(self) -> bool:
        results, n = self.results, len(self.results)
        first = self.first_open
        while first < n and results[first] is not _PENDING:
            first += 1
        self.first_open = first
        # Decided once every task finished, or every one before the earliest failure.
        return first == n or (bool(self.failures) and first > min(self.failures))

    # -- answering -----------------------------------------------------------------

    def answer(self) -> Responses:
        """Give ``send_parallel``'s answer, or raise its exception (see the module docstring).

        Called once the answer is decided or the deadline passed: receivers
        still unfinished, with no failure to raise before them, mean the
        latter.
        """
        dispatch, receivers, results = self.dispatch, self.receivers, self.results
        running, not_started = self._stop()
        failures, self.failures = self.failures, {}
        unfinished = sorted([*running, *not_started])
        raised: int | None = None
        if failures:
            first = min(failures)
            if not unfinished or unfinished[0] > first:
                raised = first
        for index in sorted(failures):
            if index != raised:
                self._report(index, failures[index])
                if dispatch.robust:  # a BaseException a receiver before it left unraised
                    results[index] = failures[index].exc
        if raised is not None:
            exc = failures[raised].exc
            failures.clear()
            self.clear()
            try:
                raise exc
            finally:
                # No cycle through this frame, and no argument kept by it.
                del exc, dispatch, receivers, results
        if not unfinished:
            return self._respond()
        # The deadline passed (unfinished receivers are never left otherwise).
        reason = not_started_reason(dispatch.timeout, None)
        gone = Unfinished(running, not_started, reason)
        dispatch.report_unfinished(receivers, gone)
        if not dispatch.robust:
            error = dispatch.unfinished_error(TimeoutError, receivers, gone)
            self.clear()
            raise error
        for index, response in dispatch.unfinished_responses(TimeoutError, receivers, gone).items():
            results[index] = response
        return self._respond()

    def _respond(self) -> Responses:
        answer = list(zip(self.receivers, self.results, strict=True))
        self.clear()
        return answer

    def _stop(self) -> tuple[list[int], list[int]]:
        """Mark the dispatch answered and cancel every unfinished task.

        Return the unfinished receivers that had started (or may have: dask
        cannot tell) and those that had not. Tasks that go on running get a
        :class:`_LateFailure`, so that their failures are still logged.
        """
        self.answered = True
        running: list[int] = []
        not_started: list[int] = []
        results, futures = self.results, self.futures
        # Submitted and unfinished (a receiver never submitted has no task:
        # the dispatch failed before, or its task was refused and so lost).
        unfinished = [
            (i, f)
            for i in range(self.first_open, len(results))
            if results[i] is _PENDING and (f := futures[i]) is not None
        ]
        cancelled_ones = self.tasks.cancel([f for _, f in unfinished])
        tells_started = self.tasks.tells_started
        for (index, future), cancelled in zip(unfinished, cancelled_ones, strict=True):
            if cancelled:
                (not_started if tells_started else running).append(index)
            else:
                running.append(index)
                future.add_done_callback(_LateFailure(self.dispatch, self.receivers[index]))
        return running, not_started

    def _report(self, index: int, failure: _Failure) -> None:
        self.dispatch.report_failure(
            self.receivers[index],
            failure.exc,
            duration_ms=failure.duration_ms,
            thread=failure.where,
        )

    def abandon(self) -> None:
        """Give up (the caller was interrupted): cancel what has not finished, log failures.

        Idempotent; nothing once the dispatch is answered.
        """
        if self.answered:
            return
        self._stop()
        failures, self.failures = self.failures, {}
        for index in sorted(failures):
            self._report(index, failures[index])
        self.clear()

    def clear(self) -> None:
        """Let go of everything the dispatch is about (see "Reference lifetimes")."""
        self.answered = True
        self.receivers = ()
        self.results = []
        self.futures = []
        self.index = {}
        self.failures = {}
        self.tasks.release()


def _unpack(outcome: _Outcome, receiver: Callable[..., Any], where: str) -> tuple[Any, bool]:
    """Return a task's response or exception, and whether it raised.

    What could not travel becomes the receiver's failure, worded here: a
    :class:`TypeError` for a response, a :class:`RuntimeError` carrying the
    text and traceback of an exception, each naming the receiver, the
    worker and the dispatch (*where*).
    """
    raised = outcome.kind != _RETURNED
    problem = ""
    if outcome.blob is None:
        problem = f"cannot be pickled back: {outcome.why}"
    else:
        try:
            value = pickle.loads(outcome.blob)  # noqa: S301 - from our own task
        except Exception as exc:  # noqa: BLE001 - what will not unpickle is the receiver's failure
            problem = f"cannot be unpickled here: {_exception_text(exc)}"
    name = describe_receiver(receiver)
    if problem and not raised:
        message = f"returned a response in {outcome.where} that {problem}"
        return TypeError(f"Receiver {name} {message} ({where})."), True
    if problem:
        message = f"raised {outcome.text} in {outcome.where}, an exception that {problem}"
        value = RuntimeError(f"Receiver {name} {message} ({where}).")
    if raised and isinstance(value, BaseException) and value.__cause__ is None:
        value.__cause__ = RemoteTraceback(outcome.trace)
    return value, raised


class _SenderRepr:
    """Stands for a sender in a late failure's event: its repr, without the sender."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


class _LateFailure:
    """Logs the failure of a task that was still running when its dispatch answered.

    A done-callback, run on the executor's thread when the task ends. Holds
    the receiver, the signal's failure hook, the caller's context and the
    sender's repr (see "Reference lifetimes"); never raises.
    """

    __slots__ = ("context", "method", "on_failure", "receiver", "sender", "where")

    def __init__(self, dispatch: Dispatch, receiver: Callable[..., Any]) -> None:
        self.receiver = receiver
        self.on_failure = dispatch.on_failure
        self.sender = _SenderRepr(describe_sender(dispatch.sender))
        self.method = dispatch.method
        self.where = dispatch.where
        self.context = contextvars.copy_context()

    def __call__(self, future: Future[bytes]) -> None:
        try:
            if future.cancelled() or future.exception() is not None:
                return  # lost after the answer: nobody is waiting to hear it
            outcome: _Outcome = pickle.loads(future.result())  # noqa: S301 - our own task
            value, raised = _unpack(outcome, self.receiver, self.where)
            if raised:
                details = _events.FailureDetails(
                    self.sender, self.method, outcome.duration_ms, outcome.where
                )
                self.context.run(_report_failure, self.on_failure, self.receiver, value, details)
            del value
        except Exception:  # noqa: BLE001 - on the executor's thread nobody would see it
            _events.print_failure("reporting a late receiver failure failed")


# -- the two ways to wait -----------------------------------------------------------------


def send_parallel(
    dispatch: Dispatch, receivers: Sequence[Callable[..., Any]], executor: object
) -> Responses:
    """Call *receivers* in other processes; return ``send``'s answer (or raise its exception).

    *executor* is one :func:`runs_elsewhere` recognised. Blocks the calling
    thread until the answer is decided or the dispatch's deadline passes.
    See the module docstring for the rules, and
    :meth:`parasignal.Signal.send_parallel` for the contract they follow.
    """
    if dispatch.deadline is not None and dispatch.deadline <= time.monotonic():
        return answer_expired(dispatch, receivers)
    executor = cast("Executor", executor)  # see runs_elsewhere()
    flight = _Flight(dispatch, receivers, executor)
    deadline = dispatch.deadline
    del dispatch, receivers
    try:
        flight.launch()
        _wait(flight, deadline)
        return flight.answer()
    except BaseException:
        flight.abandon()
        raise
    finally:
        flight.clear()
        del flight


def _wait(flight: _Flight, deadline: float | None) -> None:
    """Take outcomes as tasks finish until the answer is decided or the deadline passes."""
    if flight._decided():  # every task refused or lost at submission
        return
    timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
    with contextlib.suppress(FuturesTimeoutError):  # the builtin TimeoutError from 3.11 on
        for future in as_completed(flight.index, timeout):
            if flight.take(future):
                return


async def await_receivers(
    dispatch: Dispatch, receivers: Sequence[Callable[..., Any]], executor: object
) -> Responses:
    """Run the sync receivers of ``asend_parallel*`` on an out-of-process executor; await them.

    They run in other processes, awaited without blocking the event loop
    (the loop only pickles, submits and unpickles); ``_async.asend_parallel``
    then awaits the async receivers. If the awaiting task is cancelled,
    unfinished tasks are cancelled and the cancellation propagates.
    """
    return await _await_flight(dispatch, receivers, cast("Executor", executor))


async def _await_flight(
    dispatch: Dispatch, receivers: Sequence[Callable[..., Any]], executor: Executor
) -> Responses:
    if dispatch.deadline is not None and dispatch.deadline <= time.monotonic():
        return answer_expired(dispatch, receivers)
    flight = _Flight(dispatch, receivers, executor)
    deadline = dispatch.deadline
    del dispatch, receivers
    arrivals = _Arrivals(asyncio.get_running_loop())
    try:
        flight.launch()
        for future in flight.index:
            future.add_done_callback(arrivals)
        decided = flight._decided()
        while not decided:
            timeout = None if deadline is None else deadline - time.monotonic()
            if timeout is not None and timeout <= 0:
                break
            try:
                future = await asyncio.wait_for(arrivals.queue.get(), timeout)
            except asyncio.TimeoutError:  # the builtin TimeoutError from 3.11 on
                break
            decided = flight.take(future)
        return flight.answer()
    except BaseException:
        flight.abandon()
        raise
    finally:
        arrivals.close()
        flight.clear()
        del flight


class _Arrivals:
    """How finished tasks reach an awaiting dispatch: a done-callback feeding a queue.

    Called on the executor's thread (or this one, for a task already done);
    hands the future to the loop with ``call_soon_threadsafe``. Once the
    dispatch answers it is closed: tasks that end later (still running on a
    process pool) find nobody waiting, and the queue goes with the dispatch.
    """

    __slots__ = ("loop", "queue")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop: asyncio.AbstractEventLoop | None = loop
        self.queue: asyncio.Queue[Future[bytes]] = asyncio.Queue()

    def __call__(self, future: Future[bytes]) -> None:
        loop, queue = self.loop, self.queue
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
            loop.call_soon_threadsafe(queue.put_nowait, future)

    def close(self) -> None:
        self.loop = None
        self.queue = asyncio.Queue()  # the old one, and what it holds, go with the dispatch
