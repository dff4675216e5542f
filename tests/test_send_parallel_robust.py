"""The contract of ``Signal.send_parallel_robust``: every receiver runs, failures are answers."""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from parasignal import Signal, _pool

WAIT = 10.0  # seconds: how long any Event or Barrier wait may take before the test fails

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


def test_failed_receivers_get_their_exception_in_place_of_a_response() -> None:
    signal = Signal()

    def succeeds(**kwargs: Any) -> str:
        return "fine"

    def fails(**kwargs: Any) -> None:
        raise ValueError("broken receiver")

    def also_succeeds(**kwargs: Any) -> int:
        return 3

    for receiver in (succeeds, fails, also_succeeds):
        signal.connect(receiver)

    result = signal.send_parallel_robust(None)

    assert [r for r, _ in result] == [succeeds, fails, also_succeeds]
    assert result[0][1] == "fine"
    assert result[2][1] == 3
    error = result[1][1]
    assert isinstance(error, ValueError)
    assert error.args == ("broken receiver",)
    # The traceback leads into the receiver that raised.
    assert error.__traceback__ is not None
    assert traceback.extract_tb(error.__traceback__)[-1].name == "fails"


def test_every_failure_is_logged_as_a_receiver_failure() -> None:
    signal = Signal(name="robust.signal")
    sender = Sender("robust")

    def fails_once(**kwargs: Any) -> None:
        raise KeyError("one")

    def fails_twice(**kwargs: Any) -> None:
        raise LookupError("two")

    def succeeds(**kwargs: Any) -> None:
        return None

    for receiver in (fails_once, succeeds, fails_twice):
        signal.connect(receiver)

    with structlog.testing.capture_logs() as logs:
        result = signal.send_parallel_robust(sender, card_number="4111-1111")

    logged = sorted(
        (e for e in logs if e["event"] == "signal.receiver_failed"), key=lambda e: e["receiver"]
    )
    assert [e["receiver"].rsplit(".", 1)[-1] for e in logged] == ["fails_once", "fails_twice"]
    for entry in logged:
        assert entry["signal"] == "robust.signal"
        assert entry["method"] == "send_parallel_robust"
        assert entry["sender"] == repr(sender)
        assert entry["log_level"] == "error"
        assert "4111-1111" not in repr(entry)
    assert logged[0]["exc_info"] is result[0][1]
    assert logged[1]["exc_info"] is result[2][1]


def test_send_parallel_robust_waits_for_every_receiver_even_after_a_failure() -> None:
    signal = Signal()
    slow_started = threading.Event()
    release_slow = threading.Event()
    failed = threading.Event()

    def fails(**kwargs: Any) -> None:
        wait_for(slow_started)
        failed.set()
        raise ValueError("early failure")

    def slow(**kwargs: Any) -> str:
        slow_started.set()
        wait_for(release_slow)
        return "slow"

    def after(**kwargs: Any) -> str:
        return "after"

    for receiver in (fails, slow, after):
        signal.connect(receiver)

    with structlog.testing.capture_logs():
        call = Call(lambda: signal.send_parallel_robust(None))
        call.start()
        try:
            wait_for(failed)
            call.join(0.2)
            assert call.is_alive()
        finally:
            release_slow.set()
        call.join(WAIT)
    assert not call.is_alive()

    assert call.error is None
    assert call.result is not None
    assert [r for r, _ in call.result] == [fails, slow, after]
    assert isinstance(call.result[0][1], ValueError)
    assert call.result[1][1] == "slow"
    assert call.result[2][1] == "after"


@pytest.mark.parametrize("max_workers", [None, 1, 3])
def test_send_parallel_robust_calls_every_receiver_whatever_fails(max_workers: int | None) -> None:
    signal = Signal(max_workers=max_workers)
    calls: list[int] = []

    def make(index: int) -> Receiver:
        def receiver(**kwargs: Any) -> int:
            calls.append(index)
            if index % 2 == 0:
                raise ValueError(index)
            return index

        return receiver

    receivers = [make(i) for i in range(10)]
    for receiver in receivers:
        signal.connect(receiver)

    with structlog.testing.capture_logs() as logs:
        result = signal.send_parallel_robust(None)

    assert sorted(calls) == list(range(10))
    assert [r for r, _ in result] == receivers
    for index, (_, response) in enumerate(result):
        if index % 2 == 0:
            assert isinstance(response, ValueError)
            assert response.args == (index,)
        else:
            assert response == index
    assert len([e for e in logs if e["event"] == "signal.receiver_failed"]) == 5


def test_a_base_exception_that_is_not_an_exception_propagates() -> None:
    class Abort(BaseException):
        pass

    signal = Signal()

    def succeeds(**kwargs: Any) -> str:
        return "fine"

    def aborts(**kwargs: Any) -> None:
        raise Abort("stop everything")

    signal.connect(succeeds)
    signal.connect(aborts)

    with pytest.raises(Abort, match="stop everything"):
        signal.send_parallel_robust(None)
    with pytest.raises(Abort, match="stop everything"):
        signal.send_robust(None)


def test_send_parallel_robust_with_no_receivers_returns_nothing_without_a_pool() -> None:
    signal = Signal()

    assert signal.send_parallel_robust(None) == []
    assert _pool._default is None


# -- send_parallel_robust answers what send_robust answers -------------------------------

receiver_specs = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=0.004),  # delay in seconds
        st.one_of(st.none(), st.integers(), st.text(max_size=5)),  # response or error argument
        st.sampled_from(["everyone", "mine", "other"]),  # which sender it listens to
        st.booleans(),  # whether it fails
    ),
    max_size=12,
)


def comparable(result: Result) -> list[tuple[Receiver, str, Any]]:
    """Exceptions are new objects at every call: compare their type and arguments."""
    return [
        (receiver, type(response).__name__, response.args)
        if isinstance(response, Exception)
        else (receiver, "response", response)
        for receiver, response in result
    ]


@settings(max_examples=40, deadline=None, database=None)
@given(
    specs=receiver_specs,
    max_workers=st.sampled_from([None, 1, 2, 5]),
    use_caching=st.booleans(),
)
def test_send_parallel_robust_answers_exactly_what_send_robust_answers(
    specs: list[tuple[float, object, str, bool]], max_workers: int | None, use_caching: bool
) -> None:
    signal = Signal(use_caching=use_caching, max_workers=max_workers)
    mine, other = Sender("mine"), Sender("other")
    senders = {"everyone": None, "mine": mine, "other": other}
    receivers: list[Receiver] = []
    for delay, response, listens_to, fails in specs:

        def receiver(
            *, _delay: float = delay, _response: object = response, _fails: bool = fails, **kw: Any
        ) -> object:
            time.sleep(_delay)
            if _fails:
                raise ValueError(_response)
            return _response

        signal.connect(receiver, sender=senders[listens_to])
        receivers.append(receiver)

    with structlog.testing.capture_logs() as logs:
        for sender in (mine, other, None):
            expected = signal.send_robust(sender, value=1)
            logs.clear()
            actual = signal.send_parallel_robust(sender, value=1)
            assert comparable(actual) == comparable(expected)
            # Every failure was logged before the call returned.
            failed = [r for r, response in actual if isinstance(response, Exception)]
            logged = [e for e in logs if e["event"] == "signal.receiver_failed"]
            assert len(logged) == len(failed)
            assert all(e["method"] == "send_parallel_robust" for e in logged)
    assert len(receivers) == len(specs)


def test_a_base_exception_after_a_receiver_stuck_past_the_deadline_still_propagates() -> None:
    # Regression: the later receiver's response was the engine's placeholder.
    release = threading.Event()

    def stuck(**kwargs: Any) -> None:
        release.wait(10)

    def exits(**kwargs: Any) -> None:
        raise SystemExit(3)

    signal = Signal(timeout=0.2, max_workers=2)
    signal.connect(stuck)
    signal.connect(exits)
    try:
        with pytest.raises(SystemExit):
            signal.send_parallel_robust(None)
    finally:
        release.set()
    signal.shutdown()
