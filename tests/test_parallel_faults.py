"""Faults around a parallel dispatch: interrupted callers, races with cancellation,
threads that cannot start, broken reporters, mutual shutdowns, extreme deadlines.

Each test is named after the defect it guards against.
"""

from __future__ import annotations

import io
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import CancelledError
from typing import Any

import pytest
import structlog
from structlog.testing import LogCapture
from structlog.tracebacks import ExceptionDictTransformer

from parasignal import Signal, _fanout

WAIT = 10.0


def run_in_thread(call: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    outcome: list[Any] = []

    def target() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


def test_an_interrupted_caller_starts_nothing_more_and_loses_no_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started, release = threading.Event(), threading.Event()
    later_ran = threading.Event()

    def slow_then_fail(**kwargs: Any) -> None:
        started.set()
        assert release.wait(WAIT)
        msg = "slow failed"
        raise ValueError(msg)

    def later(**kwargs: Any) -> None:
        later_ran.set()

    original_wait = _fanout.Batch.wait

    def interrupted_wait(self: _fanout.Batch, deadline: float | None) -> bool:
        assert started.wait(WAIT)
        msg = "the request's time limit"
        raise KeyboardInterrupt(msg)

    monkeypatch.setattr(_fanout.Batch, "wait", interrupted_wait)
    capture = LogCapture()
    structlog.configure(processors=[capture])
    signal = Signal(name="interrupted", max_workers=1, caller_runs=False)
    signal.connect(slow_then_fail)
    signal.connect(later)
    try:
        with pytest.raises(KeyboardInterrupt, match="time limit"):
            signal.send_parallel(sender=None)
        monkeypatch.setattr(_fanout.Batch, "wait", original_wait)
        release.set()
        deadline = time.monotonic() + WAIT
        while not capture.entries and time.monotonic() < deadline:
            time.sleep(0.002)
        signal.shutdown(wait=True)
    finally:
        structlog.reset_defaults()
    assert not later_ran.is_set()
    (event,) = capture.entries
    assert event["event"] == "signal.receiver_failed"
    assert str(event["exc_info"]) == "slow failed"


class _PausingTickets:
    """Claim tickets whose taker of index 0 pauses until told to go on: a forced GIL switch."""

    def __init__(self, paused: threading.Event, go: threading.Event) -> None:
        self.paused, self.go = paused, go
        self.next = 0

    def __next__(self) -> int:
        claimed, self.next = self.next, self.next + 1
        if claimed == 0:
            self.paused.set()
            assert self.go.wait(WAIT)
        return claimed


def test_a_cancel_racing_with_a_claim_waits_for_it_and_does_not_hang_the_caller(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Regression: a helper paused between claiming receiver 0 and seeing the
    # cancel gave receiver 0 back after another helper had claimed later ones;
    # the batch then waited for receiver 0 forever. A claimed receiver always
    # runs; the cancel only stops later claims.
    paused, go = threading.Event(), threading.Event()
    original = _fanout.Batch.__init__

    def patched(self: _fanout.Batch, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self._tickets = _PausingTickets(paused, go)  # type: ignore[assignment]

    monkeypatch.setattr(_fanout.Batch, "__init__", patched)
    signal = Signal(name="racing", max_workers=4, caller_runs=False)

    def make(i: int) -> Callable[..., int]:
        def receiver(**kwargs: Any) -> int:
            return i

        return receiver

    receivers = [make(i) for i in range(5)]
    for r in receivers:
        signal.connect(r)
    caller, outcome = run_in_thread(lambda: signal.send_parallel_robust(sender=None))
    assert paused.wait(WAIT)  # a helper is claiming receiver 0
    cancelling, _ = run_in_thread(lambda: signal.shutdown(wait=False, cancel_futures=True))
    go.set()
    cancelling.join(WAIT)
    caller.join(WAIT)
    assert not cancelling.is_alive(), "the cancel hung"
    assert not caller.is_alive(), "the caller hung"
    (responses,) = outcome
    assert [r for r, _ in responses] == receivers
    values = [v for _, v in responses]
    assert values[0] == 0, "receiver 0 was claimed before the cancel: it must have run"
    # Claimed in order: the receivers that ran are a prefix, the rest cancelled.
    ran = [v for v in values if not isinstance(v, CancelledError)]
    assert ran == list(range(len(ran)))
    assert all(isinstance(v, CancelledError) for v in values[len(ran) :])


def test_a_thread_that_cannot_start_leaves_the_pool_usable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_start = threading.Thread.start
    refused: list[str] = []

    def flaky_start(self: threading.Thread) -> None:
        if not refused and self.name.startswith("parasignal-flaky"):
            refused.append(self.name)
            msg = "can't start new thread"
            raise RuntimeError(msg)
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", flaky_start)
    calls: list[str] = []
    signal = Signal(name="flaky", max_workers=1, caller_runs=False)
    signal.connect(lambda **kwargs: calls.append("ran"), weak=False)
    with pytest.raises(RuntimeError, match=r"could not start its receivers: can't start new"):
        signal.send_parallel(sender=None)
    assert calls == []
    thread, outcome = run_in_thread(lambda: signal.send_parallel(sender=None))
    thread.join(WAIT)
    assert not thread.is_alive(), "the pool counted a thread that never started"
    assert len(outcome) == 1
    assert calls == ["ran"]
    signal.shutdown()


def test_a_reporter_that_raises_does_not_stop_the_other_receivers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    class Reporting(Signal):
        def _log_robust_failure(self, receiver: Callable[..., Any], err: BaseException) -> None:
            msg = "error tracker not configured"
            raise KeyError(msg)

    signal = Reporting(name="reporting", max_workers=1)

    def fails(**kwargs: Any) -> None:
        msg = "fails"
        raise ValueError(msg)

    signal.connect(fails)
    signal.connect(lambda **kwargs: "after", weak=False)
    responses = signal.send_parallel_robust(sender=None)
    assert isinstance(responses[0][1], ValueError)
    assert responses[1][1] == "after"
    err = capsys.readouterr().err
    assert "reporting a receiver failure failed" in err
    assert "error tracker not configured" in err
    signal.shutdown()


def test_a_worker_survives_a_reporter_raising_system_exit() -> None:
    class Exiting(Signal):
        def _log_robust_failure(self, receiver: Callable[..., Any], err: BaseException) -> None:
            raise SystemExit(1)

    signal = Exiting(name="exiting", max_workers=1)

    def fails(**kwargs: Any) -> None:
        raise ValueError

    signal.connect(fails)
    first = signal.send_parallel_robust(sender=None)
    assert isinstance(first[0][1], ValueError)
    signal.disconnect(fails)
    signal.connect(lambda **kwargs: "healthy", weak=False)
    thread, outcome = run_in_thread(lambda: signal.send_parallel(sender=None))
    thread.join(WAIT)
    assert not thread.is_alive()
    assert [v for _, v in outcome[0]] == ["healthy"]
    signal.shutdown()


def test_receivers_shutting_down_each_others_pools_do_not_deadlock() -> None:
    first = Signal(name="first", max_workers=1)
    second = Signal(name="second", max_workers=1)
    both_running = threading.Barrier(2, timeout=WAIT)

    def close_second(**kwargs: Any) -> str:
        both_running.wait()
        second.shutdown(wait=True)
        return "closed second"

    def close_first(**kwargs: Any) -> str:
        both_running.wait()
        first.shutdown(wait=True)
        return "closed first"

    first.connect(close_second)
    second.connect(close_first)
    a, a_out = run_in_thread(lambda: first.send_parallel(sender=None))
    b, b_out = run_in_thread(lambda: second.send_parallel(sender=None))
    a.join(WAIT)
    b.join(WAIT)
    assert not a.is_alive()
    assert not b.is_alive()
    assert [v for _, v in a_out[0]] == ["closed second"]
    assert [v for _, v in b_out[0]] == ["closed first"]


def test_a_deadline_beyond_timeout_max_means_no_deadline() -> None:
    signal = Signal(name="patient", timeout=sys.maxsize)
    signal.connect(lambda **kwargs: "done", weak=False)
    assert [v for _, v in signal.send_parallel(sender=None)] == ["done"]


def test_a_timeout_message_names_at_most_twenty_receivers() -> None:
    release = threading.Event()
    signal = Signal(name="many", max_workers=1, timeout=0.05)
    for _ in range(30):
        signal.connect(lambda **kwargs: release.wait(WAIT), weak=False)
    structlog.configure(processors=[LogCapture()])
    try:
        with pytest.raises(TimeoutError) as info:
            signal.send_parallel(sender=None)
    finally:
        structlog.reset_defaults()
        release.set()
    message = str(info.value)
    # One started (the pool's one thread is stuck in it), 29 never did.
    assert "1 receiver(s) did not finish within the 0.05 s deadline" in message
    assert "29 receiver(s) never started: the pool's 1 threads were all busy" in message
    assert message.count("test_parallel_faults.") == 20
    assert message.rstrip(".").endswith("and 10 more")
    signal.shutdown()


def test_the_readmes_json_configuration_does_not_log_named_arguments() -> None:
    out = io.StringIO()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False)),
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.PrintLoggerFactory(file=out),
    )
    signal = Signal(name="payment_made")

    def charge(sender: object, card_number: str, **kwargs: Any) -> None:
        msg = "gateway down"
        raise RuntimeError(msg)

    signal.connect(charge)
    try:
        signal.send_robust(sender=None, card_number="4111-1111-1111-1111")
        signal.send_parallel_robust(sender=None, card_number="4111-1111-1111-1111")
    finally:
        structlog.reset_defaults()
    text = out.getvalue()
    assert text.count("signal.receiver_failed") == 2
    assert "gateway down" in text
    assert "4111" not in text
