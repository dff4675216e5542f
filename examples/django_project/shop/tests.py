"""The shop's tests, run by Django's own test runner (``manage.py test shop``).

``tests/test_django_project.py`` runs them with ``shopsite.test_settings`` (a
SQLite *file* test database, so that parasignal's worker threads share it).

* ``WorkerConnectionTests`` (a ``TransactionTestCase``: worker threads must
  see committed rows) sends bursts of 200 dispatches whose receivers use the
  ORM, through ``send_parallel`` and ``asend_parallel``, and counts the
  process's open file handles on the database file before and after.
* ``InlineModeTests`` (a ``TestCase``: one transaction per test, on the test's
  thread) dispatches inside ``parasignal.testing.inline()``, where receivers
  run on the test's thread and see its transaction.
* Both check the ``transaction.on_commit`` recipe (``shop.orders``).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.db import connection, connections, transaction
from django.db.backends.signals import connection_created
from django.test import TestCase, TransactionTestCase
from django.utils import timezone

from parasignal import Signal
from parasignal.testing import inline

from .models import AuditEntry, Order
from .orders import place_order
from .receivers import mark_notified
from .signals import order_placed

BURST = 200
PROC_FD = Path("/proc/self/fd")

#: A signal whose receivers all use the ORM: read, update (the example's own
#: mark_notified) and insert. ``caller_runs=False``: every receiver runs on a
#: worker, whose connections are what these tests are about (without it, the
#: calling thread would run some of them itself, on its own connection, as
#: ``send`` does: see ``test_receivers_the_caller_runs_use_its_own_connection``).
order_stored = Signal(name="shop.tests.order_stored", caller_runs=False)


def find_item(order_id: int, **kwargs: Any) -> str:
    """Read the order back."""
    return str(Order.objects.get(pk=order_id).item)


def audit_notified(order_id: int, **kwargs: Any) -> int:
    """Insert an audit entry for the order; return how many it has."""
    AuditEntry.objects.create(order=Order.objects.get(pk=order_id), action="notified")
    return int(AuditEntry.objects.filter(order_id=order_id, action="notified").count())


for _receiver in (find_item, mark_notified, audit_notified):
    order_stored.connect(_receiver, sender=Order)


# Every database connection Django opens in this process, on any thread
# (connection_created), held weakly: a wrapper whose thread is gone and that
# nothing else holds may go, its connection with it.
_wrappers: weakref.WeakSet[Any] = weakref.WeakSet()


def _track(sender: object, connection: Any, **kwargs: Any) -> None:
    _wrappers.add(connection)


connection_created.connect(_track, dispatch_uid="shop.tests.track_connections")


def open_connections() -> int:
    """How many database connections are open right now, on all threads."""
    return sum(wrapper.connection is not None for wrapper in list(_wrappers))


def open_database_files() -> int:
    """How many file descriptors of this process are open on the database file."""
    name = os.path.realpath(connection.settings_dict["NAME"])
    count = 0
    for fd in PROC_FD.iterdir():
        try:
            target = str(fd.readlink())
        except OSError:  # closed since it was listed
            continue
        count += target == name
    return count


@contextmanager
def receivers_of_order_placed(*receivers: Any) -> Iterator[list[Any]]:
    """Give ``order_placed`` these receivers instead of the services; record the calls."""
    calls: list[Any] = []
    saved = order_placed.receivers
    order_placed.receivers = []
    for r in receivers:
        order_placed.connect(r, weak=False)
    try:
        yield calls
    finally:
        order_placed.receivers = saved


@contextmanager
def persistent_connections() -> Iterator[None]:
    """``CONN_MAX_AGE = None`` for connections opened meanwhile (as a production site may)."""
    settings_dict = connections.settings["default"]
    saved = settings_dict["CONN_MAX_AGE"]
    settings_dict["CONN_MAX_AGE"] = None
    try:
        yield
    finally:
        settings_dict["CONN_MAX_AGE"] = saved


def wait_until(predicate: Any, seconds: float = 10.0) -> bool:
    """Poll *predicate* until it holds or *seconds* pass (workers go idle on their own)."""
    deadline = time.monotonic() + seconds
    pause = threading.Event()
    while not predicate():
        if time.monotonic() > deadline:
            return False
        pause.wait(0.01)
    return True


class WorkerConnectionTests(TransactionTestCase):
    """ORM receivers on parasignal's worker threads leave no connection behind."""

    def setUp(self) -> None:
        """Open the test's own connection: the one that may stay open."""
        self.order = Order.objects.create(item="book")
        self.assertEqual(open_connections(), 1)

    def assert_only_the_tests_own_connection_is_open(self) -> None:
        """One connection open, the test's; closing it leaves no handle on the file.

        SQLite keeps the file descriptors of connections closed while another
        connection of the process holds a lock on the file (the test's own,
        in WAL mode) for reuse, and closes them with the last connection: so
        file handles are counted once the test's own connection is closed.
        """
        self.assertEqual(open_connections(), 1)
        self.assertIsNotNone(connection.connection)
        connection.close()
        self.assertEqual(open_database_files(), 0)

    def check_answer(self, responses: list[tuple[Any, Any]], audits: int) -> None:
        """Every receiver answered: the order was read, marked and audited."""
        self.assertEqual(
            [(r.__name__, v) for r, v in responses],
            [
                ("find_item", "book"),
                ("mark_notified", "1 order marked notified"),
                ("audit_notified", audits),
            ],
        )

    def test_a_burst_through_send_parallel_leaves_only_the_tests_own_connection(self) -> None:
        """With CONN_MAX_AGE = 0 (Django's default) each receiver's connection closes at once."""
        for i in range(BURST):
            responses = order_stored.send_parallel(
                sender=Order, order_id=self.order.pk, item="book"
            )
            self.check_answer(responses, i + 1)
        self.assert_only_the_tests_own_connection_is_open()
        self.assertEqual(AuditEntry.objects.filter(action="notified").count(), BURST)

    def test_a_burst_through_asend_parallel_leaves_only_the_tests_own_connection(self) -> None:
        """The same from async code: sync receivers run on the pool's workers."""

        async def burst() -> list[list[tuple[Any, Any]]]:
            return [
                await order_stored.asend_parallel(sender=Order, order_id=self.order.pk, item="book")
                for _ in range(BURST)
            ]

        for i, responses in enumerate(asyncio.run(burst())):
            self.check_answer(responses, i + 1)
        self.assert_only_the_tests_own_connection_is_open()

    def test_persistent_connections_are_closed_once_the_pool_is_idle(self) -> None:
        """With CONN_MAX_AGE = None, workers keep theirs while busy and close them when idle."""
        with persistent_connections():
            threads = [
                threading.Thread(
                    target=lambda: [
                        order_stored.send_parallel_robust(
                            sender=Order, order_id=self.order.pk, item="book"
                        )
                        for _ in range(BURST // 4)
                    ]
                )
                for _ in range(4)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            # Idle: each worker closes its connections once it has no task.
            self.assertTrue(wait_until(lambda: open_connections() == 1))
            self.assert_only_the_tests_own_connection_is_open()
        # The burst's own caller threads used the ORM only through receivers.
        self.assertEqual(AuditEntry.objects.filter(action="notified").count(), BURST)

    def test_receivers_the_caller_runs_use_its_own_connection(self) -> None:
        """Without a timeout the caller takes part: what it runs uses its connection, as in send."""
        taking_part = Signal(name="shop.tests.taking_part")
        taking_part.connect(find_item, sender=Order)
        for _ in range(BURST):
            responses = taking_part.send_parallel(sender=Order, order_id=self.order.pk)
            self.assertEqual([v for _, v in responses], ["book"])
        self.assert_only_the_tests_own_connection_is_open()

    def test_the_on_commit_recipe_sends_after_the_commit(self) -> None:
        """Receivers run once the order is committed, on workers that can see it."""
        seen: list[Any] = []

        def sees_the_order(order_id: int, **kwargs: Any) -> None:
            seen.append((Order.objects.filter(pk=order_id).exists(), threading.get_ident()))

        with receivers_of_order_placed(sees_the_order):
            order = place_order("lamp")
        self.assertEqual(len(seen), 1)
        self.assertTrue(seen[0][0])
        self.assertNotEqual(seen[0][1], threading.get_ident())
        self.assertTrue(Order.objects.filter(pk=order.pk).exists())
        self.assert_only_the_tests_own_connection_is_open()

    def test_the_on_commit_recipe_never_sends_when_the_transaction_rolls_back(self) -> None:
        """An outer atomic() that rolls back takes the order and the signal with it."""
        seen: list[int] = []

        def records(order_id: int, **kwargs: Any) -> None:
            seen.append(order_id)

        class RolledBackError(Exception):
            pass

        def place_then_fail() -> None:
            with transaction.atomic():
                place_order("lamp")
                self.assertEqual(seen, [])  # not yet: the outer block is open
                raise RolledBackError

        with receivers_of_order_placed(records), self.assertRaises(RolledBackError):
            place_then_fail()
        self.assertEqual(seen, [])
        self.assertFalse(Order.objects.filter(item="lamp").exists())


class InlineModeTests(TestCase):
    """In a TestCase, inline mode lets receivers see the test's transaction."""

    def test_send_parallel_receivers_see_uncommitted_rows_inline(self) -> None:
        """The order exists only in the test's transaction; receivers find it."""
        order = Order.objects.create(item="book")
        with inline():
            responses = order_stored.send_parallel(sender=Order, order_id=order.pk, item="book")
        self.assertEqual([v for _, v in responses], ["book", "1 order marked notified", 1])
        order.refresh_from_db()
        self.assertIsNotNone(order.notified_at)

    def test_send_parallel_robust_failures_are_the_same_inline(self) -> None:
        """A receiver's exception is its response, as on worker threads."""
        with inline():
            responses = order_stored.send_parallel_robust(sender=Order, order_id=-1, item="-")
        self.assertIsInstance(responses[0][1], Order.DoesNotExist)
        self.assertEqual(responses[1][1], "0 order marked notified")
        self.assertIsInstance(responses[2][1], Order.DoesNotExist)

    async def test_asend_parallel_receivers_see_uncommitted_rows_inline(self) -> None:
        """From an async test: receivers run on the test's thread, as asend's would."""
        order = await Order.objects.acreate(item="book")
        with inline():
            responses = await order_stored.asend_parallel(
                sender=Order, order_id=order.pk, item="book"
            )
        self.assertEqual([v for _, v in responses], ["book", "1 order marked notified", 1])

    def test_the_on_commit_recipe_inline(self) -> None:
        """Django's captureOnCommitCallbacks runs the dispatch; inline, it sees the order."""
        seen: list[bool] = []

        def sees_the_order(order_id: int, **kwargs: Any) -> None:
            seen.append(Order.objects.filter(pk=order_id, notified_at=None).exists())

        with (
            receivers_of_order_placed(sees_the_order),
            inline(),
            self.captureOnCommitCallbacks(execute=True) as callbacks,
        ):
            place_order("lamp")
            self.assertEqual(seen, [])
        self.assertEqual(len(callbacks), 1)
        self.assertEqual(seen, [True])

    def test_asend_runs_orm_receivers_on_the_tests_thread_without_inline(self) -> None:
        """Django's asend: sync receivers on the thread-sensitive thread (this one)."""
        order = Order.objects.create(item="book")
        from asgiref.sync import async_to_sync  # noqa: PLC0415 - Django's own dependency

        responses = async_to_sync(order_stored.asend)(sender=Order, order_id=order.pk, item="book")
        self.assertEqual([v for _, v in responses], ["book", "1 order marked notified", 1])
        self.assertLessEqual(Order.objects.get(pk=order.pk).notified_at, timezone.now())


class PlaceOrderTests(TestCase):
    """The Django guide's example: the order's receivers run inline, in the test's transaction."""

    def test_receivers_see_the_order(self) -> None:
        """mark_notified, one of order_placed's receivers, finds the uncommitted order."""
        with inline(), self.captureOnCommitCallbacks(execute=True):
            order = place_order("book")
        order.refresh_from_db()
        self.assertIsNotNone(order.notified_at)
