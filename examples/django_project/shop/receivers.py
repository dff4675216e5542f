"""Receivers of Django's ``post_save`` and of the shop's parasignal ``order_placed``.

Django's ``post_save`` runs its receivers one after another on the request's
thread, inside the request's transaction: the right place for writes that
must commit or roll back with the order (``record_audit_entry``).

``order_placed.send_parallel_robust`` runs its receivers together on
parasignal's worker threads, after the order committed: the right place for
calls to other services, which would otherwise add up.

A note on threads: Django gives each thread its own database connection. A
receiver that uses the ORM on a parasignal worker (``mark_notified``) gets
one for that thread, which parasignal cleans up as Django's request cycle
does (``close_old_connections`` before and after each receiver) and closes
when the worker goes idle. It runs outside the request's transaction: it
sees only committed data, which is why the view sends the signal after the
transaction (or see ``orders.place_order``: ``transaction.on_commit``).
"""

from __future__ import annotations

import http.client
import json
from typing import Any

import structlog
from django.conf import settings
from django.db.models.signals import post_save
from django.utils import timezone

from .models import AuditEntry, Order
from .signals import order_placed


class ServiceError(Exception):
    """A service answered with an error status."""


def record_audit_entry(sender: type[Order], instance: Order, created: bool, **kwargs: Any) -> None:
    """Django's ``post_save``: on the request's thread, in its transaction."""
    request_id = structlog.contextvars.get_contextvars().get("request_id", "")
    AuditEntry.objects.create(
        order=instance, action="created" if created else "updated", request_id=request_id
    )


post_save.connect(record_audit_entry, sender=Order, dispatch_uid="shop.record_audit_entry")


def call_service(service: str, delay_ms: int, *, fail: bool = False) -> str:
    """POST to one of the services, forwarding the request id; return its status."""
    request_id = str(structlog.contextvars.get_contextvars().get("request_id", ""))
    host, _, port = settings.SHOP_BACKEND.partition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=3.0)
    try:
        conn.request(
            "POST",
            f"/{service}",
            body=b"{}",
            headers={
                "X-Request-ID": request_id,
                "X-Delay-Ms": str(delay_ms),
                "X-Fail": "1" if fail else "0",
            },
        )
        response = conn.getresponse()
        answer = json.loads(response.read())
    finally:
        conn.close()
    if response.status >= http.HTTPStatus.BAD_REQUEST:
        raise ServiceError(f"{service} answered {response.status} {response.reason}")
    return f"{response.status} {answer['status']}"


def notify_warehouse(order_id: int, item: str, **kwargs: Any) -> str:
    """Tell the warehouse (the slowest service: 100 ms)."""
    return call_service("warehouse", 100)


def email_customer(order_id: int, item: str, **kwargs: Any) -> str:
    """E-mail the customer (60 ms); the mail service refuses the item ``"broken"``."""
    return call_service("email", 60, fail=item == "broken")


def award_loyalty_points(order_id: int, item: str, **kwargs: Any) -> str:
    """Award loyalty points (60 ms)."""
    return call_service("loyalty", 60)


def mark_notified(order_id: int, item: str, **kwargs: Any) -> str:
    """Use the ORM from a worker thread: parasignal handles the thread's connection."""
    updated = Order.objects.filter(pk=order_id).update(notified_at=timezone.now())
    return f"{updated} order marked notified"


for _receiver in (notify_warehouse, email_customer, award_loyalty_points, mark_notified):
    order_placed.connect(_receiver, sender=Order)
