"""Placing an order from code that may run inside a transaction: the ``on_commit`` recipe.

The Django guide's recipe (``docs/django.md``), verbatim
(``tests/test_django_project.py`` checks that the two agree). parasignal's
receivers run on worker threads here (the signal has a deadline), with database
connections of their own: they cannot see a transaction that has not
committed, and on SQLite they would wait for its lock. So the signal goes
out from ``transaction.on_commit``: once the outermost ``atomic()`` block
commits (at once, outside one), and never if it rolls back.
"""

from __future__ import annotations

from django.db import transaction

from .models import Order
from .signals import order_placed


def place_order(item: str) -> Order:
    """Save an order; notify the receivers once it is committed."""
    with transaction.atomic():
        order: Order = Order.objects.create(item=item)
        transaction.on_commit(
            lambda: order_placed.send_parallel_robust(sender=Order, order_id=order.pk, item=item)
        )
    return order
