"""Structured events that parasignal emits through structlog.

The event names and their keys are public API (see the README, "Structured
events"). parasignal never configures structlog or :mod:`logging`: it logs
through structlog's lazy proxy, so whatever the application configured, even
after import, applies.

Events never carry the values of a signal's named arguments, which may hold
secrets or personal data; only the sender's ``repr`` (cut to 200 characters)
is included, and an exception whose message is longer than
:data:`EXCEPTION_TEXT_LIMIT` characters is logged with its message cut.

No key collides with an attribute of :class:`logging.LogRecord` (``thread``,
``name``, ``msg``, ...), so structlog's stdlib integration can pass every key
as ``extra`` (``render_to_log_kwargs``).
"""

from __future__ import annotations

import contextlib
import copy
import math
import sys
import threading
import traceback
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any, Final, NamedTuple

import structlog

from ._inspect import describe_receiver, describe_sender

__all__ = [
    "DB_CLEANUP_FAILED",
    "DISPATCH_TIMEOUT",
    "EXCEPTION_TEXT_LIMIT",
    "POOL_SATURATED",
    "RECEIVER_FAILED",
    "RECEIVER_TIMEOUT",
    "FailureDetails",
    "TruncatedReceiverError",
    "bounded_exception",
    "current_failure_details",
    "emit_db_cleanup_failed",
    "emit_dispatch_timeout",
    "emit_pool_saturated",
    "emit_receiver_failed",
    "emit_receiver_timeout",
    "failure_details",
    "logger",
    "print_failure",
]

#: The longest exception message an event carries; longer ones are cut, as
#: the sender's repr is, so one huge message cannot flood the logs or stall a
#: dispatch while it is rendered.
EXCEPTION_TEXT_LIMIT: Final = 2000

RECEIVER_FAILED = "signal.receiver_failed"
RECEIVER_TIMEOUT = "signal.receiver_timeout"
DISPATCH_TIMEOUT = "signal.dispatch_timeout"
POOL_SATURATED = "signal.pool_saturated"
DB_CLEANUP_FAILED = "signal.db_cleanup_failed"

#: structlog's lazy logger: safe to create at import time, configured by the
#: application whenever it likes.
logger: Any = structlog.get_logger("parasignal")


def print_failure(what: str) -> None:
    """Print the exception being handled to stderr, as :class:`logging.Handler` does.

    For failures that must never become a new exception where they happen
    (on a worker thread nobody would see it, and the dispatch would lose
    track of its receivers).
    """
    print(f"parasignal: {what}:", file=sys.stderr)  # noqa: T201
    traceback.print_exc(file=sys.stderr)


def _safely(emit: Any, event: str, fields: dict[str, Any]) -> None:
    # Every event goes out through here. A broken logging configuration must
    # never turn a handled receiver failure into a new exception.
    try:
        emit(event, **fields)
    except Exception:  # noqa: BLE001 - see above
        print_failure(f"could not log {event!r}")


class FailureDetails(NamedTuple):
    """What ``signal.receiver_failed`` says of a failure besides the receiver and error."""

    sender: object
    method: str
    duration_ms: float
    thread: str


# The details of the failure being handed to Signal._log_robust_failure(),
# whose Django-compatible signature has room for the receiver and error only.
_failure_details: ContextVar[FailureDetails | None] = ContextVar(
    "parasignal_failure_details", default=None
)


@contextlib.contextmanager
def failure_details(details: FailureDetails) -> Iterator[None]:
    """Make *details* what :func:`current_failure_details` returns inside the block."""
    token = _failure_details.set(details)
    try:
        yield
    finally:
        _failure_details.reset(token)


def current_failure_details() -> FailureDetails:
    """Return the details of the failure being reported (unknown ones outside a report)."""
    details = _failure_details.get()
    if details is None:
        details = FailureDetails(None, "unknown", math.nan, threading.current_thread().name)
    return details


class TruncatedReceiverError(Exception):
    """Stands in, in an event, for a receiver exception that would not copy with a cut message."""


def bounded_exception(exc: BaseException) -> BaseException:
    """Return *exc*, or a copy with its message cut to :data:`EXCEPTION_TEXT_LIMIT`.

    The copy has the same type (where it can be made) and traceback, and no
    chained exceptions (their messages are not bounded). Never raises.
    """
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - a broken __str__ is the renderer's to report
        return exc
    if len(text) <= EXCEPTION_TEXT_LIMIT:
        return exc
    cut = f"{text[: EXCEPTION_TEXT_LIMIT - 3]}... ({len(text)} characters in all)"
    stand_in: BaseException
    try:
        stand_in = copy.copy(exc)
        stand_in.args = (cut,)
        if str(stand_in) != cut:  # a __str__ of its own, not built from args
            raise TypeError  # noqa: TRY301 - handled just below
    except Exception:  # noqa: BLE001 - any type that will not copy gets the stand-in
        name = f"{type(exc).__module__}.{type(exc).__qualname__}"
        stand_in = TruncatedReceiverError(f"{name}: {cut}")
    stand_in.__traceback__ = exc.__traceback__
    stand_in.__cause__ = None
    stand_in.__context__ = None
    stand_in.__suppress_context__ = True
    return stand_in


def emit_receiver_failed(
    *, signal: str, receiver: object, exc: BaseException, details: FailureDetails
) -> None:
    """Emit ``signal.receiver_failed`` at level error. Never raises."""
    _safely(
        logger.error,
        RECEIVER_FAILED,
        {
            "signal": signal,
            "receiver": describe_receiver(receiver),
            "sender": describe_sender(details.sender),
            "method": details.method,
            "duration_ms": float(details.duration_ms),
            "thread_name": details.thread,
            "exc_info": bounded_exception(exc),
        },
    )


def emit_receiver_timeout(
    *,
    signal: str,
    receiver: object,
    sender: object,
    method: str,
    timeout_s: float,
    started: bool,
) -> None:
    """Emit ``signal.receiver_timeout`` at level warning. Never raises."""
    _safely(
        logger.warning,
        RECEIVER_TIMEOUT,
        {
            "signal": signal,
            "receiver": describe_receiver(receiver),
            "sender": describe_sender(sender),
            "method": method,
            "timeout_s": float(timeout_s),
            "started": started,
        },
    )


def emit_dispatch_timeout(
    *,
    signal: str,
    sender: object,
    method: str,
    timeout_s: float,
    running: int,
    not_started: int,
    receivers: list[object],
    reason: str | None,
) -> None:
    """Emit ``signal.dispatch_timeout`` at level warning, once per dispatch. Never raises."""
    _safely(
        logger.warning,
        DISPATCH_TIMEOUT,
        {
            "signal": signal,
            "sender": describe_sender(sender),
            "method": method,
            "timeout_s": float(timeout_s),
            "running": running,
            "not_started": not_started,
            "receivers": [describe_receiver(r) for r in receivers],
            "not_started_reason": reason,
        },
    )


def emit_pool_saturated(*, pool: str, size: int, busy: int, queued: int, waited_ms: float) -> None:
    """Emit ``signal.pool_saturated`` at level warning. Never raises."""
    _safely(
        logger.warning,
        POOL_SATURATED,
        {
            "pool": pool,
            "size": size,
            "busy": busy,
            "queued": queued,
            "waited_ms": float(waited_ms),
        },
    )


def emit_db_cleanup_failed(*, when: str, thread: str, exc: BaseException) -> None:
    """Emit ``signal.db_cleanup_failed`` at level error. Never raises."""
    _safely(
        logger.error,
        DB_CLEANUP_FAILED,
        {"when": when, "thread_name": thread, "exc_info": bounded_exception(exc)},
    )
