"""Control a user expects: per-call deadlines, a visible full pool, one event per timed-out
dispatch, blinker's context managers, assignment checks, and a fresh shared pool for tests.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import parasignal
from parasignal import PoolStats, Signal, deadline
from parasignal._dispatch import current_deadline
from parasignal.testing import restored_shared_pool

WAIT = 10.0


class Stuck:
    """A receiver that blocks until released, and says when it started."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, **kwargs: Any) -> str:
        self.started.set()
        assert self.release.wait(WAIT)
        return "stuck"


def quick(**kwargs: Any) -> str:
    return "quick"


# -- parasignal.deadline() --------------------------------------------------------------


def test_a_deadline_block_bounds_a_dispatch_whose_signal_has_a_longer_timeout() -> None:
    stuck = Stuck()
    signal = Signal(timeout=WAIT)
    signal.connect(stuck)
    started = time.monotonic()
    try:
        with deadline(0.05), pytest.raises(TimeoutError, match=r"did not finish within the 0\.05"):
            signal.send_parallel(None)
    finally:
        stuck.release.set()
    assert time.monotonic() - started < WAIT / 2
    signal.shutdown()


def test_the_signals_own_timeout_still_applies_when_it_is_earlier() -> None:
    stuck = Stuck()
    signal = Signal(timeout=0.05)
    signal.connect(stuck)
    try:
        with deadline(WAIT), pytest.raises(TimeoutError, match=r"within the 0\.05 s deadline"):
            signal.send_parallel(None)
    finally:
        stuck.release.set()
    signal.shutdown()


def test_a_deadline_makes_the_caller_wait_instead_of_running_receivers() -> None:
    threads: list[int] = []
    signal = Signal()
    signal.connect(lambda **kwargs: threads.append(threading.get_ident()), weak=False)
    with deadline(WAIT):
        signal.send_parallel(None)
    assert threads != [threading.get_ident()]
    signal.shutdown()


@pytest.mark.parametrize("robust", [False, True], ids=["raising", "robust"])
def test_a_dispatch_started_after_the_deadline_starts_no_receiver(robust: bool) -> None:
    calls: list[str] = []
    signal = Signal(name="late")
    signal.connect(lambda **kwargs: calls.append("ran"), weak=False)
    signal.connect(lambda **kwargs: calls.append("ran"), weak=False, dispatch_uid="second")
    with deadline(0.0):
        if robust:
            responses = signal.send_parallel_robust(None)
            assert all(isinstance(r, TimeoutError) for _, r in responses)
            assert "the deadline had passed when the dispatch began" in str(responses[0][1])
        else:
            with pytest.raises(TimeoutError, match=r"2 receiver\(s\) never started: the deadline"):
                signal.send_parallel(None)
    assert calls == []
    signal.shutdown()


def test_nested_dispatches_on_worker_threads_inherit_what_is_left_never_more() -> None:
    seen: list[float | None] = []
    inner_seen: list[float | None] = []
    inner = Signal(name="inner")
    inner.connect(lambda **kwargs: inner_seen.append(current_deadline()), weak=False)
    outer = Signal(name="outer")
    outcome: list[BaseException] = []
    done = threading.Event()

    def outer_receiver(**kwargs: Any) -> None:
        seen.append(current_deadline())
        with deadline(WAIT):  # a longer inner block must not extend the outer one
            seen.append(current_deadline())
            inner.send_parallel(None)  # within the outer deadline: runs
            time.sleep(0.3)  # now past it
            try:
                inner.send_parallel(None)
            except TimeoutError as exc:
                outcome.append(exc)
        done.set()

    outer.connect(outer_receiver)
    with deadline(0.2) as block, pytest.raises(TimeoutError):
        outer.send_parallel(None)
    assert done.wait(WAIT)
    assert block.at is not None
    assert seen == [block.at, block.at]
    assert inner_seen == [block.at]
    (error,) = outcome
    assert "inner.send_parallel(): 1 receiver(s) never started: the deadline had" in str(error)
    outer.shutdown()
    inner.shutdown()


def test_a_deadline_block_works_with_async_with_and_bounds_asend_parallel() -> None:
    stuck = Stuck()
    signal = Signal(name="async_bound")
    signal.connect(stuck)

    async def main() -> None:
        async with deadline(0.05):
            await signal.asend_parallel(None)

    try:
        with pytest.raises(TimeoutError, match=r"async_bound\.asend_parallel\(\)"):
            asyncio.run(main())
    finally:
        stuck.release.set()
    signal.shutdown()


def test_send_and_asend_ignore_deadline_blocks_as_djangos_have_no_deadline() -> None:
    signal = Signal()
    signal.connect(quick)
    with deadline(0.0):
        assert signal.send(None) == [(quick, "quick")]
        assert asyncio.run(signal.asend(None)) == [(quick, "quick")]


@pytest.mark.parametrize(
    ("seconds", "error", "message"),
    [
        ("1", TypeError, "deadline() takes a number of seconds, not '1'."),
        (True, TypeError, "deadline() takes a number of seconds, not True."),
        (-1, ValueError, "deadline() takes a number of seconds of at least 0, not -1."),
        (float("nan"), ValueError, "at least 0, not nan."),
    ],
)
def test_a_deadline_refuses_bad_seconds_by_name(
    seconds: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as info:
        deadline(seconds)
    assert str(info.value).endswith(message)


def test_a_deadline_block_cannot_be_entered_twice() -> None:
    block = deadline(1)
    with block, pytest.raises(RuntimeError, match="already entered"), block:
        pass
    assert current_deadline() is None


# -- saturation, visibly ---------------------------------------------------------------


def test_receivers_that_never_got_a_thread_are_told_apart_from_those_that_ran_late(
    logs: list[MutableMapping[str, Any]],
) -> None:
    hog_stuck = Stuck()
    hog = Signal(name="hog", max_workers=1, caller_runs=False)
    hog.connect(hog_stuck)
    hogging = threading.Thread(target=hog.send_parallel, args=(None,), daemon=True)
    hogging.start()
    assert hog_stuck.started.wait(WAIT)
    victim = Signal(name="victim", timeout=0.05)
    victim.connect(quick)
    pool = hog._pools.own_pool
    assert pool is not None
    victim._executor = lambda method: pool  # type: ignore[method-assign]
    try:
        responses = victim.send_parallel_robust(None)
        ((_, response),) = responses
        assert isinstance(response, TimeoutError)
        assert "never started: the pool's 1 threads were all busy" in str(response)
        with pytest.raises(TimeoutError, match="never started: the pool's 1 threads were all"):
            victim.send_parallel(None)
    finally:
        hog_stuck.release.set()
    hogging.join(WAIT)
    dispatch_events = [e for e in logs if e["event"] == "signal.dispatch_timeout"]
    assert [(e["running"], e["not_started"]) for e in dispatch_events] == [(0, 1), (0, 1)]
    assert all("all busy" in e["not_started_reason"] for e in dispatch_events)
    assert [e["started"] for e in logs if e["event"] == "signal.receiver_timeout"] == [
        False,
        False,
    ]
    saturated = [e for e in logs if e["event"] == "signal.pool_saturated"]
    assert len(saturated) == 1  # rate-limited: two waits in a second, one event
    assert saturated[0]["pool"] == "parasignal-hog"
    assert (saturated[0]["size"], saturated[0]["busy"]) == (1, 1)
    hog.shutdown()


def test_pool_stats_show_size_threads_busy_and_queued() -> None:
    stuck = Stuck()
    signal = Signal(max_workers=2, caller_runs=False)
    assert signal.pool_stats() == PoolStats(size=2, threads=0, busy=0, queued=0)
    signal.connect(stuck)
    caller = threading.Thread(target=signal.send_parallel, args=(None,), daemon=True)
    caller.start()
    assert stuck.started.wait(WAIT)
    stats = signal.pool_stats()
    assert stats is not None
    assert (stats.size, stats.threads, stats.busy, stats.queued) == (2, 1, 1, 0)
    stuck.release.set()
    caller.join(WAIT)
    signal.shutdown()
    with ThreadPoolExecutor(1) as executor:
        assert Signal(executor=executor).pool_stats() is None
    shared = parasignal.pool_stats()
    assert shared.size == 64
    assert Signal().pool_stats() == shared


def test_a_pool_logs_saturation_when_work_waits_long_for_a_thread(
    logs: list[MutableMapping[str, Any]],
) -> None:
    stuck = Stuck()
    signal = Signal(name="slow_pool", max_workers=1, caller_runs=False)
    signal.connect(stuck)
    other = Signal(name="queued", max_workers=1, caller_runs=False)
    other.connect(quick)
    pool = signal._pools.own_pool
    first = threading.Thread(target=signal.send_parallel, args=(None,), daemon=True)
    first.start()
    assert stuck.started.wait(WAIT)
    pool = signal._pools.own_pool
    assert pool is not None
    other._executor = lambda method: pool  # type: ignore[method-assign]
    second = threading.Thread(target=other.send_parallel, args=(None,), daemon=True)
    second.start()
    time.sleep(0.15)  # the queued helper waits longer than SATURATION_WAIT_S
    stuck.release.set()
    first.join(WAIT)
    second.join(WAIT)
    (event,) = [e for e in logs if e["event"] == "signal.pool_saturated"]
    assert event["waited_ms"] >= 100
    signal.shutdown()


# -- one event per timed-out dispatch ---------------------------------------------------


def test_ten_thousand_unfinished_receivers_make_one_dispatch_event_and_a_few_receiver_events(
    logs: list[MutableMapping[str, Any]],
) -> None:
    stuck = Stuck()
    signal = Signal(name="crowded", max_workers=4, timeout=0.2)
    signal.connect(stuck)
    for uid in range(9_999):
        signal.connect(quick, weak=False, dispatch_uid=uid)
    # The four threads are held: one by the stuck receiver, three by
    # another dispatch of the same kind; the rest never start.
    blockers = [Stuck() for _ in range(3)]
    others = []
    for blocker in blockers:
        other = Signal(max_workers=1, caller_runs=False)
        other.connect(blocker)
        other._executor = signal._executor  # type: ignore[method-assign]
        others.append(threading.Thread(target=other.send_parallel, args=(None,), daemon=True))
    for thread in others:
        thread.start()
    for blocker in blockers:
        assert blocker.started.wait(WAIT)
    started = time.monotonic()
    try:
        responses = signal.send_parallel_robust(None)
    finally:
        stuck.release.set()
        for blocker in blockers:
            blocker.release.set()
    late = time.monotonic() - started - 0.2
    assert late < 0.25, f"returned {late:.3f} s past the deadline"  # figure: benchmarks/
    assert sum(isinstance(r, TimeoutError) for _, r in responses) == 10_000
    (event,) = [e for e in logs if e["event"] == "signal.dispatch_timeout"]
    assert event["running"] + event["not_started"] == 10_000
    assert len(event["receivers"]) == 20
    assert len([e for e in logs if e["event"] == "signal.receiver_timeout"]) == 10
    for thread in others:
        thread.join(WAIT)
    signal.shutdown()


# -- blinker's context managers --------------------------------------------------------


def test_connected_to_connects_for_the_block_and_disconnects_even_on_error() -> None:
    signal = Signal()
    calls: list[str] = []

    def handler(**kwargs: Any) -> None:
        calls.append("handled")

    with signal.connected_to(handler) as connected:
        assert connected is handler
        signal.send(None)
    signal.send(None)
    assert calls == ["handled"]

    class BlockFailedError(Exception):
        pass

    with pytest.raises(BlockFailedError), signal.connected_to(handler):
        raise BlockFailedError
    assert not signal.has_listeners()


def test_connected_to_keeps_a_lambda_alive_and_leaves_an_earlier_registration_alone() -> None:
    signal = Signal()
    with signal.connected_to(lambda **kwargs: "lambda"):
        assert [r for _, r in signal.send(None)] == ["lambda"]
    signal.connect(quick)
    with signal.connected_to(quick):
        pass
    assert signal.send(None) == [(quick, "quick")]


def test_connected_to_honours_the_sender_filter() -> None:
    signal = Signal()
    with signal.connected_to(quick, sender="shop"):
        assert signal.send("shop") == [(quick, "quick")]
        assert signal.send("other") == []
    assert signal.send("shop") == []


def test_muted_silences_every_send_method_for_the_block_on_every_thread() -> None:
    signal = Signal()
    signal.connect(quick)
    seen: list[Any] = []
    with signal.muted():
        assert signal.send(None) == []
        assert signal.send_robust(None) == []
        assert signal.send_parallel(None) == []
        assert signal.send_parallel_robust(None) == []
        assert asyncio.run(signal.asend(None)) == []
        assert asyncio.run(signal.asend_parallel_robust(None)) == []
        elsewhere = threading.Thread(target=lambda: seen.append(signal.send(None)))
        elsewhere.start()
        elsewhere.join(WAIT)
        with signal.muted():
            pass
        assert signal.send(None) == []  # still inside the outer block
        assert signal.has_listeners()
    assert seen == [[]]
    assert signal.send(None) == [(quick, "quick")]


# -- options checked on assignment too -------------------------------------------------


@pytest.mark.parametrize(
    ("attribute", "value", "error", "message"),
    [
        ("timeout", "bad", TypeError, "timeout must be a number of seconds or None, not 'bad'."),
        ("timeout", 0, ValueError, "timeout must be a positive number of seconds, not 0."),
        ("max_workers", 0, ValueError, "max_workers must be at least 1, not 0."),
        ("max_workers", 1.5, TypeError, "max_workers must be an int or None, not 1.5."),
        ("executor", "pool", TypeError, "executor must be a concurrent.futures.Executor"),
        ("name", "  ", ValueError, "name must not be blank, not '  '."),
        ("caller_runs", None, TypeError, "caller_runs must be True or False, not None."),
    ],
)
def test_options_are_checked_on_assignment_with_the_constructors_messages(
    attribute: str, value: object, error: type[Exception], message: str
) -> None:
    signal = Signal()
    before = getattr(signal, attribute)
    with pytest.raises(error) as info:
        setattr(signal, attribute, value)
    assert str(info.value).startswith(message)
    config: dict[str, Any] = {attribute: value}
    with pytest.raises(error) as at_construction:
        Signal(**config)
    assert str(at_construction.value) == str(info.value)
    assert getattr(signal, attribute) == before


def test_executor_and_max_workers_stay_exclusive_on_assignment() -> None:
    signal = Signal(max_workers=2)
    with ThreadPoolExecutor(1) as executor, pytest.raises(ValueError, match="not both"):
        signal.executor = executor
    assert signal.executor is None


# -- signal= among the named arguments -------------------------------------------------


@pytest.mark.parametrize("method", ["send_parallel", "send_parallel_robust"])
def test_signal_among_named_arguments_fails_once_before_any_receiver_runs(method: str) -> None:
    calls: list[str] = []
    signal = Signal(name="orders")
    signal.connect(lambda **kwargs: calls.append("ran"), weak=False)
    with pytest.raises(TypeError, match=r"orders\.send_parallel.*got 'signal' among its named"):
        getattr(signal, method)(None, signal="mine")
    with pytest.raises(TypeError, match="got 'signal' among its named arguments"):
        asyncio.run(signal.asend_parallel(None, signal="mine"))
    assert calls == []


# -- a fresh shared pool for tests -----------------------------------------------------


def test_restored_shared_pool_lets_later_dispatches_run_after_a_shutdown() -> None:
    signal = Signal()
    signal.connect(quick)
    with restored_shared_pool():
        parasignal.shutdown()
        with pytest.raises(RuntimeError, match="shut down"):
            signal.send_parallel_robust(None, other=1)
    assert signal.send_parallel_robust(None) == [(quick, "quick")]


def test_the_fixture_restores_the_shared_pool(parasignal_shared_pool: None) -> None:
    parasignal.shutdown()
    signal = Signal()
    signal.connect(quick)
    with pytest.raises(RuntimeError, match="shut down"):
        signal.send_parallel(None)
