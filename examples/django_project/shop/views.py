"""``POST /orders/``: Django's ``post_save`` and parasignal's ``order_placed`` side by side."""

from __future__ import annotations

import threading
import time

import structlog
from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from .models import Order
from .signals import order_placed


@csrf_exempt  # an API endpoint for the example's clients
@require_POST
def place_order(request: HttpRequest) -> JsonResponse:
    """Save an order (``post_save`` audits it), then fan out to the services."""
    item = request.POST.get("item", "widget")
    with transaction.atomic():
        order = Order.objects.create(item=item)  # post_save runs here, on this thread
    audit_entries = order.audit_entries.count()
    # After the commit: the receivers' own connections can see the order.
    started = time.perf_counter()
    responses = order_placed.send_parallel_robust(sender=Order, order_id=order.pk, item=item)
    dispatch_ms = (time.perf_counter() - started) * 1000
    return JsonResponse(
        {
            "request_id": structlog.contextvars.get_contextvars().get("request_id"),
            "order_id": order.pk,
            "item": item,
            "audit_entries": audit_entries,
            "dispatch_ms": round(dispatch_ms, 1),
            "receivers": [
                {
                    "receiver": receiver.__name__,
                    "ok": not isinstance(response, BaseException),
                    "result": (
                        f"{type(response).__name__}: {response}"
                        if isinstance(response, BaseException)
                        else response
                    ),
                }
                for receiver, response in responses
            ],
        },
        headers={"X-Dispatch-Ms": f"{dispatch_ms:.1f}"},
    )


@require_GET
def thread_census(request: HttpRequest) -> JsonResponse:
    """Count this process's threads by kind (for the load test's bound)."""
    names = [t.name for t in threading.enumerate()]
    return JsonResponse(
        {
            "total": len(names),
            "parasignal": sum(n.startswith("parasignal_") for n in names),
            "waitress": sum(n.startswith("waitress-") and n[9:].isdigit() for n in names),
            "backend": sum("process_request_thread" in n for n in names),
        }
    )
