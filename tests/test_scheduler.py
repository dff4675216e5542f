"""Who runs the receivers of a parallel dispatch, and when threads are woken.

The rules (``parasignal._fanout``'s module docstring): without a deadline the
calling thread takes part; with one (or ``caller_runs=False``) it only waits;
the wake chain gives slow receivers a thread each, one wake-up after another;
quick receivers wake no more threads than they need.
"""

from __future__ import annotations

import sys
import threading
from concurrent.futures import CancelledError, ThreadPoolExecutor
from typing import Any

import pytest

from parasignal import Signal, _pool

WAIT = 10.0


def test_the_caller_takes_part_only_without_a_deadline() -> None:
    caller = threading.get_ident()
    seen: list[int] = []

    def receiver(**kwargs: Any) -> None:
        seen.append(threading.get_ident())

    taking_part = Signal(max_workers=2)
    with_deadline = Signal(max_workers=2, timeout=WAIT)
    opted_out = Signal(max_workers=2, caller_runs=False)
    for signal in (taking_part, with_deadline, opted_out):
        signal.connect(receiver)
    taking_part.send_parallel(None)
    assert seen == [caller]
    seen.clear()
    with_deadline.send_parallel(None)
    opted_out.send_parallel(None)
    assert len(seen) == 2
    assert caller not in seen
    for signal in (taking_part, with_deadline, opted_out):
        signal.shutdown()


def test_caller_runs_is_checked_on_construction_and_on_assignment() -> None:
    with pytest.raises(TypeError, match=r"caller_runs must be True or False, not 1\."):
        Signal(caller_runs=1)  # type: ignore[arg-type]
    signal = Signal()
    with pytest.raises(TypeError, match=r"caller_runs must be True or False, not 'no'\."):
        signal.caller_runs = "no"  # type: ignore[assignment]
    assert signal.caller_runs is True
    signal.caller_runs = False
    assert signal.caller_runs is False


def test_slow_receivers_each_get_a_thread_through_the_wake_chain() -> None:
    # Eight receivers that all wait for each other: only possible if each
    # runs on a thread of its own, the caller's included.
    signal = Signal(max_workers=8)
    together = threading.Barrier(8, timeout=WAIT)
    threads: set[int] = set()

    def receiver(**kwargs: Any) -> None:
        threads.add(threading.get_ident())
        together.wait()

    for uid in range(8):
        signal.connect(receiver, weak=False, dispatch_uid=uid)
    signal.send_parallel(None)
    assert len(threads) == 8
    signal.shutdown()


def test_with_a_deadline_slow_receivers_still_each_get_a_thread() -> None:
    # The waiting caller starts the chain after a step in which none finished.
    signal = Signal(max_workers=6, timeout=WAIT)
    together = threading.Barrier(6, timeout=WAIT)

    def receiver(**kwargs: Any) -> None:
        together.wait()

    for uid in range(6):
        signal.connect(receiver, weak=False, dispatch_uid=uid)
    assert len(signal.send_parallel(None)) == 6
    signal.shutdown()


def test_with_a_deadline_quick_receivers_are_run_by_one_worker() -> None:
    # No receiver holds its thread, so the first helper runs them all before
    # the caller's first step ends: no other thread is woken.
    signal = Signal(max_workers=4, timeout=WAIT)
    threads: set[int] = set()

    def receiver(**kwargs: Any) -> None:
        threads.add(threading.get_ident())

    for uid in range(20):
        signal.connect(receiver, weak=False, dispatch_uid=uid)
    runs = 0
    for _ in range(50):  # a stalled worker thread may stretch one dispatch
        threads.clear()
        signal.send_parallel(None)
        runs += len(threads) == 1
    assert runs >= 40
    signal.shutdown()


def test_a_failure_is_raised_once_the_receivers_before_it_that_the_caller_runs_finish() -> None:
    # The caller runs receiver 0 (slow); a helper runs receiver 1, which fails
    # meanwhile. send's exception is raised once receiver 0 has finished, and
    # receiver 2 never starts.
    finished = threading.Event()
    failed = threading.Event()
    started: list[str] = []

    def first(**kwargs: Any) -> str:
        started.append("first")
        assert failed.wait(WAIT)
        finished.set()
        return "first"

    def second(**kwargs: Any) -> None:
        started.append("second")
        failed.set()
        msg = "second failed"
        raise ValueError(msg)

    def third(**kwargs: Any) -> None:
        started.append("third")

    signal = Signal(max_workers=2)
    for receiver in (first, second, third):
        signal.connect(receiver)
    with pytest.raises(ValueError, match="second failed"):
        signal.send_parallel(None)
    assert finished.is_set()
    assert started[:2] == ["first", "second"] or started[:2] == ["second", "first"]
    assert "third" not in started
    signal.shutdown()


def test_cancelling_the_pool_stops_the_caller_from_starting_more_receivers() -> None:
    signal = Signal(max_workers=1)
    calls: list[int] = []

    def make(i: int) -> Any:
        def receiver(**kwargs: Any) -> int:
            calls.append(i)
            if i == 0:
                # Shut the pool down (cancelling) while the caller runs this one.
                signal.shutdown(wait=False, cancel_futures=True)
            return i

        return receiver

    receivers = [make(i) for i in range(4)]
    for receiver in receivers:
        signal.connect(receiver)
    responses = signal.send_parallel_robust(None)
    assert responses[0] == (receivers[0], 0)
    started = [i for i in calls if i != 0]
    for index, (_, value) in enumerate(responses[1:], start=1):
        if index in started:
            assert value == index  # a helper had already started it
        else:
            assert isinstance(value, CancelledError)


def test_a_pool_wakes_no_second_worker_for_a_task_one_on_its_way_can_take() -> None:
    # What a caller taking part does on every dispatch: post a helper, then
    # withdraw it unstarted. The next post must not wake another thread:
    # the one started for the first is still on its way (it cannot run
    # before this thread lets go of the GIL, which the long switch interval
    # makes sure of).
    pool = _pool.WorkerPool(4, "wakes")
    ran = threading.Event()

    class Task:
        def run(self) -> None:
            ran.set()

        def cancel(self) -> None:
            pass

    first, second = Task(), Task()
    interval = sys.getswitchinterval()
    sys.setswitchinterval(10.0)
    try:
        pool.post(first)
        assert pool.withdraw(first) == 1
        pool.post(second)
        assert pool.thread_count == 1
    finally:
        sys.setswitchinterval(interval)
    assert ran.wait(WAIT)  # the one worker took the second task
    pool.shutdown(wait=True)
    assert pool.thread_count == 0


def test_a_users_executor_runs_the_chain_on_its_threads() -> None:
    together = threading.Barrier(4, timeout=WAIT)
    threads: set[str] = set()

    def receiver(**kwargs: Any) -> None:
        threads.add(threading.current_thread().name)
        together.wait()

    with ThreadPoolExecutor(4, thread_name_prefix="users") as executor:
        signal = Signal(executor=executor, caller_runs=False)
        for uid in range(4):
            signal.connect(receiver, weak=False, dispatch_uid=uid)
        assert len(signal.send_parallel(None)) == 4
    assert len(threads) == 4
    assert all(name.startswith("users") for name in threads)


def test_withdraw_takes_back_every_queued_occurrence_of_a_task_and_nothing_else() -> None:
    # No worker can start (one thread, held by a blocker), so the queue is
    # exactly what was posted.
    pool = _pool.WorkerPool(1, "withdraw")
    release = threading.Event()
    started = threading.Event()
    ran: list[str] = []

    class Task:
        def __init__(self, name: str) -> None:
            self.name = name

        def run(self) -> None:
            if self.name == "blocker":
                started.set()
                assert release.wait(WAIT)
            ran.append(self.name)

        def cancel(self) -> None:
            pass

    blocker, mine, other = Task("blocker"), Task("mine"), Task("other")
    pool.post(blocker)
    assert started.wait(WAIT)
    for task in (mine, other, mine, mine):
        pool.post(task)
    assert pool.withdraw(other) == 1
    assert pool.withdraw(other) == 0
    assert pool.queued == 3
    assert pool.withdraw(mine) == 3  # the whole queue, at once
    assert pool.queued == 0
    assert pool.withdraw(mine) == 0
    pool.post(other)
    release.set()
    pool.shutdown(wait=True)
    assert ran == ["blocker", "other"]
