"""Async receivers, ``asend`` and ``asend_robust``: Django 6.1's behaviour, and better."""

from __future__ import annotations

import asyncio
import contextvars
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog
from structlog.testing import LogCapture

from conftest import collect
from parasignal import Signal

WAIT = 10.0
var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


@pytest.fixture
def logs() -> Iterator[list[Any]]:
    capture = LogCapture()
    structlog.configure(processors=[structlog.contextvars.merge_contextvars, capture])
    try:
        yield capture.entries
    finally:
        structlog.reset_defaults()


def names(responses: list[tuple[Callable[..., Any], Any]]) -> list[str]:
    return [r.__name__ for r, _ in responses]


def values(responses: list[tuple[Callable[..., Any], Any]]) -> list[Any]:
    return [v for _, v in responses]


async def async_a(**kwargs: Any) -> str:
    await asyncio.sleep(0)
    return "async_a"


async def async_b(**kwargs: Any) -> str:
    return "async_b"


def sync_a(**kwargs: Any) -> str:
    return "sync_a"


def sync_b(**kwargs: Any) -> str:
    return "sync_b"


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


def test_a_failing_sync_receiver_in_asend_propagates_and_async_ones_never_run() -> None:
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
        asyncio.run(signal.asend(sender=None))
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


# -- better than Django ------------------------------------------------------------


def test_asend_runs_sync_receivers_concurrently_on_worker_threads() -> None:
    signal = Signal()
    together = threading.Barrier(3, timeout=WAIT)
    threads: list[str] = []

    def make(i: int) -> Callable[..., int]:
        def receiver(**kwargs: Any) -> int:
            threads.append(threading.current_thread().name)
            together.wait()  # breaks unless all three run at once
            return i

        return receiver

    receivers = [make(i) for i in range(3)]
    for r in receivers:
        signal.connect(r)
    responses = asyncio.run(signal.asend(sender=None))
    assert values(responses) == [0, 1, 2]
    assert all(name.startswith("parasignal") for name in threads)


def test_asend_does_not_block_the_event_loop_while_sync_receivers_run() -> None:
    signal = Signal()
    release = threading.Event()

    def slow(**kwargs: Any) -> str:
        assert release.wait(WAIT)
        return "slow"

    signal.connect(slow)

    async def main() -> list[Any]:
        dispatch = asyncio.ensure_future(signal.asend(sender=None))
        ticks = 0
        while ticks < 5:  # the loop keeps turning while the receiver blocks
            await asyncio.sleep(0.001)
            ticks += 1
        assert not dispatch.done()
        release.set()
        return values(await dispatch)

    assert asyncio.run(main()) == ["slow"]


def test_asend_deadline_names_unfinished_sync_receivers(logs: list[Any]) -> None:
    signal = Signal(name="deadline", timeout=0.05)
    release = threading.Event()

    def stuck(**kwargs: Any) -> None:
        assert release.wait(WAIT)

    signal.connect(stuck)
    try:
        with pytest.raises(TimeoutError, match="stuck"):
            asyncio.run(signal.asend(sender=None))
    finally:
        release.set()
    assert [e["event"] for e in logs] == ["signal.receiver_timeout"]


def test_asend_robust_deadline_cancels_async_receivers_and_returns_timeout_errors(
    logs: list[Any],
) -> None:
    signal = Signal(name="deadline", timeout=0.05)
    cancelled: list[bool] = []

    async def stuck(**kwargs: Any) -> None:
        try:
            await asyncio.sleep(WAIT)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    signal.connect(stuck)
    signal.connect(async_a)
    started = time.monotonic()
    responses = asyncio.run(signal.asend_robust(sender=None))
    assert time.monotonic() - started < 2
    assert isinstance(responses[0][1], TimeoutError)
    assert responses[1][1] == "async_a"
    assert cancelled == [True]
    assert [e["method"] for e in logs] == ["asend_robust"]


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


def test_asend_lets_contextvar_changes_flow_back_even_when_a_receiver_raises() -> None:
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
            await signal.asend(sender=None)
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


def test_asend_run_in_a_receiver_on_a_one_thread_pool_does_not_deadlock() -> None:
    signal = Signal(max_workers=1)

    def outer(**kwargs: Any) -> Any:
        if kwargs["sender"] == "outer":
            return values(asyncio.run(signal.asend(sender="inner")))
        return "inner"

    signal.connect(outer)
    thread_result: list[Any] = []
    thread = threading.Thread(
        target=lambda: thread_result.append(signal.send_parallel(sender="outer")), daemon=True
    )
    thread.start()
    thread.join(WAIT)
    assert not thread.is_alive(), "asend inside a pool worker deadlocked"
    assert values(thread_result[0]) == [["inner"]]
    signal.shutdown()


def test_an_async_receiver_that_cancels_itself_gets_none_not_a_timeout(logs: list[Any]) -> None:
    signal = Signal()

    async def cancels_itself(**kwargs: Any) -> None:
        raise asyncio.CancelledError

    signal.connect(async_a)
    signal.connect(cancels_itself)
    assert values(signal.send(sender=None)) == ["async_a", None]
    assert values(signal.send_robust(sender=None)) == ["async_a", None]
    assert logs == []


def test_asend_keeps_working_after_shutdown_one_receiver_after_another() -> None:
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
