"""A first look at parasignal: the same signal sent in order, then in parallel.

Run it with ``python examples/quickstart.py``. Four receivers each wait
100 ms (standing in for a webhook, a cache purge, an audit write and an
e-mail); one of them fails. ``send_robust`` calls them one after another;
``send_parallel_robust`` calls them together on worker threads and returns
the same ordered answer.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import structlog

from parasignal import Signal, receiver

order_placed = Signal(name="order_placed", timeout=2.0)


@receiver(order_placed)
def post_webhook(sender: object, order_id: int, **kwargs: Any) -> str:
    time.sleep(0.1)
    return f"webhook sent for order {order_id}"


@receiver(order_placed)
def purge_cache(sender: object, order_id: int, **kwargs: Any) -> str:
    time.sleep(0.1)
    return f"cache purged for order {order_id}"


@receiver(order_placed)
def write_audit_log(sender: object, order_id: int, **kwargs: Any) -> str:
    time.sleep(0.1)
    msg = "audit store unavailable"
    raise ConnectionError(msg)


@receiver(order_placed)
def send_email(sender: object, order_id: int, **kwargs: Any) -> str:
    time.sleep(0.1)
    return f"e-mail queued on {threading.current_thread().name}"


def main() -> None:
    """Dispatch one event both ways and print what each receiver answered."""
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.format_exc_info,
            structlog.dev.ConsoleRenderer(colors=False),
        ]
    )
    for method in ("send_robust", "send_parallel_robust"):
        started = time.perf_counter()
        responses = getattr(order_placed, method)(sender="shop", order_id=42)
        elapsed = (time.perf_counter() - started) * 1000
        print(f"\n{method}: {elapsed:.0f} ms")
        for func, response in responses:
            print(f"  {func.__name__:<16} -> {response!r}")


if __name__ == "__main__":
    main()
