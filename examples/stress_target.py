"""Two signals for ``parasignal stress`` to try: one racy receiver, one locked twin.

From the repository root::

    PYTHONPATH=examples parasignal stress stress_target:order_placed --seconds 3
    PYTHONPATH=examples parasignal stress stress_target:order_placed_locked --seconds 3 --churn
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
