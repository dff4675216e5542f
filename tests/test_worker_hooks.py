"""The engine's hooks for Django: around each receiver on a worker, and as a worker idles or exits.

Django itself is exercised in a real project (test_django_project.py, in a
subprocess); here a recording guard stands in for it, to pin down exactly
where the engine calls it, and that nothing is called without Django.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog
from structlog.testing import LogCapture

from parasignal import Signal, _django, _pool
from parasignal.testing import inline

WAIT = 10.0


class Recorder:
    """Records which thread cleaned up, when, and what ran in between."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.log: list[tuple[str, int]] = []
        self.released = threading.Event()

    def note(self, what: str) -> None:
        with self.lock:
            self.log.append((what, threading.get_ident()))

    def release(self) -> None:
        self.note("release")
        self.released.set()

    def whats(self) -> list[str]:
        with self.lock:
            return [what for what, _ in self.log]


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    """Pretend Django is configured: a guard and a release hook that record."""
    rec = Recorder()
    monkeypatch.setattr(_django, "_guard", _django.ReceiverGuard(lambda: rec.note("cleanup")))
    monkeypatch.setattr(_pool, "_release_hooks", [])
    _pool.add_release_hook(rec.release)
    yield rec
    _pool.reset_default_pool(wait=True)


def receiver_noting(rec: Recorder, name: str) -> Callable[..., str]:
    def receiver(**kwargs: Any) -> str:
        rec.note(name)
        return name

    return receiver


def test_without_django_configured_the_engine_calls_no_hook() -> None:
    assert "django.conf" not in sys.modules or not sys.modules["django.conf"].settings.configured
    signal = Signal(max_workers=2)
    signal.connect(lambda **kwargs: None, weak=False)
    signal.send_parallel(sender=None)
    assert _django._guard is None
    assert _pool._release_hooks == []
    assert _django.worker_guard() is None
    signal.shutdown()


def test_each_receiver_on_a_worker_is_wrapped_in_cleanup_before_and_after(
    recorder: Recorder,
) -> None:
    signal = Signal(max_workers=1, caller_runs=False)
    for name in ("a", "b"):
        signal.connect(receiver_noting(recorder, name), weak=False)
    assert [v for _, v in signal.send_parallel(sender=None)] == ["a", "b"]
    # All of it before send_parallel returned: the caller is woken only once
    # the helper has finished its receivers, cleanup included.
    # Between two receivers, one cleanup: the first's "after", the second's "before".
    assert recorder.whats()[:5] == ["cleanup", "a", "cleanup", "b", "cleanup"]
    signal.shutdown(wait=True)


def test_the_answer_comes_only_after_every_helpers_cleanup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two helpers: the second's receiver returns first, and its cleanup is
    # slow; the first's receiver returns as soon as the second's has. The
    # caller must not answer while the second helper is still cleaning up
    # (a worker's connection would still be open when the caller looks).
    second_returned = threading.Event()
    cleaned_after_second: list[bool] = []

    def cleanup() -> None:
        if second_returned.is_set() and threading.current_thread().name == second_thread[0]:
            second_returned.clear()
            threading.Event().wait(0.1)  # slow, as closing a connection may be
            cleaned_after_second.append(True)

    second_thread: list[str] = []

    def first(**kwargs: Any) -> str:
        assert second_returned.wait(WAIT)
        return "first"

    def second(**kwargs: Any) -> str:
        second_thread.append(threading.current_thread().name)
        second_returned.set()
        return "second"

    monkeypatch.setattr(_django, "_guard", _django.ReceiverGuard(cleanup))
    signal = Signal(max_workers=2, caller_runs=False)
    signal.connect(first)
    signal.connect(second)
    assert [v for _, v in signal.send_parallel(sender=None)] == ["first", "second"]
    assert cleaned_after_second == [True]
    signal.shutdown(wait=True)


def test_a_failing_receiver_is_cleaned_up_after_too(recorder: Recorder) -> None:
    signal = Signal(max_workers=1, caller_runs=False)

    def fails(**kwargs: Any) -> None:
        recorder.note("fails")
        raise ValueError

    signal.connect(fails)
    responses = signal.send_parallel_robust(sender=None)
    assert isinstance(responses[0][1], ValueError)
    assert recorder.whats()[:3] == ["cleanup", "fails", "cleanup"]
    signal.shutdown(wait=True)


def test_a_worker_releases_its_thread_when_it_goes_idle_and_when_it_exits(
    recorder: Recorder,
) -> None:
    signal = Signal(max_workers=1, caller_runs=False)
    signal.connect(receiver_noting(recorder, "a"), weak=False)
    signal.send_parallel(sender=None)
    # Idle: the worker finished its task and nothing is queued; it lives on.
    assert recorder.released.wait(WAIT)
    assert signal._pools.own_pool is not None
    assert signal._pools.own_pool.thread_count == 1
    assert recorder.whats() == ["cleanup", "a", "cleanup", "release"]
    signal.shutdown(wait=True)  # joins the worker: its exit hook has run
    log = list(recorder.log)
    assert [what for what, _ in log] == ["cleanup", "a", "cleanup", "release", "release"]
    assert len({ident for _, ident in log}) == 1  # all on the worker
    assert log[0][1] != threading.get_ident()


def test_a_busy_worker_does_not_release_between_queued_tasks(recorder: Recorder) -> None:
    signal = Signal(max_workers=1, caller_runs=False)
    gate = threading.Event()
    entered = threading.Event()

    def blocks(**kwargs: Any) -> None:
        entered.set()
        assert gate.wait(WAIT)

    signal.connect(blocks)
    callers = [threading.Thread(target=signal.send_parallel, args=(None,)) for _ in range(3)]
    callers[0].start()
    assert entered.wait(WAIT)
    for caller in callers[1:]:
        caller.start()
    # Two more dispatches queue behind the one the worker is running.
    while signal._pools.own_pool is None or signal._pools.own_pool.queued < 2:
        threading.Event().wait(0.001)
    gate.set()
    for caller in callers:
        caller.join(WAIT)
    assert recorder.released.wait(WAIT)
    signal.shutdown(wait=True)
    whats = recorder.whats()
    # One release as the worker went idle after the third task, one at exit.
    assert whats.count("release") == 2
    assert whats[-2:] == ["release", "release"]


def test_nested_dispatch_on_a_worker_leaves_the_outer_receivers_connection_alone(
    recorder: Recorder,
) -> None:
    signal = Signal(max_workers=1, caller_runs=False)

    def outer(**kwargs: Any) -> Any:
        if kwargs["sender"] == "outer":
            recorder.note("outer starts")
            answer = signal.send_parallel(sender="inner")
            recorder.note("outer ends")
            return answer
        recorder.note("inner")
        return "inner"

    signal.connect(outer)
    signal.send_parallel(sender="outer")
    whats = recorder.whats()
    start, end = whats.index("outer starts"), whats.index("outer ends")
    # Between the outer receiver's start and end, its own thread ran the
    # inner one (max_workers=1) without closing anything.
    assert whats[start:end] == ["outer starts", "inner"]
    assert whats[start - 1] == "cleanup"
    assert whats[end + 1] == "cleanup"
    signal.shutdown(wait=True)


def test_inline_mode_never_cleans_up_the_callers_connections(recorder: Recorder) -> None:
    signal = Signal()
    signal.connect(receiver_noting(recorder, "a"), weak=False)
    with inline():
        signal.send_parallel(sender=None)
        asyncio.run(signal.asend_parallel(sender=None))
    assert recorder.whats() == ["a", "a"]


def test_receivers_the_calling_thread_runs_itself_use_its_connection_untouched(
    recorder: Recorder,
) -> None:
    # Without a timeout the caller takes part: what it runs is its own
    # business, as in send(); only what workers run is cleaned up.
    signal = Signal(max_workers=1)
    caller = threading.get_ident()
    signal.connect(receiver_noting(recorder, "a"), weak=False)
    signal.send_parallel(sender=None)
    assert recorder.log == [("a", caller)]
    signal.shutdown(wait=True)


def test_receivers_on_a_users_own_executor_are_left_alone(recorder: Recorder) -> None:
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    with ThreadPoolExecutor(2) as executor:
        signal = Signal(executor=executor)
        signal.connect(receiver_noting(recorder, "a"), weak=False)
        signal.send_parallel(sender=None)
    assert recorder.whats() == ["a"]


def test_asend_parallel_sync_receivers_on_workers_are_cleaned_up(recorder: Recorder) -> None:
    signal = Signal(max_workers=1)
    signal.connect(receiver_noting(recorder, "a"), weak=False)
    asyncio.run(signal.asend_parallel(sender=None))
    assert recorder.whats()[:3] == ["cleanup", "a", "cleanup"]
    signal.shutdown(wait=True)


def test_a_failing_cleanup_is_logged_and_never_raised_into_the_dispatch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken() -> None:
        msg = "database went away"
        raise OSError(msg)

    monkeypatch.setattr(_django, "_guard", _django.ReceiverGuard(broken))
    capture = LogCapture()
    structlog.configure(processors=[capture])
    try:
        signal = Signal(max_workers=1, caller_runs=False)
        signal.connect(lambda **kwargs: "ok", weak=False)
        assert [v for _, v in signal.send_parallel(sender=None)] == ["ok"]
        signal.shutdown(wait=True)
    finally:
        structlog.reset_defaults()
    events = [(e["event"], e["when"]) for e in capture.entries]
    assert events == [
        ("signal.db_cleanup_failed", "before_receiver"),
        ("signal.db_cleanup_failed", "after_receiver"),
    ]
    assert all(e["thread_name"].startswith("parasignal-") for e in capture.entries)
    assert all(isinstance(e["exc_info"], OSError) for e in capture.entries)


def test_adding_the_same_release_hook_twice_adds_it_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_pool, "_release_hooks", [])

    def hook() -> None:
        pass

    _pool.add_release_hook(hook)
    _pool.add_release_hook(hook)
    assert _pool._release_hooks == [hook]


@pytest.mark.usefixtures("tiny_switch_interval")
def test_under_stress_every_receiver_on_a_worker_is_cleaned_up_before_and_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Per thread: a cleanup before every receiver call and after the last,
    # never two receivers without one between them, whatever the interleaving.
    clean: dict[int, bool] = {}
    broken: list[str] = []
    lock = threading.Lock()
    totals = {"calls": 0}

    def cleanup() -> None:
        clean[threading.get_ident()] = True

    monkeypatch.setattr(_django, "_guard", _django.ReceiverGuard(cleanup))
    signal = Signal(max_workers=8, caller_runs=False)

    def make(i: int) -> Callable[..., int]:
        def receiver(**kwargs: Any) -> int:
            me = threading.get_ident()
            if not clean.get(me, False):
                broken.append(f"receiver {i} ran without a cleanup before it")
            clean[me] = False
            with lock:
                totals["calls"] += 1
            return i

        return receiver

    receivers = [make(i) for i in range(6)]
    for r in receivers:
        signal.connect(r)
    start = threading.Barrier(6, timeout=WAIT)
    answers: list[list[int]] = []

    def caller() -> None:
        start.wait()
        answers.extend([v for _, v in signal.send_parallel(sender=None)] for _ in range(100))

    threads = [threading.Thread(target=caller) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT * 6)
    signal.shutdown(wait=True)
    assert broken == []
    assert answers == [list(range(6))] * 600
    assert totals["calls"] == 3600
    assert all(clean.values())  # every thread cleaned up after its last receiver
