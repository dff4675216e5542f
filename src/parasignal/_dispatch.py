"""One dispatch as a value: what is sent, how, and how its outcomes are reported.

:class:`Signal <parasignal.Signal>` builds a :class:`Dispatch` for every
send and hands it down to whatever calls the receivers (the ordered loop
below, the thread engine in ``_fanout``, the awaited paths in ``_async``).
Data flows one way: the engines read the value and report through it, and
never reach back into the signal.

Also here, because every engine needs them: the ordered sync loop
(``send_robust`` and ``asend`` call receivers one after another with it), and
the words and exceptions for receivers a dispatch could not finish.
"""

from __future__ import annotations

import math
import numbers
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar, Token
from typing import Any, Final, NamedTuple

from . import _events
from ._inspect import describe_receiver

__all__ = [
    "CANCELLED_REASON",
    "EXPIRED_REASON",
    "Dispatch",
    "FailureReporter",
    "Responses",
    "Unfinished",
    "call_in_order",
    "current_deadline",
    "deadline",
    "deadline_after",
    "deadline_reason",
    "deadline_var",
    "dispatch_deadline",
    "group_error",
    "not_started_reason",
    "receiver_error",
    "signal_among_named",
]

#: ``send``'s answer: ``[(receiver, response), ...]`` in connection order.
Responses = list[tuple[Callable[..., Any], Any]]

#: How a signal hears of a receiver failure nobody raises:
#: ``(receiver, exception, details)``. It must not raise.
FailureReporter = Callable[[Callable[..., Any], BaseException, _events.FailureDetails], None]

#: How many receivers one exception message (or timeout event) names at most.
NAMES_IN_MESSAGE: Final = 20

#: How many ``signal.receiver_timeout`` events one dispatch logs at most (its
#: ``signal.dispatch_timeout`` event counts them all).
TIMEOUT_EVENTS_PER_DISPATCH: Final = 10

EXPIRED_REASON: Final = "never started: the deadline had passed when the dispatch began"


class Unfinished(NamedTuple):
    """The receivers a dispatch answers without, by index: started, and never started."""

    running: list[int]
    not_started: list[int]
    #: Why those never started (the deadline came first; the pool was busy).
    not_started_reason: str


CANCELLED_REASON: Final = "never started: the worker pool was shut down with cancel_futures=True"


class Dispatch:
    """One send, as a value: read by the engines, never changed after it is made.

    * *signal*: passed to every receiver as ``signal=``; nothing else is
      done with it.
    * *name_of*: gives the signal's name for events and messages, asked
      only when one is made (finding a signal's name may scan its module).
    * *method*: the public method that was called (``"send_parallel"``...).
    * *sender* and *named*: what every receiver is called with.
    * *robust*: whether failures become responses.
    * *timeout*: the signal's timeout in seconds, for wording messages only;
      *deadline* (``time.monotonic()``) is what limits the dispatch.
    * *on_failure*: the signal's failure hook (see :data:`FailureReporter`).

    Frames that call receivers hold this value rather than the named
    arguments themselves, and its ``repr`` names the keywords without their
    values: traceback renderers that print frame locals (rich's, structlog's
    ``dict_tracebacks``) then show no payload from parasignal's own frames.

    Lifetimes: the value holds the arguments, so it lives exactly as long as
    the dispatch: the engines drop it when the caller answers (see
    ``_fanout``), and nothing that outlives a dispatch keeps it.
    """

    __slots__ = (
        "_name",
        "deadline",
        "method",
        "name_of",
        "named",
        "on_failure",
        "robust",
        "sender",
        "signal",
        "timeout",
    )

    def __init__(  # noqa: PLR0917 - one positional field each, made once per send
        self,
        signal: object,
        name_of: Callable[[], str],
        method: str,
        sender: object,
        named: Mapping[str, Any],
        robust: bool,
        timeout: float | None,
        deadline: float | None,
        on_failure: FailureReporter,
        /,
    ) -> None:
        self.signal = signal
        self.name_of = name_of
        self._name: str | None = None
        self.method = method
        self.sender = sender
        self.named = named
        self.robust = robust
        self.timeout = timeout
        self.deadline = deadline
        self.on_failure = on_failure

    def __repr__(self) -> str:
        names = ", ".join(sorted(self.named))
        return (
            f"<parasignal dispatch {self.name}.{self.method}(): "
            f"sender and {{{names}}} (values hidden)>"
        )

    @property
    def name(self) -> str:
        """The signal's name, as events and messages give it."""
        name = self._name
        if name is None:
            name = self._name = self.name_of()
        return name

    @property
    def where(self) -> str:
        """``"<signal name>.<method>()"``, as messages name the dispatch."""
        return f"{self.name}.{self.method}()"

    def report_failure(
        self,
        receiver: Callable[..., Any],
        exc: BaseException,
        *,
        duration_ms: float,
        thread: str,
    ) -> None:
        """Report a failure nobody raises (``signal.receiver_failed``). Never raises.

        A broken hook is reported on stderr, as :class:`logging.Handler`
        reports a failure to emit: on a worker thread nobody would see it, and
        the receivers after this one must still run.
        """
        report_failure(
            self.on_failure,
            receiver,
            exc,
            _events.FailureDetails(self.sender, self.method, duration_ms, thread),
        )

    def report_unfinished(
        self, receivers: Sequence[Callable[..., Any]], unfinished: Unfinished
    ) -> None:
        """Log a dispatch that missed its deadline. Never raises.

        One ``signal.dispatch_timeout`` event for the dispatch (its counts of
        running and never-started receivers, and the first names), then
        ``signal.receiver_timeout`` for at most :data:`TIMEOUT_EVENTS_PER_DISPATCH`
        receivers, so that a dispatch with thousands of unfinished receivers
        costs a few log lines, not thousands. Called in the context the
        dispatch started with (the one every receiver started from), which
        must not be entered anywhere else.
        """
        timeout_s = math.inf if self.timeout is None else self.timeout
        running, not_started = unfinished.running, unfinished.not_started
        first = sorted([*running, *not_started])
        _events.emit_dispatch_timeout(
            signal=self.name,
            sender=self.sender,
            method=self.method,
            timeout_s=timeout_s,
            running=len(running),
            not_started=len(not_started),
            receivers=[receivers[i] for i in first[:NAMES_IN_MESSAGE]],
            reason=unfinished.not_started_reason if not_started else None,
        )
        started = set(running)
        for index in first[:TIMEOUT_EVENTS_PER_DISPATCH]:
            _events.emit_receiver_timeout(
                signal=self.name,
                receiver=receivers[index],
                sender=self.sender,
                method=self.method,
                timeout_s=timeout_s,
                started=index in started,
            )

    def unfinished_error(
        self,
        error: type[Exception],
        receivers: Sequence[Callable[..., Any]],
        unfinished: Unfinished,
    ) -> Exception:
        """Return what a dispatch that is not robust raises for unfinished receivers."""
        if error is not TimeoutError:
            indices = sorted([*unfinished.running, *unfinished.not_started])
            return group_error(error, self.where, CANCELLED_REASON, receivers, indices)
        parts = []
        budget = NAMES_IN_MESSAGE  # names in the whole message, running ones first
        for indices, reason in (
            (unfinished.running, deadline_reason(self.timeout)),
            (unfinished.not_started, unfinished.not_started_reason),
        ):
            if indices:
                parts.append(_names(indices, reason, receivers, budget))
                budget = max(0, budget - len(indices))
        return TimeoutError(f"{self.where}: {'; '.join(parts)}.")

    def unfinished_responses(
        self,
        error: type[Exception],
        receivers: Sequence[Callable[..., Any]],
        unfinished: Unfinished,
    ) -> dict[int, Exception]:
        """Return the response a robust dispatch gives each unfinished receiver, by index."""
        if error is not TimeoutError:
            groups = (
                (unfinished.running, CANCELLED_REASON),
                (unfinished.not_started, CANCELLED_REASON),
            )
        else:
            groups = (
                (unfinished.running, deadline_reason(self.timeout)),
                (unfinished.not_started, unfinished.not_started_reason),
            )
        where = self.where
        # A dispatch may leave 10,000 receivers unfinished, and answers them
        # at its deadline: each name is made once per receiver object (the
        # same function is often connected many times, under dispatch_uids),
        # so the call returns within a few ms of the deadline.
        names: dict[int, str] = {}
        responses: dict[int, Exception] = {}
        for indices, reason in groups:
            for index in indices:
                receiver = receivers[index]
                name = names.get(id(receiver))
                if name is None:
                    name = names[id(receiver)] = describe_receiver(receiver)
                responses[index] = receiver_error(error, where, reason, receiver, name)
        return responses


def report_failure(
    on_failure: FailureReporter,
    receiver: Callable[..., Any],
    exc: BaseException,
    details: _events.FailureDetails,
) -> None:
    """Call a signal's failure hook; print (never raise) what a broken one raises."""
    try:
        on_failure(receiver, exc, details)
    except BaseException:  # noqa: BLE001 - a broken reporter must not stop the dispatch
        _events.print_failure("reporting a receiver failure failed")


# The deadline of the innermost parasignal.deadline() block: a time.monotonic()
# instant. Context variables travel with every copy of the context, so the
# receivers of a dispatch (on worker threads, in copies of the caller's
# context) and the dispatches they make inherit it.
deadline_var: ContextVar[float | None] = ContextVar("parasignal_deadline", default=None)
_budget = deadline_var


class deadline:  # noqa: N801 - a context manager named like contextlib's, used as a function
    """Bound every ``send_parallel*`` and ``asend_parallel*`` started inside the block.

    ``with parasignal.deadline(0.25):`` (or ``async with``) gives the
    dispatches started in the block *seconds* from entering it, together:
    each is bounded by the earlier of that deadline and its signal's own
    ``timeout``. Blocks nest, and an inner block never extends an outer
    one. The deadline travels in :mod:`contextvars`, so dispatches nested in
    receivers (on worker threads) inherit what is left of it, never more.

    A dispatch started after the deadline has passed starts no receiver: it
    raises :class:`TimeoutError` (robust: each receiver's response is a
    ``TimeoutError``). ``send``, ``send_robust``, ``asend`` and
    ``asend_robust`` ignore it, as Django's have no deadline.

    *seconds* must be a number, at least 0; bad values raise ``TypeError``
    or ``ValueError`` naming them. Each block is entered once.
    """

    __slots__ = ("_token", "at", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = _seconds_at_least_zero(seconds)
        #: The block's deadline (``time.monotonic()``), once entered.
        self.at: float | None = None
        self._token: Token[float | None] | None = None

    def __enter__(self) -> deadline:  # noqa: PYI034 - typing.Self is 3.11+, and no typing_extensions
        if self._token is not None:
            msg = "this parasignal.deadline() block is already entered; make a new one."
            raise RuntimeError(msg)
        at = time.monotonic() + self.seconds
        outer = _budget.get()
        self.at = at if outer is None else min(at, outer)
        self._token = _budget.set(self.at)
        return self

    def __exit__(self, *exc_info: object) -> None:
        token, self._token = self._token, None
        if token is not None:
            _budget.reset(token)

    async def __aenter__(self) -> deadline:  # noqa: PYI034 - as __enter__
        return self.__enter__()

    async def __aexit__(self, *exc_info: object) -> None:
        self.__exit__(*exc_info)

    @property
    def remaining(self) -> float:
        """Seconds left before the deadline (0 once it passed; the whole budget before entry)."""
        if self.at is None:
            return self.seconds
        return max(0.0, self.at - time.monotonic())


def _seconds_at_least_zero(seconds: object) -> float:
    if isinstance(seconds, bool) or not isinstance(seconds, numbers.Real):
        raise TypeError(f"deadline() takes a number of seconds, not {seconds!r}.")
    value = float(seconds)
    if math.isnan(value) or value < 0:
        raise ValueError(f"deadline() takes a number of seconds of at least 0, not {seconds!r}.")
    return value


def current_deadline() -> float | None:
    """Return the ``time.monotonic()`` deadline of the innermost ``deadline()`` block, if any."""
    return _budget.get()


def dispatch_deadline(
    timeout: float | None, now: float | None = None
) -> tuple[float | None, float | None]:
    """Return a dispatch's deadline and its seconds, from the signal's *timeout* and the block's.

    The earlier of the two wins; the seconds (what was left at the start)
    word messages. ``(None, None)``: no deadline. *now*: the
    ``time.monotonic()`` instant the dispatch began (default: now).
    """
    if now is None:
        now = time.monotonic()
    budget = _budget.get()
    own = deadline_after(timeout, now)
    if budget is None:
        return own, timeout if own is not None else None
    if own is not None and own <= budget:
        return own, timeout
    return budget, max(0.0, budget - now)


def deadline_after(timeout: float | None, now: float | None = None) -> float | None:
    """Return the monotonic deadline *timeout* seconds after *now*; None for no deadline.

    *now* defaults to ``time.monotonic()``. Beyond ``threading.TIMEOUT_MAX``
    (about 292 years) a lock cannot wait, so such a timeout means no deadline.
    """
    if timeout is None or timeout >= threading.TIMEOUT_MAX:
        return None
    return (time.monotonic() if now is None else now) + timeout


def deadline_reason(timeout: float | None) -> str:
    """Return why a receiver missed the deadline, for messages."""
    return f"did not finish within the {_seconds(timeout)} s deadline"


def _seconds(timeout: float | None) -> str:
    # 0.3 reads 0.3; what was left of a deadline() block, to the millisecond.
    if timeout is None:
        return "inf"
    return f"{timeout:g}" if timeout == round(timeout, 3) else f"{timeout:.3f}"


def not_started_reason(timeout: float | None, busy_threads: int | None) -> str:
    """Return why receivers never started before the deadline, for messages.

    *busy_threads*: the size of the pool whose threads were all busy (the
    receivers waited for one), or None.
    """
    if busy_threads is not None:
        return (
            f"never started: the pool's {busy_threads} threads were all busy "
            f"until the {_seconds(timeout)} s deadline"
        )
    return f"never started within the {_seconds(timeout)} s deadline"


def _names(
    indices: Sequence[int], reason: str, receivers: Sequence[Callable[..., Any]], budget: int
) -> str:
    # At most *budget* names; the rest counted.
    names = ", ".join(describe_receiver(receivers[i]) for i in indices[:budget])
    more = len(indices) - budget
    if more > 0:
        names = f"{names} and {more} more" if names else f"{more} not named"
    return f"{len(indices)} receiver(s) {reason}: {names}"


def group_error(
    error: type[Exception],
    where: str,
    reason: str,
    receivers: Sequence[Callable[..., Any]],
    indices: Sequence[int],
) -> Exception:
    """Return the exception a non-robust dispatch raises for unfinished receivers."""
    names = ", ".join(describe_receiver(receivers[i]) for i in indices[:NAMES_IN_MESSAGE])
    more = len(indices) - NAMES_IN_MESSAGE
    if more > 0:
        names += f" and {more} more"
    return error(f"{where}: {len(indices)} receiver(s) {reason}: {names}.")


def receiver_error(
    error: type[Exception],
    where: str,
    reason: str,
    receiver: Callable[..., Any],
    name: str | None = None,
) -> Exception:
    """Return the response a robust dispatch gives one unfinished receiver.

    *name*: the receiver's description, if the caller already made it.
    """
    if name is None:
        name = describe_receiver(receiver)
    return error(f"Receiver {name} {reason} ({where}).")


def signal_among_named(display_name: str, method: str) -> TypeError:
    """Return the error for ``signal=`` passed among a parallel dispatch's named arguments."""
    # Django's send() fails the same way, from its first receiver call
    # ("got multiple values for keyword argument 'signal'"); here it fails
    # before any receiver starts, robust or not.
    return TypeError(
        f"{display_name}.{method}() got 'signal' among its named arguments: "
        "every receiver is called with signal= (the signal itself), so it cannot be passed."
    )


def call_in_order(dispatch: Dispatch, receivers: Sequence[Callable[..., Any]]) -> Responses:
    """Call sync *receivers* one after another on this thread; return ``send``'s answer.

    Robust: an ``Exception`` becomes the receiver's response and is reported
    through the dispatch. Otherwise it propagates at once and later
    receivers are not called. Exceptions that are not ``Exception``
    subclasses always propagate.
    """
    # The frame that catches receivers' exceptions, and so the first one
    # their tracebacks show: it holds the arguments only inside the
    # dispatch, whose repr hides their values from renderers that print
    # frame locals.
    signal = dispatch.signal
    robust = dispatch.robust
    responses: Responses = []
    for receiver in receivers:
        started = time.perf_counter()
        try:
            response = receiver(signal=signal, sender=dispatch.sender, **dispatch.named)
        except Exception as err:
            if not robust:
                raise
            dispatch.report_failure(
                receiver,
                err,
                duration_ms=(time.perf_counter() - started) * 1000.0,
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
        del responses, dispatch
