"""Receivers a parallel or async dispatch could not finish: events and exceptions.

Shared by the thread-pool fan-out (``_fanout``) and the async receivers
(``_async``), so that a missed deadline reads the same wherever it happens.
"""

from __future__ import annotations

import contextvars
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

from ._events import emit_receiver_timeout
from ._inspect import describe_receiver

if TYPE_CHECKING:
    from .dispatcher import Signal

__all__ = ["deadline_reason", "emit_timeouts", "group_error", "receiver_error"]

# How many receivers one exception message names at most.
NAMES_IN_MESSAGE: Final = 20

CANCELLED_REASON: Final = "never started: the worker pool was shut down with cancel_futures=True"


def deadline_reason(timeout: float | None) -> str:
    """Return why a receiver missed the deadline, for messages."""
    return f"did not finish within the {timeout} s deadline"


def emit_timeouts(
    context: contextvars.Context,
    signal: Signal,
    receivers: Sequence[Callable[..., Any]],
    indices: Sequence[int],
    *,
    sender: object,
    method: str,
    timeout: float | None,
) -> None:
    """Emit ``signal.receiver_timeout`` for each receiver in *indices*, inside *context*.

    *context* must not be entered anywhere else at the time.
    """
    for index in indices:
        context.run(
            emit_receiver_timeout,
            signal=signal._display_name(),
            receiver=receivers[index],
            sender=sender,
            method=method,
            timeout_s=timeout if timeout is not None else math.inf,
        )


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
