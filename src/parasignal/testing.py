"""Test helpers: run parallel dispatch inline, on the calling thread; restore the shared pool.

In a test, receivers dispatched by ``send_parallel*`` or ``asend_parallel*``
normally run on worker threads, outside the test's thread. With Django that
matters: a ``TestCase`` wraps each test in a transaction on the test thread's
database connection, which worker threads cannot see (SQLite then fails with
``database table is locked``). Inside :func:`inline`, those methods run their
sync receivers on the calling thread instead (``asend_parallel*``: on the
thread ``asend`` would use), one after another, in connection order, with the
same answer, the same failure rules and the same structured events::

    from parasignal.testing import inline

    class OrderTests(TestCase):
        def test_placing_an_order_notifies(self):
            with inline():
                place_order(item="book")

or with pytest, the ``parasignal_inline`` fixture (add
``pytest_plugins = ["parasignal.testing"]`` to your ``conftest.py``).

Inline mode is process-wide while active (dispatches from any thread run
inline on their own thread) and nestable. The signal's *timeout* is not
applied to sync receivers: one thread cannot stop a receiver, so all run to
completion. Everything else (``send``, ``asend``...) is unchanged.

``parasignal.shutdown()`` shuts the shared pool down for good, as an
application means it to at exit; in a test suite, one test that calls it
would break every later one. :func:`restored_shared_pool` (or the
``parasignal_shared_pool`` fixture) gives the tests after it a fresh shared
pool::

    def test_shutting_down(parasignal_shared_pool):
        parasignal.shutdown()
        ...  # later tests dispatch on a new shared pool
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from . import _inline, _pool

__all__ = ["inline", "restored_shared_pool"]


@contextlib.contextmanager
def inline() -> Iterator[None]:
    """Run parallel dispatch inline on the calling thread while the block runs.

    Thread-safe and nestable; inline mode ends when the outermost block exits.
    """
    _inline.enter()
    try:
        yield
    finally:
        _inline.leave()


@contextlib.contextmanager
def restored_shared_pool() -> Iterator[None]:
    """Leave a usable shared pool behind the block, even if it shut the shared one down.

    On exit, the shared pool (shut down by ``parasignal.shutdown()`` inside
    the block, or not) is shut down, waiting for its threads, and the next
    parallel dispatch starts a new one, as at the first. Signals with their
    own pool or executor are not touched. Meant for tests, not applications.
    """
    try:
        yield
    finally:
        _pool.reset_default_pool(wait=True)


try:
    import pytest
except ImportError:  # pragma: no cover - without pytest there is no fixture to offer
    pass
else:
    __all__ += ["parasignal_inline", "parasignal_shared_pool"]

    @pytest.fixture
    def parasignal_inline() -> Iterator[None]:
        """Pytest fixture: the test runs with :func:`inline` active."""
        with inline():
            yield

    @pytest.fixture
    def parasignal_shared_pool() -> Iterator[None]:
        """Pytest fixture: a fresh shared pool after the test (see restored_shared_pool())."""
        with restored_shared_pool():
            yield
