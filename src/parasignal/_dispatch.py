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
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from . import _events
from ._inspect import describe_receiver

__all__ = [
    "CANCELLED_REASON",
    "Dispatch",
    "FailureReporter",
    "Responses",
    "call_in_order",
    "deadline_after",
    "deadline_reason",
    "group_error",
    "receiver_error",
]

#: ``send``'s answer: ``[(receiver, response), ...]`` in connection order.
Responses = list[tuple[Callable[..., Any], Any]]

#: How a signal hears of a receiver failure nobody raises:
#: ``(receiver, exception, details)``. It must not raise.
FailureReporter = Callable[[Callable[..., Any], BaseException, _events.FailureDetails], None]

#: How many receivers one exception message names at most.
NAMES_IN_MESSAGE: Final = 20

CANCELLED_REASON: Final = "never started: the worker pool was shut down with cancel_futures=True"


class Dispatch:
    """One send, as a value: read by the engines, never changed after it is made.

    * *signal*: passed to every receiver as ``signal=``; nothing else is
      done with it.
    * *name*: the signal's name for events and messages.
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
        "deadline",
        "method",
        "name",
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
        name: str,
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
        self.name = name
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
        self, receivers: Sequence[Callable[..., Any]], indices: Sequence[int]
    ) -> None:
        """Log ``signal.receiver_timeout`` for each receiver in *indices*. Never raises.

        Called in the context the dispatch started with (the one every
        receiver started from), which must not be entered anywhere else.
        """
        for index in indices:
            _events.emit_receiver_timeout(
                signal=self.name,
                receiver=receivers[index],
                sender=self.sender,
                method=self.method,
                timeout_s=math.inf if self.timeout is None else self.timeout,
            )

    def unfinished_error(
        self,
        error: type[Exception],
        receivers: Sequence[Callable[..., Any]],
        indices: Sequence[int],
    ) -> Exception:
        """Return what a dispatch that is not robust raises for unfinished receivers."""
        return group_error(error, self.where, self._reason(error), receivers, indices)

    def unfinished_response(
        self, error: type[Exception], receiver: Callable[..., Any]
    ) -> Exception:
        """Return the response a robust dispatch gives one unfinished receiver."""
        return receiver_error(error, self.where, self._reason(error), receiver)

    def _reason(self, error: type[Exception]) -> str:
        return deadline_reason(self.timeout) if error is TimeoutError else CANCELLED_REASON


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


def deadline_after(timeout: float | None) -> float | None:
    """Return the monotonic deadline *timeout* seconds from now; None for no deadline.

    Beyond ``threading.TIMEOUT_MAX`` (about 292 years) a lock cannot wait, so
    such a timeout means no deadline.
    """
    if timeout is None or timeout >= threading.TIMEOUT_MAX:
        return None
    return time.monotonic() + timeout


def deadline_reason(timeout: float | None) -> str:
    """Return why a receiver missed the deadline, for messages."""
    return f"did not finish within the {timeout} s deadline"


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
    error: type[Exception], where: str, reason: str, receiver: Callable[..., Any]
) -> Exception:
    """Return the response a robust dispatch gives one unfinished receiver."""
    return error(f"Receiver {describe_receiver(receiver)} {reason} ({where}).")


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
