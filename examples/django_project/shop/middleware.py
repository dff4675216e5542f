"""Bind each request's id with structlog's contextvars, for every event it causes."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse


def request_id(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable[..., HttpResponse]:
    """Bind ``request_id`` (the ``X-Request-ID`` header, or a new one) for the request."""

    def middleware(request: HttpRequest) -> HttpResponse:
        # waitress reuses its threads, and with them their context: start clean.
        structlog.contextvars.clear_contextvars()
        rid = request.headers.get("X-Request-ID") or uuid.uuid4().hex
        structlog.contextvars.bind_contextvars(request_id=rid)
        try:
            response = get_response(request)
        finally:
            structlog.contextvars.clear_contextvars()
        response["X-Request-ID"] = rid
        return response

    return middleware
