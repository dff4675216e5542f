"""A drop-in replacement for ``django.dispatch.dispatcher``, with parallel dispatch.

This module mirrors Django's: ``logger``, ``NONE_ID``, ``NO_RECEIVERS``,
``_make_id``, :class:`Signal` and :func:`receiver` have the same names and,
for ``connect``, ``disconnect``, ``has_listeners``, ``send``,
``send_robust``, ``asend`` and ``asend_robust``, the same behaviour as Django
6.1, except where the README's "Differences from Django" says parasignal
deliberately does better. The parallel methods (``send_parallel*``,
``asend_parallel*``) are parasignal's own.

Locking: each signal has one lock, ``Signal.lock``, guarding its receiver
bookkeeping (``receivers``, the connect index, the dispatch snapshot and
``sender_receivers_cache``). No receiver is ever called, and no receiver is
ever waited on, while it is held.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import itertools
import math
import numbers
import os
import sys
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from contextvars import ContextVar
from time import perf_counter as _perf_counter
from types import FrameType
from typing import Any, Final, NamedTuple, TypeVar

from . import _async, _events, _inline, _one_thread
from ._fanout import CallArguments, deadline_after, run_batch, run_batch_async
from ._inspect import accepts_kwargs
from ._pool import WorkerPool, default_pool

__all__ = ["NONE_ID", "NO_RECEIVERS", "Signal", "logger", "receiver"]

#: structlog's lazy ``parasignal`` logger, which every event goes through.
logger: Any = _events.logger

_F = TypeVar("_F", bound=Callable[..., Any])


def _make_id(target: object) -> object:
    """Return the identity key of *target*: bound methods by instance and function.

    Looked up by name at every call, as in Django, so tests may patch it.
    """
    if hasattr(target, "__func__"):
        return (id(target.__self__), id(target.__func__))  # type: ignore[attr-defined]
    return id(target)


#: The sender key of receivers connected for every sender.
NONE_ID: Final = _make_id(None)

#: Marker stored in ``sender_receivers_cache`` for a sender with no receivers.
NO_RECEIVERS: Final = object()


class _DeadFlag:
    """The weakref callback of every receiver and sender reference of one signal.

    It only raises a flag: it can run during garbage collection on any thread,
    including one that already holds the signal's lock, so it must not take
    the lock or touch ``receivers``. Cleanup happens later, under the lock.
    Being a separate object (not a bound method of the signal) it costs no
    allocation per connect and makes no reference cycle with the signal.
    """

    __slots__ = ("raised",)

    def __init__(self) -> None:
        self.raised = False

    def __call__(self, _reference: object) -> None:
        self.raised = True


# Every live signal, so that a forked child can renew their locks and pools.
_signals: weakref.WeakSet[Signal] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # The parent's other threads do not exist in the child: a lock one of
    # them held at the fork would never be released, and the pool threads are
    # gone. Fresh locks; pools are started again on first use.
    for signal in list(_signals):
        signal.lock = threading.Lock()
        signal._pool_lock = threading.Lock()
        signal._pool = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class _FailureDetails(NamedTuple):
    sender: object
    method: str
    duration_ms: float
    thread: str


# The details of the failure being handed to _log_robust_failure(), whose
# Django-compatible signature has room for the receiver and error only.
_failure_details: ContextVar[_FailureDetails | None] = ContextVar(
    "parasignal_failure_details", default=None
)

_Getter = Callable[[], Any]


def _getter(reference: object) -> _Getter:
    """Return a zero-argument callable giving the receiver, or None once it died."""
    if isinstance(reference, weakref.ReferenceType):
        return reference
    # A strong receiver: repeat(x).__next__ returns x forever, from C, so the
    # dispatch loop treats weak and strong receivers alike at no extra cost.
    return itertools.repeat(reference).__next__


# The receivers one dispatch calls: the sync ones, then the async ones, as
# getters in connection order.
_View = tuple[tuple[_Getter, ...], tuple[_Getter, ...]]
_NO_VIEW: Final[_View] = ((), ())


class _Snapshot:
    """An immutable view of ``receivers`` made for dispatching without the lock.

    It is valid while ``receivers`` is still the same list with the same
    length; every change made through the API changes one or the other.
    """

    __slots__ = (
        "_entries",
        "any_sender",
        "length",
        "per_sender",
        "source",
        "specific",
    )

    def __init__(self, receivers: list[Any]) -> None:
        self.source = receivers
        self.length = len(receivers)
        entries = tuple((entry[0][1], _getter(entry[1]), bool(entry[3])) for entry in receivers)
        self.specific = frozenset(k for k, _, _ in entries if k != NONE_ID)
        if not self.specific and not any(is_async for _, _, is_async in entries):
            # The common case: every receiver is sync and listens to every
            # sender, so one tuple serves all sends.
            self.any_sender: _View = (tuple(g for _, g, _ in entries), ())
            self._entries: tuple[tuple[object, _Getter, bool], ...] = ()
        else:
            self._entries = entries
            self.any_sender = self._view(NONE_ID)
        # Built on demand, one per sender key that has receivers of its own.
        self.per_sender: dict[object, _View] = {}

    def _view(self, skey: object) -> _View:
        chosen = [(g, a) for k, g, a in self._entries if k in (NONE_ID, skey)]
        return (tuple(g for g, a in chosen if not a), tuple(g for g, a in chosen if a))

    def for_sender_key(self, skey: object) -> _View:
        view = self.per_sender.get(skey)
        if view is None:
            view = self.per_sender[skey] = self._view(skey)
        return view


def _entry_alive(entry: Sequence[Any]) -> bool:
    ref, sender_ref = entry[1], entry[2]
    if isinstance(ref, weakref.ReferenceType) and ref() is None:
        return False
    return not (sender_ref is not None and sender_ref() is None)


def _check_timeout(timeout: object) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real):
        raise TypeError(f"timeout must be a number of seconds or None, not {timeout!r}.")
    seconds = float(timeout)
    if math.isnan(seconds) or seconds <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}.")
    return seconds


def _check_max_workers(max_workers: object) -> int | None:
    if max_workers is None:
        return None
    if isinstance(max_workers, bool) or not isinstance(max_workers, int):
        raise TypeError(f"max_workers must be an int or None, not {max_workers!r}.")
    if max_workers < 1:
        raise ValueError(f"max_workers must be at least 1, not {max_workers!r}.")
    return max_workers


def _check_executor(executor: object) -> Executor | None:
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


class Signal:
    """A signal: receivers connect to it, senders send through it.

    ``Signal(use_caching=False)`` behaves as Django 6.1's ``Signal``. The
    keyword-only arguments configure :meth:`send_parallel`,
    :meth:`send_parallel_robust`, :meth:`asend_parallel` and
    :meth:`asend_parallel_robust` and change nothing for the other methods:

    * *name*: how structured events name the signal (default: the module
      attribute the signal is bound to, found on first use, else
      ``"module:line"`` of its definition).
    * *executor*: a ``concurrent.futures.Executor`` the caller owns and shuts
      down; receivers run on its threads. parasignal never shuts it down.
    * *max_workers*: give the signal its own pool of at most this many
      threads, created on first use.
    * neither: use the process-wide shared pool (64 threads, named
      ``parasignal_N``), created on first use.
    * *timeout*: seconds a whole parallel dispatch may take; ``None`` waits.

    Bad values raise :class:`TypeError` or :class:`ValueError` here, naming
    the argument and the value.

    Public attributes, as in Django: ``receivers`` (a list of
    ``((receiver_key, sender_key), receiver_or_weakref, sender_weakref_or_None,
    is_async)`` tuples, in connection order), ``lock`` (a
    :class:`threading.Lock` guarding it), ``use_caching`` and
    ``sender_receivers_cache``. Code may read them, take the lock, or assign
    ``receivers`` a new list (``signal.receivers = []`` mutes the signal).
    Changing the list in place without changing its length is not noticed:
    assign a new list instead.

    Thread safety: every method may be called from any number of threads at
    once, including from inside receivers.
    """

    def __init__(
        self,
        use_caching: bool = False,
        *,
        name: str | None = None,
        executor: Executor | None = None,
        max_workers: int | None = None,
        timeout: float | None = None,
    ) -> None:
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str or None, not {name!r}.")
        if name is not None and not name.strip():
            raise ValueError(f"name must not be blank, not {name!r}.")
        self.executor = _check_executor(executor)
        self.max_workers = _check_max_workers(max_workers)
        if self.executor is not None and self.max_workers is not None:
            raise ValueError(
                f"Pass either executor or max_workers, not both (got executor={executor!r} "
                f"and max_workers={max_workers!r})."
            )
        self.timeout = _check_timeout(timeout)
        self.name = name
        self._receivers: list[Any] = []
        # Guards receivers, the _index* fields, _snapshot and
        # sender_receivers_cache. Held for bookkeeping only: never while a
        # receiver runs.
        self.lock = threading.Lock()
        self.use_caching = use_caching
        self.sender_receivers_cache: Any = weakref.WeakKeyDictionary() if use_caching else {}
        self._dead = _DeadFlag()
        # connect()'s O(1) duplicate check: lookup key -> entry, for the list
        # _indexed as it was when it had _indexed_len entries. A list assigned
        # from outside, or resized in place, is re-indexed on next use.
        self._index: dict[object, Any] = {}
        self._indexed: list[Any] | None = self._receivers
        self._indexed_len = 0
        # What dispatch reads without the lock; None after any change, so that
        # no stale copy keeps a disconnected receiver alive.
        self._snapshot: _Snapshot | None = None
        # Guards _pool: creating the signal's own pool.
        self._pool_lock = threading.Lock()
        self._pool: WorkerPool | None = None
        self._closed = False  # set by shutdown(); guarded by _pool_lock
        self._origin = _definition_site(self)
        self._found_name: str | None = None
        _signals.add(self)

    @property
    def receivers(self) -> list[Any]:
        """The connected receivers, in connection order (Django's format)."""
        return self._receivers

    @receivers.setter
    def receivers(self, value: list[Any]) -> None:
        # Callers may or may not hold self.lock (factory_boy's mute_signals
        # does), so this cannot take it. Dropping the derived state is safe
        # either way: every reader re-derives it from the new list, and
        # nothing keeps the old list's receivers alive.
        self._receivers = value
        self._snapshot = None
        self._indexed = None
        self._index = {}

    # -- bookkeeping (caller holds self.lock) -----------------------------------

    def _clear_dead_receivers(self) -> None:
        # Caller holds self.lock. Lower the flag first: a reference dying
        # while we filter raises it again for the next pass.
        if not self._dead.raised:
            return
        self._dead.raised = False
        receivers = self._receivers
        live: list[Any] = []
        dead: list[Any] = []
        for entry in receivers:
            (live if _entry_alive(entry) else dead).append(entry)
        if not dead:
            return
        in_sync = self._indexed is receivers and self._indexed_len == len(receivers)
        # As in Django, a new list: code holding the old one sees no change.
        self._receivers = live
        self._snapshot = None
        if in_sync:
            index = self._index
            for entry in dead:
                key = entry[0]
                if index.get(key) is entry:
                    del index[key]
            self._indexed, self._indexed_len = live, len(live)
        else:
            self._indexed, self._index = None, {}
        self.sender_receivers_cache.clear()

    def _index_locked(self) -> dict[object, Any]:
        # Caller holds self.lock.
        receivers = self._receivers
        if self._indexed is not receivers or self._indexed_len != len(receivers):
            index: dict[object, Any] = {}
            for entry in receivers:
                index.setdefault(entry[0], entry)
            self._index, self._indexed, self._indexed_len = index, receivers, len(receivers)
        return self._index

    def _snapshot_locked(self) -> _Snapshot:
        # Caller holds self.lock.
        self._clear_dead_receivers()
        snapshot = self._snapshot
        receivers = self._receivers
        if (
            snapshot is None
            or snapshot.source is not receivers
            or snapshot.length != len(receivers)
        ):
            snapshot = self._snapshot = _Snapshot(receivers)
        return snapshot

    def _getters(self, sender: object) -> _View:
        """Return the receivers for *sender*: (sync getters, async getters), in order.

        Lock-free when nothing changed since the last dispatch; otherwise
        cleans up dead references and rebuilds under the lock, like Django's
        ``_live_receivers``. With ``use_caching``, consults and fills
        ``sender_receivers_cache``.
        """
        if self.use_caching and not self._dead.raised:
            cached = _cache_get(self.sender_receivers_cache, sender)
            if cached is NO_RECEIVERS:
                return _NO_VIEW
            if cached is not None:
                return cached  # type: ignore[no-any-return]
            with self.lock:
                view = self._getters_from(self._snapshot_locked(), sender)
                empty = not (view[0] or view[1])
                _cache_set(self.sender_receivers_cache, sender, NO_RECEIVERS if empty else view)
            return view
        dead = self._dead.raised
        receivers = self._receivers
        snapshot = self._snapshot
        if (
            dead
            or snapshot is None
            or snapshot.source is not receivers
            or snapshot.length != len(receivers)
        ):
            with self.lock:
                snapshot = self._snapshot_locked()
        return self._getters_from(snapshot, sender)

    @staticmethod
    def _getters_from(snapshot: _Snapshot, sender: object) -> _View:
        if not snapshot.specific:
            return snapshot.any_sender
        skey = _make_id(sender)
        if skey in snapshot.specific:
            return snapshot.for_sender_key(skey)
        return snapshot.any_sender

    def _live_receivers(
        self, sender: object
    ) -> tuple[list[Callable[..., Any]], list[Callable[..., Any]]]:
        """Return strong references to the live (sync, async) receivers for *sender*.

        In connection order; the same shape as Django's ``_live_receivers``.
        """
        sync, async_ = self._getters(sender)
        return (
            [r for get in sync if (r := get()) is not None],
            [r for get in async_ if (r := get()) is not None],
        )

    # -- Django's API -----------------------------------------------------------

    def connect(
        self,
        receiver: Callable[..., Any],
        sender: object = None,
        weak: bool = True,
        dispatch_uid: object = None,
    ) -> None:
        """Connect *receiver* to this signal, for *sender* or (``None``) every sender.

        The receiver must be callable and accept ``**kwargs``; otherwise
        ``TypeError("Signal receivers must be callable.")`` or
        ``ValueError("Signal receivers must accept keyword arguments
        (**kwargs).")`` is raised, always (Django checks only under DEBUG).

        The receiver is identified by *dispatch_uid* if given (and truthy),
        else by identity (a bound method by its instance and function, so
        ``obj.meth`` taken twice is one receiver), together with the sender's
        identity. Connecting an identified receiver again does nothing: the
        first registration stays, in its place. Takes amortised O(1) time.

        With *weak* (the default) the signal holds the receiver through a
        weak reference and forgets it once it is garbage collected; a receiver
        that cannot be weakly referenced raises ``TypeError`` asking for
        ``weak=False``. A sender is held weakly where possible, so a new
        object reusing a dead sender's ``id()`` never gets its receivers.

        A rejected connect leaves the signal unchanged. Thread-safe.
        """
        if not callable(receiver):
            raise TypeError("Signal receivers must be callable.")
        if not accepts_kwargs(receiver):
            raise ValueError("Signal receivers must accept keyword arguments (**kwargs).")
        sender_key = _make_id(sender)
        if sender_key == NONE_ID:
            sender_key = NONE_ID  # share one int object among all such entries
        lookup_key = (dispatch_uid or _make_id(receiver), sender_key)
        try:
            hash(lookup_key)
        except TypeError as exc:
            raise TypeError(f"dispatch_uid must be hashable, not {dispatch_uid!r}.") from exc
        reference: object = receiver
        if weak:
            ref_type: Any = weakref.ref
            if hasattr(receiver, "__self__") and hasattr(receiver, "__func__"):
                ref_type = weakref.WeakMethod
            try:
                reference = ref_type(receiver, self._dead)
            except TypeError as exc:
                raise TypeError(
                    f"Cannot connect {receiver!r} weakly: it cannot be weakly referenced. "
                    "Pass weak=False to connect() to keep a strong reference to it."
                ) from exc
        sender_ref = None
        if sender is not None:
            # A sender that cannot be weakly referenced is simply not watched:
            # as in Django, receivers are then matched by its id() alone.
            with contextlib.suppress(TypeError):
                sender_ref = weakref.ref(sender, self._dead)
        entry = (lookup_key, reference, sender_ref, inspect.iscoroutinefunction(receiver))
        with self.lock:
            self._clear_dead_receivers()
            index = self._index_locked()
            if lookup_key not in index:
                index[lookup_key] = entry
                self._receivers.append(entry)
                self._indexed_len += 1
                self._snapshot = None
            self.sender_receivers_cache.clear()

    def disconnect(
        self, receiver: object = None, sender: object = None, dispatch_uid: object = None
    ) -> bool:
        """Disconnect the receiver identified as :meth:`connect` identifies it.

        Return True if a receiver was disconnected, False if none matched.
        Weakly connected receivers need not be disconnected: they leave on
        their own when garbage collected. Thread-safe; receivers may
        disconnect themselves, or others, while a dispatch is running (a
        dispatch already under way still calls every receiver it started with).
        """
        lookup_key = (dispatch_uid or _make_id(receiver), _make_id(sender))
        with self.lock:
            self._clear_dead_receivers()
            index = self._index_locked()
            try:
                entry = index.pop(lookup_key, None)
            except TypeError:  # an unhashable dispatch_uid was never connected
                entry = None
            if entry is not None:
                self._receivers.remove(entry)
                self._indexed_len -= 1
                self._snapshot = None
            self.sender_receivers_cache.clear()
        return entry is not None

    def has_listeners(self, sender: object = None) -> bool:
        """Return whether any live receiver would receive a send from *sender*.

        Thread-safe; the answer may be stale by the time it is used.
        """
        sync, async_ = self._getters(sender)
        return any(get() is not None for get in sync) or any(get() is not None for get in async_)

    def send(self, sender: object, **named: Any) -> list[tuple[Callable[..., Any], Any]]:
        """Call every receiver for *sender* in connection order, on this thread.

        Each receiver is called as ``receiver(signal=self, sender=sender,
        **named)``. Return ``[(receiver, response), ...]``. If a receiver
        raises, the exception propagates at once and later receivers are not
        called. Receivers connected or disconnected during the call do not
        change which receivers it calls. Thread-safe; the lock is not held
        while receivers run.

        Async receivers (coroutine functions), as in Django 6.1, are awaited
        after the sync ones, concurrently, on an event loop of their own in
        this thread, and listed after them; the first to fail cancels the
        others and is raised (several at once: an ``ExceptionGroup``). Their
        contextvars changes flow back to the caller. In a thread that is
        running an event loop this raises :class:`RuntimeError`: await
        :meth:`asend` there.
        """
        if not self._receivers:
            return []
        sync, async_ = self._getters(sender)
        # Comprehensions, and literal keywords when there are no named
        # arguments, make this about twice as fast as a loop over **named.
        if named:
            responses = [
                (r, r(signal=self, sender=sender, **named))
                for get in sync
                if (r := get()) is not None
            ]
        else:
            responses = [
                (r, r(signal=self, sender=sender)) for get in sync if (r := get()) is not None
            ]
        if async_:
            responses += self._run_async(async_, sender, named, robust=False, method="send")
        return responses

    def _run_async(
        self,
        getters: Sequence[_Getter],
        sender: object,
        named: Mapping[str, Any],
        *,
        robust: bool,
        method: str,
        deadline: float | None = None,
    ) -> list[tuple[Callable[..., Any], Any]]:
        receivers = [r for get in getters if (r := get()) is not None]
        if not receivers:
            return []
        return _async.run(
            self,
            receivers,
            sender,
            named,
            robust=robust,
            method=method,
            deadline=deadline,
            timeout=self.timeout,
        )

    def send_robust(self, sender: object, **named: Any) -> list[tuple[Callable[..., Any], Any]]:
        """Like :meth:`send`, but a receiver's ``Exception`` becomes its response.

        Every receiver is called, in order, on this thread. A receiver that
        raises an ``Exception`` gets the exception instance (with its
        ``__traceback__``) as its response, and a ``signal.receiver_failed``
        event is logged through :meth:`_log_robust_failure`. Exceptions that
        are not ``Exception`` subclasses (``KeyboardInterrupt``...) propagate.
        Async receivers are awaited after the sync ones, as in :meth:`send`,
        their failures handled the same way. Thread-safe.
        """
        if not self._receivers:
            return []
        sync, async_ = self._getters(sender)
        receivers = [r for get in sync if (r := get()) is not None]
        responses = self._call_in_order(receivers, sender, named, robust=True, method="send_robust")
        if async_:
            responses += self._run_async(async_, sender, named, robust=True, method="send_robust")
        return responses

    def _call_in_order(
        self,
        receivers: Sequence[Callable[..., Any]],
        sender: object,
        named: Mapping[str, Any],
        *,
        robust: bool,
        method: str,
    ) -> list[tuple[Callable[..., Any], Any]]:
        """Call sync *receivers* one after another on this thread.

        Robust: an ``Exception`` becomes the receiver's response and is
        reported as a failure of *method*. Otherwise it propagates.
        """
        return self._call_each(
            receivers, CallArguments(sender, named), robust=robust, method=method
        )

    def _call_each(
        self,
        receivers: Sequence[Callable[..., Any]],
        arguments: CallArguments,
        *,
        robust: bool,
        method: str,
    ) -> list[tuple[Callable[..., Any], Any]]:
        # The frame that catches receivers' exceptions, and so the first one
        # their tracebacks show: it holds the arguments only inside
        # CallArguments, whose repr hides their values from renderers that
        # print frame locals.
        responses: list[tuple[Callable[..., Any], Any]] = []
        for receiver in receivers:
            started = _perf_counter()
            try:
                response = receiver(signal=self, sender=arguments.sender, **arguments.named)
            except Exception as err:
                if not robust:
                    raise
                self._report_failure(
                    receiver,
                    err,
                    sender=arguments.sender,
                    method=method,
                    duration_ms=(_perf_counter() - started) * 1000.0,
                    thread=threading.current_thread().name,
                )
                responses.append((receiver, err))
            else:
                responses.append((receiver, response))
        try:
            return responses
        finally:
            # A robust failure's traceback holds this frame: without its
            # locals, the answer and the exceptions in it form no cycle, and
            # reference counting frees them once the caller drops the answer.
            del responses

    # -- async dispatch --------------------------------------------------------

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
    ) -> list[tuple[Callable[..., Any], Any]]:
        if not self._receivers:
            return []
        sync, async_ = self._live_receivers(sender)
        responses: list[tuple[Callable[..., Any], Any]] = []
        if sync:
            # One call on one thread, as Django's sync_to_async(sync_send).
            # The partial holds the receivers (strongly) until it returns.
            responses = await _one_thread.call(
                functools.partial(
                    self._call_in_order, sync, sender, named, robust=robust, method=method
                )
            )
        if async_:
            responses += await _async.gather(
                self, async_, sender, named, robust=robust, method=method
            )
        return responses

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
    ) -> list[tuple[Callable[..., Any], Any]]:
        if self._closed:
            self._checked_executor(method)  # raises, naming the signal
        if not self._receivers:
            return []
        sync, async_ = self._live_receivers(sender)
        deadline = deadline_after(self.timeout)
        responses: list[tuple[Callable[..., Any], Any]] = []
        if sync:
            executor = self._checked_executor(method)
            if _inline.active():
                # parasignal.testing.inline(): the same engine, run on the
                # thread asend would use, so a test's transaction is visible.
                responses = await _one_thread.call(
                    functools.partial(
                        _inline.run_keeping_contexts,
                        self,
                        sync,
                        sender,
                        named,
                        robust=robust,
                        method=method,
                        timeout=self.timeout,
                    )
                )
            else:
                responses = await run_batch_async(
                    self,
                    sync,
                    sender,
                    named,
                    robust=robust,
                    method=method,
                    executor=executor,
                    timeout=self.timeout,
                    deadline=deadline,
                )
        if async_:
            responses += await _async.gather(
                self,
                async_,
                sender,
                named,
                robust=robust,
                method=method,
                deadline=deadline,
                timeout=self.timeout,
            )
        return responses

    # -- parallel dispatch ----------------------------------------------------

    def send_parallel(self, sender: object, **named: Any) -> list[tuple[Callable[..., Any], Any]]:
        """Call every receiver for *sender* concurrently on worker threads.

        Receivers are chosen exactly as :meth:`send` chooses them. Each is
        called as ``receiver(signal=self, sender=sender, **named)`` on a
        thread of the signal's pool (see :class:`Signal`), in its own copy of
        the caller's :mod:`contextvars` context. Receivers start in
        connection order. Return ``[(receiver, response), ...]`` in
        connection order: what :meth:`send` would return.

        Failure: the exception :meth:`send` would raise (the one from the
        earliest-connected failing receiver) is raised as soon as every
        receiver before it has finished. Receivers that had not started are
        never called; those still running finish in the background, and any
        failure not raised here is logged as ``signal.receiver_failed``.

        Timeout: if the signal has a *timeout* and it passes first, raise
        :class:`TimeoutError` naming the receivers that had not finished
        (those not started never will) and log ``signal.receiver_timeout``
        for each.

        With no receivers, return ``[]`` without touching a pool. Raise
        :class:`RuntimeError` if the pool has been shut down.

        Thread safety: any number of threads may call this at once. The
        signal's lock is never held while a receiver runs or is waited on.
        A receiver may call ``send_parallel`` again (re-entrancy): the worker
        thread it runs on then takes part in the nested dispatch itself, so
        it never deadlocks, even with ``max_workers=1``; receivers it runs
        itself are not bounded by the nested call's deadline.
        """
        return self._send_parallel(sender, named, robust=False, method="send_parallel")

    def send_parallel_robust(
        self, sender: object, **named: Any
    ) -> list[tuple[Callable[..., Any], Any]]:
        """Like :meth:`send_parallel`, but wait for every receiver.

        A receiver that raises an ``Exception`` gets the exception instance
        (with its traceback) as its response and is logged as
        ``signal.receiver_failed``. At the deadline, each receiver that had
        not finished gets a :class:`TimeoutError` instance as its response
        and is logged as ``signal.receiver_timeout``. Exceptions that are not
        ``Exception`` subclasses propagate, as in :meth:`send_robust`.
        """
        return self._send_parallel(sender, named, robust=True, method="send_parallel_robust")

    def _send_parallel(
        self, sender: object, named: Mapping[str, Any], *, robust: bool, method: str
    ) -> list[tuple[Callable[..., Any], Any]]:
        if self._closed:
            self._checked_executor(method)  # raises, naming the signal
        if not self._receivers:
            return []
        sync, async_ = self._getters(sender)
        receivers = [r for get in sync if (r := get()) is not None]
        deadline = deadline_after(self.timeout)
        responses: list[tuple[Callable[..., Any], Any]] = []
        if receivers:
            executor: Executor | WorkerPool = self._checked_executor(method)
            if _inline.active():
                # parasignal.testing.inline(): on this thread, one receiver
                # after another, through the same engine (same answer, same
                # failure rules, same events).
                executor = _inline.EXECUTOR
            responses = run_batch(
                self,
                receivers,
                sender,
                named,
                robust=robust,
                method=method,
                executor=executor,
                timeout=self.timeout,
                deadline=deadline,
            )
        if async_:
            # As send() does: after the sync receivers, on an event loop of
            # their own in this thread, within what is left of the deadline.
            responses += self._run_async(
                async_, sender, named, robust=robust, method=method, deadline=deadline
            )
        return responses

    def _checked_executor(self, method: str) -> Executor | WorkerPool:
        """Return the executor for a parallel dispatch, or raise RuntimeError naming the signal."""
        if self._closed:
            raise RuntimeError(
                f"{self._display_name()}.{method}() cannot run: the signal has been shut "
                "down (Signal.shutdown()). send(), send_robust(), asend() and asend_robust() "
                "still work."
            )
        try:
            return self._dispatch_executor()
        except RuntimeError as exc:
            msg = f"{self._display_name()}.{method}() cannot run: {exc}."
            raise RuntimeError(msg) from exc

    def _dispatch_executor(self) -> Executor | WorkerPool:
        if self.executor is not None:
            return self.executor
        if self.max_workers is None:
            return default_pool()
        pool = self._pool
        if pool is None:
            with self._pool_lock:
                pool = self._pool
                if pool is None:
                    if self._closed:
                        msg = "the signal has been shut down"
                        raise RuntimeError(msg)
                    pool = self._pool = WorkerPool(
                        self.max_workers, f"parasignal-{self._display_name()}"
                    )
                    # The pool's threads do not reference the signal, so a
                    # signal that is garbage-collected can release them.
                    weakref.finalize(self, pool.shutdown, wait=False)
        return pool

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop parallel dispatch on this signal and release its own pool.

        Afterwards :meth:`send_parallel`, :meth:`send_parallel_robust`,
        :meth:`asend_parallel` and :meth:`asend_parallel_robust` raise
        :class:`RuntimeError` naming the signal; :meth:`send`,
        :meth:`send_robust`, :meth:`asend` and :meth:`asend_robust` keep
        working. The signal's own pool (from
        *max_workers*) finishes the receivers already started or queued and
        its threads exit; with *wait*, this blocks until they have. A user's
        *executor*, and the shared default pool, are left alone.

        With *cancel_futures*, receivers of dispatches in flight on the
        signal's own pool that have not started never start: a pending
        :meth:`send_parallel_robust` gives each of them a
        :class:`concurrent.futures.CancelledError` instance as its response,
        and a pending :meth:`send_parallel` raises ``CancelledError`` naming
        them (or the exception of a receiver that failed before them).

        Idempotent and thread-safe. Called from a receiver running on a
        parasignal worker thread, it never waits (two receivers shutting down
        each other's pools would otherwise wait for each other forever).
        """
        with self._pool_lock:
            self._closed = True
            pool = self._pool
        if pool is not None:
            pool.shutdown(wait, cancel_futures=cancel_futures)

    # -- failure reporting ------------------------------------------------------

    def _report_failure(
        self,
        receiver: Callable[..., Any],
        err: BaseException,
        *,
        sender: object,
        method: str,
        duration_ms: float,
        thread: str,
    ) -> None:
        token = _failure_details.set(_FailureDetails(sender, method, duration_ms, thread))
        try:
            self._log_robust_failure(receiver, err)
        finally:
            _failure_details.reset(token)

    def _log_robust_failure(self, receiver: Callable[..., Any], err: BaseException) -> None:
        """Report a receiver failure that is not raised to the caller.

        Called, as in Django, with the receiver and its exception, on the
        thread and in the context the receiver ran in. The default emits a
        ``signal.receiver_failed`` structlog event; override it to report
        differently. It must not raise.
        """
        details = _failure_details.get()
        if details is None:
            details = _FailureDetails(None, "unknown", math.nan, threading.current_thread().name)
        _events.emit_receiver_failed(
            signal=self._display_name(),
            receiver=receiver,
            sender=details.sender,
            method=details.method,
            duration_ms=details.duration_ms,
            thread=details.thread,
            exc=err,
        )

    def _display_name(self) -> str:
        """Return the signal's name for events and messages (see *name*)."""
        if self.name is not None:
            return self.name
        if self._found_name is not None:
            return self._found_name
        module_name, line = self._origin
        module = sys.modules.get(module_name)
        # The first attribute bound to the signal is its definition: module
        # dicts keep insertion order. Only a hit is cached: the module may
        # still be importing.
        for attribute, value in list(vars(module).items()) if module is not None else ():
            if value is self:
                found = self._found_name = f"{module_name}.{attribute}"
                return found
        return f"{module_name}:{line}"

    def __repr__(self) -> str:
        return f"<{type(self).__qualname__} {self._display_name()}>"


def _definition_site(signal: Signal) -> tuple[str, int]:
    """Where *signal* is being constructed: the first frame outside its __init__s."""
    frame: FrameType | None = sys._getframe(2)
    while frame is not None and frame.f_code.co_name == "__init__":
        if frame.f_locals.get("self") is not signal:
            break
        frame = frame.f_back  # a subclass's __init__ calling super().__init__
    if frame is None:
        return ("<unknown>", 0)
    return (str(frame.f_globals.get("__name__", "<unknown>")), frame.f_lineno)


def _cache_get(cache: Any, sender: object) -> Any:
    try:
        return cache.get(sender)
    except TypeError:  # senders that cannot be weakly referenced (or hashed) are not cached
        return None


def _cache_set(cache: Any, sender: object, value: object) -> None:
    with contextlib.suppress(TypeError):  # as in _cache_get
        cache[sender] = value


def receiver(
    signal: Signal | list[Signal] | tuple[Signal, ...], **kwargs: Any
) -> Callable[[_F], _F]:
    """Connect the decorated function to *signal* (or to each signal of a list).

    *kwargs* are passed to :meth:`Signal.connect`. Returns the function
    unchanged, so its type is preserved::

        @receiver(order_placed, sender=Order)
        def notify(sender, **kwargs): ...
    """

    def _decorator(func: _F) -> _F:
        if isinstance(signal, (list, tuple)):
            for s in signal:
                s.connect(func, **kwargs)
        else:
            signal.connect(func, **kwargs)
        return func

    return _decorator
