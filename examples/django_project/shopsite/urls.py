"""URLs: ``POST /orders/`` places an order, ``GET /threads/`` counts threads."""

from __future__ import annotations

from django.urls import path
from shop import views

urlpatterns = [
    path("orders/", views.place_order),
    path("threads/", views.thread_census),
]
