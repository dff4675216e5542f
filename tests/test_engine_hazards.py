"""What user objects and interrupts can do to a parallel dispatch, and must not.

Responses whose comparison raises, finalizers that dispatch or shut a pool
down, interrupts landing while the answer is being made, and the timers an
awaited dispatch leaves in the event loop: none may stall a dispatch,
deadlock it, or keep anything of it alive once it has answered.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from types import FrameType
from typing import Any

import pytest

from parasignal import Signal

WAIT = 10.0


@pytest.fixture
def no_collector() -> Iterator[None]:
    """Refcounting alone must free what a dispatch used: keep the collector out."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class Ambiguous:
    def __bool__(self) -> bool:
        msg = "the truth value is ambiguous"
        raise ValueError(msg)


class ArrayLike:
    """Compares like a numpy array: ``==`` answers something without a truth value."""

    def __eq__(self, other: object) -> Any:
        return Ambiguous()

    __hash__ = object.__hash__


def test_a_response_that_refuses_comparison_does_not_stall_a_failing_dispatch() -> None:
    finished = threading.Event()

    def array(**kwargs: Any) -> ArrayLike:
        finished.set()
        return ArrayLike()

    def failing(**kwargs: Any) -> None:
        assert finished.wait(WAIT)
        msg = "failed after the array"
        raise KeyError(msg)

    signal = Signal(max_workers=4, timeout=WAIT)
    signal.connect(array)
    signal.connect(failing)
    started = time.monotonic()
    with pytest.raises(KeyError, match="failed after the array"):
        signal.send_parallel(None)
    assert time.monotonic() - started < WAIT / 2, "the dispatch waited for its deadline"
    signal.shutdown()


def test_a_response_that_refuses_comparison_does_not_break_a_cancelling_shutdown() -> None:
    release = threading.Event()
    running = threading.Event()

    def array(**kwargs: Any) -> ArrayLike:
        return ArrayLike()

    def blocked(**kwargs: Any) -> str:
        running.set()
        assert release.wait(WAIT)
        return "blocked"

    def never(**kwargs: Any) -> str:
        return "never"

    signal = Signal(max_workers=2, caller_runs=False)
    for receiver in (array, blocked, never):
        signal.connect(receiver)
    outcome: list[Any] = []
    caller = threading.Thread(target=lambda: outcome.append(signal.send_parallel_robust(None)))
    caller.start()
    assert running.wait(WAIT)
    signal.shutdown(wait=False, cancel_futures=True)  # must not raise the response's error
    release.set()
    caller.join(WAIT)
    assert not caller.is_alive(), "the caller hung"
    ((_, first), (_, second), (_, third)) = outcome[0]
    assert isinstance(first, ArrayLike)
    assert second == "blocked"
    assert type(third).__name__ == "CancelledError"


class Payload:
    pass


@pytest.mark.parametrize("where", ["finish_batch", "settle", "_withdraw"])
def test_an_interrupt_landing_as_the_answer_is_made_leaks_nothing(
    where: str, no_collector: None
) -> None:
    # The interrupt is raised as the function named is entered, on this
    # thread, as a signal handler's exception (Ctrl-C, a task time limit)
    # would be at that point.
    signal = Signal(max_workers=2)
    signal.connect(lambda **kwargs: "ok", weak=False, dispatch_uid=1)
    signal.connect(lambda **kwargs: "ok", weak=False, dispatch_uid=2)
    payload = Payload()
    ref = weakref.ref(payload)

    def tracer(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code.co_name == where:
            sys.settrace(None)
            msg = f"interrupted entering {where}"
            raise KeyboardInterrupt(msg)

    sys.settrace(tracer)
    try:
        with pytest.raises(KeyboardInterrupt, match=where):
            signal.send_parallel(None, payload=payload)
    finally:
        sys.settrace(None)
    del payload
    assert signal._pools.own_pool is not None
    assert signal._pools.own_pool.queued == 0, "the interrupted batch left a helper queued"
    assert ref() is None, "the payload outlived the interrupted dispatch"
    signal.shutdown()


variable: contextvars.ContextVar[Any] = contextvars.ContextVar("hazard")


def test_a_finalizer_that_shuts_the_pool_down_runs_without_deadlocking() -> None:
    closed = threading.Event()

    class Closer:
        def __del__(self) -> None:
            signal.shutdown(wait=False, cancel_futures=True)
            closed.set()

    def opens(**kwargs: Any) -> str:
        # Set in the receiver's own copy of the context: dropped with it.
        variable.set(Closer())
        return "opened"

    signal = Signal(max_workers=2)
    # Connected last, so nothing is left to cancel when its context goes.
    signal.connect(lambda **kwargs: "other", weak=False)
    signal.connect(opens)
    outcome: list[Any] = []
    caller = threading.Thread(target=lambda: outcome.append(signal.send_parallel_robust(None)))
    caller.start()
    caller.join(WAIT)
    assert not caller.is_alive(), "the caller hung"
    assert closed.wait(WAIT), "the finalizer did not run"
    assert [response for _, response in outcome[0]] == ["other", "opened"]


def test_a_finalizer_that_dispatches_does_not_delay_the_callers_deadline() -> None:
    audit = Signal(max_workers=2)
    audit.connect(lambda **kwargs: time.sleep(0.3), weak=False)

    class Resource:
        def __del__(self) -> None:
            audit.send_parallel(None)  # a "resource closed" notification, 0.3 s

    stuck = threading.Event()

    def opens(**kwargs: Any) -> str:
        variable.set(Resource())
        return "opened"

    signal = Signal(max_workers=4, timeout=0.05)
    signal.connect(opens)
    signal.connect(lambda **kwargs: stuck.wait(WAIT), weak=False)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        signal.send_parallel(None)
    late = time.monotonic() - started - 0.05
    stuck.set()
    # The finalizer runs on the helper, outside the batch's lock: the caller's
    # deadline is not its business.
    assert late < 0.2, f"the caller returned {late:.3f} s past its deadline"
    signal.shutdown(wait=True)
    audit.shutdown(wait=True)


class RequestState:
    pass


def test_an_awaited_dispatch_leaves_no_timer_holding_the_callers_context(
    no_collector: None,
) -> None:
    # Another timer in the loop (a keep-alive, another request's timeout)
    # keeps cancelled timers queued until their due time.
    signal = Signal(max_workers=8, timeout=3.0)
    for uid in range(4):
        signal.connect(lambda **kwargs: time.sleep(0.002), weak=False, dispatch_uid=uid)

    async def async_receiver(**kwargs: Any) -> str:
        await asyncio.sleep(0.001)
        return "async"

    signal.connect(async_receiver)

    async def main() -> list[weakref.ref[RequestState]]:
        heartbeat = asyncio.get_running_loop().call_later(60, lambda: None)
        refs: list[weakref.ref[RequestState]] = []

        async def request() -> None:
            state = RequestState()
            refs.append(weakref.ref(state))
            variable.set(state)
            del state
            await signal.asend_parallel(None)

        for _ in range(10):
            await asyncio.get_running_loop().create_task(
                request(),
                context=contextvars.Context(),  # type: ignore[call-arg,unused-ignore]
            )
        heartbeat.cancel()
        return refs

    if sys.version_info < (3, 11):
        pytest.skip("create_task(context=) needs Python 3.11")
    refs = asyncio.run(main())
    alive = sum(ref() is not None for ref in refs)
    assert alive == 0, f"{alive} of 10 request contexts outlived their dispatch"
    signal.shutdown()
