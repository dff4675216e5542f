"""Shared fixtures.

Unraisable exceptions (say, from a weakref callback or ``__del__``) and
unhandled exceptions in threads fail the test that caused them: pytest reports
them as warnings, and ``filterwarnings = ["error"]`` in pyproject.toml turns
those warnings into errors.
"""

from __future__ import annotations

import gc
import sys
import threading
from collections.abc import Iterator, MutableMapping
from typing import Any

import pytest
import structlog
from structlog.testing import LogCapture

from parasignal import _pool

# The parasignal_inline fixture, registered as the README tells users to.
pytest_plugins = ["parasignal.testing"]


@pytest.fixture
def logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """Capture parasignal's events as an application would see them, contextvars merged in."""
    capture = LogCapture()
    structlog.configure(processors=[structlog.contextvars.merge_contextvars, capture])
    try:
        yield capture.entries
    finally:
        structlog.reset_defaults()
        structlog.contextvars.clear_contextvars()


def collect() -> None:
    """Run the garbage collector until weak references have settled."""
    for _ in range(3):
        gc.collect()


@pytest.fixture(autouse=True)
def _leave_nothing_behind() -> Iterator[None]:
    """Restore the switch interval and drop the shared pool after every test."""
    interval = sys.getswitchinterval()
    yield
    sys.setswitchinterval(interval)
    # Without waiting: a test may leave a deliberately slow receiver running.
    _pool.reset_default_pool(wait=False)


@pytest.fixture
def tiny_switch_interval() -> None:
    """Make the interpreter switch threads as often as it can, to expose races."""
    sys.setswitchinterval(1e-6)


def thread_names() -> set[str]:
    return {t.name for t in threading.enumerate()}
