"""Receivers and answer helpers shared by the asend* and asend_parallel* tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

Responses = list[tuple[Callable[..., Any], Any]]


def names(responses: Responses) -> list[str]:
    """The receivers' names, in the answer's order."""
    return [r.__name__ for r, _ in responses]


def values(responses: Responses) -> list[Any]:
    """The responses, in the answer's order."""
    return [v for _, v in responses]


async def async_a(**kwargs: Any) -> str:
    await asyncio.sleep(0)  # yields once, so that the async receivers interleave
    return "async_a"


async def async_b(**kwargs: Any) -> str:
    return "async_b"


def sync_a(**kwargs: Any) -> str:
    return "sync_a"


def sync_b(**kwargs: Any) -> str:
    return "sync_b"
