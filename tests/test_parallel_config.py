"""Where parallel receivers run: a caller's executor, a signal's own pool, or the shared one."""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

import pytest
import structlog

from conftest import thread_names
from parasignal import Signal, _pool

WAIT = 10.0  # seconds: how long any Event or Barrier wait may take before the test fails

Receiver = Callable[..., Any]


class DelegatingExecutor(Executor):
    """An executor that is not a ThreadPoolExecutor, owned by the caller."""

    def __init__(self) -> None:
        self.inner = ThreadPoolExecutor(max_workers=4, thread_name_prefix="delegated")
        self.submitted = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.submitted += 1
        return self.inner.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.inner.shutdown(wait, cancel_futures=cancel_futures)


def default_pool_exists() -> bool:
    return _pool._default is not None


def record_thread(names: list[str]) -> Receiver:
    def receiver(**kwargs: Any) -> str:
        name = threading.current_thread().name
        names.append(name)
        return name

    return receiver


# -- validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (0, ValueError),
        (-3, ValueError),
        (True, TypeError),
        (False, TypeError),
        (2.0, TypeError),
        ("4", TypeError),
    ],
)
def test_max_workers_must_be_a_positive_int(value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match=rf"max_workers.*{re.escape(repr(value))}"):
        Signal(max_workers=value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (0, ValueError),
        (0.0, ValueError),
        (-1.5, ValueError),
        (math.nan, ValueError),
        (True, TypeError),
        ("1", TypeError),
        ([1], TypeError),
    ],
)
def test_timeout_must_be_a_positive_number_of_seconds(
    value: object, error: type[Exception]
) -> None:
    with pytest.raises(error, match=rf"timeout.*{re.escape(repr(value))}"):
        Signal(timeout=value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [object(), "pool", ThreadPoolExecutor])
def test_executor_must_be_an_executor(value: object) -> None:
    with pytest.raises(TypeError, match=rf"executor.*{re.escape(repr(value))}"):
        Signal(executor=value)  # type: ignore[arg-type]


def test_a_process_pool_executor_is_accepted_as_running_receivers_elsewhere() -> None:
    # What it does with them is tests/test_remote.py's subject.
    executor = ProcessPoolExecutor(max_workers=1)  # no process starts before a task
    try:
        assert Signal(executor=executor).executor is executor
    finally:
        executor.shutdown()


def test_executor_and_max_workers_cannot_be_combined() -> None:
    with ThreadPoolExecutor(max_workers=1) as executor:
        with pytest.raises((TypeError, ValueError), match=r"executor.*max_workers") as raised:
            Signal(executor=executor, max_workers=2)
        assert repr(executor) in str(raised.value)
        assert "2" in str(raised.value)


def test_the_new_arguments_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        Signal(False, "name")  # type: ignore[call-arg]  # noqa: FBT003

    # use_caching stays positional, as in Django.
    signal = Signal(True, name="configured", max_workers=2, timeout=1.5)  # noqa: FBT003

    assert signal.use_caching is True
    assert signal.max_workers == 2
    assert signal.timeout == 1.5
    assert signal.name == "configured"


@pytest.mark.parametrize("value", [1, 0.001, 10**9, math.inf])
def test_valid_timeouts_are_accepted(value: float) -> None:
    signal = Signal(timeout=value)

    def receiver(**kwargs: Any) -> int:
        return 1

    signal.connect(receiver)
    assert signal.send_parallel_robust(None)[0][0] is receiver


# -- send and send_robust are unchanged -----------------------------------------------


def test_send_and_send_robust_ignore_the_parallel_settings() -> None:
    executor = DelegatingExecutor()
    signals = [
        Signal(executor=executor, timeout=0.01, name="with-executor"),
        Signal(max_workers=1, timeout=0.01, name="with-own-pool"),
        Signal(timeout=0.01, name="with-shared-pool"),
    ]
    caller = threading.current_thread().name
    before = thread_names()

    def slow(**kwargs: Any) -> str:
        time.sleep(0.05)  # longer than the timeout, which send does not apply
        return threading.current_thread().name

    def fails(**kwargs: Any) -> None:
        raise ValueError("robust")

    try:
        for signal in signals:
            signal.connect(slow)
            signal.connect(fails)
            with pytest.raises(ValueError, match="robust"):
                signal.send(None)
            with structlog.testing.capture_logs():
                result = signal.send_robust(None)
            assert result[0] == (slow, caller)
            assert isinstance(result[1][1], ValueError)
        assert thread_names() - before == set()
        assert not default_pool_exists()
        assert executor.submitted == 0
    finally:
        executor.shutdown()


# -- a caller's executor ----------------------------------------------------------------


def test_receivers_run_on_the_callers_executor_which_is_never_shut_down() -> None:
    executor = ThreadPoolExecutor(max_workers=3, thread_name_prefix="callers-pool")
    try:
        signal = Signal(executor=executor, caller_runs=False)
        names: list[str] = []
        for _ in range(5):
            signal.connect(record_thread(names), dispatch_uid=object(), weak=False)

        with structlog.testing.capture_logs():
            for _ in range(3):
                signal.send_parallel(None)
                signal.send_parallel_robust(None)

        assert len(names) == 30
        assert all(name.startswith("callers-pool") for name in names)
        assert not default_pool_exists()
        # parasignal did not shut it down: it still accepts work.
        assert executor.submit(lambda: 42).result(timeout=WAIT) == 42
    finally:
        executor.shutdown()


def test_any_thread_executor_subclass_may_run_the_receivers() -> None:
    executor = DelegatingExecutor()
    try:
        signal = Signal(executor=executor, caller_runs=False)
        names: list[str] = []
        receivers = [record_thread(names) for _ in range(4)]
        for receiver in receivers:
            signal.connect(receiver)

        result = signal.send_parallel(None, x=1)

        assert [r for r, _ in result] == receivers
        assert all(name.startswith("delegated") for _, name in result)
        assert executor.submitted >= 1
        assert executor.submit(lambda: "still open").result(timeout=WAIT) == "still open"
    finally:
        executor.shutdown()


# -- a signal's own pool ----------------------------------------------------------------


def test_a_signal_with_max_workers_starts_its_own_threads_on_first_parallel_dispatch() -> None:
    name = "lazy-own-pool-signal"
    signal = Signal(max_workers=2, name=name, caller_runs=False)
    names: list[str] = []
    for _ in range(6):
        signal.connect(record_thread(names), dispatch_uid=object(), weak=False)

    def own_threads() -> set[str]:
        return {n for n in thread_names() if name in n}

    assert own_threads() == set()
    signal.send(None)
    signal.send_robust(None)
    assert own_threads() == set()
    caller = threading.current_thread().name
    assert names == [caller] * 12
    names.clear()

    for _ in range(5):
        signal.send_parallel(None)

    assert len(names) == 30
    assert all(name in n for n in names)
    assert 1 <= len(set(names)) <= 2
    assert len(own_threads()) <= 2
    assert not default_pool_exists()


def test_signals_with_max_workers_do_not_share_their_threads() -> None:
    first = Signal(max_workers=1, name="first-own", caller_runs=False)
    second = Signal(max_workers=1, name="second-own", caller_runs=False)
    # Each receiver waits for the other: they must run at the same time, which
    # two one-thread pools can do and one shared thread cannot.
    meet = threading.Barrier(2)

    def on_first(**kwargs: Any) -> str:
        meet.wait(WAIT)
        return threading.current_thread().name

    def on_second(**kwargs: Any) -> str:
        meet.wait(WAIT)
        return threading.current_thread().name

    first.connect(on_first)
    second.connect(on_second)
    results: dict[str, Any] = {}

    def call_second() -> None:
        results["second"] = second.send_parallel(None)

    thread = threading.Thread(target=call_second, daemon=True)
    thread.start()
    results["first"] = first.send_parallel(None)
    thread.join(WAIT)

    assert not thread.is_alive()
    [(_, first_thread)] = results["first"]
    [(_, second_thread)] = results["second"]
    assert first_thread != second_thread
    assert "first-own" in first_thread
    assert "second-own" in second_thread


# -- the shared default pool ------------------------------------------------------------


def test_the_shared_pool_is_created_lazily_with_threads_named_parasignal() -> None:
    signal = Signal(caller_runs=False)
    names: list[str] = []
    signal.connect(record_thread(names), weak=False)

    assert not default_pool_exists()
    signal.send(None)
    signal.send_robust(None)
    assert not default_pool_exists()

    signal.send_parallel(None)

    assert default_pool_exists()
    assert names[-1].startswith("parasignal")
    assert names[-1] != threading.current_thread().name


def test_signals_without_a_pool_of_their_own_share_one_process_wide_pool() -> None:
    first, second = Signal(caller_runs=False), Signal(caller_runs=False)
    names: list[str] = []
    first.connect(record_thread(names), weak=False)
    second.connect(record_thread(names), weak=False)

    first.send_parallel(None)
    shared = _pool._default
    second.send_parallel(None)

    assert shared is not None
    assert _pool._default is shared
    assert all(name.startswith("parasignal") for name in names)


def test_the_shared_pool_runs_32_waiting_receivers_all_at_once() -> None:
    count = 32
    signal = Signal()
    # Every receiver waits for all the others: if they did not all run at
    # once, the barrier would time out and break.
    everyone = threading.Barrier(count)

    def make(index: int) -> Receiver:
        def receiver(**kwargs: Any) -> int:
            everyone.wait(WAIT)
            return index

        return receiver

    receivers = [make(i) for i in range(count)]
    for receiver in receivers:
        signal.connect(receiver)

    result = signal.send_parallel(None)

    assert result == [(r, i) for i, r in enumerate(receivers)]
    assert not everyone.broken
