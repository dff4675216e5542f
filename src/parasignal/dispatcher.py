"""A drop-in replacement for ``django.dispatch.dispatcher``, with parallel dispatch.

This module mirrors Django's: ``logger``, ``NONE_ID``, ``NO_RECEIVERS``,
``_make_id``, :class:`Signal` and :func:`receiver` have the same names and,
for ``connect``, ``disconnect``, ``has_listeners``, ``send``,
``send_robust``, ``asend`` and ``asend_robust``, the same behaviour as Django
6.1, except where the README's "Differences from Django" says parasignal
deliberately does better. The parallel methods (``send_parallel*``,
``asend_parallel*``) are parasignal's own.

:class:`Signal` is the face: each public method turns its call into a
:class:`~parasignal._dispatch.Dispatch` value and hands it down, with the
receivers :class:`~parasignal._receivers.Receivers` chose for the sender, to
the ordered loop (``_dispatch``), the thread engine (``_fanout``) or the
awaited paths (``_async``). Nothing below calls back up.

Locking: each signal has one lock, ``Signal.lock``, guarding its receiver
bookkeeping (``receivers``, the connect index, the dispatch snapshot and
``sender_receivers_cache``). No receiver is ever called, and no receiver is
ever waited on, while it is held.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Executor
from typing import Any, Final, TypeVar

from . import _events, _inline, _remote
from ._async import AsyncSending
from ._dispatch import (
    Dispatch,
    Responses,
    call_in_order,
    deadline_var,
    dispatch_deadline,
    signal_among_named,
)
from ._fanout import call_alone, in_helper, run_alone, run_batch
from ._inspect import accepts_kwargs, definition_site, find_module_name, is_coroutine_function
from ._options import Options
from ._receivers import NO_RECEIVERS, NONE_ID, DjangoAttributes, Receivers

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


# Whether a dispatch is robust, passed positionally on the hot path.
_ROBUST: Final = True
_RAISING: Final = False


def _make_id_now(target: object) -> object:
    # Whatever _make_id is bound to at this moment (tests patch it).
    return _make_id(target)


class Signal(DjangoAttributes, Options, AsyncSending):
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
      One that runs tasks in other processes, a ``ProcessPoolExecutor`` or
      dask.distributed's ``client.get_executor()`` (a ``distributed.Client``
      is taken as that, and ``executor`` then returns it), gets the
      receivers, sender and named arguments pickled, one task per receiver,
      with the same answer and failure rules; receivers, sender and
      arguments that do not pickle raise :class:`TypeError` before anything
      is sent. See ``docs/beyond-one-machine.md``.
    * *max_workers*: give the signal its own pool of at most this many
      threads, created on first use.
    * neither: use the process-wide shared pool (64 threads, named
      ``parasignal_N``), created on first use.
    * *timeout*: seconds a whole parallel dispatch may take; ``None`` waits.
    * *caller_runs*: whether, without a *timeout*, the calling thread runs
      receivers too, alongside the pool's threads (the default; see
      :meth:`send_parallel`, "Threads"). ``False``: receivers run only on
      the pool's threads.

    Bad values raise :class:`TypeError` or :class:`ValueError` here, and
    when these attributes are assigned later, naming the argument and the
    value.

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
        caller_runs: bool = True,
    ) -> None:
        # The options, checked (they live in Options, the executor and the
        # signal's pool in a PoolOwner).
        self._init_options(name, executor, max_workers, timeout, caller_runs)
        # Who is connected (the public receivers, lock, use_caching and
        # sender_receivers_cache live there: see DjangoAttributes).
        self._connections = Receivers(use_caching)
        self._origin = definition_site(self)
        self._found_name: str | None = None
        # How many muted() blocks are open (any thread); changed under
        # _mute_lock, read without it by every send (one int, atomically).
        self._muted = 0
        self._mute_lock = threading.Lock()

    def _live_receivers(
        self, sender: object
    ) -> tuple[list[Callable[..., Any]], list[Callable[..., Any]]]:
        """Return strong references to the live (sync, async) receivers for *sender*.

        In connection order; the same shape as Django's ``_live_receivers``.
        """
        sync, async_ = self._connections.view(sender, _make_id_now)
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
        self._connect(receiver, sender, weak=weak, dispatch_uid=dispatch_uid)

    def _connect(
        self, receiver: Callable[..., Any], sender: object, *, weak: bool, dispatch_uid: object
    ) -> bool:
        # connect(), returning whether the receiver was added (it was not if
        # it was connected the same way already).
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
        connections = self._connections
        reference: object = receiver
        if weak:
            try:
                reference = connections.weak_reference(receiver)
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
                sender_ref = connections.weak_reference(sender)
        entry = (lookup_key, reference, sender_ref, is_coroutine_function(receiver))
        return connections.add(lookup_key, entry)

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
        return self._connections.remove(lookup_key)

    @contextlib.contextmanager
    def connected_to(
        self,
        receiver: Callable[..., Any],
        sender: object = None,
        *,
        weak: bool = False,
        dispatch_uid: object = None,
    ) -> Iterator[Callable[..., Any]]:
        """Connect *receiver* for the duration of a ``with`` block, as blinker's ``connected_to``.

        ``with signal.connected_to(handler):`` connects it (strongly by
        default: the block holds it, and a lambda would otherwise vanish at
        once) and disconnects it when the block exits, even on an exception,
        which propagates. A receiver already connected the same way before
        the block stays connected after it. The arguments are
        :meth:`connect`'s, with its checks. Thread-safe; other threads see
        the receiver connected while the block runs.
        """
        added = self._connect(receiver, sender, weak=weak, dispatch_uid=dispatch_uid)
        try:
            yield receiver
        finally:
            if added:
                self.disconnect(receiver, sender=sender, dispatch_uid=dispatch_uid)

    @contextlib.contextmanager
    def muted(self) -> Iterator[None]:
        """Silence the signal for the duration of a ``with`` block, as blinker's ``muted``.

        Inside it every send method returns ``[]`` at once and calls no
        receiver: ``send``, ``send_robust``, ``asend``, ``asend_robust`` and
        the parallel ones. Receivers stay connected, and may be connected
        and disconnected meanwhile. Muting is signal-wide, not per thread:
        sends from every thread are silenced while any ``muted()`` block is
        open (blocks nest, and may overlap across threads). Thread-safe.
        """
        with self._mute_lock:
            self._muted += 1
        try:
            yield
        finally:
            with self._mute_lock:
                self._muted -= 1

    def has_listeners(self, sender: object = None) -> bool:
        """Return whether any live receiver would receive a send from *sender*.

        Thread-safe; the answer may be stale by the time it is used.
        """
        sync, async_ = self._connections.view(sender, _make_id_now)
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
        if self._muted:
            return []  # see muted()
        if not self._connections.entries:
            return []
        sync, async_ = self._connections.view(sender, _make_id_now)
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
            responses += self._run_async(async_, self._dispatch("send", sender, named))
        return responses

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
        if self._muted:
            return []  # see muted()
        if not self._connections.entries:
            return []
        sync, async_ = self._connections.view(sender, _make_id_now)
        dispatch = self._dispatch("send_robust", sender, named, robust=True)
        responses = call_in_order(dispatch, [r for get in sync if (r := get()) is not None])
        if async_:
            responses += self._run_async(async_, dispatch)
        try:
            return responses
        finally:
            del responses  # no cycle through a failure's traceback (see _send_parallel)

    # -- parallel dispatch ----------------------------------------------------

    def send_parallel(self, sender: object, **named: Any) -> list[tuple[Callable[..., Any], Any]]:
        """Call every receiver for *sender* concurrently on worker threads.

        Receivers are chosen exactly as :meth:`send` chooses them. Each is
        called as ``receiver(signal=self, sender=sender, **named)`` in its
        own copy of the caller's :mod:`contextvars` context. Receivers start
        in connection order. Return ``[(receiver, response), ...]`` in
        connection order: what :meth:`send` would return.

        Threads: receivers run on the signal's pool (see :class:`Signal`).
        Without a deadline (no *timeout* and no :func:`parasignal.deadline`),
        the calling thread also takes part: it claims receivers in order
        like a pool thread and wakes one more pool thread whenever work is
        left, so quick receivers often all run on the calling thread, with
        its thread-locals (a Django database connection, for one), as in
        :meth:`send`. ``Signal(caller_runs=False)`` keeps every receiver on
        the pool. With a deadline the caller only waits, so that it can
        return at the deadline even if a receiver never does.

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
        return self._send_parallel(sender, named, _RAISING, "send_parallel")

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
        return self._send_parallel(sender, named, _ROBUST, "send_parallel_robust")

    def _send_parallel(  # noqa: PLR0912 - the library's hot path stays in one frame
        self, sender: object, named: Mapping[str, Any], robust: bool, method: str
    ) -> Responses:
        # The hot path of the library's main feature: names are looked up
        # once, and nothing is built that a quick dispatch does not need.
        if self._muted:
            return []  # see muted()
        if self._pools.closed:
            self._executor(method)  # raises, naming the signal
        if "signal" in named:
            raise signal_among_named(self._display_name(), method)
        # A deadline counts from here: choosing the receivers (the first
        # dispatch after a connect builds a snapshot of them all) is part of
        # the time the dispatch may take.
        timeout = self._timeout
        began = None if timeout is None and deadline_var.get() is None else time.monotonic()
        connections = self._connections
        if not connections.entries:
            return []
        sync, async_ = connections.view(sender, _make_id_now)
        receivers: Sequence[Callable[..., Any]]
        if len(sync) == 1:
            # One receiver (the common case): no comprehension to set up.
            receiver = sync[0]()
            receivers = [] if receiver is None else [receiver]
            del receiver
        else:
            receivers = connections.strong_receivers(sync) or [
                r for get in sync if (r := get()) is not None
            ]
        if not (receivers or async_):
            return []
        if began is None:
            deadline = None
        else:
            deadline, timeout = dispatch_deadline(timeout, began)
        # The dispatch value is made only where it is needed: one receiver
        # that fails by raising needs none (a third of such a dispatch).
        dispatch: Dispatch | None = None
        responses: Responses = []
        if receivers:
            executor = self._pools.ready()
            if executor is None or _inline.depth:
                executor = self._executor(method)
            # The calling thread takes part without a deadline (it could not
            # leave a receiver that hangs), and always in a dispatch nested
            # in a helper, whose pool may have no other free thread.
            caller_runs = (deadline is None and self._caller_runs) or in_helper()
            if type(executor) in _remote.OUT_OF_PROCESS_TYPES:
                # Receivers in other processes (a process pool, a dask cluster):
                # the type was recorded when the executor was checked.
                dispatch = self._dispatch(method, sender, named, robust, timeout, deadline)
                responses = _remote.send_parallel(dispatch, receivers, executor)
            elif len(receivers) == 1 and (caller_runs or executor is None):
                # Nothing could run beside it: no batch, no helper.
                if deadline is None and not robust:
                    responses = call_alone(receivers[0], self, sender, named)
                else:
                    dispatch = self._dispatch(method, sender, named, robust, timeout, deadline)
                    responses = run_alone(dispatch, receivers[0])
            else:
                dispatch = self._dispatch(method, sender, named, robust, timeout, deadline)
                responses = run_batch(dispatch, receivers, executor, caller_runs=caller_runs)
        if async_:
            # As send() does: after the sync receivers, on an event loop of
            # their own in this thread, within what is left of the deadline.
            if dispatch is None:
                dispatch = self._dispatch(method, sender, named, robust, timeout, deadline)
            responses += self._run_async(async_, dispatch)
        try:
            return responses
        finally:
            # A robust failure of a receiver this thread ran has a traceback
            # whose frames lead back here: without the answer in this frame,
            # the answer and its exceptions form no cycle.
            del responses

    def _dispatch(  # noqa: PLR0917 - a dispatch's fields, positionally, on the hot path
        self,
        method: str,
        sender: object,
        named: Mapping[str, Any],
        robust: bool = False,
        timeout: float | None = None,
        deadline: float | None = None,
    ) -> Dispatch:
        """Make the value one dispatch hands down to whatever calls the receivers.

        *timeout* words messages about a missed *deadline* (see ``Dispatch``).
        """
        return Dispatch(
            self,
            self._display_name,
            method,
            sender,
            named,
            robust,
            timeout,
            deadline,
            self._report_failure,
        )

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
        self._pools.shutdown(wait, cancel_futures=cancel_futures)

    # -- failure reporting ------------------------------------------------------

    def _report_failure(
        self, receiver: Callable[..., Any], err: BaseException, details: _events.FailureDetails
    ) -> None:
        # Django's hook has room for the receiver and the error only: the
        # rest of what the event says travels beside it.
        with _events.failure_details(details):
            self._log_robust_failure(receiver, err)

    def _log_robust_failure(self, receiver: Callable[..., Any], err: BaseException) -> None:
        """Report a receiver failure that is not raised to the caller.

        Called, as in Django, with the receiver and its exception, on the
        thread and in the context the receiver ran in. The default emits a
        ``signal.receiver_failed`` structlog event; override it to report
        differently. It must not raise.
        """
        _events.emit_receiver_failed(
            signal=self._display_name(),
            receiver=receiver,
            exc=err,
            details=_events.current_failure_details(),
        )

    def _display_name(self) -> str:
        """Return the signal's name for events and messages (see *name*)."""
        if self._name is not None:
            return self._name
        if self._found_name is not None:
            return self._found_name
        module_name, line = self._origin
        # Only a hit is cached: the module may still be importing.
        found = self._found_name = find_module_name(self, module_name)
        return found if found is not None else f"{module_name}:{line}"

    def __repr__(self) -> str:
        return f"<{type(self).__qualname__} {self._display_name()}>"


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
