"""Structured failure and timeout events: names, keys, levels, context, privacy."""

from __future__ import annotations

import functools
import subprocess
import sys
import threading
import time
from collections.abc import Callable, MutableMapping
from typing import Any

import pytest
import structlog

from parasignal import Signal, dispatcher

FAILURE_KEYS = {
    "event",
    "log_level",
    "signal",
    "receiver",
    "sender",
    "method",
    "duration_ms",
    "thread_name",
    "exc_info",
}
TIMEOUT_KEYS = {
    "event",
    "log_level",
    "signal",
    "receiver",
    "sender",
    "method",
    "timeout_s",
    "started",
}
DISPATCH_TIMEOUT_KEYS = {
    "event",
    "log_level",
    "signal",
    "sender",
    "method",
    "timeout_s",
    "running",
    "not_started",
    "receivers",
    "not_started_reason",
}


def wait_for(predicate: Callable[[], bool], seconds: float = 5.0) -> None:
    """Poll for something a worker thread does after the caller returned."""
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting for a background event"
        time.sleep(0.002)


def failing(**kwargs: Any) -> None:
    msg = "boom"
    raise ValueError(msg)


def ok(**kwargs: Any) -> str:
    return "ok"


named_signal = Signal(name="orders.placed")
module_signal = Signal()


class Holder:
    class_signal = Signal()


def test_send_robust_failure_emits_one_error_event_with_every_key(
    logs: list[MutableMapping[str, Any]],
) -> None:
    named_signal.connect(failing)
    try:
        (response,) = named_signal.send_robust(sender="shop")
    finally:
        named_signal.disconnect(failing)
    assert isinstance(response[1], ValueError)
    (event,) = logs
    assert set(event) == FAILURE_KEYS
    assert event["event"] == "signal.receiver_failed"
    assert event["log_level"] == "error"
    assert event["signal"] == "orders.placed"
    assert event["receiver"] == f"{__name__}.failing"
    assert event["sender"] == "'shop'"
    assert event["method"] == "send_robust"
    assert isinstance(event["duration_ms"], float)
    assert event["duration_ms"] >= 0.0
    assert event["thread_name"] == threading.current_thread().name
    assert event["exc_info"] is response[1]


def test_send_parallel_robust_failure_is_logged_from_the_worker_thread(
    logs: list[MutableMapping[str, Any]],
) -> None:
    signal = Signal(name="s", caller_runs=False)
    signal.connect(ok)
    signal.connect(failing)
    responses = signal.send_parallel_robust(sender=None)
    assert responses[0][1] == "ok"
    (event,) = logs
    assert set(event) == FAILURE_KEYS
    assert event["method"] == "send_parallel_robust"
    assert event["thread_name"].startswith("parasignal")
    assert event["exc_info"] is responses[1][1]


def test_the_failure_raised_by_send_parallel_is_not_also_logged(
    logs: list[MutableMapping[str, Any]],
) -> None:
    signal = Signal(name="s")
    signal.connect(failing)
    with pytest.raises(ValueError, match="boom"):
        signal.send_parallel(sender=None)
    assert logs == []


def test_send_raises_without_logging(logs: list[MutableMapping[str, Any]]) -> None:
    signal = Signal(name="s")
    signal.connect(failing)
    with pytest.raises(ValueError, match="boom"):
        signal.send(sender=None)
    assert logs == []


def test_failures_after_the_raised_one_are_logged_never_lost(
    logs: list[MutableMapping[str, Any]],
) -> None:
    first_may_fail = threading.Event()
    second_failed = threading.Event()

    def first(**kwargs: Any) -> None:
        assert first_may_fail.wait(5)
        msg = "first"
        raise KeyError(msg)

    def second(**kwargs: Any) -> None:
        second_failed.set()
        msg = "second"
        raise ValueError(msg)

    signal = Signal(name="s")
    signal.connect(first)
    signal.connect(second)

    def release_first_once_second_failed() -> None:
        assert second_failed.wait(5)
        first_may_fail.set()

    releaser = threading.Thread(target=release_first_once_second_failed)
    releaser.start()
    with pytest.raises(KeyError, match="first"):
        signal.send_parallel(sender=None)
    releaser.join(5)
    (event,) = logs
    assert event["receiver"].endswith("second")
    assert event["method"] == "send_parallel"
    assert isinstance(event["exc_info"], ValueError)


def test_a_receiver_still_running_when_send_parallel_raises_is_logged_when_it_fails(
    logs: list[MutableMapping[str, Any]],
) -> None:
    release = threading.Event()
    started = threading.Event()

    def slow_then_fail(**kwargs: Any) -> None:
        started.set()
        assert release.wait(5)
        msg = "late"
        raise RuntimeError(msg)

    def fail_now(**kwargs: Any) -> None:
        assert started.wait(5)
        msg = "now"
        raise ValueError(msg)

    signal = Signal(name="s")
    signal.connect(fail_now)
    signal.connect(slow_then_fail)
    with pytest.raises(ValueError, match="now"):
        signal.send_parallel(sender=None)
    assert logs == []
    release.set()
    wait_for(lambda: len(logs) == 1)
    assert logs[0]["event"] == "signal.receiver_failed"
    assert logs[0]["receiver"].endswith("slow_then_fail")
    assert isinstance(logs[0]["exc_info"], RuntimeError)


@pytest.mark.parametrize("method", ["send_parallel", "send_parallel_robust"])
def test_each_receiver_unfinished_at_the_deadline_gets_a_warning_event(
    logs: list[MutableMapping[str, Any]], method: str
) -> None:
    release = threading.Event()

    def stuck(**kwargs: Any) -> None:
        assert release.wait(5)

    signal = Signal(name="s", timeout=0.05)
    signal.connect(ok)
    signal.connect(stuck)
    try:
        if method == "send_parallel":
            with pytest.raises(TimeoutError):
                signal.send_parallel(sender=42)
        else:
            signal.send_parallel_robust(sender=42)
    finally:
        release.set()
    dispatch_event, event = logs
    assert set(dispatch_event) == DISPATCH_TIMEOUT_KEYS
    assert dispatch_event["event"] == "signal.dispatch_timeout"
    assert dispatch_event["log_level"] == "warning"
    assert (dispatch_event["running"], dispatch_event["not_started"]) == (1, 0)
    assert [name.rsplit(".", 1)[-1] for name in dispatch_event["receivers"]] == ["stuck"]
    assert dispatch_event["not_started_reason"] is None
    assert (dispatch_event["sender"], dispatch_event["method"]) == ("42", method)
    assert dispatch_event["timeout_s"] == 0.05
    assert set(event) == TIMEOUT_KEYS
    assert event["event"] == "signal.receiver_timeout"
    assert event["log_level"] == "warning"
    assert event["receiver"].endswith("stuck")
    assert event["started"] is True
    assert event["sender"] == "42"
    assert event["method"] == method
    assert event["timeout_s"] == 0.05


def test_a_receiver_that_fails_after_the_deadline_is_logged_as_failed(
    logs: list[MutableMapping[str, Any]],
) -> None:
    release = threading.Event()

    def stuck_then_fail(**kwargs: Any) -> None:
        assert release.wait(5)
        msg = "too late"
        raise OSError(msg)

    signal = Signal(name="s", timeout=0.05)
    signal.connect(stuck_then_fail)
    with pytest.raises(TimeoutError):
        signal.send_parallel(sender=None)
    release.set()
    wait_for(lambda: len(logs) == 3)
    assert [e["event"] for e in logs] == [
        "signal.dispatch_timeout",
        "signal.receiver_timeout",
        "signal.receiver_failed",
    ]
    assert isinstance(logs[2]["exc_info"], OSError)


class Service:
    def handle(self, **kwargs: Any) -> None:
        msg = "method"
        raise ValueError(msg)

    def __call__(self, **kwargs: Any) -> None:
        msg = "instance"
        raise ValueError(msg)


def two_args(prefix: str, **kwargs: Any) -> None:
    raise ValueError(prefix)


def test_receiver_names_work_for_every_kind_of_callable(
    logs: list[MutableMapping[str, Any]],
) -> None:
    service = Service()
    anonymous = lambda **kwargs: 1 / 0  # noqa: E731 - a lambda is the point
    receivers: list[Callable[..., Any]] = [
        failing,
        service.handle,
        anonymous,
        functools.partial(two_args, "partial"),
        service,
    ]
    signal = Signal(name="s")
    for r in receivers:
        signal.connect(r, weak=False)
    signal.send_robust(sender=None)
    signal.send_parallel_robust(sender=None)
    names = [e["receiver"] for e in logs]
    expected = [
        f"{__name__}.failing",
        f"{__name__}.Service.handle",
        f"{__name__}.test_receiver_names_work_for_every_kind_of_callable.<locals>.<lambda>",
        f"functools.partial({__name__}.two_args)",
        f"{__name__}.Service",
    ]
    assert names == expected * 2


def test_sender_repr_is_cut_to_200_characters(logs: list[MutableMapping[str, Any]]) -> None:
    signal = Signal(name="s")
    signal.connect(failing)
    signal.send_robust(sender="x" * 1000)
    (event,) = logs
    assert len(event["sender"]) == 200
    assert event["sender"].startswith("'xxx")


def test_a_sender_whose_repr_fails_is_still_reported(logs: list[MutableMapping[str, Any]]) -> None:
    class Unprintable:
        def __repr__(self) -> str:
            raise RuntimeError

    signal = Signal(name="s")
    signal.connect(failing)
    signal.send_robust(sender=Unprintable())
    (event,) = logs
    assert "Unprintable" in event["sender"]


def test_named_argument_values_are_never_logged(logs: list[MutableMapping[str, Any]]) -> None:
    release = threading.Event()

    def stuck(**kwargs: Any) -> None:
        assert release.wait(5)

    robust = Signal(name="robust")
    robust.connect(failing)
    robust.send_robust(sender=None, password="hunter2")  # noqa: S106 - a fake secret
    parallel = Signal(name="parallel", timeout=0.05)
    parallel.connect(failing)
    parallel.connect(stuck)
    try:
        parallel.send_parallel_robust(sender=None, password="hunter2")  # noqa: S106
    finally:
        release.set()
    assert len(logs) == 4  # two failures, a timed-out dispatch and its receiver
    assert all("hunter2" not in repr(event) for event in logs)


def test_bound_request_id_appears_in_events_from_worker_threads(
    logs: list[MutableMapping[str, Any]],
) -> None:
    signal = Signal(name="s")
    signal.connect(failing)

    def handle_request(request_id: str) -> None:
        structlog.contextvars.bind_contextvars(request_id=request_id)
        signal.send_parallel_robust(sender=None)
        signal.send_robust(sender=None)

    threads = [threading.Thread(target=handle_request, args=(f"req-{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(logs) == 16
    by_request: dict[str, list[str]] = {}
    for event in logs:
        by_request.setdefault(event["request_id"], []).append(event["method"])
    assert sorted(by_request) == [f"req-{i}" for i in range(8)]
    assert all(sorted(m) == ["send_parallel_robust", "send_robust"] for m in by_request.values())


def test_late_failure_event_carries_the_request_id_of_its_dispatch(
    logs: list[MutableMapping[str, Any]],
) -> None:
    release = threading.Event()

    def stuck_then_fail(**kwargs: Any) -> None:
        assert release.wait(5)
        raise ValueError

    signal = Signal(name="s", timeout=0.05)
    signal.connect(stuck_then_fail)
    structlog.contextvars.bind_contextvars(request_id="abc")
    with pytest.raises(TimeoutError):
        signal.send_parallel(sender=None)
    structlog.contextvars.bind_contextvars(request_id="other")
    release.set()
    wait_for(lambda: any(e["event"] == "signal.receiver_failed" for e in logs))
    assert [e["event"] for e in logs] == [
        "signal.dispatch_timeout",
        "signal.receiver_timeout",
        "signal.receiver_failed",
    ]
    assert [e["request_id"] for e in logs] == ["abc", "abc", "abc"]


def test_a_subclass_can_report_failures_its_own_way(logs: list[MutableMapping[str, Any]]) -> None:
    seen: list[tuple[object, BaseException, str]] = []

    class Reporting(Signal):
        def _log_robust_failure(self, receiver: Callable[..., Any], err: BaseException) -> None:
            seen.append((receiver, err, threading.current_thread().name))

    signal = Reporting(caller_runs=False)
    signal.connect(failing)
    signal.send_robust(sender=None)
    signal.send_parallel_robust(sender=None)
    assert [r for r, _, _ in seen] == [failing, failing]
    assert all(isinstance(e, ValueError) for _, e, _ in seen)
    assert seen[1][2].startswith("parasignal")
    assert logs == []


def test_default_signal_name_is_the_module_attribute_it_is_bound_to(
    logs: list[MutableMapping[str, Any]],
) -> None:
    module_signal.connect(failing)
    try:
        module_signal.send_robust(sender=None)
    finally:
        module_signal.disconnect(failing)
    assert logs[0]["signal"] == f"{__name__}.module_signal"


def test_default_signal_name_falls_back_to_where_it_was_defined(
    logs: list[MutableMapping[str, Any]],
) -> None:
    Holder.class_signal.connect(failing)
    try:
        Holder.class_signal.send_robust(sender=None)
    finally:
        Holder.class_signal.disconnect(failing)
    module, _, line = logs[0]["signal"].rpartition(":")
    assert module == __name__
    assert line.isdigit()


def test_name_must_be_a_string() -> None:
    with pytest.raises(TypeError, match="name must be a str or None, not 42"):
        Signal(name=42)  # type: ignore[arg-type]


def test_the_library_logger_is_structlogs_lazy_parasignal_logger() -> None:
    assert isinstance(dispatcher.logger, structlog._config.BoundLoggerLazyProxy)
    assert dispatcher.logger._logger_factory_args == ("parasignal",)


def test_a_broken_logging_configuration_does_not_break_dispatch(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def explode(*args: Any) -> Any:
        msg = "processor bug"
        raise RuntimeError(msg)

    structlog.configure(processors=[explode])
    try:
        signal = Signal(name="s")
        signal.connect(failing)
        signal.connect(ok)
        responses = signal.send_parallel_robust(sender=None)
        assert isinstance(responses[0][1], ValueError)
        assert responses[1][1] == "ok"
    finally:
        structlog.reset_defaults()
    assert "could not log 'signal.receiver_failed'" in capsys.readouterr().err


def test_importing_and_dispatching_never_configures_logging() -> None:
    code = """
import logging, structlog
from parasignal import Signal
s = Signal()
def bad(**kwargs):
    raise ValueError
s.connect(bad)
s.send_robust(None)
s.send_parallel_robust(None)
assert not structlog.is_configured(), "structlog was configured"
assert logging.getLogger().handlers == [], logging.getLogger().handlers
print("clean")
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("clean")
