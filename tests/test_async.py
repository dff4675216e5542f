"""Async receivers, ``asend`` and ``asend_robust``: exactly Django 6.1's behaviour.

The concurrent ``asend_parallel*`` have their own file, test_asend_parallel.py.
"""

from __future__ import annotations

import asyncio
import contextvars
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from async_receivers import async_a, async_b, names, sync_a, sync_b, values
from conftest import collect
from parasignal import Signal, _async

WAIT = 10.0
var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


def mixed_signal(**kwargs: Any) -> Signal:
    signal = Signal(**kwargs)
    for r in (async_a, sync_a, async_b, sync_b):
        signal.connect(r)
    return signal


# -- Django 6.1 parity -------------------------------------------------------------


def test_coroutine_function_receivers_can_be_connected_and_are_flagged_async() -> None:
    signal = mixed_signal()
    assert [entry[3] for entry in signal.receivers] == [True, False, True, False]
    assert signal.has_listeners()


def test_send_lists_sync_receivers_first_then_async_ones() -> None:
    responses = mixed_signal().send(sender=None)
    assert names(responses) == ["sync_a", "sync_b", "async_a", "async_b"]
    assert values(responses) == ["sync_a", "sync_b", "async_a", "async_b"]


def test_send_robust_lists_sync_receivers_first_then_async_ones() -> None:
    responses = mixed_signal().send_robust(sender=None)
    assert names(responses) == ["sync_a", "sync_b", "async_a", "async_b"]


def test_send_awaits_async_receivers_concurrently() -> None:
    signal = Signal()
    events: dict[str, asyncio.Event] = {}

    async def first(**kwargs: Any) -> str:
        events.setdefault("first", asyncio.Event()).set()
        await asyncio.wait_for(events.setdefault("second", asyncio.Event()).wait(), WAIT)
        return "first"

    async def second(**kwargs: Any) -> str:
        events.setdefault("second", asyncio.Event()).set()
        await asyncio.wait_for(events.setdefault("first", asyncio.Event()).wait(), WAIT)
        return "second"

    signal.connect(first)
    signal.connect(second)
    assert values(signal.send(sender=None)) == ["first", "second"]


def test_async_receivers_get_signal_sender_and_named_arguments() -> None:
    signal = Signal()
    seen: list[tuple[object, object, object]] = []

    async def receiver(signal: Signal, sender: object, **kwargs: Any) -> None:
        seen.append((signal, sender, kwargs))

    signal.connect(receiver)
    signal.send(sender="shop", order_id=1)
    assert seen == [(signal, "shop", {"order_id": 1})]


def test_send_inside_a_running_event_loop_with_async_receivers_raises_runtime_error() -> None:
    signal = mixed_signal(name="loopy")

    async def main() -> None:
        with pytest.raises(RuntimeError, match=r"loopy\.send\(\) cannot run async receivers"):
            signal.send(sender=None)

    asyncio.run(main())


def test_send_inside_a_running_event_loop_is_fine_without_async_receivers() -> None:
    signal = Signal()
    signal.connect(sync_a)

    async def main() -> list[tuple[Callable[..., Any], Any]]:
        return signal.send(sender=None)

    assert values(asyncio.run(main())) == ["sync_a"]


def test_a_failing_async_receiver_propagates_from_send() -> None:
    signal = Signal()

    async def fails(**kwargs: Any) -> None:
        msg = "async failure"
        raise ValueError(msg)

    signal.connect(sync_a)
    signal.connect(fails)
    with pytest.raises(ValueError, match="async failure"):
        signal.send(sender=None)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="ExceptionGroup arrived in 3.11")
def test_several_async_failures_raise_an_exception_group_as_task_group_does() -> None:
    signal = Signal()

    async def fails_1(**kwargs: Any) -> None:
        raise ValueError

    async def fails_2(**kwargs: Any) -> None:
        raise KeyError

    signal.connect(fails_1)
    signal.connect(fails_2)
    with pytest.raises(BaseExceptionGroup) as info:  # noqa: F821 - 3.11+
        signal.send(sender=None)
    assert [type(e) for e in info.value.exceptions] == [ValueError, KeyError]


def test_send_robust_returns_async_failures_and_logs_them(logs: list[Any]) -> None:
    signal = Signal(name="robust")

    async def fails(**kwargs: Any) -> None:
        msg = "nope"
        raise ValueError(msg)

    signal.connect(fails)
    ((receiver, response),) = signal.send_robust(sender=None)
    assert receiver is fails
    assert isinstance(response, ValueError)
    (event,) = logs
    assert event["event"] == "signal.receiver_failed"
    assert event["method"] == "send_robust"
    assert event["exc_info"] is response


def test_async_receivers_contextvar_changes_flow_back_to_the_caller_of_send() -> None:
    # Django 6.1, ticket #36714.
    signal = Signal()

    async def sets(**kwargs: Any) -> None:
        var.set("from async receiver")

    signal.connect(sets)

    def caller() -> str:
        signal.send(sender=None)
        return var.get()

    assert contextvars.copy_context().run(caller) == "from async receiver"


def test_asend_lists_sync_receivers_first_then_async_ones() -> None:
    signal = mixed_signal()
    responses = asyncio.run(signal.asend(sender=None))
    assert names(responses) == ["sync_a", "sync_b", "async_a", "async_b"]


def test_asend_robust_returns_failures_as_responses(logs: list[Any]) -> None:
    signal = Signal(name="arobust")

    def sync_fails(**kwargs: Any) -> None:
        raise KeyError

    async def async_fails(**kwargs: Any) -> None:
        raise ValueError

    signal.connect(sync_fails)
    signal.connect(async_fails)
    signal.connect(sync_a)
    responses = asyncio.run(signal.asend_robust(sender=None))
    assert names(responses) == ["sync_fails", "sync_a", "async_fails"]
    assert isinstance(responses[0][1], KeyError)
    assert responses[1][1] == "sync_a"
    assert isinstance(responses[2][1], ValueError)
    assert sorted(e["method"] for e in logs) == ["asend_robust", "asend_robust"]


@pytest.mark.parametrize("method", ["asend", "asend_parallel"])
def test_a_failing_sync_receiver_propagates_and_async_ones_never_run(method: str) -> None:
    signal = Signal()
    ran: list[str] = []

    def fails(**kwargs: Any) -> None:
        msg = "sync failure"
        raise RuntimeError(msg)

    async def later(**kwargs: Any) -> None:
        ran.append("later")

    signal.connect(fails)
    signal.connect(later)
    with pytest.raises(RuntimeError, match="sync failure"):
        asyncio.run(getattr(signal, method)(sender=None))
    assert ran == []


def test_asend_lets_contextvar_changes_of_sync_and_async_receivers_flow_back() -> None:
    signal = Signal()
    sync_var: contextvars.ContextVar[str] = contextvars.ContextVar("sync_var", default="unset")

    def sync_sets(**kwargs: Any) -> None:
        sync_var.set("from sync receiver")

    async def async_sets(**kwargs: Any) -> None:
        var.set("from async receiver")

    signal.connect(sync_sets)
    signal.connect(async_sets)

    async def main() -> tuple[str, str]:
        await signal.asend(sender=None)
        return sync_var.get(), var.get()

    assert asyncio.run(main()) == ("from sync receiver", "from async receiver")


def test_asend_is_a_no_op_without_receivers() -> None:
    assert asyncio.run(Signal().asend(sender=None)) == []


# -- asend: Django's one thread, one context ------------------------------------------


def counting_receivers(count: int) -> tuple[list[Callable[..., int]], list[int]]:
    """Receivers that each add one to ``counter`` and record what they saw."""
    seen: list[int] = []

    def make() -> Callable[..., int]:
        def receiver(**kwargs: Any) -> int:
            counter.set(counter.get() + 1)
            seen.append(counter.get())
            return counter.get()

        return receiver

    return [make() for _ in range(count)], seen


counter: contextvars.ContextVar[int] = contextvars.ContextVar("counter", default=0)


@pytest.mark.parametrize("method", ["asend", "asend_robust"])
def test_asend_sync_receivers_share_one_context_whose_changes_flow_back(method: str) -> None:
    # Django's test_asend(_robust)_correct_contextvars_sharing_sync_receivers.
    signal = Signal()
    receivers, seen = counting_receivers(3)
    for r in receivers:
        signal.connect(r)

    async def main() -> tuple[list[Any], int]:
        counter.set(1)
        responses = await getattr(signal, method)(sender=None)
        return values(responses), counter.get()

    assert asyncio.run(main()) == ([2, 3, 4], 4)
    assert seen == [2, 3, 4]


@pytest.mark.parametrize("method", ["asend", "asend_robust"])
def test_asend_calls_sync_receivers_one_after_another_on_one_thread_not_the_loops(
    method: str,
) -> None:
    signal = Signal()
    calls: list[tuple[int, str, int]] = []
    running = threading.Lock()

    def make(i: int) -> Callable[..., int]:
        def receiver(**kwargs: Any) -> int:
            # Never two at once: the lock is free whenever one starts.
            assert running.acquire(blocking=False)
            try:
                time.sleep(0.002)
                calls.append((i, threading.current_thread().name, threading.get_ident()))
            finally:
                running.release()
            return i

        return receiver

    receivers = [make(i) for i in range(5)]
    for r in receivers:
        signal.connect(r)

    async def main() -> tuple[list[Any], int]:
        return values(await getattr(signal, method)(sender=None)), threading.get_ident()

    answer, loop_thread = asyncio.run(main())
    assert answer == [0, 1, 2, 3, 4]
    assert [i for i, _, _ in calls] == [0, 1, 2, 3, 4]
    assert len({ident for _, _, ident in calls}) == 1
    assert calls[0][2] != loop_thread
    assert not calls[0][1].startswith("parasignal")


def test_asend_uses_asgirefs_thread_sensitive_thread_the_one_calling_async_to_sync() -> None:
    asgiref_sync = pytest.importorskip("asgiref.sync")
    signal = Signal()
    threads: list[int] = []

    def receiver(**kwargs: Any) -> None:
        threads.append(threading.get_ident())

    signal.connect(receiver)
    # Inside async_to_sync, thread-sensitive calls go back to the thread
    # that called it: Django's request thread, with its database connection.
    asgiref_sync.async_to_sync(signal.asend)(sender=None)
    asgiref_sync.async_to_sync(signal.asend_robust)(sender=None)
    assert threads == [threading.get_ident()] * 2


def test_asend_without_asgiref_uses_one_thread_of_the_loops_executor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_async, "asgiref_sync_to_async", lambda: None)
    signal = Signal()
    receivers, seen = counting_receivers(3)
    for r in receivers:
        signal.connect(r)
    threads: set[int] = set()

    def where(**kwargs: Any) -> None:
        threads.add(threading.get_ident())

    signal.connect(where)

    async def main() -> tuple[int, int]:
        counter.set(1)
        await signal.asend(sender=None)
        await signal.asend_robust(sender=None)
        return counter.get(), threading.get_ident()

    final, loop_thread = asyncio.run(main())
    assert final == 7
    assert seen == [2, 3, 4, 5, 6, 7]
    assert loop_thread not in threads


def test_importing_parasignal_imports_neither_asgiref_nor_django() -> None:
    code = (
        "import sys, asyncio, parasignal, parasignal.testing\n"
        "s = parasignal.Signal(); s.connect(lambda **kw: 1, weak=False)\n"
        "s.send_parallel(None)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('asgiref', 'django')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


def test_asend_works_when_asgiref_cannot_be_imported() -> None:
    code = (
        "import sys; sys.modules['asgiref'] = None\n"
        "import asyncio, threading, parasignal\n"
        "s = parasignal.Signal()\n"
        "s.connect(lambda **kw: threading.get_ident(), weak=False)\n"
        "async def main():\n"
        "    return (await s.asend(None))[0][1] != threading.get_ident()\n"
        "print(asyncio.run(main()))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "True"


def test_asend_does_not_apply_the_signals_timeout() -> None:
    signal = Signal(timeout=0.01)

    def slow(**kwargs: Any) -> str:
        time.sleep(0.05)
        return "slow"

    async def slow_async(**kwargs: Any) -> str:
        await asyncio.sleep(0.05)
        return "slow_async"

    signal.connect(slow)
    signal.connect(slow_async)
    assert values(asyncio.run(signal.asend(sender=None))) == ["slow", "slow_async"]
    assert values(asyncio.run(signal.asend_robust(sender=None))) == ["slow", "slow_async"]


def test_asend_robust_reports_sync_failures_on_the_thread_they_ran_on(logs: list[Any]) -> None:
    signal = Signal(name="arobust")
    threads: list[str] = []

    def fails(**kwargs: Any) -> None:
        threads.append(threading.current_thread().name)
        raise KeyError

    signal.connect(fails)
    ((_, response),) = asyncio.run(signal.asend_robust(sender=None))
    assert isinstance(response, KeyError)
    (event,) = logs
    assert event["method"] == "asend_robust"
    assert event["thread_name"] == threads[0]


def test_asend_does_not_start_later_sync_receivers_after_a_failure() -> None:
    signal = Signal()
    ran: list[str] = []

    def fails(**kwargs: Any) -> None:
        raise ValueError

    def later(**kwargs: Any) -> None:
        ran.append("later")

    signal.connect(fails)
    signal.connect(later)
    with pytest.raises(ValueError):
        asyncio.run(signal.asend(sender=None))
    assert ran == []


def test_cancelling_asend_cancels_its_async_receivers() -> None:
    signal = Signal()
    cancelled: list[bool] = []

    async def main() -> None:
        running = asyncio.Event()

        async def stuck(**kwargs: Any) -> None:
            running.set()
            try:
                await asyncio.sleep(WAIT)
            except asyncio.CancelledError:
                cancelled.append(True)
                raise

        signal.connect(stuck, weak=False)
        task = asyncio.ensure_future(signal.asend(sender=None))
        await asyncio.wait_for(running.wait(), WAIT)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert cancelled == [True]


# -- send_parallel with async receivers ---------------------------------------------


def test_send_parallel_runs_sync_receivers_on_workers_then_async_ones() -> None:
    signal = mixed_signal()
    responses = signal.send_parallel(sender=None)
    assert names(responses) == ["sync_a", "sync_b", "async_a", "async_b"]
    assert responses == signal.send(sender=None)


def test_send_parallel_robust_returns_async_failures_as_responses(logs: list[Any]) -> None:
    signal = Signal(name="par")

    async def fails(**kwargs: Any) -> None:
        raise ValueError

    signal.connect(fails)
    signal.connect(sync_a)
    responses = signal.send_parallel_robust(sender=None)
    assert names(responses) == ["sync_a", "fails"]
    assert isinstance(responses[1][1], ValueError)
    assert [e["method"] for e in logs] == ["send_parallel_robust"]


def test_send_parallel_inside_a_running_event_loop_with_async_receivers_raises() -> None:
    signal = mixed_signal(name="loopy")

    async def main() -> None:
        with pytest.raises(RuntimeError, match=r"send_parallel\(\) cannot run async receivers"):
            signal.send_parallel(sender=None)

    asyncio.run(main())


def test_send_parallel_deadline_covers_async_receivers_too() -> None:
    signal = Signal(name="par", timeout=0.05)

    async def stuck(**kwargs: Any) -> None:
        await asyncio.sleep(WAIT)

    signal.connect(stuck)
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="stuck"):
        signal.send_parallel(sender=None)
    assert time.monotonic() - started < 2


# -- bookkeeping --------------------------------------------------------------------


def test_a_weakly_connected_async_bound_method_leaves_with_its_instance() -> None:
    class Service:
        async def handle(self, **kwargs: Any) -> str:
            return "handled"

    signal = Signal()
    service = Service()
    signal.connect(service.handle)
    assert values(signal.send(sender=None)) == ["handled"]
    del service
    collect()
    assert signal.send(sender=None) == []
    assert not signal.has_listeners()


def test_async_receivers_can_be_disconnected_and_filtered_by_sender() -> None:
    signal = Signal(use_caching=True)

    class Sender:
        pass

    mine = Sender()
    signal.connect(async_a, sender=mine)
    assert values(signal.send(sender=mine)) == ["async_a"]
    assert signal.send(sender=Sender()) == []
    assert signal.disconnect(async_a, sender=mine)
    assert signal.send(sender=mine) == []


# -- regressions ----------------------------------------------------------------------


def test_asend_keeps_an_earlier_sync_receivers_change_when_a_later_one_changes_nothing() -> None:
    signal = Signal()

    def sets(**kwargs: Any) -> None:
        var.set("set by the first receiver")

    def leaves_alone(**kwargs: Any) -> None:
        pass

    signal.connect(sets)
    signal.connect(leaves_alone)

    async def main() -> str:
        var.set("caller")
        await signal.asend(sender=None)
        return var.get()

    assert asyncio.run(main()) == "set by the first receiver"


@pytest.mark.parametrize("method", ["asend", "asend_parallel"])
def test_contextvar_changes_flow_back_even_when_a_receiver_raises(method: str) -> None:
    signal = Signal()

    def sets(**kwargs: Any) -> None:
        var.set("set before the failure")

    def fails(**kwargs: Any) -> None:
        msg = "boom"
        raise ValueError(msg)

    signal.connect(sets)
    signal.connect(fails)

    async def main() -> str:
        with pytest.raises(ValueError, match="boom"):
            await getattr(signal, method)(sender=None)
        return var.get()

    assert asyncio.run(main()) == "set before the failure"


@pytest.mark.skipif(sys.version_info < (3, 11), reason="3.10 merges per-task copies instead")
def test_async_receivers_share_one_context_as_in_django() -> None:
    signal = Signal()

    async def sets(**kwargs: Any) -> None:
        var.set("shared")

    async def reads_after(**kwargs: Any) -> str:
        await asyncio.sleep(0.01)
        return var.get()

    signal.connect(sets)
    signal.connect(reads_after)
    assert values(signal.send(sender=None)) == [None, "shared"]


def test_an_async_receiver_that_cancels_itself_gets_none_not_a_timeout(logs: list[Any]) -> None:
    signal = Signal()

    async def cancels_itself(**kwargs: Any) -> None:
        raise asyncio.CancelledError

    signal.connect(async_a)
    signal.connect(cancels_itself)
    assert values(signal.send(sender=None)) == ["async_a", None]
    assert values(signal.send_robust(sender=None)) == ["async_a", None]
    assert logs == []


def test_asend_keeps_working_after_shutdown() -> None:
    signal = Signal(max_workers=2)
    signal.connect(sync_a)
    signal.connect(async_a)
    signal.shutdown()
    assert values(asyncio.run(signal.asend(sender=None))) == ["sync_a", "async_a"]
    assert values(asyncio.run(signal.asend_robust(sender=None))) == ["sync_a", "async_a"]
    with pytest.raises(RuntimeError, match="shut down"):
        signal.send_parallel(sender=None)


def test_a_keyboard_interrupt_from_an_async_receiver_leaves_no_task_behind() -> None:
    signal = Signal()
    cleaned: list[str] = []

    async def slow(**kwargs: Any) -> None:
        try:
            await asyncio.sleep(WAIT)
        finally:
            cleaned.append("slow")

    async def interrupts(**kwargs: Any) -> None:
        await asyncio.sleep(0)
        raise KeyboardInterrupt

    signal.connect(slow)
    signal.connect(interrupts)
    with pytest.raises(KeyboardInterrupt):
        signal.send(sender=None)
    assert cleaned == ["slow"]
