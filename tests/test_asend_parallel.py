"""``asend_parallel`` and ``asend_parallel_robust``: ``asend``'s answer, receivers in parallel.

The contract: the answer ordered as ``asend`` orders it (sync receivers, then
async ones, each in connection order); sync receivers concurrently on the
signal's pool with ``send_parallel``'s rules; contextvars changes flowing
back in connection order; the signal's deadline; cancellation; the loop
never blocked.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from async_receivers import async_a, async_b, names, sync_a, sync_b, values
from parasignal import Signal

WAIT = 10.0
var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
counter: contextvars.ContextVar[int] = contextvars.ContextVar("counter", default=0)

METHODS = ["asend_parallel", "asend_parallel_robust"]


# -- the answer ---------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_the_answer_is_ordered_as_asend_orders_it(method: str) -> None:
    signal = Signal()
    for r in (async_a, sync_a, async_b, sync_b):
        signal.connect(r)
    responses = asyncio.run(getattr(signal, method)(sender=None))
    assert names(responses) == ["sync_a", "sync_b", "async_a", "async_b"]
    assert responses == asyncio.run(signal.asend(sender=None))


@pytest.mark.parametrize("method", METHODS)
def test_no_receivers_answer_an_empty_list(method: str) -> None:
    assert asyncio.run(getattr(Signal(), method)(sender=None)) == []


def test_receivers_get_signal_sender_and_named_arguments() -> None:
    signal = Signal()
    seen: list[tuple[object, object, dict[str, Any]]] = []

    def receiver(signal: Signal, sender: object, **kwargs: Any) -> None:
        seen.append((signal, sender, kwargs))

    signal.connect(receiver)
    asyncio.run(signal.asend_parallel(sender="shop", order_id=1))
    assert seen == [(signal, "shop", {"order_id": 1})]


# -- concurrency --------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_sync_receivers_run_concurrently_on_worker_threads(method: str) -> None:
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
    assert values(asyncio.run(getattr(signal, method)(sender=None))) == [0, 1, 2]
    assert all(name.startswith("parasignal") for name in threads)


def test_32_sync_receivers_sleeping_10_ms_take_about_10_ms_not_320() -> None:
    # A loose sanity bound on a shared machine; benchmarks/run.py measures it.
    signal = Signal()
    for _ in range(32):
        signal.connect(lambda **kwargs: time.sleep(0.01), weak=False)
    asyncio.run(signal.asend_parallel(sender=None))  # warm up: start the threads
    best = WAIT
    for _ in range(3):
        started = time.perf_counter()
        asyncio.run(signal.asend_parallel(sender=None))
        best = min(best, time.perf_counter() - started)
    assert best < 0.16, f"{best * 1000:.1f} ms: not concurrent (one by one: 320 ms)"


def test_the_event_loop_is_never_blocked_while_sync_receivers_run() -> None:
    signal = Signal()
    release = threading.Event()

    def slow(**kwargs: Any) -> str:
        assert release.wait(WAIT)
        return "slow"

    signal.connect(slow)

    async def main() -> list[Any]:
        dispatch = asyncio.ensure_future(signal.asend_parallel(sender=None))
        for _ in range(5):  # the loop keeps turning while the receiver blocks
            await asyncio.sleep(0.001)
        assert not dispatch.done()
        release.set()
        return values(await dispatch)

    assert asyncio.run(main()) == ["slow"]


# -- failures -----------------------------------------------------------------------


def test_robust_returns_failures_as_responses_and_logs_them(logs: list[Any]) -> None:
    signal = Signal(name="arobust")

    def sync_fails(**kwargs: Any) -> None:
        raise KeyError

    async def async_fails(**kwargs: Any) -> None:
        raise ValueError

    signal.connect(sync_fails)
    signal.connect(async_fails)
    signal.connect(sync_a)
    responses = asyncio.run(signal.asend_parallel_robust(sender=None))
    assert names(responses) == ["sync_fails", "sync_a", "async_fails"]
    assert isinstance(responses[0][1], KeyError)
    assert isinstance(responses[2][1], ValueError)
    assert sorted(e["method"] for e in logs) == ["asend_parallel_robust"] * 2
    sync_event = next(e for e in logs if isinstance(e["exc_info"], KeyError))
    assert sync_event["thread_name"].startswith("parasignal")


# -- contexts -----------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_each_receivers_context_changes_flow_back_in_connection_order(method: str) -> None:
    signal = Signal()
    first_done = threading.Event()

    def first(**kwargs: Any) -> None:
        var.set("first")
        first_done.set()

    def second(**kwargs: Any) -> None:
        # Finishes after the first, so only the connection order can make
        # the first's value lose.
        assert first_done.wait(WAIT)
        var.set("second")

    def third_changes_nothing(**kwargs: Any) -> None:
        pass

    async def async_sets(**kwargs: Any) -> None:
        counter.set(42)

    for r in (first, second, third_changes_nothing, async_sets):
        signal.connect(r)

    async def main() -> tuple[str, int]:
        var.set("caller")
        await getattr(signal, method)(sender=None)
        return var.get(), counter.get()

    assert asyncio.run(main()) == ("second", 42)


def test_sync_receivers_start_from_the_callers_context_in_copies_of_their_own() -> None:
    signal = Signal()
    seen: list[str] = []
    together = threading.Barrier(2, timeout=WAIT)

    def make() -> Callable[..., None]:
        def receiver(**kwargs: Any) -> None:
            seen.append(var.get())
            together.wait()
            var.set("changed")

        return receiver

    receivers = [make(), make()]
    for r in receivers:
        signal.connect(r)

    async def main() -> str:
        var.set("from the caller")
        await signal.asend_parallel(sender=None)
        return var.get()

    assert asyncio.run(main()) == "changed"
    assert seen == ["from the caller"] * 2


def test_the_deadline_names_unfinished_sync_receivers(logs: list[Any]) -> None:
    signal = Signal(name="deadline", timeout=0.05)
    release = threading.Event()

    def stuck(**kwargs: Any) -> None:
        assert release.wait(WAIT)

    signal.connect(stuck)
    try:
        with pytest.raises(TimeoutError, match="stuck"):
            asyncio.run(signal.asend_parallel(sender=None))
    finally:
        release.set()
    assert [(e["event"], e["method"]) for e in logs] == [
        ("signal.dispatch_timeout", "asend_parallel"),
        ("signal.receiver_timeout", "asend_parallel"),
    ]


def test_robust_deadline_cancels_async_receivers_and_returns_timeout_errors(
    logs: list[Any],
) -> None:
    signal = Signal(name="deadline", timeout=0.05)
    cancelled: list[bool] = []
    release = threading.Event()

    def stuck_sync(**kwargs: Any) -> None:
        assert release.wait(WAIT)

    async def stuck(**kwargs: Any) -> None:
        try:
            await asyncio.sleep(WAIT)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    signal.connect(stuck_sync)
    signal.connect(stuck)
    signal.connect(async_a)
    started = time.monotonic()
    try:
        responses = asyncio.run(signal.asend_parallel_robust(sender=None))
    finally:
        release.set()
    assert time.monotonic() - started < 2
    assert isinstance(responses[0][1], TimeoutError)
    assert isinstance(responses[1][1], TimeoutError)
    assert responses[2][1] == "async_a"
    assert cancelled == [True]
    # The sync receiver's timed-out dispatch, then the async receiver's: one
    # dispatch event and one receiver event each.
    assert [e["method"] for e in logs] == ["asend_parallel_robust"] * 4


# -- cancellation -------------------------------------------------------------------


def test_cancelling_the_awaiting_task_starts_no_more_receivers_and_cancels_async_ones() -> None:
    signal = Signal(max_workers=1)
    started: list[str] = []
    running = threading.Event()
    release = threading.Event()
    cancelled: list[bool] = []

    def blocks(**kwargs: Any) -> None:
        started.append("blocks")
        running.set()
        assert release.wait(WAIT)

    def never(**kwargs: Any) -> None:
        started.append("never")

    async def main() -> None:
        async_running = asyncio.Event()

        async def stuck(**kwargs: Any) -> None:
            async_running.set()
            try:
                await asyncio.sleep(WAIT)
            except asyncio.CancelledError:
                cancelled.append(True)
                raise

        # First the sync phase: cancel while the one worker holds "blocks".
        signal.connect(blocks)
        signal.connect(never)
        task = asyncio.ensure_future(signal.asend_parallel(sender=None))
        assert await asyncio.to_thread(running.wait, WAIT)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        release.set()
        # Then the async phase.
        signal.disconnect(blocks)
        signal.disconnect(never)
        signal.connect(stuck, weak=False)
        task = asyncio.ensure_future(signal.asend_parallel(sender=None))
        await asyncio.wait_for(async_running.wait(), WAIT)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    signal.shutdown(wait=True)
    assert started == ["blocks"]
    assert cancelled == [True]


# -- life cycle ---------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_after_shutdown_it_raises_runtime_error_naming_the_signal(method: str) -> None:
    signal = Signal(name="closed", max_workers=2)
    signal.connect(sync_a)
    signal.shutdown()
    with pytest.raises(RuntimeError, match=rf"closed\.{method}\(\) cannot run"):
        asyncio.run(getattr(signal, method)(sender=None))


def test_run_in_a_receiver_on_a_one_thread_pool_it_does_not_deadlock() -> None:
    signal = Signal(max_workers=1)

    def outer(**kwargs: Any) -> Any:
        if kwargs["sender"] == "outer":
            return values(asyncio.run(signal.asend_parallel(sender="inner")))
        return "inner"

    signal.connect(outer)
    thread_result: list[Any] = []
    thread = threading.Thread(
        target=lambda: thread_result.append(signal.send_parallel(sender="outer")), daemon=True
    )
    thread.start()
    thread.join(WAIT)
    assert not thread.is_alive(), "asend_parallel inside a pool worker deadlocked"
    assert values(thread_result[0]) == [["inner"]]
    signal.shutdown()


class Payload:
    """A named argument whose lifetime is watched."""


class CallableReceiver:
    def __call__(self, **kwargs: Any) -> str:
        return "called"


@pytest.mark.parametrize(
    ("method", "inline_mode"),
    [
        ("asend", False),
        ("asend_robust", False),
        ("asend", True),
        ("asend_robust", True),
        # On worker threads, a helper's frame may still hold the last
        # receiver for a moment after the caller is answered: the engine's
        # lifetimes are issue 13's, and tested with it.
        ("asend_parallel", True),
        ("asend_parallel_robust", True),
    ],
)
def test_no_reference_to_receivers_or_arguments_outlives_the_call(
    method: str, inline_mode: bool
) -> None:
    # Who holds them: the dispatch's lists of receivers and the named
    # arguments, and (asend) the box handed to the one thread, until the
    # call returns; then nobody.
    import weakref  # noqa: PLC0415

    from parasignal.testing import inline  # noqa: PLC0415

    signal = Signal()
    receiver = CallableReceiver()
    signal.connect(receiver)
    payload = Payload()
    watched = weakref.ref(receiver), weakref.ref(payload)

    async def main(argument: Payload) -> list[Any]:
        return values(await getattr(signal, method)(sender=None, payload=argument))

    if inline_mode:
        with inline():
            answer = asyncio.run(main(payload))
    else:
        answer = asyncio.run(main(payload))
    assert answer == ["called"]
    del receiver, payload
    assert [ref() for ref in watched] == [None, None]
    assert not signal.has_listeners()
