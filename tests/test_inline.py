"""``parasignal.testing.inline()``: parallel dispatch on the calling thread, for tests."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable
from typing import Any

import pytest

from parasignal import Signal, testing
from parasignal.testing import inline

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
Responses = list[tuple[Callable[..., Any], Any]]


def values(responses: Responses) -> list[Any]:
    return [v for _, v in responses]


def recording_signal(**kwargs: Any) -> tuple[Signal, list[tuple[str, int]]]:
    signal = Signal(**kwargs)
    calls: list[tuple[str, int]] = []

    def make(name: str) -> Callable[..., str]:
        def receiver(**kwargs: Any) -> str:
            calls.append((name, threading.get_ident()))
            return name

        receiver.__name__ = name
        return receiver

    for name in ("a", "b", "c"):
        signal.connect(make(name), weak=False)
    return signal, calls


@pytest.mark.parametrize("method", ["send_parallel", "send_parallel_robust"])
def test_send_parallel_runs_receivers_in_order_on_the_calling_thread(method: str) -> None:
    signal, calls = recording_signal()
    with inline():
        responses = getattr(signal, method)(sender=None)
    assert values(responses) == ["a", "b", "c"]
    assert calls == [(name, threading.get_ident()) for name in ("a", "b", "c")]


def test_the_answer_equals_the_threaded_one() -> None:
    signal, _ = recording_signal()
    threaded = signal.send_parallel(sender=None)
    with inline():
        assert signal.send_parallel(sender=None) == threaded == signal.send(sender=None)


def test_send_parallel_raises_sends_exception_and_later_receivers_never_start() -> None:
    signal = Signal()
    ran: list[str] = []

    def fails(**kwargs: Any) -> None:
        msg = "first failure"
        raise ValueError(msg)

    def later(**kwargs: Any) -> None:
        ran.append("later")

    signal.connect(fails)
    signal.connect(later)
    with inline(), pytest.raises(ValueError, match="first failure"):
        signal.send_parallel(sender=None)
    assert ran == []


def test_send_parallel_robust_returns_failures_and_logs_the_same_events(
    logs: list[Any],
) -> None:
    signal = Signal(name="inline_robust")

    def fails(**kwargs: Any) -> None:
        raise KeyError

    signal.connect(fails)
    with inline():
        ((_, response),) = signal.send_parallel_robust(sender="shop")
    assert isinstance(response, KeyError)
    (event,) = logs
    assert event["event"] == "signal.receiver_failed"
    assert event["method"] == "send_parallel_robust"
    assert event["signal"] == "inline_robust"
    assert event["thread_name"] == threading.current_thread().name


def test_receivers_run_in_copies_of_the_callers_context_whose_changes_stay_with_them() -> None:
    signal = Signal()
    seen: list[str] = []

    def receiver(**kwargs: Any) -> None:
        seen.append(var.get())
        var.set("changed by the receiver")

    signal.connect(receiver)

    def caller() -> str:
        var.set("caller")
        with inline():
            signal.send_parallel(sender=None)
        return var.get()

    assert contextvars.copy_context().run(caller) == "caller"  # as on worker threads
    assert seen == ["caller"]


@pytest.mark.parametrize("method", ["asend_parallel", "asend_parallel_robust"])
def test_asend_parallel_runs_sync_receivers_in_order_on_one_thread_as_asend_would(
    method: str,
) -> None:
    asgiref_sync = pytest.importorskip("asgiref.sync")
    signal, calls = recording_signal()

    async def also_async(**kwargs: Any) -> str:
        return "async"

    signal.connect(also_async)
    with inline():
        # Inside async_to_sync, as a Django test's async code runs: the sync
        # receivers run on this (the test's) thread.
        responses = asgiref_sync.async_to_sync(getattr(signal, method))(sender=None)
    assert values(responses) == ["a", "b", "c", "async"]
    assert calls == [(name, threading.get_ident()) for name in ("a", "b", "c")]


def test_asend_parallel_context_changes_flow_back_in_connection_order() -> None:
    signal = Signal()

    def first(**kwargs: Any) -> None:
        var.set("first")

    def second(**kwargs: Any) -> None:
        var.set("second")

    signal.connect(first)
    signal.connect(second)

    async def main() -> str:
        with inline():
            await signal.asend_parallel(sender=None)
        return var.get()

    assert asyncio.run(main()) == "second"


def test_the_signals_timeout_is_not_applied_inline() -> None:
    signal = Signal(timeout=0.001)
    release = threading.Event()

    def slow(**kwargs: Any) -> str:
        release.wait(0.02)
        return "finished"

    signal.connect(slow)
    with inline():
        assert values(signal.send_parallel(sender=None)) == ["finished"]


def test_nested_dispatch_from_an_inline_receiver_runs_inline_too() -> None:
    signal = Signal()
    threads: list[int] = []

    def outer(**kwargs: Any) -> Any:
        threads.append(threading.get_ident())
        if kwargs["sender"] == "outer":
            return values(signal.send_parallel(sender="inner"))
        return "inner"

    signal.connect(outer)
    with inline():
        assert values(signal.send_parallel(sender="outer")) == [["inner"]]
    assert threads == [threading.get_ident()] * 2


def test_inline_nests_and_ends_with_the_outermost_block() -> None:
    signal, calls = recording_signal()
    with inline():
        with inline():
            pass
        signal.send_parallel(sender=None)
        assert {ident for _, ident in calls} == {threading.get_ident()}
    calls.clear()
    signal.caller_runs = False  # so that, inline mode over, only workers run them
    signal.send_parallel(sender=None)
    assert threading.get_ident() not in {ident for _, ident in calls}


def test_inline_still_refuses_a_shut_down_signal() -> None:
    signal, _ = recording_signal(name="closed", max_workers=1)
    signal.shutdown()
    with inline(), pytest.raises(RuntimeError, match=r"closed\.send_parallel\(\) cannot run"):
        signal.send_parallel(sender=None)


def test_the_pytest_fixture_turns_inline_mode_on(parasignal_inline: None) -> None:
    signal, calls = recording_signal()
    signal.send_parallel(sender=None)
    assert {ident for _, ident in calls} == {threading.get_ident()}


def test_the_module_exports_the_context_manager_and_the_fixture() -> None:
    assert testing.__all__ == [
        "inline",
        "restored_shared_pool",
        "parasignal_inline",
        "parasignal_shared_pool",
    ]
