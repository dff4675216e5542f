"""The ``timeout`` of a signal: a deadline for a whole parallel dispatch."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import structlog

from parasignal import Signal

WAIT = 10.0  # seconds: how long any Event wait may take before the test fails
TIMEOUT = 0.3  # seconds: the deadline of the signals under test

Receiver = Callable[..., Any]
Result = list[tuple[Receiver, Any]]


class Sender:
    def __init__(self, label: str) -> None:
        self.label = label

    def __repr__(self) -> str:
        return f"<Sender {self.label}>"


class Call(threading.Thread):
    """Run a call on a thread of its own and keep its outcome."""

    def __init__(self, call: Callable[[], Result]) -> None:
        super().__init__(daemon=True)
        self._call = call
        self.result: Result | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self._call()
        except BaseException as exc:
            self.error = exc


def wait_for(event: threading.Event) -> None:
    if not event.wait(WAIT):
        raise AssertionError("an event the test relies on was never set")


def logged(logs: list[MutableMapping[str, Any]], event: str, count: int) -> list[Any]:
    """Poll, briefly and boundedly, until *count* entries of *event* were logged."""
    found: list[Any] = []
    for _ in range(500):
        found = [entry for entry in list(logs) if entry["event"] == event]
        if len(found) >= count:
            break
        time.sleep(0.01)
    return found


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """An event that blocked receivers wait on; set when the test ends, whatever happens."""
    event = threading.Event()
    yield event
    event.set()


def test_send_parallel_raises_a_timeout_error_naming_the_receivers_that_had_not_finished(
    release: threading.Event,
) -> None:
    signal = Signal(timeout=TIMEOUT)

    def quick_receiver(**kwargs: Any) -> str:
        return "quick"

    def stuck_receiver(**kwargs: Any) -> str:
        wait_for(release)
        return "stuck"

    def blocked_receiver(**kwargs: Any) -> str:
        wait_for(release)
        return "blocked"

    for receiver in (quick_receiver, stuck_receiver, blocked_receiver):
        signal.connect(receiver)

    with structlog.testing.capture_logs():
        started = time.monotonic()
        with pytest.raises(TimeoutError) as raised:
            signal.send_parallel(None)
        elapsed = time.monotonic() - started

    message = str(raised.value)
    assert stuck_receiver.__qualname__ in message
    assert blocked_receiver.__qualname__ in message
    assert quick_receiver.__qualname__ not in message
    assert TIMEOUT / 2 <= elapsed < TIMEOUT + 1.0


def test_send_parallel_robust_answers_a_timeout_error_for_each_unfinished_receiver(
    release: threading.Event,
) -> None:
    signal = Signal(timeout=TIMEOUT)

    def quick(**kwargs: Any) -> str:
        return "quick"

    def stuck(**kwargs: Any) -> str:
        wait_for(release)
        return "stuck"

    def fails(**kwargs: Any) -> None:
        raise ValueError("failed in time")

    for receiver in (quick, stuck, fails):
        signal.connect(receiver)

    with structlog.testing.capture_logs():
        started = time.monotonic()
        result = signal.send_parallel_robust(None)
        elapsed = time.monotonic() - started

    assert [r for r, _ in result] == [quick, stuck, fails]
    assert result[0][1] == "quick"
    assert isinstance(result[1][1], TimeoutError)
    assert stuck.__qualname__ in str(result[1][1])
    assert isinstance(result[2][1], ValueError)
    assert TIMEOUT / 2 <= elapsed < TIMEOUT + 1.0


@pytest.mark.parametrize("method", ["send_parallel", "send_parallel_robust"])
def test_receivers_not_started_by_the_deadline_are_never_called(
    method: str, release: threading.Event
) -> None:
    signal = Signal(timeout=TIMEOUT, max_workers=1)
    called: list[str] = []

    def occupies_the_only_worker(**kwargs: Any) -> None:
        called.append("first")
        wait_for(release)

    def never_started(**kwargs: Any) -> None:
        called.append("later")

    def probe(**kwargs: Any) -> str:
        return "probe"

    signal.connect(occupies_the_only_worker)
    signal.connect(never_started)

    with structlog.testing.capture_logs():
        if method == "send_parallel":
            with pytest.raises(TimeoutError) as raised:
                signal.send_parallel(None)
            assert never_started.__qualname__ in str(raised.value)
        else:
            result = signal.send_parallel_robust(None)
            assert [r for r, _ in result] == [occupies_the_only_worker, never_started]
            assert all(isinstance(response, TimeoutError) for _, response in result)
    release.set()

    # The pool's single thread runs one dispatch after another: once a later
    # dispatch has run, the timed-out one can start nothing more.
    other = Sender("probe")
    signal.receivers = []
    signal.connect(probe, sender=other)
    assert signal.send_parallel(other) == [(probe, "probe")]
    assert called == ["first"]


def test_the_deadline_covers_the_whole_call_not_each_receiver() -> None:
    signal = Signal(timeout=0.5, max_workers=1)

    def make(index: int) -> Receiver:
        def receiver(**kwargs: Any) -> int:
            time.sleep(0.2)  # well within the deadline, but not three in a row
            return index

        receiver.__qualname__ = f"sleeper_{index}"
        return receiver

    receivers = [make(i) for i in range(3)]
    for receiver in receivers:
        signal.connect(receiver)

    with structlog.testing.capture_logs(), pytest.raises(TimeoutError) as raised:
        signal.send_parallel(None)

    assert "sleeper_2" in str(raised.value)


def test_a_signal_without_a_timeout_waits_for_its_receivers(release: threading.Event) -> None:
    signal = Signal()
    started = threading.Event()

    def slow(**kwargs: Any) -> str:
        started.set()
        wait_for(release)
        return "eventually"

    signal.connect(slow)

    call = Call(lambda: signal.send_parallel(None))
    call.start()
    try:
        wait_for(started)
        call.join(TIMEOUT)
        assert call.is_alive()
    finally:
        release.set()
    call.join(WAIT)

    assert not call.is_alive()
    assert call.error is None
    assert call.result == [(slow, "eventually")]


def test_each_unfinished_receiver_is_logged_as_timed_out(release: threading.Event) -> None:
    signal = Signal(timeout=TIMEOUT, name="deadline.signal")
    sender = Sender("late")

    def stuck(**kwargs: Any) -> None:
        wait_for(release)

    def quick(**kwargs: Any) -> None:
        return None

    signal.connect(stuck)
    signal.connect(quick)

    with structlog.testing.capture_logs() as logs:
        with pytest.raises(TimeoutError):
            signal.send_parallel(sender)
        timeouts = [e for e in logs if e["event"] == "signal.receiver_timeout"]

    assert len(timeouts) == 1
    assert stuck.__qualname__ in timeouts[0]["receiver"]
    assert timeouts[0]["signal"] == "deadline.signal"
    assert timeouts[0]["sender"] == repr(sender)
    assert timeouts[0]["timeout_s"] == TIMEOUT


@pytest.mark.parametrize("method", ["send_parallel", "send_parallel_robust"])
def test_a_receiver_failing_after_the_deadline_is_logged(
    method: str, release: threading.Event
) -> None:
    signal = Signal(timeout=TIMEOUT)
    failing = threading.Event()

    def fails_late(**kwargs: Any) -> None:
        wait_for(release)
        failing.set()
        raise ValueError("too late")

    signal.connect(fails_late)

    with structlog.testing.capture_logs() as logs:
        if method == "send_parallel":
            with pytest.raises(TimeoutError):
                signal.send_parallel(None)
        else:
            [(_, response)] = signal.send_parallel_robust(None)
            assert isinstance(response, TimeoutError)
        release.set()
        wait_for(failing)
        failures = logged(logs, "signal.receiver_failed", 1)

    assert len(failures) == 1
    assert fails_late.__qualname__ in failures[0]["receiver"]
    assert failures[0]["method"] == method
    assert isinstance(failures[0]["exc_info"], ValueError)


def test_the_timeout_applies_to_a_callers_executor_too(release: threading.Event) -> None:
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="owned") as executor:
        signal = Signal(executor=executor, timeout=TIMEOUT)

        def stuck(**kwargs: Any) -> None:
            wait_for(release)

        signal.connect(stuck)

        with structlog.testing.capture_logs():
            started = time.monotonic()
            with pytest.raises(TimeoutError, match="stuck"):
                signal.send_parallel(None)
            elapsed = time.monotonic() - started
        release.set()

    assert elapsed < TIMEOUT + 1.0


def test_receivers_finishing_in_time_are_answered_normally() -> None:
    signal = Signal(timeout=5.0)

    def quick(**kwargs: Any) -> int:
        return 1

    signal.connect(quick)

    assert signal.send_parallel(None) == [(quick, 1)]
    assert signal.send_parallel_robust(None) == [(quick, 1)]


def test_receivers_queued_behind_a_busy_executor_at_the_deadline_never_run(
    release: threading.Event,
) -> None:
    called: list[str] = []

    def never_started(**kwargs: Any) -> None:
        called.append("never")

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="busy") as executor:
        # The caller's own work holds the executor's only thread.
        occupied = threading.Event()

        def occupy() -> None:
            occupied.set()
            wait_for(release)

        executor.submit(occupy)
        wait_for(occupied)
        signal = Signal(executor=executor, timeout=TIMEOUT)
        signal.connect(never_started)

        with structlog.testing.capture_logs():
            [(receiver, response)] = signal.send_parallel_robust(None)
        release.set()
        # The executor runs its queue in order: once this has run, whatever
        # the dispatch queued has run too.
        assert executor.submit(lambda: "drained").result(timeout=WAIT) == "drained"

    assert receiver is never_started
    assert isinstance(response, TimeoutError)
    assert never_started.__qualname__ in str(response)
    assert called == []


def test_a_later_failure_does_not_hide_an_earlier_receiver_missing_the_deadline(
    release: threading.Event,
) -> None:
    signal = Signal(timeout=TIMEOUT)

    def stuck_first(**kwargs: Any) -> None:
        wait_for(release)

    def fails_second(**kwargs: Any) -> None:
        raise ValueError("second failed in time")

    signal.connect(stuck_first)
    signal.connect(fails_second)

    with structlog.testing.capture_logs() as logs:
        with pytest.raises(TimeoutError) as raised:
            signal.send_parallel(None)
        failures = logged(logs, "signal.receiver_failed", 1)

    # send would still be running the first receiver: the deadline is what ends the call.
    assert stuck_first.__qualname__ in str(raised.value)
    assert fails_second.__qualname__ not in str(raised.value)
    # The failure that was not raised is reported, not lost.
    assert len(failures) == 1
    assert fails_second.__qualname__ in failures[0]["receiver"]
    assert isinstance(failures[0]["exc_info"], ValueError)
