"""Signals for ``parasignal stress`` to try: racy receivers and their locked twins.

From the repository root::

    PYTHONPATH=examples parasignal stress stress_target:order_placed --seconds 3
    PYTHONPATH=examples parasignal stress stress_target:order_placed_locked --seconds 3 --churn
    PYTHONPATH=examples parasignal stress stress_target:order_counted --seconds 3 \
        --check stress_target:no_order_lost

``order_placed``'s receiver raises when it races (a ``KeyError``); ``order_counted``'s
never raises, it loses updates: only the ``--check`` invariant catches it.
"""

from __future__ import annotations

import threading
from typing import Any

from parasignal import Signal

order_placed = Signal(name="order_placed")
order_placed_locked = Signal(name="order_placed_locked")

_pending: dict[str, object] = {}
_pending_lock = threading.Lock()


def _audit(value: object) -> str:
    return repr(value)


def settle_pending_order(sender: object, **kwargs: Any) -> None:
    """Check-then-act on a shared dict: another thread may delete the key in between."""
    key = "order"
    if key in _pending:
        _audit(_pending[key])
        del _pending[key]
    else:
        _pending[key] = object()


def settle_pending_order_locked(sender: object, **kwargs: Any) -> None:
    """Do the same, with the check and the act under one lock."""
    key = "order"
    with _pending_lock:
        if key in _pending:
            _audit(_pending[key])
            del _pending[key]
        else:
            _pending[key] = object()


order_placed.connect(settle_pending_order)
order_placed_locked.connect(settle_pending_order_locked)


order_counted = Signal(name="order_counted")
order_counted_locked = Signal(name="order_counted_locked")

_counts = {"orders": 0}
_counts_lock = threading.Lock()
# How many times each counting receiver ran: what the count should be.
_calls = {"racy": 0, "locked": 0}


def _yield_the_gil() -> None:
    # Stands for any work between the read and the write (a log line, a
    # lookup): a point where another thread may run.
    threading.current_thread()


def count_order(sender: object, **kwargs: Any) -> None:
    """Read-modify-write a shared counter: two threads may both read the old value."""
    with _counts_lock:
        _calls["racy"] += 1
    seen = _counts["orders"]
    _yield_the_gil()
    _counts["orders"] = seen + 1


def count_order_locked(sender: object, **kwargs: Any) -> None:
    """Do the same, with the read and the write under one lock."""
    with _counts_lock:
        _calls["locked"] += 1
        seen = _counts["orders"]
        _yield_the_gil()
        _counts["orders"] = seen + 1


def no_order_lost() -> None:
    """Check the invariant: every call counted one order (the stress run's --check)."""
    with _counts_lock:
        expected = _calls["racy"] + _calls["locked"]
        counted = _counts["orders"]
    if counted != expected:
        raise AssertionError(f"{expected - counted} of {expected} updates lost")


order_counted.connect(count_order)
order_counted_locked.connect(count_order_locked)
