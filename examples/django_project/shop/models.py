"""An order, and the audit trail Django's ``post_save`` writes for it."""

from __future__ import annotations

from django.db import models


class Order(models.Model):
    """An order placed through ``POST /orders/``."""

    item = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)
    #: Set by a parasignal receiver, on a worker thread, with its own connection.
    notified_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"order {self.pk}: {self.item}"


class AuditEntry(models.Model):
    """Written by Django's ``post_save``, on the request's thread, in its transaction."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="audit_entries")
    action = models.CharField(max_length=50)
    request_id = models.CharField(max_length=64, blank=True)

    def __str__(self) -> str:
        return f"{self.action} {self.order_id} ({self.request_id})"
