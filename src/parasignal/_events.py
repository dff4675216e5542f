"""Structured events that parasignal emits through structlog.

The event names and their keys are public API (see the README, "Structured
events"). parasignal never configures structlog or :mod:`logging`: it logs
through structlog's lazy proxy, so whatever the application configured, even
after import, applies.

Events never carry the values of a signal's named arguments, which may hold
secrets or personal data; only the sender's ``repr`` (cut to 200 characters)
is included.
"""

from __future__ import annotations

import sys
import traceback
from typing import Any

import structlog

from ._inspect import describe_receiver, describe_sender

__all__ = [
    "DB_CLEANUP_FAILED",
    "RECEIVER_FAILED",
    "RECEIVER_TIMEOUT",
    "emit_db_cleanup_failed",
    "emit_receiver_failed",
    "emit_receiver_timeout",
    "logger",
]

RECEIVER_FAILED = "signal.receiver_failed"
RECEIVER_TIMEOUT = "signal.receiver_timeout"
DB_CLEANUP_FAILED = "signal.db_cleanup_failed"

#: structlog's lazy logger: safe to create at import time, configured by the
#: application whenever it likes.
logger: Any = structlog.get_logger("parasignal")


def _safely(emit: Any, event: str, fields: dict[str, Any]) -> None:
    # A broken logging configuration must never turn a handled receiver
    # failure into a new exception on a worker thread, where nobody would see
    # it and the dispatch would lose track of its receivers. Report it the way
    # the stdlib's logging.Handler.handleError does: a traceback on stderr.
    try:
        emit(event, **fields)
    except Exception:  # noqa: BLE001 - see above
        print(f"parasignal: could not log {event!r}:", file=sys.stderr)  # noqa: T201
        traceback.print_exc(file=sys.stderr)


def emit_receiver_failed(
    *,
    signal: str,
    receiver: object,
    sender: object,
    method: str,
    duration_ms: float,
    thread: str,
    exc: BaseException,
) -> None:
    """Emit ``signal.receiver_failed`` at level error. Never raises."""
    _safely(
        logger.error,
        RECEIVER_FAILED,
        {
            "signal": signal,
            "receiver": describe_receiver(receiver),
            "sender": describe_sender(sender),
            "method": method,
            "duration_ms": float(duration_ms),
            "thread": thread,
            "exc_info": exc,
        },
    )


def emit_receiver_timeout(
    *, signal: str, receiver: object, sender: object, method: str, timeout_s: float
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
        },
    )


def emit_db_cleanup_failed(*, when: str, thread: str, exc: BaseException) -> None:
    """Emit ``signal.db_cleanup_failed`` at level error. Never raises."""
    _safely(logger.error, DB_CLEANUP_FAILED, {"when": when, "thread": thread, "exc_info": exc})
